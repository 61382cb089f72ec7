"""The CLI's garbage-collector settling after start-up (issue 17, tail latency)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pykbroker import cli


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_settle_gc_freezes_and_sets_thresholds(restore_gc: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYKBROKER_GC", raising=False)
    gc.unfreeze()
    cli.settle_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == cli.GC_THRESHOLD


def test_settle_gc_default_keeps_cpython_settings(restore_gc: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYKBROKER_GC", "default")
    gc.unfreeze()
    before = gc.get_threshold()
    cli.settle_gc()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
