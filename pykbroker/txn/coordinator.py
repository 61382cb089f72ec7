"""The transaction coordinator (Kafka's TransactionCoordinator,
TransactionStateManager and TransactionMarkerChannelManager, on trio).

State: one :class:`~.metadata.TransactionMetadata` per transactional id,
persisted in ``__transaction_state`` (partition ``abs(hash(id)) %
transaction.state.log.num.partitions``, created on first use, compacted)
through ``BrokerState.append`` with acks=all; loaded back at start (until a
partition is loaded its ids answer COORDINATOR_LOAD_IN_PROGRESS).

Concurrency: one ``trio.Lock`` per transactional id; every operation that
changes a transaction runs under it, including its log writes and marker
writes, so operations on one id never interleave (a request arriving
meanwhile waits instead of getting CONCURRENT_TRANSACTIONS). Timers (the
transaction timeout, transactional-id expiry) are deadlines on one task
(``group.timers.Timers``), no polling.

End of a transaction: PrepareCommit/PrepareAbort is written, then a
COMMIT/ABORT control batch to every partition of the transaction (through
``BrokerState.append``, all partitions at once; for ``__consumer_offsets``
partitions the group coordinator then materialises or drops the
transaction's offsets), then CompleteCommit/CompleteAbort, all before EndTxn
answers, so a committed transaction is visible to read_committed consumers
when the producer's commit returns. Prepare* and the markers wait for the
in-sync replicas; Complete* only for the local append (losing it with the
leader only means the next coordinator writes the markers again). If a marker cannot be written (a partition without a
leader, a storage error) the answer is still NONE (the decision is
durable) and the transaction stays in Prepare* (CONCURRENT_TRANSACTIONS
for its producer) while a background task retries. A transaction found in
Prepare* at load is completed the same way; an Ongoing one is aborted when
its timeout passes (counted from its start, as Kafka).

Fencing: InitProducerId for an id with an open transaction bumps the
epoch, aborts the transaction with the new epoch (the markers fence the
old producer's later writes at every partition) and answers
CONCURRENT_TRANSACTIONS; the client's retry bumps again. The transaction
timeout does the same without a client. Producers with an older epoch
get PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for versions that predate it).

Cluster mode (best effort): the coordinator of an id is the leader of its
``__transaction_state`` partition; partitions are loaded/unloaded as
leadership moves; markers for partitions led elsewhere go out as
WriteTxnMarkers.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from collections.abc import Iterable

import trio

from ..protocol.codec import Message
from ..group.coordinator_base import InternalTopicCoordinator
from ..group.timers import Timers
from ..protocol import errors
from ..protocol.records import InvalidRecords, build_batch, decode_records, validate_batches
from ..storage.log import iter_log_batches
from ..storage.producer_state import COORDINATOR, marker_record
from . import records
from .metadata import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    DEAD,
    EMPTY,
    EXPIRATION_ALLOWED,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    ONGOING,
    PREPARE_ABORT,
    PREPARE_COMMIT,
    PREPARE_EPOCH_FENCE,
    SHORT_MAX,
    STATE_NAMES,
    STATES_BY_NAME,
    TV_0,
    TV_2,
    IllegalTransition,
    TransactionMetadata,
    TxnError,
    TxnTransit,
    is_epoch_exhausted,
)
from .producer_ids import manager_for
from .producers import expire_all
from .records import TRANSACTION_STATE_TOPIC
from ..util import now_ms

log = logging.getLogger("pykbroker.txn")

OFFSETS_TOPIC = "__consumer_offsets"
MARKER_RETRY_BACKOFF_S = 0.1
MARKER_INLINE_ATTEMPTS = 3

# marker write outcomes
_DONE, _SKIP, _RETRY, _ABANDON = "done", "skip", "retry", "abandon"
_RETRIABLE_MARKER_ERRORS = {
    errors.NOT_LEADER_OR_FOLLOWER, errors.UNKNOWN_TOPIC_OR_PARTITION, errors.NOT_ENOUGH_REPLICAS,
    errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND, errors.REQUEST_TIMED_OUT, errors.KAFKA_STORAGE_ERROR,
    errors.LEADER_NOT_AVAILABLE, errors.NETWORK_EXCEPTION, errors.COORDINATOR_LOAD_IN_PROGRESS,
    errors.COORDINATOR_NOT_AVAILABLE, errors.NOT_COORDINATOR,
}


def _cfg(cfg: Any, key: str, default: Any) -> Any:
    try:
        v = cfg[key]
    except KeyError:
        return default
    return default if v is None else v


def map_append_error(code: int) -> int:
    """Kafka's mapping of a failed __transaction_state write to what clients get."""
    if code in (errors.UNKNOWN_TOPIC_OR_PARTITION, errors.NOT_ENOUGH_REPLICAS,
                errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND, errors.REQUEST_TIMED_OUT):
        return errors.COORDINATOR_NOT_AVAILABLE
    if code in (errors.NOT_LEADER_OR_FOLLOWER, errors.KAFKA_STORAGE_ERROR):
        return errors.NOT_COORDINATOR
    if code in (errors.MESSAGE_TOO_LARGE, errors.RECORD_LIST_TOO_LARGE):
        return errors.UNKNOWN_SERVER_ERROR
    return code if code else errors.UNKNOWN_SERVER_ERROR


