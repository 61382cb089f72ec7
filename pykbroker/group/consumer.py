"""KIP-848 consumer groups: ConsumerGroupHeartbeat with server-side
assignment, member epochs and reconciliation, as Kafka's
``GroupMetadataManager.consumerGroupHeartbeat`` and ``CurrentAssignmentBuilder``.

The model:
- the **group epoch** is bumped whenever a member joins or leaves or the
  subscribed topics change (names, or a topic's partition count);
- on a bump the **target assignment** is recomputed by the server assignor
  (uniform or range, per member ``ServerAssignor`` or the first of
  ``group.consumer.assignors``) and stamped with the group epoch;
- each member reconciles towards its target one heartbeat at a time:
  partitions it must give up are first *revoked* (member stays at its
  epoch, state UNREVOKED_PARTITIONS) and only once its heartbeat no longer
  lists them does it move to the new epoch and get new partitions;
  partitions still owned by another member are held back
  (UNRELEASED_PARTITIONS) until released. A partition is never owned by
  two members at once.
- the session timeout (``group.consumer.session.timeout.ms``) fences a
  silent member; a member stuck in UNREVOKED_PARTITIONS longer than its
  rebalance timeout is fenced too.

Group states: Empty, Assigning (never at rest here: the assignment is
computed inside the heartbeat), Reconciling, Stable, Dead.

The operations (ConsumerGroupHeartbeat) are :class:`~.consumer_ops.ConsumerOps`;
this module is the group and member model and one reconciliation step.

Persistence: the group is kept in ``__consumer_offsets`` as Kafka's
``ConsumerGroup*`` records (:mod:`.records`, types 3-8): :func:`group_records`
is the whole group as a key → value map, and :meth:`ConsumerGroup.records_to_write`
the difference from what was last written (changed records and tombstones).
:func:`group_from_records` rebuilds a group from the replayed map, so a
restart or a coordinator move keeps every member's epoch and assignment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
from ..protocol.codec import Message
from . import records as R


LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2

M_STABLE = "STABLE"
M_UNREVOKED = "UNREVOKED_PARTITIONS"
M_UNRELEASED = "UNRELEASED_PARTITIONS"
# Kafka's MemberState byte values in ConsumerGroupCurrentMemberAssignmentValue
_STATE_CODES = {M_STABLE: 0, M_UNREVOKED: 1, M_UNRELEASED: 2}
_STATES = {v: k for k, v in _STATE_CODES.items()}

Assignment = dict[bytes, set[int]]


def _copy(a: Assignment) -> Assignment:
    return {t: set(p) for t, p in a.items() if p}


@attrs.define(eq=False)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = attrs.Factory(list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: str = M_STABLE
    assigned: Assignment = attrs.Factory(dict)
    pending_revocation: Assignment = attrs.Factory(dict)

    def is_reconciled_to(self, epoch: int) -> bool:
        return self.state == M_STABLE and self.member_epoch == epoch

    def copy(self, **changes: Any) -> "ConsumerMember":
        m = attrs.evolve(self, **changes)
        if "assigned" not in changes:
            m.assigned = _copy(self.assigned)
        if "pending_revocation" not in changes:
            m.pending_revocation = _copy(self.pending_revocation)
        if "subscribed_topic_names" not in changes:
            m.subscribed_topic_names = list(self.subscribed_topic_names)
        return m


class ConsumerGroup:
    type = "consumer"

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.static_members: dict[str, str] = {}
        self.target: dict[str, Assignment] = {}
        self.owners: dict[tuple[bytes, int], tuple[str, int]] = {}  # partition -> (member, epoch)
        self.subscription_metadata: dict[str, tuple[bytes, int]] = {}
        self.protocol_type = "consumer"
        self.persisted: dict[bytes, bytes] = {}  # the records last written (key -> value)

    def records_to_write(self) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes | None]]]:
        """The group's records now, and what must be appended to get there
        from :attr:`persisted`: changed records, then tombstones of gone ones."""
        now = group_records(self)
        recs: list[tuple[bytes, bytes | None]] = [(k, v) for k, v in now.items() if self.persisted.get(k) != v]
        recs += [(k, None) for k in self.persisted if k not in now]
        return now, recs

    def tombstones(self) -> list[tuple[bytes, bytes | None]]:
        """Deleting the group: a tombstone for every record it has written."""
        return [(k, None) for k in self.persisted]

    @property
    def state(self) -> str:
        if not self.members:
            return "Empty"
        if self.group_epoch > self.assignment_epoch:
            return "Assigning"
        if any(not m.is_reconciled_to(self.assignment_epoch) for m in self.members.values()):
            return "Reconciling"
        return "Stable"

    def is_empty(self) -> bool:
        return not self.members

    def subscribed_topic_names(self) -> set[str]:
        return set(self.subscription_metadata)

    def is_subscribed_to(self, topic: str) -> bool:
        return topic in self.subscription_metadata

    def current_partition_epoch(self, tid: bytes, p: int) -> int:
        o = self.owners.get((tid, p))
        return -1 if o is None else o[1]

    def _owned(self, m: ConsumerMember) -> Iterator[tuple[bytes, int]]:
        for a in (m.assigned, m.pending_revocation):
            for tid, parts in a.items():
                for p in parts:
                    yield tid, p

    def update_member(self, new: ConsumerMember) -> None:
        old = self.members.get(new.member_id)
        if old is not None:
            for key in self._owned(old):
                if self.owners.get(key, ("",))[0] == old.member_id:
                    del self.owners[key]
        self.members[new.member_id] = new
        for key in self._owned(new):
            self.owners[key] = (new.member_id, new.member_epoch)
        if new.instance_id is not None:
            self.static_members[new.instance_id] = new.member_id

    def remove_member(self, member_id: str) -> ConsumerMember | None:
        old = self.members.pop(member_id, None)
        if old is not None:
            for key in self._owned(old):
                if self.owners.get(key, ("",))[0] == member_id:
                    del self.owners[key]
            if old.instance_id is not None and self.static_members.get(old.instance_id) == member_id:
                del self.static_members[old.instance_id]
        self.target.pop(member_id, None)
        return old

    def static_member(self, instance_id: str | None) -> ConsumerMember | None:
        if instance_id is None:
            return None
        mid = self.static_members.get(instance_id)
        return None if mid is None else self.members.get(mid)


def reconcile(member: ConsumerMember, target_epoch: int, target: Assignment,
              partition_epoch: Callable[[bytes, int], int], owned: list[Message] | None) -> ConsumerMember:
    """One step of Kafka's CurrentAssignmentBuilder."""

    def owns_any(a: Assignment) -> bool:
        if owned is None:
            return True
        for tp in owned:
            pend = a.get(tp["topic_id"], set())
            if any(p in pend for p in tp["partitions"]):
                return True
        return False

    def next_assignment(epoch: int, assigned: Assignment) -> ConsumerMember:
        unreleased = False
        new_assigned: Assignment = {}
        new_revoke: Assignment = {}
        new_pending: Assignment = {}
        for tid in set(target) | set(assigned):
            tgt = target.get(tid, set())
            cur = assigned.get(tid, set())
            keep = cur & tgt
            revoke = cur - keep
            pending = tgt - keep
            held = {p for p in pending if partition_epoch(tid, p) != -1}
            if held:
                unreleased = True
                pending -= held
            if keep:
                new_assigned[tid] = keep
            if revoke:
                new_revoke[tid] = revoke
            if pending:
                new_pending[tid] = pending
        if new_revoke and owns_any(new_revoke):
            return member.copy(state=M_UNREVOKED, member_epoch=epoch,
                               previous_member_epoch=member.member_epoch,
                               assigned=new_assigned, pending_revocation=new_revoke)
        for tid, parts in new_pending.items():
            new_assigned.setdefault(tid, set()).update(parts)
        return member.copy(state=M_UNRELEASED if unreleased else M_STABLE, member_epoch=target_epoch,
                           previous_member_epoch=member.member_epoch,
                           assigned=new_assigned, pending_revocation={})

    if member.state == M_STABLE:
        if member.member_epoch != target_epoch:
            return next_assignment(member.member_epoch, member.assigned)
        return member
    if member.state == M_UNREVOKED:
        if owns_any(member.pending_revocation):
            return member
        return next_assignment(member.member_epoch + 1, member.assigned)
    return next_assignment(member.member_epoch, member.assigned)


