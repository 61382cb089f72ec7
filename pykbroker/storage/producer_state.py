"""Per-partition producer state: idempotence and transactions on the log side.

Follows Kafka's ``ProducerStateManager`` / ``ProducerAppendInfo`` /
``ProducerStateEntry`` (storage module):

- **Entries**, one per producer id: epoch, the metadata of its last five
  batches (first/last sequence, last offset, timestamp), the coordinator
  epoch of its last marker, the first offset of its open transaction.
- **Validation of an append** (:meth:`ProducerStateManager.prepare`), per
  batch with a producer id, in Kafka's order. From clients: a batch equal
  to one of the last five (same epoch, same first and last sequence) is a
  *duplicate*, answered with the original offsets and not written (Kafka
  returns success, not DUPLICATE_SEQUENCE_NUMBER); an epoch below the
  current one is INVALID_PRODUCER_EPOCH; with a new epoch the sequence
  must start at 0, with the same epoch it must follow the last one
  (OUT_OF_ORDER_SEQUENCE_NUMBER), except that a producer whose entry is
  unknown (new, expired, or removed with its data) may start anywhere:
  modern Kafka never answers UNKNOWN_PRODUCER_ID here. A non-transactional
  batch while the producer has an open transaction is INVALID_TXN_STATE.
  From the coordinator (transactional offset commits, markers): only the
  epoch is checked, and for markers the coordinator epoch
  (TRANSACTION_COORDINATOR_FENCED). Batches found in the log on load or
  replication are applied without checks.
- **Transactions**: a transactional batch opens a transaction at its
  offset; a COMMIT/ABORT control batch closes it. Open transactions and
  those whose marker is above the high watermark make the *first unstable
  offset*, which bounds the last stable offset. Each abort adds an entry
  to the aborted-transaction index (``txn_index.py``).
- **Snapshots** ``<offset>.snapshot`` in the partition directory, Kafka's
  format (ProducerSnapshot v1: int16 version, uint32 CRC-32C of the rest,
  int32 count, entries of producer id, epoch, last sequence, last offset,
  offset delta, timestamp, coordinator epoch, open transaction's first
  offset). A snapshot at offset N holds the state of the log below N (only
  each producer's last batch, as Kafka). Written when the log rolls a
  segment and at clean shutdown. On load: the latest snapshot within
  [log start, log end], then the log after it is replayed (headers only,
  plus the marker records); aborted-index entries at or past the snapshot
  are rebuilt by the replay.
- **Expiry**: entries idle for ``producer.id.expiration.ms`` (by their last
  batch timestamp) without an open transaction are removed.

Appends are validated and applied *before* the log write (same trio tick,
no await in between), and taken back if the write did not happen, so a
retry racing an acks=all wait still finds its duplicate. The state tracks
the offset it reflects (``map_end_offset``); if the log grew without it
(follower appends) or was truncated under it (the log counts its
truncations), :meth:`sync` replays or reloads.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import struct
from collections import deque
from pathlib import Path
from collections.abc import Iterable, Sequence

import attrs

from ..protocol import errors
from ..protocol.errors import KafkaError
from ..protocol.records import BatchHeader, decode_records
from .api import PartitionStore
from .log_rules import iter_log_batches
from .segment import with_fd_relief
from .txn_index import AbortedTxn, AbortedTxnIndex
from ..util import INT_MAX as INT32_MAX
from ..util import now_ms as _now_ms

log = logging.getLogger("pykbroker.storage")

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1
_SNAP_HEAD = struct.Struct(">hIi")  # version, crc, entry count
_SNAP_ENTRY = struct.Struct(">qhiqiqiq")  # 46 bytes
NUM_BATCHES_TO_RETAIN = 5
NO_SEQUENCE = -1

# origins of an append (Kafka's AppendOrigin)
CLIENT = "client"
COORDINATOR = "coordinator"
REPLICATION = "replication"

# control record types (ControlRecordType)
ABORT = 0
COMMIT = 1
_I16 = struct.Struct(">h")
_MARKER_VALUE = struct.Struct(">hi")


def _crc32c(data: bytes | memoryview) -> int:
    from ..protocol.records import _crc32c_fn

    return _crc32c_fn()(data)


def decode_marker(key: bytes | None, value: bytes | None) -> tuple[int, int]:
    """(control type, coordinator epoch) of a control record (ControlRecordType
    key: int16 version, int16 type; EndTxnMarker value: int16 version,
    int32 coordinator epoch). Unknown types come back as they are."""
    if key is None or len(key) < 4:
        raise ValueError("control record without a valid key")
    ctype = _I16.unpack_from(key, 2)[0]
    epoch = -1
    if value is not None and len(value) >= 6:
        epoch = _MARKER_VALUE.unpack_from(value, 0)[1]
    return ctype, epoch


def marker_record(commit: bool, coordinator_epoch: int) -> tuple[bytes, bytes]:
    """Key and value of an end-transaction marker record."""
    return struct.pack(">hh", 0, COMMIT if commit else ABORT), _MARKER_VALUE.pack(0, coordinator_epoch)


# -- entries ---------------------------------------------------------------------------------------

@attrs.define(slots=True)
class BatchMetadata:
    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_seq(self) -> int:
        # Kafka's DefaultRecordBatch.decrementSequence: sequences wrap at int32 max
        s = self.last_seq - self.offset_delta
        return s + INT32_MAX + 1 if s < 0 else s

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@attrs.define(slots=True)
class ProducerStateEntry:
    producer_id: int
    producer_epoch: int = -1
    batches: deque[BatchMetadata] = attrs.field(factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    coordinator_epoch: int = -1
    last_timestamp: int = -1
    current_txn_first_offset: int = -1  # -1: no open transaction

    def copy(self) -> "ProducerStateEntry":
        return ProducerStateEntry(self.producer_id, self.producer_epoch,
                                  deque(self.batches, maxlen=NUM_BATCHES_TO_RETAIN),
                                  self.coordinator_epoch, self.last_timestamp, self.current_txn_first_offset)

    @property
    def is_empty(self) -> bool:
        return not self.batches

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def first_seq(self) -> int:
        return self.batches[0].first_seq if self.batches else NO_SEQUENCE

    @property
    def last_data_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    @property
    def last_offset_delta(self) -> int:
        return self.batches[-1].offset_delta if self.batches else 0

    def add_batch(self, epoch: int, last_seq: int, last_offset: int, offset_delta: int, timestamp: int) -> None:
        if epoch != self.producer_epoch:
            self.batches.clear()
            self.producer_epoch = epoch
        self.batches.append(BatchMetadata(last_seq, last_offset, offset_delta, timestamp))
        self.last_timestamp = timestamp

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for b in self.batches:
            if b.first_seq == first_seq and b.last_seq == last_seq:
                return b
        return None


@attrs.define(slots=True)
class CompletedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    aborted: bool


@attrs.define(slots=True)
class Duplicate:
    """A client batch already in the log: its original offsets."""
    base_offset: int
    last_offset: int
    timestamp: int


@attrs.define(eq=False)
class AppendPlan:
    """The effect of one append on the producer state, applied before the
    write and taken back (:meth:`ProducerStateManager.rollback`) if the write
    did not happen."""

    base_offset: int
    end_offset: int
    updated: dict[int, ProducerStateEntry] = attrs.field(factory=dict)
    started: list[tuple[int, int]] = attrs.field(factory=list)  # (first offset, producer id)
    completed: list[CompletedTxn] = attrs.field(factory=list)
    duplicate: Duplicate | None = None
    # filled by apply(), for rollback
    seq: int = -1
    previous: dict[int, ProducerStateEntry | None] = attrs.field(factory=dict)
    index_entries: list[tuple[int, AbortedTxn]] = attrs.field(factory=list)
    removed_ongoing: list[tuple[int, int]] = attrs.field(factory=list)
    prev_map_end: int = -1

    @property
    def touches_producers(self) -> bool:
        return bool(self.updated)


class PlainPlan:
    """An append without producer ids: only the offset the state reflects moves."""

    __slots__ = ("base_offset", "end_offset", "seq", "prev_map_end")
    duplicate = None
    touches_producers = False

    def __init__(self, base_offset: int, end_offset: int) -> None:
        self.base_offset = base_offset
        self.end_offset = end_offset
        self.seq = -1
        self.prev_map_end = -1


def _validate_batch(tp: str, entry: ProducerStateEntry, current: ProducerStateEntry | None, h: BatchHeader,
                    first_offset: int, origin: str, marker: tuple[int, int] | None) -> CompletedTxn | None:
    """Kafka's ProducerAppendInfo for one batch: check, then update ``entry``
    (the plan's working copy). ``current`` is the state before this append."""
    epoch = h.producer_epoch
    pid = h.producer_id
    if epoch < entry.producer_epoch and origin != REPLICATION:
        raise KafkaError(errors.INVALID_PRODUCER_EPOCH,
                         f"Epoch of producer {pid} at offset {first_offset} in {tp} is {epoch}, which is smaller "
                         f"than the last seen epoch {entry.producer_epoch}")
    last_offset = first_offset + h.last_offset_delta
    if marker is not None:
        ctype, coord_epoch = marker
        if entry.coordinator_epoch > coord_epoch and origin != REPLICATION:
            raise KafkaError(errors.TRANSACTION_COORDINATOR_FENCED,
                             f"Invalid coordinator epoch for producerId {pid} at offset {first_offset} in {tp}: "
                             f"{coord_epoch} (zombie), {entry.coordinator_epoch} (current)")
        done = None
        if entry.current_txn_first_offset >= 0:
            done = CompletedTxn(pid, entry.current_txn_first_offset, first_offset, ctype == ABORT)
        if epoch != entry.producer_epoch:
            entry.batches.clear()
            entry.producer_epoch = epoch
        entry.coordinator_epoch = coord_epoch
        entry.last_timestamp = h.max_timestamp
        entry.current_txn_first_offset = -1
        return done
    if origin == CLIENT:
        first_seq = h.base_sequence
        if epoch != entry.producer_epoch:
            if first_seq != 0 and entry.producer_epoch != -1:
                raise KafkaError(errors.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 f"Invalid sequence number for new epoch of producer {pid} at offset {first_offset} "
                                 f"in partition {tp}: {epoch} (request epoch), {first_seq} (seq. number), "
                                 f"{entry.producer_epoch} (current producer epoch)")
        else:
            if not entry.is_empty:
                current_last = entry.last_seq
            elif current is not None and epoch == current.producer_epoch:
                current_last = current.last_seq
            else:
                current_last = NO_SEQUENCE
            known_epoch = current is not None and current.producer_epoch != -1
            in_seq = first_seq == current_last + 1 or (first_seq == 0 and current_last == INT32_MAX)
            if known_epoch and not in_seq:
                raise KafkaError(errors.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 f"Out of order sequence number for producer {pid} at offset {first_offset} in "
                                 f"partition {tp}: {first_seq} (incoming seq. number), {current_last} (current end "
                                 f"sequence number)")
    last_seq = h.base_sequence + h.last_offset_delta if h.base_sequence >= 0 else NO_SEQUENCE
    if last_seq > INT32_MAX:
        last_seq -= INT32_MAX + 1
    entry.add_batch(epoch, last_seq, last_offset, last_offset - first_offset, h.max_timestamp)
    if entry.current_txn_first_offset >= 0 and not h.is_transactional:
        raise KafkaError(errors.INVALID_TXN_STATE,
                         f"Expected transactional write from producer {pid} at offset {first_offset} in "
                         f"partition {tp}")
    if entry.current_txn_first_offset < 0 and h.is_transactional:
        entry.current_txn_first_offset = first_offset
    return None


# -- the manager -----------------------------------------------------------------------------------

class ProducerStateManager:
    """Producer state of one partition (see the module docstring)."""

    def __init__(self, name: str, dir: Path | None, *, expiration_ms: int = 86400000,
                 log_start_offset: int = 0) -> None:
        self.name = name
        self.dir = dir
        self.expiration_ms = expiration_ms
        self.producers: dict[int, ProducerStateEntry] = {}
        # open transactions: first offset -> producer id, in offset order
        self.ongoing: dict[int, int] = {}
        # completed transactions whose marker may be above the high watermark: (first, last offset)
        self.unreplicated: list[tuple[int, int]] = []
        self.aborted = AbortedTxnIndex(dir)
        self.map_end_offset = log_start_offset
        self.last_snap_offset = -1
        self.snapshots: list[int] = []  # offsets of the snapshot files, sorted
        self._seq = itertools.count(1)
        self._applied_seq = 0
        self._segment_base = 0  # active segment base when last seen (roll detection)
        self._truncations = 0  # the log's truncation count when last in sync
        self.log: PartitionStore | None = None

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, plog: PartitionStore, *, expiration_ms: int = 86400000,
             now_ms: int | None = None) -> "ProducerStateManager":
        """The producer state of ``plog``: from its latest usable snapshot plus
        a replay of the log after it (or of the whole log)."""
        self = cls(plog.name, plog.dir, expiration_ms=expiration_ms, log_start_offset=plog.log_start_offset)
        self.log = plog
        names = self._list_dir()  # one listing for the .txnindex and .snapshot files
        self.aborted.load(plog.segment_bases(), names)
        self._listen(plog)
        self._reload(now_ms, names)
        return self

    def _list_dir(self) -> list[str] | None:
        if self.dir is None:
            return None
        try:
            return with_fd_relief(_names, self.dir)
        except FileNotFoundError:
            return []

    def _listen(self, plog: PartitionStore) -> None:
        """Follow compaction swaps (PartitionStore.on_segments_replaced)."""
        listeners = plog.on_segments_replaced
        if self._on_swap not in listeners:
            listeners.append(self._on_swap)

    def _on_swap(self, new_base: int, old_bases: list[int]) -> None:
        if self.log is not None:
            self.aborted.segments_replaced(new_base, old_bases)

    def _list_snapshots(self, names: list[str] | None = None) -> list[int]:
        if names is None:
            names = self._list_dir()
        if not names:
            return []
        out = []
        for n in names:
            if n.endswith(SNAPSHOT_SUFFIX):
                stem = n[: -len(SNAPSHOT_SUFFIX)]
                if len(stem) == 20 and stem.isdigit():
                    out.append(int(stem))
        return sorted(out)

    def _reload(self, now_ms: int | None = None, names: list[str] | None = None) -> None:
        """Rebuild from the latest snapshot within [log start, log end] and a
        replay of the log after it (Kafka's truncateAndReload + rebuild)."""
        plog = self.log
        assert plog is not None
        start, end = plog.log_start_offset, plog.log_end_offset
        self._truncations = plog.truncations
        self.producers.clear()
        self.ongoing.clear()
        self.unreplicated.clear()
        self.snapshots = self._list_snapshots(names)
        for off in [o for o in self.snapshots if o > end or o < start]:
            self._delete_snapshot(off)
        now = _now_ms() if now_ms is None else now_ms
        self.map_end_offset = start
        self.last_snap_offset = -1
        while self.snapshots:
            off = self.snapshots[-1]
            try:
                entries = with_fd_relief(read_snapshot, self._snapshot_path(off))
            except (OSError, ValueError) as e:
                log.warning("%s: ignoring producer snapshot at %d: %s", self.name, off, e)
                self._delete_snapshot(off)
                continue
            for en in sorted(entries, key=lambda x: x.current_txn_first_offset):
                if en.current_txn_first_offset < 0 and now - en.last_timestamp >= self.expiration_ms:
                    continue
                self.producers[en.producer_id] = en
                if en.current_txn_first_offset >= 0:
                    self.ongoing[en.current_txn_first_offset] = en.producer_id
            self.map_end_offset = off
            self.last_snap_offset = off
            break
        self.aborted.truncate_to(self.map_end_offset)
        self._replay_to_end()
        self._segment_base = plog.active_segment_base

    def _replay_to_end(self) -> None:
        """Apply the log from map_end_offset to the log end (no checks)."""
        plog = self.log
        assert plog is not None
        end = plog.log_end_offset
        bases = plog.segment_bases()
        for data, h in iter_log_batches(plog, self.map_end_offset):
            self._replay_batch(data, h, bases)
        self.map_end_offset = max(self.map_end_offset, end)

    def _replay_batch(self, data: bytes | bytearray | memoryview, h: BatchHeader, bases: list[int]) -> None:
        if h.producer_id < 0:
            return
        marker = None
        if h.is_control:
            marker = _read_marker(data, h)
            if marker is None:
                return  # an empty control batch (cleaned) or an unknown control type
        pid = h.producer_id
        cur = self.producers.get(pid)
        entry = cur.copy() if cur is not None else ProducerStateEntry(pid)
        done = _validate_batch(self.name, entry, cur, h, h.base_offset, REPLICATION, marker)
        self.producers[pid] = entry
        if h.is_transactional and not h.is_control and entry.current_txn_first_offset == h.base_offset:
            self.ongoing[h.base_offset] = pid
        if done is not None:
            self._complete(done, _base_for(bases, done.last_offset), index_entries=None)

    # -- syncing with the log ----------------------------------------------------------------------
    def sync(self, plog: PartitionStore) -> None:
        """Catch up with ``plog`` if it moved without us: replay what was
        appended (follower appends), reload if it was truncated below us."""
        if plog is not self.log:
            if self.log is not None and self._on_swap in self.log.on_segments_replaced:
                self.log.on_segments_replaced.remove(self._on_swap)
            self.log = plog
            self.aborted = AbortedTxnIndex(self.dir)
            self.aborted.load(plog.segment_bases())
            self._listen(plog)
            self._reload()
            return
        end = plog.log_end_offset
        truncated = plog.truncations != self._truncations
        if end == self.map_end_offset and not truncated:
            return
        if truncated or end < self.map_end_offset or plog.log_start_offset > self.map_end_offset:
            log.info("%s: log moved under the producer state (end %d, state at %d): reloading", self.name,
                     end, self.map_end_offset)
            self._reload()
        else:
            self._replay_to_end()

    def on_truncate(self, plog: PartitionStore) -> None:
        """The log was truncated (replica truncation): reload from a snapshot."""
        self.log = plog
        self._reload()

    # -- appends ---------------------------------------------------------------------------------
    def prepare(self, data: bytes | bytearray | memoryview, headers: Sequence[BatchHeader], base_offset: int,
                origin: str, append_time: int | None = None) -> AppendPlan | PlainPlan:
        """Validate batches about to be written at ``base_offset`` (raises
        KafkaError with Kafka's code); nothing changes until :meth:`apply`.
        ``append_time``: the topic uses LogAppendTime (the batches' max
        timestamp becomes this, as in the log)."""
        offset = base_offset
        for h in headers:
            if h.producer_id >= 0:
                break
            offset += h.last_offset_delta + 1
        else:
            return PlainPlan(base_offset, offset)
        offset = base_offset
        plan = AppendPlan(base_offset, base_offset)
        for h in headers:
            first = offset
            offset += h.last_offset_delta + 1
            if h.producer_id < 0:
                continue
            pid = h.producer_id
            cur = self.producers.get(pid)
            if origin == CLIENT and cur is not None and pid not in plan.updated and not h.is_control:
                dup = cur.find_duplicate(h.producer_epoch, h.base_sequence,
                                         _last_seq(h.base_sequence, h.last_offset_delta))
                if dup is not None:
                    plan.duplicate = Duplicate(dup.first_offset, dup.last_offset, dup.timestamp)
                    plan.updated.clear()
                    plan.started.clear()
                    plan.completed.clear()
                    plan.end_offset = base_offset
                    return plan
            marker = None
            if h.is_control:
                marker = _read_marker(data, h)
                if marker is None:
                    continue
            entry = plan.updated.get(pid)
            if entry is None:
                entry = cur.copy() if cur is not None else ProducerStateEntry(pid)
                plan.updated[pid] = entry
            had_txn = entry.current_txn_first_offset >= 0
            if append_time is not None:
                h = attrs.evolve(h, max_timestamp=append_time)
            done = _validate_batch(self.name, entry, cur, h, first, origin, marker)
            if not had_txn and entry.current_txn_first_offset == first:
                plan.started.append((first, pid))
            if done is not None:
                plan.completed.append(done)
        plan.end_offset = offset
        return plan

    def apply(self, plan: AppendPlan | PlainPlan, segment_base: int) -> None:
        """Make ``plan`` the current state (the batches are about to be
        written to the segment starting at ``segment_base``)."""
        plan.seq = next(self._seq)
        self._applied_seq = plan.seq
        plan.prev_map_end = self.map_end_offset
        if isinstance(plan, PlainPlan):
            if plan.end_offset > self.map_end_offset:
                self.map_end_offset = plan.end_offset
            return
        for pid, entry in plan.updated.items():
            plan.previous[pid] = self.producers.get(pid)
            self.producers[pid] = entry
        for first, pid in plan.started:
            self.ongoing[first] = pid
        for done in plan.completed:
            if done.first_offset in self.ongoing:
                plan.removed_ongoing.append((done.first_offset, self.ongoing[done.first_offset]))
            self._complete(done, segment_base, plan.index_entries)
        self.map_end_offset = max(self.map_end_offset, plan.end_offset)

    def rollback(self, plan: AppendPlan | PlainPlan) -> None:
        """Take back an applied plan whose write did not happen."""
        if plan.seq != self._applied_seq:
            # something else was applied since: rebuild from the log instead
            self._reload()
            return
        if isinstance(plan, PlainPlan):
            self.map_end_offset = plan.prev_map_end
            self._applied_seq = -1
            return
        for pid, prev in plan.previous.items():
            if prev is None:
                self.producers.pop(pid, None)
            else:
                self.producers[pid] = prev
        for first, _ in plan.started:
            self.ongoing.pop(first, None)
        for first, pid in plan.removed_ongoing:
            self.ongoing[first] = pid
        self.ongoing = dict(sorted(self.ongoing.items()))
        for done in plan.completed:
            self.unreplicated = [u for u in self.unreplicated if u != (done.first_offset, done.last_offset)]
        for base, e in reversed(plan.index_entries):
            self.aborted.remove(base, e)
        self.map_end_offset = plan.prev_map_end
        self._applied_seq = -1

    def _complete(self, done: CompletedTxn, segment_base: int,
                  index_entries: list[tuple[int, AbortedTxn]] | None) -> None:
        if done.aborted:
            lso = done.last_offset + 1
            for first, pid in self.ongoing.items():
                if pid != done.producer_id:
                    lso = first
                    break
            e = AbortedTxn(done.producer_id, done.first_offset, done.last_offset, lso)
            self.aborted.append(segment_base, e)
            if index_entries is not None:
                index_entries.append((segment_base, e))
        self.ongoing.pop(done.first_offset, None)
        self.unreplicated.append((done.first_offset, done.last_offset))

    def after_write(self, plog: PartitionStore) -> None:
        """After an append: a snapshot when the log rolled a segment (Kafka
        snapshots at every roll, so recovery replays at most a segment)."""
        if self.unreplicated:
            hw = plog.high_watermark
            self.unreplicated = [u for u in self.unreplicated if u[1] >= hw]
        base = plog.active_segment_base
        if base != self._segment_base:
            self._segment_base = base
            try:
                self.take_snapshot(sync=False)
            except OSError as e:
                log.warning("%s: writing a producer snapshot failed: %s", self.name, e)

    # -- queries ---------------------------------------------------------------------------------
    def first_unstable_offset(self, high_watermark: int) -> int | None:
        """The first offset of an open transaction, or of a completed one whose
        marker is not below the high watermark yet; None if every
        transaction is decided and replicated."""
        if self.unreplicated:
            self.unreplicated = [u for u in self.unreplicated if u[1] >= high_watermark]
        first = None
        if self.ongoing:
            first = next(iter(self.ongoing))
        for f, _ in self.unreplicated:
            if first is None or f < first:
                first = f
        return first

    def has_ongoing(self, producer_id: int, epoch: int | None = None) -> bool:
        """An open transaction of this producer here (with this epoch, when
        given: a newer epoch may mean that transaction ended)."""
        e = self.producers.get(producer_id)
        return e is not None and e.current_txn_first_offset >= 0 and (epoch is None or e.producer_epoch == epoch)

    def collect_aborted(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        if not self.aborted._bases:
            return []
        plog = self.log
        if plog is not None:
            self.aborted.drop_segments_except(plog.segment_bases())
        return self.aborted.collect(fetch_offset, upper_bound)

    def active_producers(self) -> dict[int, ProducerStateEntry]:
        return self.producers

    # -- expiry ------------------------------------------------------------------------------------
    def remove_expired(self, now_ms: int) -> int:
        gone = [pid for pid, e in self.producers.items()
                if e.current_txn_first_offset < 0 and now_ms - e.last_timestamp >= self.expiration_ms]
        for pid in gone:
            del self.producers[pid]
        return len(gone)

    # -- snapshots -----------------------------------------------------------------------------------
    def _snapshot_path(self, offset: int) -> Path:
        assert self.dir is not None
        return self.dir / f"{offset:020d}{SNAPSHOT_SUFFIX}"

    def _delete_snapshot(self, offset: int) -> None:
        if offset in self.snapshots:
            self.snapshots.remove(offset)
        if self.dir is not None:
            try:
                self._snapshot_path(offset).unlink()
            except FileNotFoundError:
                pass

    def take_snapshot(self, *, sync: bool = True) -> Path | None:
        """Write ``<map_end_offset>.snapshot`` (if not there yet); drop
        snapshots below the log start offset, keeping the latest few."""
        if self.dir is None or self.map_end_offset == self.last_snap_offset:
            return None
        off = self.map_end_offset
        path = self._snapshot_path(off)
        write_snapshot(path, self.producers.values(), sync=sync)
        self.last_snap_offset = off
        bisect.insort(self.snapshots, off)
        plog = self.log
        start = plog.log_start_offset if plog is not None else 0
        old = [o for o in self.snapshots if o < start and o != off]
        for o in old:
            self._delete_snapshot(o)
        while len(self.snapshots) > 10:  # Kafka keeps one per segment; a few suffice to truncate to
            self._delete_snapshot(self.snapshots[0])
        return path

    def flush(self) -> None:
        self.aborted.flush()


# -- snapshot files ----------------------------------------------------------------------------------

def _names(d: Path) -> list[str]:
    with os.scandir(d) as it:
        return [e.name for e in it]


def write_snapshot(path: Path, entries: Iterable[ProducerStateEntry], *, sync: bool = True) -> None:
    body = bytearray()
    n = 0
    for e in entries:
        body += _SNAP_ENTRY.pack(e.producer_id, e.producer_epoch, e.last_seq, e.last_data_offset,
                                 e.last_offset_delta, e.last_timestamp, e.coordinator_epoch,
                                 e.current_txn_first_offset)
        n += 1
    rest = struct.pack(">i", n) + bytes(body)
    data = struct.pack(">hI", SNAPSHOT_VERSION, _crc32c(rest)) + rest
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_snapshot(path: Path) -> list[ProducerStateEntry]:
    data = path.read_bytes()
    if len(data) < _SNAP_HEAD.size:
        raise ValueError("snapshot too short")
    version, crc, n = _SNAP_HEAD.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"unknown snapshot version {version}")
    if _crc32c(memoryview(data)[6:]) != crc:
        raise ValueError("snapshot is corrupt (CRC mismatch)")
    if n < 0 or len(data) != _SNAP_HEAD.size + n * _SNAP_ENTRY.size:
        raise ValueError(f"snapshot length does not match its {n} entries")
    out = []
    for i in range(n):
        pid, epoch, last_seq, last_off, delta, ts, coord, txn_first = _SNAP_ENTRY.unpack_from(
            data, _SNAP_HEAD.size + i * _SNAP_ENTRY.size)
        e = ProducerStateEntry(pid, epoch, coordinator_epoch=coord, last_timestamp=ts,
                               current_txn_first_offset=txn_first)
        if last_off >= 0:
            e.batches.append(BatchMetadata(last_seq, last_off, delta, ts))
        out.append(e)
    return out


