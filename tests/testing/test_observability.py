"""Embedding, start-up time, trace mode, structured logs, the ctl client.

What is proved here:
- ``async with pykbroker.Broker({...})`` under trio serves clients, with
  fault rules and the control endpoint on the broker object;
- a BrokerThread is ready in under 20 ms (median of warm starts, after the
  one-off imports) and stops cleanly; bad properties fail in the caller;
- trace mode records every request and response decoded, bounded by
  ``pykbroker.trace.max.chars``, record data summarised; with
  ``--log-format json`` every log line of the CLI is a JSON object and trace
  lines carry the decoded event;
- ``pykbroker.metrics.enable=false`` stops the counting;
- the ctl client's argument handling (in-process).
"""

from __future__ import annotations

import json
import statistics
import time

import pytest
import trio

from pykbroker.config import ConfigError
from pykbroker.testing import BrokerThread, unique_topic_name
from pykbroker.testing.embedded import preload
from rawclient import RawClient
from testing_clients import kafka_python_roundtrip


async def test_trio_embedding_with_faults_and_control():
    import pykbroker

    async with pykbroker.Broker({"listeners": "PLAINTEXT://127.0.0.1:0", "pykbroker.storage": "memory",
                                 "pykbroker.control.listener": "127.0.0.1:0"}) as b:
        assert b.bootstrap.startswith("127.0.0.1:") and b.control_url.startswith("http://127.0.0.1:")
        b.faults.fail("Metadata", "BROKER_NOT_AVAILABLE", count=1)

        def calls() -> tuple[dict, dict, str]:
            import urllib.request

            with RawClient(b.bootstrap) as c:
                first = c.call(3, 12, {"topics": [{"name": "x"}], "allow_auto_topic_creation": False})
                second = c.call(3, 12, {"topics": [{"name": "x"}], "allow_auto_topic_creation": False})
            with urllib.request.urlopen(b.control_url + "/faults", timeout=10) as r:
                return first, second, r.read().decode()

        first, second, listed = await trio.to_thread.run_sync(calls)
        assert first["topics"][0]["error_code"] == 8 and second["topics"][0]["error_code"] == 3
        assert json.loads(listed)[0]["hits"] == 1


def test_ready_in_under_20ms():
    preload()  # the one-off imports (trio, handlers, specs): paid once per process
    times = []
    for _ in range(7):
        b = BrokerThread()
        b.start()
        times.append(b.ready_ms)
        assert b.running
        b.stop()
        assert not b.running
    print(f"BrokerThread ready: {sorted(round(t, 2) for t in times)} ms")
    assert statistics.median(times) < 20


def test_handle_errors_and_options(tmp_path):
    with pytest.raises(ConfigError):
        BrokerThread({"num.partitions": 0})
    with pytest.raises(ConfigError):
        BrokerThread(as_version="1.0")
    b = BrokerThread()
    with pytest.raises(RuntimeError):
        _ = b.bootstrap
    with BrokerThread(storage="disk") as disk:  # a temporary log dir, removed at stop
        logdir = disk.config["log.dirs"]
        disk.create_topic("d")
        assert kafka_python_roundtrip(disk.bootstrap, "d", b"on disk") == [b"on disk"]
        assert (tmp_path / "x").parent.exists() and __import__("os").path.isdir(logdir)
    assert not __import__("os").path.exists(logdir)
    assert unique_topic_name("my test/1").startswith("my-test-1-") and unique_topic_name() != unique_topic_name()


def test_trace_in_process_is_bounded():
    with BrokerThread(trace=True, config={"pykbroker.trace.max.chars": 300}) as b:
        topic = b.create_topic("traced")
        assert kafka_python_roundtrip(b.bootstrap, topic, b"x" * 5000) == [b"x" * 5000]
        events = b.trace()
    produce_req = next(e for e in events if e["dir"] == "request" and e["api"] == "Produce")
    assert "<records" in produce_req["body"] and "xxxx" not in produce_req["body"]
    assert all(len(e["body"]) <= 300 for e in events)
    by_corr = {(e["peer"], e["correlation_id"]): e for e in events if e["dir"] == "request"}
    for e in events:
        if e["dir"] == "response":
            req = by_corr[(e["peer"], e["correlation_id"])]
            assert (req["api"], req["version"]) == (e["api"], e["version"]) and e["ms"] >= 0


def test_cli_json_logs_and_trace(broker_factory):
    b = broker_factory({"pykbroker.storage": "memory", "pykbroker.trace.max.chars": 200},
                       extra_args=["--trace", "--log-format", "json"])
    assert kafka_python_roundtrip(b.bootstrap, "cli-trace", b"hello", client_id="tracer") == [b"hello"]
    time.sleep(0.2)  # let the last log lines reach the pipe reader
    lines = [ln for ln in b.log.splitlines()
             if ln.strip() and not ln.startswith(("pykbroker ready", "[brokerproc]"))]
    docs = [json.loads(ln) for ln in lines]  # every log line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)
    trace = [d["trace"] for d in docs if d["logger"] == "pykbroker.trace"]
    mine = [t for t in trace if t["client_id"] == "tracer"]
    assert {(t["dir"], t["api"]) for t in mine} >= {("request", "Produce"), ("response", "Produce"),
                                                    ("request", "Fetch"), ("response", "Fetch")}
    assert all(len(t["body"]) <= 200 for t in trace)


def test_metrics_can_be_turned_off():
    with BrokerThread({"pykbroker.metrics.enable": False}) as b:
        with RawClient(b.bootstrap) as c:
            c.call(18, 2, {})
        assert b.metrics()["apis"] == {}
    with BrokerThread() as b:
        with RawClient(b.bootstrap) as c:
            c.call(18, 2, {})
        m = b.metrics()
        assert m["apis"]["ApiVersions"]["requests"] == 1 and m["bytes_in"] > 0 and m["bytes_out"] > 0


def test_ctl_arguments_in_process(capsys):
    from pykbroker.testing import ctl

    with BrokerThread(control=True) as b:
        assert ctl.main(["--control", b.control_url, "faults", "add", "pause-fetch", "--topic", "t",
                         "--partition", "1"]) == 0
        rule = json.loads(capsys.readouterr().out)
        assert (rule["action"], rule["topic"], rule["partition"], rule["api"]) == ("pause_fetch", "t", 1, "Fetch")
        url_no_scheme = b.control_url.removeprefix("http://")
        assert ctl.main(["--control", url_no_scheme, "faults", "remove", str(rule["id"])]) == 0
        assert ctl.main(["--control", b.control_url, "faults", "remove", "99"]) == 1
        assert "no rule 99" in capsys.readouterr().err
        assert ctl.main(["--control", b.control_url, "metrics"]) == 0
        assert "# TYPE pykbroker_requests_total counter" in capsys.readouterr().out
        assert ctl.main(["--control", b.control_url, "group", "g"]) == 0
        assert json.loads(capsys.readouterr().out)["group_id"] == "g"
        with pytest.raises(SystemExit) as ei:
            ctl.main(["--control", b.control_url, "faults", "add"])
        assert ei.value.code == 2
