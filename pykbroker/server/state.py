"""Broker state shared by the handlers: config, topics, replication, coordinators.

:func:`build_state` (tests, sync) and :func:`open_state` (``server/broker.py``)
build a :class:`BrokerState` whole: logs open, topics registered, the
replication variant (``server/replicas.py``), the request hooks and both
coordinators in place before any listener accepts. All mutation happens on
the trio thread; appends are plain writes into the page cache (fast), fsyncs
go to worker threads.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import trio

from ..config import BrokerConfig
from ..security.listeners import Security
from ..group import GroupCoordinator
from ..handlers import advertised
from ..topic_configs import apply_dynamic_state
from ..protocol import errors, features
from ..protocol.errors import KafkaError
from ..protocol.records import BatchHeader
from ..storage.log_config import LogConfig
from ..storage.api import LogStore
from ..storage.engines import open_log_store
from ..storage.manager import validate_topic_name
from ..storage.segment import set_max_open_segments
from ..txn import producers as txn_producers
from ..share import ShareCoordinator
from ..telemetry import TelemetryManager
from ..telemetry.manager import TELEMETRY_APIS
from ..txn.coordinator import TransactionCoordinator
from .fetch_sessions import FetchSessionCache
from .log_tasks import LogTasks
from .metrics import Instrumentation
from .replicas import BrokerEndpoint, LeadershipListener, LocalReplicas, Replicas
from .topics import PartitionState, TopicRegistry, TopicState
from ..util import now_ms

if TYPE_CHECKING:
    from ..storage.api import AppendResult

log = logging.getLogger("pykbroker.state")

__all__ = ["BrokerState", "PartitionState", "TopicState", "ReplicasFactory", "build_state", "open_state",
           "open_logs", "now_ms"]

#: builds the replication variant for a state (``LocalReplicas``, or a cluster's)
ReplicasFactory = Callable[["BrokerState"], Replicas]


def open_logs(config: BrokerConfig, cluster_id: str | None = None) -> LogStore:
    """Open (load, recover) the log directories. Blocking: a worker thread.
    ``cluster_id`` comes from ZooKeeper in cluster mode, where only the
    partitions this broker replicates get a log."""
    logs = open_log_store(config["pykbroker.storage"], config.log_dirs,
                          LogConfig.from_properties(config.topic_defaults()), node_id=config.node_id,
                          cluster_id=cluster_id if cluster_id is not None else config["cluster.id"])
    if cluster_id is not None:
        logs.create_missing_partitions = False  # topics come from ZooKeeper
    set_max_open_segments(int(config["pykbroker.log.max.open.segments"]))
    logs.load()
    return logs


def build_state(config: BrokerConfig, *, replicas: ReplicasFactory = LocalReplicas,
                hooks: Instrumentation | None = None, cluster_id: str | None = None,
                advertised_endpoint: tuple[str, int] = ("127.0.0.1", 9092),
                api_version_ranges: dict[int, tuple[int, int]] | None = None,
                nursery: trio.Nursery | None = None,
                advertised_by_listener: dict[str, tuple[str, int]] | None = None) -> BrokerState:
    """Open the logs and build the whole state (blocking: tests call it
    directly; the broker uses :func:`open_state`)."""
    st = BrokerState(config, open_logs(config, cluster_id), replicas=replicas, hooks=hooks,
                     advertised_endpoint=advertised_endpoint, api_version_ranges=api_version_ranges,
                     nursery=nursery, advertised_by_listener=advertised_by_listener)
    st.replicas.recover()
    return st


async def open_state(config: BrokerConfig, *, replicas: ReplicasFactory = LocalReplicas,
                     hooks: Instrumentation | None = None, cluster_id: str | None = None,
                     advertised_endpoint: tuple[str, int] = ("127.0.0.1", 9092),
                     api_version_ranges: dict[int, tuple[int, int]] | None = None,
                     nursery: trio.Nursery | None = None,
                     advertised_by_listener: dict[str, tuple[str, int]] | None = None) -> BrokerState:
    """:func:`build_state` with the blocking parts in worker threads."""
    logs = await trio.to_thread.run_sync(open_logs, config, cluster_id)
    st = BrokerState(config, logs, replicas=replicas, hooks=hooks, advertised_endpoint=advertised_endpoint,
                     api_version_ranges=api_version_ranges, nursery=nursery,
                     advertised_by_listener=advertised_by_listener)
    await trio.to_thread.run_sync(st.replicas.recover)
    return st


class BrokerState:
    """Everything a handler may read or change, built whole (see :func:`build_state`)."""

    def __init__(self, config: BrokerConfig, logs: LogStore, *, replicas: ReplicasFactory = LocalReplicas,
                 hooks: Instrumentation | None = None,
                 advertised_endpoint: tuple[str, int] = ("127.0.0.1", 9092),
                 api_version_ranges: dict[int, tuple[int, int]] | None = None,
                 nursery: trio.Nursery | None = None,
                 advertised_by_listener: dict[str, tuple[str, int]] | None = None) -> None:
        self.config = config
        self.node_id: int = config.node_id
        self.logs: LogStore | None = logs  # None once closed
        self.cluster_id: str = logs.cluster_id
        self.advertised_host, self.advertised_port = advertised_endpoint
        # listener name -> advertised (host, port): a client is told the address of its own listener
        self.advertised_by_listener: dict[str, tuple[str, int]] = dict(advertised_by_listener or {})
        # TLS contexts, SASL mechanisms, SCRAM credentials per listener (pykbroker/security/)
        self.security: Security = Security(config)
        self.rack: str | None = config["broker.rack"]
        # Kafka release emulation (--as-version, protocol/releases.py): per key (min, max)
        self.api_version_caps: dict[int, int] | None = None
        self.api_version_floors: dict[int, int] | None = None
        if api_version_ranges is not None:
            self.api_version_caps = {k: hi for k, (lo, hi) in api_version_ranges.items()}
            self.api_version_floors = {k: lo for k, (lo, hi) in api_version_ranges.items()}
        if not config["pykbroker.client.telemetry.enable"]:
            # KIP-714's APIs only with a telemetry receiver, as Kafka (telemetry/manager.py)
            caps = self.api_version_caps or {e["api_key"]: e["max_version"] for e in advertised()}
            self.api_version_caps = {k: v for k, v in caps.items() if k not in TELEMETRY_APIS}
        self._api_versions_cache: list[dict[str, Any]] | None = None
        # finalized feature levels, computed for (the advertised list, the finalized epoch) it names
        self._levels: tuple[object, tuple[int, int], dict[str, int]] = (None, (0, 0), {})
        # ApiVersions' FinalizedFeaturesEpoch: the finalized features derive from the advertised
        # versions and the levels UpdateFeatures set (Replicas.finalized_features), so it grows
        # each time those are computed anew or the levels change (handlers/api_versions.py)
        self.finalized_features_epoch: int = 0
        self.nursery: trio.Nursery | None = nursery  # background work (flushes, coordinator tasks)
        self._bg_flushing: set[PartitionState] = set()
        # request hooks: metrics, trace, fault rules (server/metrics.py)
        self.hooks: Instrumentation = hooks if hooks is not None else Instrumentation(config)
        # the one topic registry; a lone broker registers its local topics now,
        # a cluster member those ZooKeeper brings
        self.topics = TopicRegistry(logs)
        self.replicas: Replicas = replicas(self)  # registers the topics it knows
        if logs.dynamic_configs:  # stored dynamic broker configs, before anything reads the config
            apply_dynamic_state(self)
        # created before any listener accepts, so partitions of the internal
        # topics to load already answer COORDINATOR_LOAD_IN_PROGRESS
        self.group_coordinator = GroupCoordinator(self)
        self.txn_coordinator = TransactionCoordinator(self)
        # share groups (KIP-932): __share_group_state loads before share requests are served
        self.share_coordinator = ShareCoordinator(self)
        # incremental fetch sessions (KIP-227, server/fetch_sessions.py)
        self.fetch_sessions = FetchSessionCache(config["max.incremental.fetch.session.cache.slots"])
        # client telemetry (KIP-714): client-metrics subscriptions and pushed metrics
        self.telemetry = TelemetryManager(config)
        # retention, compaction, flush.ms, file deletion (run by log_tasks.run)
        self.log_tasks = LogTasks(self)

    @property
    def topics_by_id(self) -> dict[bytes, TopicState]:
        return self.topics.by_id

    # -- lifecycle ---------------------------------------------------------
    def load_producer_states(self) -> None:
        """Snapshot + replay per partition (start-up, loading thread)."""
        txn_producers.load_all(self)

    def close(self) -> None:
        if self.logs is not None:
            txn_producers.snapshot_all(self)  # producer snapshots at the log ends (Kafka: UnifiedLog.close)
            self.logs.close()
            self.logs = None

    def default_log_config(self) -> LogConfig:
        return LogConfig.from_properties(self.config.topic_defaults())

    def topic_config(self, overrides: dict[str, str]) -> LogConfig:
        props = self.config.topic_defaults()
        props.update(overrides)
        return LogConfig.from_properties(props)

    # -- API versions --------------------------------------------------------
    def api_versions(self) -> list[dict[str, Any]]:
        if self._api_versions_cache is None:
            out = advertised(self.api_version_caps)
            floors = self.api_version_floors
            if floors:
                out = [dict(e, min_version=max(e["min_version"], floors.get(e["api_key"], 0))) for e in out]
                out = [e for e in out if e["min_version"] <= e["max_version"]]
            self._api_versions_cache = out
            self.finalized_features_epoch += 1
        return self._api_versions_cache

    def finalized_level(self, feature: str) -> int:
        """A feature's finalized level as ApiVersions lists it (0: not finalized).
        Asked on hot paths (ShareFetch, group heartbeats): computed again only
        when the advertised versions or the finalized epoch changed."""
        av = self.api_versions()
        # this broker's own counter too: bumped on every change it hears of (a cluster's /feature
        # znode version alone could repeat after a delete and create)
        epoch = (self.replicas.finalized_features_epoch(), self.finalized_features_epoch)
        src, seen, levels = self._levels
        if src is not av or seen != epoch:
            levels = features.finalized_levels(av, self.replicas.finalized_features())
            self._levels = (av, epoch, levels)
        return levels.get(feature, 0)

    def features_changed(self) -> None:
        """The finalized feature levels changed (UpdateFeatures, here or on another broker)."""
        self.finalized_features_epoch += 1

    # -- topics of the local logs (a lone broker; LocalReplicas) ------------------------------
    def create_topic(self, name: str, partitions: int, configs: dict[str, str] | None = None) -> TopicState:
        configs = dict(configs or {})
        return self.topics.create(name, partitions, configs, self.topic_config(configs))

    def delete_topic(self, name: str) -> None:
        self.topics.delete(name)

    def create_partitions(self, name: str, total: int) -> None:
        self.topics.add_partitions(name, total)

    async def create_topic_off_loop(self, name: str, partitions: int,
                                    configs: dict[str, str] | None = None) -> TopicState:
        """As :meth:`create_topic`, the partitions' files created in worker
        threads while the broker keeps serving (CreateTopics)."""
        configs = dict(configs or {})
        return await self.topics.create_off_loop(name, partitions, configs, self.topic_config(configs))

    async def create_partitions_off_loop(self, name: str, total: int) -> None:
        """As :meth:`create_partitions`, off the event loop (CreatePartitions)."""
        await self.topics.add_partitions_off_loop(name, total)

    def partition(self, topic: str, index: int) -> PartitionState | None:
        return self.topics.partition(topic, index)

    def auto_create_enabled(self) -> bool:
        return bool(self.config["auto.create.topics.enable"])

    def maybe_auto_create(self, name: str) -> TopicState | None:
        """Create ``name`` with broker defaults if auto-creation is on; None
        if it is off, or while the topic is being created elsewhere (cluster)."""
        ts = self.topics.get(name)
        if ts is not None:
            return ts
        if not self.auto_create_enabled() or validate_topic_name(name) is not None:
            return None
        return self.replicas.auto_create(name, int(self.config["num.partitions"]),
                                         int(self.config["default.replication.factor"]), None)

    def ensure_internal_topic(self, name: str, partitions: int,
                              configs: dict[str, str] | None = None, *,
                              replication_factor: int | None = None) -> TopicState | None:
        """Create an internal topic (``__consumer_offsets``, ``__transaction_state``)
        if it does not exist yet.

        Cluster mode: the creation goes through ZooKeeper, so this returns
        None until the topic exists here (callers answer
        COORDINATOR_NOT_AVAILABLE meanwhile, as Kafka does). The replication
        factor defaults to offsets.topic.replication.factor /
        transaction.state.log.replication.factor (else default.replication.factor)."""
        ts = self.topics.get(name)
        if ts is None:
            if replication_factor is None:
                key = {"__consumer_offsets": "offsets.topic.replication.factor",
                       "__transaction_state": "transaction.state.log.replication.factor"}.get(
                           name, "default.replication.factor")
                replication_factor = int(self.config[key])
            ts = self.replicas.auto_create(name, partitions, replication_factor, configs)
            if ts is None:
                return None
        ts.internal = True
        return ts

    # -- the append path ------------------------------------------------------------------
    async def append(self, p: PartitionState, data: bytearray, headers: list[BatchHeader], *, acks: int,
                     now: int | None = None, timeout_ms: int | None = None,
                     origin: str = "client", leader_epoch: int = -1) -> "AppendResult":
        """Append validated batches to partition ``p`` as its leader and wait
        for what ``acks`` asks: 1 = the local write (in the page cache),
        -1 = every in-sync replica (with one replica, the same). Produce,
        the group coordinator (``__consumer_offsets``) and the transaction
        coordinator all append through here, so they run on replicated
        partitions. Raises KafkaError with Kafka's code (NOT_LEADER_OR_FOLLOWER,
        KAFKA_STORAGE_ERROR, ...) and InvalidRecords.

        The write and the wait are ``self.replicas.append`` (server/replicas.py):
        in a cluster only the leader appends; acks=-1 waits until the high
        watermark (the ISR) passes the batch, at most ``timeout_ms`` (default
        30 s), and can fail with NOT_ENOUGH_REPLICAS (before the append),
        NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER or
        REQUEST_TIMED_OUT.

        Producer state (pykbroker/txn/producers.py): batches with a producer
        id are checked (sequence, epoch, transaction state: KafkaError with
        Kafka's code) and recorded right before the write, in the same tick
        (``origin``: "client" for Produce, "coordinator" for markers and
        transactional offset commits); a client batch already in the log is
        not written again and gets its original offsets.

        ``leader_epoch`` >= 0 (the coordinators' writes): the append is
        refused with NOT_LEADER_OR_FOLLOWER unless the partition is still at
        that leader epoch, the one the writer's state was loaded at (Kafka's
        coordinators append with the epoch they loaded the partition at); the
        check and the write happen in the same tick.
        """
        if now is None:
            now = now_ms()
        self.replicas.check_leader(p)  # NOT_LEADER_OR_FOLLOWER before anything else
        if leader_epoch >= 0 and p.leader_epoch != leader_epoch:
            raise errors.KafkaError(
                errors.NOT_LEADER_OR_FOLLOWER,
                f"{p.topic}-{p.index} is at leader epoch {p.leader_epoch}, the write was decided at {leader_epoch}")
        plan = txn_producers.before_append(self, p, data, headers, origin, now)
        if plan is not None and plan.duplicate is not None:
            res: AppendResult = txn_producers.duplicate_result(p, plan)
            if acks == -1:
                # the original may not be replicated yet: acks=all waits for it too
                await self.replicas.wait_replicated(p, res.last_offset + 1, timeout_ms)
            return res
        try:
            res = await self.replicas.append(p, data, headers, acks=acks, now=now, timeout_ms=timeout_ms)
        except BaseException as e:
            txn_producers.append_failed(p, plan)
            if isinstance(e, KafkaError) and e.code == errors.KAFKA_STORAGE_ERROR and self.logs is not None:
                self.logs.check_partition_dir(p.topic, p.index)  # a failed log directory goes offline
            raise
        txn_producers.after_append(p, plan)
        return res

    def after_append(self, p: PartitionState) -> None:
        """After a write to a lone broker's log: the high watermark follows
        the log end (the only replica) and fetchers wake."""
        p.log.high_watermark = p.log.log_end_offset
        p.notify()

    async def flush_if_due(self, p: PartitionState, now: int) -> None:
        """fsync before the ack when flush.messages / flush.ms say so (Kafka
        flushes inside the append path); the fsync runs in a worker thread."""
        if p.log.needs_flush(now):
            await trio.to_thread.run_sync(p.log.flush)
        elif p.log.flush_pending and self.nursery is not None and p not in self._bg_flushing:
            # A rolled segment is flushed in the background, outside the
            # produce path, as Kafka does.
            self._bg_flushing.add(p)
            self.nursery.start_soon(self._background_flush, p)

    async def _background_flush(self, p: PartitionState) -> None:
        try:
            await trio.to_thread.run_sync(p.log.flush)
        except OSError:
            log.exception("background flush of %s-%d failed", p.topic, p.index)
        finally:
            self._bg_flushing.discard(p)

    async def checkpointer(self, interval_s: float = 60.0) -> None:
        """Write recovery points and log start offsets every interval (Kafka:
        log.flush.offset.checkpoint.interval.ms = 60 s) so crash recovery
        scans only what came after."""
        while True:
            await trio.sleep(interval_s)
            if self.logs is not None:
                try:
                    await trio.to_thread.run_sync(self.logs.checkpoint)
                except OSError:
                    log.exception("writing checkpoints failed")

    # -- cluster queries (server/replicas.py) ------------------------------------------------------
    def leader_of(self, topic: str, partition: int) -> int | None:
        """Node id of the partition's leader; None if it has none (or is unknown).
        Coordinators live where the leader of their internal partition lives."""
        return self.replicas.leader_of(topic, partition)

    def broker_endpoint(self, node_id: int) -> tuple[str, int, str | None] | None:
        """(host, port, rack) of a live broker; None if it is not live."""
        b = self.replicas.broker(node_id)
        return None if b is None else (b.host, b.port, b.rack)

    def endpoint_for(self, b: BrokerEndpoint, listener: str | None) -> tuple[str, int] | None:
        """(host, port) of broker ``b`` as told to a client on ``listener``:
        the address that broker registered for the same listener name (this
        broker's own advertised one); None when it has no such listener
        (Kafka leaves it out of Metadata). Without a listener (in-process
        callers), the broker's inter-broker address."""
        if b.node_id == self.node_id and listener in self.advertised_by_listener:
            return self.advertised_by_listener[listener]
        if listener is None or not b.listeners:
            return b.host, b.port
        for name, host, port in b.listeners:
            if name == listener:
                return host, port
        return None

    def live_broker_ids(self) -> list[int]:
        return [b.node_id for b in self.replicas.live_brokers()]

    def add_leadership_listener(self, fn: LeadershipListener) -> None:
        """``fn(topic, partition, is_leader, leader_epoch)`` on every change of
        this broker's leadership of a partition (a lone broker leads everything
        from the start), on the trio thread."""
        self.replicas.add_leadership_listener(fn)
