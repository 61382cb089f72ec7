"""The compatibility matrix as tests: one test per (topology, client family, scenario).

n/a and pending cells are skipped with their reason; failed cells fail with
the scenario's error, the traceback and the family broker's log. The last
test of the session compares the results with docs/compat.md.
"""

from __future__ import annotations

import os

import pytest

from .matrix import (COMMAND, DOC, FAIL, NA, PENDING, cells, doc_problems, parse_doc, render_doc)
from .drivers import get_driver

CELLS = cells()


@pytest.mark.parametrize("topology,family,scenario", CELLS, ids=[f"{t}:{f}:{s}" for t, f, s in CELLS])
def test_cell(compat_run, topology, family, scenario):  # type: ignore[no-untyped-def]
    r = compat_run.run_cell(topology, family, scenario)
    if r.status == NA:
        pytest.skip(f"n/a, client has no such feature: {r.reason}")
    if r.status == PENDING:
        pytest.skip(f"pending: {r.reason}")
    if r.status == FAIL:
        pytest.fail(f"{topology}: {family} × {scenario}: {r.reason}\n\n{r.detail}", pytrace=False)


def test_docs_compat_md_was_generated():
    """docs/compat.md exists, is untouched generator output, and lists today's cells."""
    assert DOC.exists(), f"docs/compat.md is missing: run `{COMMAND}`"
    problems = doc_problems(DOC.read_text())
    assert not problems, f"docs/compat.md: {'; '.join(problems)}; regenerate it with `{COMMAND}`"


def test_docs_compat_md_is_current(compat_run):  # type: ignore[no-untyped-def]
    """Runs last. When every cell ran in this session, docs/compat.md is
    rewritten from the results; if any cell's state differs from the file's,
    the test fails (unless regenerating on purpose) so the new file gets
    committed."""
    results = compat_run.results
    if any(c not in results for c in CELLS):
        pytest.skip("not every cell ran in this session (docs/compat.md is written from a full run)")
    versions = {f: compat_run.version_of(f) for _, f, _ in CELLS}
    notes = {f: list(get_driver(f).notes) for _, f, _ in CELLS}
    text = render_doc(results, versions, notes)
    old = DOC.read_text() if DOC.exists() else ""
    if text != old:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
    if os.environ.get("PYKBROKER_COMPAT_WRITE") == "1":
        return
    before, now = parse_doc(old) or {}, parse_doc(text) or {}
    changed = {k: f"{before.get(k, 'missing')} -> {v}" for k, v in now.items() if before.get(k) != v}
    assert not changed, (
        f"docs/compat.md was out of date and has been regenerated; commit it. Changed cells: {changed}")
