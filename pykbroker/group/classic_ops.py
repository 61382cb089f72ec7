"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat,
LeaveGroup and the timers behind them, following Kafka's
``GroupMetadataManager`` (4.x) step by step.

Every method of :class:`ClassicOps` runs with the group's lock held (taken
by :class:`~pykbroker.group.coordinator.GroupCoordinator`), so join, sync,
heartbeat, leave and the expiry timers of one group never interleave.
Parked requests wait on :class:`~pykbroker.group.classic.Waiter` objects
that these methods complete.

Timers (keys per group):
- ``("hb", group, member)``: session timeout of a member (for a new member
  that has not finished its first join: 5 minutes, Kafka's
  ``classicGroupNewMemberJoinTimeoutMs``); when it fires a member that is
  not waiting in a JoinGroup/SyncGroup is removed.
- ``("join", group)``: the end of the join phase (initial delay, or the
  rebalance timeout): members that did not rejoin are dropped.

One deviation from Kafka: when the initial rebalance delay of a new group
ends (group.initial.rebalance.delay.ms, 0 by default here) while members
that were just told MEMBER_ID_REQUIRED have not rejoined yet, the join phase
waits for them (they come back within a round trip) as every later join
phase does, bounded by the rebalance timeout, instead of completing without
them. Kafka completes at once, counting on its 3 s default delay; without
this, consumers started together would often form a first generation
without the last one and then wait a heartbeat interval for the next.
- ``("sync", group)``: members that did not send SyncGroup within the
  rebalance timeout after the join phase are dropped and the group rebalances.
"""

from __future__ import annotations

import logging
from typing import Any

from ..protocol import errors
from . import records
from .classic import (COMPLETING_REBALANCE, DEAD, EMPTY, NO_GENERATION, PREPARING_REBALANCE, STABLE,
                      UNKNOWN_MEMBER_ID, ClassicGroup, ClassicMember, GroupError, Waiter)
from ..protocol.codec import Message
from .consumer import ConsumerGroup
from .registry import GroupConfig, GroupRegistry, OffsetsLog

log = logging.getLogger("pykbroker.group")

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000


def join_error(code: int, member_id: str = UNKNOWN_MEMBER_ID) -> Message:
    return {"error_code": code, "member_id": member_id, "generation_id": NO_GENERATION,
            "protocol_type": None, "protocol_name": None, "leader": "", "skip_assignment": False,
            "members": []}


def sync_error(code: int) -> Message:
    return {"error_code": code, "assignment": b"", "protocol_type": None, "protocol_name": None}


def append_error_to_response_error(code: int) -> int:
    """Kafka's ``appendGroupMetadataErrorToResponseError``."""
    if code in (errors.UNKNOWN_TOPIC_OR_PARTITION, errors.NOT_ENOUGH_REPLICAS, errors.REQUEST_TIMED_OUT):
        return errors.COORDINATOR_NOT_AVAILABLE
    if code in (errors.NOT_LEADER_OR_FOLLOWER, errors.KAFKA_STORAGE_ERROR):
        return errors.NOT_COORDINATOR
    if code in (errors.MESSAGE_TOO_LARGE, errors.RECORD_LIST_TOO_LARGE, errors.INVALID_FETCH_SIZE):
        return errors.UNKNOWN_SERVER_ERROR
    return code


