"""scripts/bench --quick (issue 17): short defaults that explicit options override."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    pytest.importorskip("confluent_kafka")
    loader = importlib.machinery.SourceFileLoader("pykbroker_scripts_bench", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_quick_defaults(bench: ModuleType) -> None:
    a = bench.parse_args(["--quick"])
    assert a.quick
    assert a.broker_names == ["pykbroker"]
    assert (a.messages, a.messages_1k, a.acks_list) == (100_000, 20_000, ["1"])
    assert a.latency_seconds == 5.0 and a.start_runs == 5


def test_quick_explicit_options_win(bench: ModuleType) -> None:
    a = bench.parse_args(["--messages", "7", "--quick", "--brokers", "pykbroker,tansu"])
    assert a.messages == 7
    assert a.broker_names == ["pykbroker", "tansu"]
    assert a.messages_1k == 20_000


def test_full_run_defaults_unchanged(bench: ModuleType) -> None:
    a = bench.parse_args([])
    assert not a.quick
    assert (a.messages, a.latency_seconds, a.broker_names) == (2_000_000, 10.0, ["pykbroker", "tansu"])
