"""What the broker uses lives in the runtime; ``pykbroker.testing`` keeps
the documented import paths as re-exports, and ``pykbroker ctl`` (the
product's command line) reaches the control endpoint over a real socket."""

from __future__ import annotations

import json

import pytest

from pykbroker import cli, ctl
from pykbroker.protocol import releases as runtime_releases
from pykbroker.server import faults as runtime_faults
from pykbroker.server import inspect as runtime_inspect
from pykbroker.server import releases as runtime_apply
from pykbroker.testing import BrokerThread
from pykbroker.testing import ctl as old_ctl
from pykbroker.testing import faults as old_faults
from pykbroker.testing import inspect as old_inspect
from pykbroker.testing import releases as old_releases


def test_old_paths_are_the_runtime_objects() -> None:
    for name in old_faults.__all__:
        assert getattr(old_faults, name) is getattr(runtime_faults, name), name
    for name in old_inspect.__all__:
        assert getattr(old_inspect, name) is getattr(runtime_inspect, name), name
    for name in ("RELEASES", "check_release", "normalize", "ranges"):
        assert getattr(old_releases, name) is getattr(runtime_releases, name), name
    assert old_releases.apply_release is runtime_apply.apply_release
    assert old_ctl.main is ctl.main


def test_pykbroker_ctl_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with BrokerThread(control=True) as b:
        assert cli.main(["ctl", "--control", b.control_url, "faults", "add", "fail", "--api", "Produce",
                         "--error", "NOT_LEADER_OR_FOLLOWER", "--count", "2"]) == 0
        rule = json.loads(capsys.readouterr().out)
        assert (rule["action"], rule["api"], rule["count"]) == ("fail", "Produce", 2)
        assert [r["id"] for r in b.faults.list()] == [rule["id"]]
        assert cli.main(["ctl", "--control", b.control_url, "faults", "clear"]) == 0
        assert b.faults.list() == []
        capsys.readouterr()
        assert cli.main(["ctl", "--control", b.control_url, "versions"]) == 0
        versions = json.loads(capsys.readouterr().out)
        assert versions["as_version"] is None
        assert any(k["api_key"] == 18 for k in versions["api_keys"])  # ApiVersions itself


def test_release_emulation_from_the_runtime_table() -> None:
    """--as-version caps ApiVersions to the release's ranges (protocol/releases.py)."""
    with BrokerThread(as_version="3.9") as b:
        state = b.broker.state
        want = runtime_releases.ranges("3.9")
        assert state.api_version_caps == {k: hi for k, (_lo, hi) in want.items()}
        assert state.api_version_floors == {k: lo for k, (lo, _hi) in want.items()}
