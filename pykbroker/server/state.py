"""Broker state shared by the handlers: config, logs, partitions, waiters.

All mutation happens on the trio thread; appends are plain writes into the
page cache (fast), fsyncs go to worker threads.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..config import BrokerConfig
from ..handlers import advertised
from ..protocol import errors
from ..storage.log_config import LogConfig
from ..storage.manager import LogManager
from ..txn import producers as txn_producers
from ..util import now_ms

if TYPE_CHECKING:
    from ..storage.log import AppendResult, PartitionLog

log = logging.getLogger("pykbroker.state")


@attrs.define(eq=False)
class PartitionState:
    """Leader-side state of one partition (replication will extend it)."""

    topic: str
    index: int
    log: "PartitionLog"  # None in cluster mode for a partition this broker does not replicate
    leader_epoch: int = 0
    waiters: set[trio.Event] = attrs.field(factory=set)
    # cluster mode: this broker's role, ISR, followers (cluster.replica.Replication)
    repl: Any = None
    # idempotence and transactions: storage.producer_state.ProducerStateManager
    # (loaded with the logs or on first use by pykbroker.txn.producers)
    producers: Any = None

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def last_stable_offset(self) -> int:
        """The high watermark, or the first offset of the earliest transaction
        not yet decided (or whose marker is not below the high watermark)."""
        hw = self.log.high_watermark
        ps = self.producers
        if ps is None or not (ps.ongoing or ps.unreplicated):
            return hw
        first = ps.first_unstable_offset(hw)
        if first is None or first >= hw:
            return hw
        return max(first, self.log.log_start_offset)

    def notify(self) -> None:
        """Wake every fetch waiting on this partition."""
        if self.waiters:
            for ev in self.waiters:
                ev.set()
            self.waiters.clear()


@attrs.define(eq=False)
class TopicState:
    name: str
    topic_id: bytes
    partitions: list[PartitionState]
    configs: dict[str, str]
    log_config: LogConfig
    internal: bool = False


class BrokerState:
    """Everything a handler may read or change."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.topics: dict[str, TopicState] = {}
        self.topics_by_id: dict[bytes, TopicState] = {}
        self.logs: LogManager | None = None
        self.cluster_id = ""
        self.advertised_host = "127.0.0.1"
        self.advertised_port = 9092
        self.rack: str | None = config["broker.rack"]
        self.api_version_caps: dict[int, int] | None = None
        # raised per-key minimums (Kafka release emulation, testing/releases.py)
        self.api_version_floors: dict[int, int] | None = None
        # request hooks: metrics, trace, fault rules (server/metrics.py Instrumentation)
        self.hooks: Any = None
        self._api_versions_cache: list[dict[str, Any]] | None = None
        self.nursery: trio.Nursery | None = None  # set by Broker.start for background work
        self.group_coordinator: Any = None  # pykbroker.group.GroupCoordinator, set by Broker.start
        self.txn_coordinator: Any = None  # pykbroker.txn.TransactionCoordinator, set by Broker.start
        self.share_coordinator: Any = None  # pykbroker.share.ShareCoordinator, set by Broker.start
        # cluster mode (zookeeper.connect): pykbroker.cluster.node.ClusterNode, set by Broker.start
        self.cluster: Any = None
        self._bg_flushing: set[PartitionState] = set()

    # -- lifecycle ---------------------------------------------------------
    def open(self) -> None:
        cfg = self.config
        manager_cls: type[LogManager] = LogManager
        if cfg["pykbroker.storage"] == "memory":  # storage/memory.py, for tests
            from ..storage.memory import MemoryLogManager as manager_cls
        cluster = self.cluster
        self.logs = manager_cls(cfg.log_dirs, self.default_log_config(), node_id=self.node_id,
                                cluster_id=cluster.cluster_id if cluster is not None else cfg["cluster.id"])
        if cluster is not None:
            # topics come from ZooKeeper; only replicated partitions get a log
            self.logs.create_missing_partitions = False
        self.logs.load()
        self.cluster_id = self.logs.cluster_id
        if cluster is not None:
            cluster.after_open()
            return
        for meta in list(self.logs.topics.values()):
            self._adopt(meta)
        from ..txn.producers import load_all as load_producer_states

        load_producer_states(self)  # snapshot + replay per partition (we are in the loading thread)

    def close(self) -> None:
        if self.logs is not None:
            from ..txn.producers import snapshot_all

            snapshot_all(self)  # producer snapshots at the log ends (Kafka: UnifiedLog.close)
            self.logs.close()
            self.logs = None

    def default_log_config(self) -> LogConfig:
        return LogConfig.from_properties(self.config.topic_defaults())

    def topic_config(self, overrides: dict[str, str]) -> LogConfig:
        props = self.config.topic_defaults()
        props.update(overrides)
        return LogConfig.from_properties(props)

    def _adopt(self, meta: Any) -> TopicState:
        assert self.logs is not None
        parts = []
        for i in range(meta.partitions):
            plog = self.logs.get(meta.name, i)
            assert plog is not None, (meta.name, i)
            parts.append(PartitionState(meta.name, i, plog, leader_epoch=max(plog.leader_epoch, 0)))
        ts = TopicState(meta.name, meta.topic_id, parts, dict(meta.configs),
                        self.topic_config(meta.configs), internal=meta.name.startswith("__"))
        self.topics[meta.name] = ts
        self.topics_by_id[meta.topic_id] = ts
        return ts

    # -- API versions --------------------------------------------------------
    def api_versions(self) -> list[dict[str, Any]]:
        if self._api_versions_cache is None:
            out = advertised(self.api_version_caps)
            floors = self.api_version_floors
            if floors:
                out = [dict(e, min_version=max(e["min_version"], floors.get(e["api_key"], 0))) for e in out]
                out = [e for e in out if e["min_version"] <= e["max_version"]]
            self._api_versions_cache = out
        return self._api_versions_cache

    # -- topics ----------------------------------------------------------------
    def create_topic(self, name: str, partitions: int, configs: dict[str, str] | None = None) -> TopicState:
        assert self.logs is not None
        configs = dict(configs or {})
        meta = self.logs.create_topic(name, partitions, configs, topic_id=uuid.uuid4().bytes)
        log.info("created topic %s with %d partitions", name, partitions)
        return self._adopt(meta)

    def delete_topic(self, name: str) -> None:
        assert self.logs is not None
        ts = self.topics.pop(name)
        self.topics_by_id.pop(ts.topic_id, None)
        for p in ts.partitions:
            p.notify()
        self.logs.delete_topic(name)
        log.info("deleted topic %s", name)

    def create_partitions(self, name: str, total: int) -> None:
        assert self.logs is not None
        ts = self.topics[name]
        self.logs.create_partitions(name, total)
        for i in range(len(ts.partitions), total):
            plog = self.logs.get(name, i)
            assert plog is not None
            ts.partitions.append(PartitionState(name, i, plog))

    def auto_create_enabled(self) -> bool:
        return bool(self.config["auto.create.topics.enable"])

    def maybe_auto_create(self, name: str) -> TopicState | None:
        """Create ``name`` with broker defaults if auto-creation is on."""
        from ..storage.manager import validate_topic_name

        if name in self.topics:
            return self.topics[name]
        if not self.auto_create_enabled() or validate_topic_name(name) is not None:
            return None
        if self.cluster is not None:
            # written to ZooKeeper; the topic appears here once the watch brings it
            self.cluster.request_auto_create(name, int(self.config["num.partitions"]),
                                             int(self.config["default.replication.factor"]))
            return None
        return self.create_topic(name, int(self.config["num.partitions"]))

    def partition(self, topic: str, index: int) -> PartitionState | None:
        ts = self.topics.get(topic)
        if ts is None or not 0 <= index < len(ts.partitions):
            return None
        return ts.partitions[index]

    # -- the append path (replication extends this) ------------------------------
    async def append(self, p: PartitionState, data: bytearray, headers: list, *, acks: int,
                     now: int | None = None, timeout_ms: int | None = None,
                     origin: str = "client") -> "AppendResult":
        """Append validated batches to partition ``p`` as its leader and wait
        for what ``acks`` asks: 1 = the local write (in the page cache),
        -1 = every in-sync replica (with one replica, the same). Produce,
        the group coordinator (``__consumer_offsets``) and the transaction
        coordinator all append through here, so they run on replicated
        partitions. Raises KafkaError with Kafka's code (NOT_LEADER_OR_FOLLOWER,
        KAFKA_STORAGE_ERROR, ...) and InvalidRecords.

        Cluster mode (cluster/replica.py): only the leader appends; acks=-1
        waits until the high watermark (the ISR) passes the batch, at most
        ``timeout_ms`` (default 30 s), and can fail with NOT_ENOUGH_REPLICAS
        (before the append), NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        NOT_LEADER_OR_FOLLOWER or REQUEST_TIMED_OUT.

        Producer state (pykbroker/txn/producers.py): batches with a producer
        id are checked (sequence, epoch, transaction state: KafkaError with
        Kafka's code) and recorded right before the write, in the same tick
        (``origin``: "client" for Produce, "coordinator" for markers and
        transactional offset commits); a client batch already in the log is
        not written again and gets its original offsets.
        """
        if now is None:
            now = now_ms()
        if self.cluster is not None:
            self.cluster.replicas.check_leader(p)  # NOT_LEADER_OR_FOLLOWER before anything else
        plan = txn_producers.before_append(self, p, data, headers, origin, now)
        if plan is not None and plan.duplicate is not None:
            res = txn_producers.duplicate_result(p, plan)
            if self.cluster is not None and acks == -1:
                # the original may not be replicated yet: acks=all waits for it too
                await self.cluster.replicas.wait_replicated(p, res.last_offset + 1, timeout_ms)
            return res
        try:
            if self.cluster is not None:
                res = await self.cluster.replicas.append(p, data, headers, acks=acks, now=now,
                                                         timeout_ms=timeout_ms)
            else:
                try:
                    res = p.log.append(data, headers, leader_epoch=p.leader_epoch, now_ms=now)
                except OSError as e:
                    raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
                self.after_append(p)
                try:
                    await self.flush_if_due(p, now)
                except OSError as e:  # the fsync failed: the write may not be durable
                    raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        except BaseException:
            txn_producers.append_failed(p, plan)
            raise
        txn_producers.after_append(p, plan)
        return res

    def after_append(self, p: PartitionState) -> None:
        """Advance the high watermark (single replica) and wake fetchers."""
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
            if self.cluster is not None:
                if replication_factor is None:
                    key = {"__consumer_offsets": "offsets.topic.replication.factor",
                           "__transaction_state": "transaction.state.log.replication.factor"}.get(
                               name, "default.replication.factor")
                    replication_factor = int(self.config[key])
                self.cluster.request_auto_create(name, partitions, replication_factor, configs)
                return None
            ts = self.create_topic(name, partitions, configs)
        ts.internal = True
        return ts

    # -- cluster queries (a lone broker leads everything) ------------------------------
    def leader_of(self, topic: str, partition: int) -> int | None:
        """Node id of the partition's leader; None if it has none (or is unknown).
        Coordinators live where the leader of their internal partition lives."""
        if self.cluster is not None:
            return self.cluster.leader_of(topic, partition)
        return self.node_id if self.partition(topic, partition) is not None else None

    def broker_endpoint(self, node_id: int) -> tuple[str, int, str | None] | None:
        """(host, port, rack) of a live broker; None if it is not live."""
        if self.cluster is not None:
            b = self.cluster.broker(node_id)
            return None if b is None else (b.host, b.port, b.rack)
        if node_id == self.node_id:
            return self.advertised_host, self.advertised_port, self.rack
        return None

    def live_broker_ids(self) -> list[int]:
        if self.cluster is not None:
            return [b.node_id for b in self.cluster.live_brokers()]
        return [self.node_id]

    def add_leadership_listener(self, fn: Any) -> None:
        """``fn(topic, partition, is_leader, leader_epoch)`` on every change of
        this broker's leadership of a partition (cluster mode only: a lone
        broker leads everything from the start), on the trio thread."""
        if self.cluster is not None:
            self.cluster.leadership_listeners.append(fn)
