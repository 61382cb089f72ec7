"""The share coordinator: share groups (KIP-932), their share sessions and
share-partitions, persisted in ``__share_group_state``.

One object plays the roles Kafka splits between the group coordinator
(ShareGroupHeartbeat/Describe, the assignor), the SharePartitionManager
(ShareFetch/ShareAcknowledge, sessions, record locks) and the share
coordinator with its persister (``__share_group_state``). A lone broker is
all three.

Concurrency: one ``trio.Lock`` per share group. Heartbeats, acknowledgements,
acquisitions, lock timeouts, session expiry and offset changes of a group
run under it, including the append of the group's state records; a
ShareFetch waiting for records waits outside it (on the partitions' waiter
events and on the group's release event). Timers (session timeouts, record
locks) are deadlines of one trio task (:mod:`pykbroker.group.timers`).

Persistence: after every change of a share-partition (acquisition,
acknowledgement, release, lock timeout, offsets altered or deleted) its
whole state is appended as one snapshot record (:mod:`.records`) through
``BrokerState.append`` to partition ``abs(hash("group:topicId:partition"))
% share.coordinator.state.topic.num.partitions`` of ``__share_group_state``
(compacted), before the request is answered. On start every partition of
that topic is read back; records acquired before the restart come back
AVAILABLE with their delivery counts, and the groups reappear Empty.
Membership itself is not persisted (KIP-848 consumer groups are: group/consumer.py).

A ZooKeeper cluster (``self.cluster``; docs/share-groups.md "In a
cluster") splits the roles by where things live, as Kafka does:

- membership (ShareGroupHeartbeat, ShareGroupDescribe, ListGroups and the
  offsets administration) on the group's coordinator, the leader of its
  ``__consumer_offsets`` partition (:meth:`group_error`; NOT_COORDINATOR
  elsewhere); losing that partition drops the membership;
- share sessions and share-partitions (ShareFetch, ShareAcknowledge, record
  locks) on each data partition's leader (NOT_LEADER_OR_FOLLOWER
  elsewhere). A leader reads a share-partition's last snapshot from
  ``__share_group_state`` the first time it serves it (:meth:`_partition`,
  under the group lock, so nothing is served before) and writes it back at
  its own leader epoch; a leadership change of the data partition, won or
  lost, drops its share-partitions here (:meth:`_on_leadership`);
- ``__share_group_state`` is an ordinary replicated topic: snapshots are
  appended through this broker's append path when it leads the state
  partition, else sent to its leader as a Produce (acks=-1); reads from
  another broker's partition are a Fetch up to a read barrier
  (:meth:`_read_state`). There is no share coordinator role of its own
  (Kafka's Read/WriteShareGroupState, APIs 84/85, are not served); readers
  resolve concurrent writers by (state epoch, leader epoch)
  (:func:`.records.latest`).
"""

from __future__ import annotations

import logging
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from collections.abc import AsyncIterator, Callable

import attrs
import trio

from ..group.timers import Timers
from ..protocol import errors
from ..protocol.records import InvalidRecords, build_batch, decode_records, iter_batches, validate_batches
from ..group.coordinator_base import InternalTopicCoordinator
from ..util import now_ms
from . import records
from .group_configs import GroupConfigs, parse_duration_ms
from .partition import (ACK_RENEW, ACKNOWLEDGED, ACQUIRED, ARCHIVED, InvalidRecordState, SharePartition,
                        ranges)

if TYPE_CHECKING:
    from ..server.state import BrokerState

log = logging.getLogger("pykbroker.share")

EMPTY = "Empty"
STABLE = "Stable"
DEAD = "Dead"
ASSIGNOR = "simple"
PROTOCOL_TYPE = "share"
# READ, DELETE, DESCRIBE (Kafka's AclOperation codes 3, 6, 8)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
NOT_REQUESTED = -2147483648

TP = tuple[bytes, int]  # (topic id, partition)
READ_CHUNK_BYTES = 1 << 20  # at most this much of a partition's log is read per ShareFetch


@attrs.define(eq=False)
class ShareMember:
    member_id: str
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed: list[str]
    epoch: int = 0
    assignment: dict[bytes, list[int]] = attrs.field(factory=dict)
    sent_assignment: dict[bytes, list[int]] | None = None


@attrs.define(eq=False)
class ShareSession:
    epoch: int  # the next epoch expected
    partitions: set[TP] = attrs.field(factory=set)


@attrs.define(eq=False)
class ShareGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ShareMember] = attrs.field(factory=dict)
    target: dict[str, dict[bytes, list[int]]] = attrs.field(factory=dict)
    partitions: dict[TP, SharePartition] = attrs.field(factory=dict)
    sessions: dict[str, ShareSession] = attrs.field(factory=dict)
    released: trio.Event = attrs.field(factory=trio.Event)  # set when records become available again

    @property
    def state(self) -> str:
        return STABLE if self.members else EMPTY

    def wake(self) -> None:
        self.released.set()
        self.released = trio.Event()


def assign(members: dict[str, ShareMember], topics: dict[str, tuple[bytes, int]]) -> dict[str, dict[bytes, list[int]]]:
    """The share-group "simple" assignor: every subscribed partition goes to
    at least one member; with fewer partitions than members a partition is
    shared (member i of the sorted subscribers gets partition i mod n), with
    more, partitions are dealt round-robin. Deterministic."""
    out: dict[str, dict[bytes, list[int]]] = {m: {} for m in members}
    for name, (tid, n) in sorted(topics.items()):
        subs = sorted(m.member_id for m in members.values() if name in m.subscribed)
        if not subs or n <= 0:
            continue
        if len(subs) >= n:
            for i, mid in enumerate(subs):
                out[mid].setdefault(tid, []).append(i % n)
        else:
            for p in range(n):
                out[subs[p % len(subs)]].setdefault(tid, []).append(p)
    for a in out.values():
        for parts in a.values():
            parts.sort()
    return out


