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

Transactional offsets (TxnOffsetCommit, issue 6): written as a
transactional batch of the producer and kept pending per producer id until
the transaction coordinator writes the COMMIT marker (they become committed
offsets) or ABORT (dropped), see :meth:`on_txn_marker`; loading resolves
them by the markers found in the log.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import trio

from ..protocol import errors
from ..server.coordinator_base import InternalTopicCoordinator
from ..protocol.records import InvalidRecords, build_batch, decode_records, validate_batches
from . import records
from .classic import EMPTY, PREPARING_REBALANCE, STABLE, DEAD, ClassicGroup, GroupError, now_ms
from .classic_ops import ClassicOps, append_error_to_response_error
from .consumer import ConsumerGroup, ConsumerOps
from .records import OFFSETS_TOPIC, OffsetAndMetadata
from .timers import Timer, Timers

log = logging.getLogger("pykbroker.group")

NON_EMPTY_GROUP = errors.NON_EMPTY_GROUP

# READ, DELETE, DESCRIBE (Kafka's AclOperation codes 3, 6, 8)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
NOT_REQUESTED = -2147483648

Group = ClassicGroup | ConsumerGroup


class GroupCoordinator(InternalTopicCoordinator, ClassicOps, ConsumerOps):
    TOPIC = OFFSETS_TOPIC
    ABSENT_TOPIC_ERROR = errors.NONE  # no offsets topic yet: no group exists anywhere
    def __init__(self, state: Any) -> None:
        self.state = state
        cfg = state.config
        self.initial_rebalance_delay_ms = int(cfg["group.initial.rebalance.delay.ms"])
        self.min_session_timeout_ms = int(cfg["group.min.session.timeout.ms"])
        self.max_session_timeout_ms = int(cfg["group.max.session.timeout.ms"])
        self.classic_max_size = int(cfg["group.max.size"])
        self.consumer_max_size = int(_cfg(cfg, "group.consumer.max.size", cfg["group.max.size"]))
        self.consumer_session_timeout_ms = int(cfg["group.consumer.session.timeout.ms"])
        self.consumer_heartbeat_interval_ms = int(cfg["group.consumer.heartbeat.interval.ms"])
        names = [a.strip() for a in str(_cfg(cfg, "group.consumer.assignors", "uniform,range")).split(",")]
        self.consumer_assignors = {n: n for n in names if n}
        self.offsets_partitions = int(cfg["offsets.topic.num.partitions"])
        self.offsets_retention_ms = int(cfg["offsets.retention.minutes"]) * 60_000
        self.offsets_retention_check_ms = int(cfg["offsets.retention.check.interval.ms"])
        self.offset_metadata_max_bytes = int(_cfg(cfg, "offset.metadata.max.bytes", 4096))
        self.protocols = {p.strip() for p in str(cfg["group.coordinator.rebalance.protocols"]).split(",")}
        self.groups: dict[str, Group] = {}
        self.offsets: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}
        # transactional offset commits waiting for their transaction's marker:
        # producer id -> group -> (topic, partition) -> offset (see commit_txn_offsets)
        self.pending_txn_offsets: dict[int, dict[str, dict[tuple[str, int], OffsetAndMetadata]]] = {}
        self.timers = Timers()
        self._locks: dict[str, trio.Lock] = {}
        ts = state.topics.get(OFFSETS_TOPIC)
        # partitions this broker leads but has not replayed yet (a lone broker leads all)
        self.loading: set[int] = set()
        if ts is not None:
            self.loading = {i for i in range(len(ts.partitions)) if self._leads(i)}
        self.loaded = trio.Event()
        if not self.loading:
            self.loaded.set()
        self._nursery: trio.Nursery | None = None
        state.add_leadership_listener(self._on_leadership)  # a cluster: load / unload on leadership changes

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Timers, offset expiry and loading; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.timers.run, self._fire)
            nursery.start_soon(self._expiry_loop)
            task_status.started()
            await self._load(sorted(self.loading))

    async def _fire(self, t: Timer) -> None:
        async with self._lock(t.group_id):
            if not self.timers.consume(t):
                return
            try:
                await t.fn()
            except Exception:
                log.exception("group timer %r failed", t.key)

    def _schedule(self, key: Any, delay_ms: float, group: Any, fn: Any) -> None:
        self.timers.schedule(key, delay_ms, group.group_id, fn)

    def _key_exists(self, key: str) -> bool:
        return key in self.groups

    # -- the offsets topic (placement logic: server/coordinator_base.py) ----------------------
    def topic_partitions(self) -> int:
        return self.offsets_partitions

    def topic_configs(self) -> dict[str, str]:
        return {"cleanup.policy": "compact", "compression.type": "producer", "segment.bytes": "104857600"}

    key_partition = staticmethod(records.partition_for)

    async def _write(self, group_id: str, recs: list[tuple[bytes, bytes | None]]) -> int:
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
            await self.state.append(p, bytearray(batch), headers, acks=-1, now=now)
        except InvalidRecords as e:
            log.warning("group %s: cannot append %d records: %s", group_id, len(recs), e)
            return e.error_code
        except errors.KafkaError as e:
            log.warning("group %s: cannot append %d records: %s", group_id, len(recs), e)
            return e.code
        return errors.NONE

    # -- loading --------------------------------------------------------------------------------
    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        """Cluster mode: load a partition of __consumer_offsets this broker now
        leads; forget the groups of one it no longer leads (their members get
        NOT_COORDINATOR and look the coordinator up again)."""
        if topic != OFFSETS_TOPIC:
            return
        if is_leader:
            if partition not in self.loading:
                self.loading.add(partition)
                if self._nursery is not None:
                    self._nursery.start_soon(self._load, [partition])
            return
        self.loading.discard(partition)
        from .classic_ops import join_error, sync_error

        for gid in [g for g in set(self.groups) | set(self.offsets) if self.partition_for(g) == partition]:
            g = self.groups.pop(gid, None)
            self.offsets.pop(gid, None)
            self.timers.cancel_group(gid)
            if isinstance(g, ClassicGroup):
                for m in g.members.values():
                    g.complete_join(m, join_error(errors.NOT_COORDINATOR, m.member_id))
                    g.complete_sync(m, sync_error(errors.NOT_COORDINATOR))
        for by_group in self.pending_txn_offsets.values():
            for gid in [g for g in by_group if self.partition_for(g) == partition]:
                del by_group[gid]
        log.info("no longer coordinator for %s-%d", OFFSETS_TOPIC, partition)

    async def _load(self, partitions: list[int]) -> None:
        ts = self.topic()
        t0 = trio.current_time()
        for p in partitions:
            if p not in self.loading:
                continue  # leadership moved away meanwhile
            try:
                plog = ts.partitions[p].log if ts is not None else None
                if plog is not None:
                    recs, pending = await trio.to_thread.run_sync(_read_partition, plog)
                    if p in self.loading:
                        self._replay(recs)
                        self._replay_pending_txn(pending)
            except Exception:
                log.exception("loading %s-%d failed", OFFSETS_TOPIC, p)
            self.loading.discard(p)
        if not self.loading:
            self.loaded.set()
        if partitions:
            log.info("loaded %d partition(s) of %s in %.3f s: %d groups, offsets of %d groups", len(partitions),
                     OFFSETS_TOPIC, trio.current_time() - t0, len(self.groups), len(self.offsets))

    def _replay(self, recs: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        last_group: dict[str, dict | None] = {}
        touched: set[str] = set()
        for key, value in recs:
            try:
                r = records.decode(key, value)
            except Exception as e:
                log.warning("skipping undecodable record in %s: %s", OFFSETS_TOPIC, e)
                continue
            if isinstance(r, records.OffsetRecord):
                offs = self.offsets.setdefault(r.group, {})
                if r.value is None:
                    offs.pop((r.topic, r.partition), None)
                else:
                    offs[(r.topic, r.partition)] = r.value
                touched.add(r.group)
            elif isinstance(r, records.GroupRecord):
                last_group[r.group] = r.value
                touched.add(r.group)
        for gid in touched:
            if not self.offsets.get(gid):
                self.offsets.pop(gid, None)
            v = last_group.get(gid)
            if v is not None:
                g = ClassicGroup.from_metadata(gid, v)
                self.groups[gid] = g
                for m in g.members.values():
                    self._reschedule_heartbeat(g, m)
            elif gid in self.offsets:
                self.groups[gid] = ClassicGroup(gid)  # a "simple" group holding offsets
            else:
                self.groups.pop(gid, None)

    # -- offsets ----------------------------------------------------------------------------------
    async def commit_offsets(self, gid: str, generation: int, member_id: str, instance_id: str | None,
                             retention_ms: int, version: int,
                             parts: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
        """Validate and store committed offsets; ``parts`` are (topic,
        partition, offset, leader epoch, metadata). Returns an error code
        per (topic, partition)."""
        keys = [(t, p) for t, p, *_ in parts]
        if not gid:
            return dict.fromkeys(keys, errors.INVALID_GROUP_ID)
        err = self.availability(gid)
        if err:
            return dict.fromkeys(keys, err)
        async with self._lock(gid):
            try:
                group = self._validate_offset_commit(gid, generation, member_id, instance_id, version)
            except GroupError as e:
                return dict.fromkeys(keys, e.code)
            if isinstance(group, ClassicGroup) and group.state in (STABLE, PREPARING_REBALANCE) \
                    and member_id in group.members:
                self._reschedule_heartbeat(group, group.members[member_id])
            now = now_ms()
            expire = now + retention_ms if retention_ms is not None and retention_ms >= 0 else -1
            out: dict[tuple[str, int], int] = {}
            recs = []
            values = []
            for topic, partition, offset, epoch, metadata in parts:
                if metadata is not None and len(metadata) > self.offset_metadata_max_bytes:
                    out[(topic, partition)] = errors.OFFSET_METADATA_TOO_LARGE
                    continue
                om = OffsetAndMetadata(offset, epoch, metadata or "", now, expire)
                recs.append((records.offset_commit_key(gid, topic, partition), records.offset_commit_value(om)))
                values.append(((topic, partition), om))
                out[(topic, partition)] = errors.NONE
            err = await self._write(gid, recs)
            if err:
                err = append_error_to_response_error(err)
                for k, _ in values:
                    out[k] = err
            else:
                offs = self.offsets.setdefault(gid, {})
                for k, om in values:
                    offs[k] = om
            return out

    def _validate_offset_commit(self, gid: str, generation: int, member_id: str,
                                instance_id: str | None, version: int) -> Group:
        group = self.groups.get(gid)
        if group is None:
            if generation < 0:
                group = ClassicGroup(gid)  # a simple group: offsets only
                self.groups[gid] = group
                return group
            if version >= 9:
                raise GroupError(errors.GROUP_ID_NOT_FOUND)
            raise GroupError(errors.ILLEGAL_GENERATION)
        if isinstance(group, ConsumerGroup):
            if generation < 0 and not group.members:
                return group
            m = group.members.get(member_id)
            if m is None:
                raise GroupError(errors.UNKNOWN_MEMBER_ID)
            if version < 9:
                raise GroupError(errors.UNSUPPORTED_VERSION)
            if generation != m.member_epoch:
                raise GroupError(errors.STALE_MEMBER_EPOCH)
            return group
        if group.state == DEAD:
            raise GroupError(errors.COORDINATOR_NOT_AVAILABLE)
        if generation < 0 and group.state == EMPTY:
            return group
        if generation >= 0 or member_id or instance_id is not None:
            group.validate_member(member_id, instance_id)
            if generation != group.generation_id:
                raise GroupError(errors.ILLEGAL_GENERATION)
        elif group.state != EMPTY:
            raise GroupError(errors.UNKNOWN_MEMBER_ID)
        if group.state == "CompletingRebalance":
            raise GroupError(errors.REBALANCE_IN_PROGRESS)
        return group

    def fetch_offsets(self, gid: str, topics: list[tuple[str, list[int]]] | None,
                      member_id: str | None = None, member_epoch: int = -1
                      ) -> tuple[int, list[tuple[str, list[tuple[int, OffsetAndMetadata | None]]]]]:
        """(group error, [(topic, [(partition, offset-or-None)])]); ``topics``
        None = every committed offset of the group."""
        err = self.availability(gid, create=False)
        if err:
            return err, []
        group = self.groups.get(gid)
        if isinstance(group, ConsumerGroup) and not (member_id is None and member_epoch < 0):
            m = group.members.get(member_id or "")
            if m is None:
                return errors.UNKNOWN_MEMBER_ID, []
            if m.member_epoch != member_epoch:
                return errors.STALE_MEMBER_EPOCH, []
        offs = self.offsets.get(gid, {}) if group is not None else {}
        if topics is None:
            by_topic: dict[str, list[tuple[int, OffsetAndMetadata | None]]] = {}
            for (t, p), om in sorted(offs.items()):
                by_topic.setdefault(t, []).append((p, om))
            return errors.NONE, list(by_topic.items())
        return errors.NONE, [(t, [(p, offs.get((t, p))) for p in ps]) for t, ps in topics]

    async def delete_offsets(self, gid: str, topics: list[tuple[str, list[int]]]) -> tuple[int, dict]:
        """OffsetDelete: (group error, {(topic, partition): error})."""
        err = self.availability(gid, create=False) if gid else errors.INVALID_GROUP_ID
        if err:
            return err, {}
        async with self._lock(gid):
            group = self.groups.get(gid)
            if group is None or (isinstance(group, ClassicGroup) and group.state == DEAD):
                return errors.GROUP_ID_NOT_FOUND, {}
            if isinstance(group, ClassicGroup) and group.state != EMPTY and not group.uses_consumer_protocol():
                return NON_EMPTY_GROUP, {}
            out = {}
            recs = []
            gone = []
            offs = self.offsets.get(gid, {})
            for t, ps in topics:
                subscribed = group.is_subscribed_to(t)
                for p in ps:
                    if subscribed:
                        out[(t, p)] = errors.GROUP_SUBSCRIBED_TO_TOPIC
                        continue
                    out[(t, p)] = errors.NONE
                    if (t, p) in offs:
                        recs.append((records.offset_commit_key(gid, t, p), None))
                        gone.append((t, p))
            err = await self._write(gid, recs)
            if err:
                return append_error_to_response_error(err), {}
            for k in gone:
                offs.pop(k, None)
            return errors.NONE, out

    # -- transactional offsets (TxnOffsetCommit; markers written by pykbroker.txn) ---------------------
    async def commit_txn_offsets(self, gid: str, producer_id: int, producer_epoch: int, generation: int,
                                 member_id: str, instance_id: str | None,
                                 parts: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
        """TxnOffsetCommit: validate, write the offsets as a transactional
        batch of the producer to the group's partition, and keep them pending
        until the transaction's marker (:meth:`on_txn_marker`). Error per
        (topic, partition)."""
        from ..storage.producer_state import COORDINATOR

        keys = [(t, p) for t, p, *_ in parts]
        if not gid:
            return dict.fromkeys(keys, errors.INVALID_GROUP_ID)
        err = self.availability(gid)
        if err:
            return dict.fromkeys(keys, err)
        async with self._lock(gid):
            try:
                self._validate_txn_offset_commit(gid, generation, member_id, instance_id)
            except GroupError as e:
                return dict.fromkeys(keys, e.code)
            now = now_ms()
            out: dict[tuple[str, int], int] = {}
            recs = []
            values = []
            for topic, partition, offset, epoch, metadata in parts:
                if metadata is not None and len(metadata) > self.offset_metadata_max_bytes:
                    out[(topic, partition)] = errors.OFFSET_METADATA_TOO_LARGE
                    continue
                om = OffsetAndMetadata(offset, epoch, metadata or "", now, -1)
                recs.append((records.offset_commit_key(gid, topic, partition), records.offset_commit_value(om)))
                values.append(((topic, partition), om))
                out[(topic, partition)] = errors.NONE
            if recs:
                ts = self.topic()
                p = ts.partitions[self.partition_for(gid)]
                batch = build_batch([(k, v, (), now) for k, v in recs], producer_id=producer_id,
                                    producer_epoch=producer_epoch, base_sequence=-1, transactional=True)
                code = errors.NONE
                try:
                    headers = validate_batches(batch, max_batch_bytes=ts.log_config.max_message_bytes, client=False)
                    await self.state.append(p, bytearray(batch), headers, acks=-1, now=now, origin=COORDINATOR)
                except InvalidRecords as e:
                    code = e.error_code
                except errors.KafkaError as e:
                    code = e.code
                if code:
                    log.warning("group %s: cannot append transactional offsets of producer %d: %s", gid,
                                producer_id, errors.NAMES.get(code, code))
                    code = append_error_to_response_error(code)
                    for k, _ in values:
                        out[k] = code
                else:
                    pend = self.pending_txn_offsets.setdefault(producer_id, {}).setdefault(gid, {})
                    for k, om in values:
                        pend[k] = om
            return out

    def _validate_txn_offset_commit(self, gid: str, generation: int, member_id: str,
                                    instance_id: str | None) -> None:
        """Kafka's validateOffsetCommit with isTransactional: no
        REBALANCE_IN_PROGRESS, and no member needed for a non-empty group."""
        group = self.groups.get(gid)
        if group is None:
            if generation < 0:
                self.groups[gid] = ClassicGroup(gid)  # a simple group: offsets only
                return
            raise GroupError(errors.ILLEGAL_GENERATION)
        if isinstance(group, ConsumerGroup):
            if generation < 0 and not group.members:
                return
            if generation < 0 and not member_id and instance_id is None:
                return
            m = group.members.get(member_id)
            if m is None:
                raise GroupError(errors.UNKNOWN_MEMBER_ID)
            if generation != m.member_epoch:
                raise GroupError(errors.ILLEGAL_GENERATION)
            return
        if group.state == DEAD:
            raise GroupError(errors.COORDINATOR_NOT_AVAILABLE)
        if generation < 0 and group.state == EMPTY:
            return
        if generation >= 0 or member_id or instance_id is not None:
            group.validate_member(member_id, instance_id)
            if generation != group.generation_id:
                raise GroupError(errors.ILLEGAL_GENERATION)

    def on_txn_marker(self, partition: int, producer_id: int, commit: bool) -> None:
        """A COMMIT/ABORT marker of ``producer_id`` was written to partition
        ``partition`` of __consumer_offsets: its pending offsets for the groups
        of that partition become committed (or are dropped)."""
        by_group = self.pending_txn_offsets.get(producer_id)
        if not by_group:
            return
        for gid in [g for g in by_group if self.partition_for(g) == partition]:
            offs = by_group.pop(gid)
            if commit and offs:
                self.offsets.setdefault(gid, {}).update(offs)
                if gid not in self.groups:
                    self.groups[gid] = ClassicGroup(gid)
        if not by_group:
            self.pending_txn_offsets.pop(producer_id, None)

    def has_pending_txn_offsets(self, gid: str, topic: str, partition: int) -> bool:
        """OffsetFetch require_stable: is a transactional commit of this
        partition waiting for its marker?"""
        key = (topic, partition)
        return any(key in by_group.get(gid, ()) for by_group in self.pending_txn_offsets.values())

    def _replay_pending_txn(self, pending: dict[int, list[tuple[bytes | None, bytes | None]]]) -> None:
        for pid, recs in pending.items():
            for key, value in recs:
                try:
                    r = records.decode(key, value)
                except Exception as e:
                    log.warning("skipping undecodable transactional record in %s: %s", OFFSETS_TOPIC, e)
                    continue
                if isinstance(r, records.OffsetRecord) and r.value is not None:
                    self.pending_txn_offsets.setdefault(pid, {}).setdefault(r.group, {})[
                        (r.topic, r.partition)] = r.value

    # -- expiry -------------------------------------------------------------------------------------
    async def _expiry_loop(self) -> None:
        await self.loaded.wait()
        while True:
            await trio.sleep(self.offsets_retention_check_ms / 1000)
            await self.expire_offsets()

    async def expire_offsets(self, now: int | None = None) -> int:
        """Kafka's cleanupGroupMetadata: drop expired offsets, then delete
        groups left empty with no offsets. Returns the number of offsets expired."""
        total = 0
        for gid in list(set(self.groups) | set(self.offsets)):
            async with self._lock(gid):
                total += await self._expire_group(gid, now_ms() if now is None else now)
        return total

    async def _expire_group(self, gid: str, now: int) -> int:
        group = self.groups.get(gid)
        offs = self.offsets.get(gid, {})
        expired = []
        all_expired = True
        base_of = _expiration_base(group) if group is not None else (lambda om: om.commit_timestamp)
        if base_of is None:
            all_expired = False
        else:
            for (t, p), om in offs.items():
                if group is not None and group.is_subscribed_to(t):
                    all_expired = False
                    continue
                if om.expire_timestamp >= 0:
                    gone = now >= om.expire_timestamp
                else:
                    gone = now - base_of(om) >= self.offsets_retention_ms
                if gone:
                    expired.append((t, p))
                else:
                    all_expired = False
        recs = [(records.offset_commit_key(gid, t, p), None) for t, p in expired]
        delete_group = group is not None and group.is_empty() and all_expired
        if delete_group and isinstance(group, ClassicGroup):
            recs.append((records.group_metadata_key(gid), None))
        if not recs and not delete_group:
            return 0
        err = await self._write(gid, recs)
        if err:
            log.warning("group %s: offset expiry not written: %s", gid, errors.NAMES.get(err, err))
            return 0
        for k in expired:
            offs.pop(k, None)
        if not offs:
            self.offsets.pop(gid, None)
        if expired:
            log.info("group %s: expired %d committed offsets", gid, len(expired))
        if delete_group:
            self._remove_group(gid)
        return len(expired)

    # -- groups: list, describe, delete ----------------------------------------------------------------
    def _remove_group(self, gid: str) -> None:
        self.groups.pop(gid, None)
        self.timers.cancel_group(gid)

    def list_groups(self, states: list[str], types: list[str]) -> tuple[int, list[dict]]:
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

    def describe_group(self, gid: str, version: int, include_ops: bool) -> dict:
        out = {"error_code": errors.NONE, "error_message": None, "group_id": gid, "group_state": "",
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

    def describe_consumer_group(self, gid: str, include_ops: bool, version: int) -> dict:
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

        def assignment(a: dict) -> dict:
            tps = []
            for tid, parts in sorted(a.items()):
                ts = by_id.get(tid)
                tps.append({"topic_id": tid, "topic_name": names.get(tid) or (ts.name if ts else ""),
                            "partitions": sorted(parts)})
            return {"topic_partitions": tps}

        out.update(group_state=g.state, group_epoch=g.group_epoch, assignment_epoch=g.assignment_epoch,
                   assignor_name=self._preferred_assignor(g))
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
            async with self._lock(gid):
                out.append((gid, await self._delete_group(gid)))
        return out

    async def _delete_group(self, gid: str) -> int:
        g = self.groups.get(gid)
        if g is None or (isinstance(g, ClassicGroup) and g.state == DEAD):
            return errors.GROUP_ID_NOT_FOUND
        if not g.is_empty():
            return NON_EMPTY_GROUP
        offs = self.offsets.get(gid, {})
        recs: list[tuple[bytes, bytes | None]] = [
            (records.offset_commit_key(gid, t, p), None) for (t, p) in offs]
        recs.append((records.group_metadata_key(gid), None))
        err = await self._write(gid, recs)
        if err:
            return append_error_to_response_error(err)
        self.offsets.pop(gid, None)
        self._remove_group(gid)
        log.info("deleted group %s", gid)
        return errors.NONE

    # -- classic and KIP-848 entry points (take the lock, wait outside it) -------------------------
    async def join_group(self, req: dict, version: int, client_id: str, client_host: str) -> dict:
        from .classic_ops import join_error

        gid = req["group_id"]
        if not gid:
            return join_error(errors.INVALID_GROUP_ID, req["member_id"])
        if not self.min_session_timeout_ms <= req["session_timeout_ms"] <= self.max_session_timeout_ms:
            return join_error(errors.INVALID_SESSION_TIMEOUT, req["member_id"])
        err = self.availability(gid)
        if err:
            return join_error(err, req["member_id"])
        async with self._lock(gid):
            waiter = await self._classic_join(req, version, client_id or "", client_host)
        return await waiter.wait()

    async def sync_group(self, req: dict, version: int) -> dict:
        from .classic_ops import sync_error

        if not req["group_id"]:
            return sync_error(errors.INVALID_GROUP_ID)
        err = self.availability(req["group_id"])
        if err:
            return sync_error(err)
        async with self._lock(req["group_id"]):
            waiter = await self._classic_sync(req, version)
        return await waiter.wait()

    async def heartbeat(self, req: dict) -> int:
        if not req["group_id"]:
            return errors.INVALID_GROUP_ID
        err = self.availability(req["group_id"])
        if err == errors.COORDINATOR_LOAD_IN_PROGRESS:
            return errors.NONE  # as Kafka: blindly accepted while loading
        if err:
            return err
        async with self._lock(req["group_id"]):
            return await self._classic_heartbeat(req)

    async def leave_group(self, gid: str, members: list[dict]) -> dict:
        if not gid:
            return {"error_code": errors.INVALID_GROUP_ID, "members": []}
        err = self.availability(gid)
        if err:
            return {"error_code": err, "members": []}
        async with self._lock(gid):
            return await self._classic_leave(gid, members)

    async def consumer_group_heartbeat(self, req: dict, version: int, client_id: str,
                                       client_host: str) -> dict:
        def error(code: int, message: str | None = None) -> dict:
            return {"error_code": code, "error_message": message, "member_id": None, "member_epoch": 0,
                    "heartbeat_interval_ms": 0, "assignment": None}

        if "consumer" not in self.protocols:
            return error(errors.UNSUPPORTED_VERSION, "The new consumer group protocol is not enabled.")
        try:
            self._validate_cg_heartbeat(req, version)
        except GroupError as e:
            return error(e.code, e.message)
        err = self.availability(req["group_id"])
        if err:
            return error(err)
        async with self._lock(req["group_id"]):
            try:
                return await self._consumer_heartbeat(req, client_id or "", client_host)
            except GroupError as e:
                return error(e.code, e.message)


def _cfg(cfg: Any, key: str, default: Any) -> Any:
    try:
        v = cfg[key]
    except KeyError:
        return default
    return default if v is None else v


def _expiration_base(group: Group) -> Any:
    """Kafka's offsetExpirationCondition: the timestamp retention counts
    from, or None when the group's offsets do not expire now."""
    if isinstance(group, ConsumerGroup):
        return lambda om: om.commit_timestamp
    if group.protocol_type is not None:
        if group.state == EMPTY:
            ts = group.state_timestamp
            return lambda om: ts if ts >= 0 else om.commit_timestamp
        if group.uses_consumer_protocol() and group.subscribed_topics is not None and group.state == STABLE:
            return lambda om: om.commit_timestamp
        return None
    return lambda om: om.commit_timestamp


def _read_partition(plog: Any) -> tuple[list[tuple[bytes | None, bytes | None]],
                                         dict[int, list[tuple[bytes | None, bytes | None]]]]:
    """Every record of a ``__consumer_offsets`` partition, in order (worker
    thread), and the transactional offset commits still waiting for their
    marker (by producer id). Records of a committed transaction come in at
    its COMMIT marker; those of an aborted one are dropped."""
    from ..storage.log import iter_log_batches
    from ..storage.producer_state import ABORT, COMMIT, decode_marker

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
