"""Issue 18, item 3 over real sockets: topic creation that fails midway
(ENOSPC/EMFILE) is rolled back and answered with an error code; a kill -9
during a big CreateTopics leaves a broker that restarts with the topic
whole or creatable again; a broker allowed fewer file descriptors than it
has segment files keeps serving every partition, and refuses connections
it has no descriptor for instead of failing."""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import trio
from brokerproc import BrokerProcess
from clientlib import consume_confluent, create_topic, expected_records, produce_confluent
from rawclient import RawClient

import pykbroker
from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch
from pykbroker.storage import manager as manager_mod
from pykbroker.storage.log import PartitionLog

# record timestamps: recent ones (older than log.retention.ms, 7 days, are
# deleted by the broker's first retention check, 30 s after it starts)
BASE_TS = int(time.time() * 1000)


def limited_command(nofile: int) -> list[str]:
    """``python -m pykbroker`` with RLIMIT_NOFILE set to ``nofile``."""
    code = ("import resource, runpy; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); "
            "runpy.run_module('pykbroker', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", code]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def metadata(bootstrap: str, topics: list[str] | None = None) -> dict:
    with RawClient(bootstrap) as c:
        body = {"topics": None if topics is None else [{"name": t} for t in topics],
                "allow_auto_topic_creation": False}
        return c.call(3, 12, body)


def no_traceback(b: BrokerProcess) -> None:
    assert "Traceback" not in b.log, b.log_tail(80)


# --- fd limits ------------------------------------------------------------------------------


def test_more_segment_files_than_the_fd_limit(broker_factory, tmp_path: Path) -> None:
    nofile = 256
    b = broker_factory(name="fdlimited", command=limited_command(nofile))
    parts = 40
    create_topic(b.bootstrap, "many", parts, {"internal.segment.bytes": "1024"})
    recs = expected_records("many", 2400, parts, base_ts=BASE_TS)
    acks = produce_confluent(b.bootstrap, "many", recs, extra={"linger.ms": 0, "batch.size": 600})
    assert acks == [(r.partition, r.offset) for r in recs]
    segment_files = sum(1 for d in Path(b.log_dir).glob("many-*") for f in d.iterdir()
                        if f.suffix in (".log", ".index", ".timeindex"))
    assert segment_files > 2 * nofile, segment_files

    def check() -> None:
        got = consume_confluent(b.bootstrap, "many", {p: 0 for p in range(parts)}, {p: 60 for p in range(parts)})
        for p in range(parts):
            want = [r for r in recs if r.partition == p]
            assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got[p]] == \
                [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in want], p
        assert open_fds(b.pid) < nofile

    check()
    no_traceback(b)
    b.restart()  # clean shutdown, then a start that opens every partition under the same limit
    check()
    no_traceback(b)


def test_out_of_fds_refuses_new_connections_and_keeps_serving(broker_factory) -> None:
    nofile = 128
    b = broker_factory(name="fdstarved", command=limited_command(nofile))
    create_topic(b.bootstrap, "t", 2)
    produce_confluent(b.bootstrap, "t", expected_records("t", 10, 2, base_ts=BASE_TS))
    kept = RawClient(b.bootstrap)
    clients: list[RawClient] = []
    try:
        for _ in range(nofile + 20):
            clients.append(RawClient(b.bootstrap, timeout=5))
        refused = 0
        for c in clients:  # the ones beyond the limit are closed at once, the others served
            try:
                c.call(3, 12, {"topics": None, "allow_auto_topic_creation": False})
            except Exception:
                refused += 1
        assert refused >= 10
        assert kept.call(3, 12, {"topics": [{"name": "t"}], "allow_auto_topic_creation": False})["topics"]
        # a creation while short of descriptors is refused with an error code
        with RawClient(b.bootstrap) as extra:  # noqa: F841 - may be refused itself
            pass
        resp = kept.call(19, 7, {"topics": [{"name": "x", "num_partitions": 3, "replication_factor": 1,
                                              "assignments": [], "configs": []}],
                                 "timeout_ms": 10000, "validate_only": False})
        assert resp["topics"][0]["error_code"] == errors.KAFKA_STORAGE_ERROR
        assert "file descriptors" in resp["topics"][0]["error_message"]
    finally:
        for c in clients:
            c.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # descriptors back: served again
        try:
            assert metadata(b.bootstrap)["brokers"]
            break
        except Exception:
            time.sleep(0.2)
    else:
        raise AssertionError(b.log_tail(40))
    got = consume_confluent(b.bootstrap, "t", {0: 0, 1: 0}, {0: 5, 1: 5})
    assert [len(got[0]), len(got[1])] == [5, 5]
    kept.close()
    assert "refusing new connections: out of file descriptors" in b.log
    no_traceback(b)


