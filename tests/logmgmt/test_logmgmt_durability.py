"""Durability policy and failures: a clean restart skips recovery, a crash
recovers only from the recovery point, I/O failures become
KAFKA_STORAGE_ERROR for the partition without touching the others, a
deleted topic's files go."""

from __future__ import annotations

import errno
import os

import attrs
import pytest
from lm_helpers import SMALL, put, records

from pykbroker.storage import segment as segment_mod
from pykbroker.storage.log import LogOfflineError
from pykbroker.storage.manager import CLEAN_SHUTDOWN_FILE, LogManager


def manager(tmp_path, **kw) -> LogManager:  # type: ignore[no-untyped-def]
    m = LogManager([tmp_path], attrs.evolve(SMALL, file_delete_delay_ms=60_000), **kw)
    m.load()
    return m


def count_recoveries(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    real = segment_mod.LogSegment.recover

    def spy(self, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(self.base_offset)
        return real(self, *a, **kw)

    monkeypatch.setattr(segment_mod.LogSegment, "recover", spy)
    return calls


def test_clean_restart_skips_recovery(tmp_path, monkeypatch):
    m = manager(tmp_path)
    m.create_topic("t", 2)
    for i in range(40):
        put(m.get("t", i % 2), [(b"k", b"v%d" % i)])
    m.close()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    calls = count_recoveries(monkeypatch)
    m = manager(tmp_path)
    assert calls == []  # nothing scanned
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()  # consumed at load
    assert len(records(m.get("t", 0))) == 20
    m.close()


def test_crash_recovers_only_after_the_recovery_point(tmp_path, monkeypatch):
    m = manager(tmp_path)
    m.create_topic("t", 1)
    log = m.get("t", 0)
    for i in range(60):
        put(log, [(b"k", b"v%d" % i)])
    log.flush()  # recovery point = log end
    m.checkpoint()
    for i in range(10):
        put(log, [(b"k", b"w%d" % i)])
    segments = len(log.segments)
    # crash: no close, no clean-shutdown marker
    calls = count_recoveries(monkeypatch)
    m2 = manager(tmp_path)
    assert 0 < len(calls) <= 3 < segments  # only the segments after the checkpointed recovery point
    assert [r.value for r in records(m2.get("t", 0))][-1] == b"w9"
    m2.close()


def test_write_failure_is_a_storage_error_for_that_partition_only(tmp_path, monkeypatch):
    m = manager(tmp_path)
    m.create_topic("a", 1)
    m.create_topic("b", 1)
    a, b = m.get("a", 0), m.get("b", 0)
    put(a, [(b"k", b"before")])
    real_write = segment_mod.write_all
    full = {"on": True}

    def write_all(fd, data):  # type: ignore[no-untyped-def]
        if full["on"] and fd == a.active_segment.fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(segment_mod, "write_all", write_all)
    with pytest.raises(OSError) as e:
        put(a, [(b"k", b"lost")])
    assert e.value.errno == errno.ENOSPC
    put(b, [(b"k", b"fine")])  # other partitions unaffected
    assert a.offline is None  # rolled back cleanly: not offline
    full["on"] = False
    put(a, [(b"k", b"after")])  # space again: appends work
    assert [r.value for r in records(a)] == [b"before", b"after"]
    m.close()


def test_torn_write_takes_the_log_offline_until_restart(tmp_path, monkeypatch):
    m = manager(tmp_path)
    m.create_topic("a", 1)
    m.create_topic("b", 1)
    a, b = m.get("a", 0), m.get("b", 0)
    put(a, [(b"k", b"before")])
    real_write = segment_mod.write_all

    def torn(fd, data):  # type: ignore[no-untyped-def]
        if fd == a.active_segment.fd:
            os.write(fd, bytes(data)[:10])  # half a batch reached the file
            raise OSError(errno.EIO, "I/O error")
        return real_write(fd, data)

    def no_truncate(fd, length):  # type: ignore[no-untyped-def]
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(segment_mod, "write_all", torn)
    monkeypatch.setattr(segment_mod.os, "ftruncate", no_truncate)
    with pytest.raises(OSError):
        put(a, [(b"k", b"torn")])
    monkeypatch.undo()
    assert a.offline is not None
    with pytest.raises(LogOfflineError):
        put(a, [(b"k", b"x")])
    with pytest.raises(LogOfflineError):
        a.read(0, 100)
    put(b, [(b"k", b"fine")])
    assert [r.value for r in records(b)] == [b"fine"]
    # crash and restart: recovery drops the torn tail, the log is back
    m2 = manager(tmp_path)
    a2 = m2.get("a", 0)
    assert a2.offline is None and [r.value for r in records(a2)] == [b"before"]
    put(a2, [(b"k", b"again")])
    m2.close()


def test_deleted_topic_files_go_after_the_delay(tmp_path):
    m = manager(tmp_path)
    m.create_topic("gone", 2)
    put(m.get("gone", 0), [(b"k", b"v")])
    region = m.get("gone", 0).read(0, 1000)
    data = region.read_bytes()
    m.async_delete = True
    m.delete_topic("gone")
    names = os.listdir(tmp_path)
    assert not any(n.startswith("gone-") and not n.endswith("-delete") for n in names)
    assert sum(n.endswith("-delete") for n in names) == 2
    assert region.read_bytes() == data  # an in-flight fetch still reads
    assert m.due_dir_deletes(0) == []
    due = m.due_dir_deletes(10**15)
    assert len(due) == 2
    # a restart removes leftovers too
    m.close()
    m = manager(tmp_path)
    assert not any(n.endswith("-delete") for n in os.listdir(tmp_path))
    assert "gone" not in m.topics
    m.close()
