"""A transactional id's state at the coordinator and its state machine.

Kafka's ``TransactionMetadata`` (core, coordinator.transaction): a
transition is *prepared* (checked against the valid previous states; the
target becomes the pending state), written to ``__transaction_state``, and
*completed* only after the write succeeded (or aborted if it failed).

States (ids as stored in the log)::

    Empty(0) -> Ongoing(1)                      AddPartitionsToTxn / AddOffsetsToTxn
    Ongoing -> PrepareCommit(2) | PrepareAbort(3)   EndTxn, timeout, fencing
    PrepareCommit -> CompleteCommit(4)          markers written
    PrepareAbort -> CompleteAbort(5)
    Complete*, Empty -> Empty                   InitProducerId (epoch bump)
    Complete*, Empty -> Ongoing                 next transaction
    Empty, Complete* -> Dead(6)                 transactional.id.expiration.ms
    Ongoing -> PrepareEpochFence(7)             never written: becomes PrepareAbort

Epochs: InitProducerId bumps the epoch (a new producer fences the old);
an epoch at Short.MAX_VALUE - 1 is exhausted and a new producer id is
taken instead. Fencing an open transaction (a new InitProducerId, or the
transaction timeout) bumps the epoch once and aborts with it. With
transaction version 2 (EndTxn v5+, KIP-890) every commit/abort bumps the
epoch too, and the response carries the new one; a retry is recognised
by the epoch being exactly one below.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..protocol.codec import Message
from ..protocol import errors

EMPTY = 0
ONGOING = 1
PREPARE_COMMIT = 2
PREPARE_ABORT = 3
COMPLETE_COMMIT = 4
COMPLETE_ABORT = 5
DEAD = 6
PREPARE_EPOCH_FENCE = 7

STATE_NAMES = {EMPTY: "Empty", ONGOING: "Ongoing", PREPARE_COMMIT: "PrepareCommit",
               PREPARE_ABORT: "PrepareAbort", COMPLETE_COMMIT: "CompleteCommit",
               COMPLETE_ABORT: "CompleteAbort", DEAD: "Dead", PREPARE_EPOCH_FENCE: "PrepareEpochFence"}
STATES_BY_NAME = {v: k for k, v in STATE_NAMES.items()}

VALID_PREVIOUS: dict[int, frozenset[int]] = {
    EMPTY: frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    ONGOING: frozenset({ONGOING, EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT}),
    PREPARE_COMMIT: frozenset({ONGOING}),
    PREPARE_ABORT: frozenset({ONGOING, PREPARE_EPOCH_FENCE}),
    COMPLETE_COMMIT: frozenset({PREPARE_COMMIT}),
    COMPLETE_ABORT: frozenset({PREPARE_ABORT}),
    DEAD: frozenset({EMPTY, COMPLETE_ABORT, COMPLETE_COMMIT}),
    PREPARE_EPOCH_FENCE: frozenset({ONGOING}),
}
EXPIRATION_ALLOWED = frozenset({EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT})

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
SHORT_MAX = 32767

TV_0 = 0  # transaction version of clients before KIP-890 part 2
TV_2 = 2  # EndTxn v5+: epoch bump on every commit/abort

TopicPartition = tuple[str, int]


class IllegalTransition(Exception):
    """A transition Kafka would refuse with IllegalStateException (a bug, not a client error)."""


class TxnError(Exception):
    """A client-visible error code from a prepare step."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def is_epoch_exhausted(epoch: int) -> bool:
    return epoch >= SHORT_MAX - 1


@attrs.frozen
class TxnTransit:
    """The target of a transition (what gets written to the log)."""

    producer_id: int
    prev_producer_id: int
    next_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    timeout_ms: int
    state: int
    partitions: frozenset[tuple[str, int]]
    start_ts: int
    update_ts: int
    tv: int = TV_0


