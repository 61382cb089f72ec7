"""Committed offsets of the groups: OffsetCommit, OffsetFetch,
OffsetDelete, TxnOffsetCommit (pending until the transaction's marker),
offset expiry and group deletion, as Kafka's ``GroupMetadataManager``.

Offsets are updated in memory only after their records were appended to
``__consumer_offsets``. Every write runs with the group's lock held (taken
by :class:`~pykbroker.group.coordinator.GroupCoordinator`); reads take none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..protocol import errors
from . import records
from ..util import LONG_MAX, now_ms
from .classic import DEAD, EMPTY, PREPARING_REBALANCE, STABLE, ClassicGroup, GroupError
from .classic_ops import ClassicOps, append_error_to_response_error
from .consumer import ConsumerGroup
from .records import OFFSETS_TOPIC, OffsetAndMetadata
from .registry import Group, GroupConfig, GroupRegistry, OffsetsLog

log = logging.getLogger("pykbroker.group")

NON_EMPTY_GROUP = errors.NON_EMPTY_GROUP

Offsets = dict[tuple[str, int], OffsetAndMetadata]


class OffsetStore:
    """Committed offsets by group, and transactional ones waiting for their
    marker; groups come from ``registry``, records go to ``offsets_log``,
    and a commit keeps a classic member alive through ``classic``."""

    def __init__(self, config: GroupConfig, registry: GroupRegistry, offsets_log: OffsetsLog,
                 classic: ClassicOps) -> None:
        self.config = config
        self.registry = registry
        self.offsets_log = offsets_log
        self.classic = classic
        self.offsets: dict[str, Offsets] = {}
        # transactional offset commits waiting for their transaction's marker:
        # producer id -> group -> (topic, partition) -> offset (see commit_txn)
        self.pending_txn_offsets: dict[int, dict[str, Offsets]] = {}

    def forget(self, gids: list[str], partition: int) -> None:
        """The offsets (committed and pending) of ``gids``, whose partition
        ``partition`` of __consumer_offsets is no longer ours."""
        for gid in gids:
            self.offsets.pop(gid, None)
        for by_group in self.pending_txn_offsets.values():
            for gid in [g for g in by_group if self.offsets_log.partition_for(g) == partition]:
                del by_group[gid]

    def replay(self, r: records.OffsetRecord) -> None:
        """An offset commit (or its tombstone) read back from the log."""
        offs = self.offsets.setdefault(r.group, {})
        if r.value is None:
            offs.pop((r.topic, r.partition), None)
        else:
            offs[(r.topic, r.partition)] = r.value

    async def commit(self, gid: str, generation: int, member_id: str, instance_id: str | None,
                     retention_ms: int, version: int,
                     parts: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
        """OffsetCommit (group lock held): validate and store committed
        offsets; ``parts`` are (topic, partition, offset, leader epoch,
        metadata). Returns an error code per (topic, partition)."""
        keys = [(t, p) for t, p, *_ in parts]
        try:
            group = self._validate_commit(gid, generation, member_id, instance_id, version)
        except GroupError as e:
            return dict.fromkeys(keys, e.code)
        if isinstance(group, ClassicGroup) and group.state in (STABLE, PREPARING_REBALANCE) \
                and member_id in group.members:
            self.classic.reschedule_heartbeat(group, group.members[member_id])
        now = now_ms()
        # a retention time near Long.MAX_VALUE (v2-v4) means forever: saturate
        # rather than overflow the record's int64 (found by the fuzzer)
        expire = min(now + retention_ms, LONG_MAX) if retention_ms is not None and retention_ms >= 0 else -1
        out: dict[tuple[str, int], int] = {}
        recs = []
        values = []
        for topic, partition, offset, epoch, metadata in parts:
            if metadata is not None and len(metadata) > self.config.offset_metadata_max_bytes:
                out[(topic, partition)] = errors.OFFSET_METADATA_TOO_LARGE
                continue
            om = OffsetAndMetadata(offset, epoch, metadata or "", now, expire)
            recs.append((records.offset_commit_key(gid, topic, partition), records.offset_commit_value(om)))
            values.append(((topic, partition), om))
            out[(topic, partition)] = errors.NONE
        err = await self.offsets_log.write(gid, recs)
        if err:
            err = append_error_to_response_error(err)
            for k, _ in values:
                out[k] = err
        else:
            offs = self.offsets.setdefault(gid, {})
            for k, om in values:
                offs[k] = om
        return out

    def _validate_commit(self, gid: str, generation: int, member_id: str,
                         instance_id: str | None, version: int) -> Group:
        group = self.registry.groups.get(gid)
        if group is None:
            if generation < 0:
                group = ClassicGroup(gid)  # a simple group: offsets only
                self.registry.groups[gid] = group
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

    def fetch(self, gid: str, topics: list[tuple[str, list[int]]] | None,
              member_id: str | None = None, member_epoch: int = -1
              ) -> tuple[int, list[tuple[str, list[tuple[int, OffsetAndMetadata | None]]]]]:
        """(group error, [(topic, [(partition, offset-or-None)])]); ``topics``
        None = every committed offset of the group."""
        group = self.registry.groups.get(gid)
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

    def _validate_txn_commit(self, gid: str, generation: int, member_id: str,
                             instance_id: str | None) -> None:
        """Kafka's validateOffsetCommit with isTransactional: no
        REBALANCE_IN_PROGRESS, and no member needed for a non-empty group."""
        group = self.registry.groups.get(gid)
        if group is None:
            if generation < 0:
                self.registry.groups[gid] = ClassicGroup(gid)  # a simple group: offsets only
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
        for gid in [g for g in by_group if self.offsets_log.partition_for(g) == partition]:
            offs = by_group.pop(gid)
            if commit and offs:
                self.offsets.setdefault(gid, {}).update(offs)
                if gid not in self.registry.groups:
                    self.registry.groups[gid] = ClassicGroup(gid)
        if not by_group:
            self.pending_txn_offsets.pop(producer_id, None)

    def has_pending_txn_offsets(self, gid: str, topic: str, partition: int) -> bool:
        """OffsetFetch require_stable: is a transactional commit of this
        partition waiting for its marker?"""
        key = (topic, partition)
        return any(key in by_group.get(gid, ()) for by_group in self.pending_txn_offsets.values())

    def replay_pending_txn(self, pending: dict[int, list[tuple[bytes | None, bytes | None]]]) -> None:
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

    async def expire_group(self, gid: str, now: int) -> int:
        """Kafka's cleanupGroupMetadata for one group (its lock held): drop its
        expired offsets, then the group if left empty with no offsets.
        Returns the number of offsets expired."""
        group = self.registry.groups.get(gid)
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
                    gone = now - base_of(om) >= self.config.offsets_retention_ms
                if gone:
                    expired.append((t, p))
                else:
                    all_expired = False
        recs: list[tuple[bytes, bytes | None]] = [(records.offset_commit_key(gid, t, p), None) for t, p in expired]
        delete_group = group is not None and group.is_empty() and all_expired
        if delete_group and isinstance(group, ClassicGroup):
            recs.append((records.group_metadata_key(gid), None))
        elif delete_group and isinstance(group, ConsumerGroup):
            recs += group.tombstones()
        if not recs and not delete_group:
            return 0
        err = await self.offsets_log.write(gid, recs)
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
            self.registry.remove(gid)
        return len(expired)

    async def delete_group(self, gid: str) -> int:
        """DeleteGroups for one group (its lock held): an error code."""
        g = self.registry.groups.get(gid)
        if g is None or (isinstance(g, ClassicGroup) and g.state == DEAD):
            return errors.GROUP_ID_NOT_FOUND
        if not g.is_empty():
            return NON_EMPTY_GROUP
        offs = self.offsets.get(gid, {})
        recs: list[tuple[bytes, bytes | None]] = [
            (records.offset_commit_key(gid, t, p), None) for (t, p) in offs]
        recs += g.tombstones() if isinstance(g, ConsumerGroup) else [(records.group_metadata_key(gid), None)]
        err = await self.offsets_log.write(gid, recs)
        if err:
            return append_error_to_response_error(err)
        self.offsets.pop(gid, None)
        self.registry.remove(gid)
        log.info("deleted group %s", gid)
        return errors.NONE

    async def delete(self, gid: str, topics: list[tuple[str, list[int]]]) -> tuple[int, dict[tuple[str, int], int]]:
        """OffsetDelete (group lock held): (group error, {(topic, partition): error})."""
        group = self.registry.groups.get(gid)
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
        err = await self.offsets_log.write(gid, recs)
        if err:
            return append_error_to_response_error(err), {}
        for k in gone:
            offs.pop(k, None)
        return errors.NONE, out

    async def commit_txn(self, gid: str, producer_id: int, producer_epoch: int, generation: int,
                         member_id: str, instance_id: str | None,
                         parts: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
        """TxnOffsetCommit (group lock held): validate, write the offsets as a
        transactional batch of the producer to the group's partition, and keep
        them pending until the transaction's marker (:meth:`on_txn_marker`).
        Error per (topic, partition)."""
        keys = [(t, p) for t, p, *_ in parts]
        try:
            self._validate_txn_commit(gid, generation, member_id, instance_id)
        except GroupError as e:
            return dict.fromkeys(keys, e.code)
        now = now_ms()
        out: dict[tuple[str, int], int] = {}
        recs = []
        values = []
        for topic, partition, offset, epoch, metadata in parts:
            if metadata is not None and len(metadata) > self.config.offset_metadata_max_bytes:
                out[(topic, partition)] = errors.OFFSET_METADATA_TOO_LARGE
                continue
            om = OffsetAndMetadata(offset, epoch, metadata or "", now, -1)
            recs.append((records.offset_commit_key(gid, topic, partition), records.offset_commit_value(om)))
            values.append(((topic, partition), om))
            out[(topic, partition)] = errors.NONE
        if recs:
            code = await self.offsets_log.write_txn(gid, recs, producer_id, producer_epoch, now)
            if code:
                code = append_error_to_response_error(code)
                for k, _ in values:
                    out[k] = code
            else:
                pend = self.pending_txn_offsets.setdefault(producer_id, {}).setdefault(gid, {})
                for k, om in values:
                    pend[k] = om
        return out


def _expiration_base(group: Group) -> Callable[[OffsetAndMetadata], int] | None:
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
