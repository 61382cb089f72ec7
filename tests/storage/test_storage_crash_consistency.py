"""Issue 18, item 3 (storage side): topic and partition creation is
all-or-nothing, start-up repairs or discards what a crash left half-made,
and segment log files are opened lazily under a bounded LRU."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from pathlib import Path

import pytest
from storage_helpers import append, records_of

from pykbroker.storage import manager as manager_mod
from pykbroker.storage.log import PartitionLog
from pykbroker.storage.log_config import LogConfig
from pykbroker.storage.manager import (
    TOPICS_FILE,
    CreationInProgressError,
    InvalidTopicError,
    LogManager,
    PartitionCreation,
    StorageFailureError,
    TopicAlreadyExistsError,
    UnknownTopicError,
)
from pykbroker.storage.segment import OPEN_SEGMENTS, set_max_open_segments


def _values(lg) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Every record's value, read through the log's read path (file regions)."""
    out: list[bytes] = []
    offset = lg.log_start_offset
    while offset < lg.log_end_offset:
        res = lg.read(offset, 1 << 20)
        recs = records_of(res.read_bytes())
        out += [r.value for r in recs if r.offset >= offset]
        offset = recs[-1].offset + 1
    return out


def _mgr(root: Path) -> LogManager:
    m = LogManager([root], LogConfig())
    m.load(now_ms=10_000)
    return m


def _fail_at(monkeypatch: pytest.MonkeyPatch, k: int, err: int) -> list[int]:
    """PartitionLog.open raises OSError(err) at its k-th call (0-based)
    after creating the partition directory, as a failing mkdir/open would."""
    calls: list[int] = []
    real = PartitionLog.open

    def fake(path: Path, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) - 1 == k:
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / "00000000000000000000.log").write_bytes(b"")
            raise OSError(err, os.strerror(err))
        return real(path, *a, **kw)

    monkeypatch.setattr(manager_mod.PartitionLog, "open", staticmethod(fake))
    return calls


def _registered(root: Path) -> dict[str, int]:
    doc = json.loads((root / TOPICS_FILE).read_text())
    return {t["name"]: t["partitions"] for t in doc["topics"]}


def _dirs(root: Path, topic: str) -> list[str]:
    return sorted(e.name for e in root.iterdir() if e.is_dir() and e.name.startswith(topic + "-"))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EMFILE])
def test_create_topic_failing_midway_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     err: int) -> None:
    m = _mgr(tmp_path)
    m.create_topic("keep", 1)
    _fail_at(monkeypatch, 3, err)
    with pytest.raises(StorageFailureError) as ei:
        m.create_topic("t", 6)
    assert ei.value.error_code == 56  # KAFKA_STORAGE_ERROR
    assert os.strerror(err) in str(ei.value)
    assert "t" not in m.topics and m.get("t", 0) is None
    assert _dirs(tmp_path, "t") == []
    assert _registered(tmp_path) == {"keep": 1}
    monkeypatch.undo()
    meta = m.create_topic("t", 6)  # creatable again
    assert meta.partitions == 6
    append(m.get("t", 5), 2)
    m.close()
    m2 = _mgr(tmp_path)
    assert m2.topics["t"].partitions == 6 and m2.get("t", 5).log_end_offset == 2
    m2.close()


