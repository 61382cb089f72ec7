"""Partition logs: appends, reads, timestamp lookups, truncation, the log
start offset, follower appends — run against both storage engines
(``engine`` in ENGINES: the segment log and the memory engine implement one
interface, api.PartitionStore). Tests about files (rolling segments,
indexes, recovery of torn tails, reopening, checkpoints, fsync) are
disk-only and grouped under "disk only" below."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_helpers import (
    ENGINES,
    append,
    make_batch,
    make_log,
    open_log,
    records_of,
    scan_batches,
    scan_records,
    stored_segments,
)

from pykbroker.protocol.records import (
    RECORD_LIST_TOO_LARGE,
    InvalidRecords,
    decode_records,
    iter_batches,
    validate_batches,
)
from pykbroker.storage.log import OffsetOutOfRange, parse_partition_dir_name
from pykbroker.storage.log_config import LogConfig
from pykbroker.storage.segment import LogSegment

SMALL = LogConfig(segment_bytes=1500, index_interval_bytes=200)


def _read_offsets(res) -> list[int]:
    return [r.offset for r in records_of(res.read_bytes())]


def test_dir_names():
    assert parse_partition_dir_name("my-topic-12") == ("my-topic", 12)
    assert parse_partition_dir_name("a.b_c-0") == ("a.b_c", 0)
    assert parse_partition_dir_name("t-0.3f2a-delete") is None
    assert parse_partition_dir_name("t-01") is None
    assert parse_partition_dir_name("topic") is None


@pytest.mark.parametrize("engine", ENGINES)
def test_append_assigns_consecutive_offsets_and_patches_batches(tmp_path, engine):
    log = make_log(engine, tmp_path)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (0, 0, 0)
    r1 = append(log, 3, epoch=5)
    r2 = append(log, 2, epoch=5)
    assert (r1.base_offset, r1.last_offset, r2.base_offset, r2.last_offset) == (0, 2, 3, 4)
    assert r1.log_append_time == -1 and r1.log_start_offset == 0
    assert log.log_end_offset == 5
    hs = [h for _, h in scan_batches(log)]
    assert [(h.base_offset, h.last_offset, h.partition_leader_epoch) for h in hs] == [(0, 2, 5), (3, 4, 5)]
    validate_batches(stored_segments(log)[0][1], max_batch_bytes=None, client=False)  # CRCs valid
    assert [r.offset for r in scan_records(log)] == [0, 1, 2, 3, 4]
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_log_append_time_topic(tmp_path, engine):
    log = make_log(engine, tmp_path, LogConfig(message_timestamp_type="LogAppendTime"))
    res = append(log, 2, ts=5, now_ms=123_456)
    assert res.log_append_time == 123_456
    [(_, h)] = scan_batches(log)
    assert (h.timestamp_type, h.max_timestamp) == (1, 123_456)
    assert [r.timestamp for r in scan_records(log)] == [123_456, 123_456]
    assert log.offset_for_timestamp(100_000) == (0, 123_456)
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_larger_than_segment_is_rejected_like_kafka(tmp_path, engine):
    log = make_log(engine, tmp_path, LogConfig(segment_bytes=300))
    append(log, 1)
    with pytest.raises(InvalidRecords) as ei:
        append(log, 5, value_size=100)
    assert ei.value.error_code == RECORD_LIST_TOO_LARGE
    assert log.log_end_offset == 1 and len(log.segment_bases()) == 1
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_read_whole_batches_and_limits(tmp_path, engine):
    log = make_log(engine, tmp_path, SMALL)
    size = len(make_batch(3, value_size=40, tag=b"00:"))
    for i in range(30):
        append(log, 3, value_size=40, tag=b"%02d:" % i)
    if engine == "disk":
        assert len(log.segments) > 3
    # the batch containing the offset is returned whole
    res = log.read(4, 10 * size)
    assert res.first_offset == 3 and res.size == 10 * size
    assert _read_offsets(res) == list(range(3, 33))
    assert len(res.chunks) >= 2  # spans segments
    assert res.read_bytes() == b"".join(c.read_bytes() for c in res.chunks)
    # max_bytes cuts at a batch boundary
    res = log.read(0, 2 * size + size // 2)
    assert _read_offsets(res) == list(range(6))
    # min_one_message returns the first batch even when it is larger
    res = log.read(7, 10, min_one_message=True)
    assert _read_offsets(res) == [6, 7, 8]
    assert log.read(7, 10, min_one_message=False).size == 0
    # never past max_offset (high watermark): batches with base offset >= it are excluded
    res = log.read(0, 10**6, max_offset=13)
    assert _read_offsets(res)[-1] == 14  # batch 12..14 starts below 13
    res = log.read(0, 10**6, max_offset=12)
    assert _read_offsets(res) == list(range(12))
    assert log.read(12, 10**6, max_offset=12).size == 0
    # everything, across all segments
    res = log.read(0, 10**6)
    assert _read_offsets(res) == list(range(90))
    vals = [r.value.split(b"|")[0] for r in records_of(res.read_bytes())]
    assert vals == [b"%02d:%d" % (i, j) for i in range(30) for j in range(3)]
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_read_offset_out_of_range(tmp_path, engine):
    log = make_log(engine, tmp_path)
    for _ in range(3):
        append(log, 2)
    with pytest.raises(OffsetOutOfRange):
        log.read(7, 100)
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 100)
    assert log.read(6, 100).size == 0
    log.high_watermark = 6
    log.advance_log_start_offset(3)
    with pytest.raises(OffsetOutOfRange):
        log.read(2, 100)
    assert _read_offsets(log.read(3, 10**6)) == [2, 3, 4, 5]  # the batch holding 3 starts at 2
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_offset_for_timestamp_across_segments(tmp_path, engine):
    log = make_log(engine, tmp_path, LogConfig(segment_bytes=400, index_interval_bytes=50))
    stamps = [100, 90, 300, 250, 200, 500, 400, 450, 700, 650]
    for _i, ts in enumerate(stamps):
        append(log, 2, value_size=30, ts=[ts, ts + 5])
    if engine == "disk":
        assert len(log.segments) >= 3
    # first record in offset order whose timestamp is >= target
    assert log.offset_for_timestamp(0) == (0, 100)
    assert log.offset_for_timestamp(101) == (1, 105)
    assert log.offset_for_timestamp(106) == (4, 300)
    assert log.offset_for_timestamp(460) == (10, 500)
    assert log.offset_for_timestamp(650) == (16, 700)
    assert log.offset_for_timestamp(701) == (17, 705)
    assert log.offset_for_timestamp(706) is None
    assert log.max_timestamp() == (705, 17)
    log.close()
    if engine == "memory":
        return
    log = open_log(tmp_path, LogConfig(segment_bytes=400, index_interval_bytes=50))  # unclean reopen
    assert log.offset_for_timestamp(460) == (10, 500)
    assert log.max_timestamp() == (705, 17)
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_truncate_to_the_log_end_drops_an_empty_epoch_there(tmp_path, engine):
    """Kafka's UnifiedLog.truncateTo: a replica that led (assigning an epoch
    at its log end) but appended nothing before another leader was elected
    drops that epoch entry when truncated to its log end, although no record
    goes. Kept, it made the follower send that epoch on every fetch and the
    leader answer with a diverging epoch: the replica never caught up again
    (issue 12, pause-long run: idle partitions' ISR stayed at the leader)."""
    log = make_log(engine, tmp_path, SMALL)
    for _ in range(4):
        append(log, 2, epoch=3)
    leo = log.log_end_offset
    log.assign_epoch(7, leo)  # led at epoch 7 from the log end, nothing appended
    log.assign_epoch(8, leo)
    assert log.leader_epoch == 8
    assert log.truncate_to(leo) is False  # no record removed
    assert log.log_end_offset == leo and log.leader_epoch == 3
    assert [(e.epoch, e.start_offset) for e in log.epoch_entries] == [(3, 0)]
    assert log.end_offset_for_epoch(3) == (3, leo)
    log.truncate_to(leo + 5)  # beyond the end: nothing changes
    assert [(e.epoch, e.start_offset) for e in log.epoch_entries] == [(3, 0)]
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_truncate_to_and_log_start(tmp_path, engine):
    disk = engine == "disk"
    log = make_log(engine, tmp_path, SMALL)
    for i in range(30):
        append(log, 2, epoch=i // 10)
    n_segments = len(log.segment_bases())
    log.high_watermark = log.log_end_offset
    log.truncate_to(33)  # inside batch 32..33
    assert log.log_end_offset == 32 and log.high_watermark == 32
    if disk:
        assert len(log.segment_bases()) < n_segments
    assert [e.epoch for e in log.epoch_entries] == [0, 1]
    assert append(log, 1, epoch=1).base_offset == 32
    log.high_watermark = log.log_end_offset
    assert log.advance_log_start_offset(25)
    assert log.log_start_offset == 25 and log.segment_bases()[0] <= 25
    assert [(e.epoch, e.start_offset) for e in log.epoch_entries] == [(1, 25)]
    log.truncate_fully_and_start_at(100)
    assert (log.log_start_offset, log.log_end_offset, len(log.segment_bases())) == (100, 100, 1)
    assert append(log, 1).base_offset == 100
    log.close()
    if not disk:
        return
    log = open_log(tmp_path, SMALL, log_start_offset=100)
    assert (log.log_start_offset, log.log_end_offset) == (100, 101)
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_flush_in_a_thread_during_appends(tmp_path, engine):
    log = make_log(engine, tmp_path, LogConfig(segment_bytes=3000))
    stop = threading.Event()
    errors = []

    def flusher():
        while not stop.is_set():
            try:
                log.flush()
            except Exception as e:  # pragma: no cover
                errors.append(e)

    t = threading.Thread(target=flusher)
    t.start()
    try:
        for i in range(300):
            append(log, 2, tag=b"%d" % i)
    finally:
        stop.set()
        t.join()
    assert not errors
    log.flush()
    assert log.recovery_point == 600
    assert [r.offset for r in records_of(log.read(0, 10**7).read_bytes())] == list(range(600))
    log.close()

@pytest.mark.parametrize("engine", ENGINES)
def test_follower_appends_the_leaders_bytes(tmp_path, engine):
    leader = make_log(engine, tmp_path, name="leader-0")
    follower = make_log(engine, tmp_path, name="follower-0")
    append(leader, 2, epoch=1)
    append(leader, 3, epoch=1)
    append(leader, 1, epoch=4)
    fetched = leader.read(0, 10**6).read_bytes()
    # a partial batch at the end (a fetch cut by max_bytes) is left out
    assert follower.append_as_follower(fetched[:-5]) == len(fetched) - len(make_batch(1))
    assert follower.log_end_offset == 5 and follower.leader_epoch == 1
    assert follower.append_as_follower(leader.read(5, 10**6).read_bytes()) > 0
    assert follower.read(0, 10**6).read_bytes() == fetched  # byte for byte the leader's
    assert follower.epoch_entries == leader.epoch_entries
    assert follower.end_offset_for_epoch(1) == leader.end_offset_for_epoch(1) == (1, 5)
    assert follower.append_as_follower(b"") == 0
    with pytest.raises(ValueError):  # does not start at the log end: truncate and fetch again
        follower.append_as_follower(fetched)
    # a follower that diverged truncates to the leader's epoch end and catches up
    append(follower, 2, epoch=5)
    assert follower.truncate_to(6) and follower.log_end_offset == 6
    assert follower.epoch_entries == leader.epoch_entries
    leader.close()
    follower.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_new_leader_assigns_its_epoch_at_the_log_end(tmp_path, engine):
    log = make_log(engine, tmp_path)
    append(log, 3, epoch=0)
    log.assign_epoch(2, log.log_end_offset)  # before any append in epoch 2
    assert log.leader_epoch == 2 and [(e.epoch, e.start_offset) for e in log.epoch_entries] == [(0, 0), (2, 3)]
    assert log.end_offset_for_epoch(0) == (0, 3) and log.end_offset_for_epoch(1) == (0, 3)
    assert append(log, 1, epoch=2).base_offset == 3
    assert log.epoch_for_offset(3) == 2
    log.truncate_fully_and_start_at(10)
    assert log.epoch_entries == [] and log.leader_epoch == -1
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_compacted_topic_needs_keys(tmp_path, engine):
    log = make_log(engine, tmp_path, LogConfig(cleanup_policy=("compact",)))
    keyless = make_batch(2, key=None)
    with pytest.raises(InvalidRecords) as ei:
        log.validate(bytes(keyless))
    assert ei.value.error_code == 87  # INVALID_RECORD
    assert log.validate(bytes(make_batch(2)))[0].records_count == 2
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_topic_compression_type_recompresses(tmp_path, engine):
    log = make_log(engine, tmp_path, LogConfig(compression_type="gzip"))
    res = append(log, 3, codec=0)
    assert (res.base_offset, res.last_offset) == (0, 2)
    [(_, h)] = scan_batches(log)
    assert h.compression == 1  # gzip
    assert [r.offset for r in scan_records(log)] == [0, 1, 2]
    log.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_log_start_offset_not_past_the_high_watermark(tmp_path, engine):
    log = make_log(engine, tmp_path)
    append(log, 4)
    log.high_watermark = 2
    with pytest.raises(OffsetOutOfRange) as ei:
        log.advance_log_start_offset(3)
    assert "larger than the high watermark 2" in str(ei.value)
    assert log.advance_log_start_offset(2) is True
    assert log.advance_log_start_offset(1) is False
    assert log.log_start_offset == 2
    log.close()


# --- disk only: segment files, indexes, recovery, reopening, checkpoints, fsync ---------------


def test_roll_by_size(tmp_path):
    log = open_log(tmp_path, LogConfig(segment_bytes=1000, index_interval_bytes=100))
    size = len(make_batch(2, value_size=100))
    per_segment = 1000 // size
    for i in range(3 * per_segment + 1):
        append(log, 2, value_size=100, ts=1000 + i)
    bases = [s.base_offset for s in log.segments]
    assert bases == [0, 2 * per_segment, 4 * per_segment, 6 * per_segment]
    assert all(s.size == per_segment * size for s in log.segments[:-1])
    assert sorted(p.name for p in log.dir.iterdir() if p.suffix == ".log") == [f"{b:020d}.log" for b in bases]
    # the rolled segments got their final time index entry
    for s in log.segments[:-1]:
        assert s.time_index()[-1] == (1000 + (s.next_offset - 2) // 2, s.next_offset - 1)
    assert log.flush_pending
    log.close()


def test_roll_by_time_uses_record_timestamps(tmp_path):
    log = open_log(tmp_path, LogConfig(segment_ms=1000))
    append(log, ts=10_000, now_ms=0)
    append(log, ts=10_900, now_ms=10**9)  # wall clock is irrelevant when timestamps exist
    assert len(log.segments) == 1
    append(log, ts=11_001, now_ms=0)  # 1001 ms after the first batch's timestamp
    assert [s.base_offset for s in log.segments] == [0, 2]
    append(log, ts=11_500, now_ms=0)
    append(log, ts=12_002, now_ms=0)
    assert [s.base_offset for s in log.segments] == [0, 2, 4]
    log.close()


def test_roll_by_time_without_timestamps_uses_segment_creation(tmp_path):
    log = open_log(tmp_path, LogConfig(segment_ms=1000), now_ms=5_000)
    append(log, ts=-1, now_ms=5_500)
    append(log, ts=-1, now_ms=6_000)
    assert len(log.segments) == 1
    append(log, ts=-1, now_ms=6_001)
    assert [s.base_offset for s in log.segments] == [0, 2]
    assert log.segments[1].created_ms == 6_001
    log.close()


def test_roll_when_index_full(tmp_path):
    config = LogConfig(index_interval_bytes=0, segment_index_bytes=8 * 3)
    log = open_log(tmp_path, config)
    for _ in range(10):
        append(log, ts=1000)
    # 3 offset-index entries (none for a segment's first batch): full after 4 batches
    assert all(s.index_entries <= 3 for s in log.segments)
    assert [s.base_offset for s in log.segments] == [0, 4, 8]
    log.close()
    log = open_log(tmp_path, config, name="growing-0")
    for i in range(10):
        append(log, ts=1000 + i)
    # growing timestamps: the time index (12-byte entries, 2 fit) fills first
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    log.close()


def test_read_cost_is_bounded(tmp_path, monkeypatch):
    log = open_log(tmp_path, LogConfig(segment_bytes=200_000, index_interval_bytes=512))
    for _ in range(3000):
        append(log, 1)
    counted = []
    orig = LogSegment.iter_headers

    def counting(self, start=0, end=None):
        for h in orig(self, start, end):
            counted.append(h)
            yield h

    monkeypatch.setattr(LogSegment, "iter_headers", counting)
    size = len(make_batch(1))
    for off in (0, 1234, 2999):
        counted.clear()
        res = log.read(off, 5 * size)
        assert _read_offsets(res) == list(range(off, min(off + 5, 3000)))
        assert len(counted) <= 4 * (512 // size + 2)
        counted.clear()
        assert log.offset_for_timestamp(1000) == (0, 1000)
        assert len(counted) < 30
    log.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    batches=st.lists(
        st.tuples(
            st.integers(1, 4),  # records
            st.integers(0, 120),  # value size
            st.lists(st.integers(0, 5000), min_size=4, max_size=4),  # timestamps
        ),
        min_size=1,
        max_size=60,
    ),
    interval=st.sampled_from([0, 64, 300]),
    segment_bytes=st.sampled_from([700, 2000, 10**6]),
    reads=st.lists(
        st.tuples(st.integers(0, 10**4), st.integers(0, 3000), st.integers(0, 10**4), st.booleans()), max_size=12
    ),
)
def test_index_lookups_agree_with_linear_scan(batches, interval, segment_bytes, reads):
    config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=interval)
    with tempfile.TemporaryDirectory() as d:
        log = open_log(Path(d), config)
        for n, size, stamps in batches:
            append(log, n, value_size=size, ts=stamps[:n])
        for reopen in (False, True):
            if reopen:
                log.close()
                log = open_log(Path(d), config, recover=False)
            all_batches = [h for _, h in scan_batches(log)]
            records = scan_records(log)
            leo = log.log_end_offset
            assert leo == len(records) == sum(n for n, _, _ in batches)
            for off in range(leo):
                want = next(h for h in all_batches if h.last_offset >= off)
                res = log.read(off, 1, min_one_message=True)
                got = next(iter_batches(res.read_bytes()))
                assert (got.base_offset, got.size, got.crc) == (want.base_offset, want.size, want.crc)
                assert res.size == want.size
            stamps_seen = sorted({r.timestamp for r in records})
            for ts in stamps_seen[:: max(1, len(stamps_seen) // 15)] + [stamps_seen[-1] + 1, -5]:
                want = next(((r.offset, r.timestamp) for r in records if r.timestamp >= ts), None)
                assert log.offset_for_timestamp(ts) == want
            for off, max_bytes, hw, min_one in reads:
                off %= leo + 1
                hw %= leo + 1
                want = _model_read(all_batches, off, max_bytes, hw, min_one)
                res = log.read(off, max_bytes, max_offset=hw, min_one_message=min_one)
                got = [(h.base_offset, h.crc) for h in iter_batches(res.read_bytes())]
                assert got == [(h.base_offset, h.crc) for h in want]
                assert res.size == sum(h.size for h in want)
                assert res.first_offset == (want[0].base_offset if want else -1)
            top = max(r.timestamp for r in records)
            first_top = next(r for r in records if r.timestamp == top)
            assert log.max_timestamp() == (top, first_top.offset)
            for seg in log.segments:
                for o, p in seg.offset_index():
                    h = seg.header_at(p)
                    assert h.last_offset == o
        log.close()


def _model_read(batches, offset, max_bytes, limit, min_one):
    """What read() must return, from a linear list of every batch."""
    if offset >= limit:
        return []
    out, total = [], 0
    for b in batches:
        if b.last_offset < offset:
            continue
        if b.base_offset >= limit:
            break
        if total + b.size > max_bytes:
            if min_one and not out:
                out.append(b)
            break
        out.append(b)
        total += b.size
    return out


def test_reopen_returns_same_data(tmp_path):
    log = open_log(tmp_path, SMALL)
    for i in range(40):
        append(log, 1 + i % 3, value_size=i * 3, ts=1000 + i, epoch=i // 10)
    before = log.read(0, 10**7).read_bytes()
    segs = [s.base_offset for s in log.segments]
    leo = log.log_end_offset
    epochs = log.epoch_entries
    log.close()
    for recover in (False, True):
        log = open_log(tmp_path, SMALL, recover=recover, recovery_point=0 if recover else None)
        assert [s.base_offset for s in log.segments] == segs
        assert (log.log_end_offset, log.high_watermark) == (leo, leo)
        assert log.read(0, 10**7).read_bytes() == before
        assert log.epoch_entries == epochs and log.leader_epoch == 3
        res = append(log, 1)
        assert res.base_offset == leo
        log.truncate_to(leo)
        log.close()


def test_recovery_truncates_garbage_and_half_batch_then_appends(tmp_path):
    log = open_log(tmp_path, SMALL)
    for i in range(20):
        append(log, 2, tag=b"%d" % i)
    leo = log.log_end_offset
    good = log.read(0, 10**7).read_bytes()
    active = log.active_segment.log_path
    log.close()
    for tail in (os.urandom(500), bytes(make_batch(3))[:-7], b"\x00" * 4096):
        with open(active, "ab") as f:
            f.write(tail)
        log = open_log(tmp_path, SMALL)  # recover=True by default
        assert log.log_end_offset == leo
        assert log.read(0, 10**7).read_bytes() == good
        r = append(log, 1, tag=b"new")
        assert r.base_offset == leo
        assert records_of(log.read(leo, 1000).read_bytes())[0].value.startswith(b"new")
        log.truncate_to(leo)
        log.close()


def test_unflushed_rolled_segment_recovery_deletes_later_segments(tmp_path):
    log = open_log(tmp_path, SMALL)
    for _ in range(40):
        append(log, 2)
    first_two = log.segments[1].base_offset
    second = log.segments[1]
    log.close()
    with open(second.log_path, "r+b") as f:
        f.seek(200)
        f.write(b"\xff" * 8)
    log = open_log(tmp_path, SMALL, recovery_point=first_two)
    assert log.segments[-1].base_offset == first_two
    assert log.log_end_offset < 80
    assert log.recovery_point == first_two
    log.close()


def test_deleted_index_is_rebuilt(tmp_path):
    log = open_log(tmp_path, SMALL)
    for i in range(30):
        append(log, 2, ts=1000 + i)
    first = log.segments[0]
    want_idx = first.offset_index()
    want_ti = first.time_index()
    raw = first.index_path.read_bytes()
    log.close()
    first.index_path.unlink()
    log.segments[-1].timeindex_path.unlink()
    log = open_log(tmp_path, SMALL, recover=False)
    assert log.segments[0].offset_index() == want_idx
    assert log.segments[0].time_index() == want_ti
    assert _read_offsets(log.read(5, 1)) == [4, 5]
    assert log.offset_for_timestamp(1029) == (58, 1029)
    log.close()
    assert first.index_path.read_bytes() == raw


def test_leader_epoch_checkpoint_and_partition_metadata(tmp_path):
    tid = bytes(range(16))
    log = open_log(tmp_path, topic_id=tid)
    append(log, 2, epoch=0)
    append(log, 1, epoch=0)
    append(log, 1, epoch=3)
    log.flush()  # the append path leaves the file to flush/close (see the next test)
    assert (log.dir / "leader-epoch-checkpoint").read_text() == "0\n2\n0 0\n3 3\n"
    assert (log.dir / "partition.metadata").read_text() == "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw"
    assert log.epoch_for_offset(2) == 0 and log.epoch_for_offset(3) == 3
    assert log.end_offset_for_epoch(0) == (0, 3)
    assert log.end_offset_for_epoch(2) == (0, 3)
    assert log.end_offset_for_epoch(3) == (3, 4)
    log.close()
    with pytest.raises(Exception) as ei:
        open_log(tmp_path, topic_id=bytes(16))
    assert getattr(ei.value, "error_code", None) == 103
    log = open_log(tmp_path)
    assert log.topic_id == tid
    log.close()


def test_leader_epoch_entry_of_an_append_is_written_by_flush_or_close_or_rebuilt_by_recovery(tmp_path):
    """The leader's append path does not write leader-epoch-checkpoint (one
    file write and two fsyncs per partition, issue 17): flush() writes it
    before the recovery point passes the new entry, close() writes it, and a
    crash loses nothing, the recovery scan from the recovery point reading
    the epochs from the batches."""
    log = open_log(tmp_path)
    ckpt = log.dir / "leader-epoch-checkpoint"
    append(log, 2, epoch=0)
    append(log, 1, epoch=3)
    assert not ckpt.exists()
    assert [(e.epoch, e.start_offset) for e in log.epoch_entries] == [(0, 0), (3, 2)]
    log.flush()
    assert ckpt.read_text() == "0\n2\n0 0\n3 2\n" and log.recovery_point == 3
    append(log, 1, epoch=5)
    assert ckpt.read_text() == "0\n2\n0 0\n3 2\n"
    # a crash now: reopened without close, recovering from the recovery point
    crashed = open_log(tmp_path, recover=True, recovery_point=log.recovery_point)
    assert [(e.epoch, e.start_offset) for e in crashed.epoch_entries] == [(0, 0), (3, 2), (5, 3)]
    assert crashed.end_offset_for_epoch(3) == (3, 3)
    crashed.close()
    assert ckpt.read_text() == "0\n3\n0 0\n3 2\n5 3\n"
    log.close()
    # a clean close writes what the appends left
    other = open_log(tmp_path, name="topic-1")
    append(other, 1, epoch=7)
    other.close()
    assert (other.dir / "leader-epoch-checkpoint").read_text() == "0\n1\n7 0\n"
    reopened = open_log(tmp_path, name="topic-1", recover=False)
    assert [(e.epoch, e.start_offset) for e in reopened.epoch_entries] == [(7, 0)]
    reopened.close()


def test_flush_policy_and_recovery_point(tmp_path):
    log = open_log(tmp_path, LogConfig(flush_messages=5, flush_ms=1000), now_ms=0)
    append(log, 3, now_ms=10)
    assert not log.needs_flush(10)
    append(log, 2, now_ms=20)
    assert log.needs_flush(20)
    log.flush(now_ms=20)
    assert log.recovery_point == 5 and not log.needs_flush(20)
    append(log, 1, now_ms=500)
    assert not log.needs_flush(999) and log.needs_flush(1020)
    # auto_flush: Kafka's inline flush once flush.messages is reached
    data = make_batch(4)
    log.append(data, validate_batches(bytes(data), max_batch_bytes=None), leader_epoch=0, now_ms=30,
               auto_flush=True)
    assert log.recovery_point == 10
    log.close()


def test_file_region_matches_file_contents(tmp_path):
    log = open_log(tmp_path)
    append(log, 2)
    append(log, 2)
    res = log.read(2, 10**6)
    [c] = res.chunks
    raw = log.segments[0].log_path.read_bytes()
    assert c.read_bytes() == raw[c.offset : c.offset + c.length]
    assert [r.offset for r in decode_records(c.read_bytes())] == [2, 3]
    log.close()
