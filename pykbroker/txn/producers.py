"""Producer state on the broker's partitions: the hooks of the append path,
the last stable offset, aborted transactions for Fetch, verification of
transactional produce against the coordinator, snapshots and expiry.

``PartitionState.producers`` holds each partition's
:class:`~pykbroker.storage.producer_state.ProducerStateManager`, loaded with
the logs at start when the partition was recovered after a crash
(:func:`load_all`, in the loading thread), else on first use (an append,
the last stable offset, a read_committed fetch: :func:`loaded`).

``BrokerState.append`` (the one append path) calls :func:`before_append`
right before the log write (validation: KafkaError with Kafka's code; a
duplicate comes back as ``plan.duplicate``, answered with the original
offsets), then :func:`after_append`, or :func:`append_failed` when the write
raised (the plan is taken back unless the batches reached the log).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

from ..protocol.codec import Message
from ..protocol import errors
from ..protocol.records import BatchHeader
from ..storage.api import AppendResult
from ..storage.producer_state import CLIENT, COORDINATOR, AppendPlan, PlainPlan, ProducerStateManager

if TYPE_CHECKING:
    from ..server.state import BrokerState, PartitionState
    from .coordinator import TransactionCoordinator

log = logging.getLogger("pykbroker.txn")

__all__ = ["CLIENT", "COORDINATOR", "before_append", "after_append", "append_failed", "duplicate_result",
           "producer_state",
           "aborted_transactions", "verify_transactional", "load_all", "loaded", "snapshot_all", "expire_all"]


def _expiration_ms(state: Any) -> int:
    try:
        return int(state.config["producer.id.expiration.ms"])
    except (KeyError, TypeError):
        return 86400000


def producer_state(state: "BrokerState", p: "PartitionState") -> ProducerStateManager:
    """The partition's producer state, loaded on first use and caught up
    with its log."""
    ps = p.producers
    if ps is None:
        ps = p.producers = ProducerStateManager.load(p.log, expiration_ms=_expiration_ms(state))
    else:
        ps.expiration_ms = _expiration_ms(state)  # a state loaded by loaded() had the default
        ps.sync(p.log)
    return ps


def load_all(state: "BrokerState") -> None:
    """Start-up, loading thread: load the producer state of every partition
    recovered after an unclean shutdown (its replay of the log may be long:
    not on the event loop later). The others (a clean shutdown left a
    snapshot at their log end: nothing to replay) load on first use
    (:func:`producer_state`, :func:`loaded`): with thousands of partitions
    reading every snapshot at start took about a second (issue 17)."""
    for ts in list(state.topics.values()):
        for p in ts.partitions:
            if p.log is not None and p.producers is None and p.log.flush_pending:
                try:
                    p.producers = ProducerStateManager.load(p.log, expiration_ms=_expiration_ms(state))
                except Exception:
                    log.exception("loading the producer state of %s-%d failed", p.topic, p.index)


def loaded(p: "PartitionState") -> ProducerStateManager | None:
    """The partition's producer state, loaded now if it was left for first
    use (the last stable offset and the aborted transactions of a fetch need
    it); None without a log. Loaded with the default producer.id.expiration.ms;
    :func:`producer_state` and :func:`expire_all` apply the configured one."""
    ps = p.producers
    if ps is None and p.log is not None:
        ps = p.producers = ProducerStateManager.load(p.log)
    return ps


def snapshot_all(state: "BrokerState") -> None:
    """Clean shutdown: a snapshot at every partition's log end (Kafka does
    this in UnifiedLog.close), so the next start replays nothing. Partitions
    whose state was never loaded since the start still have theirs. Not
    fsynced one by one: BrokerState.close closes the logs next, and
    LogManager.close syncs the file system before it writes the
    clean-shutdown marker when there are many logs (with a few, the
    snapshots are not synced; a snapshot torn or lost by a crash fails its
    checksum or is missing, and the state is rebuilt from the log)."""
    for ts in list(state.topics.values()):
        for p in ts.partitions:
            ps = p.producers
            if ps is None or p.log is None or ps.log is not p.log:
                continue
            try:
                if ps.map_end_offset == p.log.log_end_offset:
                    ps.take_snapshot(sync=False)
                ps.flush()
            except OSError as e:
                log.warning("%s-%d: producer snapshot at shutdown failed: %s", p.topic, p.index, e)


def expire_all(state: "BrokerState", now_ms: int) -> int:
    n = 0
    expiration = _expiration_ms(state)
    for ts in list(state.topics.values()):
        for p in ts.partitions:
            if p.producers is not None:
                p.producers.expiration_ms = expiration
                n += p.producers.remove_expired(now_ms)
    return n


# -- the append path -------------------------------------------------------------------------------

def before_append(state: "BrokerState", p: "PartitionState", data: Any, headers: Sequence[BatchHeader],
                  origin: str, now: int | None = None) -> AppendPlan | PlainPlan | None:
    """Validate and apply the producer-state effect of appending ``headers``
    at the log end (synchronously, right before the write). None when this
    broker has no log for ``p`` (cluster mode: the append path refuses it)."""
    if p.log is None:
        return None
    ps = producer_state(state, p)
    append_time = now if now is not None and p.log.config.log_append_time else None
    plan = ps.prepare(data, headers, p.log.log_end_offset, origin, append_time)
    if plan.duplicate is None:
        ps.apply(plan, p.log.active_segment_base)
    return plan


def duplicate_result(p: "PartitionState", plan: AppendPlan) -> AppendResult:
    """The AppendResult of a duplicate batch: its original offsets (and, on a
    LogAppendTime topic, its original append time)."""
    d = plan.duplicate
    assert d is not None
    log_append = p.log.config.log_append_time
    return AppendResult(d.base_offset, d.last_offset, d.timestamp if log_append else -1, p.log.log_start_offset,
                        d.timestamp, d.last_offset - d.base_offset + 1)


def append_failed(p: "PartitionState", plan: AppendPlan | PlainPlan | None) -> None:
    ps = p.producers
    if ps is None or plan is None or plan.duplicate is not None:
        return
    if p.log is not None and p.log.log_end_offset >= plan.end_offset and plan.end_offset > plan.base_offset:
        return  # the batches are in the log (the failure came later: replication, flush)
    ps.rollback(plan)


def after_append(p: "PartitionState", plan: AppendPlan | PlainPlan | None) -> None:
    ps = p.producers
    if ps is not None and p.log is not None:
        ps.after_write(p.log)


# -- reads ---------------------------------------------------------------------------------------

def aborted_transactions(p: "PartitionState", fetch_offset: int, upper_bound: int) -> list[Message]:
    """Fetch's aborted_transactions for read_committed: the aborted
    transactions overlapping [fetch_offset, upper_bound)."""
    ps = loaded(p)
    if ps is None:
        return []
    return [{"producer_id": a.producer_id, "first_offset": a.first_offset}
            for a in ps.collect_aborted(fetch_offset, upper_bound)]


# -- verification (KIP-890 part 1; implicit add of part 2 for Produce v12+) --------------------------

# transaction coordinator errors as a partition leader reports them to a producer
_RETRIABLE_VERIFY = {errors.CONCURRENT_TRANSACTIONS, errors.COORDINATOR_LOAD_IN_PROGRESS,
                     errors.COORDINATOR_NOT_AVAILABLE, errors.NOT_COORDINATOR, errors.NETWORK_EXCEPTION}


def _map_verify_error(code: int, generic_errors: bool) -> int:
    if code == errors.PRODUCER_FENCED:
        return errors.INVALID_PRODUCER_EPOCH
    if code == errors.TRANSACTION_ABORTABLE and not generic_errors:
        return errors.INVALID_TXN_STATE
    if code in _RETRIABLE_VERIFY:
        # older clients may not retry these on produce: Kafka answers NOT_ENOUGH_REPLICAS
        return errors.NOT_ENOUGH_REPLICAS
    return code


async def verify_transactional(state: "BrokerState", transactional_id: str | None, p: "PartitionState",
                               headers: Sequence[BatchHeader], *, add_partition: bool,
                               generic_errors: bool) -> tuple[int, str | None]:
    """Produce: before the first transactional write of a producer to ``p``
    in a transaction, the partition must be part of the transaction at the
    coordinator (else INVALID_TXN_STATE, or TRANSACTION_ABORTABLE for
    clients that know it), or, with ``add_partition`` (Produce v12+), it is
    added now. Returns (error, message) as a partition leader reports them."""
    txh = next((h for h in headers if h.is_transactional and not h.is_control and h.producer_id >= 0), None)
    if txh is None:
        return errors.NONE, None
    if not transactional_id:
        return errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional records need a transactional id"
    code = await verify_in_transaction(state, transactional_id, txh.producer_id, txh.producer_epoch, p,
                                       add_partition=add_partition)
    if code == errors.NONE:
        return code, None
    mapped = _map_verify_error(code, generic_errors)
    msg = "Partition was not added to the transaction" if mapped == errors.INVALID_TXN_STATE else (
        f"Unable to verify the partition has been added to the transaction: {errors.NAMES.get(code, code)}"
        if mapped == errors.NOT_ENOUGH_REPLICAS else None)
    return mapped, msg


def map_verify_error(code: int, generic_errors: bool) -> int:
    """A verification failure as a partition leader reports it (Kafka's
    AddPartitionsToTxnManager + ReplicaManager)."""
    return _map_verify_error(code, generic_errors)


async def verify_in_transaction(state: "BrokerState", transactional_id: str, producer_id: int, epoch: int,
                                p: "PartitionState", *, add_partition: bool) -> int:
    """The coordinator's answer (NONE, TRANSACTION_ABORTABLE, PRODUCER_FENCED,
    CONCURRENT_TRANSACTIONS, ...) to "is ``p`` in the open transaction of
    this producer?"; skipped (NONE) when the producer already has an open
    transaction on ``p`` with this epoch (Kafka's hasOngoingTransaction). With ``add_partition`` a missing partition is
    added to the transaction (KIP-890 part 2)."""
    ps = producer_state(state, p)
    if ps.has_ongoing(producer_id, epoch):
        return errors.NONE
    coord: TransactionCoordinator = state.txn_coordinator
    tp = (p.topic, p.index)
    code = coord.verify_partition(transactional_id, producer_id, epoch, tp)
    if code == errors.NOT_COORDINATOR:
        # the transaction's coordinator is another broker: ask it (Kafka's AddPartitionsToTxnManager)
        return await coord.verify_remote(transactional_id, producer_id, epoch, tp, add=add_partition)
    if code == errors.TRANSACTION_ABORTABLE and add_partition:
        code = await coord.add_partitions(transactional_id, producer_id, epoch, [tp])
        if code == errors.NONE:
            # the add awaited a write: check again right before the append
            if producer_state(state, p).has_ongoing(producer_id, epoch):
                return errors.NONE
            code = coord.verify_partition(transactional_id, producer_id, epoch, tp)
    return code
