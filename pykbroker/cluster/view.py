"""The broker's picture of the cluster, kept current from ZooKeeper by watches.

Every broker (not only the controller) watches the znodes that matter, as
the brief of ``docs/cluster.md`` explains: live brokers (children of
/brokers/ids), the controller, topics (children of /brokers/topics, each
topic's assignment), every partition's state znode, topic configs, the
dynamic broker configs that apply to it (/config/brokers/<default> and
/config/brokers/<its id>) and pending controlled shutdowns. Config znodes
are watched themselves, so a change is seen whether or not its writer also
wrote Kafka's /config/changes notification. A fired watch names a path;
the path is read again (setting the next watch) and the change is handed to the listener
(:class:`~pykbroker.cluster.node.ClusterNode`), which turns partition states
into leader/follower roles and tells the controller.

Reads happen on the trio thread through :class:`~pykbroker.cluster.zk.ZkClient`;
watch events come in order on one channel and are applied by one task, so
the view changes one event at a time. After a lost connection kazoo drops
all watches; :meth:`ClusterView.full_sync` reads everything again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import trio

from . import zkdata as zd
from .zk import is_zk_error
from .zkdata import BrokerInfo, LeaderIsr, TopicAssignment

if TYPE_CHECKING:
    from .zk import ZkClient

log = logging.getLogger("pykbroker.cluster.view")


class ViewListener(Protocol):
    def on_brokers_changed(self) -> None: ...
    def on_controller_changed(self, controller_id: int) -> None: ...
    def on_topic_changed(self, name: str, old: TopicAssignment | None, new: TopicAssignment | None) -> None: ...
    def on_config_changed(self, name: str, configs: dict[str, str]) -> None: ...
    def on_broker_config_changed(self, entity: str, configs: dict[str, str]) -> None: ...
    def on_state_changed(self, topic: str, partition: int, state: LeaderIsr | None) -> None: ...
    def on_shutdowns_changed(self) -> None: ...
    def on_refresh_failed(self) -> None:
        """A watched read failed (its watch may not be set again): resync."""


class ClusterView:
    def __init__(self, zk: "ZkClient", listener: ViewListener,
                 broker_entities: tuple[str, ...] = (zd.DEFAULT_BROKER_ENTITY,),
                 inter_broker_listener: str | None = None) -> None:
        self.zk = zk
        self.inter_broker_listener = inter_broker_listener  # whose endpoint BrokerInfo.host/port name
        self.listener = listener
        self.broker_entities = broker_entities  # the /config/brokers/<entity> znodes watched
        self.broker_configs: dict[str, dict[str, str]] = {}
        self.brokers: dict[int, BrokerInfo] = {}
        self.controller_id = -1
        self.topics: dict[str, TopicAssignment] = {}
        self.states: dict[tuple[str, int], LeaderIsr] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.shutting_down: dict[int, int] = {}  # broker id -> broker epoch of its request
        self.changed = trio.Event()  # set and replaced on every change (waiters: CreateTopics, ElectLeaders)
        # other watchers of a subtree (e.g. SCRAM users, pykbroker/cluster/scram_credentials.py):
        # (prefix, on_path(path), resync()) called for fired watches under prefix and on full syncs
        self.path_hooks: list[tuple[str, Any, Any]] = []

    def add_path_hook(self, prefix: str, on_path: Any, resync: Any) -> None:
        self.path_hooks.append((prefix, on_path, resync))

    # --- queries ------------------------------------------------------------------------------
    def live(self, node_id: int) -> bool:
        return node_id in self.brokers

    def leader_of(self, topic: str, partition: int) -> int:
        s = self.states.get((topic, partition))
        if s is None or s.leader not in self.brokers:
            return -1
        return s.leader

    def _signal(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_changed(self) -> None:
        await self.changed.wait()

    # --- syncing ----------------------------------------------------------------------------------
    async def full_sync(self) -> None:
        await self.refresh_brokers()
        await self.refresh_controller()
        await self.refresh_shutdowns()
        for entity in self.broker_entities:
            await self.refresh_broker_config(entity)
        await self.refresh_topics(full=True)
        for _prefix, _on_path, resync in self.path_hooks:
            await resync()

    async def on_watch(self, event: Any) -> None:
        path = event.path
        if not path:
            return  # connection reset: a full sync follows the reconnection
        try:
            await self._dispatch(path)
        except Exception as e:  # the watch may be gone with the failed read: a full sync sets it again
            if not is_zk_error(e):
                raise
            log.debug("refreshing %s failed: %r", path, e)
            self.listener.on_refresh_failed()

    async def _dispatch(self, path: str) -> None:
        if path == zd.BROKER_IDS or path.startswith(zd.BROKER_IDS + "/"):
            await self.refresh_brokers()
        elif path == zd.CONTROLLER:
            await self.refresh_controller()
        elif path == zd.SHUTDOWNS:
            await self.refresh_shutdowns()
        elif path == zd.TOPICS:
            await self.refresh_topics()
        elif path.startswith(zd.TOPICS + "/"):
            parts = path[len(zd.TOPICS) + 1:].split("/")
            if len(parts) == 1:
                await self.refresh_topic(parts[0])
            elif len(parts) == 4 and parts[1] == "partitions" and parts[3] == "state" and parts[2].isdigit():
                await self.refresh_state(parts[0], int(parts[2]))
        elif path.startswith(zd.CONFIG_TOPICS + "/"):
            await self.refresh_config(path[len(zd.CONFIG_TOPICS) + 1:])
        elif path.startswith(zd.CONFIG_BROKERS + "/"):
            entity = path[len(zd.CONFIG_BROKERS) + 1:]
            if entity in self.broker_entities:
                await self.refresh_broker_config(entity)
        else:
            for prefix, on_path, _resync in self.path_hooks:
                if path == prefix or path.startswith(prefix + "/"):
                    await on_path(path)

    async def refresh_brokers(self) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            ids = await self.zk.get_children(zd.BROKER_IDS, watch=True)
        except NoNodeError:
            ids = []
        brokers: dict[int, BrokerInfo] = {}
        for s in ids:
            if not s.isdigit():
                continue
            bid = int(s)
            try:
                data, stat = await self.zk.get(zd.broker_path(bid))
            except NoNodeError:
                continue
            info = zd.decode_broker(bid, data, stat.czxid, self.inter_broker_listener)
            if info is not None:
                brokers[bid] = info
        if brokers != self.brokers:
            self.brokers = brokers
            self._signal()
            self.listener.on_brokers_changed()

    async def refresh_controller(self) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            data, _ = await self.zk.get(zd.CONTROLLER, watch=True)
            cid = zd.decode_controller(data)
        except NoNodeError:
            cid = -1
            if await self.zk.exists(zd.CONTROLLER, watch=True) is not None:
                data, _ = await self.zk.get(zd.CONTROLLER, watch=True)
                cid = zd.decode_controller(data)
        if cid != self.controller_id:
            self.controller_id = cid
            self._signal()
        # always tell the listener: a deleted /controller means "run for election"
        self.listener.on_controller_changed(cid)

    async def refresh_shutdowns(self) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            ids = await self.zk.get_children(zd.SHUTDOWNS, watch=True)
        except NoNodeError:
            ids = []
        out: dict[int, int] = {}
        for s in ids:
            if not s.isdigit():
                continue
            try:
                data, _ = await self.zk.get(zd.shutdown_path(int(s)))
            except NoNodeError:
                continue
            epoch, _ = zd.decode_shutdown(data)
            out[int(s)] = epoch
        if out != self.shutting_down:
            self.shutting_down = out
            self._signal()
            self.listener.on_shutdowns_changed()

    async def refresh_topics(self, full: bool = False) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            names = set(await self.zk.get_children(zd.TOPICS, watch=True))
        except NoNodeError:
            names = set()
        for gone in [t for t in self.topics if t not in names]:
            self._remove_topic(gone)
        await _gather([lambda name=name: self.refresh_topic(name, full=full)
                       for name in sorted(names) if full or name not in self.topics])

    def _remove_topic(self, name: str) -> None:
        old = self.topics.pop(name, None)
        self.configs.pop(name, None)
        if old is None:
            return
        for p in old.partitions:
            self.states.pop((name, p), None)
        self._signal()
        self.listener.on_topic_changed(name, old, None)

    async def refresh_topic(self, name: str, full: bool = False) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            data, stat = await self.zk.get(zd.topic_path(name), watch=True)
        except NoNodeError:
            self._remove_topic(name)
            return
        new = zd.decode_topic(name, data, stat.version)
        if new is None:
            return  # being written (Kafka writes the data with the create; tolerate junk)
        old = self.topics.get(name)
        if old is not None and old.topic_id != new.topic_id:
            self._remove_topic(name)  # deleted and re-created between two reads
            old = None
        if old is None or full:
            await self.refresh_config(name)
        if old == new and not full:
            return
        self.topics[name] = new
        if old != new:
            self._signal()
            self.listener.on_topic_changed(name, old, new)
        # read the states concurrently: a full sync (a new controller, a new
        # session) reads every partition, one ZooKeeper round trip each
        await _gather([lambda p=p: self.refresh_state(name, p) for p in sorted(new.partitions)
                       if full or old is None or p not in old.partitions])

    def apply_topic(self, new: TopicAssignment) -> None:
        """Take a topic znode just written by us (the controller), before its
        watch brings it back: requests answered from the view in between
        (ListPartitionReassignments right after a move completed) see the
        write. Ignored unless newer than what we have, for the same topic."""
        old = self.topics.get(new.name)
        if old is None or old.topic_id != new.topic_id or new.version <= old.version:
            return
        self.topics[new.name] = new
        self._signal()
        self.listener.on_topic_changed(new.name, old, new)

    async def refresh_state(self, topic: str, partition: int) -> None:
        from kazoo.exceptions import NoNodeError

        ta = self.topics.get(topic)
        if ta is None or partition not in ta.partitions:
            return  # not (or no longer) a partition we know: let the watch lapse
        path = zd.state_path(topic, partition)
        try:
            data, stat = await self.zk.get(path, watch=True)
        except NoNodeError:
            # not initialized by the controller yet: watch for its creation
            stat = await self.zk.exists(path, watch=True)
            if stat is None:
                return
            data, stat = await self.zk.get(path, watch=True)
        st = zd.decode_state(data, stat.version, stat.mzxid)
        if st is not None:
            self.apply_state(topic, partition, st)

    def apply_state(self, topic: str, partition: int, st: LeaderIsr) -> None:
        """Take a partition state read from ZooKeeper or just written by us
        (ignored if older than what we have)."""
        ta = self.topics.get(topic)
        if ta is None or partition not in ta.partitions:
            return
        key = (topic, partition)
        cur = self.states.get(key)
        if cur is not None and (st.version < cur.version or st == cur):
            return
        if cur is not None and st.version == cur.version and st.mzxid < 0:
            return
        self.states[key] = st
        self._signal()
        self.listener.on_state_changed(topic, partition, st)

    async def refresh_config(self, name: str) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            data, _ = await self.zk.get(zd.config_path(name), watch=True)
            configs = zd.decode_config(data)
        except NoNodeError:
            configs = {}
            if await self.zk.exists(zd.config_path(name), watch=True) is not None:
                data, _ = await self.zk.get(zd.config_path(name), watch=True)
                configs = zd.decode_config(data)
        if self.configs.get(name) != configs:
            self.configs[name] = configs
            if name in self.topics:
                self.listener.on_config_changed(name, configs)

    async def refresh_broker_config(self, entity: str) -> None:
        """/config/brokers/<entity> (watched, also while it does not exist)."""
        from kazoo.exceptions import NoNodeError

        path = zd.broker_config_path(entity)
        try:
            data, _ = await self.zk.get(path, watch=True)
            configs = zd.decode_config(data)
        except NoNodeError:
            configs = {}
            if await self.zk.exists(path, watch=True) is not None:
                data, _ = await self.zk.get(path, watch=True)
                configs = zd.decode_config(data)
        if self.broker_configs.get(entity) != configs:
            self.broker_configs[entity] = configs
            self._signal()
            self.listener.on_broker_config_changed(entity, configs)


_READS = 32  # ZooKeeper reads in flight at once during a full sync


async def _gather(fns: list[Any]) -> None:
    """Run the coroutine functions concurrently (at most ``_READS`` at once);
    the first exception is raised as it is (not as an ExceptionGroup) once
    all have finished, so callers can catch KazooException."""
    if not fns:
        return
    if len(fns) == 1:
        await fns[0]()
        return
    limiter = trio.CapacityLimiter(_READS)
    failed: list[BaseException] = []

    async def one(fn: Any) -> None:
        async with limiter:
            if failed:
                return
            try:
                await fn()
            except Exception as e:
                failed.append(e)

    async with trio.open_nursery() as n:
        for fn in fns:
            n.start_soon(one, fn)
    if failed:
        raise failed[0]
