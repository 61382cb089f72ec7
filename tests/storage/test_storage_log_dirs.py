"""Several log directories: placement, the future-log move (copy, swap,
crashes in the middle), a failed directory. Unit tests on LogManager and the
mover's steps (pykbroker/server/log_dirs.py), no broker."""

from __future__ import annotations

import os
import shutil

import pytest
from storage_helpers import append, scan_records

from pykbroker.storage.api import LogOfflineError
from pykbroker.storage.log_config import LogConfig
from pykbroker.storage.manager import LogDirNotFoundError, LogManager, ReplicaNotAvailableError
from pykbroker.storage.memory import MemoryLogManager
from pykbroker.storage.producer_state import ProducerStateManager
from pykbroker.server.log_dirs import MoveFailed, _Move, copy_chunk, maybe_restart, prepare_swap, reconcile


def _mgr(dirs, **kw) -> LogManager:
    m = LogManager(dirs, LogConfig(segment_bytes=2000, index_interval_bytes=100), **kw)
    m.load()
    return m


def _move(m: LogManager, topic: str, p: int) -> _Move:
    fut = m.future_log(topic, p)
    assert fut is not None
    cur = m.get(topic, p)
    assert cur is not None
    return _Move(fut, ProducerStateManager.load(fut), cur.truncations)


def _copy_all(m: LogManager, topic: str, p: int, mv: _Move) -> None:
    cur = m.get(topic, p)
    assert cur is not None
    maybe_restart(cur, mv)
    while copy_chunk(cur, mv, 300):
        pass


def _dirs(d) -> list[str]:
    return sorted(e.name for e in d.iterdir() if e.is_dir())


def test_placement_fewest_logs_preferred_and_offline(tmp_path):
    d1, d2, d3 = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    m = _mgr([d1, d2, d3])
    m.create_topic("t", 5)
    assert [m.log_dir_of("t", p) for p in range(5)] == [d1, d2, d3, d1, d2]
    # AlterReplicaLogDirs before the replica exists: remembered for its creation
    with pytest.raises(ReplicaNotAvailableError):
        m.alter_log_dir("u", 0, os.path.abspath(d1))
    m.mark_dir_offline(d3, "test")
    m.create_topic("u", 2)
    assert m.log_dir_of("u", 0) == d1  # preferred, though d3 has fewest
    assert m.log_dir_of("u", 1) in (d1, d2)  # never the offline one
    assert m.get("t", 2).offline == "test"
    with pytest.raises(LogOfflineError):
        append(m.get("t", 2))
    append(m.get("t", 0))  # the other directories keep working
    m.close()


def test_describe_log_dirs(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 2)
    append(m.get("t", 1), 3)
    infos = m.describe_log_dirs()
    assert [i.path for i in infos] == [os.path.abspath(d1), os.path.abspath(d2)]
    assert all(i.error is None and i.total_bytes >= i.usable_bytes > 0 for i in infos)
    assert [(r.topic, r.partition, r.log_end_offset, r.is_future) for r in infos[1].replicas] == [("t", 1, 3, False)]
    assert infos[1].replicas[0].size == m.get("t", 1).size > 0
    # the directory replaced by a file: offline at the next look
    shutil.move(d2, tmp_path / "b.gone")
    d2.write_text("not a directory")
    infos = m.describe_log_dirs()
    assert infos[1].error is not None and infos[1].replicas == [] and infos[1].total_bytes == -1
    assert m.get("t", 1).offline is not None and m.get("t", 0).offline is None
    m.close()  # no crash; nothing written to the failed directory
    assert d2.read_text() == "not a directory"


def test_checkpoint_failure_takes_only_that_dir_offline(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 2)
    append(m.get("t", 0), 2)
    shutil.rmtree(d2)
    d2.write_text("x")
    m.checkpoint()
    assert list(m.offline_dirs) == [d2]
    assert m.get("t", 1).offline is not None
    assert append(m.get("t", 0), 1).base_offset == 2
    m.close()