class TransactionCoordinator(InternalTopicCoordinator):
    TIMER_KIND = "transaction"
    TOPIC = TRANSACTION_STATE_TOPIC
    FENCED_WRITES = True

    def __init__(self, state: Any) -> None:
        self.state = state
        cfg = state.config
        self.num_partitions = int(cfg["transaction.state.log.num.partitions"])
        self.max_timeout_ms = int(cfg["transaction.max.timeout.ms"])
        self.txn_id_expiration_ms = int(cfg["transactional.id.expiration.ms"])
        self.min_isr = int(cfg["transaction.state.log.min.isr"])
        self.segment_bytes = int(_cfg(cfg, "transaction.state.log.segment.bytes", 104857600))
        self.producer_expiry_check_ms = int(_cfg(cfg, "producer.id.expiration.check.interval.ms", 600000))
        self.txns: dict[str, TransactionMetadata] = {}
        self.timers = Timers()
        self._locks: dict[str, trio.Lock] = {}
        self.pids = manager_for(state)
        ts = state.topics.get(TRANSACTION_STATE_TOPIC)
        self.loading: set[int] = set()
        self._load_gen: dict[int, int] = {}  # bumped on every leadership change of a partition
        if ts is not None:
            self.loading = {i for i in range(len(ts.partitions)) if self._leads(i)}
        self._init_epochs()
        self.loaded = trio.Event()
        if not self.loading:
            self.loaded.set()
        self._nursery: trio.Nursery | None = None
        self._retrying: set[str] = set()
        state.add_leadership_listener(self._on_leadership)

    # -- lifecycle ----------------------------------------------------------------------------------
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Timers, producer-id expiry, loading; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.timers.run, self._fire)
            nursery.start_soon(self._producer_expiry_loop)
            task_status.started()
            await self._load(sorted(self.loading))

    async def _producer_expiry_loop(self) -> None:
        interval = max(self.producer_expiry_check_ms, 1) / 1000
        while True:
            await trio.sleep(interval)  # Kafka's periodic producer.id.expiration.check.interval.ms
            n = expire_all(self.state, now_ms())
            if n:
                log.info("expired %d producer ids", n)

    def _key_exists(self, key: str) -> bool:
        return key in self.txns

    def _spawn(self, fn: Any, *args: Any) -> None:
        n = self._nursery or getattr(self.state, "nursery", None)
        if n is not None:
            n.start_soon(fn, *args)

    # -- the topic (placement logic: group/coordinator_base.py) -----------------------------------
    def topic_partitions(self) -> int:
        return self.num_partitions

    def topic_configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact", "compression.type": "uncompressed",
                "segment.bytes": str(self.segment_bytes), "min.insync.replicas": str(self.min_isr),
                "unclean.leader.election.enable": "false"}

    @staticmethod
    def key_partition(key: str, partitions: int) -> int:
        return records.partition_for(key, partitions)

    def coordinator_epoch(self, partition: int) -> int:
        ts = self.topic()
        if ts is None:
            return 0
        epoch: int = ts.partitions[partition].leader_epoch
        return max(epoch, 0)

    # -- loading --------------------------------------------------------------------------------------
    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        if topic != TRANSACTION_STATE_TOPIC:
            return
        if self._track_leadership(partition, is_leader, leader_epoch):
            self._spawn(self._load, [partition])
        elif not is_leader:
            ts = self.topic()
            n = len(ts.partitions) if ts is not None else self.num_partitions
            for tid in [t for t in self.txns if records.partition_for(t, n) == partition]:
                self.txns.pop(tid, None)
                self.timers.cancel(("timeout", tid))
                self.timers.cancel(("expire", tid))

    async def _load(self, partitions: list[int]) -> None:
        ts = self.topic()
        if ts is None:
            self.loaded.set()
            return
        t0 = trio.current_time()
        gens = {part: self._load_gen.get(part, 0) for part in partitions}
        found: dict[str, TransactionMetadata] = {}
        for part in partitions:
            p = ts.partitions[part]
            try:
                recs = await trio.to_thread.run_sync(_read_partition, p.log) if p.log is not None else []
                for key, value in recs:
                    try:
                        d = records.decode(key, value)
                    except Exception as e:
                        log.warning("skipping undecodable record in %s-%d: %s", TRANSACTION_STATE_TOPIC, part, e)
                        continue
                    if d is None:
                        continue
                    tid, v = d
                    if v is None:
                        found.pop(tid, None)
                    else:
                        found[tid] = TransactionMetadata.from_log(tid, v)
            except Exception:
                log.exception("loading %s-%d failed", TRANSACTION_STATE_TOPIC, part)
        n = len(ts.partitions)
        # partitions whose leadership changed while they were read are left to
        # the load that change started (or stay unloaded: not ours any more)
        current = {part for part in partitions if self._load_gen.get(part, 0) == gens[part]}
        for tid, meta in list(found.items()):
            if records.partition_for(tid, n) in current:
                self.txns[tid] = meta
            else:
                del found[tid]
        for part in current:
            self.loading.discard(part)
        if not self.loading:
            self.loaded.set()
        log.info("loaded %d transactional ids from %d partition(s) of %s in %.3f s", len(found), len(partitions),
                 TRANSACTION_STATE_TOPIC, trio.current_time() - t0)
        # transactions whose markers may be missing must wait for the group
        # coordinator's load, so it sees their __consumer_offsets markers
        gc = getattr(self.state, "group_coordinator", None)
        if gc is not None and getattr(gc, "loaded", None) is not None:
            await gc.loaded.wait()
        for tid, meta in list(found.items()):
            if self.txns.get(tid) is not meta:
                continue
            if meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
                log.info("transaction %s was %s at load: writing its markers", tid, meta.state_name)
                self._spawn(self._complete_in_background, tid)
            else:
                self._reschedule(meta)

    # -- persistence --------------------------------------------------------------------------------------
    async def _write(self, meta: TransactionMetadata, t: TxnTransit, *, acks: int = -1) -> int:
        """Append the transition to ``__transaction_state`` and complete it;
        on failure the pending transition is dropped. Returns an error code.
        ``acks=1``: complete it once the local append is done, without waiting
        for the followers (Complete*: see _markers_and_complete)."""
        ts = self.topic()
        if ts is None:
            meta.abort_pending()
            return errors.COORDINATOR_NOT_AVAILABLE
        p = ts.partitions[self.partition_for(meta.transactional_id)]
        now = now_ms()
        value = None if t.state == DEAD else records.value_bytes(t)
        batch = build_batch([(records.key_bytes(meta.transactional_id), value, (), now)])
        try:
            headers = validate_batches(batch, max_batch_bytes=None, client=False)
            await self.append_state(meta.transactional_id, p, bytearray(batch), headers, now=now, acks=acks)
        except InvalidRecords as e:
            meta.abort_pending()
            log.warning("transaction %s: cannot write %s: %s", meta.transactional_id, STATE_NAMES[t.state], e)
            return map_append_error(e.error_code)
        except errors.KafkaError as e:
            meta.abort_pending()
            log.warning("transaction %s: cannot write %s: %s", meta.transactional_id, STATE_NAMES[t.state], e)
            return map_append_error(e.code)
        except BaseException:
            meta.abort_pending()
            raise
        if t.state == DEAD:
            meta.pending = None
            meta.state = DEAD
        else:
            meta.complete_transition(t)
        self._reschedule(meta)
        return errors.NONE

    def _reschedule(self, meta: TransactionMetadata) -> None:
        tid = meta.transactional_id
        if self.txns.get(tid) is not meta:
            return
        now = now_ms()
        if meta.state == ONGOING and meta.start_ts >= 0:
            self.timers.schedule(("timeout", tid), meta.start_ts + meta.timeout_ms - now, tid,
                                 lambda: self._on_timeout(tid))
        else:
            self.timers.cancel(("timeout", tid))
        if meta.state in EXPIRATION_ALLOWED:
            self.timers.schedule(("expire", tid), meta.update_ts + self.txn_id_expiration_ms - now, tid,
                                 lambda: self._on_expire(tid))
        else:
            self.timers.cancel(("expire", tid))

    # -- InitProducerId -------------------------------------------------------------------------------------
    async def init_producer_id(self, txn_id: str | None, timeout_ms: int,
                               expected: tuple[int, int] | None) -> tuple[int, int, int]:
        """(error, producer id, epoch). ``expected``: the (producer id, epoch)
        a v3+ client sends to bump its epoch (None: a new producer)."""
        fail = (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        if txn_id is None:
            # idempotent producers: always a fresh producer id
            return errors.NONE, self.pids.next_id(), 0
        if not txn_id:
            return (errors.INVALID_REQUEST, *fail)
        if not 0 < timeout_ms <= self.max_timeout_ms:
            return (errors.INVALID_TRANSACTION_TIMEOUT, *fail)
        err = self.availability(txn_id)
        if err:
            return (err, *fail)
        async with self._lock(txn_id):
            err = self.availability(txn_id)
            if err:
                return (err, *fail)
            meta = self.txns.get(txn_id)
            now = now_ms()
            if meta is None:
                meta = TransactionMetadata(txn_id, self.pids.next_id(), NO_PRODUCER_EPOCH, NO_PRODUCER_EPOCH,
                                           timeout_ms, EMPTY, set(), -1, now)
                self.txns[txn_id] = meta
            if meta.pending is not None:
                return (errors.CONCURRENT_TRANSACTIONS, *fail)
            if expected is not None and not (
                    meta.producer_epoch == NO_PRODUCER_EPOCH or expected[0] == meta.producer_id
                    or (expected[0] == meta.prev_producer_id and is_epoch_exhausted(expected[1]))):
                return (errors.PRODUCER_FENCED, *fail)
            state = meta.state
            if state in (PREPARE_ABORT, PREPARE_COMMIT):
                return (errors.CONCURRENT_TRANSACTIONS, *fail)
            if state in (COMPLETE_ABORT, COMPLETE_COMMIT, EMPTY):
                try:
                    if meta.epoch_exhausted and (expected is None or expected[1] == meta.producer_epoch):
                        t = meta.prepare_rotation(self.pids.next_id(), timeout_ms, now, expected is not None)
                    else:
                        t = meta.prepare_increment_epoch(timeout_ms, None if expected is None else expected[1], now)
                except TxnError as e:
                    return (e.code, *fail)
                err = await self._write(meta, t)
                if err:
                    return (err, *fail)
                log.info("initialized transactional id %s with producer id %d epoch %d", txn_id,
                         meta.producer_id, meta.producer_epoch)
                return errors.NONE, meta.producer_id, meta.producer_epoch
            if state == ONGOING:
                # fence the current producer: abort its transaction with a bumped
                # epoch, then let the client retry (which bumps again)
                fence = meta.prepare_fence_epoch()
                err, _, _ = await self._end_locked(meta, fence.producer_id, fence.producer_epoch, False,
                                                   from_client=False, client_tv=meta.tv)
                return (err or errors.CONCURRENT_TRANSACTIONS, *fail)
            raise IllegalTransition(f"transactional id {txn_id} in state {meta.state_name} at InitProducerId")

    # -- AddPartitionsToTxn / AddOffsetsToTxn ----------------------------------------------------------------
    async def add_partitions(self, txn_id: str | None, pid: int, epoch: int,
                             partitions: Iterable[tuple[str, int]]) -> int:
        parts = set(partitions)
        if not txn_id:
            return errors.INVALID_REQUEST
        err = self.availability(txn_id)
        if err:
            return err
        async with self._lock(txn_id):
            err = self.availability(txn_id)
            if err:
                return err
            meta = self.txns.get(txn_id)
            if meta is None or meta.producer_id != pid:
                return errors.INVALID_PRODUCER_ID_MAPPING
            if meta.producer_epoch != epoch:
                return errors.PRODUCER_FENCED
            if meta.pending is not None or meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
                return errors.CONCURRENT_TRANSACTIONS
            if meta.state == ONGOING and parts <= meta.partitions:
                return errors.NONE
            if meta.state == DEAD:
                return errors.INVALID_PRODUCER_ID_MAPPING
            t = meta.prepare_add_partitions(parts, now_ms())
            return await self._write(meta, t)

    def verify_partition(self, txn_id: str | None, pid: int, epoch: int, tp: tuple[str, int]) -> int:
        """Is ``tp`` part of the open transaction of (pid, epoch)? NONE, or
        TRANSACTION_ABORTABLE when it is not (Kafka's verifyOnly AddPartitionsToTxn)."""
        if not txn_id:
            return errors.INVALID_REQUEST
        err = self.availability(txn_id, create=False)
        if err:
            return err
        meta = self.txns.get(txn_id)
        if meta is None or meta.producer_id != pid:
            return errors.INVALID_PRODUCER_ID_MAPPING
        if meta.producer_epoch != epoch:
            return errors.PRODUCER_FENCED
        if meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
            return errors.CONCURRENT_TRANSACTIONS
        return errors.NONE if tp in meta.partitions else errors.TRANSACTION_ABORTABLE

    async def verify_remote(self, txn_id: str, pid: int, epoch: int, tp: tuple[str, int], *, add: bool) -> int:
        """Cluster mode: ask the coordinator of ``txn_id`` on another broker
        (AddPartitionsToTxn v4: verify_only, or an add for KIP-890 clients)."""
        ts = self.topic()
        if ts is None:
            return errors.COORDINATOR_NOT_AVAILABLE
        leader = self.state.leader_of(TRANSACTION_STATE_TOPIC, self.partition_for(txn_id))
        if leader is None or leader < 0 or leader == self.state.node_id:
            return errors.COORDINATOR_NOT_AVAILABLE
        body = {"transactions": [{"transactional_id": txn_id, "producer_id": pid, "producer_epoch": epoch,
                                  "verify_only": not add, "topics": [{"name": tp[0], "partitions": [tp[1]]}]}]}
        resp = await self._call(leader, 24, 4, body)
        if resp is None:
            return errors.NETWORK_EXCEPTION
        code: int = resp["error_code"]
        if code:
            return code
        for t in resp["results_by_transaction"]:
            for tr in t["topic_results"]:
                for pr in tr["results_by_partition"]:
                    code = pr["partition_error_code"]
                    return code
        return errors.UNKNOWN_SERVER_ERROR

    async def _call(self, node: int, api_key: int, version: int, body: Message) -> Message | None:
        """One request to another broker (server/replicas.py); None if it failed."""
        resp: Message | None = await self.state.replicas.call(node, api_key, version, body)
        return resp

    # -- EndTxn ----------------------------------------------------------------------------------------
    async def end_txn(self, txn_id: str | None, pid: int, epoch: int, commit: bool,
                      client_tv: int) -> tuple[int, int, int]:
        """(error, producer id, epoch): the producer id/epoch to use next
        (EndTxn v5+: the bumped epoch)."""
        if not txn_id:
            return errors.INVALID_REQUEST, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        err = self.availability(txn_id)
        if err:
            return err, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
        async with self._lock(txn_id):
            err = self.availability(txn_id)
            if err:
                return err, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
            meta = self.txns.get(txn_id)
            if meta is None:
                return errors.INVALID_PRODUCER_ID_MAPPING, NO_PRODUCER_ID, NO_PRODUCER_EPOCH
            return await self._end_locked(meta, pid, epoch, commit, from_client=True, client_tv=client_tv)

    async def _end_locked(self, meta: TransactionMetadata, pid: int, epoch: int, commit: bool, *,
                          from_client: bool, client_tv: int) -> tuple[int, int, int]:
        """Kafka's endTransaction, lock held: checks, PrepareCommit/Abort,
        markers, Complete*."""
        fail = (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
        fencing = meta.pending == PREPARE_EPOCH_FENCE
        v2 = not fencing and meta.tv >= TV_2
        retry_overflow = v2 and meta.prev_producer_id == pid and epoch == SHORT_MAX - 1 and meta.producer_epoch == 0
        retry_bump = v2 and meta.producer_epoch == epoch + 1
        if v2:
            if meta.state in (ONGOING, EMPTY, DEAD, PREPARE_EPOCH_FENCE):
                valid = epoch == meta.producer_epoch
            elif meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
                valid = retry_bump
            else:
                valid = retry_bump or retry_overflow
        else:
            valid = (not from_client or epoch == meta.producer_epoch) and epoch >= meta.producer_epoch
        if meta.producer_id != pid and not retry_overflow:
            if fencing:
                meta.abort_pending()
            return (errors.INVALID_PRODUCER_ID_MAPPING, *fail)
        if not valid:
            if fencing:
                meta.abort_pending()
            return (errors.PRODUCER_FENCED, *fail)
        if meta.pending is not None and not fencing:
            return (errors.CONCURRENT_TRANSACTIONS, *fail)
        state = meta.state
        if state == ONGOING:
            next_state = PREPARE_COMMIT if commit else PREPARE_ABORT
            next_pid = NO_PRODUCER_ID
            if client_tv >= TV_2 and not fencing and meta.epoch_exhausted:
                next_pid = self.pids.next_id()
            if fencing:
                meta.pending = None
                meta.producer_epoch = epoch
                meta.last_producer_epoch = NO_PRODUCER_EPOCH
            t = meta.prepare_abort_or_commit(next_state, client_tv if not fencing else TV_0, next_pid, now_ms())
            err = await self._write(meta, t)
            if err:
                if fencing:
                    meta.failed_epoch_fence = True
                return (err, *fail)
            log.info("transaction %s: %s (producer id %d, epoch %d, %d partitions)", meta.transactional_id,
                     meta.state_name, meta.producer_id, meta.producer_epoch, len(meta.partitions))
            await self._markers_and_complete(meta, background_on_failure=True)
            return errors.NONE, meta.producer_id, meta.producer_epoch
        if fencing:
            meta.abort_pending()
        if state == COMPLETE_COMMIT:
            return (errors.NONE, meta.producer_id, meta.producer_epoch) if commit else (errors.INVALID_TXN_STATE, *fail)
        if state == COMPLETE_ABORT:
            return (errors.NONE, meta.producer_id, meta.producer_epoch) if not commit else (
                errors.INVALID_TXN_STATE, *fail)
        if state == PREPARE_COMMIT:
            return (errors.CONCURRENT_TRANSACTIONS if commit else errors.INVALID_TXN_STATE, *fail)
        if state == PREPARE_ABORT:
            return (errors.CONCURRENT_TRANSACTIONS if not commit else errors.INVALID_TXN_STATE, *fail)
        if state == EMPTY:
            return (errors.INVALID_TXN_STATE, *fail)
        raise IllegalTransition(f"transactional id {meta.transactional_id} in state {meta.state_name} at EndTxn")

    # -- markers -----------------------------------------------------------------------------------------
    async def _markers_and_complete(self, meta: TransactionMetadata, *, background_on_failure: bool) -> bool:
        """Write the markers of a Prepare* transaction, then Complete*. False
        if it must be retried later (then, with ``background_on_failure``, a
        background task does)."""
        commit = meta.state == PREPARE_COMMIT
        part = self.partition_for(meta.transactional_id)
        coord_epoch = self.coordinator_epoch(part)
        pending = set(meta.partitions)
        for attempt in range(MARKER_INLINE_ATTEMPTS):
            if attempt:
                await trio.sleep(MARKER_RETRY_BACKOFF_S * attempt)
            outcome = await self._write_markers(meta.producer_id, meta.producer_epoch, commit, coord_epoch,
                                                sorted(pending))
            for tp, how in outcome.items():
                if how == _ABANDON:
                    log.warning("transaction %s: marker for %s-%d abandoned (producer or coordinator epoch "
                                "moved on)", meta.transactional_id, *tp)
                if how in (_DONE, _SKIP, _ABANDON):
                    pending.discard(tp)
            if not pending:
                break
        if pending:
            log.warning("transaction %s: markers for %d partition(s) not written yet; retrying in the background",
                        meta.transactional_id, len(pending))
            if background_on_failure:
                self._spawn(self._complete_in_background, meta.transactional_id)
            return False
        # Complete* does not wait for the followers (issue 17: one replication
        # round trip less per commit in a cluster; Kafka answers EndTxn before
        # writing it at all). Safe: if it is lost with the leader, the next
        # coordinator loads Prepare* and writes the markers again (markers are
        # idempotent), and any later write of this id waits (acks=all) for
        # the high watermark to pass it in the log.
        t = meta.prepare_complete(now_ms())
        err = await self._write(meta, t, acks=1)
        if err:
            log.warning("transaction %s: cannot write %s: %s", meta.transactional_id, STATE_NAMES[t.state],
                        errors.NAMES.get(err, err))
            if background_on_failure:
                self._spawn(self._complete_in_background, meta.transactional_id)
            return False
        return True

    async def _complete_in_background(self, txn_id: str) -> None:
        if txn_id in self._retrying:
            return
        self._retrying.add(txn_id)
        try:
            delay = MARKER_RETRY_BACKOFF_S
            while True:
                async with self._lock(txn_id):
                    meta = self.txns.get(txn_id)
                    if meta is None or meta.state not in (PREPARE_COMMIT, PREPARE_ABORT) or meta.pending is not None:
                        return
                    if await self._markers_and_complete(meta, background_on_failure=False):
                        return
                await trio.sleep(delay)
                delay = min(delay * 2, 5.0)
        finally:
            self._retrying.discard(txn_id)

    async def _write_markers(self, pid: int, epoch: int, commit: bool, coord_epoch: int,
                             partitions: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """One marker per partition: written here when this broker leads it,
        else sent to its leader as WriteTxnMarkers (one request per broker).
        All in parallel, as Kafka's TransactionMarkerChannelManager sends to
        every leader at once: the slowest replication, not their sum, is what
        EndTxn waits for. Outcome per partition."""
        out: dict[tuple[str, int], str] = {}
        local: list[tuple[tuple[str, int], Any]] = []
        remote: dict[int, list[tuple[str, int]]] = {}
        st = self.state
        for tp in partitions:
            topic, idx = tp
            p = st.partition(topic, idx)
            if p is None:
                out[tp] = _SKIP  # the topic (or partition) is gone
                continue
            if not st.replicas.is_leader(p):
                leader = st.leader_of(topic, idx)
                if leader is None or leader < 0 or leader == st.node_id:
                    out[tp] = _RETRY
                else:
                    remote.setdefault(leader, []).append(tp)
                continue
            local.append((tp, p))

        async def one_local(tp: tuple[str, int], p: Any) -> None:
            out[tp] = self._outcome(await self.write_marker(p, pid, epoch, commit, coord_epoch))

        async def one_broker(node: int, tps: list[tuple[str, int]]) -> None:
            codes = await self._send_markers(node, pid, epoch, commit, coord_epoch, tps)
            for tp in tps:
                out[tp] = self._outcome(codes.get(tp, errors.NETWORK_EXCEPTION))

        async with trio.open_nursery() as nursery:
            for tp, p in local:
                nursery.start_soon(one_local, tp, p)
            for node, tps in remote.items():
                nursery.start_soon(one_broker, node, tps)
        return out

    @staticmethod
    def _outcome(code: int) -> str:
        if code == errors.NONE:
            return _DONE
        if code in (errors.INVALID_PRODUCER_EPOCH, errors.TRANSACTION_COORDINATOR_FENCED, errors.PRODUCER_FENCED):
            return _ABANDON
        if code in (errors.UNSUPPORTED_FOR_MESSAGE_FORMAT, errors.UNSUPPORTED_VERSION):
            return _SKIP
        if code in _RETRIABLE_MARKER_ERRORS:
            return _RETRY
        return _RETRY

    async def write_marker(self, p: Any, pid: int, epoch: int, commit: bool, coord_epoch: int) -> int:
        """Append a COMMIT/ABORT control batch to partition ``p`` (this broker
        leads it) and let the group coordinator know for ``__consumer_offsets``."""
        now = now_ms()
        key, value = marker_record(commit, coord_epoch)
        batch = build_batch([(key, value, (), now)], producer_id=pid, producer_epoch=epoch, base_sequence=-1,
                            transactional=True, control=True)
        try:
            headers = validate_batches(batch, max_batch_bytes=None, client=False)
            await self.state.append(p, bytearray(batch), headers, acks=-1, now=now, origin=COORDINATOR)
        except InvalidRecords as e:
            log.warning("marker for %s-%d: %s", p.topic, p.index, e)
            return e.error_code
        except errors.KafkaError as e:
            log.warning("marker for %s-%d: %s", p.topic, p.index, e)
            return e.code
        if p.topic == OFFSETS_TOPIC:
            gc = getattr(self.state, "group_coordinator", None)
            if gc is not None and hasattr(gc, "on_txn_marker"):
                try:
                    gc.on_txn_marker(p.index, pid, commit)
                except Exception:
                    log.exception("group coordinator failed to complete the offsets of producer %d", pid)
                    return errors.UNKNOWN_SERVER_ERROR
        return errors.NONE

    async def _send_markers(self, node: int, pid: int, epoch: int, commit: bool, coord_epoch: int,
                            tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """WriteTxnMarkers v1 to another broker (cluster mode)."""
        by_topic: dict[str, list[int]] = {}
        for t, i in tps:
            by_topic.setdefault(t, []).append(i)
        body = {"markers": [{"producer_id": pid, "producer_epoch": epoch, "transaction_result": commit,
                             "topics": [{"name": t, "partition_indexes": ps} for t, ps in by_topic.items()],
                             "coordinator_epoch": coord_epoch}]}
        resp = await self._call(node, 27, 1, body)
        if resp is None:
            return {}
        out: dict[tuple[str, int], int] = {}
        for m in resp["markers"]:
            for t in m["topics"]:
                for pr in t["partitions"]:
                    out[(t["name"], pr["partition_index"])] = pr["error_code"]
        return out

    # -- timers ---------------------------------------------------------------------------------------------
    async def _on_timeout(self, txn_id: str) -> None:
        """Lock held: abort a transaction open past its timeout (fencing its producer)."""
        meta = self.txns.get(txn_id)
        if meta is None or meta.state != ONGOING or meta.pending is not None:
            return
        if meta.start_ts + meta.timeout_ms > now_ms():
            self._reschedule(meta)  # moved on (a new transaction) since the timer was set
            return
        log.info("transaction %s (producer id %d, epoch %d) timed out after %d ms: aborting", txn_id,
                 meta.producer_id, meta.producer_epoch, meta.timeout_ms)
        fence = meta.prepare_fence_epoch()
        err, _, _ = await self._end_locked(meta, fence.producer_id, fence.producer_epoch, False,
                                           from_client=False, client_tv=meta.tv)
        if err:
            log.warning("aborting timed-out transaction %s failed: %s", txn_id, errors.NAMES.get(err, err))
            self.timers.schedule(("timeout", txn_id), 1000, txn_id, lambda: self._on_timeout(txn_id))

    async def _on_expire(self, txn_id: str) -> None:
        """Lock held: remove a transactional id unused for transactional.id.expiration.ms."""
        meta = self.txns.get(txn_id)
        if meta is None or meta.state not in EXPIRATION_ALLOWED or meta.pending is not None:
            return
        if meta.update_ts + self.txn_id_expiration_ms > now_ms():
            self._reschedule(meta)
            return
        t = meta.prepare_dead()
        err = await self._write(meta, t)
        if err:
            log.warning("expiring transactional id %s failed: %s", txn_id, errors.NAMES.get(err, err))
            return
        self.txns.pop(txn_id, None)
        self.timers.cancel(("timeout", txn_id))
        self.timers.cancel(("expire", txn_id))
        log.info("expired transactional id %s", txn_id)

    # -- admin ------------------------------------------------------------------------------------------------
    def describe(self, txn_id: str) -> Message:
        out: dict[str, Any] = {"error_code": errors.NONE, "transactional_id": txn_id, "transaction_state": "",
                               "transaction_timeout_ms": 0, "transaction_start_time_ms": -1, "producer_id": -1,
                               "producer_epoch": -1, "topics": []}
        if not txn_id:
            out["error_code"] = errors.INVALID_REQUEST
            return out
        err = self.availability(txn_id, create=False)
        if err:
            out["error_code"] = err
            return out
        meta = self.txns.get(txn_id)
        if meta is None or meta.state == DEAD:
            out["error_code"] = errors.TRANSACTIONAL_ID_NOT_FOUND
            return out
        by_topic: dict[str, list[int]] = {}
        for t, i in sorted(meta.partitions):
            by_topic.setdefault(t, []).append(i)
        out.update(transaction_state=meta.state_name, transaction_timeout_ms=meta.timeout_ms,
                   transaction_start_time_ms=meta.start_ts, producer_id=meta.producer_id,
                   producer_epoch=meta.producer_epoch,
                   topics=[{"topic": t, "partitions": ps} for t, ps in by_topic.items()])
        return out

    def list(self, states: list[str], producer_ids: list[int], duration_ms: int = -1,
             pattern: str | None = None) -> Message:
        out: dict[str, Any] = {"error_code": errors.NONE, "unknown_state_filters": [], "transaction_states": []}
        if self.loading:
            out["error_code"] = errors.COORDINATOR_LOAD_IN_PROGRESS
            return out
        wanted = set()
        for s in states:
            if s in STATES_BY_NAME:
                wanted.add(STATES_BY_NAME[s])
            else:
                out["unknown_state_filters"].append(s)
        pids = set(producer_ids)
        rx = None
        if pattern:
            try:
                rx = re.compile(pattern)
            except re.error:
                out["error_code"] = errors.INVALID_REGULAR_EXPRESSION
                return out
        now = now_ms()
        for tid, meta in sorted(self.txns.items()):
            if meta.state == DEAD:
                continue
            if pids and meta.producer_id not in pids:
                continue
            if states and meta.state not in wanted:
                continue
            if duration_ms >= 0 and now - meta.start_ts <= duration_ms:
                continue
            if rx is not None and not rx.fullmatch(tid):
                continue
            out["transaction_states"].append({"transactional_id": tid, "producer_id": meta.producer_id,
                                              "transaction_state": meta.state_name})
        return out


def _read_partition(plog: Any) -> list[tuple[bytes | None, bytes | None]]:
    """Every data record of a ``__transaction_state`` partition, in order (worker thread)."""
    out: list[tuple[bytes | None, bytes | None]] = []
    for data, h in iter_log_batches(plog, plog.log_start_offset):
        if not h.is_control:
            out.extend((r.key, r.value) for r in decode_records(data, h.position))
    return out