class ShareCoordinator(InternalTopicCoordinator):
    TIMER_KIND = "share"
    TOPIC = records.SHARE_STATE_TOPIC
    ABSENT_TOPIC_ERROR = errors.NONE

    def __init__(self, state: Any) -> None:
        self.state = state
        cfg = state.config
        self.max_size = int(cfg["group.share.max.size"])
        self.delivery_limit = int(cfg["group.share.delivery.count.limit"])
        self.max_record_locks = int(cfg["group.share.partition.max.record.locks"])
        self.state_partitions = int(cfg["share.coordinator.state.topic.num.partitions"])
        self.group_configs = GroupConfigs(cfg)
        self.groups: dict[str, ShareGroup] = {}
        self.timers = Timers()
        self._locks: dict[str, trio.Lock] = {}
        # a ZooKeeper cluster: share-partitions live on their data partition's leader, loaded from
        # __share_group_state when first used there (a lone broker loads everything at start)
        self.cluster = bool(cfg["zookeeper.connect"])
        # (topic id, partition) -> bumped on every leadership change of that data partition here
        self._data_gen: dict[TP, int] = {}
        ts = state.topics.get(self.TOPIC)
        # partitions of __share_group_state not replayed yet (ListGroups: COORDINATOR_LOAD_IN_PROGRESS)
        self.loading: set[int] = set(range(len(ts.partitions))) if ts is not None and not self.cluster else set()
        self.loaded = trio.Event()
        if self.cluster:
            state.add_leadership_listener(self._on_leadership)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Load ``__share_group_state``, then run the timers until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.timers.run, self._fire)
            task_status.started()
            try:
                if not self.cluster:
                    await self._load()
            finally:
                self.loaded.set()

    def _key_exists(self, key: str) -> bool:
        return key in self.groups

    def topic_partitions(self) -> int:
        return self.state_partitions

    def topic_configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}

    key_partition = staticmethod(records.partition_for)

    def ensure_topic(self) -> Any:
        """``__share_group_state``, created with share.coordinator.state.topic.replication.factor."""
        ts = self.topic()
        if ts is None:
            ts = self.state.ensure_internal_topic(
                self.TOPIC, self.topic_partitions(), self.topic_configs(),
                replication_factor=int(self.state.config["share.coordinator.state.topic.replication.factor"]))
            if ts is not None:
                log.info("created %s with %d partitions", self.TOPIC, len(ts.partitions))
        return ts

    # -- persistence -------------------------------------------------------------------------------
    async def _load(self) -> None:
        ts = self.topic()
        if ts is None:
            return
        self.loading = set(range(len(ts.partitions)))
        found: list[records.ShareSnapshot] = []
        for p in ts.partitions:
            if p.log is None:
                continue
            try:
                recs = await trio.to_thread.run_sync(_read_partition, p.log)
            except Exception:
                log.exception("loading %s-%d failed", self.TOPIC, p.index)
                continue
            for k, v in recs:
                try:
                    s = records.decode(k, v)
                except ValueError as e:
                    log.warning("skipping a record of %s-%d: %s", self.TOPIC, p.index, e)
                    continue
                if s is not None:
                    found.append(s)
        snaps = records.latest(found)
        for (gid, tid, part), snap in snaps.items():
            g = self.groups.get(gid)
            if snap is None:
                continue
            if g is None:
                g = self.groups[gid] = ShareGroup(gid)
            sp = SharePartition(gid, tid, part, snap["start_offset"], state_epoch=snap["state_epoch"])
            sp.load_batches(snap["state_batches"])
            g.partitions[(tid, part)] = sp
        self.loading.clear()
        if snaps:
            log.info("loaded %d share-partition states of %d share groups", len(snaps), len(self.groups))

    async def _persist(self, sp: SharePartition, delete: bool = False, *, as_leader: bool = True) -> int:
        """Write ``sp``'s snapshot (a tombstone with ``delete``) before the
        answer; an error code. In a cluster, ``as_leader`` (every write but
        the offsets administration of the group coordinator) writes only while
        this broker leads the data partition: NOT_LEADER_OR_FOLLOWER once it
        does not (its state is then dropped, the new leader reads the last
        snapshot)."""
        if self.cluster and as_leader and not self._leads_data(sp.topic_id, sp.partition):
            return errors.NOT_LEADER_OR_FOLLOWER
        ts = self.ensure_topic()
        if ts is None:
            return errors.COORDINATOR_NOT_AVAILABLE
        key = records.coordinator_key(sp.group_id, sp.topic_id, sp.partition)
        p = ts.partitions[records.partition_for(key, len(ts.partitions))]
        tp = self.state.topics_by_id.get(sp.topic_id)
        leader_epoch = -1
        if tp is not None and sp.partition < len(tp.partitions):
            leader_epoch = tp.partitions[sp.partition].leader_epoch
        value = None if delete else records.snapshot_value({
            "snapshot_epoch": 0, "state_epoch": sp.state_epoch, "leader_epoch": leader_epoch,
            "start_offset": sp.start_offset, "state_batches": sp.state_batches()})
        code, _ = await self._append_state(ts, p, records.snapshot_key(sp.group_id, sp.topic_id, sp.partition),
                                           value)
        if code:
            log.warning("share group %s: cannot write the state of %s-%d: %s", sp.group_id,
                        tp.name if tp is not None else sp.topic_id.hex(), sp.partition, errors.NAMES.get(code, code))
        return code

    def _leads_state(self, index: int) -> bool:
        """This broker leads partition ``index`` of __share_group_state (a lone broker: always)."""
        ts = self.topic()
        if ts is None or not 0 <= index < len(ts.partitions):
            return False
        return self.state.leader_of(self.TOPIC, index) == self.state.node_id and \
            bool(self.state.replicas.is_leader(ts.partitions[index]))

    async def _append_state(self, ts: Any, p: Any, key: bytes, value: bytes | None) -> tuple[int, int]:
        """Append one record (acks=-1) to partition ``p`` of __share_group_state:
        through this broker's append path when it leads ``p`` (always on a
        lone broker), else as a Produce to its leader. (error, base offset;
        -1 when local)."""
        now = now_ms()
        batch = build_batch([(key, value, (), now)])
        if not self.cluster or self._leads_state(p.index):
            try:
                headers = validate_batches(batch, max_batch_bytes=ts.log_config.max_message_bytes, client=False)
                await self.state.append(p, bytearray(batch), headers, acks=-1, now=now)
            except InvalidRecords as e:
                return e.error_code, -1
            except errors.KafkaError as e:
                return e.code, -1
            return errors.NONE, -1
        leader = self.state.leader_of(self.TOPIC, p.index)
        if leader is None or leader < 0 or leader == self.state.node_id:
            return errors.COORDINATOR_NOT_AVAILABLE, -1  # no leader, or this broker's replica not leading yet
        resp = await self.state.replicas.call(leader, 0, 9, {
            "transactional_id": None, "acks": -1, "timeout_ms": 30000,
            "topic_data": [{"name": self.TOPIC, "partition_data": [{"index": p.index, "records": batch}]}]})
        if resp is None:
            return errors.COORDINATOR_NOT_AVAILABLE, -1
        pr = resp["responses"][0]["partition_responses"][0]
        return pr["error_code"], pr["base_offset"]

    async def _read_state(self, index: int) -> tuple[int, dict[records.SnapKey, dict[str, Any] | None]]:
        """Every share-partition state in partition ``index`` of
        __share_group_state (:func:`records.latest`): read from the local log
        when this broker leads it, else fetched from its leader up to a read
        barrier appended first (so nothing written before is missed, even
        right after the state partition's leader changed). (error, states)."""
        ts = self.topic()
        if ts is None:
            return errors.NONE, {}  # no share state anywhere yet
        part = ts.partitions[index]
        found: list[records.ShareSnapshot] = []

        def keep(recs: list[tuple[bytes | None, bytes | None]]) -> None:
            for k, v in recs:
                try:
                    s = records.decode(k, v)
                except ValueError as e:
                    log.warning("skipping a record of %s-%d: %s", self.TOPIC, index, e)
                    continue
                if s is not None:
                    found.append(s)

        if self._leads_state(index) and part.log is not None:
            try:
                keep(await trio.to_thread.run_sync(_read_partition, part.log))
            except Exception:
                log.exception("reading %s-%d failed", self.TOPIC, index)
                return errors.COORDINATOR_NOT_AVAILABLE, {}
            return errors.NONE, records.latest(found)
        code, barrier = await self._append_state(ts, part, records.read_barrier_key(), None)
        if code:
            return code, {}
        if barrier < 0:  # appended locally after all: this broker became the leader meanwhile; read again
            return errors.COORDINATOR_NOT_AVAILABLE, {}
        leader = self.state.leader_of(self.TOPIC, index)
        offset = 0
        while offset <= barrier:
            if leader is None or leader < 0:
                return errors.COORDINATOR_NOT_AVAILABLE, {}
            resp = await self.state.replicas.call(leader, 1, 12, {
                "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": READ_CHUNK_BYTES,
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": self.TOPIC, "partitions": [{
                    "partition": index, "current_leader_epoch": -1, "fetch_offset": offset,
                    "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": READ_CHUNK_BYTES}]}],
                "forgotten_topics_data": [], "rack_id": ""})
            if resp is None:
                return errors.COORDINATOR_NOT_AVAILABLE, {}
            pr = resp["responses"][0]["partitions"][0]
            if pr["error_code"] == errors.OFFSET_OUT_OF_RANGE and pr["log_start_offset"] > offset:
                offset = pr["log_start_offset"]
                continue
            if pr["error_code"]:
                return pr["error_code"], {}
            data = bytes(pr["records"] or b"")
            recs: list[tuple[bytes | None, bytes | None]] = []
            moved = offset
            for h in iter_batches(data):
                moved = max(moved, h.last_offset + 1)
                if h.is_control:
                    continue
                for r in decode_records(data, h.position):
                    if r.offset >= offset:
                        recs.append((r.key, r.value))
            keep(recs)
            if moved == offset:
                return errors.COORDINATOR_NOT_AVAILABLE, {}  # nothing more below the barrier: leader changed
            offset = moved
        return errors.NONE, records.latest(found)

    # -- a cluster: where things live ---------------------------------------------------------------
    def _leads_data(self, tid: bytes, index: int) -> bool:
        """This broker leads data partition (tid, index): its share-partitions live here."""
        ts = self.state.topics_by_id.get(tid)
        if ts is None or not 0 <= index < len(ts.partitions):
            return False
        return self.state.leader_of(ts.name, index) == self.state.node_id and \
            bool(self.state.replicas.is_leader(ts.partitions[index]))

    def group_error(self, gid: str, create: bool = True) -> int:
        """Share groups are coordinated where their classic and consumer
        groups are: the leader of the group's partition of __consumer_offsets
        (FindCoordinator GROUP). NONE there (and on a lone broker), else
        NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE."""
        if not self.cluster:
            return errors.NONE
        gc = getattr(self.state, "group_coordinator", None)
        if gc is None:
            return errors.COORDINATOR_NOT_AVAILABLE
        code: int = gc.availability(gid, create=create)
        return code

    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """A cluster: a data partition whose leadership changed here (won or
        lost) drops its share-partitions (a new leader reads the last
        snapshot before it serves the partition; acquisitions held on this
        broker come back there as available records); a lost partition of
        __consumer_offsets drops the membership of its share groups (their
        members get NOT_COORDINATOR, find the new coordinator and join it)."""
        if topic == self.TOPIC:
            return
        if topic == "__consumer_offsets":
            if is_leader:
                return
            gc = getattr(self.state, "group_coordinator", None)
            for g in list(self.groups.values()):
                if gc is None or gc.partition_for(g.group_id) != partition or not g.members:
                    continue
                for mid in list(g.members):
                    self.timers.cancel(("session", g.group_id, mid))
                g.members.clear()
                g.target = {}
                log.info("share group %s: no longer its coordinator", g.group_id)
            return
        ts = self.state.topics.get(topic)
        if ts is None:
            return
        tp = (ts.topic_id, partition)
        self._data_gen[tp] = self._data_gen.get(tp, 0) + 1
        dropped = 0
        for g in self.groups.values():
            if g.partitions.pop(tp, None) is not None:
                dropped += 1
                g.wake()
        if dropped:
            log.info("%s-%d: leadership %s (epoch %d): dropped %d share-partition state(s)", topic, partition,
                     "gained" if is_leader else "lost", leader_epoch, dropped)

    # -- locking -------------------------------------------------------------------------------------
    @asynccontextmanager
    async def group_lock(self, gid: str) -> AsyncIterator[None]:
        await self.loaded.wait()
        async with self._lock(gid):
            yield

    @asynccontextmanager
    async def steady_lock(self, gid: str) -> AsyncIterator[None]:
        """:meth:`group_lock` with the state change under it shielded: a
        ShareFetch whose client went away is cancelled (server/connection.py)
        only while it waits for records, never half-way through acquiring
        and persisting them (acquired records of a lost response are
        released by their lock timeout, as in Kafka)."""
        await self.loaded.wait()  # unbounded: outside the shield
        with trio.CancelScope(shield=True):
            async with self.group_lock(gid):
                yield

    def _other_group_type(self, gid: str) -> bool:
        gc = getattr(self.state, "group_coordinator", None)
        return gc is not None and gid in getattr(gc, "groups", {})

    # -- ShareGroupHeartbeat ----------------------------------------------------------------------
    async def heartbeat(self, req: dict[str, Any], client_id: str, client_host: str) -> dict[str, Any]:
        gid, mid, epoch = req["group_id"], req["member_id"], req["member_epoch"]

        def err(code: int, msg: str | None = None) -> dict[str, Any]:
            return {"error_code": code, "error_message": msg, "member_id": None, "member_epoch": 0,
                    "heartbeat_interval_ms": 0, "assignment": None}

        if not gid:
            return err(errors.INVALID_GROUP_ID, "GroupId can't be empty.")
        if not mid:
            return err(errors.INVALID_REQUEST, "MemberId can't be empty.")
        if epoch < -1:
            return err(errors.INVALID_REQUEST, "MemberEpoch is invalid.")
        if epoch == 0 and not req["subscribed_topic_names"]:
            return err(errors.INVALID_REQUEST, "SubscribedTopicNames must be set in first request.")
        code = self.group_error(gid)
        if code:
            return err(code)
        if self._other_group_type(gid):
            return err(errors.GROUP_ID_NOT_FOUND, f"Group {gid} is not a share group.")
        async with self.group_lock(gid):
            g = self.groups.get(gid)
            if epoch == -1:
                if g is None or mid not in g.members:
                    return err(errors.UNKNOWN_MEMBER_ID, f"Member {mid} is not a member of group {gid}.")
                await self._remove_member(g, mid)
                return {"error_code": errors.NONE, "error_message": None, "member_id": mid,
                        "member_epoch": -1, "heartbeat_interval_ms": 0, "assignment": None}
            m = g.members.get(mid) if g is not None else None
            if epoch == 0:
                if g is None:
                    g = self.groups[gid] = ShareGroup(gid)
                if m is None:
                    if len(g.members) >= self.max_size:
                        return err(errors.GROUP_MAX_SIZE_REACHED,
                                   f"The share group has reached its maximum capacity of {self.max_size} members.")
                    m = g.members[mid] = ShareMember(mid, client_id, client_host, req["rack_id"],
                                                     list(req["subscribed_topic_names"] or []))
                    g.group_epoch += 1
                m.sent_assignment = None  # a (re)joining member gets its assignment
            else:
                if m is None:
                    return err(errors.UNKNOWN_MEMBER_ID, f"Member {mid} is not a member of group {gid}.")
                if epoch != m.epoch:
                    return err(errors.FENCED_MEMBER_EPOCH,
                               f"The share group member has a smaller or larger member epoch ({epoch}) "
                               f"than the one known by the group coordinator ({m.epoch}).")
            assert g is not None
            subs = req["subscribed_topic_names"]
            if subs is not None and sorted(subs) != sorted(m.subscribed):
                m.subscribed = list(subs)
                g.group_epoch += 1
            if req["rack_id"] is not None:
                m.rack_id = req["rack_id"]
            self._update_assignment(g)
            if m.epoch != g.assignment_epoch:
                m.epoch = g.assignment_epoch
            m.assignment = g.target.get(mid, {})
            if not self.cluster:  # a cluster: the data partitions' leaders initialize them when first fetched
                await self._initialize_partitions(g, m.assignment)
            self.timers.schedule(("session", gid, mid),
                                 self.group_configs.get_int(gid, "share.session.timeout.ms"), gid,
                                 _bind(self._session_expired, g, mid))
            out_assignment = None
            if m.sent_assignment != m.assignment:
                m.sent_assignment = {t: list(p) for t, p in m.assignment.items()}
                out_assignment = {"topic_partitions": [
                    {"topic_id": t, "partitions": p} for t, p in sorted(m.assignment.items())]}
            return {"error_code": errors.NONE, "error_message": None, "member_id": mid,
                    "member_epoch": m.epoch,
                    "heartbeat_interval_ms": self.group_configs.get_int(gid, "share.heartbeat.interval.ms"),
                    "assignment": out_assignment}

    def _subscribed_topics(self, g: ShareGroup) -> dict[str, tuple[bytes, int]]:
        names = {t for m in g.members.values() for t in m.subscribed}
        out = {}
        for n in names:
            ts = self.state.topics.get(n)
            if ts is not None and not ts.internal:
                out[n] = (ts.topic_id, len(ts.partitions))
        return out

    def _update_assignment(self, g: ShareGroup) -> None:
        """Recompute the target assignment; a new one (membership, subscriptions
        or topic metadata changed) bumps the group epoch."""
        target = assign(g.members, self._subscribed_topics(g))
        if target != g.target or g.assignment_epoch != g.group_epoch:
            if target != g.target and g.assignment_epoch == g.group_epoch:
                g.group_epoch += 1
            g.target = target
            g.assignment_epoch = g.group_epoch

    async def _initialize_partitions(self, g: ShareGroup, assignment: dict[bytes, list[int]]) -> None:
        """Share-partitions are initialized when first assigned: start offset
        per share.auto.offset.reset (latest: the high watermark)."""
        for tid, parts in assignment.items():
            for p in parts:
                if (tid, p) not in g.partitions:
                    sp, _ = await self._partition(g, tid, p)
                    if sp is not None:
                        await self._persist(sp)

    async def _partition(self, g: ShareGroup, tid: bytes, p: int) -> tuple[SharePartition | None, int]:
        """The share-partition (group lock held), initialized per
        share.auto.offset.reset when the group has none. In a cluster it is
        first read from __share_group_state (the last snapshot, written by
        this or an earlier leader) and written back at this leader's epoch,
        so a late write of a deposed leader cannot override it. (None, error)
        when that fails or leadership moved meanwhile."""
        sp = g.partitions.get((tid, p))
        if sp is not None:
            return sp, errors.NONE
        ts = self.state.topics_by_id.get(tid)
        if ts is None or not 0 <= p < len(ts.partitions) or ts.partitions[p].log is None:
            return None, errors.NONE
        if not self.cluster:
            start = self._reset_offset(g.group_id, ts.partitions[p])
            sp = g.partitions[(tid, p)] = SharePartition(g.group_id, tid, p, start)
            return sp, errors.NONE
        gen = self._data_gen.get((tid, p), 0)
        state_ts = self.ensure_topic()
        if state_ts is None:
            return None, errors.COORDINATOR_NOT_AVAILABLE
        key = records.coordinator_key(g.group_id, tid, p)
        code, snaps = await self._read_state(records.partition_for(key, len(state_ts.partitions)))
        if code:
            log.info("share group %s: cannot read the state of %s-%d: %s", g.group_id, ts.name, p,
                     errors.NAMES.get(code, code))
            return None, code
        if self._data_gen.get((tid, p), 0) != gen or not self._leads_data(tid, p):
            return None, errors.NOT_LEADER_OR_FOLLOWER
        snap = snaps.get((g.group_id, tid, p))
        if snap is not None:
            sp = SharePartition(g.group_id, tid, p, snap["start_offset"], state_epoch=snap["state_epoch"])
            sp.load_batches(snap["state_batches"])
        else:
            sp = SharePartition(g.group_id, tid, p, self._reset_offset(g.group_id, ts.partitions[p]))
        g.partitions[(tid, p)] = sp
        code = await self._persist(sp)
        if code:
            if g.partitions.get((tid, p)) is sp:
                del g.partitions[(tid, p)]
            return None, code
        log.info("share group %s: %s-%d loaded at start offset %d (%d in flight)", g.group_id, ts.name, p,
                 sp.start_offset, sp.in_flight())
        return sp, errors.NONE

    def _reset_offset(self, gid: str, part: Any) -> int:
        """share.auto.offset.reset: latest (the high watermark), earliest (the
        log start offset) or by_duration (the first record not older)."""
        reset = self.group_configs.get(gid, "share.auto.offset.reset").strip()
        if reset.lower() == "earliest":
            return int(part.log_start_offset)
        if reset.lower().startswith("by_duration:"):
            ms = parse_duration_ms(reset[len("by_duration:"):]) or 0
            found = part.log.offset_for_timestamp(now_ms() - ms)
            return int(part.high_watermark) if found is None else min(int(found.offset), int(part.high_watermark))
        return int(part.high_watermark)

    def lock_ms(self, gid: str) -> int:
        return self.group_configs.get_int(gid, "share.record.lock.duration.ms")

    async def _remove_member(self, g: ShareGroup, mid: str) -> None:
        g.members.pop(mid, None)
        g.sessions.pop(mid, None)
        self.timers.cancel(("session", g.group_id, mid))
        g.group_epoch += 1
        self._update_assignment(g)
        await self._release_member(g, mid)

    async def _release_member(self, g: ShareGroup, mid: str) -> None:
        for sp in list(g.partitions.values()):
            if sp.release(self.delivery_limit, member_id=mid):
                await self._persist(sp)
                g.wake()

    async def _session_expired(self, g: ShareGroup, mid: str) -> None:
        if self.groups.get(g.group_id) is g and mid in g.members:
            log.info("share group %s: member %s timed out", g.group_id, mid)
            await self._remove_member(g, mid)

    # -- ShareGroupDescribe, ListGroups ------------------------------------------------------------
    def describe(self, gid: str, include_ops: bool) -> dict[str, Any]:
        g = self.groups.get(gid)
        out: dict[str, Any] = {"error_code": errors.NONE, "error_message": None, "group_id": gid,
                               "group_state": DEAD, "group_epoch": -1, "assignment_epoch": -1,
                               "assignor_name": "", "members": [], "authorized_operations": NOT_REQUESTED}
        code = self.group_error(gid, create=False)
        if code:
            out.update(error_code=code, group_state="")
            return out
        if g is None:
            if self._other_group_type(gid):
                out.update(error_code=errors.GROUP_ID_NOT_FOUND, error_message=f"Group {gid} is not a share group.")
            else:
                out.update(error_code=errors.GROUP_ID_NOT_FOUND, error_message=f"Group {gid} not found.")
            return out

        def names(a: dict[bytes, list[int]]) -> list[dict[str, Any]]:
            tps = []
            for tid, parts in sorted(a.items()):
                ts = self.state.topics_by_id.get(tid)
                tps.append({"topic_id": tid, "topic_name": ts.name if ts is not None else "", "partitions": parts})
            return tps

        out.update(group_state=g.state, group_epoch=g.group_epoch, assignment_epoch=g.assignment_epoch,
                   assignor_name=ASSIGNOR)
        out["members"] = [{
            "member_id": m.member_id, "rack_id": m.rack_id, "member_epoch": m.epoch, "client_id": m.client_id,
            "client_host": m.client_host, "subscribed_topic_names": sorted(m.subscribed),
            "assignment": {"topic_partitions": names(m.assignment)}} for m in g.members.values()]
        if include_ops:
            out["authorized_operations"] = GROUP_AUTHORIZED_OPERATIONS
        return out

    def list_groups(self, states: list[str], types: list[str]) -> tuple[int, list[dict[str, Any]]]:
        """ListGroups: (COORDINATOR_LOAD_IN_PROGRESS while loading, else NONE; the share groups)."""
        code = errors.COORDINATOR_LOAD_IN_PROGRESS if not self.loaded.is_set() else errors.NONE
        return code, self._list(states, types)

    def _list(self, states: list[str], types: list[str]) -> list[dict[str, Any]]:
        states_l = {s.strip().lower() for s in states}
        types_l = {t.strip().lower() for t in types}
        if types_l and "share" not in types_l:
            return []
        return [{"group_id": gid, "protocol_type": PROTOCOL_TYPE, "group_state": g.state, "group_type": "share"}
                for gid, g in self.groups.items() if (not states_l or g.state.lower() in states_l)
                and (not self.cluster or self.group_error(gid, create=False) == errors.NONE)]

    # -- ShareFetch / ShareAcknowledge --------------------------------------------------------------
    def _session(self, g: ShareGroup | None, mid: str, epoch: int) -> tuple[int, ShareSession | None]:
        """Validate the share session epoch: (error, session)."""
        s = g.sessions.get(mid) if g is not None else None
        if epoch == 0:
            return errors.NONE, None
        if s is None:
            return errors.SHARE_SESSION_NOT_FOUND, None
        if epoch != -1 and epoch != s.epoch:
            return errors.INVALID_SHARE_SESSION_EPOCH, None
        return errors.NONE, s

    async def acknowledge(self, g: ShareGroup, mid: str,
                          acks: dict[TP, list[dict[str, Any]]]) -> dict[TP, tuple[int, str | None]]:
        """Apply acknowledgements (under the group lock); per partition (error, message)."""
        out: dict[TP, tuple[int, str | None]] = {}
        for tp, batches in acks.items():
            if self.cluster and self.state.topics_by_id.get(tp[0]) is not None and not self._leads_data(*tp):
                out[tp] = (errors.NOT_LEADER_OR_FOLLOWER, "This broker does not lead the partition.")
                continue
            sp = g.partitions.get(tp)
            if sp is None and self.cluster:
                sp, code = await self._partition(g, *tp)
                if code:
                    out[tp] = (code, None)
                    continue
            if sp is None:
                ts = self.state.topics_by_id.get(tp[0])
                code = errors.UNKNOWN_TOPIC_ID if ts is None else errors.INVALID_RECORD_STATE
                out[tp] = (code, None)
                continue
            try:
                for b in batches:  # check all before applying any
                    sp.check_acks(mid, b["first_offset"], b["last_offset"], list(b["acknowledge_types"]))
                renewed: list[int] = []
                for b in batches:
                    renewed += sp.acknowledge(mid, b["first_offset"], b["last_offset"],
                                              list(b["acknowledge_types"]), self.delivery_limit)
            except InvalidRecordState as e:
                out[tp] = (errors.INVALID_RECORD_STATE, str(e))
                continue
            if renewed:
                acq = sp.new_acquisition()
                for off in renewed:
                    sp.records[off].acquisition = acq
                self._schedule_lock(g, sp, acq)
            code = await self._persist(sp)
            out[tp] = (code, None)
            g.wake()
        return out

    def _schedule_lock(self, g: ShareGroup, sp: SharePartition, acq: int) -> None:
        self.timers.schedule(("lock", g.group_id, sp.topic_id, sp.partition, acq), self.lock_ms(g.group_id),
                             g.group_id, _bind(self._lock_expired, g, sp, acq))

    async def _lock_expired(self, g: ShareGroup, sp: SharePartition, acq: int) -> None:
        if g.partitions.get((sp.topic_id, sp.partition)) is not sp:
            return
        if sp.release(self.delivery_limit, acquisition=acq):
            log.debug("share group %s: lock %d on %s-%d timed out", g.group_id, acq, sp.topic_id.hex(), sp.partition)
            await self._persist(sp)
            g.wake()

    def _acquire(self, g: ShareGroup, sp: SharePartition, mid: str, max_records: int,
                 max_bytes: int) -> tuple[bytes, list[dict[str, int]], int]:
        """Acquire available records of one share-partition: (records bytes,
        acquired ranges, count). Whole batches are returned; the acquired
        ranges say which of their records belong to this member."""
        ts = self.state.topics_by_id.get(sp.topic_id)
        if ts is None or sp.partition >= len(ts.partitions):
            return b"", [], 0
        p = ts.partitions[sp.partition]
        plog = p.log
        sp.clamp(plog.log_start_offset)
        hw = p.high_watermark
        start = sp.start_offset
        while start < hw and not sp.acquirable(start, self.max_record_locks):
            if start >= sp.end_offset:
                return b"", [], 0  # in-flight limit reached
            start += 1
        if start >= hw:
            return b"", [], 0
        try:
            data = plog.read(start, max(min(max_bytes, READ_CHUNK_BYTES), 1), max_offset=hw,
                             min_one_message=True).read_bytes()
        except Exception as e:
            log.debug("share fetch read failed: %s", e)
            return b"", [], 0
        out = bytearray()
        acquired: dict[int, int] = {}
        acq = sp.new_acquisition()
        for h in iter_batches(data):
            if len(acquired) >= max_records:
                break
            if h.is_control:  # transaction markers are never delivered
                for off in range(max(h.base_offset, start), min(h.last_offset + 1, hw)):
                    if sp.acquirable(off, self.max_record_locks):
                        sp.skip(off)
                continue
            got = False
            for off in range(max(h.base_offset, start), min(h.last_offset + 1, hw)):
                if sp.acquirable(off, self.max_record_locks):
                    acquired[off] = sp.acquire(off, mid, acq)
                    got = True
            if got:
                out += data[h.position:h.end]
        if not acquired:
            return b"", [], 0
        self._schedule_lock(g, sp, acq)
        ranges_ = [{"first_offset": a, "last_offset": b, "delivery_count": c}
                   for a, b, c in ranges(acquired, acquired)]
        return bytes(out), ranges_, len(acquired)

    async def share_fetch(self, req: dict[str, Any], version: int) -> dict[str, Any]:
        gid, mid, epoch = req["group_id"], req["member_id"], req["share_session_epoch"]
        base: dict[str, Any] = {"error_code": errors.NONE, "error_message": None,
                                "acquisition_lock_timeout_ms": self.lock_ms(gid),
                                "responses": [], "node_endpoints": []}
        if not gid or not mid:
            return dict(base, error_code=errors.INVALID_REQUEST, error_message="GroupId and MemberId are required.")
        acks: dict[TP, list[dict[str, Any]]] = {}
        wanted: list[TP] = []
        for t in req["topics"]:
            for p in t["partitions"]:
                tp = (bytes(t["topic_id"]), p["partition_index"])
                wanted.append(tp)
                if p["acknowledgement_batches"]:
                    acks[tp] = p["acknowledgement_batches"]
        if epoch == 0 and acks:
            return dict(base, error_code=errors.INVALID_REQUEST,
                        error_message="Acknowledge data present on initial fetch of share session.")
        if version >= 2 and any(ACK_RENEW in b["acknowledge_types"] for bs in acks.values() for b in bs) \
                and not req["is_renew_ack"]:
            return dict(base, error_code=errors.INVALID_REQUEST,
                        error_message="Renew acknowledgement without IsRenewAck.")
        results: dict[TP, dict[str, Any]] = {}
        async with self.steady_lock(gid):
            g = self.groups.get(gid)
            code, s = self._session(g, mid, epoch)
            if code:
                return dict(base, error_code=code)
            if g is None:
                g = self.groups[gid] = ShareGroup(gid)
            if epoch == 0:
                if mid in g.sessions:
                    await self._release_member(g, mid)
                s = g.sessions[mid] = ShareSession(1)
                if self.cluster:
                    # the group coordinator may have altered or deleted the group's offsets (an empty
                    # group) in __share_group_state since they were loaded here: share-partitions
                    # holding no acquired records are read again when next used (their state is all
                    # written already)
                    for tp in [tp for tp, sp in g.partitions.items()
                               if not any(r.state == ACQUIRED for r in sp.records.values())]:
                        del g.partitions[tp]
            assert s is not None
            ack_results = await self.acknowledge(g, mid, acks) if acks else {}
            for tp, (c, msg) in ack_results.items():
                results[tp] = _part(tp[1], ack_code=c, ack_msg=msg)
            if epoch == -1:
                g.sessions.pop(mid, None)
                await self._release_member(g, mid)
                return self._fetch_response(base, results, {})
            s.epoch = epoch + 1 if epoch > 0 else 1
            s.partitions.update(wanted)
            for t in req["forgotten_topics_data"]:
                for p in t["partitions"]:
                    s.partitions.discard((bytes(t["topic_id"]), p))
            session_parts = sorted(s.partitions)
        max_records = req["max_records"] if req["max_records"] > 0 else 500
        max_bytes = req["max_bytes"] if req["max_bytes"] > 0 else 0x7FFFFFFF
        deadline = trio.current_time() + max(req["max_wait_ms"], 0) / 1000.0
        leaders: dict[TP, tuple[int, int]] = {}  # (leader id, leader epoch)
        fetched: dict[TP, tuple[bytes, list[dict[str, int]]]] = {}
        failed = False
        while True:
            async with self.steady_lock(gid):
                g = self.groups.get(gid)
                if g is None or mid not in g.sessions:
                    break
                left = max_records
                bytes_left = max_bytes
                for tp in session_parts:
                    ts = self.state.topics_by_id.get(tp[0])
                    if ts is None or not 0 <= tp[1] < len(ts.partitions):
                        results.setdefault(tp, _part(tp[1]))["error_code"] = (
                            errors.UNKNOWN_TOPIC_ID if ts is None else errors.UNKNOWN_TOPIC_OR_PARTITION)
                        continue
                    leader = self.state.leader_of(ts.name, tp[1])
                    leaders[tp] = (-1 if leader is None else leader, ts.partitions[tp[1]].leader_epoch)
                    if leader != self.state.node_id or (self.cluster and not self._leads_data(*tp)):
                        results.setdefault(tp, _part(tp[1]))["error_code"] = errors.NOT_LEADER_OR_FOLLOWER
                        failed = True
                        continue
                    if left <= 0 or bytes_left <= 0:
                        continue
                    sp, code = await self._partition(g, tp[0], tp[1])
                    if code:  # its state could not be read (a cluster): the client retries
                        results.setdefault(tp, _part(tp[1]))["error_code"] = code
                        failed = True
                        continue
                    if sp is None:
                        continue
                    data, acquired, n = self._acquire(g, sp, mid, left, bytes_left)
                    if n:
                        code = await self._persist(sp)
                        if code:  # not handed out: released by their lock timeout (or by a new leader)
                            results.setdefault(tp, _part(tp[1]))["error_code"] = code
                            failed = True
                            continue
                        left -= n
                        bytes_left -= len(data)
                        fetched[tp] = (data, acquired)
                released = g.released
            if fetched or failed or trio.current_time() >= deadline:
                break
            ev = trio.Event()
            watched = []
            for tp in session_parts:
                ts = self.state.topics_by_id.get(tp[0])
                if ts is not None and 0 <= tp[1] < len(ts.partitions):
                    ts.partitions[tp[1]].waiters.add(ev)
                    watched.append(ts.partitions[tp[1]])
            try:
                with trio.move_on_at(deadline):
                    async with trio.open_nursery() as waiters:
                        waiters.start_soon(_wait_then_cancel, ev.wait, waiters.cancel_scope)
                        waiters.start_soon(_wait_then_cancel, released.wait, waiters.cancel_scope)
            finally:
                for part in watched:
                    part.waiters.discard(ev)
        for tp, (data, acquired) in fetched.items():
            r = results.setdefault(tp, _part(tp[1]))
            r["records"] = data
            r["acquired_records"] = acquired
        for tp, r in results.items():
            leader, le = leaders.get(tp, (self.state.node_id, 0))
            r["current_leader"] = {"leader_id": leader if r["error_code"] == errors.NOT_LEADER_OR_FOLLOWER
                                   else self.state.node_id, "leader_epoch": le}
        return self._fetch_response(base, results, fetched)

    def _fetch_response(self, base: dict[str, Any], results: dict[TP, dict[str, Any]],
                        fetched: dict[TP, Any]) -> dict[str, Any]:
        by_topic: dict[bytes, list[dict[str, Any]]] = {}
        for (tid, _p), r in sorted(results.items()):
            by_topic.setdefault(tid, []).append(r)
        return dict(base, responses=[{"topic_id": t, "partitions": ps} for t, ps in by_topic.items()])

    async def share_acknowledge(self, req: dict[str, Any], version: int) -> dict[str, Any]:
        gid, mid, epoch = req["group_id"], req["member_id"], req["share_session_epoch"]
        base: dict[str, Any] = {"error_code": errors.NONE, "error_message": None,
                                "acquisition_lock_timeout_ms": self.lock_ms(gid),
                                "responses": [], "node_endpoints": []}
        if not gid or not mid:
            return dict(base, error_code=errors.INVALID_REQUEST, error_message="GroupId and MemberId are required.")
        if epoch == 0:
            return dict(base, error_code=errors.INVALID_SHARE_SESSION_EPOCH,
                        error_message="ShareAcknowledge cannot open a share session.")
        acks: dict[TP, list[dict[str, Any]]] = {}
        for t in req["topics"]:
            for p in t["partitions"]:
                acks[(bytes(t["topic_id"]), p["partition_index"])] = p["acknowledgement_batches"]
        if version >= 2 and any(ACK_RENEW in b["acknowledge_types"] for bs in acks.values() for b in bs) \
                and not req["is_renew_ack"]:
            return dict(base, error_code=errors.INVALID_REQUEST,
                        error_message="Renew acknowledgement without IsRenewAck.")
        async with self.group_lock(gid):
            g = self.groups.get(gid)
            code, s = self._session(g, mid, epoch)
            if code:
                return dict(base, error_code=code)
            assert g is not None and s is not None
            res = await self.acknowledge(g, mid, acks)
            if epoch == -1:
                g.sessions.pop(mid, None)
                await self._release_member(g, mid)
            else:
                s.epoch = epoch + 1
        by_topic: dict[bytes, list[dict[str, Any]]] = {}
        for (tid, p), (c, msg) in sorted(res.items()):
            ts = self.state.topics_by_id.get(tid)
            le = ts.partitions[p].leader_epoch if ts is not None and 0 <= p < len(ts.partitions) else -1
            leader = self.state.node_id
            if c == errors.NOT_LEADER_OR_FOLLOWER and ts is not None:
                found = self.state.leader_of(ts.name, p)
                leader = -1 if found is None else found
            by_topic.setdefault(tid, []).append({
                "partition_index": p, "error_code": c, "error_message": msg,
                "current_leader": {"leader_id": leader, "leader_epoch": le}})
        return dict(base, responses=[{"topic_id": t, "partitions": ps} for t, ps in by_topic.items()])

    # -- offsets administration ----------------------------------------------------------------------
    async def _stored_partitions(self, gid: str, keys: list[TP] | None) -> tuple[int, dict[TP, SharePartition]]:
        """A cluster's group coordinator: the group's share-partitions as
        __share_group_state has them (``keys`` None: all of them, read from
        every partition of the topic). (error, share-partitions)."""
        ts = self.topic()
        if ts is None:
            return errors.NONE, {}
        n = len(ts.partitions)
        if keys is None:
            indexes = set(range(n))
        else:
            indexes = {records.partition_for(records.coordinator_key(gid, t, p), n) for t, p in keys}
        out: dict[TP, SharePartition] = {}
        for i in sorted(indexes):
            code, snaps = await self._read_state(i)
            if code:
                return code, {}
            for (g, tid, p), snap in snaps.items():
                if g != gid or snap is None or (keys is not None and (tid, p) not in keys):
                    continue
                sp = SharePartition(gid, tid, p, snap["start_offset"], state_epoch=snap["state_epoch"])
                sp.load_batches(snap["state_batches"])
                out[(tid, p)] = sp
        return errors.NONE, out

    async def describe_offsets(self, gid: str, topics: list[dict[str, Any]] | None,
                               version: int) -> dict[str, Any]:
        g = self.groups.get(gid)
        out: dict[str, Any] = {"group_id": gid, "topics": [], "error_code": errors.NONE, "error_message": None}
        code = self.group_error(gid, create=False)
        if code:
            out.update(error_code=code)
            return out
        parts: dict[TP, SharePartition] = g.partitions if g is not None else {}
        if self.cluster:
            keys: list[TP] | None = None
            if topics is not None:
                keys = []
                for t in topics:
                    ts = self.state.topics.get(t["topic_name"])
                    if ts is not None:
                        keys += [(ts.topic_id, p) for p in t["partitions"]]
            code, parts = await self._stored_partitions(gid, keys)
            if code:
                out.update(error_code=code)
                return out
        if g is None and not parts:
            out.update(error_code=errors.GROUP_ID_NOT_FOUND, error_message=f"Group {gid} not found.")
            return out
        if topics is None:
            wanted: dict[str, list[int]] = {}
            for (tid, p) in sorted(parts):
                ts = self.state.topics_by_id.get(tid)
                if ts is not None:
                    wanted.setdefault(ts.name, []).append(p)
        else:
            wanted = {t["topic_name"]: list(t["partitions"]) for t in topics}
        for name, indexes in wanted.items():
            ts = self.state.topics.get(name)
            tid = ts.topic_id if ts is not None else uuid.UUID(int=0).bytes
            plist = []
            for p in indexes:
                row: dict[str, Any] = {"partition_index": p, "start_offset": -1, "leader_epoch": -1, "lag": -1,
                                       "error_code": errors.NONE, "error_message": None}
                if ts is None or not 0 <= p < len(ts.partitions):
                    row["error_code"] = errors.UNKNOWN_TOPIC_OR_PARTITION
                else:
                    sp = parts.get((tid, p))
                    if sp is not None:
                        row["start_offset"] = sp.start_offset
                        row["leader_epoch"] = ts.partitions[p].leader_epoch
                        done = sum(1 for r in sp.records.values() if r.state in (ACKNOWLEDGED, ARCHIVED))
                        if ts.partitions[p].log is not None:  # a cluster: not a replica here: unknown (-1)
                            row["lag"] = max(ts.partitions[p].high_watermark - sp.start_offset - done, 0)
                plist.append(row)
            out["topics"].append({"topic_name": name, "topic_id": tid, "partitions": plist})
        return out

    async def alter_offsets(self, gid: str, topics: list[dict[str, Any]]) -> dict[str, Any]:
        resp: dict[str, Any] = {"error_code": errors.NONE, "error_message": None, "responses": []}
        if not gid:
            return dict(resp, error_code=errors.INVALID_GROUP_ID)
        code = self.group_error(gid)
        if code:
            return dict(resp, error_code=code)
        if self._other_group_type(gid):
            return dict(resp, error_code=errors.GROUP_ID_NOT_FOUND, error_message=f"Group {gid} is not a share group.")
        async with self.group_lock(gid):
            g = self.groups.get(gid)
            if g is not None and g.members:
                return dict(resp, error_code=errors.NON_EMPTY_GROUP,
                            error_message="The group has active members.")
            if g is None:
                g = self.groups[gid] = ShareGroup(gid)
            for t in topics:
                ts = self.state.topics.get(t["topic_name"])
                tid = ts.topic_id if ts is not None else uuid.UUID(int=0).bytes
                rows = []
                for p in t["partitions"]:
                    idx, off = p["partition_index"], p["start_offset"]
                    code = errors.NONE
                    if ts is None or not 0 <= idx < len(ts.partitions):
                        code = errors.UNKNOWN_TOPIC_OR_PARTITION
                    elif off < -1:
                        code = errors.INVALID_REQUEST
                    else:
                        part = ts.partitions[idx]
                        if off == -1:
                            off = part.high_watermark
                        off = min(max(off, part.log_start_offset), part.high_watermark)
                        if self.cluster:
                            code = await self._alter_stored(g, tid, idx, off)
                        else:
                            sp = g.partitions.get((tid, idx))
                            if sp is None:
                                sp = g.partitions[(tid, idx)] = SharePartition(gid, tid, idx, off)
                            sp.reset(off)
                            code = await self._persist(sp)
                    rows.append({"partition_index": idx, "error_code": code, "error_message": None})
                resp["responses"].append({"topic_name": t["topic_name"], "topic_id": tid, "partitions": rows})
        return resp

    async def _alter_stored(self, g: ShareGroup, tid: bytes, idx: int, off: int) -> int:
        """A cluster: AlterShareGroupOffsets of one share-partition in
        __share_group_state, with the next state epoch (so the data leader's
        earlier state loses, :func:`records.latest`); the data leader reads
        it when a share session opens (``share_fetch``)."""
        code, parts = await self._stored_partitions(g.group_id, [(tid, idx)])
        if code:
            return code
        sp = parts.get((tid, idx)) or SharePartition(g.group_id, tid, idx, off)
        sp.reset(off)
        g.partitions.pop((tid, idx), None)
        return await self._persist(sp, as_leader=False)

    async def delete_offsets(self, gid: str, topics: list[dict[str, Any]]) -> dict[str, Any]:
        resp: dict[str, Any] = {"error_code": errors.NONE, "error_message": None, "responses": []}
        code = self.group_error(gid)
        if code:
            return dict(resp, error_code=code)
        async with self.group_lock(gid):
            g = self.groups.get(gid)
            if g is None and self.cluster:
                g = self.groups[gid] = ShareGroup(gid)  # its states are in __share_group_state
            if g is None:
                return dict(resp, error_code=errors.GROUP_ID_NOT_FOUND, error_message=f"Group {gid} not found.")
            if g.members:
                return dict(resp, error_code=errors.NON_EMPTY_GROUP, error_message="The group has active members.")
            for t in topics:
                ts = self.state.topics.get(t["topic_name"])
                row = {"topic_name": t["topic_name"], "topic_id": uuid.UUID(int=0).bytes,
                       "error_code": errors.NONE, "error_message": None}
                if ts is None:
                    row["error_code"] = errors.UNKNOWN_TOPIC_OR_PARTITION
                elif self.cluster:  # every partition's state, wherever it was loaded
                    row["topic_id"] = ts.topic_id
                    for idx in range(len(ts.partitions)):
                        g.partitions.pop((ts.topic_id, idx), None)
                        code = await self._persist(SharePartition(gid, ts.topic_id, idx, 0), delete=True,
                                                   as_leader=False)
                        if code:
                            row["error_code"] = code
                else:
                    row["topic_id"] = ts.topic_id
                    for tp in [tp for tp in g.partitions if tp[0] == ts.topic_id]:
                        sp = g.partitions.pop(tp)
                        code = await self._persist(sp, delete=True)
                        if code:
                            row["error_code"] = code
                resp["responses"].append(row)
        return resp


