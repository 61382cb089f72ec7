"""The in-memory storage engine behaves like the segment log.

Every operation the broker uses (append, read, offset_for_timestamp,
max_timestamp, epoch_for_offset, truncate_to, advance_log_start_offset,
flush policy, close/delete) is run on a MemoryPartitionLog and on a
PartitionLog side by side, and the results compared: same offsets, same
bytes returned, same lookups. A broker with pykbroker.storage=memory writes
nothing to disk.
"""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykbroker.protocol.records import build_batch, decode_records, iter_batches, validate_batches
from pykbroker.storage.log import OffsetOutOfRange, PartitionLog
from pykbroker.storage.log_config import LogConfig
from pykbroker.storage.memory import MemoryChunk, MemoryLogManager, MemoryPartitionLog

import pytest


def batch(n: int, ts: list[int], tag: bytes = b"") -> bytearray:
    return bytearray(build_batch([(b"k%d" % i, tag + b"v%d" % i, [("h", b"x")], ts[i]) for i in range(n)]))


def do_append(log, n, ts, epoch=0, tag=b"", now=10_000):
    data = batch(n, ts, tag)
    return log.append(data, validate_batches(bytes(data), max_batch_bytes=None), leader_epoch=epoch, now_ms=now)


def read_bytes(res) -> bytes:
    return res.read_bytes()


def pair(tmp_path, config=None):
    config = config or LogConfig()
    disk = PartitionLog.open(tmp_path / "t-0", config)
    mem = MemoryPartitionLog("t", 0, config)
    return disk, mem


def test_basic_append_read(tmp_path):
    disk, mem = pair(tmp_path)
    for log in (disk, mem):
        r1 = do_append(log, 3, [100, 200, 300], epoch=1)
        r2 = do_append(log, 2, [250, 400], epoch=2)
        assert (r1.base_offset, r1.last_offset, r2.base_offset, r2.last_offset) == (0, 2, 3, 4)
        assert r2.records_count == 2 and r2.max_timestamp == 400
        assert log.log_end_offset == 5
    mres = mem.read(0, 1 << 20)
    assert all(isinstance(c, MemoryChunk) for c in mres.chunks)
    assert read_bytes(mres) == read_bytes(disk.read(0, 1 << 20))
    assert mem.size == disk.size
    with pytest.raises(OffsetOutOfRange):
        mem.read(6, 100)
    assert mem.read(5, 100).size == 0
    # records decode with absolute offsets and the patched leader epoch
    data = read_bytes(mres)
    hs = list(iter_batches(data))
    assert [h.partition_leader_epoch for h in hs] == [1, 2]
    assert [r.offset for h in hs for r in decode_records(data, h.position)] == [0, 1, 2, 3, 4]
    disk.close()


OPS = st.lists(
    st.tuples(st.integers(1, 5), st.lists(st.integers(0, 1000), min_size=5, max_size=5), st.integers(0, 3)),
    min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, probes=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3000), st.booleans()), max_size=8),
       stamps=st.lists(st.integers(-1, 1100), max_size=6))
def test_same_answers_as_the_segment_log(tmp_path_factory, ops, probes, stamps):
    disk, mem = pair(tmp_path_factory.mktemp("parity"))
    try:
        epoch = 0
        for n, ts, bump in ops:
            epoch += bump
            a = do_append(disk, n, ts, epoch)
            b = do_append(mem, n, ts, epoch)
            assert (a.base_offset, a.last_offset, a.max_timestamp) == (b.base_offset, b.last_offset, b.max_timestamp)
        disk.high_watermark = disk.log_end_offset
        mem.high_watermark = mem.log_end_offset
        assert mem.log_end_offset == disk.log_end_offset and mem.leader_epoch == disk.leader_epoch
        for off, max_bytes, min_one in probes:
            if off > disk.log_end_offset:
                with pytest.raises(OffsetOutOfRange):
                    mem.read(off, max_bytes)
                continue
            d = disk.read(off, max_bytes, min_one_message=min_one)
            m = mem.read(off, max_bytes, min_one_message=min_one)
            assert (m.size, m.first_offset) == (d.size, d.first_offset)
            assert read_bytes(m) == read_bytes(d)
            assert mem.epoch_for_offset(off) == disk.epoch_for_offset(off)
        for t in stamps:
            assert mem.offset_for_timestamp(t) == disk.offset_for_timestamp(t)
        assert mem.max_timestamp() == disk.max_timestamp()
        for e in range(-1, epoch + 2):
            assert mem.end_offset_for_epoch(e) == disk.end_offset_for_epoch(e)
    finally:
        disk.close()


