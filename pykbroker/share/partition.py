"""The state of one share-partition: which records of a topic partition a
share group has handed out, to whom, how often, and which are done.

Kafka's ``SharePartition`` in a nutshell (KIP-932). Records below the
share-partition start offset (SPSO) are done; records from the SPSO up to
the end of what was ever acquired (the in-flight window, at most
``group.share.partition.max.record.locks`` records) each have a state and a
delivery count; records beyond it are available, never delivered. The SPSO
moves forward over records that are acknowledged or archived.

Record states (Kafka's ``RecordState`` ids, which are also the delivery
states written to ``__share_group_state``)::

                 ShareFetch (delivery count + 1)
    AVAILABLE(0) ------------------------------> ACQUIRED(1)
        ^  ^                                      |  |   |
        |  +--- Release ack, lock timeout --------+  |   | Accept ack
        |       (delivery count below the limit)     |   v
        |                                            |  ACKNOWLEDGED(2)
        |  Reject/Gap ack, or Release/timeout        |
        |  at group.share.delivery.count.limit       v
        +---(SPSO moved past: AlterShareGroupOffsets)--> ARCHIVED(4)

"Released" and "rejected" are acknowledgement types, not states: a
released record is AVAILABLE again (or ARCHIVED when its delivery count
reached the limit), a rejected one is ARCHIVED. ACKNOWLEDGED and ARCHIVED
are terminal. Renew (ack type 4, ShareFetch/ShareAcknowledge v2) keeps a
record ACQUIRED and restarts its lock.

The transitions are checked against ``VALID_PREVIOUS`` (as in
``group/classic.py``). Pure state: no I/O, no trio; the coordinator
(:mod:`.coordinator`) holds the lock, the timers and the persistence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

AVAILABLE = 0
ACQUIRED = 1
ACKNOWLEDGED = 2
ARCHIVED = 4

STATE_NAMES = {AVAILABLE: "AVAILABLE", ACQUIRED: "ACQUIRED", ACKNOWLEDGED: "ACKNOWLEDGED",
               ARCHIVED: "ARCHIVED"}

#: state -> states it may be entered from
VALID_PREVIOUS: dict[int, frozenset[int]] = {
    AVAILABLE: frozenset({ACQUIRED}),
    ACQUIRED: frozenset({AVAILABLE}),
    ACKNOWLEDGED: frozenset({ACQUIRED}),
    ARCHIVED: frozenset({AVAILABLE, ACQUIRED}),
}

# Acknowledgement types (ShareFetch / ShareAcknowledge AcknowledgeTypes)
ACK_GAP = 0
ACK_ACCEPT = 1
ACK_RELEASE = 2
ACK_REJECT = 3
ACK_RENEW = 4


class InvalidTransition(Exception):
    pass


class InvalidRecordState(Exception):
    """An acknowledgement for records this member does not hold (INVALID_RECORD_STATE)."""


@attrs.define(eq=False)
class InFlight:
    state: int = AVAILABLE
    delivery_count: int = 0
    member_id: str | None = None
    acquisition: int = 0  # id of the ShareFetch acquisition that holds it (its lock timer)


@attrs.define(eq=False)
class SharePartition:
    group_id: str
    topic_id: bytes
    partition: int
    start_offset: int  # SPSO
    state_epoch: int = 0
    records: dict[int, InFlight] = attrs.field(factory=dict)  # offsets in [start_offset, end_offset)
    end_offset: int = -1  # one past the highest offset in flight (== start_offset when none)
    _next_acquisition: int = 1

    def __attrs_post_init__(self) -> None:
        if self.end_offset < self.start_offset:
            self.end_offset = self.start_offset

    # -- helpers -------------------------------------------------------------------------------
    def _move(self, offset: int, rec: InFlight, to: int) -> None:
        if rec.state not in VALID_PREVIOUS[to]:
            raise InvalidTransition(f"record {offset}: {STATE_NAMES[rec.state]} -> {STATE_NAMES[to]}")
        rec.state = to
        if to != ACQUIRED:
            rec.member_id = None
            rec.acquisition = 0

    def state_of(self, offset: int) -> tuple[int, int]:
        """(state, delivery count) of ``offset``; below the SPSO: ARCHIVED-like done (ACKNOWLEDGED)."""
        if offset < self.start_offset:
            return ACKNOWLEDGED, 0
        rec = self.records.get(offset)
        return (rec.state, rec.delivery_count) if rec is not None else (AVAILABLE, 0)

    def in_flight(self) -> int:
        return self.end_offset - self.start_offset

    def _advance(self) -> None:
        """Move the SPSO over acknowledged and archived records."""
        off = self.start_offset
        while off < self.end_offset:
            rec = self.records.get(off)
            if rec is None or rec.state not in (ACKNOWLEDGED, ARCHIVED):
                break
            del self.records[off]
            off += 1
        self.start_offset = off
        if off == self.end_offset:
            self.records.clear()

    # -- acquisition -------------------------------------------------------------------------------
    def acquirable(self, offset: int, limit: int) -> bool:
        """May ``offset`` be acquired now (available, inside the in-flight limit)?"""
        if offset < self.start_offset:
            return False
        if offset >= self.end_offset:
            return offset - self.start_offset < limit
        rec = self.records.get(offset)
        return rec is None or rec.state == AVAILABLE

    def new_acquisition(self) -> int:
        a = self._next_acquisition
        self._next_acquisition += 1
        return a

    def acquire(self, offset: int, member_id: str, acquisition: int) -> int:
        """Acquire one available record; returns its new delivery count."""
        rec = self.records.get(offset)
        if rec is None:
            rec = self.records[offset] = InFlight()
        self._move(offset, rec, ACQUIRED)
        rec.delivery_count += 1
        rec.member_id = member_id
        rec.acquisition = acquisition
        if offset >= self.end_offset:
            # offsets skipped over (none in the log: compaction gaps) count as archived
            for gap in range(self.end_offset, offset):
                self.records.setdefault(gap, InFlight(ARCHIVED))
            self.end_offset = offset + 1
        return rec.delivery_count

    def skip(self, offset: int) -> None:
        """Archive an available record that is never delivered (a transaction
        marker: control batches are not records for consumers)."""
        rec = self.records.get(offset)
        if rec is None:
            rec = self.records[offset] = InFlight()
        if rec.state != AVAILABLE:
            return
        self._move(offset, rec, ARCHIVED)
        if offset >= self.end_offset:
            for gap in range(self.end_offset, offset):
                self.records.setdefault(gap, InFlight(ARCHIVED))
            self.end_offset = offset + 1
        self._advance()

    # -- acknowledgement and release ------------------------------------------------------------
    def _release_one(self, offset: int, rec: InFlight, delivery_limit: int) -> None:
        self._move(offset, rec, ARCHIVED if rec.delivery_count >= delivery_limit else AVAILABLE)

    def check_acks(self, member_id: str, first: int, last: int, types: list[int]) -> None:
        """Raise InvalidRecordState unless every record in [first, last] is
        held by ``member_id`` (gaps may be acknowledged as Gap only)."""
        if last < first or (len(types) != 1 and len(types) != last - first + 1):
            raise InvalidRecordState(f"bad acknowledgement batch {first}-{last}")
        for i, off in enumerate(range(first, last + 1)):
            t = types[0] if len(types) == 1 else types[i]
            if t not in (ACK_GAP, ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RENEW):
                raise InvalidRecordState(f"unknown acknowledge type {t}")
            rec = self.records.get(off)
            if rec is None or off < self.start_offset:
                raise InvalidRecordState(f"record {off} is not acquired")
            if rec.state == ARCHIVED and t == ACK_GAP:
                continue
            if rec.state != ACQUIRED or rec.member_id != member_id:
                raise InvalidRecordState(f"record {off} is not acquired by member {member_id}")

    def acknowledge(self, member_id: str, first: int, last: int, types: list[int],
                    delivery_limit: int) -> list[int]:
        """Apply one acknowledgement batch (already checked); returns the
        offsets renewed (still acquired, their lock restarts)."""
        self.check_acks(member_id, first, last, types)
        renewed = []
        for i, off in enumerate(range(first, last + 1)):
            t = types[0] if len(types) == 1 else types[i]
            rec = self.records[off]
            if rec.state != ACQUIRED:
                continue  # a gap already archived
            if t == ACK_ACCEPT:
                self._move(off, rec, ACKNOWLEDGED)
            elif t == ACK_RELEASE:
                self._release_one(off, rec, delivery_limit)
            elif t in (ACK_REJECT, ACK_GAP):
                self._move(off, rec, ARCHIVED)
            else:  # ACK_RENEW
                renewed.append(off)
        self._advance()
        return renewed

    def release(self, delivery_limit: int, *, member_id: str | None = None,
                acquisition: int | None = None) -> int:
        """Release acquired records (lock timeout: one acquisition; member left
        or its share session closed: all of the member's); returns how many."""
        n = 0
        for off, rec in self.records.items():
            if rec.state != ACQUIRED:
                continue
            if member_id is not None and rec.member_id != member_id:
                continue
            if acquisition is not None and rec.acquisition != acquisition:
                continue
            self._release_one(off, rec, delivery_limit)
            n += 1
        self._advance()
        return n

    def acquired_by(self, acquisition: int) -> list[int]:
        return [o for o, r in self.records.items() if r.state == ACQUIRED and r.acquisition == acquisition]

    # -- offsets administration ------------------------------------------------------------------
    def reset(self, start_offset: int) -> None:
        """AlterShareGroupOffsets (the group is empty: nothing is acquired)."""
        self.records.clear()
        self.start_offset = start_offset
        self.end_offset = start_offset
        self.state_epoch += 1

    def clamp(self, log_start_offset: int) -> None:
        """Records deleted from the log (retention, DeleteRecords) are gone."""
        if log_start_offset > self.start_offset:
            for off in [o for o in self.records if o < log_start_offset]:
                del self.records[off]
            self.start_offset = log_start_offset
            self.end_offset = max(self.end_offset, log_start_offset)

    # -- persistence -------------------------------------------------------------------------------
    def state_batches(self) -> list[dict[str, int]]:
        """The in-flight window as runs of (state, delivery count); acquired
        records are written as AVAILABLE (a restart releases them)."""
        out: list[dict[str, int]] = []
        for off in range(self.start_offset, self.end_offset):
            rec = self.records.get(off)
            st, dc = (AVAILABLE, 0) if rec is None else (rec.state, rec.delivery_count)
            if st == ACQUIRED:
                st = AVAILABLE
            last = out[-1] if out else None
            if last is not None and last["last_offset"] == off - 1 and last["delivery_state"] == st \
                    and last["delivery_count"] == dc:
                last["last_offset"] = off
            else:
                out.append({"first_offset": off, "last_offset": off, "delivery_state": st,
                            "delivery_count": dc})
        return out

    def load_batches(self, batches: Iterable[dict[str, int]]) -> None:
        self.records.clear()
        end = self.start_offset
        for b in batches:
            st = b["delivery_state"]
            st = AVAILABLE if st == ACQUIRED else st
            for off in range(max(b["first_offset"], self.start_offset), b["last_offset"] + 1):
                self.records[off] = InFlight(st, b["delivery_count"])
                end = max(end, off + 1)
        self.end_offset = end
        self._advance()


def ranges(offsets: Iterable[int], counts: dict[int, int]) -> Iterator[tuple[int, int, int]]:
    """Consecutive offsets with equal delivery counts as (first, last, count)."""
    run: list[int] | None = None
    for off in sorted(offsets):
        dc = counts[off]
        if run is not None and off == run[1] + 1 and dc == run[2]:
            run[1] = off
            continue
        if run is not None:
            yield run[0], run[1], run[2]
        run = [off, off, dc]
    if run is not None:
        yield run[0], run[1], run[2]
