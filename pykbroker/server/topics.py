"""The broker's one topic registry: every topic it knows, by name and by id.

A lone broker registers the topics of its log directories at start and
those it creates; a broker of a ZooKeeper cluster registers the topics its
watches bring (``cluster/node.py``). Either way topics enter and leave only
through :class:`TopicRegistry`'s methods, which keep the name and id maps
and the log manager (``storage/manager.py``) in step.

CreateTopics and CreatePartitions (:meth:`TopicRegistry.create_off_loop`,
:meth:`TopicRegistry.add_partitions_off_loop`) create the partitions' files
in worker threads, :data:`CREATE_CHUNK` partitions per call, so that the
other clients keep being answered during a creation of thousands of
partitions (about 1.5 ms of file work each); the log manager's metadata
changes (reserving the name, registering the logs, writing the topic
metadata) stay on the event loop. Until it completes the topic (or its new
partitions) is unknown to every request; a second creation of the name is
refused (TOPIC_ALREADY_EXISTS) and a second growth of the topic waits for
the first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..storage.log_config import LogConfig
from ..storage.api import LogStore
from ..storage.manager import PartitionCreation, TopicMeta, UnknownTopicError
from ..txn import producers as txn_producers

if TYPE_CHECKING:
    from ..storage.api import PartitionStore
    from ..storage.producer_state import ProducerStateManager

log = logging.getLogger("pykbroker.state")

#: partitions whose directories and logs one worker-thread call creates
#: (about 1.5 ms each on an idle machine): the event loop runs between calls
CREATE_CHUNK = 50


@attrs.define(eq=False)
class PartitionState:
    """One partition as this broker sees it: its local log (None in cluster
    mode when this broker does not replicate it), leader epoch, fetch waiters."""

    topic: str
    index: int
    log: "PartitionStore"  # None in cluster mode for a partition this broker does not replicate
    leader_epoch: int = 0
    waiters: set[trio.Event] = attrs.field(factory=set)
    # cluster mode: this broker's role, ISR, followers (cluster.replica.Replication)
    repl: Any = None
    # idempotence and transactions (loaded with the logs or on first use by pykbroker.txn.producers)
    producers: "ProducerStateManager | None" = None

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
        ps = self.producers if self.producers is not None else txn_producers.loaded(self)
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


class TopicRegistry(Mapping[str, TopicState]):
    """Topics by name (the mapping itself) and by id (:attr:`by_id`).

    ``create``/``delete``/``add_partitions`` change the local logs too (a
    lone broker); ``register``/``unregister`` only change the registry (the
    ZooKeeper cluster, which opens and deletes logs per replica itself)."""

    def __init__(self, logs: LogStore) -> None:
        self.logs = logs
        self._by_name: dict[str, TopicState] = {}
        self.by_id: dict[bytes, TopicState] = {}
        # topics whose partitions are being added (add_partitions_off_loop): set when done
        self._growing: dict[str, trio.Event] = {}

    # -- Mapping ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> TopicState:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def partition(self, topic: str, index: int) -> PartitionState | None:
        ts = self._by_name.get(topic)
        if ts is None or not 0 <= index < len(ts.partitions):
            return None
        return ts.partitions[index]

    # -- registration only --------------------------------------------------------------------
    def register(self, ts: TopicState) -> TopicState:
        self._by_name[ts.name] = ts
        self.by_id[ts.topic_id] = ts
        return ts

    def unregister(self, name: str) -> TopicState | None:
        """Remove ``name`` (its logs stay); fetches waiting on it are woken."""
        ts = self._by_name.pop(name, None)
        if ts is None:
            return None
        if self.by_id.get(ts.topic_id) is ts:
            del self.by_id[ts.topic_id]
        for p in ts.partitions:
            p.notify()
        return ts

    def adopt(self, meta: TopicMeta, log_config: LogConfig) -> TopicState:
        """Register a topic whose partitions all have a local log."""
        parts = []
        for i in range(meta.partitions):
            plog = self.logs.get(meta.name, i)
            assert plog is not None, (meta.name, i)
            parts.append(PartitionState(meta.name, i, plog, leader_epoch=max(plog.leader_epoch, 0)))
        return self.register(TopicState(meta.name, meta.topic_id, parts, dict(meta.configs), log_config,
                                        internal=meta.name.startswith("__")))

    # -- with the local logs (a lone broker) ------------------------------------------------------
    def create(self, name: str, partitions: int, configs: dict[str, str], log_config: LogConfig) -> TopicState:
        meta = self.logs.create_topic(name, partitions, configs, topic_id=uuid.uuid4().bytes)
        log.info("created topic %s with %d partitions", name, partitions)
        return self.adopt(meta, log_config)

    def delete(self, name: str) -> None:
        if self.unregister(name) is None:
            raise KeyError(name)
        self.logs.delete_topic(name)
        log.info("deleted topic %s", name)

    def add_partitions(self, name: str, total: int) -> None:
        ts = self._by_name[name]
        self.logs.create_partitions(name, total)
        self._append_partitions(ts, total)

    def _append_partitions(self, ts: TopicState, total: int) -> None:
        for i in range(len(ts.partitions), total):
            plog = self.logs.get(ts.name, i)
            assert plog is not None
            ts.partitions.append(PartitionState(ts.name, i, plog))

    # -- the same, the file work in worker threads (CreateTopics, CreatePartitions) -----------------
    async def create_off_loop(self, name: str, partitions: int, configs: dict[str, str],
                              log_config: LogConfig) -> TopicState:
        """As :meth:`create`, the event loop serving other requests meanwhile.
        Raises the log manager's TopicError / StorageFailureError."""
        c = self.logs.begin_create_topic(name, partitions, configs, topic_id=uuid.uuid4().bytes)
        meta = await self._run_creation(c)
        log.info("created topic %s with %d partitions", name, partitions)
        return self.adopt(meta, log_config)

    async def add_partitions_off_loop(self, name: str, total: int) -> None:
        """As :meth:`add_partitions`, the event loop serving other requests
        meanwhile; a growth of the same topic under way is waited for first
        (then ``total`` is checked against the new count)."""
        while (busy := self._growing.get(name)) is not None:
            await busy.wait()
        done = self._growing[name] = trio.Event()
        try:
            if name not in self._by_name:
                raise UnknownTopicError(f"This server does not host this topic: {name}")
            await self._run_creation(self.logs.begin_create_partitions(name, total))
            # the topic cannot have been deleted meanwhile: completing checks it
            self._append_partitions(self._by_name[name], total)
        finally:
            del self._growing[name]
            done.set()

    async def _run_creation(self, c: PartitionCreation) -> TopicMeta:
        logs = self.logs
        try:
            for lo in range(c.first, c.total, CREATE_CHUNK):
                await trio.to_thread.run_sync(logs.build_partitions, c, lo, min(lo + CREATE_CHUNK, c.total))
            return logs.complete_creation(c)  # on the loop: registers the logs, writes the metadata
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(logs.discard_creation, c)
            raise
        finally:
            logs.end_creation(c)
