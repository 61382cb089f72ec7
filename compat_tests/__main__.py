"""``python -m compat_tests [pytest args]``: run the whole matrix, write docs/compat.md.

The same tests ``bash scripts/test`` runs (compat_tests/ under pytest), with
PYKBROKER_COMPAT_WRITE=1 so the final doc check rewrites docs/compat.md
from the results instead of failing on a change. The exit status is
pytest's: non-zero when a cell failed (the doc then shows the failure).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def main() -> int:
    os.environ["PYKBROKER_COMPAT_WRITE"] = "1"
    os.chdir(HERE.parent)
    args = sys.argv[1:] or ["-q", "-ra"]
    rc = pytest.main([str(HERE.relative_to(HERE.parent)), *args])
    print(f"docs/compat.md: {(HERE.parent / 'docs' / 'compat.md')}", file=sys.stderr)
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
