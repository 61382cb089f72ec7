"""Tests of the test helper itself (tests/brokerproc.py), with a fake broker."""

import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from brokerproc import BrokerError, BrokerProcess

FAKE = [sys.executable, str(Path(__file__).with_name("fake_broker.py"))]


def connect_ok(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2):
        return True


def test_start_stop(tmp_path):
    b = BrokerProcess(command=FAKE)
    b.start({"num.partitions": 3, "auto.create.topics.enable": False}, log_dir=tmp_path / "d")
    try:
        assert b.port and b.port > 0
        assert b.bootstrap == f"127.0.0.1:{b.port}"
        assert connect_ok(b.bootstrap)
        assert "--override" in b.argv() and "auto.create.topics.enable=false" in b.argv()
        assert f"log.dirs={tmp_path / 'd'}" in b.ready_line
    finally:
        assert b.stop() == 0
    assert "fake broker: bye" in b.log
    assert not b.is_running()


def test_restart_same_port_and_dir(tmp_path):
    b = BrokerProcess(command=FAKE).start(log_dir=tmp_path)
    try:
        port = b.port
        with socket.create_connection(("127.0.0.1", port)):
            pass
        b.restart()
        assert b.port == port and b.starts == 2
        assert connect_ok(b.bootstrap)
        b.restart(kill=True)
        assert b.port == port and b.starts == 3
    finally:
        b.stop()


def test_kill():
    with BrokerProcess(command=FAKE) as b:
        assert b.kill() == -signal.SIGKILL
        assert not b.is_running()


def test_exit_before_ready_reports_log():
    b = BrokerProcess(command=FAKE)
    with pytest.raises(BrokerError, match="(?s)exited with code 3.*giving up"):
        b.start({"fake.exit_before_ready": 3})


def test_stop_escalates_to_sigkill():
    b = BrokerProcess(command=FAKE).start({"fake.ignore_sigterm": True})
    t0 = time.monotonic()
    assert b.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5
    assert "SIGKILL" in b.log


def test_pipes_are_drained():
    # 4 MB on each pipe: would block the child if nobody read them.
    b = BrokerProcess(command=FAKE).start({"fake.spam_bytes": 4_000_000})
    try:
        deadline = time.monotonic() + 20
        while not (b.log_dir / "spam-done").exists():
            assert time.monotonic() < deadline, "broker output blocked"
            time.sleep(0.05)
        assert connect_ok(b.bootstrap)
    finally:
        assert b.stop() == 0  # exited by itself on SIGTERM: it was never stuck


def test_broker_factory_fixture(broker_factory):
    a = broker_factory(command=FAKE)
    b = broker_factory({"num.partitions": 2}, command=FAKE, name="second")
    assert a.port != b.port
    assert a.log_dir != b.log_dir and a.log_dir.is_dir()
    assert b.name == "second"


def test_unique_topic(unique_topic, request):
    assert unique_topic.startswith("test_unique_topic-")
    assert len(unique_topic) < 249