def test_alter_errors(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 1)
    with pytest.raises(LogDirNotFoundError):
        m.alter_log_dir("t", 0, str(tmp_path / "elsewhere"))
    with pytest.raises(LogDirNotFoundError):
        m.alter_log_dir("t", 0, "b")  # a relative path is not the absolute one
    assert m.alter_log_dir("t", 0, os.path.abspath(d1)) is None  # there already
    m.mark_dir_offline(d2, "broken")
    with pytest.raises(LogOfflineError):
        m.alter_log_dir("t", 0, os.path.abspath(d2))
    m.close()


def test_move_copies_and_swaps(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 1)
    cur = m.get("t", 0)
    for i in range(20):
        append(cur, 3, tag=b"r%d-" % i, epoch=i // 10)
    cur.high_watermark = cur.log_end_offset
    assert len(cur.segment_bases()) > 1
    cur.advance_log_start_offset(7)
    fut = m.alter_log_dir("t", 0, os.path.abspath(d2))
    assert fut is not None and fut.dir is not None and fut.dir.parent == d2
    assert fut.dir.name.startswith("t-0.") and fut.dir.name.endswith("-future")
    assert m.alter_log_dir("t", 0, os.path.abspath(d2)) is fut  # under way already
    infos = m.describe_log_dirs()
    assert [(r.partition, r.is_future) for r in infos[1].replicas] == [(0, True)]
    mv = _move(m, "t", 0)
    _copy_all(m, "t", 0, mv)
    append(cur, 2, tag=b"late-", epoch=1)  # the partition keeps serving during the move
    _copy_all(m, "t", 0, mv)
    assert fut.log_end_offset == cur.log_end_offset == 62
    want = [r for r in scan_records(cur) if r.offset >= 7]
    want_epochs = cur.epoch_entries
    prepare_swap(mv)
    seen: list[tuple[str, int]] = []
    m.log_replaced_listeners.append(lambda t, p, log: seen.append((t, p)))
    new = m.replace_current_with_future("t", 0)
    assert seen == [("t", 0)]
    assert m.get("t", 0) is new and m.log_dir_of("t", 0) == d2 and m.future_log("t", 0) is None
    assert new.dir == d2 / "t-0" and _dirs(d2) == ["t-0"] and _dirs(d1) == []  # old one deleted (sync delete)
    assert new.log_start_offset == 7 and new.log_end_offset == 62 and new.high_watermark == 60
    assert [r for r in scan_records(new) if r.offset >= 7] == want
    assert new.epoch_entries == want_epochs
    assert any(f.name.endswith(".snapshot") for f in (d2 / "t-0").iterdir())
    assert append(new, 1).base_offset == 62
    m.close()
    m2 = _mgr([d1, d2])
    assert m2.log_dir_of("t", 0) == d2 and m2.get("t", 0).log_end_offset == 63
    m2.close()


def test_crash_during_copy_resumes(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 1)
    cur = m.get("t", 0)
    for i in range(10):
        append(cur, 2, tag=b"x%d" % i)
    m.alter_log_dir("t", 0, os.path.abspath(d2))
    mv = _move(m, "t", 0)
    copy_chunk(cur, mv, 200)
    copied = mv.future.log_end_offset
    assert 0 < copied < 20
    m.checkpoint()
    # crash: nothing closed; the future directory stays
    m2 = _mgr([d1, d2])
    fut = m2.future_log("t", 0)
    assert fut is not None and m2.future_dir_of("t", 0) == d2 and fut.log_end_offset == copied
    assert m2.log_dir_of("t", 0) == d1 and m2.get("t", 0).log_end_offset == 20
    mv2 = _move(m2, "t", 0)
    _copy_all(m2, "t", 0, mv2)
    want = [(r.offset, r.value) for r in scan_records(m2.get("t", 0))]
    assert len(want) == 20
    prepare_swap(mv2)
    new = m2.replace_current_with_future("t", 0)
    assert [(r.offset, r.value) for r in scan_records(new)] == want
    m2.close()


def test_crash_between_the_renames_is_kafkas_duplicate_error(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 1)
    append(m.get("t", 0), 2)
    fut = m.alter_log_dir("t", 0, os.path.abspath(d2))
    assert fut is not None and fut.dir is not None
    mv = _move(m, "t", 0)
    _copy_all(m, "t", 0, mv)
    m.close()
    # the first rename of the swap happened, the second did not
    os.rename(fut.dir, d2 / "t-0")
    with pytest.raises(RuntimeError, match="Duplicate log directories for t-0 are found in both"):
        _mgr([d1, d2])


def test_crash_after_the_swap_leaves_only_the_delete_dir(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.async_delete = True  # as the broker: the old directory waits for file.delete.delay.ms
    m.create_topic("t", 1)
    append(m.get("t", 0), 4)
    m.alter_log_dir("t", 0, os.path.abspath(d2))
    mv = _move(m, "t", 0)
    _copy_all(m, "t", 0, mv)
    prepare_swap(mv)
    m.replace_current_with_future("t", 0)
    assert [n for n in _dirs(d1) if n.startswith("t-0.") and n.endswith("-delete")]
    m.checkpoint()
    m2 = _mgr([d1, d2])
    assert _dirs(d1) == [] and m2.log_dir_of("t", 0) == d2 and m2.get("t", 0).log_end_offset == 4
    m2.close()


def test_move_elsewhere_abandons_the_future_and_truncation_reconciles(tmp_path):
    d1, d2, d3 = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    m = _mgr([d1, d2, d3])
    m.create_topic("t", 1)
    cur = m.get("t", 0)
    for i in range(6):
        append(cur, 2, epoch=i // 3)
    fut = m.alter_log_dir("t", 0, os.path.abspath(d2))
    assert fut is not None
    fut2 = m.alter_log_dir("t", 0, os.path.abspath(d3))
    assert fut2 is not None and fut2 is not fut and fut.closed and _dirs(d2) == []
    mv = _move(m, "t", 0)
    _copy_all(m, "t", 0, mv)
    assert fut2.log_end_offset == 12
    cur.truncate_to(8)  # a follower's truncation
    append(cur, 1, epoch=2, tag=b"new")
    reconcile(cur, mv)
    assert fut2.log_end_offset == 8  # epoch 1 ends at 8 in the current log now: cut back there
    _copy_all(m, "t", 0, mv)
    assert [(r.offset, r.value) for r in scan_records(fut2)] == [(r.offset, r.value) for r in scan_records(cur)]
    # back to the current directory: the move is abandoned
    assert m.alter_log_dir("t", 0, os.path.abspath(d1)) is None
    assert m.future_log("t", 0) is None and _dirs(d3) == []
    m.close()


def test_copy_refuses_a_gap(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("t", 1)
    append(m.get("t", 0), 2)
    m.alter_log_dir("t", 0, os.path.abspath(d2))
    mv = _move(m, "t", 0)
    mv.future.truncate_fully_and_start_at(1)  # not where a batch starts
    with pytest.raises(MoveFailed):
        copy_chunk(m.get("t", 0), mv)
    m.close()


def test_memory_engine_moves_at_once(tmp_path):
    m = MemoryLogManager([tmp_path / "a", tmp_path / "b"], LogConfig())
    m.load()
    m.create_topic("t", 2)
    assert [m.log_dir_of("t", p) for p in range(2)] == [tmp_path / "a", tmp_path / "b"]
    assert m.alter_log_dir("t", 0, os.path.abspath(tmp_path / "b")) is None
    assert m.log_dir_of("t", 0) == tmp_path / "b"
    infos = m.describe_log_dirs()
    assert [len(i.replicas) for i in infos] == [0, 2] and infos[0].error is None
    m.close()