# --- big creations leave the event loop free -------------------------------------------------------


def _produce_raw(c: RawClient, topic: str, partition: int, values: list[bytes]) -> dict:
    batch = build_batch([(None, v, (), BASE_TS + i) for i, v in enumerate(values)])
    r = c.call(0, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 30000,
                      "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    return r["responses"][0]["partition_responses"][0]


def _while_creating(b: BrokerProcess, request: dict, api_key: int, version: int, first: Path, last: Path,
                    during: list) -> tuple[dict, int, int, float]:
    """Send ``request`` (a CreateTopics or CreatePartitions) from a thread; once
    the broker made its first partition directory, do Metadata + Produce round
    trips on a second connection until the answer comes. Each ``during``
    callable is run once, while the last partition directory does not exist
    yet (the creation cannot have completed: the metadata is written last).
    Returns (the answer, round trips answered before the last partition
    directory existed, round trips in all, the worst round trip in seconds)."""
    out: dict = {}
    done = threading.Event()

    def create() -> None:
        try:
            with RawClient(b.bootstrap, timeout=600) as c:
                out["resp"] = c.call(api_key, version, request)
        except BaseException as e:  # reported below
            out["error"] = e
        finally:
            done.set()

    t = threading.Thread(target=create, daemon=True)
    t.start()
    deadline = time.monotonic() + 120
    while not first.exists() and not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.002)
    assert first.exists(), (out, b.log_tail(40))
    answered_during = rounds = start = 0
    worst = 0.0
    with RawClient(b.bootstrap, timeout=600) as side:
        for check in during:
            assert not last.exists(), "the creation ended before the checks could run"
            check(side)
        while not done.is_set():
            t0 = time.monotonic()
            md = side.call(3, 12, {"topics": [{"name": "side"}], "allow_auto_topic_creation": False})
            assert md["topics"][0]["error_code"] == 0, md
            r = _produce_raw(side, "side", 0, [b"v%d" % rounds])
            assert r["error_code"] == 0, r
            if rounds == 0:
                start = r["base_offset"]
            assert r["base_offset"] == start + rounds, r  # every produce appended, in order
            worst = max(worst, time.monotonic() - t0)
            rounds += 1
            if not last.exists():  # answered while the creation was still under way
                answered_during += 1
    t.join(60)
    assert "error" not in out, out.get("error")
    return out["resp"], answered_during, rounds, worst


