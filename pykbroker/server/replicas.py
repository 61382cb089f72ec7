"""The cluster seam: what handlers and coordinators ask about replication
and the cluster, without knowing whether this broker is alone or one of a
ZooKeeper cluster.

:class:`Replicas` is the interface. Two implementations, chosen once when
the broker state is built (``server/state.py`` ``build_state``):

- :class:`LocalReplicas` (here): a lone broker is a one-node cluster. It
  leads every partition, is the controller and the only live broker; the
  high watermark is the log end offset, so acks=all is acks=1.
- ``cluster.node.ClusterNode``: the ZooKeeper cluster (leaders, ISR,
  followers, the controller), see docs/cluster.md.

Errors the handlers map to error codes are raised as
:class:`~pykbroker.protocol.errors.KafkaError` with Kafka's code and
message: the implementations translate their own exceptions.

The path of one produce request: ``handlers/produce.py`` asks
:meth:`Replicas.check_leader` per partition, validates the batches, then
``BrokerState.append`` (producer state) calls :meth:`Replicas.append`,
which writes the local log and waits for what ``acks`` asks. One fetch:
``handlers/fetch.py`` hands a follower's fetch to
:meth:`Replicas.replica_fetch`; a consumer's reads the local log of the
partitions for which :meth:`Replicas.is_leader` holds, below the high
watermark.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Callable

import attrs
import trio

from ..protocol import errors
from ..protocol.records import BatchHeader
from ..storage.manager import TopicError
from ..util import fd_headroom
from ..topic_configs import apply_dynamic_state
from .topics import PartitionState, TopicState

if TYPE_CHECKING:
    from ..storage.api import AppendResult, LogStore
    from .state import BrokerState

# fn(topic, partition, is_leader, leader_epoch), called on the trio thread
LeadershipListener = Callable[[str, int, bool, int], None]


@attrs.frozen
class BrokerEndpoint:
    """A live broker as Metadata, DescribeCluster and FindCoordinator list it."""

    node_id: int
    host: str
    port: int
    rack: str | None
    # every listener it registered: (listener name, host, port); empty = only host/port above
    listeners: tuple[tuple[str, str, int], ...] = ()


@attrs.frozen
class PartitionInfo:
    """One partition as Metadata describes it. ``leader`` is -1 when the
    leader is not live; ``offline`` lists the replicas that are not live.
    Answers may be shared between partitions: the lists are not to be changed."""

    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int]


class Replicas(Protocol):
    """Replication and the cluster picture, as seen from this broker."""

    # -- lifecycle (server/broker.py) ----------------------------------------------------------------
    def recover(self) -> None:
        """Blocking, in a worker thread, after the logs are open and before
        any listener: restore what this variant keeps beside the logs."""

    async def start(self, nursery: trio.Nursery) -> None:
        """Listeners are bound: start the background work."""

    async def shutdown(self) -> None:
        """Stop (idempotent); runs while connections are still served."""

    # -- the cluster picture -------------------------------------------------------------------------
    def live_brokers(self) -> list[BrokerEndpoint]:
        """Every live broker, by node id."""

    def broker(self, node_id: int) -> BrokerEndpoint | None:
        """A live broker; None if it is not live."""

    def controller_id(self) -> int:
        """The controller's node id; -1 if there is none."""

    def is_controller(self) -> bool:
        """This broker is the controller (serves CreateTopics, DeleteTopics,
        CreatePartitions, ElectLeaders)."""

    def leader_of(self, topic: str, partition: int) -> int | None:
        """Node id of the partition's live leader; None if none (or unknown)."""

    def partition_info(self, ts: TopicState, p: PartitionState) -> PartitionInfo:
        """Leader, epoch, replicas, ISR, offline replicas (Metadata)."""

    def replication_factor(self, topic: str) -> int:
        """Replicas per partition of an existing topic (CreatePartitions)."""

    def add_leadership_listener(self, fn: LeadershipListener) -> None:
        """``fn(topic, partition, is_leader, leader_epoch)`` on every change of
        this broker's leadership of a partition after start, and
        ``is_leader`` True again with a later epoch when it still leads the
        partition at a new epoch (it led throughout: nothing lost). A lone
        broker leads everything from the start and never calls it."""

    # -- leadership and the append path ------------------------------------------------------------
    def is_leader(self, p: PartitionState) -> bool:
        """This broker leads ``p`` and has its log (reads and writes go here)."""

    def check_leader(self, p: PartitionState) -> None:
        """Raise KafkaError NOT_LEADER_OR_FOLLOWER unless this broker may
        append to ``p`` now."""

    async def append(self, p: PartitionState, data: bytearray, headers: list[BatchHeader], *, acks: int,
                     now: int, timeout_ms: int | None) -> "AppendResult":
        """Write validated batches to ``p``'s log as its leader and wait for
        ``acks`` (1: the local write; -1: every in-sync replica, through the
        high watermark, at most ``timeout_ms``). Raises KafkaError
        (NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS,
        NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT,
        KAFKA_STORAGE_ERROR)."""

    async def wait_replicated(self, p: PartitionState, end_offset: int, timeout_ms: int | None) -> None:
        """acks=-1 for offsets already in the log (an idempotent producer's
        duplicate): wait until the high watermark reaches ``end_offset``."""

    async def wait_low_watermark(self, p: PartitionState, required: int, timeout_ms: int) -> int:
        """DeleteRecords on the leader after it moved its log start offset:
        wait until every live replica's log start offset reached ``required``
        (Kafka's DelayedDeleteRecords); returns the low watermark (the lowest
        of them). Raises KafkaError REQUEST_TIMED_OUT after ``timeout_ms``,
        NOT_LEADER_OR_FOLLOWER when leadership moved."""

    async def call(self, node_id: int, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """One request to another live broker (the transaction coordinator's
        WriteTxnMarkers and AddPartitionsToTxn to partition leaders): its
        response, or None if it failed (not live, connection, timeout)."""

    async def replica_fetch(self, req: dict[str, Any], version: int, replica_id: int) -> dict[str, Any] | None:
        """A follower's Fetch (``replica_id`` >= 0): the whole response; None
        when this broker has no followers and serves it as a consumer's."""

    # -- topics (the controller's admin operations; auto-creation anywhere) -----------------------
    async def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str],
                           assignment: dict[int, list[int]] | None, timeout_ms: int) -> bytes:
        """Create a validated topic; its id. Waits up to ``timeout_ms`` for
        leaders. KafkaError: NOT_CONTROLLER, TOPIC_ALREADY_EXISTS,
        INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT."""

    async def create_partitions(self, name: str, total: int, assignment: list[list[int]] | None,
                                timeout_ms: int) -> None:
        """Grow a topic to ``total`` partitions. KafkaError: NOT_CONTROLLER,
        INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR."""

    async def delete_topic(self, name: str, timeout_ms: int) -> None:
        """Delete a topic everywhere. KafkaError: NOT_CONTROLLER."""

    async def elect_leaders(self, partitions: list[tuple[str, int]], election_type: int,
                            timeout_ms: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        """(error code, message) per partition. KafkaError: NOT_CONTROLLER."""

    async def alter_reassignments(self, wanted: dict[tuple[str, int], list[int] | None],
                                  timeout_ms: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        """Start moving partitions to new replica sets (None: cancel the move
        in progress); (error code, message) per partition. KafkaError:
        NOT_CONTROLLER."""

    def list_reassignments(self, partitions: list[tuple[str, int]] | None
                           ) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        """(replicas, adding, removing) of the partitions being moved, of
        ``partitions`` (None: all). KafkaError: NOT_CONTROLLER."""

    def auto_create(self, name: str, partitions: int, replication_factor: int,
                    configs: dict[str, str] | None) -> TopicState | None:
        """Create a topic with broker defaults (Metadata, Produce, internal
        topics); the topic, or None while it is being created elsewhere."""

    # -- the config store (AlterConfigs, IncrementalAlterConfigs) ------------------------------------
    async def alter_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        """Replace an existing topic's config overrides (validated, canonical)
        where this variant keeps them, so that every broker applies them;
        this broker's ``TopicState`` and logs have them on return. KafkaError:
        KAFKA_STORAGE_ERROR, UNKNOWN_SERVER_ERROR (the store failed)."""

    def dynamic_configs(self, resource_name: str) -> dict[str, str]:
        """The dynamic broker configs of a BROKER resource ("" = the
        cluster-wide default, else a broker id) as stored now."""

    async def set_dynamic_configs(self, resource_name: str, configs: dict[str, str]) -> None:
        """Replace a BROKER resource's dynamic configs (validated) and apply
        them on every broker they concern; applied here on return. KafkaError
        as for :meth:`alter_topic_configs`."""

    # -- finalized features (UpdateFeatures; ApiVersions) ----------------------------------------------
    def finalized_features(self) -> dict[str, int] | None:
        """The finalized feature levels an admin set, cluster-wide (a feature
        not listed is at level 0); None while none were ever set (each
        feature is then at the level the advertised versions serve)."""

    def finalized_features_epoch(self) -> int:
        """The epoch ApiVersions reports with the finalized levels: it grows
        whenever they change, and every broker of a cluster reports the same
        one for the same levels."""

    async def update_features(self, levels: dict[str, int]) -> None:
        """Replace the finalized feature levels (above 0; others are at 0)
        where this variant keeps them, so that every broker's ApiVersions
        lists them; here on return (``BrokerState.features_changed``).
        KafkaError FEATURE_UPDATE_FAILED when the store failed or the levels
        changed meanwhile."""


UNKNOWN_PARTITION = "The partition does not exist."


log = logging.getLogger("pykbroker.state")

#: file descriptors kept free for connections, fetches and the logs' own use:
#: with fewer left, topic and partition creations are refused
FD_RESERVE = 64


def check_fd_headroom(name: str, partitions: int) -> None:
    """KAFKA_STORAGE_ERROR when the process is short of file descriptors (the
    broker keeps serving what it has rather than failing half-way)."""
    free = fd_headroom()
    if free < FD_RESERVE:
        log.warning("refusing to create %d partitions of %s: only %d file descriptors left "
                    "(RLIMIT_NOFILE; %d are kept in reserve)", partitions, name, free, FD_RESERVE)
        raise errors.KafkaError(
            errors.KAFKA_STORAGE_ERROR,
            f"Not creating partitions of '{name}': the broker is short of file descriptors "
            f"({free} left under its limit)")


def _kafka_error(e: TopicError | OSError) -> errors.KafkaError:
    """A failed creation of the log manager as the error the client gets."""
    if isinstance(e, OSError):  # LogOfflineError: no log directory online
        return errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e))
    return errors.KafkaError(e.error_code, str(e))  # StorageFailureError: KAFKA_STORAGE_ERROR


