"""One broker's membership in a ZooKeeper-coordinated cluster.

:class:`ClusterNode` owns the ZooKeeper session and everything built on
it: the watched cluster view, this broker's registration, its replicas'
roles (:mod:`.replica`), the replica fetchers (:mod:`.fetcher`) and, when
elected, the controller (:mod:`.controller`). It is this broker's
``BrokerState.replicas``: the ZooKeeper implementation of the cluster seam
(:class:`~pykbroker.server.replicas.Replicas`); handlers only see that
interface.

Lifecycle (``server/broker.py`` drives it):

1. :func:`cluster_replicas` (before the logs open): ZooKeeper session
   (creating the chroot if missing), Kafka's persistent paths, the cluster
   id from ``/cluster/id`` (created by the first broker; checked against
   ``meta.properties`` by the log manager). The node itself is built with
   the broker state; :meth:`ClusterNode.recover` restores the high
   watermarks once the logs are open.
2. :meth:`start` (listeners bound): read the whole cluster state with
   watches (topics known to ZooKeeper are registered in ``BrokerState.topics``;
   this broker opens logs only for the partitions it replicates; local
   topics ZooKeeper no longer has are deleted), register
   ``/brokers/ids/<id>`` (waiting for an earlier incarnation's ephemeral
   znode to expire), run for controller.
3. :meth:`shutdown` (SIGTERM): controlled shutdown, then fetchers stop,
   the high watermarks are checkpointed and the session is closed.

Session loss: on a lost connection the broker is fenced at once (no append,
no acknowledgement) until it is connected and re-synced; when the session
expired it also drops every leadership, registers again (a new broker
epoch) and waits for the controller to hand leaderships out again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import trio
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.protocol.states import KazooState

from ..config import BrokerConfig
from ..protocol import errors
from ..protocol.records import BatchHeader
from ..server.replicas import BrokerEndpoint, LeadershipListener, PartitionInfo
from ..server.state import ReplicasFactory
from ..server.topics import PartitionState, TopicState
from ..topic_configs import apply_dynamic_state
from ..util import now_ms
from ..storage.checkpoints import (
    CorruptCheckpointError,
    kafka_uuid_str,
    random_kafka_uuid,
    read_offset_checkpoint,
    write_offset_checkpoint,
)
from . import zkdata as zd
from .features import ZkFeatures
from .assignment import AssignmentError, assign_replicas
from .controller import Controller, NotController, write_topic
from ..security.sasl import SaslFailure
from .fetcher import BrokerClient, FetcherManager
from .replica import LEADER, ReplicaManager, Replication
from .acls import ZkAcls
from .quotas import ZkQuotas
from .log_dir_failures import LogDirFailures
from .scram_credentials import ZkCredentials
from .throttle import ReplicationQuota
from .view import ClusterView
from .zk import ZkClient, first_leaf, is_zk_error
from .zkdata import BrokerInfo, LeaderIsr, TopicAssignment

if TYPE_CHECKING:
    from ..server.state import BrokerState
    from ..storage.log import AppendResult

log = logging.getLogger("pykbroker.cluster")

HW_CHECKPOINT = "replication-offset-checkpoint"
CONFIG_CHANGE_EXPIRATION_MS = 15 * 60 * 1000
METADATA_PROPAGATION_CAP_MS = 10_000  # admin answers wait at most this for every broker's metadata
RESYNC_FIRST_DELAY_S = 0.2  # a failed session event or watch is handled again after this, doubling to 5 s


async def cluster_replicas(config: BrokerConfig) -> tuple[ReplicasFactory, str]:
    """Connect to ZooKeeper (before the logs open): the factory of this
    broker's :class:`ClusterNode` and the cluster id."""
    zk = ZkClient(config["zookeeper.connect"], int(config["zookeeper.session.timeout.ms"]),
                  config["zookeeper.connection.timeout.ms"])
    await zk.start()
    for path in zd.PERSISTENT_PATHS:
        await zk.ensure_path(path)
    wanted = config["cluster.id"]
    try:
        data, _ = await zk.get(zd.CLUSTER_ID)
        cid = zd.decode_cluster_id(data)
    except NoNodeError:
        cid = wanted or kafka_uuid_str(random_kafka_uuid())
        try:
            await zk.create(zd.CLUSTER_ID, zd.encode_cluster_id(cid), makepath=True)
        except NodeExistsError:
            data, _ = await zk.get(zd.CLUSTER_ID)
            cid = zd.decode_cluster_id(data)
    if not cid:
        raise RuntimeError("/cluster/id holds no cluster id")
    if wanted and wanted != cid:
        raise RuntimeError(f"cluster.id {wanted} does not match the cluster id {cid} in ZooKeeper")
    log.info("connected to ZooKeeper %s%s (session 0x%x), cluster id %s", zk.hosts, zk.chroot,
             zk.session_id or 0, cid)

    def build(state: "BrokerState") -> ClusterNode:
        return ClusterNode(state, zk, cid)

    return build, cid


def _has_leaders_md(t: dict[str, Any], count: int) -> bool:
    """A Metadata response topic with ``count`` partitions, each with a leader."""
    parts = t["partitions"] or []
    return t["error_code"] == errors.NONE and len(parts) >= count and all(p["leader_id"] >= 0 for p in parts)


def _not_controller() -> errors.KafkaError:
    return errors.KafkaError(errors.NOT_CONTROLLER, None)