def test_truncate_and_log_start(tmp_path):
    disk, mem = pair(tmp_path)
    for log in (disk, mem):
        for i in range(5):
            do_append(log, 2, [i * 10, i * 10 + 1], epoch=i)
        log.high_watermark = log.log_end_offset
    for log in (disk, mem):
        assert log.truncate_to(5) is True  # inside batch 4-5: the whole batch goes
        assert log.truncate_to(99) is False
    assert mem.log_end_offset == disk.log_end_offset == 4
    assert mem.epoch_entries == disk.epoch_entries
    assert read_bytes(mem.read(0, 1 << 20)) == read_bytes(disk.read(0, 1 << 20))
    for log in (disk, mem):
        assert log.advance_log_start_offset(3) is True
    assert mem.log_start_offset == disk.log_start_offset == 3
    with pytest.raises(OffsetOutOfRange):
        mem.read(1, 100)
    assert read_bytes(mem.read(3, 1 << 20)) == read_bytes(disk.read(3, 1 << 20))
    with pytest.raises(OffsetOutOfRange):
        mem.advance_log_start_offset(mem.high_watermark + 1)
    mem.truncate_fully_and_start_at(42)
    assert (mem.log_start_offset, mem.log_end_offset, mem.high_watermark, mem.size) == (42, 42, 42, 0)
    assert do_append(mem, 1, [5]).base_offset == 42
    disk.close()


def test_flush_policy_and_lifecycle():
    mem = MemoryPartitionLog("t", 0, LogConfig(flush_messages=1))
    do_append(mem, 1, [1])
    assert mem.needs_flush(10**13) is False  # nothing to fsync, ever
    mem.flush()
    mem.close()
    assert mem.closed
    with pytest.raises(ValueError):
        mem.read(0, 10)


def test_segment_bytes_bounds_an_append():
    mem = MemoryPartitionLog("t", 0, LogConfig(segment_bytes=100))
    from pykbroker.protocol.records import InvalidRecords

    with pytest.raises(InvalidRecords) as ei:
        do_append(mem, 5, [1, 2, 3, 4, 5], tag=b"x" * 50)
    assert ei.value.error_code == 18  # RECORD_LIST_TOO_LARGE


def test_manager_topics_in_memory(tmp_path):
    logs_dir = tmp_path / "never-created"
    m = MemoryLogManager([logs_dir], LogConfig(), node_id=0)
    m.load()
    assert m.cluster_id
    meta = m.create_topic("a", 3, {"retention.ms": "1000"})
    assert [type(p).__name__ for p in m.partitions("a")] == ["MemoryPartitionLog"] * 3
    assert m.get("a", 2).config.retention_ms == 1000
    m.create_partitions("a", 5)
    assert len(m.partitions("a")) == 5
    assert m.topic_by_id(meta.topic_id).name == "a"
    m.delete_topic("a")
    assert m.get("a", 0) is None and "a" not in m.topics
    m.checkpoint()
    m.close()
    assert not logs_dir.exists()


async def test_broker_with_memory_storage_writes_nothing(tmp_path):
    from pykbroker import Broker
    from rawclient import RawClient

    data_dir = tmp_path / "data"
    async with Broker({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(data_dir),
                       "pykbroker.storage": "memory"}) as b:
        def produce_and_fetch() -> tuple[dict, dict]:
            with RawClient(b.bootstrap) as c:
                recs = bytes(batch(2, [1, 2]))
                p = c.call(0, 9, {"acks": 1, "timeout_ms": 1000, "topic_data": [
                    {"name": "mem", "partition_data": [{"index": 0, "records": recs}]}]})
                f = c.call(1, 12, {"max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "topics": [
                    {"topic": "mem", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                    "partition_max_bytes": 1 << 20}]}]})
                return p, f

        p, f = await trio.to_thread.run_sync(produce_and_fetch)
        assert p["responses"][0]["partition_responses"][0]["error_code"] == 0
        part = f["responses"][0]["partitions"][0]
        assert part["error_code"] == 0 and part["high_watermark"] == 2
        recs = part["records"]
        assert [r.value for h in iter_batches(recs) for r in decode_records(recs, h.position)] == [b"v0", b"v1"]
    assert not data_dir.exists()