def _part(index: int, *, ack_code: int = errors.NONE, ack_msg: str | None = None) -> dict[str, Any]:
    return {"partition_index": index, "error_code": errors.NONE, "error_message": None,
            "acknowledge_error_code": ack_code, "acknowledge_error_message": ack_msg,
            "current_leader": {"leader_id": -1, "leader_epoch": -1}, "records": b"", "acquired_records": []}


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    async def call() -> None:
        await fn(*args)
    return call


async def _wait_then_cancel(wait: Callable[[], Any], scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


def _read_partition(plog: Any) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a ``__share_group_state`` partition, in order (worker thread)."""
    from ..protocol.records import decode_records
    from ..storage.log import iter_log_batches

    out: list[tuple[bytes | None, bytes | None]] = []
    for data, h in iter_log_batches(plog, plog.log_start_offset):
        if h.is_control:
            continue
        for r in decode_records(data, h.position):
            out.append((r.key, r.value))
    return out


DISABLED = "Share groups are disabled (the share.version feature is at level 0)."


def share_groups_disabled(state: BrokerState) -> bool:
    """Kafka 4.x serves the share-group APIs only while ``share.version`` is
    finalized at 1 or more (UpdateFeatures can set it to 0)."""
    return state.finalized_level("share.version") < 1


def share_coordinator_of(state: BrokerState) -> ShareCoordinator:
    """The broker's share coordinator (built with the state)."""
    return state.share_coordinator
