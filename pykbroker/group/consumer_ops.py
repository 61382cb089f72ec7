"""KIP-848 operations: ConsumerGroupHeartbeat (join, reconcile, leave) and
the timers that fence members, as Kafka's
``GroupMetadataManager.consumerGroupHeartbeat``; the model is :mod:`.consumer`.

Every method of :class:`ConsumerOps` runs with the group's lock held (taken
by :class:`~pykbroker.group.coordinator.GroupCoordinator`).

Every change is written to ``__consumer_offsets`` (the group's records that
changed, :meth:`~.consumer.ConsumerGroup.records_to_write`) before the
heartbeat is answered, as Kafka does; when the write fails the group goes
back to what was last written and the member gets the write's error
(COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, ...). A timer's change (a
member fenced) that cannot be written stays in memory and goes out with the
next write.
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from typing import TYPE_CHECKING

from ..protocol import errors
from . import assignors
from .classic import GroupError
from . import records
from .classic_ops import append_error_to_response_error
from .consumer import (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH, M_UNREVOKED, Assignment,
                       ConsumerGroup, ConsumerMember, group_from_records, reconcile)
from ..protocol.codec import Message
from .registry import GroupConfig, GroupRegistry, OffsetsLog

if TYPE_CHECKING:
    from ..server.state import BrokerState

log = logging.getLogger("pykbroker.group")


def _same(a: ConsumerMember, b: ConsumerMember) -> bool:
    return (a.member_epoch, a.previous_member_epoch, a.state, a.assigned, a.pending_revocation) == \
        (b.member_epoch, b.previous_member_epoch, b.state, b.assigned, b.pending_revocation)


def _is_subset(owned: list[Message] | None, assigned: Assignment) -> bool:
    if owned is None:
        return False
    for tp in owned:
        parts = assigned.get(tp["topic_id"], set())
        if any(p not in parts for p in tp["partitions"]):
            return False
    return True


class ConsumerOps:
    """ConsumerGroupHeartbeat on the consumer groups of ``registry``; topics
    (for subscriptions) come from ``state``."""

    def __init__(self, config: GroupConfig, registry: GroupRegistry, state: BrokerState,
                 offsets_log: OffsetsLog) -> None:
        self.config = config
        self.registry = registry
        self.state = state
        self.offsets_log = offsets_log

    # -- persistence ------------------------------------------------------------------------
    async def persist(self, group: ConsumerGroup, *, rollback: bool) -> int:
        """Append what changed in ``group`` since the last write; an error code.
        With ``rollback`` a failed write puts the last written group back."""
        now, recs = group.records_to_write()
        if not recs:
            return errors.NONE
        err = await self.offsets_log.write(group.group_id, recs)
        if not err:
            group.persisted = now
            return errors.NONE
        log.warning("consumer group %s: state not written: %s", group.group_id, errors.NAMES.get(err, err))
        if rollback:
            self._restore(group)
        return append_error_to_response_error(err)

    def _restore(self, group: ConsumerGroup) -> None:
        gid = group.group_id
        if self.registry.groups.get(gid) is not group:
            return
        replayed = {}
        for k, v in group.persisted.items():
            r = records.decode(k, v or None)
            if isinstance(r, records.ConsumerGroupRecord):
                replayed[k] = r
        old = group_from_records(gid, replayed)
        if old is None:
            self.registry.remove(gid)
        else:
            self.registry.groups[gid] = old

    def restore_timers(self, group: ConsumerGroup) -> None:
        """A loaded group's members: session timeouts (and rebalance timeouts of
        members revoking partitions) start again, as Kafka's coordinator does on load."""
        for m in group.members.values():
            self._schedule_cg_session_timeout(group, m.member_id)
            if m.state == M_UNREVOKED:
                self._schedule_cg_rebalance_timeout(group, m)

    def validate_heartbeat(self, req: Message, version: int) -> None:
        def bad(msg: str) -> GroupError:
            return GroupError(errors.INVALID_REQUEST, msg)

        if not req["group_id"]:
            raise bad("GroupId can't be empty.")
        if req["instance_id"] == "":
            raise bad("InstanceId can't be empty.")
        if req["rack_id"] == "":
            raise bad("RackId can't be empty.")
        epoch = req["member_epoch"]
        if epoch > 0 or epoch == LEAVE_GROUP_MEMBER_EPOCH:
            if not req["member_id"]:
                raise bad("MemberId can't be empty.")
        elif epoch == 0:
            if req["rebalance_timeout_ms"] == -1:
                raise bad("RebalanceTimeoutMs must be provided in first request.")
            if req["topic_partitions"] is None or req["topic_partitions"]:
                raise bad("TopicPartitions must be empty when (re-)joining.")
            if not req["subscribed_topic_names"] and req["subscribed_topic_regex"] is None:
                raise bad("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
        elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            if not req["member_id"]:
                raise bad("MemberId can't be empty.")
            if req["instance_id"] is None:
                raise bad("InstanceId can't be null.")
        else:
            raise bad("MemberEpoch is invalid.")
        if req["subscribed_topic_regex"] is not None:
            try:
                re.compile(req["subscribed_topic_regex"])
            except re.error as e:
                raise GroupError(errors.INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex is invalid: {e}") from e
        a = req["server_assignor"]
        if a is not None and a not in self.config.consumer_assignors:
            raise GroupError(errors.UNSUPPORTED_ASSIGNOR,
                             f"ServerAssignor {a} is not supported. Supported assignors: "
                             f"{', '.join(self.config.consumer_assignors)}.")

    async def heartbeat(self, req: Message, client_id: str,
                        client_host: str) -> Message:
        resp = self._heartbeat(req, client_id, client_host)
        group = self.registry.groups.get(req["group_id"])
        if isinstance(group, ConsumerGroup):
            err = await self.persist(group, rollback=True)
            if err:
                raise GroupError(err, None)
        return resp

    def _heartbeat(self, req: Message, client_id: str, client_host: str) -> Message:
        epoch = req["member_epoch"]
        if epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
            return self._consumer_leave(req)
        gid = req["group_id"]
        member_id = req["member_id"] or _new_member_id()
        inst = req["instance_id"]
        owned = req["topic_partitions"]
        create = epoch == 0
        group = self._get_or_create_consumer_group(gid, create)
        if len(group.members) >= self.config.consumer_max_size and member_id not in group.members and \
                group.static_member(inst) is None:
            raise GroupError(errors.GROUP_MAX_SIZE_REACHED,
                             f"The consumer group has reached its maximum capacity of "
                             f"{self.config.consumer_max_size} members.")
        replaced: ConsumerMember | None = None
        if inst is None:
            member = group.members.get(member_id)
            if member is None:
                if not create:
                    raise GroupError(errors.UNKNOWN_MEMBER_ID,
                                     f"Member {member_id} is not a member of group {gid}.")
                member = ConsumerMember(member_id)
            else:
                self._check_member_epoch(member, epoch, owned)
        else:
            existing = group.static_member(inst)
            if create:
                if existing is None:
                    member = group.members.get(member_id) or ConsumerMember(member_id)
                else:
                    if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH and \
                            existing.member_id != member_id:
                        raise GroupError(errors.UNRELEASED_INSTANCE_ID,
                                         f"Static member {member_id} with instance id {inst} cannot join "
                                         f"the group because the instance id is owned by "
                                         f"{existing.member_id} member.")
                    replaced = existing
                    member = existing.copy(member_id=member_id, member_epoch=0, previous_member_epoch=0)
            else:
                if existing is None:
                    raise GroupError(errors.UNKNOWN_MEMBER_ID, f"Instance id {inst} is unknown.")
                if existing.member_id != member_id:
                    raise GroupError(errors.FENCED_INSTANCE_ID,
                                     f"Static member {member_id} with instance id {inst} was fenced by "
                                     f"member {existing.member_id}.")
                self._check_member_epoch(existing, epoch, owned)
                member = existing
        if replaced is not None:
            # the new member takes over the static member's place and assignment
            target = group.target.get(replaced.member_id, {})
            group.remove_member(replaced.member_id)
            self.registry.timers.cancel(("cg-session", gid, replaced.member_id))
            self.registry.timers.cancel(("cg-rebalance", gid, replaced.member_id))
            group.target[member_id] = target
            group.update_member(member)

        updated = member.copy(client_id=client_id, client_host=client_host)
        if inst is not None:
            updated.instance_id = inst
        if req["rack_id"] is not None:
            updated.rack_id = req["rack_id"]
        if req["rebalance_timeout_ms"] != -1:
            updated.rebalance_timeout_ms = req["rebalance_timeout_ms"]
        if req["server_assignor"] is not None:
            updated.server_assignor = req["server_assignor"]
        if req["subscribed_topic_names"] is not None:
            updated.subscribed_topic_names = list(req["subscribed_topic_names"])
        if req["subscribed_topic_regex"] is not None:
            updated.subscribed_topic_regex = req["subscribed_topic_regex"] or None

        is_new = member_id not in group.members
        bump = is_new or updated.subscribed_topic_names != member.subscribed_topic_names or \
            updated.subscribed_topic_regex != member.subscribed_topic_regex or \
            updated.server_assignor != member.server_assignor or updated.rack_id != member.rack_id
        group.update_member(updated)  # provisional: counted for subscriptions below
        metadata = self._subscription_metadata(group)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            bump = True
        if bump:
            group.group_epoch += 1
            log.info("consumer group %s: epoch bumped to %d", gid, group.group_epoch)
        if group.group_epoch > group.assignment_epoch:
            self._compute_target_assignment(group, updated)
        target = group.target.get(member_id, {})
        new = updated
        if not updated.is_reconciled_to(group.assignment_epoch):
            new = reconcile(updated, group.assignment_epoch, target, group.current_partition_epoch, owned)
        group.update_member(new)
        if not _same(new, updated):
            if new.state == M_UNREVOKED:
                self._schedule_cg_rebalance_timeout(group, new)
            else:
                self.registry.timers.cancel(("cg-rebalance", gid, member_id))
        self._schedule_cg_session_timeout(group, member_id)
        resp = {"error_code": errors.NONE, "error_message": None, "member_id": member_id,
                "member_epoch": new.member_epoch, "heartbeat_interval_ms": self.config.consumer_heartbeat_interval_ms,
                "assignment": None}
        full = epoch == 0 or (req["rebalance_timeout_ms"] != -1 and req["subscribed_topic_names"] is not None
                              and owned is not None)
        if full or new.assigned != member.assigned or is_new:
            resp["assignment"] = {"topic_partitions": [
                {"topic_id": tid, "partitions": sorted(parts)} for tid, parts in sorted(new.assigned.items())]}
        return resp

    def _check_member_epoch(self, member: ConsumerMember, epoch: int,
                            owned: list[Message] | None) -> None:
        if epoch > member.member_epoch:
            raise GroupError(errors.FENCED_MEMBER_EPOCH,
                             f"The consumer group member has a greater member epoch ({epoch}) than the one "
                             f"known by the group coordinator ({member.member_epoch}). The member must "
                             f"abandon all its partitions and rejoin.")
        if epoch < member.member_epoch:
            if epoch != member.previous_member_epoch or not _is_subset(owned, member.assigned):
                raise GroupError(errors.FENCED_MEMBER_EPOCH,
                                 f"The consumer group member has a smaller member epoch ({epoch}) than the "
                                 f"one known by the group coordinator ({member.member_epoch}). The member "
                                 f"must abandon all its partitions and rejoin.")

    def _get_or_create_consumer_group(self, gid: str, create: bool) -> ConsumerGroup:
        g = self.registry.groups.get(gid)
        if g is None:
            if not create:
                # Kafka answers GROUP_ID_NOT_FOUND (fatal for librdkafka); a group
                # deleted or expired meanwhile: the member is told it is unknown and rejoins.
                raise GroupError(errors.UNKNOWN_MEMBER_ID, f"Consumer group {gid} not found.")
            g = ConsumerGroup(gid)
            self.registry.groups[gid] = g
            return g
        if isinstance(g, ConsumerGroup):
            return g
        if create and g.is_empty():
            self.registry.remove(gid)
            cg = ConsumerGroup(gid)
            # the empty classic group's record is deleted with the first write
            cg.persisted = {records.group_metadata_key(gid): b""}
            self.registry.groups[gid] = cg
            return cg
        raise GroupError(errors.GROUP_ID_NOT_FOUND, f"Group {gid} is not a consumer group.")

    def _subscription_metadata(self, group: ConsumerGroup) -> dict[str, tuple[bytes, int]]:
        names: set[str] = set()
        regexes: set[str] = set()
        for m in group.members.values():
            names.update(m.subscribed_topic_names)
            if m.subscribed_topic_regex:
                regexes.add(m.subscribed_topic_regex)
        if regexes:
            for rx in regexes:
                pat = re.compile(rx)
                names.update(t for t in self.state.topics if not t.startswith("__") and pat.fullmatch(t))
        out = {}
        for n in names:
            ts = self.state.topics.get(n)
            if ts is not None:
                out[n] = (ts.topic_id, len(ts.partitions))
        return out

    def _member_topic_ids(self, group: ConsumerGroup, m: ConsumerMember) -> frozenset[bytes]:
        names = set(m.subscribed_topic_names)
        if m.subscribed_topic_regex:
            pat = re.compile(m.subscribed_topic_regex)
            names.update(n for n in group.subscription_metadata if pat.fullmatch(n))
        return frozenset(group.subscription_metadata[n][0] for n in names if n in group.subscription_metadata)

    def _compute_target_assignment(self, group: ConsumerGroup,
                                   updated: ConsumerMember | None) -> None:
        name = self.preferred_assignor(group)
        specs = {mid: assignors.MemberSpec(self._member_topic_ids(group, m), m.instance_id, m.rack_id)
                 for mid, m in group.members.items()}
        topics = {tid: n for tid, n in group.subscription_metadata.values()}
        result = assignors.ASSIGNORS[name](specs, topics, group.target)
        group.target = {mid: result.get(mid, {}) for mid in group.members}
        group.assignment_epoch = group.group_epoch
        log.info("consumer group %s: new target assignment for epoch %d with the %s assignor", group.group_id,
                 group.group_epoch, name)

    def preferred_assignor(self, group: ConsumerGroup) -> str:
        counts: dict[str, int] = {}
        for m in group.members.values():
            if m.server_assignor:
                counts[m.server_assignor] = counts.get(m.server_assignor, 0) + 1
        if counts:
            best = max(counts.values())
            return sorted(a for a, c in counts.items() if c == best)[0]
        return next(iter(self.config.consumer_assignors))

    def _consumer_leave(self, req: Message) -> Message:
        gid, member_id, epoch, inst = req["group_id"], req["member_id"], req["member_epoch"], req["instance_id"]
        g = self.registry.groups.get(gid)
        if not isinstance(g, ConsumerGroup):
            raise GroupError(errors.GROUP_ID_NOT_FOUND, f"Group {gid} not found." if g is None
                             else f"Group {gid} is not a consumer group.")
        resp = {"error_code": errors.NONE, "error_message": None, "member_id": member_id,
                "member_epoch": epoch, "heartbeat_interval_ms": 0, "assignment": None}
        if inst is None:
            if member_id not in g.members:
                raise GroupError(errors.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of group {gid}.")
            log.info("consumer group %s: member %s left", gid, member_id)
            self._fence_consumer_member(g, member_id)
            return resp
        member = g.static_member(inst)
        if member is None:
            raise GroupError(errors.UNKNOWN_MEMBER_ID, f"Instance id {inst} is unknown.")
        if member.member_id != member_id:
            raise GroupError(errors.FENCED_INSTANCE_ID,
                             f"Static member {member_id} with instance id {inst} was fenced by member "
                             f"{member.member_id}.")
        if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # a static member leaving temporarily keeps its place and partitions
            g.update_member(member.copy(member_epoch=LEAVE_GROUP_STATIC_MEMBER_EPOCH, pending_revocation={}))
            log.info("consumer group %s: static member %s (%s) left temporarily", gid, member_id, inst)
            resp["member_epoch"] = LEAVE_GROUP_STATIC_MEMBER_EPOCH
            return resp
        self._fence_consumer_member(g, member_id)
        return resp

    def _fence_consumer_member(self, g: ConsumerGroup, member_id: str) -> None:
        g.remove_member(member_id)
        self.registry.timers.cancel(("cg-session", g.group_id, member_id))
        self.registry.timers.cancel(("cg-rebalance", g.group_id, member_id))
        g.subscription_metadata = self._subscription_metadata(g)
        g.group_epoch += 1
        if g.members:
            self._compute_target_assignment(g, None)
        else:
            g.target = {}
            g.assignment_epoch = g.group_epoch

    def _schedule_cg_session_timeout(self, g: ConsumerGroup, member_id: str) -> None:
        gid = g.group_id

        async def expire() -> None:
            cg = self.registry.groups.get(gid)
            if isinstance(cg, ConsumerGroup) and member_id in cg.members:
                log.info("consumer group %s: member %s fenced, its session expired", gid, member_id)
                self._fence_consumer_member(cg, member_id)
                await self.persist(cg, rollback=False)

        self.registry.schedule(("cg-session", gid, member_id), self.config.consumer_session_timeout_ms, g, expire)

    def _schedule_cg_rebalance_timeout(self, g: ConsumerGroup, m: ConsumerMember) -> None:
        gid, member_id, epoch = g.group_id, m.member_id, m.member_epoch

        async def expire() -> None:
            cg = self.registry.groups.get(gid)
            if isinstance(cg, ConsumerGroup):
                cur = cg.members.get(member_id)
                if cur is not None and cur.member_epoch == epoch:
                    log.info("consumer group %s: member %s fenced, it did not revoke partitions within "
                             "its rebalance timeout", gid, member_id)
                    self._fence_consumer_member(cg, member_id)
                    await self.persist(cg, rollback=False)

        timeout = m.rebalance_timeout_ms if m.rebalance_timeout_ms > 0 else self.config.consumer_session_timeout_ms
        self.registry.schedule(("cg-rebalance", gid, member_id), timeout, g, expire)


def _new_member_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
