"""The group coordinator: classic and KIP-848 groups, committed offsets,
and their persistence in ``__consumer_offsets``.

Concurrency: one ``trio.Lock`` per group id. Every operation that changes a
group or its offsets (join, sync, heartbeat, leave, commit, delete,
consumer-group heartbeat, and every timer: session expiry, join/sync
deadlines, offset expiry) runs under that lock, including the append of its
records, so operations on one group never interleave. Parked JoinGroup /
SyncGroup requests wait on events *outside* the lock. Reads (describe,
list, offset fetch) take no lock: the state they see is always between two
operations (no await while it is inconsistent), and offsets are updated in
memory only after their records were appended.

Persistence: records in Kafka's formats (:mod:`.records`) are appended
through ``BrokerState.append`` (the path replication extends) to partition
``abs(hash(group_id)) % partitions`` of ``__consumer_offsets``, created on
first use with ``offsets.topic.num.partitions`` partitions and
``cleanup.policy=compact``. On start every existing partition is read back
(in a worker thread) and replayed; until a partition is loaded its groups
answer COORDINATOR_LOAD_IN_PROGRESS (FindCoordinator answers at once).

Composition: the coordinator owns the per-group locks, the offsets topic
(placement, appends, loading) and the entry points the handlers call; the
work is done by :class:`~.classic_ops.ClassicOps` (classic protocol),
:class:`~.consumer_ops.ConsumerOps` (KIP-848) and :class:`~.offsets.OffsetStore`
(committed offsets), which share a :class:`~.registry.GroupRegistry` (groups
and timers) and a :class:`~.registry.GroupConfig`, and write through the
coordinator as their :class:`~.registry.OffsetsLog`.

Transactional offsets (TxnOffsetCommit, issue 6): written as a
transactional batch of the producer and kept pending per producer id until
the transaction coordinator writes the COMMIT marker (they become committed
offsets) or ABORT (dropped), see :meth:`.offsets.OffsetStore.on_txn_marker`;
loading resolves them by the markers found in the log.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

import trio

from ..protocol import errors
from ..protocol.records import InvalidRecords, build_batch, decode_records, validate_batches
from ..storage.log import iter_log_batches
from ..storage.producer_state import ABORT, COMMIT, COORDINATOR, decode_marker
from . import records
from ..util import now_ms
from .classic import DEAD, STABLE, ClassicGroup, GroupError
from .classic_ops import ClassicOps, join_error, sync_error
from .consumer import group_from_records, Assignment, ConsumerGroup
from .consumer_ops import ConsumerOps
from .coordinator_base import InternalTopicCoordinator
from .offsets import OffsetStore, Offsets
from .records import OFFSETS_TOPIC, OffsetAndMetadata
from ..protocol.codec import Message
from .registry import Group, GroupConfig, GroupRegistry, Records

if TYPE_CHECKING:
    from ..server.state import BrokerState
    from ..storage.log import PartitionLog
    from ..storage.memory import MemoryPartitionLog

log = logging.getLogger("pykbroker.group")

# READ, DELETE, DESCRIBE (Kafka's AclOperation codes 3, 6, 8)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
NOT_REQUESTED = -2147483648


class GroupCoordinator(InternalTopicCoordinator):
    TIMER_KIND = "group"
    TOPIC = OFFSETS_TOPIC
    ABSENT_TOPIC_ERROR = errors.NONE  # no offsets topic yet: no group exists anywhere
    FENCED_WRITES = True

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self.config = GroupConfig.from_broker(state.config)
        self.registry = GroupRegistry()
        self.timers = self.registry.timers  # every group's timers (one Timers)
        self.classic = ClassicOps(self.config, self.registry, self)
        self.consumer = ConsumerOps(self.config, self.registry, state, self)
        self.offset_store = OffsetStore(self.config, self.registry, self, self.classic)
        self._locks: dict[str, trio.Lock] = {}
        ts = state.topics.get(OFFSETS_TOPIC)
        # partitions this broker leads but has not replayed yet (a lone broker leads all)
        self.loading: set[int] = set()
        self._load_gen: dict[int, int] = {}  # bumped on every leadership change of a partition
        if ts is not None:
            self.loading = {i for i in range(len(ts.partitions)) if self._leads(i)}
        self._init_epochs()
        self.loaded = trio.Event()
        if not self.loading:
            self.loaded.set()
        self._nursery: trio.Nursery | None = None
        state.add_leadership_listener(self._on_leadership)  # a cluster: load / unload on leadership changes

    # -- the shared state, for readers (server/inspect.py, tests) --------------------------------
    @property
    def groups(self) -> dict[str, Group]:
        return self.registry.groups

    @property
    def offsets(self) -> dict[str, Offsets]:
        return self.offset_store.offsets

    @property
    def pending_txn_offsets(self) -> dict[int, dict[str, Offsets]]:
        return self.offset_store.pending_txn_offsets

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Timers, offset expiry and loading; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.timers.run, self._fire)
            nursery.start_soon(self._expiry_loop)
            task_status.started()
            await self._load(sorted(self.loading))

    def _key_exists(self, key: str) -> bool:
        return key in self.groups

    # -- the offsets topic (placement logic: group/coordinator_base.py) ----------------------
    def topic_partitions(self) -> int:
        return self.config.offsets_partitions

    def topic_configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}

    @staticmethod
    def key_partition(key: str, partitions: int) -> int:
        return records.partition_for(key, partitions)

    # -- OffsetsLog: appends to __consumer_offsets --------------------------------------------
    async def write(self, group_id: str, recs: Records) -> int:
        """Append ``recs`` as one batch to the group's partition; returns an error code."""
        if not recs:
            return errors.NONE
        ts = self.topic()
        if ts is None:
            return errors.COORDINATOR_NOT_AVAILABLE
        p = ts.partitions[self.partition_for(group_id)]
        now = now_ms()
        batch = build_batch([(k, v, (), now) for k, v in recs])
        try:
            headers = validate_batches(batch, max_batch_bytes=ts.log_config.max_message_bytes, client=False)
            await self.append_state(group_id, p, bytearray(batch), headers, now=now)
        except InvalidRecords as e:
            log.warning("group %s: cannot append %d records: %s", group_id, len(recs), e)
            return e.error_code
        except errors.KafkaError as e:
            log.warning("group %s: cannot append %d records: %s", group_id, len(recs), e)
            return e.code
        return errors.NONE

    async def write_txn(self, group_id: str, recs: Records, producer_id: int, producer_epoch: int,
                        now: int) -> int:
        """Append ``recs`` as one transactional batch of the producer to the
        group's partition; returns an error code."""
        ts = self.topic()
        if ts is None:
            return errors.COORDINATOR_NOT_AVAILABLE
        p = ts.partitions[self.partition_for(group_id)]
        batch = build_batch([(k, v, (), now) for k, v in recs], producer_id=producer_id,
                            producer_epoch=producer_epoch, base_sequence=-1, transactional=True)
        code = errors.NONE
        try:
            headers = validate_batches(batch, max_batch_bytes=ts.log_config.max_message_bytes, client=False)
            await self.append_state(group_id, p, bytearray(batch), headers, now=now, origin=COORDINATOR)
        except InvalidRecords as e:
            code = e.error_code
        except errors.KafkaError as e:
            code = e.code
        if code:
            log.warning("group %s: cannot append transactional offsets of producer %d: %s", group_id,
                        producer_id, errors.NAMES.get(code, code))
        return code

    # -- loading --------------------------------------------------------------------------------
    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """Cluster mode: load a partition of __consumer_offsets this broker now
        leads; forget the groups of one it no longer leads (their members get
        NOT_COORDINATOR and look the coordinator up again)."""
        if topic != OFFSETS_TOPIC:
            return
        if self._track_leadership(partition, is_leader, leader_epoch):
            if self._nursery is not None:
                self._nursery.start_soon(self._load, [partition])
            return
        if is_leader:
            return  # still leading, at a later epoch: the groups stay
        gids = [g for g in set(self.groups) | set(self.offsets) if self.partition_for(g) == partition]
        for gid in gids:
            g = self.groups.get(gid)
            self.registry.remove(gid)
            if isinstance(g, ClassicGroup):
                for m in g.members.values():
                    g.complete_join(m, join_error(errors.NOT_COORDINATOR, m.member_id))
                    g.complete_sync(m, sync_error(errors.NOT_COORDINATOR))
        self.offset_store.forget(gids, partition)
        log.info("no longer coordinator for %s-%d", OFFSETS_TOPIC, partition)

    async def _load(self, partitions: list[int]) -> None:
        ts = self.topic()
        t0 = trio.current_time()
        gens = {p: self._load_gen.get(p, 0) for p in partitions}  # as when this load was started
        for p in partitions:
            gen = gens[p]
            if p not in self.loading or self._load_gen.get(p, 0) != gen:
                continue  # leadership moved meanwhile: gone, or a newer load has it
            try:
                plog = ts.partitions[p].log if ts is not None else None
                if plog is not None:
                    recs, pending = await trio.to_thread.run_sync(_read_partition, plog)
                    if self._load_gen.get(p, 0) != gen:
                        continue  # lost (and maybe regained) meanwhile: the newer load, if any, finishes it
                    if p in self.loading:
                        self._replay(recs)
                        self.offset_store.replay_pending_txn(pending)
            except Exception:
                log.exception("loading %s-%d failed", OFFSETS_TOPIC, p)
            self.loading.discard(p)
        if not self.loading:
            self.loaded.set()
        if partitions:
            log.info("loaded %d partition(s) of %s in %.3f s: %d groups, offsets of %d groups", len(partitions),
                     OFFSETS_TOPIC, trio.current_time() - t0, len(self.groups), len(self.offsets))

    def _replay(self, recs: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        last_group: dict[str, dict[str, Any] | None] = {}
        consumer: dict[str, dict[bytes, records.ConsumerGroupRecord]] = {}  # KIP-848 records, last per key
        touched: set[str] = set()
        for key, value in recs:
            try:
                r = records.decode(key, value)
            except Exception as e:
                log.warning("skipping undecodable record in %s: %s", OFFSETS_TOPIC, e)
                continue
            if isinstance(r, records.OffsetRecord):
                self.offset_store.replay(r)
                touched.add(r.group)
            elif isinstance(r, records.GroupRecord):
                last_group[r.group] = r.value
                touched.add(r.group)
            elif isinstance(r, records.ConsumerGroupRecord):
                assert key is not None
                kept = consumer.setdefault(r.group, {})
                if r.value is None:
                    kept.pop(key, None)
                else:
                    kept[key] = r
                touched.add(r.group)
        for gid in touched:
            if not self.offsets.get(gid):
                self.offsets.pop(gid, None)
            v = last_group.get(gid)
            cg = group_from_records(gid, consumer[gid]) if consumer.get(gid) else None
            if cg is not None:
                self.groups[gid] = cg
                self.consumer.restore_timers(cg)
            elif v is not None:
                g = ClassicGroup.from_metadata(gid, v)
                self.groups[gid] = g
                for m in g.members.values():
                    self.classic.reschedule_heartbeat(g, m)
            elif gid in self.offsets:
                self.groups[gid] = ClassicGroup(gid)  # a "simple" group holding offsets
            else:
                self.groups.pop(gid, None)

    # -- offsets ----------------------------------------------------------------------------------
    async def commit_offsets(self, gid: str, generation: int, member_id: str, instance_id: str | None,
                             retention_ms: int, version: int,
                             parts: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
        """OffsetCommit; ``parts`` are (topic, partition, offset, leader
        epoch, metadata). Returns an error code per (topic, partition)."""
        keys = [(t, p) for t, p, *_ in parts]
        if not gid:
            return dict.fromkeys(keys, errors.INVALID_GROUP_ID)
        err = self.availability(gid)
        if err:
            return dict.fromkeys(keys, err)
        async with self._serving(gid) as err:
            if err:
                return dict.fromkeys(keys, err)
            return await self.offset_store.commit(gid, generation, member_id, instance_id, retention_ms, version,
                                                  parts)

    def fetch_offsets(self, gid: str, topics: list[tuple[str, list[int]]] | None,
                      member_id: str | None = None, member_epoch: int = -1
                      ) -> tuple[int, list[tuple[str, list[tuple[int, OffsetAndMetadata | None]]]]]:
        """OffsetFetch: (group error, [(topic, [(partition, offset-or-None)])]);
        ``topics`` None = every committed offset of the group. No lock."""
        err = self.availability(gid, create=False)
        if err:
            return err, []
        return self.offset_store.fetch(gid, topics, member_id, member_epoch)

    async def delete_offsets(self, gid: str,
                             topics: list[tuple[str, list[int]]]) -> tuple[int, dict[tuple[str, int], int]]:
        """OffsetDelete: (group error, {(topic, partition): error})."""
        err = self.availability(gid, create=False) if gid else errors.INVALID_GROUP_ID
        if err:
            return err, {}
        async with self._serving(gid) as err:
            if err:
                return err, {}
            return await self.offset_store.delete(gid, topics)

    # -- transactional offsets (TxnOffsetCommit; markers written by pykbroker.txn) ---------------------
    async def commit_txn_offsets(self, gid: str, producer_id: int, producer_epoch: int, generation: int,
                                 member_id: str, instance_id: str | None,
                                 parts: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
        """TxnOffsetCommit: validate, write the offsets as a transactional
        batch of the producer to the group's partition, and keep them pending
        until the transaction's marker (:meth:`on_txn_marker`). Error per
        (topic, partition)."""
        keys = [(t, p) for t, p, *_ in parts]
        if not gid:
            return dict.fromkeys(keys, errors.INVALID_GROUP_ID)
        err = self.availability(gid)
        if err:
            return dict.fromkeys(keys, err)
        async with self._serving(gid) as err:
            if err:
                return dict.fromkeys(keys, err)
            return await self.offset_store.commit_txn(gid, producer_id, producer_epoch, generation, member_id,
                                                      instance_id, parts)

    def on_txn_marker(self, partition: int, producer_id: int, commit: bool) -> None:
        """A COMMIT/ABORT marker of ``producer_id`` was written to partition
        ``partition`` of __consumer_offsets (called by pykbroker.txn)."""
        self.offset_store.on_txn_marker(partition, producer_id, commit)

    def has_pending_txn_offsets(self, gid: str, topic: str, partition: int) -> bool:
        """OffsetFetch require_stable: is a transactional commit of this
        partition waiting for its marker?"""
        return self.offset_store.has_pending_txn_offsets(gid, topic, partition)

    # -- expiry -------------------------------------------------------------------------------------
    async def _expiry_loop(self) -> None:
        await self.loaded.wait()
        while True:
            await trio.sleep(self.config.offsets_retention_check_ms / 1000)
            await self.expire_offsets()

    async def expire_offsets(self, now: int | None = None) -> int:
        """Kafka's cleanupGroupMetadata: drop expired offsets, then delete
        groups left empty with no offsets. Returns the number of offsets expired."""
        total = 0
        for gid in list(set(self.groups) | set(self.offsets)):
            async with self._lock(gid):
                total += await self.offset_store.expire_group(gid, now_ms() if now is None else now)
        return total

    # -- groups: list, describe, delete ----------------------------------------------------------------
    def list_groups(self, states: list[str], types: list[str]) -> tuple[int, list[Message]]:
        states_l = {s.strip().lower() for s in states}
        types_l = {t.strip().lower() for t in types}
        out = []
        for gid, g in self.groups.items():
            state = g.state
            if states_l and state.lower() not in states_l:
                continue
            if types_l and g.type not in types_l:
                continue
            out.append({"group_id": gid, "protocol_type": g.protocol_type or "",
                        "group_state": state, "group_type": g.type})
        return (errors.COORDINATOR_LOAD_IN_PROGRESS if self.loading else errors.NONE), out

    def describe_group(self, gid: str, version: int, include_ops: bool) -> Message:
        out: dict[str, Any] = {"error_code": errors.NONE, "error_message": None, "group_id": gid, "group_state": "",
               "protocol_type": "", "protocol_data": "", "members": [],
               "authorized_operations": NOT_REQUESTED}
        err = self.availability(gid, create=False)
        if err:
            out["error_code"] = err
            return out
        g = self.groups.get(gid)
        if not isinstance(g, ClassicGroup):
            if version >= 6:
                out["error_code"] = errors.GROUP_ID_NOT_FOUND
                out["error_message"] = (f"Group {gid} not found." if g is None
                                        else f"Group {gid} is not a classic group.")
            out["group_state"] = DEAD
            return out
        out["group_state"] = g.state
        out["protocol_type"] = g.protocol_type or ""
        stable = g.state == STABLE
        if stable:
            out["protocol_data"] = g.protocol_name or ""
        out["members"] = [{
            "member_id": m.member_id, "group_instance_id": m.group_instance_id,
            "client_id": m.client_id, "client_host": m.client_host,
            "member_metadata": m.metadata(g.protocol_name) if stable else b"",
            "member_assignment": m.assignment if stable else b"",
        } for m in g.members.values()]
        if include_ops and version >= 3:
            out["authorized_operations"] = GROUP_AUTHORIZED_OPERATIONS
        return out

    def describe_consumer_group(self, gid: str, include_ops: bool, version: int) -> Message:
        out: dict[str, Any] = {"error_code": errors.NONE, "error_message": None, "group_id": gid,
                               "group_state": "", "group_epoch": 0, "assignment_epoch": 0,
                               "assignor_name": "", "members": [], "authorized_operations": NOT_REQUESTED}
        if not gid:
            out.update(error_code=errors.INVALID_GROUP_ID, group_id=None)
            return out
        err = self.availability(gid, create=False)
        if err:
            out["error_code"] = err
            return out
        g = self.groups.get(gid)
        if not isinstance(g, ConsumerGroup):
            out["error_code"] = errors.GROUP_ID_NOT_FOUND
            out["error_message"] = (f"Group {gid} not found." if g is None
                                    else f"Group {gid} is not a consumer group.")
            return out
        names = {tid: n for n, (tid, _) in g.subscription_metadata.items()}
        by_id = self.state.topics_by_id

        def assignment(a: Assignment) -> Message:
            tps = []
            for tid, parts in sorted(a.items()):
                ts = by_id.get(tid)
                tps.append({"topic_id": tid, "topic_name": names.get(tid) or (ts.name if ts else ""),
                            "partitions": sorted(parts)})
            return {"topic_partitions": tps}

        out.update(group_state=g.state, group_epoch=g.group_epoch, assignment_epoch=g.assignment_epoch,
                   assignor_name=self.consumer.preferred_assignor(g))
        out["members"] = [{
            "member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
            "member_epoch": m.member_epoch, "client_id": m.client_id, "client_host": m.client_host,
            "subscribed_topic_names": list(m.subscribed_topic_names),
            "subscribed_topic_regex": m.subscribed_topic_regex,
            "assignment": assignment(m.assigned), "target_assignment": assignment(g.target.get(m.member_id, {})),
            "member_type": 1,  # 1 = consumer protocol (v1 field; -1 unknown, 0 classic)
        } for m in g.members.values()]
        if include_ops:
            out["authorized_operations"] = GROUP_AUTHORIZED_OPERATIONS
        return out

    async def delete_groups(self, gids: list[str]) -> list[tuple[str, int]]:
        out = []
        for gid in gids:
            if gid is None:
                out.append((gid, errors.INVALID_GROUP_ID))
                continue
            err = self.availability(gid, create=False)
            if err:
                out.append((gid, err))
                continue
            async with self._serving(gid) as err:
                out.append((gid, err or await self.offset_store.delete_group(gid)))
        return out

    # -- classic and KIP-848 entry points (take the lock, wait outside it) -------------------------
    async def join_group(self, req: Message, version: int, client_id: str, client_host: str) -> Message:
        gid = req["group_id"]
        if not gid:
            return join_error(errors.INVALID_GROUP_ID, req["member_id"])
        if not self.config.min_session_timeout_ms <= req["session_timeout_ms"] <= self.config.max_session_timeout_ms:
            return join_error(errors.INVALID_SESSION_TIMEOUT, req["member_id"])
        err = self.availability(gid)
        if err:
            return join_error(err, req["member_id"])
        # the state change is never cut short (the connection cancels a join
        # whose client went away): only the wait for the rebalance is
        with trio.CancelScope(shield=True):
            async with self._serving(gid) as err:
                if err:
                    return join_error(err, req["member_id"])
                waiter = await self.classic.join(req, version, client_id or "", client_host)
        response: Message = await waiter.wait()
        return response

    async def sync_group(self, req: Message, version: int) -> Message:
        if not req["group_id"]:
            return sync_error(errors.INVALID_GROUP_ID)
        err = self.availability(req["group_id"])
        if err:
            return sync_error(err)
        with trio.CancelScope(shield=True):  # as join_group
            async with self._serving(req["group_id"]) as err:
                if err:
                    return sync_error(err)
                waiter = await self.classic.sync(req, version)
        response: Message = await waiter.wait()
        return response

    async def heartbeat(self, req: Message) -> int:
        if not req["group_id"]:
            return errors.INVALID_GROUP_ID
        err = self.availability(req["group_id"])
        if err == errors.COORDINATOR_LOAD_IN_PROGRESS:
            return errors.NONE  # as Kafka: blindly accepted while loading
        if err:
            return err
        async with self._serving(req["group_id"]) as err:
            return err or await self.classic.heartbeat(req)

    async def leave_group(self, gid: str, members: list[Message]) -> Message:
        if not gid:
            return {"error_code": errors.INVALID_GROUP_ID, "members": []}
        err = self.availability(gid)
        if err:
            return {"error_code": err, "members": []}
        async with self._serving(gid) as err:
            if err:
                return {"error_code": err, "members": []}
            return await self.classic.leave(gid, members)

    async def consumer_group_heartbeat(self, req: Message, version: int, client_id: str,
                                       client_host: str) -> Message:
        def error(code: int, message: str | None = None) -> Message:
            return {"error_code": code, "error_message": message, "member_id": None, "member_epoch": 0,
                    "heartbeat_interval_ms": 0, "assignment": None}

        if "consumer" not in self.config.protocols:
            return error(errors.UNSUPPORTED_VERSION, "The new consumer group protocol is not enabled.")
        try:
            self.consumer.validate_heartbeat(req, version)
        except GroupError as e:
            return error(e.code, e.message)
        err = self.availability(req["group_id"])
        if err:
            return error(err)
        async with self._serving(req["group_id"]) as err:
            if err:
                return error(err)
            try:
                return await self.consumer.heartbeat(req, client_id or "", client_host)
            except GroupError as e:
                return error(e.code, e.message)


def _read_partition(plog: PartitionLog | MemoryPartitionLog) -> tuple[list[tuple[bytes | None, bytes | None]],
                                         dict[int, list[tuple[bytes | None, bytes | None]]]]:
    """Every record of a ``__consumer_offsets`` partition, in order (worker
    thread), and the transactional offset commits still waiting for their
    marker (by producer id). Records of a committed transaction come in at
    its COMMIT marker; those of an aborted one are dropped."""
    out: list[tuple[bytes | None, bytes | None]] = []
    txn: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
    for data, h in iter_log_batches(plog, plog.log_start_offset):
        if h.is_control:
            recs = decode_records(data, h.position)
            try:
                ctype = decode_marker(recs[0].key, recs[0].value)[0] if recs else -1
            except ValueError:
                ctype = -1
            if ctype == COMMIT:
                out.extend(txn.pop(h.producer_id, []))
            elif ctype == ABORT:
                txn.pop(h.producer_id, None)
            continue
        target = txn.setdefault(h.producer_id, []) if h.is_transactional else out
        for r in decode_records(data, h.position):
            target.append((r.key, r.value))
    return out, txn