def test_big_creations_leave_other_clients_served(broker_factory) -> None:
    """Issue 18: a CreateTopics of 10,000 partitions and a CreatePartitions
    adding 4,000 create their partitions' files in worker threads; another
    client's Metadata and Produce round trips are answered meanwhile, the
    topic is unknown until it is complete (a second CreateTopics of it gets
    TOPIC_ALREADY_EXISTS, a DeleteTopics or Produce UNKNOWN_TOPIC_OR_PARTITION),
    and everything works and survives a restart."""
    b = broker_factory(name="bigcreate", ready_timeout=300)
    log_dir = Path(b.log_dir)
    n, grow_to = 10_000, 4_001
    with RawClient(b.bootstrap, timeout=60) as c:
        for name in ("side", "grow"):
            r = c.call(19, 7, {"topics": [{"name": name, "num_partitions": 1, "replication_factor": 1,
                                           "assignments": [], "configs": []}],
                               "timeout_ms": 10000, "validate_only": False})
            assert r["topics"][0]["error_code"] == 0, r
        assert _produce_raw(c, "side", 0, [b"first"])["base_offset"] == 0

    def second_create(side: RawClient) -> None:
        r = side.call(19, 7, {"topics": [{"name": "big", "num_partitions": 3, "replication_factor": 1,
                                          "assignments": [], "configs": []}],
                              "timeout_ms": 10000, "validate_only": False})
        assert r["topics"][0]["error_code"] == errors.TOPIC_ALREADY_EXISTS, r
        assert _produce_raw(side, "side", 0, [b"check"])["error_code"] == 0

    def unknown_meanwhile(side: RawClient) -> None:
        md = side.call(3, 12, {"topics": [{"name": "big"}], "allow_auto_topic_creation": False})
        assert md["topics"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION, md
        md = side.call(3, 12, {"topics": [{"name": "big"}], "allow_auto_topic_creation": True})
        assert md["topics"][0]["error_code"] == errors.LEADER_NOT_AVAILABLE, md  # being created: not auto-created
        r = _produce_raw(side, "big", 0, [b"early"])
        assert r["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION, r
        d = side.call(20, 6, {"topics": [{"name": "big", "topic_id": b"\0" * 16}], "timeout_ms": 10000})
        assert d["responses"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION, d
        assert _produce_raw(side, "side", 0, [b"check"])["error_code"] == 0

    resp, during, rounds, worst = _while_creating(
        b, {"topics": [{"name": "big", "num_partitions": n, "replication_factor": 1, "assignments": [],
                        "configs": []}], "timeout_ms": 600_000, "validate_only": False}, 19, 7,
        log_dir / "big-0", log_dir / f"big-{n - 1}", [second_create, unknown_meanwhile])
    print(f"CreateTopics of {n}: {during} of {rounds} round trips answered during it, worst {worst:.3f} s")
    assert resp["topics"][0]["error_code"] == 0, resp
    assert resp["topics"][0]["num_partitions"] == n
    assert during >= 5, (during, rounds)

    def grow_meanwhile(side: RawClient) -> None:
        md = side.call(3, 12, {"topics": [{"name": "grow"}], "allow_auto_topic_creation": False})
        assert len(md["topics"][0]["partitions"]) == 1, md  # the new partitions are not there yet
        assert _produce_raw(side, "side", 0, [b"check"])["error_code"] == 0

    resp, during, rounds, worst = _while_creating(
        b, {"topics": [{"name": "grow", "count": grow_to, "assignments": None}], "timeout_ms": 600_000,
            "validate_only": False}, 37, 3, log_dir / "grow-1", log_dir / f"grow-{grow_to - 1}", [grow_meanwhile])
    print(f"CreatePartitions to {grow_to}: {during} of {rounds} round trips answered during it, worst {worst:.3f} s")
    assert resp["results"][0]["error_code"] == 0, resp
    assert during >= 5, (during, rounds)

    edges = [("big", 0), ("big", n - 1), ("grow", 0), ("grow", grow_to - 1)]
    with RawClient(b.bootstrap, timeout=60) as c:
        md = c.call(3, 12, {"topics": [{"name": "big"}, {"name": "grow"}], "allow_auto_topic_creation": False})
        assert [len(t["partitions"]) for t in md["topics"]] == [n, grow_to]
        for topic, p in edges:
            r = _produce_raw(c, topic, p, [f"{topic}-{p}-a".encode(), f"{topic}-{p}-b".encode()])
            assert (r["error_code"], r["base_offset"]) == (0, 0), (topic, p, r)

    def check() -> None:
        for topic, p in edges:
            got = consume_confluent(b.bootstrap, topic, {p: 0}, {p: 2})
            assert [(r.offset, r.value) for r in got[p]] == \
                [(0, f"{topic}-{p}-a".encode()), (1, f"{topic}-{p}-b".encode())], (topic, p)

    check()
    no_traceback(b)
    b.stop(timeout=300)  # a clean shutdown of 14,000 partitions
    b.restart()
    with RawClient(b.bootstrap, timeout=60) as c:
        md = c.call(3, 12, {"topics": [{"name": "big"}, {"name": "grow"}, {"name": "side"}],
                            "allow_auto_topic_creation": False})
        assert [len(t["partitions"]) for t in md["topics"]] == [n, grow_to, 1]
    check()
    no_traceback(b)


# --- kill -9 during a big creation -------------------------------------------------------------------


def test_kill_during_big_create_topics_then_restart(broker_factory) -> None:
    b = broker_factory(name="killed")
    n = 3000
    log_dir = Path(b.log_dir)

    def create() -> None:
        try:
            create_topic(b.bootstrap, "big", n)
        except Exception:
            pass  # the broker dies under it

    t = threading.Thread(target=create, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(1 for _ in log_dir.glob("big-*")) < 200:
        time.sleep(0.01)
    made = sum(1 for _ in log_dir.glob("big-*"))
    b.kill()
    t.join(30)
    assert 0 < made, "the creation never started"
    b.restart()
    md = metadata(b.bootstrap, ["big"])
    topic = md["topics"][0]
    print("after kill -9:", made, "dirs made, topic error", topic["error_code"])
    if topic["error_code"] == 0:  # it finished before the kill: whole
        assert len(topic["partitions"]) == n
    else:
        assert topic["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
        assert "interrupted by a crash" in b.log
        assert [p.name for p in log_dir.glob("big-*") if not p.name.endswith("-stray")] == []
        create_topic(b.bootstrap, "big", 50)  # creatable again
    recs = expected_records("big", 100, 50, base_ts=BASE_TS)
    produce_confluent(b.bootstrap, "big", recs)
    got = consume_confluent(b.bootstrap, "big", {49: 0}, {49: 2})
    assert [r.value for r in got[49]] == [r.value for r in recs if r.partition == 49]
    no_traceback(b)
    b.restart()
    assert len(metadata(b.bootstrap, ["big"])["topics"][0]["partitions"]) in (50, n)


# --- fault injection in the create path (an in-process broker, a real client) ----------------------------


def _fail_partition_open(monkeypatch: pytest.MonkeyPatch, k: int, err: int) -> None:
    calls = [0]
    real = PartitionLog.open

    def fake(path, *a, **kw):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == k:
            raise OSError(err, os.strerror(err))
        return real(path, *a, **kw)

    monkeypatch.setattr(manager_mod.PartitionLog, "open", staticmethod(fake))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EMFILE])
async def test_create_failing_midway_answers_an_error_and_rolls_back(tmp_path: Path, monkeypatch, err) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    async with pykbroker.Broker({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path),
                                 "node.id": "1"}) as broker:
        host, port = broker.bound[0]
        bootstrap = f"{host}:{port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})

        def create(name: str, parts: int) -> int:
            fs = admin.create_topics([NewTopic(name, num_partitions=parts, replication_factor=1)])
            try:
                fs[name].result(timeout=30)
                return 0
            except KafkaException as e:
                return int(e.args[0].code())

        def grow(name: str, total: int) -> int:
            fs = admin.create_partitions([NewPartitions(name, total)])
            try:
                fs[name].result(timeout=30)
                return 0
            except KafkaException as e:
                return int(e.args[0].code())

        _fail_partition_open(monkeypatch, 4, err)
        assert await trio.to_thread.run_sync(create, "t", 8) == errors.KAFKA_STORAGE_ERROR
        assert "t" not in broker.state.topics
        assert sorted(p.name for p in tmp_path.glob("t-*")) == []
        monkeypatch.undo()
        assert await trio.to_thread.run_sync(create, "t", 8) == 0
        _fail_partition_open(monkeypatch, 2, err)
        assert await trio.to_thread.run_sync(grow, "t", 12) == errors.KAFKA_STORAGE_ERROR
        assert len(broker.state.topics["t"].partitions) == 8
        assert sorted(int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("t-*")) == list(range(8))
        monkeypatch.undo()
        assert await trio.to_thread.run_sync(grow, "t", 12) == 0
        # auto-creation failing: answered as an unknown topic, no traceback, still creatable
        _fail_partition_open(monkeypatch, 1, err)
        with RawClient(bootstrap) as c:
            md = await trio.to_thread.run_sync(lambda: c.call(3, 12, {
                "topics": [{"name": "auto"}], "allow_auto_topic_creation": True}))
        assert md["topics"][0]["error_code"] != 0
        assert "auto" not in broker.state.topics
        monkeypatch.undo()
        recs = expected_records("t", 24, 12, base_ts=BASE_TS)
        await trio.to_thread.run_sync(lambda: produce_confluent(bootstrap, "t", recs))
        got = await trio.to_thread.run_sync(lambda: consume_confluent(
            bootstrap, "t", {p: 0 for p in range(12)}, {p: 2 for p in range(12)}))
        assert {p: [r.value for r in got[p]] for p in got} == \
            {p: [r.value for r in recs if r.partition == p] for p in range(12)}


async def test_a_growing_topic_serialises_growth_and_may_be_deleted(tmp_path: Path) -> None:
    """CreatePartitions of a topic while another one grows it waits for it
    (then INVALID_PARTITIONS, as Kafka's controller answers the second of
    two); DeleteTopics while it grows deletes the topic and the growth is
    rolled back (UNKNOWN_TOPIC_OR_PARTITION), leaving no directory."""
    async with pykbroker.Broker({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path),
                                 "node.id": "1"}) as broker:
        host, port = broker.bound[0]
        bootstrap = f"{host}:{port}"

        def call(api_key: int, version: int, body: dict) -> dict:
            with RawClient(bootstrap, timeout=300) as c:
                return c.call(api_key, version, body)

        def grow(total: int) -> dict:
            return call(37, 3, {"topics": [{"name": "g", "count": total, "assignments": None}],
                                "timeout_ms": 300_000, "validate_only": False})["results"][0]

        async def until_exists(path: Path) -> None:
            with trio.fail_after(120):
                while not path.exists():
                    await trio.sleep(0.002)

        r = await trio.to_thread.run_sync(call, 19, 7, {
            "topics": [{"name": "g", "num_partitions": 1, "replication_factor": 1, "assignments": [],
                        "configs": []}], "timeout_ms": 10000, "validate_only": False})
        assert r["topics"][0]["error_code"] == 0, r
        n = 2001
        got: dict[str, dict] = {}

        async def run(key: str, total: int) -> None:
            got[key] = await trio.to_thread.run_sync(grow, total)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "first", n)
            await until_exists(tmp_path / "g-1")
            nursery.start_soon(run, "second", n)
        assert got["first"]["error_code"] == 0, got
        assert (got["second"]["error_code"], got["second"]["error_message"]) == \
            (errors.INVALID_PARTITIONS, f"Topic already has {n} partition(s)."), got
        assert len(broker.state.topics["g"].partitions) == n

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "deleted", 2 * n)
            await until_exists(tmp_path / f"g-{n}")
            d = await trio.to_thread.run_sync(call, 20, 6, {
                "topics": [{"name": "g", "topic_id": b"\0" * 16}], "timeout_ms": 10000})
            assert d["responses"][0]["error_code"] == 0, d
            assert not (tmp_path / f"g-{2 * n - 1}").exists(), "the growth ended before the delete"
        assert got["deleted"]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION, got
        assert "g" not in broker.state.topics
        left = [p.name for p in tmp_path.iterdir() if p.name.startswith("g-") and not p.name.endswith("-delete")]
        assert left == []
        r = await trio.to_thread.run_sync(call, 19, 7, {
            "topics": [{"name": "g", "num_partitions": 2, "replication_factor": 1, "assignments": [],
                        "configs": []}], "timeout_ms": 10000, "validate_only": False})
        assert r["topics"][0]["error_code"] == 0, r  # creatable again
