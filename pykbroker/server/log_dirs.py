"""Moving replicas between log directories (Kafka's ReplicaAlterLogDirsThread).

AlterReplicaLogDirs (``handlers/alter_replica_log_dirs.py``) creates a
future log in the destination directory (``storage/manager.py``
``LogManager.alter_log_dir``); :class:`LogDirMover` fills it while the
partition keeps serving and swaps it in:

- copy: whole batches from the current log at the future's log end offset,
  up to the current log's end (Kafka copies to the log end, not the high
  watermark), 1 MiB at a time, appended unchanged
  (``PartitionStore.append_as_follower``: offsets, leader epochs and
  timestamps stay as they are) in a worker thread; a producer state of the
  future log replays them, which writes the future's ``.txnindex`` files.
  The copy starts at the batch holding the current log start offset; if
  retention overtakes the copy it starts again there; if the current log is
  truncated (a follower in a cluster) the future is cut back to where their
  leader epochs agree, as a follower does.
- swap, when the future ends where the current log ends: the future is
  fsynced and a producer snapshot written at its end (worker thread); then,
  on the event loop with no await in between (so no append interleaves),
  the last batches appended meanwhile are copied,
  ``LogManager.replace_current_with_future`` renames the directories and
  opens the new log, and :meth:`LogDirMover.on_replaced` points the
  partition (``PartitionState.log``) at it with its producer state loaded
  from that snapshot. A swap waits while the cleaner works on the partition.
- a move is abandoned (its future log deleted) when the partition or its
  current log goes away or fails, or when the data cannot be copied as
  whole batches in offset order (a compacted log with gaps at the copy
  position).

A future log found at start (a restart interrupted the move) is picked up
by the same loop and the copy resumes where it ended.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..storage.api import PartitionStore
from ..storage.producer_state import ProducerStateManager

if TYPE_CHECKING:
    from .state import BrokerState

log = logging.getLogger("pykbroker.log_dirs")

COPY_CHUNK_BYTES = 1 << 20
# batches appended while the future was flushed, copied on the event loop before the swap
MAX_SWAP_CHUNKS = 4


class MoveFailed(Exception):
    """The future log cannot follow the current one: the move is abandoned."""


@attrs.define(eq=False)
class _Move:
    future: PartitionStore
    producers: ProducerStateManager
    truncations: int


def _expiration_ms(state: Any) -> int:
    try:
        return int(state.config["producer.id.expiration.ms"])
    except (KeyError, TypeError, ValueError):
        return 86400000


def copy_chunk(cur: PartitionStore, move: _Move, max_bytes: int = COPY_CHUNK_BYTES) -> int:
    """Copy the batches after the future's end (at most ``max_bytes`` unless
    one batch is larger); the number of bytes copied."""
    fut = move.future
    # a future started at the batch holding the log start offset ends below it until that batch is copied
    res = cur.read(max(fut.log_end_offset, cur.log_start_offset), max_bytes, min_one_message=True)
    if not res.size:
        return 0
    try:
        n = fut.append_as_follower(res.read_bytes())
    except ValueError as e:  # not whole batches starting at the future's end
        raise MoveFailed(str(e)) from e
    move.producers.sync(fut)
    return n


def maybe_restart(cur: PartitionStore, move: _Move) -> bool:
    """Start the future (again) at the batch holding the current log start
    offset when it is empty or retention overtook it; whether it did."""
    fut = move.future
    if fut.size and fut.log_end_offset >= cur.log_start_offset:
        return False
    first = cur.read(cur.log_start_offset, 1, min_one_message=True).first_offset
    start = cur.log_start_offset if first < 0 else first
    if fut.log_end_offset == start:
        return False
    fut.truncate_fully_and_start_at(start)
    move.producers.sync(fut)
    return True


def reconcile(cur: PartitionStore, move: _Move) -> None:
    """The current log was truncated: cut the future back to where their
    leader epochs agree (Kafka's follower truncation), or start it again."""
    fut = move.future
    for e in reversed(fut.epoch_entries):
        epoch, end = cur.end_offset_for_epoch(e.epoch)
        if epoch == e.epoch:
            if end < fut.log_end_offset:
                fut.truncate_to(max(end, fut.log_start_offset))
                move.producers.sync(fut)
            return
    if fut.size:
        fut.truncate_fully_and_start_at(fut.log_start_offset)
        maybe_restart(cur, move)


def prepare_swap(move: _Move) -> None:
    """Worker thread: fsync the future, snapshot its producer state at its end."""
    move.future.flush()
    move.producers.sync(move.future)
    move.producers.take_snapshot(sync=True)
    move.producers.flush()


class LogDirMover:
    """Fills every future log and swaps it in (one task, round robin)."""

    def __init__(self, state: "BrokerState") -> None:
        self.state = state
        self._moves: dict[tuple[str, int], _Move] = {}
        self._wake = trio.Event()
        self.moved = 0  # swaps done (tests, metrics)
        if state.logs is not None:
            state.logs.log_replaced_listeners.append(self.on_replaced)

    def kick(self) -> None:
        """A future log was created (AlterReplicaLogDirs)."""
        self._wake.set()

    def on_replaced(self, topic: str, partition: int, new: PartitionStore) -> None:
        """The partition's log is ``new`` now: serve from it, with its producer state."""
        p = self.state.topics.partition(topic, partition)
        if p is None:
            return
        p.log = new
        if p.producers is not None:
            p.producers = ProducerStateManager.load(new, expiration_ms=_expiration_ms(self.state))
        p.notify()

    async def run(self) -> None:
        while True:
            logs = self.state.logs
            items = logs.future_items() if logs is not None else []
            for key in [k for k in self._moves if logs is None or logs.future_log(*k) is not self._moves[k].future]:
                del self._moves[key]
            if not items:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            progress = False
            for key, fut in items:
                try:
                    progress |= await self._step(key, fut)
                except Exception as e:
                    log.error("moving %s-%d to another log directory failed: %s", key[0], key[1], e,
                              exc_info=not isinstance(e, (MoveFailed, OSError)))
                    self._abort(key, fut)
                    progress = True
            await trio.sleep(0 if progress else 0.05)

    def _abort(self, key: tuple[str, int], fut: PartitionStore) -> None:
        logs = self.state.logs
        self._moves.pop(key, None)
        if logs is not None and logs.future_log(*key) is fut:
            logs.abort_future(*key)

    async def _step(self, key: tuple[str, int], fut: PartitionStore) -> bool:
        """One step of one move; whether anything happened."""
        logs = self.state.logs
        assert logs is not None
        cur = logs.get(*key)
        if cur is None or cur.closed or cur.offline is not None or fut.closed or fut.offline is not None:
            raise MoveFailed("the current or the future log is gone or offline")
        move = self._moves.get(key)
        if move is None:
            ps = await trio.to_thread.run_sync(
                lambda: ProducerStateManager.load(fut, expiration_ms=_expiration_ms(self.state)))
            move = self._moves[key] = _Move(fut, ps, cur.truncations)
            return True
        if logs.future_log(*key) is not fut:
            return True
        if cur.truncations != move.truncations:
            move.truncations = cur.truncations
            reconcile(cur, move)
        maybe_restart(cur, move)
        if fut.log_end_offset < cur.log_end_offset:
            await trio.to_thread.run_sync(copy_chunk, cur, move)
            return True
        if self._cleaning(key):
            return False
        await trio.to_thread.run_sync(prepare_swap, move)
        # on the event loop from here on: nothing appends to the current log meanwhile
        if logs.future_log(*key) is not fut or logs.get(*key) is not cur or cur.truncations != move.truncations:
            return True
        for _ in range(MAX_SWAP_CHUNKS):
            if fut.log_end_offset >= cur.log_end_offset or not copy_chunk(cur, move):
                break
        if fut.log_end_offset != cur.log_end_offset or self._cleaning(key):
            return True
        self._moves.pop(key, None)
        logs.replace_current_with_future(*key)
        self.moved += 1
        return True

    def _cleaning(self, key: tuple[str, int]) -> bool:
        tasks = getattr(self.state, "log_tasks", None)
        cleaner = getattr(tasks, "cleaner", None)
        return cleaner is not None and key in cleaner.in_progress


__all__ = ["COPY_CHUNK_BYTES", "LogDirMover", "MoveFailed", "copy_chunk", "prepare_swap", "maybe_restart", "reconcile"]