# -- helpers -----------------------------------------------------------------------------------------


def _last_seq(base_seq: int, delta: int) -> int:
    if base_seq < 0:
        return NO_SEQUENCE
    s = base_seq + delta
    return s - (INT32_MAX + 1) if s > INT32_MAX else s


def _read_marker(data: bytes | bytearray | memoryview, h: BatchHeader) -> tuple[int, int] | None:
    try:
        recs = decode_records(data, h.position)
    except Exception as e:
        log.warning("undecodable control batch at offset %d: %s", h.base_offset, e)
        return None
    if not recs:
        return None
    try:
        ctype, epoch = decode_marker(recs[0].key, recs[0].value)
    except ValueError:
        return None
    if ctype not in (ABORT, COMMIT):
        return None
    return ctype, epoch


def _base_for(bases: list[int], offset: int) -> int:
    i = bisect.bisect_right(bases, offset) - 1
    return bases[max(i, 0)] if bases else 0


__all__ = [
    "ABORT",
    "AppendPlan",
    "BatchMetadata",
    "CLIENT",
    "COMMIT",
    "COORDINATOR",
    "CompletedTxn",
    "Duplicate",
    "PlainPlan",
    "ProducerStateEntry",
    "ProducerStateManager",
    "REPLICATION",
    "decode_marker",
    "marker_record",
    "read_snapshot",
    "write_snapshot",
]