@attrs.define(eq=False)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    timeout_ms: int = 60000
    state: int = EMPTY
    partitions: set[tuple[str, int]] = attrs.field(factory=set)
    start_ts: int = -1
    update_ts: int = -1
    prev_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    tv: int = TV_0
    pending: int | None = None
    failed_epoch_fence: bool = False

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    @property
    def epoch_exhausted(self) -> bool:
        return is_epoch_exhausted(self.producer_epoch)

    @property
    def has_pending_transaction(self) -> bool:
        return self.state in (ONGOING, PREPARE_ABORT, PREPARE_COMMIT)

    # -- prepare ----------------------------------------------------------------------------------
    def _transition_to(self, state: int, producer_id: int, epoch: int, last_epoch: int, timeout_ms: int,
                       partitions: Iterable[TopicPartition], start_ts: int, update_ts: int, *,
                       next_producer_id: int = NO_PRODUCER_ID, tv: int = TV_0) -> TxnTransit:
        if self.pending is not None:
            raise IllegalTransition(f"{self.transactional_id}: preparing {STATE_NAMES[state]} while "
                                    f"{STATE_NAMES[self.pending]} is pending")
        if producer_id < 0:
            raise IllegalTransition(f"illegal producer id {producer_id}")
        if state != DEAD and epoch < 0:
            raise IllegalTransition(f"illegal producer epoch {epoch}")
        if self.state not in VALID_PREVIOUS[state]:
            raise IllegalTransition(f"{self.transactional_id}: {STATE_NAMES[self.state]} -> "
                                    f"{STATE_NAMES[state]} is not a valid transition")
        self.pending = state
        return TxnTransit(producer_id, self.producer_id, next_producer_id, epoch, last_epoch, timeout_ms, state,
                          frozenset(partitions), start_ts, update_ts, tv)

    def prepare_fence_epoch(self) -> TxnTransit:
        """Bump the epoch of an open transaction to abort it (never returned
        to a client); not again if a previous fence failed to be written."""
        if self.producer_epoch == SHORT_MAX:
            raise IllegalTransition("cannot fence a producer at epoch Short.MAX_VALUE")
        epoch = self.producer_epoch if self.failed_epoch_fence else self.producer_epoch + 1
        return self._transition_to(PREPARE_EPOCH_FENCE, self.producer_id, epoch, NO_PRODUCER_EPOCH,
                                   self.timeout_ms, self.partitions, self.start_ts, self.update_ts)

    def prepare_increment_epoch(self, timeout_ms: int, expected_epoch: int | None, now: int) -> TxnTransit:
        """InitProducerId on Empty/Complete*: a new epoch, or (a retry whose
        expected epoch is the previous one) the current one again; raises
        TxnError(PRODUCER_FENCED) for any other expected epoch."""
        if self.epoch_exhausted:
            raise IllegalTransition(f"cannot allocate more epochs for producer id {self.producer_id}")
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            epoch, last = bumped, NO_PRODUCER_EPOCH
        elif self.producer_epoch == NO_PRODUCER_EPOCH or expected_epoch == self.producer_epoch:
            epoch, last = bumped, self.producer_epoch
        elif expected_epoch == self.last_producer_epoch:
            epoch, last = self.producer_epoch, self.last_producer_epoch
        else:
            raise TxnError(errors.PRODUCER_FENCED)
        return self._transition_to(EMPTY, self.producer_id, epoch, last, timeout_ms, (), -1, now)

    def prepare_rotation(self, new_producer_id: int, timeout_ms: int, now: int,
                         record_last_epoch: bool) -> TxnTransit:
        if self.has_pending_transaction:
            raise IllegalTransition("cannot rotate producer ids while a transaction is pending")
        return self._transition_to(EMPTY, new_producer_id, 0,
                                   self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
                                   timeout_ms, (), -1, now)

    def prepare_add_partitions(self, added: Iterable[TopicPartition], now: int) -> TxnTransit:
        start = now if self.state in (EMPTY, COMPLETE_ABORT, COMPLETE_COMMIT) else self.start_ts
        return self._transition_to(ONGOING, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                                   self.timeout_ms, self.partitions | set(added), start, now, tv=self.tv)

    def prepare_abort_or_commit(self, state: int, tv: int, next_producer_id: int, now: int) -> TxnTransit:
        if tv >= TV_2:
            epoch, last = self.producer_epoch + 1, self.producer_epoch
        else:
            epoch, last = self.producer_epoch, self.last_producer_epoch
        return self._transition_to(state, self.producer_id, epoch, last, self.timeout_ms, self.partitions,
                                   self.start_ts, now, next_producer_id=next_producer_id, tv=tv)

    def prepare_complete(self, now: int) -> TxnTransit:
        state = COMPLETE_COMMIT if self.state == PREPARE_COMMIT else COMPLETE_ABORT
        self.failed_epoch_fence = False
        if self.tv >= TV_2 and self.next_producer_id != NO_PRODUCER_ID:
            pid, epoch = self.next_producer_id, 0
        else:
            pid, epoch = self.producer_id, self.producer_epoch
        return self._transition_to(state, pid, epoch, self.producer_epoch, self.timeout_ms, (), self.start_ts, now,
                                   tv=self.tv)

    def prepare_dead(self) -> TxnTransit:
        return self._transition_to(DEAD, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                                   self.timeout_ms, (), self.start_ts, self.update_ts)

    # -- complete ---------------------------------------------------------------------------------
    def abort_pending(self) -> None:
        """The write of the pending transition failed: back to where we were."""
        self.pending = None

    def complete_transition(self, t: TxnTransit) -> None:
        """Apply ``t`` after its record was written (Kafka's completeTransitionTo)."""
        if self.pending is None or self.pending != t.state:
            raise IllegalTransition(f"{self.transactional_id}: completing {STATE_NAMES[t.state]}, pending "
                                    f"{STATE_NAMES.get(self.pending, None) if self.pending is not None else None}")
        s = t.state
        if s == EMPTY:
            self.timeout_ms = t.timeout_ms
            self.producer_epoch = t.producer_epoch
            self.last_producer_epoch = t.last_producer_epoch
            self.producer_id = t.producer_id
            self.prev_producer_id = t.prev_producer_id
            self.partitions = set()
            self.start_ts = -1
            self.tv = t.tv
        elif s == ONGOING:
            self.start_ts = t.start_ts
            self.partitions |= set(t.partitions)
        elif s in (PREPARE_ABORT, PREPARE_COMMIT):
            if t.tv >= TV_2:
                self.producer_epoch = t.producer_epoch
                self.last_producer_epoch = t.last_producer_epoch
                self.next_producer_id = t.next_producer_id
            self.tv = t.tv
        elif s in (COMPLETE_ABORT, COMPLETE_COMMIT):
            self.start_ts = t.start_ts
            self.partitions = set()
            if t.tv >= TV_2:
                self.producer_epoch = t.producer_epoch
                self.last_producer_epoch = t.last_producer_epoch
                self.prev_producer_id = t.prev_producer_id
                self.producer_id = t.producer_id
                self.next_producer_id = t.next_producer_id
        elif s == DEAD:
            pass  # the caller removes the metadata
        else:
            raise IllegalTransition(f"cannot complete a transition to {STATE_NAMES[s]}")
        self.state = s
        self.tv = t.tv
        self.update_ts = t.update_ts
        self.pending = None

    @classmethod
    def from_log(cls, transactional_id: str, v: Message) -> "TransactionMetadata":
        """From a decoded TransactionLogValue (last epoch is not stored: -1)."""
        state = v["transaction_status"]
        parts: set[TopicPartition] = set()
        if state != EMPTY:
            for tp in v["transaction_partitions"] or []:
                for i in tp["partition_ids"]:
                    parts.add((tp["topic"], i))
        return cls(transactional_id, v["producer_id"], v["producer_epoch"], NO_PRODUCER_EPOCH,
                   v["transaction_timeout_ms"], state, parts, v["transaction_start_timestamp_ms"],
                   v["transaction_last_update_timestamp_ms"], v.get("previous_producer_id", NO_PRODUCER_ID),
                   v.get("next_producer_id", NO_PRODUCER_ID), v.get("client_transaction_version", TV_0))