class ClusterNode:
    """One broker of a ZooKeeper cluster; implements ``server.replicas.Replicas``."""

    def __init__(self, state: "BrokerState", zk: ZkClient, cluster_id: str) -> None:
        self.state = state
        self.config = state.config
        self.node_id = state.node_id
        self.zk = zk
        inter = state.security.inter_broker
        self.view = ClusterView(self.zk, self, (zd.DEFAULT_BROKER_ENTITY, str(self.node_id)),
                                inter_broker_listener=inter.listener if inter is not None else None)
        # SCRAM credentials live in /config/users (every broker watches them)
        creds = ZkCredentials(state.security.scram, zk)
        creds.attach(self.view)
        state.security.credential_sink = creds
        cfg = self.config
        window = (lambda: int(cfg["replication.quota.window.num"]),
                  lambda: int(cfg["replication.quota.window.size.seconds"]))
        self.leader_quota = ReplicationQuota(lambda: int(cfg["leader.replication.throttled.rate"]), *window)
        self.follower_quota = ReplicationQuota(lambda: int(cfg["follower.replication.throttled.rate"]), *window)
        # ACLs live in /kafka-acl and /kafka-acl-extended (every broker watches the change notifications)
        acls = ZkAcls(state.security.acls, zk)
        acls.attach(self.view)
        state.security.acl_sink = acls
        # client quotas live in /config/users, /config/clients (re-read on every /config/changes notification)
        quota_zk = ZkQuotas(state.security.quota_store, zk)
        quota_zk.attach(self.view)
        state.security.quota_sink = quota_zk
        # finalized features live in /feature (every broker watches it)
        self.features = ZkFeatures(zk, state.features_changed)
        self.features.attach(self.view)
        # failed log directories: this broker's offline replicas, every broker's (watched)
        self.log_dir_failures = LogDirFailures(self)
        self.log_dir_failures.attach(self.view)
        self.replicas = ReplicaManager(self)
        self.fetchers = FetcherManager(self)
        self.controller = Controller(self)
        self.cluster_id = cluster_id
        self.registered = False
        self.broker_epoch = -1
        self.session_id: int | None = zk.session_id
        self.fenced = True
        self.stopping = False
        self._resync_pending = False
        self._in_new_session = False
        self._resync_delay = RESYNC_FIRST_DELAY_S
        self.nursery: trio.Nursery | None = None
        self.leadership_listeners: list[LeadershipListener] = []
        self._hw_checkpoints: dict[tuple[str, int], int] = {}
        self._creating: set[str] = set()
        self._clients: dict[int, BrokerClient] = {}  # call(): connections to other brokers by node id
        self._client_locks: dict[int, trio.Lock] = {}
        self._shut = False
        self._state_reads = trio.CapacityLimiter(32)

    # --- the cluster picture (server.replicas.Replicas) ----------------------------------------
    def is_controller(self) -> bool:
        return self.controller.active

    def controller_id(self) -> int:
        return self.view.controller_id

    def can_lead(self) -> bool:
        """Appends and acknowledgements are allowed: registered, not fenced, session lease held."""
        return self.registered and not self.fenced and self.zk.lease_ok()

    def may_lead(self, st: LeaderIsr) -> bool:
        """A state naming us as leader is ours: written after our registration
        (a connection blip keeps the role; can_lead() fences the writes)."""
        return self.registered and st.mzxid > self.broker_epoch

    def leader_of(self, topic: str, partition: int) -> int | None:
        lid = self.view.leader_of(topic, partition)
        return None if lid < 0 else lid

    @staticmethod
    def _endpoint(b: BrokerInfo) -> BrokerEndpoint:
        return BrokerEndpoint(b.node_id, b.host, b.port, b.rack,
                              tuple((e.listener, e.host, e.port) for e in b.endpoints))

    def broker(self, node_id: int) -> BrokerEndpoint | None:
        b = self.view.brokers.get(node_id)
        return None if b is None else self._endpoint(b)

    def live_brokers(self) -> list[BrokerEndpoint]:
        return [self._endpoint(self.view.brokers[b]) for b in sorted(self.view.brokers)]

    def partition_info(self, ts: TopicState, p: PartitionState) -> PartitionInfo:
        """Kafka's ZkMetadataCache: the leader is -1 when it is not live."""
        ta = self.view.topics.get(ts.name)
        replicas = list(ta.partitions.get(p.index, ())) if ta is not None else []
        st = self.view.states.get((ts.name, p.index))
        failed = self.log_dir_failures.offline_brokers(ts.name, p.index)  # their log directory failed
        offline = [r for r in replicas if r not in self.view.brokers or r in failed]
        if st is None:
            return PartitionInfo(-1, -1, replicas, [], offline)
        leader = st.leader if st.leader in self.view.brokers else -1
        return PartitionInfo(leader, st.leader_epoch, replicas, list(st.isr), offline)

    def replication_factor(self, topic: str) -> int:
        ta = self.view.topics.get(topic)
        return len(ta.partitions[0]) if ta is not None and ta.partitions else 1

    def add_leadership_listener(self, fn: LeadershipListener) -> None:
        self.leadership_listeners.append(fn)

    # --- leadership and the append path (cluster/replica.py) ------------------------------------
    def is_leader(self, p: PartitionState) -> bool:
        return self.replicas.is_leader(p)

    def check_leader(self, p: PartitionState) -> None:
        self.replicas.check_leader(p)

    async def append(self, p: PartitionState, data: bytearray, headers: list[BatchHeader], *, acks: int,
                     now: int, timeout_ms: int | None) -> "AppendResult":
        return await self.replicas.append(p, data, headers, acks=acks, now=now, timeout_ms=timeout_ms)

    async def wait_replicated(self, p: PartitionState, end_offset: int, timeout_ms: int | None) -> None:
        await self.replicas.wait_replicated(p, end_offset, timeout_ms)

    async def wait_low_watermark(self, p: PartitionState, required: int, timeout_ms: int) -> int:
        return await self.replicas.wait_low_watermark(p, required, timeout_ms)

    async def replica_fetch(self, req: dict[str, Any], version: int, replica_id: int) -> dict[str, Any] | None:
        return await self.replicas.handle_replica_fetch(req, version, replica_id)

    async def connect_to(self, b: BrokerInfo, client_id: str, timeout: float) -> BrokerClient:
        """A connection to broker ``b``'s inter-broker listener, secured as that listener is."""
        return await BrokerClient.connect(b.host, b.port, client_id, timeout, self.state.security.inter_broker)

    async def call(self, node_id: int, api_key: int, version: int, body: dict[str, Any]) -> dict[str, Any] | None:
        """One request to another broker over a kept connection; None if it
        failed. Requests to one broker take turns (the connection carries one
        request at a time); requests to different brokers run in parallel."""
        lock = self._client_locks.setdefault(node_id, trio.Lock())
        async with lock:
            try:
                client = self._clients.get(node_id)
                if client is None:
                    b = self.view.brokers.get(node_id)
                    if b is None:
                        return None
                    client = self._clients[node_id] = await self.connect_to(
                        b, f"txn-coordinator-{self.node_id}", 10.0)
                with trio.fail_after(30):
                    return await client.call(api_key, version, body)
            except Exception as e:  # connection refused/closed, timeout, undecodable answer
                log.warning("request %d to broker %d failed: %s", api_key, node_id, e)
                await self._drop_client(node_id)
                return None

    async def _drop_client(self, node_id: int) -> None:
        c = self._clients.pop(node_id, None)
        if c is not None:
            try:
                await c.aclose()
            except Exception:
                pass

    # --- lifecycle ---------------------------------------------------------------------------------
    def recover(self) -> None:
        """Logs are open (worker thread): restore high watermarks from the checkpoint."""
        logs = self.state.logs
        assert logs is not None
        for d in logs.log_dirs:
            try:
                self._hw_checkpoints.update(read_offset_checkpoint(Path(d) / HW_CHECKPOINT))
            except CorruptCheckpointError as e:
                log.warning("ignoring corrupt %s: %s", HW_CHECKPOINT, e)
        for plog in logs.all_logs():
            hw = self._hw_checkpoints.get((plog.topic, plog.partition), 0)
            plog.high_watermark = max(plog.log_start_offset, min(hw, plog.log_end_offset))

    async def start(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        await nursery.start(self.fetchers.run)
        nursery.start_soon(self._event_loop)
        nursery.start_soon(self._lease_loop)
        nursery.start_soon(self._guard, self.replicas.isr_expiration_loop)
        nursery.start_soon(self._guard, self._hw_checkpoint_loop)
        self.log_dir_failures.start(nursery)
        while True:  # the first session's work; the event loop leaves it alone (_in_new_session)
            try:
                await self._new_session()
                return
            except Exception as e:
                if not is_zk_error(e):
                    raise
                log.info("starting in ZooKeeper failed: %r; again", first_leaf(e))
                await trio.sleep(RESYNC_FIRST_DELAY_S)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(self._guard, fn, *args)

    async def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception as e:
            if not is_zk_error(e):
                log.exception("%s failed", getattr(fn, "__name__", fn))
            else:  # one line, even for a group of them (concurrent reads when the connection dropped)
                log.info("%s: ZooKeeper error %r", getattr(fn, "__name__", fn), first_leaf(e))

    async def _new_session(self) -> None:
        """A (new) session: read everything, register, run for controller."""
        self._in_new_session = True
        try:
            await self._new_session_work()
        finally:
            self._in_new_session = False

    async def _new_session_work(self) -> None:
        self.session_id = self.zk.current_session()
        self.registered = False
        self.zk.lease_session = None
        self.fenced = True
        await self.view.full_sync()
        self._prune_local_topics()
        await self._register()
        await self.view.refresh_brokers()
        self.fenced = False
        self._reapply_all()
        self.log_dir_failures.session_renewed()
        await self.controller.try_elect()

    def _registered_endpoints(self) -> list[zd.RegisteredEndpoint]:
        """Every listener with its advertised address, in ``listeners`` order."""
        st = self.state
        out = []
        for lst in self.config.listeners:
            host, port = st.advertised_by_listener.get(lst.name, (st.advertised_host, st.advertised_port))
            out.append(zd.RegisteredEndpoint(lst.name, lst.protocol, host, port))
        return out

    async def _register(self) -> None:
        path = zd.broker_path(self.node_id)
        data = zd.encode_broker(self.node_id, self._registered_endpoints(), self.state.rack)
        waited = False
        while True:
            try:
                await self.zk.create(path, data, ephemeral=True)
            except NodeExistsError:
                try:
                    _, stat = await self.zk.get(path)
                except NoNodeError:
                    continue
                current = self.zk.current_session()
                if stat.ephemeralOwner in (self.session_id, current) and stat.ephemeralOwner:
                    # ours: created earlier in this session, or in the session kazoo holds now (the
                    # connection dropped and came back while this ran; a session id read then was
                    # None, and waiting for "an earlier session" to expire would wait on our own)
                    self.session_id = stat.ephemeralOwner
                    self.broker_epoch = stat.czxid
                    break
                if not waited:
                    log.warning("%s is held by an earlier session of broker %d (0x%x); waiting for it to "
                                "expire", path, self.node_id, stat.ephemeralOwner)
                    waited = True
                await trio.sleep(0.05)
                continue
            _, stat = await self.zk.get(path)
            self.broker_epoch = stat.czxid
            break
        self.registered = True
        self.zk.lease_session = self.session_id
        await self.zk.exists(zd.BROKER_IDS)  # take the session lease
        log.info("registered as broker %d at %s:%d (broker epoch %d)", self.node_id, self.state.advertised_host,
                 self.state.advertised_port, self.broker_epoch)

    async def _event_loop(self) -> None:
        async for kind, ev in self.zk.events:
            if self.stopping and kind == "state":
                continue
            try:
                if kind == "watch":
                    if _is_state_path(ev.path):
                        # partition states are read concurrently: after a failover the
                        # controller rewrites every state a broker led (with Kafka's 50 +
                        # 50 internal partitions, a hundred or more), and one round trip
                        # after the other delayed the user partitions by many seconds.
                        # Reads of one path may finish in any order: apply_state keeps
                        # the newest znode version.
                        self.spawn(self._state_watch, ev)
                    else:
                        await self.view.on_watch(ev)
                elif ev == KazooState.SUSPENDED:
                    self._fence("connection to ZooKeeper lost")
                elif ev == KazooState.LOST:
                    self._fence("ZooKeeper session expired")
                    self.registered = False
                    self.zk.lease_session = None
                    self.controller.resign("session expired")
                    self._reapply_all()  # drops every leadership (not registered)
                elif ev == KazooState.CONNECTED:
                    sid = self.zk.current_session()
                    if sid is None:
                        # handled late: the connection is gone again (the next CONNECTED follows)
                        log.info("ZooKeeper connected and lost again before the event was handled")
                    elif sid != self.session_id:
                        log.warning("new ZooKeeper session 0x%x: registering again", sid or 0)
                        await self._new_session()
                    elif self._in_new_session:
                        # start()'s first session work is under way (kazoo's first CONNECTED):
                        # a second one at the same time would sync and register twice
                        pass
                    elif not self.registered:
                        # the same session, but its registration did not finish (the connection
                        # dropped during it): the session's work again, or the broker stays
                        # unregistered while it lives
                        log.warning("reconnected to ZooKeeper session 0x%x before registering in it: "
                                    "registering again", sid)
                        await self._new_session()
                    else:
                        await self.view.full_sync()
                        self.fenced = False
                        self._reapply_all()
                        if self.view.controller_id < 0:
                            await self.controller.try_elect()
                        log.info("reconnected to ZooKeeper (same session)")
                    self._resync_delay = RESYNC_FIRST_DELAY_S
            except Exception as e:
                if not is_zk_error(e):
                    raise
                log.info("handling %s %r failed: %r (resyncing)", kind, ev, first_leaf(e))
                self._resync_soon()

    def _resync_soon(self) -> None:
        """A session event or a watch whose handling failed (a ZooKeeper error
        part way through its reads) is not left to the next reconnection,
        which may never come when the connection stayed up: the connected
        state's work (a full sync, with its watches set again, registration
        if it did not finish, unfencing) runs again, with back-off, while it
        keeps failing. ``can_lead`` still needs the session lease, so a
        resync that races a disconnection cannot acknowledge anything."""
        if self._resync_pending:
            return
        self._resync_pending = True
        self.spawn(self._resync_later)

    async def _resync_later(self) -> None:
        try:
            await trio.sleep(self._resync_delay)
        finally:
            self._resync_pending = False
        self._resync_delay = min(5.0, self._resync_delay * 2)
        if self.stopping or self.zk.closed or not self.zk.connected():
            return  # a reconnection (CONNECTED) does the work
        self.zk.post_state(KazooState.CONNECTED)

    async def _state_watch(self, ev: Any) -> None:
        async with self._state_reads:
            await self.view.on_watch(ev)

    def _fence(self, why: str) -> None:
        if not self.fenced:
            log.warning("broker %d fenced: %s", self.node_id, why)
        self.fenced = True
        for ts in list(self.state.topics.values()):
            for p in ts.partitions:
                if p.repl is not None:
                    p.repl.signal()

    async def _lease_loop(self) -> None:
        """Keep proving the session alive (see zk.py: the lease)."""
        period = max(0.02, self.zk.session_timeout / 5)
        while True:
            await trio.sleep(period)
            if self.zk.closed:
                return
            with trio.move_on_after(self.zk.session_timeout):
                try:
                    await self.zk.exists(zd.BROKER_IDS)
                except KazooException:
                    pass

    # --- the view's listener --------------------------------------------------------------------------
    def on_brokers_changed(self) -> None:
        self.controller.notify("brokers")

    def on_controller_changed(self, controller_id: int) -> None:
        if controller_id < 0:
            self.spawn(self.controller.try_elect)
        elif controller_id != self.node_id and self.controller.active:
            self.controller.resign(f"/controller names broker {controller_id}")

    def on_refresh_failed(self) -> None:
        self._resync_soon()

    def on_shutdowns_changed(self) -> None:
        self.controller.notify("shutdowns")

    def on_config_changed(self, name: str, configs: dict[str, str]) -> None:
        ts = self.state.topics.get(name)
        if ts is None:
            return
        try:
            ts.log_config = self.state.topic_config(configs)
        except Exception as e:  # a config we cannot apply
            log.warning("topic %s: cannot apply configs %s: %s", name, configs, e)
            return
        ts.configs = dict(configs)
        logs = self.state.logs
        if logs is not None and name in logs.topics:
            try:
                logs.alter_topic_configs(name, configs)
            except Exception as e:
                log.warning("topic %s: cannot apply configs to the logs: %s", name, e)
        if ts.log_config.unclean_leader_election_enable:
            # Kafka's controller runs the elections again when a topic's unclean
            # election is switched on: a leaderless partition may have a replica now
            self.controller.notify("states")

    def on_topic_changed(self, name: str, old: TopicAssignment | None, new: TopicAssignment | None) -> None:
        st = self.state
        ts = st.topics.get(name)
        if new is None or (ts is not None and ts.topic_id != new.topic_id):
            if ts is not None:
                self._drop_topic(name)
            if new is None:
                self.controller.notify("topics")
                return
            ts = None
        configs = self.view.configs.get(name, {})
        logs = st.logs
        if ts is None and logs is not None:
            meta = logs.topics.get(name)
            if meta is not None and meta.topic_id != new.topic_id:
                # the topic was deleted and re-created while we were away
                log.info("deleting local logs of %s: re-created with another id", name)
                logs.delete_topic(name)
        if ts is None:
            try:
                log_config = st.topic_config(configs)
            except Exception:
                log_config = st.default_log_config()
            ts = st.topics.register(TopicState(name, new.topic_id, [], dict(configs), log_config,
                                               internal=name.startswith("__")))
        count = max(new.partitions) + 1 if new.partitions else 0
        for i in range(len(ts.partitions), count):
            # no log until this broker replicates it (_open_log below); PartitionState.log's type leaves out None
            p = PartitionState(name, i, None)  # type: ignore[arg-type]
            p.repl = Replication()
            ts.partitions.append(p)
        for i, p in enumerate(ts.partitions):
            replicas = tuple(new.partitions.get(i, ()))
            if self.node_id in replicas and p.log is None:
                self._open_log(ts, p, count, configs)
            self.replicas.apply(p, self.view.states.get((name, i)), replicas)
            if self.node_id not in replicas and i in new.partitions:
                self._remove_replica(ts, p)
        self.controller.notify("topics")

    def _remove_replica(self, ts: TopicState, p: PartitionState) -> None:
        """This broker is no longer a replica of ``p`` (a reassignment moved
        it away, perhaps while we were down): stop it and delete its log
        (Kafka's StopReplica with delete). The role is already gone."""
        logs = self.state.logs
        if logs is None or logs.get(ts.name, p.index) is None:
            return
        self.fetchers.remove(p)
        p.log = None  # type: ignore[assignment]
        p.notify()
        try:
            logs.delete_partition(ts.name, p.index)
        except Exception:
            log.exception("deleting the log of %s-%d failed", ts.name, p.index)
            return
        self._hw_checkpoints.pop((ts.name, p.index), None)
        log.info("%s-%d: replica removed; log deleted", ts.name, p.index)

    def _open_log(self, ts: TopicState, p: PartitionState, count: int, configs: dict[str, str]) -> None:
        logs = self.state.logs
        assert logs is not None
        try:
            plog = logs.ensure_partition(ts.name, ts.topic_id, count, configs, p.index)
        except Exception:
            log.exception("cannot open the log of %s-%d", ts.name, p.index)
            return
        p.log = plog
        p.leader_epoch = max(p.leader_epoch, plog.leader_epoch, 0)

    def _drop_topic(self, name: str) -> None:
        st = self.state
        ts = st.topics.unregister(name)  # wakes the fetches waiting on it
        if ts is None:
            return
        for p in ts.partitions:
            self.replicas.apply(p, None, ())
            self.fetchers.remove(p)
            p.notify()
        logs = st.logs
        if logs is not None and name in logs.topics:
            try:
                logs.delete_topic(name)
            except Exception:
                log.exception("deleting the logs of %s failed", name)
        log.info("topic %s deleted", name)

    def _prune_local_topics(self) -> None:
        """Local logs of topics ZooKeeper no longer has (or has under another id) go."""
        logs = self.state.logs
        if logs is None:
            return
        for name, meta in list(logs.topics.items()):
            ta = self.view.topics.get(name)
            if ta is None or ta.topic_id != meta.topic_id:
                log.info("deleting local logs of %s: %s", name,
                         "not in ZooKeeper" if ta is None else "re-created with another id")
                ts = self.state.topics.get(name)
                if ts is not None and ts.topic_id == meta.topic_id:
                    self._drop_topic(name)
                else:
                    logs.delete_topic(name)

    def on_state_changed(self, topic: str, partition: int, st: LeaderIsr | None) -> None:
        ts = self.state.topics.get(topic)
        if ts is None or not 0 <= partition < len(ts.partitions):
            return
        ta = self.view.topics.get(topic)
        replicas = tuple(ta.partitions.get(partition, ())) if ta is not None else ()
        self.replicas.apply(ts.partitions[partition], st, replicas)
        if ta is not None and ta.reassigning(partition):
            self.controller.notify("reassignments")  # the ISR may have caught up with the target

    def _reapply_all(self) -> None:
        for name, ts in list(self.state.topics.items()):
            ta = self.view.topics.get(name)
            for p in ts.partitions:
                replicas = tuple(ta.partitions.get(p.index, ())) if ta is not None else ()
                self.replicas.apply(p, self.view.states.get((name, p.index)), replicas)

    def leadership_changed(self, p: "PartitionState", is_leader: bool) -> None:
        for fn in list(self.leadership_listeners):
            try:
                fn(p.topic, p.index, is_leader, p.leader_epoch)
            except Exception:
                log.exception("leadership listener failed")

    # --- high watermark checkpoint ------------------------------------------------------------------------
    def _hw_snapshot(self) -> dict[Path, dict[tuple[str, int], int]]:
        logs = self.state.logs
        out: dict[Path, dict[tuple[str, int], int]] = {}
        if logs is None:
            return out
        for d in logs.log_dirs:
            if d not in logs.offline_dirs:  # nothing more is written to a failed directory
                out[Path(d)] = {}
        for plog in logs.all_logs():
            log_dir = logs.log_dir_of(plog.topic, plog.partition)
            if log_dir is not None and log_dir not in logs.offline_dirs:
                out.setdefault(Path(log_dir), {})[(plog.topic, plog.partition)] = plog.high_watermark
        return out

    @staticmethod
    def _write_hw(snapshot: dict[Path, dict[tuple[str, int], int]]) -> None:
        for d, offsets in snapshot.items():
            if d.is_dir():
                write_offset_checkpoint(d / HW_CHECKPOINT, offsets)

    async def _hw_checkpoint_loop(self) -> None:
        interval = int(self.config["replica.high.watermark.checkpoint.interval.ms"]) / 1000
        while True:
            await trio.sleep(interval)
            snap = self._hw_snapshot()
            try:
                await trio.to_thread.run_sync(self._write_hw, snap)
            except OSError:
                log.exception("writing %s failed", HW_CHECKPOINT)

    def checkpoint_hw_now(self) -> None:
        """At shutdown, before the logs close (worker thread or not)."""
        try:
            self._write_hw(self._hw_snapshot())
        except OSError:
            log.exception("writing %s failed", HW_CHECKPOINT)

    # --- controlled shutdown -------------------------------------------------------------------------------
    def _led_replicated(self) -> list[tuple[str, int]]:
        out = []
        for (t, p), st in self.view.states.items():
            ta = self.view.topics.get(t)
            if st.leader == self.node_id and ta is not None and len(ta.partitions.get(p, ())) > 1:
                out.append((t, p))
        return out

    def _movable(self, topic: str, partition: int) -> bool:
        """Another live, in-sync replica could lead this partition."""
        st = self.view.states.get((topic, partition))
        return st is not None and any(r != self.node_id and r in self.view.brokers and
                                      r not in self.view.shutting_down for r in st.isr)

    async def controlled_shutdown(self) -> None:
        """Move leaderships away before stopping (Kafka's controlled shutdown)."""
        if not self.registered or not self.config["controlled.shutdown.enable"] or self.zk.closed:
            return
        retries = int(self.config["controlled.shutdown.max.retries"])
        backoff = int(self.config["controlled.shutdown.retry.backoff.ms"]) / 1000
        wait = max(2.0, 2 * self.zk.session_timeout)
        t0 = trio.current_time()
        path = zd.shutdown_path(self.node_id)
        for attempt in range(1, retries + 1):
            try:
                try:
                    await self.zk.create(path, zd.encode_shutdown(self.broker_epoch), ephemeral=True)
                except NodeExistsError:
                    await self.zk.set(path, zd.encode_shutdown(self.broker_epoch))
                deadline = trio.current_time() + wait
                remaining: list[tuple[str, int]] | None = None
                while trio.current_time() < deadline:
                    data, _ = await self.zk.get(path)
                    _, remaining = zd.decode_shutdown(data)
                    if remaining is not None and not remaining and not self._led_replicated():
                        log.info("controlled shutdown done in %.0f ms", (trio.current_time() - t0) * 1000)
                        return
                    if remaining and not any(self._movable(t, p) for t, p in remaining):
                        log.warning("controlled shutdown: no other in-sync replica can take over %d "
                                    "partition(s); shutting down anyway", len(remaining))
                        return
                    await trio.sleep(0.02)
                log.warning("controlled shutdown attempt %d: still leading %s", attempt,
                            remaining if remaining is not None else self._led_replicated())
                await self.zk.delete(path)
            except KazooException as e:
                log.warning("controlled shutdown attempt %d failed: %r", attempt, e)
            if attempt < retries:
                await trio.sleep(backoff)
        log.warning("controlled shutdown did not complete; shutting down anyway")

    async def shutdown(self) -> None:
        """Controlled shutdown, stop replicating, close the session (once)."""
        if self._shut:
            return
        self._shut = True
        with trio.CancelScope(shield=True):
            retries = int(self.config["controlled.shutdown.max.retries"])
            backoff = int(self.config["controlled.shutdown.retry.backoff.ms"]) / 1000
            budget = retries * (max(2.0, 2 * self.zk.session_timeout) + backoff) + 1.0
            with trio.move_on_after(budget) as scope:
                try:
                    await self.controlled_shutdown()
                except Exception:
                    log.exception("controlled shutdown failed")
            if scope.cancelled_caught:
                log.warning("controlled shutdown gave up after %.0f s (ZooKeeper unreachable?)", budget)
            self.stopping = True
            self.fetchers.stop_all()
            self.controller.resign("shutting down")
            self.fenced = True
            await trio.to_thread.run_sync(self.checkpoint_hw_now)
            with trio.move_on_after(5):
                await self.zk.close()
            for node_id in list(self._clients):
                await self._drop_client(node_id)

    # --- requests from handlers -----------------------------------------------------------------------------
    async def wait_for(self, pred: Callable[[], bool], timeout_ms: int) -> bool:
        with trio.move_on_after(max(timeout_ms, 0) / 1000):
            while not pred():
                await self.view.wait_changed()
            return True
        return pred()

    def _has_leaders(self, name: str, count: int | None = None) -> bool:
        ta = self.view.topics.get(name)
        if ta is None or (count is not None and len(ta.partitions) < count):
            return False
        return all(self.view.leader_of(name, p) >= 0 for p in ta.partitions)

    async def create_topic(self, name: str, partitions: int, replication_factor: int, configs: dict[str, str],
                           assignment: dict[int, list[int]] | None, timeout_ms: int) -> bytes:
        """The controller writes the assignment to ZooKeeper (replicas spread,
        rack-aware) and elects the leaders; waits up to ``timeout_ms`` for
        every partition to have a leader."""
        try:
            topic_id: bytes = await self.controller.request(
                "create_topic", name=name, partitions=partitions, replication_factor=replication_factor,
                configs=configs, assignment=assignment)
        except AssignmentError as e:
            raise errors.KafkaError(e.code, str(e)) from e
        except NodeExistsError as e:
            raise errors.KafkaError(errors.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.") from e
        except NotController as e:
            raise _not_controller() from e
        await self.wait_for(lambda: self._has_leaders(name), timeout_ms)
        await self._wait_metadata_everywhere(name, lambda t: _has_leaders_md(t, partitions), timeout_ms)
        return topic_id

    async def create_partitions(self, name: str, total: int, assignment: list[list[int]] | None,
                                timeout_ms: int) -> None:
        try:
            await self.controller.request("create_partitions", name=name, total=total, assignment=assignment)
        except AssignmentError as e:
            raise errors.KafkaError(e.code, str(e)) from e
        except NotController as e:
            raise _not_controller() from e
        await self.wait_for(lambda: self._has_leaders(name, total), timeout_ms)
        await self._wait_metadata_everywhere(name, lambda t: _has_leaders_md(t, total), timeout_ms)

    async def delete_topic(self, name: str, timeout_ms: int) -> None:
        """The controller removes the topic from ZooKeeper; every broker
        deletes its replicas when its watch fires."""
        try:
            await self.controller.request("delete_topic", name=name)
        except NotController as e:
            raise _not_controller() from e
        await self.wait_for(lambda: name not in self.state.topics, timeout_ms)
        await self._wait_metadata_everywhere(
            name, lambda t: t["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION, timeout_ms)

    async def _wait_metadata_everywhere(self, name: str, shows: Callable[[dict[str, Any]], bool],
                                        timeout_ms: int) -> None:
        """Kafka's controller answers CreateTopics, CreatePartitions and
        DeleteTopics once its UpdateMetadata requests went out to every
        broker, so a client asking any broker next sees the change. Brokers
        here learn it from their own ZooKeeper watches: the controller asks
        every other live broker's Metadata for the topic until it ``shows``
        the change (at most ``timeout_ms``, capped; a broker that cannot be
        asked is skipped)."""
        body: dict[str, Any] = {"topics": [{"name": name, "topic_id": bytes(16)}],
                                "allow_auto_topic_creation": False,
                                "include_topic_authorized_operations": False}
        t0 = trio.current_time()
        with trio.move_on_after(min(max(timeout_ms, 0), METADATA_PROPAGATION_CAP_MS) / 1000):
            for b in [b for bid, b in sorted(self.view.brokers.items()) if bid != self.node_id]:
                client: BrokerClient | None = None
                try:
                    client = await self.connect_to(b, f"controller-{self.node_id}", 5.0)
                    while not shows((await client.call(3, 12, body))["topics"][0]):
                        await trio.sleep(0.02)
                except (OSError, trio.BrokenResourceError, trio.TooSlowError, ValueError, SaslFailure) as e:
                    log.info("asking broker %d for the metadata of %s failed: %r", b.node_id, name, e)
                finally:
                    if client is not None:
                        await client.aclose()
            log.debug("metadata of %s current on every broker after %.0f ms", name,
                      (trio.current_time() - t0) * 1000)
            return
        log.warning("metadata of %s not current on every broker after %.0f ms", name,
                    (trio.current_time() - t0) * 1000)

    async def elect_leaders(self, partitions: list[tuple[str, int]], election_type: int,
                            timeout_ms: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        try:
            results: dict[tuple[str, int], tuple[int, str | None]] = await self.controller.request(
                "elect", partitions=partitions, election_type=election_type)
        except NotController as e:
            raise _not_controller() from e
        expected = {tp: self.view.states[tp].leader for tp, (code, _) in results.items()
                    if code == errors.NONE and tp in self.view.states}
        await self.wait_for(lambda: all(self.view.leader_of(t, p) == lid for (t, p), lid in expected.items()),
                            timeout_ms)
        return results

    async def alter_reassignments(self, wanted: dict[tuple[str, int], list[int] | None],
                                  timeout_ms: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        """Start (or cancel: None) partition moves; the controller answers
        once the new replica sets are in ZooKeeper, not when data has moved."""
        try:
            results: dict[tuple[str, int], tuple[int, str | None]] = await self.controller.request(
                "reassign", wanted=wanted)
        except NotController as e:
            raise _not_controller() from e
        except KazooException as e:
            raise errors.KafkaError(errors.UNKNOWN_SERVER_ERROR, f"ZooKeeper: {e!r}") from e
        return results

    def list_reassignments(self, partitions: list[tuple[str, int]] | None
                           ) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        try:
            return self.controller.list_reassignments(partitions)
        except NotController as e:
            raise _not_controller() from e

    # --- the config store: ZooKeeper (Kafka's AdminZkClient.changeConfigs) --------------------------
    async def _write_config(self, path: str, entity_path: str, configs: dict[str, str]) -> None:
        """The entity's config znode, then a change notification (as Kafka
        writes them); every broker watches the config znodes it applies."""
        data = zd.encode_config(configs)
        try:
            try:
                await self.zk.set(path, data)
            except NoNodeError:
                try:
                    await self.zk.create(path, data, makepath=True)
                except NodeExistsError:
                    await self.zk.set(path, data)
            await self.zk.create(f"{zd.CONFIG_CHANGES}/{zd.CONFIG_CHANGE_PREFIX}",
                                 zd.encode_config_change(entity_path), sequence=True, makepath=True)
        except (KazooException, RuntimeError) as e:
            raise errors.KafkaError(errors.UNKNOWN_SERVER_ERROR,
                                    f"storing configs in ZooKeeper failed: {e!r}") from e
        self.spawn(self._purge_config_changes)

    async def _purge_config_changes(self) -> None:
        """Kafka's ZkNodeChangeNotificationListener purges notifications older
        than 15 minutes."""
        cutoff_ms = now_ms() - CONFIG_CHANGE_EXPIRATION_MS
        for child in await self.zk.get_children(zd.CONFIG_CHANGES):
            path = f"{zd.CONFIG_CHANGES}/{child}"
            try:
                stat = await self.zk.exists(path)
                if stat is not None and stat.ctime < cutoff_ms:
                    await self.zk.delete(path)
            except NoNodeError:
                pass

    async def alter_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        """Replace a topic's config overrides cluster-wide (/config/topics/<t>);
        every broker applies them when its watch fires, this one before
        answering."""
        await self._write_config(zd.config_path(name), f"topics/{name}", configs)
        try:
            await self.view.refresh_config(name)
        except KazooException as e:
            log.warning("re-reading the configs of %s failed: %r", name, e)
        self.on_config_changed(name, configs)  # the value just written, even if the read raced a later write

    def dynamic_configs(self, resource_name: str) -> dict[str, str]:
        entity = zd.broker_config_entity(resource_name)
        if entity in self.view.broker_configs:
            return dict(self.view.broker_configs[entity])
        logs = self.state.logs
        return dict(logs.dynamic_configs.get(resource_name, {})) if logs is not None else {}

    async def set_dynamic_configs(self, resource_name: str, configs: dict[str, str]) -> None:
        """/config/brokers/<default> or /config/brokers/<id>; the brokers they
        concern apply them when their watch fires, this one before answering."""
        entity = zd.broker_config_entity(resource_name)
        await self._write_config(zd.broker_config_path(entity), f"brokers/{entity}", configs)
        if entity in self.view.broker_entities:
            try:
                await self.view.refresh_broker_config(entity)
            except KazooException as e:
                log.warning("re-reading the configs of broker %s failed: %r", entity, e)

    # --- finalized features: /feature (cluster/features.py) -------------------------------------------
    def finalized_features(self) -> dict[str, int] | None:
        levels = self.features.levels
        return None if levels is None else dict(levels)

    def finalized_features_epoch(self) -> int:
        # Kafka's ZooKeeper mode: the /feature znode's version, -1 while there is none
        return self.features.znode_version

    async def update_features(self, levels: dict[str, int]) -> None:
        await self.features.save(levels)

    def on_broker_config_changed(self, entity: str, configs: dict[str, str]) -> None:
        """Dynamic broker configs from ZooKeeper: kept in the log directory's
        metadata as well (applied at the next start before ZooKeeper is
        read) and layered over the static config."""
        st = self.state
        name = "" if entity == zd.DEFAULT_BROKER_ENTITY else entity
        logs = st.logs
        if logs is None:
            return
        if dict(logs.dynamic_configs.get(name, {})) != configs:
            try:
                logs.set_dynamic_configs(name, configs)
            except OSError as e:
                log.warning("keeping dynamic configs of broker %s locally failed: %s", entity, e)
                if configs:  # applied anyway
                    logs.dynamic_configs[name] = dict(configs)
                else:
                    logs.dynamic_configs.pop(name, None)
        apply_dynamic_state(st)
        log.info("dynamic configs of broker %s: %s", entity, configs)
        if st.config["unclean.leader.election.enable"]:
            self.controller.notify("states")  # as for a topic's (on_config_changed)

    def auto_create(self, name: str, partitions: int, replication_factor: int,
                    configs: dict[str, str] | None) -> TopicState | None:
        """Auto-creation (Metadata, Produce; internal topics): any broker
        writes the assignment to ZooKeeper, the controller initializes the
        partitions, the topic appears here once the watch brings it: None
        meanwhile (and when there are too few brokers for the replication
        factor)."""
        brokers = {b.node_id: b.rack for b in self.live_brokers()}
        try:
            assignment = assign_replicas(brokers, partitions, replication_factor)
        except AssignmentError:
            return None
        if name in self._creating:
            return None
        self._creating.add(name)

        async def create() -> None:
            try:
                await write_topic(self.zk, name, random_kafka_uuid(), assignment, dict(configs or {}))
                log.info("auto-created topic %s (%d partitions, replication factor %d)", name, partitions,
                         replication_factor)
            except NodeExistsError:
                pass
            finally:
                self._creating.discard(name)

        self.spawn(create)
        return None


def _is_state_path(path: str | None) -> bool:
    return path is not None and path.startswith(zd.TOPICS + "/") and path.endswith("/state")


__all__ = ["ClusterNode", "NotController", "LEADER", "cluster_replicas"]
