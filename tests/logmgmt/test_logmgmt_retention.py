"""Retention (storage/retention.py) and DeleteRecords on the log: whole
segments go, oldest first, the log start offset follows, files are renamed
``.deleted`` and removed later, in-flight reads stay valid."""

from __future__ import annotations

import os

import attrs
import pytest
from lm_helpers import SMALL, open_log, put, records

from pykbroker.storage import retention
from pykbroker.storage.log import OffsetOutOfRange


def fill(log, n: int, ts0: int = 1000, step: int = 1000) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        put(log, [(b"k%d" % i, b"v" * 50)], ts=ts0 + i * step, now_ms=ts0 + i * step)


def test_time_retention_deletes_whole_old_segments(tmp_path):
    log = open_log(tmp_path, attrs.evolve(SMALL, retention_ms=10_000, file_delete_delay_ms=60_000))
    fill(log, 40)  # timestamps 1 s .. 40 s
    assert len(log.segments) > 4
    bases = [s.base_offset for s in log.segments]
    n = retention.delete_old_segments(log, now_ms=30_000)
    assert n >= 1
    # what stays: segments whose largest timestamp is within 10 s of "now" (and later)
    for s in log.segments[:-1]:
        assert 30_000 - s.largest_timestamp <= 10_000
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert log.log_start_offset in bases
    # the deleted files are renamed, awaiting file.delete.delay.ms
    names = os.listdir(log.dir)
    assert any(n.endswith(".log.deleted") for n in names)
    assert log.due_deletes(30_000 + 59_999) == []
    due = log.due_deletes(30_000 + 60_000)
    assert due and all(p.name.endswith(".deleted") for p in due)
    # reading below the new start offset is out of range; from it works
    with pytest.raises(OffsetOutOfRange):
        log.read(0, 1000)
    assert records(log)[0].offset == log.log_start_offset
    log.close()


def test_time_retention_of_everything_rolls_and_keeps_an_empty_segment(tmp_path):
    log = open_log(tmp_path, attrs.evolve(SMALL, retention_ms=1000))
    fill(log, 10)
    leo = log.log_end_offset
    retention.delete_old_segments(log, now_ms=10**9)
    assert len(log.segments) == 1 and log.segments[0].size == 0
    assert log.log_start_offset == log.log_end_offset == leo
    put(log, [(b"k", b"v")], ts=10**9, now_ms=10**9)
    assert [r.offset for r in records(log)] == [leo]
    log.close()


def test_size_retention(tmp_path):
    log = open_log(tmp_path, attrs.evolve(SMALL, retention_bytes=1500))
    fill(log, 60)
    sizes = [s.size for s in log.segments]
    assert sum(sizes) > 1500
    retention.delete_old_segments(log, now_ms=10**6)
    # Kafka: delete the oldest while the log stays >= retention.bytes without it
    assert log.size >= 1500
    assert log.size - log.segments[0].size < 1500
    assert log.log_start_offset == log.segments[0].base_offset
    log.close()


def test_retention_respects_policy_and_high_watermark(tmp_path):
    log = open_log(tmp_path, attrs.evolve(SMALL, retention_ms=1, cleanup_policy=("compact",)))
    fill(log, 20)
    assert retention.delete_old_segments(log, now_ms=10**9) == 0  # compact only: no time retention
    log.config = attrs.evolve(log.config, cleanup_policy=("compact", "delete"))
    log.high_watermark = log.segments[2].base_offset  # nothing at/after the HW may go
    retention.delete_old_segments(log, now_ms=10**9)
    assert log.log_start_offset <= log.high_watermark
    assert log.segments[0].base_offset <= log.high_watermark
    log.close()


def test_delete_records_moves_start_inside_a_segment(tmp_path):
    log = open_log(tmp_path)
    fill(log, 30)
    seg2 = log.segments[2]
    target = seg2.base_offset + 1
    assert log.advance_log_start_offset(target)
    assert log.segments[0] is seg2 and log.log_start_offset == target
    assert [r.offset for r in records(log)][0] == target
    with pytest.raises(OffsetOutOfRange) as e:
        log.advance_log_start_offset(log.high_watermark + 1)
    assert "since it is larger than the high watermark" in str(e.value)
    assert not log.advance_log_start_offset(target - 1)  # never backwards
    # the retention pass of a log moved by DeleteRecords deletes nothing more
    assert retention.delete_log_start_offset_breached(log, 0) == 0
    log.close()


def test_in_flight_region_survives_deletion(tmp_path):
    """A fetch's file region keeps the segment's fd: retention, DeleteRecords
    and topic deletion never pull the data from under a response."""
    log = open_log(tmp_path, attrs.evolve(SMALL, retention_ms=1))
    fill(log, 20)
    res = log.read(0, 10_000)
    expected = res.read_bytes()
    retention.delete_old_segments(log, now_ms=10**9)
    for p in log.due_deletes(10**12):
        p.unlink()
    assert not any(n.startswith("00000000000000000000.log") for n in os.listdir(log.dir))
    assert res.read_bytes() == expected  # fds still open, data intact
    inodes = {(c.fd, os.fstat(c.fd).st_ino) for c in res.chunks}
    del res
    for fd, ino in inodes:  # the last reference gone: the fds are closed
        try:
            assert os.fstat(fd).st_ino != ino
        except OSError:
            pass
    log.delete()


def test_reopen_removes_leftover_deleted_files(tmp_path):
    log = open_log(tmp_path, attrs.evolve(SMALL, retention_ms=1, file_delete_delay_ms=10**9))
    fill(log, 20)
    retention.delete_old_segments(log, now_ms=10**9)
    log.close()
    assert any(n.endswith(".deleted") for n in os.listdir(tmp_path / "topic-0"))
    log = open_log(tmp_path)
    assert not any(n.endswith(".deleted") for n in os.listdir(tmp_path / "topic-0"))
    log.close()