def test_create_partitions_failing_midway_keeps_the_old_count(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    m = _mgr(tmp_path)
    m.create_topic("t", 2)
    append(m.get("t", 1), 3)
    _fail_at(monkeypatch, 2, errno.ENOSPC)
    with pytest.raises(StorageFailureError):
        m.create_partitions("t", 6)
    assert m.topics["t"].partitions == 2 and m.get("t", 2) is None
    assert _dirs(tmp_path, "t") == ["t-0", "t-1"]
    assert _registered(tmp_path) == {"t": 2}
    assert m.get("t", 1).log_end_offset == 3
    monkeypatch.undo()
    assert m.create_partitions("t", 6).partitions == 6
    m.close()
    m2 = _mgr(tmp_path)
    assert m2.topics["t"].partitions == 6 and m2.get("t", 1).log_end_offset == 3
    m2.close()


def test_start_up_discards_partitions_a_crash_left_unregistered(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    m = _mgr(tmp_path)
    m.create_topic("half", 3)
    m.create_topic("data", 2)
    append(m.get("data", 0), 4)
    m.create_topic("ok", 1)
    m.close()
    # as a crash before the metadata write leaves them: directories, no registration
    doc = json.loads((tmp_path / TOPICS_FILE).read_text())
    doc["topics"] = [t for t in doc["topics"] if t["name"] == "ok"]
    (tmp_path / TOPICS_FILE).write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, "pykbroker.storage"):
        m2 = _mgr(tmp_path)
    assert set(m2.topics) == {"ok"}
    names = sorted(e.name for e in tmp_path.iterdir() if e.is_dir())
    assert "half-0" not in names and not any(n.startswith("half-") for n in names)
    assert "data-1" not in names  # empty: removed
    assert any(n.startswith("data-0.") and n.endswith("-stray") for n in names)  # records kept aside
    assert "interrupted by a crash" in caplog.text
    m2.create_topic("half", 3)  # creatable again
    m2.close()


def test_start_up_repairs_metadata_and_indexes(tmp_path: Path) -> None:
    m = _mgr(tmp_path)
    m.create_topic("t", 3)
    for p in range(3):
        append(m.get("t", p), 5, tag=b"p%d" % p)
    topic_id = m.topics["t"].topic_id
    m.close()
    (tmp_path / "t-0" / "partition.metadata").write_bytes(b"")  # empty
    (tmp_path / "t-1" / "partition.metadata").write_bytes(b"version: 0\ntopic_")  # truncated
    (tmp_path / "t-2" / "00000000000000000000.index").unlink()  # missing index
    (tmp_path / "t-2" / "00000000000000000000.timeindex").unlink()
    import shutil
    shutil.rmtree(tmp_path / "t-1")  # and a registered partition without its directory
    m2 = _mgr(tmp_path)
    assert m2.topics["t"].partitions == 3
    assert m2.get("t", 0).log_end_offset == 5 and m2.get("t", 2).log_end_offset == 5
    assert m2.get("t", 1).log_end_offset == 0  # recreated empty
    assert [v[:2] for v in _values(m2.get("t", 2))] == [b"p2"] * 5
    m2.close()
    text = (tmp_path / "t-0" / "partition.metadata").read_text()
    from pykbroker.storage.checkpoints import kafka_uuid_str
    assert kafka_uuid_str(topic_id) in text


def test_segment_files_open_lazily_under_a_bound(tmp_path: Path) -> None:
    old = OPEN_SEGMENTS.max_open
    set_max_open_segments(6)
    try:
        cfg = LogConfig.from_properties({"internal.segment.bytes": "300"})
        logs = [PartitionLog.open(tmp_path / f"t-{p}", cfg, recover=False, now_ms=1) for p in range(4)]
        for i in range(12):
            for p, lg in enumerate(logs):
                append(lg, 1, value_size=120, tag=b"%d-%d|" % (p, i))
        for lg in logs:
            lg.flush()
        assert sum(len(lg.segments) for lg in logs) >= 24
        assert len(OPEN_SEGMENTS) <= 6
        own = [f for f in os.listdir("/proc/self/fd")
               if os.path.realpath(f"/proc/self/fd/{f}").startswith(str(tmp_path))]
        assert len(own) <= 6 + 2, own  # plus at most one segment's index files being appended
        for p, lg in enumerate(logs):  # every segment readable, reopened as needed
            got = [v.split(b"|")[0] for v in _values(lg)]
            assert got == [b"%d-%d" % (p, i) for i in range(12)]
        assert OPEN_SEGMENTS.evictions > 0 and len(OPEN_SEGMENTS) <= 6
        for lg in logs:
            lg.close()
        # reopened after a clean close: loading opens no more than the bound
        logs = [PartitionLog.open(tmp_path / f"t-{p}", cfg, recover=False, now_ms=1) for p in range(4)]
        assert len(OPEN_SEGMENTS) <= 6
        for p, lg in enumerate(logs):
            assert lg.log_end_offset == 12
            got = [v.split(b"|")[0] for v in _values(lg)]
            assert got == [b"%d-%d" % (p, i) for i in range(12)]
            lg.close()
    finally:
        set_max_open_segments(old)


def test_loading_a_log_opens_only_the_active_segment(tmp_path: Path) -> None:
    """Opening a log after a clean close stats its segments' log files but
    opens none of them except the active one (its tail gives the log end
    offset); an older segment opens when first read (issue 17: a broker
    with thousands of partitions opened, and past the bound closed again,
    every segment at start)."""
    cfg = LogConfig.from_properties({"internal.segment.bytes": "300"})
    lg = PartitionLog.open(tmp_path / "t-0", cfg, recover=False, now_ms=1)
    for i in range(8):
        append(lg, 1, value_size=120, tag=b"%d|" % i)
    assert len(lg.segments) >= 4
    lg.close()
    lg = PartitionLog.open(tmp_path / "t-0", cfg, recover=False, now_ms=1)
    assert [s.is_open for s in lg.segments[:-1]] == [False] * (len(lg.segments) - 1)
    assert lg.log_end_offset == 8 and lg.segments[0].size > 0
    assert [v.split(b"|")[0] for v in _values(lg)] == [b"%d" % i for i in range(8)]
    assert lg.segments[0].is_open
    lg.close()


# --- creation in steps: the file work in worker threads (the broker's CreateTopics/CreatePartitions) --


def _engine(kind: str, root: Path) -> LogManager:
    if kind == "memory":
        from pykbroker.storage.memory import MemoryLogManager
        m: LogManager = MemoryLogManager([root], LogConfig())
        m.load()
        return m
    return _mgr(root)


def _build_in_threads(m: LogManager, c: PartitionCreation, chunk: int = 3) -> None:
    """As the broker does: each range of partitions built by a worker thread."""
    for lo in range(c.first, c.total, chunk):
        t = threading.Thread(target=m.build_partitions, args=(c, lo, min(lo + chunk, c.total)))
        t.start()
        t.join()


@pytest.mark.parametrize("kind", ["segments", "memory"])
def test_a_topic_being_created_is_reserved_and_unknown(tmp_path: Path, kind: str) -> None:
    m = _engine(kind, tmp_path)
    c = m.begin_create_topic("a.b", 7)
    assert m.creating("a.b")
    with pytest.raises(TopicAlreadyExistsError):
        m.create_topic("a.b", 1)
    with pytest.raises(InvalidTopicError, match="collides with existing topic: a.b"):
        m.create_topic("a_b", 1)
    _build_in_threads(m, c)
    assert "a.b" not in m.topics and m.get("a.b", 0) is None  # built, not registered yet
    with pytest.raises(UnknownTopicError):
        m.delete_topic("a.b")
    meta = m.complete_creation(c)
    m.end_creation(c)
    assert not m.creating("a.b")
    assert meta.partitions == 7 and [m.get("a.b", p) is not None for p in range(7)] == [True] * 7
    append(m.get("a.b", 6), 2)
    assert m.get("a.b", 6).log_end_offset == 2
    if kind == "segments":
        assert _registered(tmp_path) == {"a.b": 7} and len(_dirs(tmp_path, "a.b")) == 7
    m.close()


@pytest.mark.parametrize("kind", ["segments", "memory"])
def test_a_topic_deleted_while_it_grows_fails_the_growth(tmp_path: Path, kind: str) -> None:
    m = _engine(kind, tmp_path)
    m.create_topic("t", 2)
    c = m.begin_create_partitions("t", 6)
    with pytest.raises(CreationInProgressError):
        m.begin_create_partitions("t", 7)
    m.alter_topic_configs("t", {"retention.ms": "1000"})  # changed meanwhile: the new logs follow
    _build_in_threads(m, c)
    # completing applies the overrides of the time
    meta = m.complete_creation(c)
    m.end_creation(c)
    assert meta.partitions == 6 and meta.configs == {"retention.ms": "1000"}
    assert m.get("t", 5).config.retention_ms == 1000
    c = m.begin_create_partitions("t", 9)
    _build_in_threads(m, c)
    m.delete_topic("t")
    with pytest.raises(UnknownTopicError):
        m.complete_creation(c)
    m.discard_creation(c)
    m.end_creation(c)
    assert "t" not in m.topics and m.get("t", 7) is None
    if kind == "segments":
        assert _dirs(tmp_path, "t") == [] and _registered(tmp_path) == {}
    m.create_topic("t", 1)  # creatable again
    m.close()


def test_start_up_removes_partitions_an_interrupted_growth_left(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    m = _mgr(tmp_path)
    m.create_topic("g", 2)
    append(m.get("g", 1), 3)
    c = m.begin_create_partitions("g", 5)
    _build_in_threads(m, c)  # the crash comes before complete_creation writes the metadata
    for plog in c.built.values():
        plog.close()
    m.close()
    with caplog.at_level(logging.WARNING, "pykbroker.storage"):
        m2 = _mgr(tmp_path)
    assert m2.topics["g"].partitions == 2 and m2.get("g", 1).log_end_offset == 3
    assert _dirs(tmp_path, "g") == ["g-0", "g-1"]  # removed, not kept aside as -stray
    assert "interrupted by a crash" in caplog.text
    assert m2.create_partitions("g", 5).partitions == 5  # and growable again
    m2.close()
