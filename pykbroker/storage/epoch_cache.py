"""The leader-epoch cache of a partition log (Kafka's LeaderEpochFileCache).

An ordered list of (epoch, start offset): the first offset written under
each leader epoch. Both engines keep one; the segment log gives it a
``leader-epoch-checkpoint`` file, rewritten whenever the entries change
(unless the caller batches changes with ``write=False`` and calls
:meth:`LeaderEpochCache.write` itself, as recovery does).

A change made with ``write=False`` leaves the cache ``unwritten`` until the
next :meth:`LeaderEpochCache.write`. The leader's append path uses that
(issue 17): the first append of a new epoch does not write the file on the
event loop; the log writes it before its recovery point passes the entry
(``PartitionLog.flush``/``close``), and after a crash the recovery scan
from the recovery point rebuilds any entry that was not written (the
batches carry their epochs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from .api import EpochEntry
from .checkpoints import CorruptCheckpointError, read_epoch_checkpoint, write_epoch_checkpoint

log = logging.getLogger("pykbroker.storage")

LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"


def epoch_for_offset(epochs: Sequence[EpochEntry], offset: int) -> int:
    """Leader epoch of the record at ``offset`` per an epoch cache; -1 if unknown."""
    previous = -1
    for e in epochs:
        if e.start_offset == offset:
            return e.epoch
        if e.start_offset > offset:
            return previous
        previous = e.epoch
    return previous


def end_offset_for_epoch(epochs: Sequence[EpochEntry], epoch: int, log_end_offset: int) -> tuple[int, int]:
    """OffsetForLeaderEpoch: (largest epoch <= ``epoch``, its end offset), as
    Kafka's LeaderEpochFileCache.endOffsetFor; (-1, -1) if unknown."""
    if epoch < 0 or not epochs:
        return -1, -1
    if epochs[-1].epoch == epoch:
        return epoch, log_end_offset
    higher = next((e for e in epochs if e.epoch > epoch), None)
    if higher is None:
        return -1, -1
    floor = None
    for e in epochs:
        if e.epoch <= epoch:
            floor = e
    if floor is None:
        return epoch, higher.start_offset
    return floor.epoch, higher.start_offset


class LeaderEpochCache:
    """Epoch entries, with a checkpoint file when ``path`` is given."""

    def __init__(self, entries: Sequence[EpochEntry] = (), path: Path | None = None) -> None:
        self._entries: list[EpochEntry] = list(entries)
        self.path = path
        #: changed since the file was last written (a ``write=False`` change)
        self.unwritten = False

    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache:
        """The cache kept in ``path`` (empty if missing; a corrupt file is ignored)."""
        try:
            raw = read_epoch_checkpoint(path)
        except CorruptCheckpointError as e:
            log.warning("%s: ignoring corrupt leader epoch checkpoint: %s", path.parent, e)
            raw = None
        return cls([EpochEntry(e, o) for e, o in raw or ()], path)

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        """Latest leader epoch; -1 if none."""
        return self._entries[-1].epoch if self._entries else -1

    def write(self) -> None:
        self.unwritten = False
        if self.path is not None:
            write_epoch_checkpoint(self.path, [(e.epoch, e.start_offset) for e in self._entries])

    def take_unwritten(self) -> list[tuple[int, int]] | None:
        """The entries to write if a change is not in the file yet (the flag
        is cleared: call :meth:`write_entries` with them, or
        :meth:`mark_unwritten` if that fails); None if nothing is pending."""
        if not self.unwritten or self.path is None:
            return None
        self.unwritten = False
        return [(e.epoch, e.start_offset) for e in self._entries]

    def write_entries(self, entries: list[tuple[int, int]], *, fsync: bool = True) -> None:
        """Write a snapshot from :meth:`take_unwritten` (may run off the
        thread that changes the cache)."""
        if self.path is not None:
            write_epoch_checkpoint(self.path, entries, fsync=fsync)

    def mark_unwritten(self) -> None:
        self.unwritten = True

    def _changed(self, changed: bool, write: bool) -> bool:
        if changed:
            if write:
                self.write()
            else:
                self.unwritten = True
        return changed

    def assign(self, epoch: int, start_offset: int, *, write: bool = True) -> bool:
        """Kafka's LeaderEpochFileCache.assign: a new latest entry when the epoch
        changes (or the same epoch starts earlier); later/conflicting entries go."""
        if epoch < 0 or start_offset < 0:
            return False
        es = self._entries
        if es and es[-1].epoch == epoch and start_offset >= es[-1].start_offset:
            return False
        while es and (es[-1].epoch >= epoch or es[-1].start_offset >= start_offset):
            es.pop()
        es.append(EpochEntry(epoch, start_offset))
        return self._changed(True, write)

    def assign_if_newer(self, epoch: int, start_offset: int, *, write: bool = True) -> bool:
        """A batch's epoch enters only when it is above the latest (recovery,
        follower appends: the batches carry the leader's epochs)."""
        if epoch >= 0 and epoch > self.latest_epoch:
            return self.assign(epoch, start_offset, write=write)
        return False

    def truncate_from_end(self, end_offset: int, *, write: bool = True) -> bool:
        """Drop the entries starting at or after ``end_offset``."""
        before = len(self._entries)
        while self._entries and self._entries[-1].start_offset >= end_offset:
            self._entries.pop()
        return self._changed(len(self._entries) != before, write)

    def truncate_from_start(self, start_offset: int, *, write: bool = True) -> bool:
        """Kafka's truncateFromStart: drop entries before ``start_offset`` but keep
        the one covering it, moved to start there."""
        es = self._entries
        changed = False
        while len(es) > 1 and es[1].start_offset <= start_offset:
            es.pop(0)
            changed = True
        if es and es[0].start_offset < start_offset:
            es[0] = EpochEntry(es[0].epoch, start_offset)
            changed = True
        return self._changed(changed, write)

    def clear(self, *, write: bool = True) -> None:
        self._entries = []
        if write:
            self.write()
        else:
            self.unwritten = True

    def epoch_for_offset(self, offset: int) -> int:
        return epoch_for_offset(self._entries, offset)

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        return end_offset_for_epoch(self._entries, epoch, log_end_offset)


__all__ = ["LEADER_EPOCH_CHECKPOINT", "LeaderEpochCache", "end_offset_for_epoch", "epoch_for_offset"]
