"""Where a coordinator lives: the leader of one partition of its internal topic.

The group coordinator (``__consumer_offsets``) and the transaction
coordinator (``__transaction_state``) share this placement logic, as Kafka's
do: a key (group id, transactional id) maps to partition
``abs(javaHashCode(key)) % partitions``; the broker leading that partition
coordinates the key. Subclasses set ``TOPIC``, ``state``, ``loading`` and
implement ``topic_partitions()`` / ``topic_configs()`` / ``key_partition()``.

Writes are fenced by leader epoch (``FENCED_WRITES``): the coordinator
remembers the leader epoch it leads each partition at (``epochs``, from
its leadership listener: the load's epoch, moved on when it keeps leading
at a later one), a key's lock holder decides at the epoch seen
when it took the lock, and its appends carry that epoch
(:meth:`append_state`): ``BrokerState.append`` refuses them once the
partition's epoch moved on (the state they were decided on may be stale:
another broker may have led the partition in between), and the coordinator
unloads the partition, reloading it when its replica still leads. The
client gets NOT_COORDINATOR and looks the coordinator up again.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any
from collections.abc import AsyncIterator

import trio

from ..protocol import errors
from .timers import Timer, Timers

log = logging.getLogger("pykbroker.coordinator")

#: the write epoch of a key whose partition is loading (or not loaded): nothing is written
NOT_LOADED = -2


class InternalTopicCoordinator:
    TOPIC = ""
    #: availability(create=False) when the topic does not exist yet
    ABSENT_TOPIC_ERROR = errors.COORDINATOR_NOT_AVAILABLE
    #: names the coordinator in the log line of a timer that failed
    TIMER_KIND = "coordinator"
    state: Any
    loading: set[int]
    #: partition -> bumped on every leadership change (a load started before is stale)
    _load_gen: dict[int, int]
    _locks: dict[str, trio.Lock]
    timers: Timers  # keyed deadlines; each fires under its key's lock (_fire)
    #: appends carry the epoch the partition was loaded at (subclasses call _init_epochs)
    FENCED_WRITES = False
    #: partition -> the leader epoch this coordinator loaded it at (it leads it)
    epochs: dict[int, int]
    #: key -> the write epoch its lock holder's decisions were made at
    _held_epochs: dict[str, int]

    def _init_epochs(self) -> None:
        """At construction, after ``loading`` is known: the partitions led
        from the start are loaded at their current epoch."""
        self.epochs = {}
        self._held_epochs = {}
        ts = self.topic()
        if ts is not None:
            for i in self.loading:
                self.epochs[i] = ts.partitions[i].leader_epoch

    def _track_leadership(self, partition: int, is_leader: bool, leader_epoch: int) -> bool:
        """The leadership listener's first step, the same for every
        coordinator; True when the caller must start a load.

        - Still leading, at a later epoch (the controller changed the ISR,
          or re-elected this broker, which led throughout): the loaded state
          stays, as in Kafka (its ReplicaManager skips the become-leader
          change of a partition it already leads, and the coordinator keeps
          what it owns). The partition's epoch moves on, and so do the
          decisions of lock holders made at the old one: nobody else led
          the partition in between (this broker could only lead again
          cleanly from the ISR, which it rejoins only as a follower, a
          change the listener hears as a loss). A load in flight finishes.
        - Newly leading: remember the epoch, mark the partition loading,
          make a load in flight stale (``_load_gen``: it leaves the partition
          to the load the caller starts now).
        - Not leading: forget the epoch, make a load in flight stale.
        """
        old = self.epochs.get(partition)
        if is_leader and old is not None:
            if leader_epoch > old:
                self.epochs[partition] = leader_epoch
                for key, held in list(self._held_epochs.items()):
                    if held == old and self.partition_for(key) == partition:
                        self._held_epochs[key] = leader_epoch
            return False
        self._load_gen[partition] = self._load_gen.get(partition, 0) + 1
        if is_leader:
            self.epochs[partition] = leader_epoch
            self.loading.add(partition)
        else:
            self.epochs.pop(partition, None)
            self.loading.discard(partition)
        return is_leader

    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        raise NotImplementedError

    def write_epoch(self, key: str) -> int:
        """The leader epoch ``key``'s writes carry now: the one its lock holder
        saw when taking the lock, else the epoch its partition was loaded at;
        NOT_LOADED while the partition loads; -1 (no check) when unknown
        (not led here: the append's leader check refuses it)."""
        held = self._held_epochs.get(key)
        if held is not None:
            return held
        ts = self.topic()
        if ts is None:
            return -1
        part = self.partition_for(key)
        if part in self.loading:
            return NOT_LOADED
        return self.epochs.get(part, -1)

    async def append_state(self, key: str, p: Any, data: bytearray, headers: Any, *, now: int,
                           origin: str | None = None, acks: int = -1) -> None:
        """Append ``key``'s records (acks=-1 unless told) to its partition ``p``,
        fenced by :meth:`write_epoch`. Raises KafkaError (NOT_LEADER_OR_FOLLOWER
        when fenced; the partition is then unloaded) and InvalidRecords."""
        epoch = self.write_epoch(key) if self.FENCED_WRITES else -1
        if epoch == NOT_LOADED:
            raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                    f"{p.topic}-{p.index} is not loaded: the write was decided before")
        kw: dict[str, Any] = {"origin": origin} if origin is not None else {}
        try:
            await self.state.append(p, data, headers, acks=acks, now=now, leader_epoch=epoch, **kw)
        except errors.KafkaError as e:
            if e.code == errors.NOT_LEADER_OR_FOLLOWER and epoch >= 0 and p.leader_epoch != epoch:
                self._fenced(p.index, epoch)
            raise

    def _fenced(self, partition: int, epoch: int) -> None:
        """A write decided at ``epoch`` was refused: the partition's epoch moved
        on. Unless the leadership listener has already moved the loaded state
        on, unload the partition, and load it again when this broker still
        leads it (at its current epoch)."""
        if self.epochs.get(partition) != epoch:
            return  # already unloaded or reloaded at a later epoch
        ts = self.topic()
        current = ts.partitions[partition].leader_epoch if ts is not None else -1
        log.warning("%s-%d: a write decided at leader epoch %d was fenced (now %d): unloading", self.TOPIC,
                    partition, epoch, current)
        self._on_leadership(self.TOPIC, partition, False, epoch)
        if self._leads(partition):
            self._on_leadership(self.TOPIC, partition, True, current)

    def _key_exists(self, key: str) -> bool:  # does the coordinator still hold state for key?
        raise NotImplementedError

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        """Hold the key's lock (one writer per group / transactional id); the
        locks of keys that no longer exist are dropped when nobody holds or
        waits for them."""
        lk = self._locks.get(key)
        if lk is None:
            lk = self._locks[key] = trio.Lock()
        try:
            async with lk:
                if self.FENCED_WRITES:
                    self._held_epochs[key] = self.write_epoch(key)
                try:
                    yield
                finally:
                    if self.FENCED_WRITES:
                        self._held_epochs.pop(key, None)
        finally:
            if not self._key_exists(key) and not lk.locked() and not lk.statistics().tasks_waiting \
                    and self._locks.get(key) is lk:
                del self._locks[key]

    @asynccontextmanager
    async def _serving(self, key: str) -> AsyncIterator[int]:
        """The key's lock for a request that found the coordinator available:
        yields NONE, or NOT_COORDINATOR when the key's partition changed hands
        (unloaded, maybe loaded again) while the request waited for the lock.
        The state it would act on is gone: Kafka's group is Dead by then and
        the client looks the coordinator up again, keeping its member id
        (the group it knew was not found: UNKNOWN_MEMBER_ID, which made it
        rejoin as a new member)."""
        part = self.partition_for(key)
        gen = self._load_gen.get(part, 0)
        async with self._lock(key):
            yield errors.NONE if self._load_gen.get(part, 0) == gen else errors.NOT_COORDINATOR

    async def _fire(self, t: Timer) -> None:
        """A due timer (``timers.run`` calls this): its work under the key's lock,
        unless it was cancelled or rescheduled meanwhile."""
        async with self._lock(t.group_id):
            if not self.timers.consume(t):
                return
            try:
                await t.fn()
            except Exception:
                log.exception("%s timer %r failed", self.TIMER_KIND, t.key)

    def topic_partitions(self) -> int:  # partitions to create the topic with
        raise NotImplementedError

    def topic_configs(self) -> dict[str, str]:  # configs to create the topic with
        raise NotImplementedError

    @staticmethod
    def key_partition(key: str, partitions: int) -> int:
        raise NotImplementedError

    def topic(self) -> Any:
        return self.state.topics.get(self.TOPIC)

    def ensure_topic(self) -> Any:
        """The internal topic, created if missing; None while it is being
        created through ZooKeeper (cluster mode)."""
        ts = self.topic()
        if ts is None:
            ts = self.state.ensure_internal_topic(self.TOPIC, self.topic_partitions(), self.topic_configs())
            if ts is not None:
                log.info("created %s with %d partitions", self.TOPIC, len(ts.partitions))
                if self.FENCED_WRITES:  # created here and led at once (a lone broker): loaded, nothing to read
                    for i, p in enumerate(ts.partitions):
                        if i not in self.epochs and i not in self.loading and self._leads(i):
                            self.epochs[i] = p.leader_epoch
        return ts

    def partition_for(self, key: str) -> int:
        ts = self.topic()
        return self.key_partition(key, len(ts.partitions) if ts is not None else self.topic_partitions())

    def _leads(self, partition: int) -> bool:
        """This broker coordinates the keys of ``partition``: the cluster
        picture names it the leader AND its replica of the partition acts as
        leader. The picture alone is not enough: a broker restarted after a
        kill sees ZooKeeper still naming it (a leadership of its earlier
        incarnation, which it must not use) before the controller moves the
        partition; its coordinator then had nothing loaded and answered as if
        the groups / transactional ids did not exist."""
        st = self.state
        leader: int | None = st.leader_of(self.TOPIC, partition)
        node_id: int = st.node_id
        if leader != node_id:
            return False
        ts = self.topic()
        if ts is None or not 0 <= partition < len(ts.partitions):
            return False
        is_leader: bool = st.replicas.is_leader(ts.partitions[partition])
        return is_leader

    def availability(self, key: str, create: bool = True) -> int:
        """NONE, or the error every operation on ``key`` gets now:
        COORDINATOR_NOT_AVAILABLE (no internal topic yet), NOT_COORDINATOR
        (another broker leads the key's partition), COORDINATOR_LOAD_IN_PROGRESS."""
        if self.topic() is None:
            if not create:
                return self.ABSENT_TOPIC_ERROR
            try:
                if self.ensure_topic() is None:
                    return errors.COORDINATOR_NOT_AVAILABLE
            except Exception as e:  # reported as Kafka does, broker keeps serving
                log.error("cannot create %s: %s", self.TOPIC, e)
                return errors.COORDINATOR_NOT_AVAILABLE
        part = self.partition_for(key)
        if not self._leads(part):
            return errors.NOT_COORDINATOR
        if part in self.loading:
            return errors.COORDINATOR_LOAD_IN_PROGRESS
        return errors.NONE

    def find(self, key: str) -> tuple[int, int | None]:
        """FindCoordinator: (error, node id of the coordinator). Loading never
        delays this answer."""
        try:
            ts = self.ensure_topic()
        except Exception as e:
            log.error("cannot create %s: %s", self.TOPIC, e)
            return errors.COORDINATOR_NOT_AVAILABLE, None
        if ts is None:
            return errors.COORDINATOR_NOT_AVAILABLE, None
        leader = self.state.leader_of(self.TOPIC, self.partition_for(key))
        if leader is None or leader < 0 or self.state.broker_endpoint(leader) is None:
            return errors.COORDINATOR_NOT_AVAILABLE, None
        return errors.NONE, leader
