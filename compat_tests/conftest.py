"""pytest wiring for the compatibility matrix.

``compat_run`` (session scope) owns the brokers (one per client family) and
collects every cell's result; ``test_docs_compat_md_is_current`` is moved to
the very end of the session so it sees all results.

The environment variable ``PYKBROKER_COMPAT_WRITE=1`` (set by
``python -m compat_tests``) means "regenerate docs/compat.md": the doc check
then writes the file instead of failing when results changed.
"""

from __future__ import annotations

import pytest

from .runner import CompatRun

FINAL = "test_docs_compat_md_is_current"


@pytest.fixture(scope="session")
def compat_run(tmp_path_factory):  # type: ignore[no-untyped-def]
    run = CompatRun(lambda name: tmp_path_factory.mktemp(name, numbered=True))
    yield run
    run.close()


def pytest_collection_modifyitems(session, config, items):  # type: ignore[no-untyped-def]
    last = [it for it in items if it.name == FINAL]
    if last:
        items[:] = [it for it in items if it.name != FINAL] + last