# -- persistence (Kafka's ConsumerGroup* records) ------------------------------------------

def _tps(a: Assignment) -> list[Message]:
    return [{"topic_id": tid, "partitions": sorted(parts)} for tid, parts in sorted(a.items()) if parts]


def _assignment(tps: list[Message]) -> Assignment:
    return {tp["topic_id"]: set(tp["partitions"]) for tp in tps if tp["partitions"]}


def group_records(g: ConsumerGroup) -> dict[bytes, bytes]:
    """The group as Kafka writes it: key -> value of every live record."""
    gid = g.group_id
    out: dict[bytes, bytes] = {}

    def put(kind: int, value: dict[str, Any], member_id: str | None = None) -> None:
        out[R.consumer_group_key(kind, gid, member_id)] = R.consumer_group_value(kind, value)

    for m in g.members.values():
        mid = m.member_id
        put(R.KEY_CG_MEMBER_METADATA, {
            "instance_id": m.instance_id, "rack_id": m.rack_id, "client_id": m.client_id,
            "client_host": m.client_host, "subscribed_topic_names": list(m.subscribed_topic_names),
            "subscribed_topic_regex": m.subscribed_topic_regex, "rebalance_timeout_ms": m.rebalance_timeout_ms,
            "server_assignor": m.server_assignor}, mid)
        if mid in g.target:
            put(R.KEY_CG_TARGET_MEMBER, {"topic_partitions": _tps(g.target[mid])}, mid)
        put(R.KEY_CG_CURRENT_MEMBER, {
            "member_epoch": m.member_epoch, "previous_member_epoch": m.previous_member_epoch,
            "state": _STATE_CODES[m.state], "assigned_partitions": _tps(m.assigned),
            "partitions_pending_revocation": _tps(m.pending_revocation)}, mid)
    put(R.KEY_CG_PARTITION_METADATA, {"epoch": g.group_epoch, "topics": [
        {"topic_id": tid, "topic_name": name, "num_partitions": n, "partition_racks": []}
        for name, (tid, n) in sorted(g.subscription_metadata.items())]})
    put(R.KEY_CG_METADATA, {"epoch": g.group_epoch})
    put(R.KEY_CG_TARGET_METADATA, {"assignment_epoch": g.assignment_epoch})
    return out