class ClassicOps:
    """The classic protocol's operations on the groups of ``registry``;
    group metadata records go to ``offsets_log``."""

    def __init__(self, config: GroupConfig, registry: GroupRegistry, offsets_log: OffsetsLog) -> None:
        self.config = config
        self.registry = registry
        self.offsets_log = offsets_log

    # -- entry points (lock held) -------------------------------------------------
    async def join(self, req: Message, version: int, client_id: str,
                   client_host: str) -> Waiter:
        gid = req["group_id"]
        member_id = req["member_id"]
        waiter = Waiter()
        group = self.registry.groups.get(gid)
        if isinstance(group, ConsumerGroup):
            if not group.is_empty():
                waiter.complete(join_error(errors.INCONSISTENT_GROUP_PROTOCOL))
                return waiter
            tombstones = group.tombstones()  # an empty consumer group becomes a classic one
            if tombstones:
                err = await self.offsets_log.write(gid, tombstones)
                if err:
                    waiter.complete(join_error(append_error_to_response_error(err)))
                    return waiter
            self.registry.remove(gid)
            group = None
        if group is None:
            if member_id != UNKNOWN_MEMBER_ID:
                waiter.complete(join_error(errors.UNKNOWN_MEMBER_ID, member_id))
                return waiter
            group = ClassicGroup(gid)
            self.registry.groups[gid] = group
        assert isinstance(group, ClassicGroup)
        if not self._accept_joining_member(group, member_id):
            group.remove(member_id)
            waiter.complete(join_error(errors.GROUP_MAX_SIZE_REACHED))
        elif member_id == UNKNOWN_MEMBER_ID:
            await self._join_new_member(group, req, version, client_id, client_host, waiter)
        else:
            await self._join_existing_member(group, req, version, client_id, client_host, waiter)
        return waiter

    async def sync(self, req: Message, version: int) -> Waiter:
        waiter = Waiter()
        gid, member_id = req["group_id"], req["member_id"]
        group = self.registry.groups.get(gid)
        if group is None or group.is_empty() or group.type != "classic":
            waiter.complete(sync_error(errors.UNKNOWN_MEMBER_ID))
            return waiter
        assert isinstance(group, ClassicGroup)
        try:
            if group.state == DEAD:
                raise GroupError(errors.COORDINATOR_NOT_AVAILABLE)
            group.validate_member(member_id, req["group_instance_id"])
            if req["generation_id"] != group.generation_id:
                raise GroupError(errors.ILLEGAL_GENERATION)
            if _inconsistent(req["protocol_type"], group.protocol_type) or \
                    _inconsistent(req["protocol_name"], group.protocol_name):
                raise GroupError(errors.INCONSISTENT_GROUP_PROTOCOL)
        except GroupError as e:
            waiter.complete(sync_error(e.code))
            return waiter
        if group.state == PREPARING_REBALANCE:
            waiter.complete(sync_error(errors.REBALANCE_IN_PROGRESS))
        elif group.state == COMPLETING_REBALANCE:
            m = group.members[member_id]
            m.sync_waiter = waiter
            self._remove_pending_sync_member(group, member_id)
            log.debug("group %s: SyncGroup from %s%s", gid, member_id,
                      " (leader)" if group.is_leader(member_id) else "")
            if group.is_leader(member_id):
                assignment = {a["member_id"]: a["assignment"] or b"" for a in req["assignments"]}
                for mid in group.members:
                    assignment.setdefault(mid, b"")
                generation = req["generation_id"]
                err = await self._write_group_metadata(group, assignment)
                if group.state == COMPLETING_REBALANCE and generation == group.generation_id:
                    if err:
                        err = append_error_to_response_error(err)
                        self._reset_and_propagate_assignment_with_error(group, err)
                        await self._maybe_prepare_rebalance_or_complete_join(group)
                    else:
                        for mid, mm in group.members.items():
                            mm.assignment = assignment.get(mid, b"")
                        self._propagate_assignment(group, errors.NONE)
                        group.transition(STABLE)
                        log.info("group %s generation %d is stable with %d members", gid,
                                 group.generation_id, len(group.members))
        elif group.state == STABLE:
            self._remove_pending_sync_member(group, member_id)
            m = group.members[member_id]
            waiter.complete({"error_code": errors.NONE, "assignment": m.assignment,
                             "protocol_type": group.protocol_type, "protocol_name": group.protocol_name})
        return waiter

    async def heartbeat(self, req: Message) -> int:
        group = self.registry.groups.get(req["group_id"])
        if group is None or group.type != "classic":
            return errors.UNKNOWN_MEMBER_ID
        assert isinstance(group, ClassicGroup)
        member_id = req["member_id"]
        try:
            if group.state == DEAD:
                raise GroupError(errors.COORDINATOR_NOT_AVAILABLE)
            group.validate_member(member_id, req["group_instance_id"])
            if req["generation_id"] != group.generation_id:
                raise GroupError(errors.ILLEGAL_GENERATION)
        except GroupError as e:
            return e.code
        if group.state == EMPTY:
            return errors.UNKNOWN_MEMBER_ID
        self.reschedule_heartbeat(group, group.members[member_id])
        log.debug("group %s: heartbeat from %s (%s)", group.group_id, member_id, group.state)
        if group.state == PREPARING_REBALANCE:
            return errors.REBALANCE_IN_PROGRESS
        return errors.NONE

    async def leave(self, gid: str, members: list[Message]) -> Message:
        group = self.registry.groups.get(gid)
        if group is None or group.type != "classic":
            return {"error_code": errors.NONE, "members": [
                {"member_id": m["member_id"], "group_instance_id": m["group_instance_id"],
                 "error_code": errors.UNKNOWN_MEMBER_ID} for m in members]}
        assert isinstance(group, ClassicGroup)
        if group.state == DEAD:
            return {"error_code": errors.COORDINATOR_NOT_AVAILABLE, "members": []}
        out = []
        valid = []
        for m in members:
            mid, inst = m["member_id"], m["group_instance_id"]
            code = errors.NONE
            if mid == UNKNOWN_MEMBER_ID:
                if inst is not None and inst in group.static_members:
                    self._remove_current_member(group, group.static_members[inst])
                else:
                    code = errors.UNKNOWN_MEMBER_ID
            elif mid in group.pending_join:
                group.remove(mid)
                self.registry.timers.cancel(("hb", gid, mid))
            else:
                try:
                    group.validate_member(mid, inst)
                    self._remove_current_member(group, mid)
                except GroupError as e:
                    code = e.code
            out.append({"member_id": mid, "group_instance_id": inst, "error_code": code})
            if code == errors.NONE:
                valid.append(mid)
        if valid:
            log.info("group %s: members %s left", gid, valid)
            if group.state in (STABLE, COMPLETING_REBALANCE):
                await self._maybe_prepare_rebalance_or_complete_join(group)
            elif group.state == PREPARING_REBALANCE:
                await self._maybe_complete_join_phase(group)
        return {"error_code": errors.NONE, "members": out}

    # -- join internals -------------------------------------------------------------
    def _accept_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        max_size = self.config.classic_max_size
        if group.state in (EMPTY, DEAD):
            return True
        if group.state == PREPARING_REBALANCE:
            m = group.members.get(member_id)
            return (m is not None and m.awaiting_join) or group.num_awaiting_join < max_size
        return member_id in group.members or len(group.members) < max_size

    async def _join_new_member(self, group: ClassicGroup, req: Message, version: int,
                               client_id: str, client_host: str, waiter: Waiter) -> None:
        protocols = _protocols(req)
        if group.state == DEAD:
            waiter.complete(join_error(errors.COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(req["protocol_type"], [n for n, _ in protocols]):
            waiter.complete(join_error(errors.INCONSISTENT_GROUP_PROTOCOL))
            return
        inst = req["group_instance_id"]
        new_id = group.generate_member_id(client_id, inst)
        if inst is not None:
            existing = group.static_members.get(inst)
            if existing is not None:
                log.info("group %s: static member %s rejoins, replacing member %s", group.group_id,
                         inst, existing)
                await self._update_static_member(group, req, version, existing, new_id, waiter)
            else:
                await self._add_member_and_rebalance(group, req, new_id, client_id, client_host, waiter)
        elif version >= 4:
            # KIP-394: hand out the member id first; the member rejoins with it.
            log.debug("group %s: new member %s must rejoin with its id (%s)", group.group_id, new_id, group.state)
            group.pending_join.add(new_id)
            self.registry.schedule(("hb", group.group_id, new_id), req["session_timeout_ms"], group,
                                   lambda: self._expire_heartbeat(group.group_id, new_id))
            waiter.complete(join_error(errors.MEMBER_ID_REQUIRED, new_id))
        else:
            await self._add_member_and_rebalance(group, req, new_id, client_id, client_host, waiter)

    async def _join_existing_member(self, group: ClassicGroup, req: Message,
                                    version: int, client_id: str, client_host: str,
                                    waiter: Waiter) -> None:
        member_id = req["member_id"]
        inst = req["group_instance_id"]
        protocols = _protocols(req)
        if group.state == DEAD:
            waiter.complete(join_error(errors.COORDINATOR_NOT_AVAILABLE, member_id))
            return
        if not group.supports_protocols(req["protocol_type"], [n for n, _ in protocols]):
            waiter.complete(join_error(errors.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return
        if member_id in group.pending_join:
            if inst is not None:  # a pending member is never static
                waiter.complete(join_error(errors.UNKNOWN_MEMBER_ID, member_id))
                return
            await self._add_member_and_rebalance(group, req, member_id, client_id, client_host, waiter)
            return
        try:
            group.validate_member(member_id, inst)
        except GroupError as e:
            waiter.complete(join_error(e.code, member_id))
            return
        m = group.members[member_id]
        log.debug("group %s: member %s rejoins (%s)", group.group_id, member_id, group.state)
        if group.state == PREPARING_REBALANCE:
            await self._update_member_and_rebalance(group, m, req, waiter)
        elif group.state == COMPLETING_REBALANCE:
            if m.matches(protocols):
                # lost the JoinGroup response: answer with the current generation
                waiter.complete(group.join_response(member_id))
            else:
                await self._update_member_and_rebalance(group, m, req, waiter)
        elif group.state == STABLE:
            if group.is_leader(member_id) or not m.matches(protocols):
                await self._update_member_and_rebalance(group, m, req, waiter)
            else:
                waiter.complete(group.join_response(member_id, with_members=False))
        else:
            waiter.complete(join_error(errors.UNKNOWN_MEMBER_ID, member_id))

    async def _add_member_and_rebalance(self, group: ClassicGroup, req: Message,
                                        member_id: str, client_id: str, client_host: str,
                                        waiter: Waiter) -> None:
        log.debug("group %s: adding member %s (%s)", group.group_id, member_id, group.state)
        m = ClassicMember(member_id, req["group_instance_id"], client_id, client_host,
                          _rebalance_timeout(req), req["session_timeout_ms"], req["protocol_type"],
                          _protocols(req), is_new=True)
        if group.state == PREPARING_REBALANCE and group.previous_state == EMPTY:
            group.new_member_added = True
        m.join_waiter = waiter
        group.add(m)
        # A new member cannot heartbeat yet; expire it if it never finishes joining.
        self.reschedule_heartbeat(group, m, NEW_MEMBER_JOIN_TIMEOUT_MS)
        await self._maybe_prepare_rebalance_or_complete_join(group)

    async def _update_member_and_rebalance(self, group: ClassicGroup,
                                           m: ClassicMember, req: Message, waiter: Waiter) -> None:
        group.update_member(m, _protocols(req), _rebalance_timeout(req), req["session_timeout_ms"], waiter)
        await self._maybe_prepare_rebalance_or_complete_join(group)

    async def _update_static_member(self, group: ClassicGroup, req: Message,
                                    version: int, old_id: str, new_id: str, waiter: Waiter) -> None:
        inst = req["group_instance_id"]
        current_leader = group.leader_id
        new = group.replace_static_member(inst, old_id, new_id)
        self.registry.timers.cancel(("hb", group.group_id, old_id))
        self.reschedule_heartbeat(group, new)
        old_protocols, old_rebalance, old_session = new.protocols, new.rebalance_timeout_ms, new.session_timeout_ms
        group.update_member(new, _protocols(req), _rebalance_timeout(req), req["session_timeout_ms"], waiter)
        if group.state == STABLE:
            if group.protocol_name == group.select_protocol():
                # Same protocol: no rebalance. Persist the new member id, then
                # hand back the current generation (its assignment is kept).
                err = await self._write_group_metadata(group, None)
                if err:
                    group.update_member(new, old_protocols, old_rebalance, old_session, None)
                    old = group.replace_static_member(inst, new_id, old_id)
                    self.reschedule_heartbeat(group, old)
                    resp = group.join_response(UNKNOWN_MEMBER_ID, error=append_error_to_response_error(err),
                                               with_members=False)
                    resp["leader"] = current_leader or ""
                    waiter.complete(resp)
                elif version >= 9:
                    is_leader = group.is_leader(new_id)
                    group.complete_join(new, group.join_response(new_id, with_members=is_leader,
                                                                 skip_assignment=is_leader))
                else:
                    resp = group.join_response(new_id, with_members=False)
                    resp["leader"] = current_leader or ""
                    group.complete_join(new, resp)
            else:
                await self._maybe_prepare_rebalance_or_complete_join(group)
        elif group.state == COMPLETING_REBALANCE:
            await self._prepare_rebalance(group)
        else:
            await self._maybe_complete_join_phase(group)

    async def _maybe_prepare_rebalance_or_complete_join(self, group: ClassicGroup) -> None:
        if group.can_rebalance():
            await self._prepare_rebalance(group)
        else:
            await self._maybe_complete_join_phase(group)

    async def _maybe_complete_join_phase(self, group: ClassicGroup) -> None:
        if group.state != PREPARING_REBALANCE:
            return
        if group.previous_state == EMPTY and not group.initial_delay_elapsed:
            return  # the initial rebalance ends with its delay timer
        if group.has_all_members_joined():
            await self._complete_join(group)

    async def _prepare_rebalance(self, group: ClassicGroup) -> None:
        if group.state == COMPLETING_REBALANCE:
            self._reset_and_propagate_assignment_with_error(group, errors.REBALANCE_IN_PROGRESS)
        self._remove_sync_expiration(group)
        initial = group.state == EMPTY
        gid = group.group_id
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            self.registry.schedule(("join", gid), delay, group,
                                   lambda: self._try_complete_initial_rebalance(gid, delay, remaining))
        group.transition(PREPARING_REBALANCE)
        log.info("group %s: preparing to rebalance (generation %d)", gid, group.generation_id)
        if not initial:
            if group.has_all_members_joined():
                await self._complete_join(group)
            else:
                self.registry.schedule(("join", gid), group.rebalance_timeout_ms(), group,
                                       lambda: self._complete_join_by_id(gid))

    async def _try_complete_initial_rebalance(self, gid: str, delay: int,
                                              remaining: int) -> None:
        group = self._classic(gid)
        if group is None:
            return
        if group.new_member_added and remaining != 0:
            group.new_member_added = False
            new_delay = min(self.config.initial_rebalance_delay_ms, remaining)
            new_remaining = max(remaining - delay, 0)
            self.registry.schedule(("join", gid), new_delay, group,
                                   lambda: self._try_complete_initial_rebalance(gid, new_delay, new_remaining))
        elif group.pending_join and remaining != 0:
            # Deviation (see module doc): members told MEMBER_ID_REQUIRED are
            # waited for, as in any later join phase, up to the rebalance timeout.
            group.initial_delay_elapsed = True
            self.registry.schedule(("join", gid), remaining, group, lambda: self._complete_join_by_id(gid))
        else:
            await self._complete_join(group)

    async def _complete_join_by_id(self, gid: str) -> None:
        group = self._classic(gid)
        if group is not None:
            await self._complete_join(group)

    async def _complete_join(self, group: ClassicGroup) -> None:
        gid = group.group_id
        self.registry.timers.cancel(("join", gid))
        group.initial_delay_elapsed = False
        gone = [m for m in group.not_yet_rejoined() if not m.is_static]
        for m in gone:
            group.remove(m.member_id)
            self.registry.timers.cancel(("hb", gid, m.member_id))
        if gone:
            log.info("group %s: removed members that did not rejoin: %s", gid, [m.member_id for m in gone])
        if group.state == DEAD:
            return
        if not group.maybe_elect_new_joined_leader() and group.members:
            log.warning("group %s could not complete the rebalance: no member rejoined", gid)
            self.registry.schedule(("join", gid), group.rebalance_timeout_ms(), group,
                                   lambda: self._complete_join_by_id(gid))
            return
        group.init_next_generation()
        if group.state == EMPTY:
            log.info("group %s generation %d is empty", gid, group.generation_id)
            err = await self._write_group_metadata(group, {})
            if err:
                log.warning("failed to write empty metadata of group %s: %s", gid, errors.NAMES.get(err))
            return
        for m in group.members.values():
            group.complete_join(m, group.join_response(m.member_id))
            self.reschedule_heartbeat(group, m)
            m.is_new = False
            group.pending_sync.add(m.member_id)
        generation = group.generation_id
        self.registry.schedule(("sync", gid), group.rebalance_timeout_ms(), group,
                               lambda: self._expire_pending_sync(gid, generation))

    # -- expiry -----------------------------------------------------------------------
    async def _expire_heartbeat(self, gid: str, member_id: str) -> None:
        group = self._classic(gid)
        if group is None or group.state == DEAD:
            return
        if member_id in group.pending_join:
            log.info("group %s: pending member %s expired", gid, member_id)
            group.remove(member_id)
            if group.state == PREPARING_REBALANCE and group.has_all_members_joined():
                await self._complete_join(group)
            return
        m = group.members.get(member_id)
        if m is None or m.has_satisfied_heartbeat():
            return
        log.info("group %s: member %s session expired, removing it", gid, member_id)
        await self._remove_member_and_update_group(group, m)

    async def _remove_member_and_update_group(self, group: ClassicGroup,
                                              m: ClassicMember) -> None:
        group.complete_join(m, join_error(errors.UNKNOWN_MEMBER_ID))
        group.remove(m.member_id)
        if group.state in (STABLE, COMPLETING_REBALANCE):
            await self._maybe_prepare_rebalance_or_complete_join(group)
        elif group.state == PREPARING_REBALANCE and group.has_all_members_joined():
            await self._complete_join(group)

    async def _expire_pending_sync(self, gid: str, generation: int) -> None:
        group = self._classic(gid)
        if group is None or generation != group.generation_id:
            return
        if group.state in (COMPLETING_REBALANCE, STABLE) and group.pending_sync:
            late = list(group.pending_sync)
            for mid in late:
                group.remove(mid)
                self.registry.timers.cancel(("hb", gid, mid))
            log.info("group %s: removed members that did not sync in time: %s", gid, late)
            await self._prepare_rebalance(group)

    def _remove_current_member(self, group: ClassicGroup, member_id: str) -> None:
        m = group.members[member_id]
        self.registry.timers.cancel(("hb", group.group_id, member_id))
        group.complete_join(m, join_error(errors.UNKNOWN_MEMBER_ID))
        group.remove(member_id)

    # -- sync internals -----------------------------------------------------------------
    def _remove_sync_expiration(self, group: ClassicGroup) -> None:
        group.pending_sync.clear()
        self.registry.timers.cancel(("sync", group.group_id))

    def _remove_pending_sync_member(self, group: ClassicGroup, member_id: str) -> None:
        group.pending_sync.discard(member_id)
        if group.state in (DEAD, EMPTY, PREPARING_REBALANCE) or not group.pending_sync:
            self.registry.timers.cancel(("sync", group.group_id))

    def _reset_and_propagate_assignment_with_error(self, group: ClassicGroup,
                                                   error: int) -> None:
        assert group.state == COMPLETING_REBALANCE, group.state
        for m in group.members.values():
            m.assignment = b""
        self._propagate_assignment(group, error)

    def _propagate_assignment(self, group: ClassicGroup, error: int) -> None:
        ok = error == errors.NONE
        for m in group.members.values():
            if group.complete_sync(m, {"error_code": error, "assignment": m.assignment,
                                       "protocol_type": group.protocol_type if ok else None,
                                       "protocol_name": group.protocol_name if ok else None}):
                self.reschedule_heartbeat(group, m)

    def reschedule_heartbeat(self, group: ClassicGroup, m: ClassicMember,
                             timeout_ms: int | None = None) -> None:
        gid, mid = group.group_id, m.member_id
        self.registry.schedule(("hb", gid, mid), m.session_timeout_ms if timeout_ms is None else timeout_ms,
                               group, lambda: self._expire_heartbeat(gid, mid))

    def _classic(self, gid: str) -> ClassicGroup | None:
        g = self.registry.groups.get(gid)
        return g if isinstance(g, ClassicGroup) else None

    async def _write_group_metadata(self, group: ClassicGroup,
                                    assignment: dict[str, bytes] | None) -> int:
        value = group.metadata_value(assignment)
        return await self.offsets_log.write(group.group_id, [(records.group_metadata_key(group.group_id),
                                            records.group_metadata_value(value))])


def _inconsistent(req_value: Any, group_value: Any) -> bool:
    return req_value is not None and group_value is not None and req_value != group_value


def _protocols(req: Message) -> list[tuple[str, bytes]]:
    return [(p["name"], bytes(p["metadata"] or b"")) for p in req["protocols"]]


def _rebalance_timeout(req: Message) -> int:
    rt = req["rebalance_timeout_ms"]
    timeout: int = req["session_timeout_ms"] if rt is None or rt < 0 else rt
    return timeout