class LocalReplicas:
    """A lone broker: a one-node cluster that leads every partition."""

    def __init__(self, state: "BrokerState") -> None:
        self.state = state
        self._infos: dict[int, PartitionInfo] = {}  # partition_info's answers, by leader epoch
        logs = state.logs
        assert logs is not None
        for meta in list(logs.topics.values()):  # a lone broker's topics: those of its log directories
            state.topics.adopt(meta, state.topic_config(meta.configs))

    # -- lifecycle ----------------------------------------------------------------------------------------
    def recover(self) -> None:
        self.state.load_producer_states()  # snapshot + replay per partition

    async def start(self, nursery: trio.Nursery) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    # -- the cluster picture -------------------------------------------------------------------------
    def _me(self) -> BrokerEndpoint:
        st = self.state
        return BrokerEndpoint(st.node_id, st.advertised_host, st.advertised_port, st.rack)

    def live_brokers(self) -> list[BrokerEndpoint]:
        return [self._me()]

    def broker(self, node_id: int) -> BrokerEndpoint | None:
        return self._me() if node_id == self.state.node_id else None

    def controller_id(self) -> int:
        return self.state.node_id

    def is_controller(self) -> bool:
        return True

    def leader_of(self, topic: str, partition: int) -> int | None:
        return self.state.node_id if self.state.topics.partition(topic, partition) is not None else None

    def partition_info(self, ts: TopicState, p: PartitionState) -> PartitionInfo:
        node = self.state.node_id
        logs = self.state.logs
        if logs is not None and logs.offline_dirs and logs.log_dir_of(p.topic, p.index) in logs.offline_dirs:
            # its log directory failed: the only replica is offline, no leader (Kafka's OfflinePartition)
            return PartitionInfo(-1, p.leader_epoch, [node], [node], [node])
        # one shared (read-only) answer per leader epoch: Metadata asks for
        # every partition of a topic, thousands at a time (issue 17)
        info = self._infos.get(p.leader_epoch)
        if info is None or info.leader != node:
            info = self._infos[p.leader_epoch] = PartitionInfo(node, p.leader_epoch, [node], [node], [])
        return info

    def replication_factor(self, topic: str) -> int:
        return 1

    def add_leadership_listener(self, fn: LeadershipListener) -> None:
        return None

    # -- leadership and the append path ------------------------------------------------------------
    def is_leader(self, p: PartitionState) -> bool:
        return p.log is not None

    def check_leader(self, p: PartitionState) -> None:
        if p.log is None:
            raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                    f"This server is not the leader for {p.topic}-{p.index}")

    async def append(self, p: PartitionState, data: bytearray, headers: list[BatchHeader], *, acks: int,
                     now: int, timeout_ms: int | None) -> "AppendResult":
        try:
            res = p.log.append(data, headers, leader_epoch=p.leader_epoch, now_ms=now)
        except OSError as e:
            raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        self.state.after_append(p)  # the only replica: committed at once
        try:
            await self.state.flush_if_due(p, now)
        except OSError as e:  # the fsync failed: the write may not be durable
            raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        return res

    async def wait_replicated(self, p: PartitionState, end_offset: int, timeout_ms: int | None) -> None:
        return None

    async def wait_low_watermark(self, p: PartitionState, required: int, timeout_ms: int) -> int:
        return p.log.log_start_offset  # the only replica

    async def call(self, node_id: int, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        return None  # there is no other broker

    async def replica_fetch(self, req: dict[str, Any], version: int, replica_id: int) -> dict[str, Any] | None:
        return None

    # -- topics --------------------------------------------------------------------------------------------
    async def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str],
                           assignment: dict[int, list[int]] | None, timeout_ms: int) -> bytes:
        check_fd_headroom(name, partitions)
        try:  # the file work in worker threads: the other clients keep being answered
            return (await self.state.create_topic_off_loop(name, partitions, configs)).topic_id
        except (TopicError, OSError) as e:  # a failure is rolled back: nothing of the topic is left
            raise _kafka_error(e) from e

    async def create_partitions(self, name: str, total: int, assignment: list[list[int]] | None,
                                timeout_ms: int) -> None:
        ts = self.state.topics.get(name)
        check_fd_headroom(name, total - (len(ts.partitions) if ts is not None else 0))
        try:
            await self.state.create_partitions_off_loop(name, total)
        except (TopicError, OSError) as e:  # a failure is rolled back: the topic keeps its partitions
            raise _kafka_error(e) from e

    async def delete_topic(self, name: str, timeout_ms: int) -> None:
        self.state.delete_topic(name)

    async def elect_leaders(self, partitions: list[tuple[str, int]], election_type: int,
                            timeout_ms: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        # the only replica always leads: nothing ever needs an election
        return {(t, i): (errors.ELECTION_NOT_NEEDED, None) if self.state.topics.partition(t, i) is not None
                else (errors.UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_PARTITION) for t, i in partitions}

    async def alter_reassignments(self, wanted: dict[tuple[str, int], list[int] | None],
                                  timeout_ms: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        # a one-broker cluster, as Kafka's controller answers it: the only
        # replica set is [this broker] (already in place), any other broker is
        # not alive, and nothing is ever being moved
        me = self.state.node_id
        out: dict[tuple[str, int], tuple[int, str | None]] = {}
        for (t, i), target in wanted.items():
            known = self.state.topics.partition(t, i) is not None
            if target is None:
                out[(t, i)] = (errors.NO_REASSIGNMENT_IN_PROGRESS, None)
            elif not target:
                out[(t, i)] = (errors.INVALID_REPLICA_ASSIGNMENT,
                               "Empty replica list specified in partition reassignment.")
            elif len(set(target)) != len(target):
                out[(t, i)] = (errors.INVALID_REPLICA_ASSIGNMENT,
                               f"Duplicate replica ids in partition reassignment replica list: {target}")
            elif any(r < 0 for r in target):
                out[(t, i)] = (errors.INVALID_REPLICA_ASSIGNMENT, f"Invalid broker id in replica list: {target}")
            elif any(r != me for r in target):
                adding = [r for r in target if not (known and r == me)]
                out[(t, i)] = (errors.INVALID_REPLICA_ASSIGNMENT,
                               f"Replica assignment has brokers that are not alive. Replica list: {adding}, "
                               f"live broker list: {[me]}")
            elif not known:
                out[(t, i)] = (errors.UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_PARTITION)
            else:
                out[(t, i)] = (errors.NONE, None)
        return out

    def list_reassignments(self, partitions: list[tuple[str, int]] | None
                           ) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        return {}

    def auto_create(self, name: str, partitions: int, replication_factor: int,
                    configs: dict[str, str] | None) -> TopicState | None:
        logs = self.state.logs
        if logs is not None and logs.creating(name):
            return None  # a CreateTopics of it is under way: unknown until it completes
        try:
            check_fd_headroom(name, partitions)
            return self.state.create_topic(name, partitions, configs)
        except (TopicError, OSError, errors.KafkaError) as e:  # as if auto-creation were off
            log.warning("auto-creating topic %s failed: %s", name, e)
            return None

    # -- the config store: the topics metadata file of the log directory ---------------------------
    def _logs(self) -> LogStore:
        logs = self.state.logs
        assert logs is not None, "the broker is closed"
        return logs

    async def alter_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        st = self.state
        ts = st.topics.get(name)
        try:
            self._logs().alter_topic_configs(name, configs)
        except OSError as e:
            raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        if ts is not None:
            ts.configs = dict(configs)
            ts.log_config = st.topic_config(configs)

    def dynamic_configs(self, resource_name: str) -> dict[str, str]:
        return dict(self._logs().dynamic_configs.get(resource_name, {}))

    async def set_dynamic_configs(self, resource_name: str, configs: dict[str, str]) -> None:
        try:
            self._logs().set_dynamic_configs(resource_name, configs)
        except OSError as e:
            raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        apply_dynamic_state(self.state)

    # -- finalized features: the topics metadata file of the log directory -------------------------
    def finalized_features(self) -> dict[str, int] | None:
        stored = self._logs().finalized_features
        return None if stored is None else dict(stored)

    def finalized_features_epoch(self) -> int:
        # this broker's counter: bumped when the levels or the advertised versions change
        return self.state.finalized_features_epoch

    async def update_features(self, levels: dict[str, int]) -> None:
        try:
            self._logs().set_finalized_features(levels)
        except OSError as e:
            raise errors.KafkaError(errors.FEATURE_UPDATE_FAILED, str(e)) from e
        self.state.features_changed()
