"""Client compatibility matrix: five client families × scenarios (issue 7).

Run the whole matrix and regenerate docs/compat.md::

    .venv/bin/python -m compat_tests

``bash scripts/test`` runs the same cells as part of the suite. See
``matrix.py`` for the families, scenarios and the document format.
"""