def group_from_records(gid: str, recs: dict[bytes, "R.ConsumerGroupRecord"]) -> ConsumerGroup | None:
    """A group rebuilt from its replayed records (the last value of each key,
    tombstones already applied); None when the group record itself is gone."""
    by_kind: dict[int, dict[str | None, dict[str, Any]]] = {}
    for r in recs.values():
        if r.value is not None:
            by_kind.setdefault(r.kind, {})[r.member_id] = r.value
    meta = by_kind.get(R.KEY_CG_METADATA, {}).get(None)
    if meta is None:
        return None
    g = ConsumerGroup(gid)
    g.group_epoch = meta["epoch"]
    target_meta = by_kind.get(R.KEY_CG_TARGET_METADATA, {}).get(None)
    g.assignment_epoch = target_meta["assignment_epoch"] if target_meta is not None else g.group_epoch
    pm = by_kind.get(R.KEY_CG_PARTITION_METADATA, {}).get(None)
    if pm is not None:
        g.subscription_metadata = {t["topic_name"]: (t["topic_id"], t["num_partitions"]) for t in pm["topics"]}
    current = by_kind.get(R.KEY_CG_CURRENT_MEMBER, {})
    for mid, mm in by_kind.get(R.KEY_CG_MEMBER_METADATA, {}).items():
        assert mid is not None
        m = ConsumerMember(mid, instance_id=mm["instance_id"], rack_id=mm["rack_id"],
                           rebalance_timeout_ms=mm["rebalance_timeout_ms"], client_id=mm["client_id"],
                           client_host=mm["client_host"], subscribed_topic_names=list(mm["subscribed_topic_names"]),
                           subscribed_topic_regex=mm["subscribed_topic_regex"], server_assignor=mm["server_assignor"])
        cur = current.get(mid)
        if cur is not None:
            m.member_epoch, m.previous_member_epoch = cur["member_epoch"], cur["previous_member_epoch"]
            m.state = _STATES.get(cur["state"], M_STABLE)
            m.assigned = _assignment(cur["assigned_partitions"])
            m.pending_revocation = _assignment(cur["partitions_pending_revocation"])
        g.update_member(m)
    for mid, tv in by_kind.get(R.KEY_CG_TARGET_MEMBER, {}).items():
        if mid in g.members:
            g.target[mid] = _assignment(tv["topic_partitions"])
    g.persisted = group_records(g)
    for k in recs:  # stray records (e.g. of a member without metadata): tombstoned on the next write
        g.persisted.setdefault(k, b"")
    return g
