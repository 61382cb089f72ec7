"""Replication on one broker: partition roles, the leader's view of its
followers, the high watermark, ISR changes, acks=all.

Follows Kafka's ``Partition``/``ReplicaManager`` (ZooKeeper era):

- **Roles** come from the partition state znode: leader if it names this
  broker *and* was written after this broker registered (its mzxid is newer
  than our broker epoch, the czxid of /brokers/ids/<id>; a leadership
  granted to an earlier incarnation of this broker is not ours), follower if
  it names another broker, none otherwise. A new leader epoch is recorded in
  the leader-epoch cache at the log end offset at once (Kafka's
  ``maybeAssignEpochStartOffset``), followers' states are reset.
- **Follower state** (per follower on the leader): its log end offset (the
  fetch offset of its last fetch), the last time it was caught up (Kafka's
  ``Replica.updateFetchState`` rule: caught up if it fetched from the
  leader's log end offset, or from at least the leader's end offset at its
  previous fetch).
- **High watermark** = the lowest log end offset over the (maximal) ISR,
  also waiting for followers that are caught up but not yet back in the ISR;
  it only moves forward. Consumers read below it; acks=all waits for it.
- **ISR**: a follower whose log end offset reaches the high watermark and
  the start of the current leader epoch is added; a follower not caught up
  for ``replica.lag.time.max.ms`` is removed (checked every half of that).
  The leader writes the new ISR to the state znode with a version check
  (Kafka's ZooKeeper-era leader ISR update); a lost race means the state
  changed: it is read again and the role re-derived.
- **acks=all** fails with NOT_ENOUGH_REPLICAS before the append if the ISR
  is smaller than min(min.insync.replicas, replicas), waits until the high
  watermark passes the batch, then answers NOT_ENOUGH_REPLICAS_AFTER_APPEND
  if the ISR shrank below it meanwhile, NOT_LEADER_OR_FOLLOWER if leadership
  was lost (even briefly), REQUEST_TIMED_OUT after the request's timeout.
- **Throttles** (``throttle.py``): a replica fetch for a throttled
  partition from a follower outside the ISR gets no records while the
  leader quota is exceeded. A replica being reassigned away is not taken
  back into the ISR.
- **Fencing**: nothing is appended or acknowledged unless the broker holds
  a ZooKeeper session lease (see ``zk.py``) and is not fenced (connection to
  ZooKeeper lost, not re-synced yet).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio

from ..protocol.codec import Message
from ..protocol import errors
from . import zkdata as zd
from .throttle import is_throttled
from .zkdata import LeaderIsr

if TYPE_CHECKING:
    from ..protocol.records import BatchHeader
    from ..server.state import PartitionState
    from ..storage.log import AppendResult
    from .node import ClusterNode

log = logging.getLogger("pykbroker.cluster.replica")

LEADER, FOLLOWER, NONE = "leader", "follower", "none"


def mono_ms() -> int:
    return int(time.monotonic() * 1000)


class FollowerState:
    __slots__ = ("leo", "log_start", "last_fetch_ms", "last_caught_up_ms", "last_fetch_leader_leo")

    def __init__(self, leo: int = -1, last_caught_up_ms: int = 0) -> None:
        self.leo = leo
        self.log_start = -1
        self.last_fetch_ms = 0
        self.last_caught_up_ms = last_caught_up_ms
        self.last_fetch_leader_leo = -1

    def caught_up(self, leader_leo: int, now: int, max_lag_ms: int) -> bool:
        return self.leo == leader_leo or now - self.last_caught_up_ms <= max_lag_ms


class Replication:
    """Replication state of one partition on this broker (``PartitionState.repl``)."""

    def __init__(self) -> None:
        self.role = NONE
        self.leader_id = -1
        self.replicas: tuple[int, ...] = ()
        self.isr: tuple[int, ...] = ()
        self.zk_version = -1
        self.controller_epoch = 0
        self.followers: dict[int, FollowerState] = {}
        self.epoch_start_offset = -1
        self.leader_gen = 0  # bumped whenever this broker stops being leader
        self.pending_isr: tuple[int, ...] | None = None  # ISR write in flight
        self.changed = trio.Event()

    @property
    def maximal_isr(self) -> set[int]:
        s = set(self.isr)
        if self.pending_isr is not None:
            s |= set(self.pending_isr)
        return s

    def signal(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class ReplicaManager:
    def __init__(self, node: "ClusterNode") -> None:
        self.node = node
        self.state = node.state
        self.node_id = node.node_id
        self.lag_ms = int(node.config["replica.lag.time.max.ms"])

    # --- roles ------------------------------------------------------------------------------------
    def apply(self, p: "PartitionState", st: LeaderIsr | None, replicas: tuple[int, ...]) -> None:
        """Derive this broker's role for ``p`` from its state znode."""
        r: Replication = p.repl
        r.replicas = replicas
        me = self.node_id
        if st is not None:
            r.leader_id = st.leader
            r.isr = st.isr
            r.zk_version = st.version
            r.controller_epoch = st.controller_epoch
        hosted = me in replicas and p.log is not None
        if not hosted or st is None:
            self._set_none(p, st.leader_epoch if st is not None else p.leader_epoch)
            return
        if st.leader == me:
            if self.node.may_lead(st):
                self._become_leader(p, st)
            else:
                # a leadership of an earlier incarnation (or while fenced): not ours
                self._set_none(p, st.leader_epoch)
        elif st.leader >= 0:
            self._become_follower(p, st)
        else:
            self._set_none(p, st.leader_epoch)

    def _lose_leadership(self, p: "PartitionState") -> None:
        r: Replication = p.repl
        if r.role == LEADER:
            r.leader_gen += 1
            r.pending_isr = None
            self.node.leadership_changed(p, False)

    def _set_none(self, p: "PartitionState", epoch: int) -> None:
        r: Replication = p.repl
        self._lose_leadership(p)
        if r.role == FOLLOWER:
            self.node.fetchers.remove(p)
        r.role = NONE
        if epoch > p.leader_epoch:
            p.leader_epoch = epoch
        r.signal()
        p.notify()

    def _become_leader(self, p: "PartitionState", st: LeaderIsr) -> None:
        r: Replication = p.repl
        assert p.log is not None
        now = mono_ms()
        new_leader = r.role != LEADER
        new_epoch = new_leader or st.leader_epoch > p.leader_epoch
        if r.role == FOLLOWER:
            self.node.fetchers.remove(p)
        if new_epoch:
            leo = p.log.log_end_offset
            p.log.assign_epoch(st.leader_epoch, leo)
            r.epoch_start_offset = leo
            followers: dict[int, FollowerState] = {}
            for f in r.replicas:
                if f == self.node_id:
                    continue
                in_isr = f in st.isr
                old = r.followers.get(f)
                fs = FollowerState(last_caught_up_ms=now if in_isr else 0)
                if old is not None and not new_leader:
                    fs.leo = old.leo
                    fs.log_start = old.log_start
                    fs.last_fetch_leader_leo = leo
                    fs.last_fetch_ms = now if in_isr else 0
                followers[f] = fs
            r.followers = followers
            p.leader_epoch = st.leader_epoch
            log.info("%s-%d: leader at epoch %d from offset %d, ISR %s, high watermark %d",
                     p.topic, p.index, st.leader_epoch, leo, list(st.isr), p.log.high_watermark)
        else:
            for f in r.replicas:
                if f != self.node_id and f not in r.followers:
                    r.followers[f] = FollowerState()
            for f in list(r.followers):
                if f not in r.replicas:
                    del r.followers[f]
        r.role = LEADER
        if new_leader:
            self.node.leadership_changed(p, True)
        elif new_epoch:
            # still the leader, at a later epoch (the controller changed the
            # ISR, or elected this broker again while it led throughout): the
            # listeners hear the new epoch and keep what they built (the
            # coordinators' loaded state), as Kafka's ReplicaManager skips the
            # become-leader change of a partition it already leads. A broker
            # that stopped leading in between heard the loss (_set_none,
            # _become_follower) before this.
            self.node.leadership_changed(p, True)
        self.maybe_advance_hw(p)
        r.signal()
        p.notify()

    def _become_follower(self, p: "PartitionState", st: LeaderIsr) -> None:
        r: Replication = p.repl
        changed = r.role != FOLLOWER or st.leader_epoch != p.leader_epoch
        self._lose_leadership(p)
        r.role = FOLLOWER
        if changed:
            p.leader_epoch = max(p.leader_epoch, st.leader_epoch)
            r.followers = {}
            self.node.fetchers.add(p, st.leader, st.leader_epoch)
        r.signal()
        p.notify()

    # --- the leader's append path ------------------------------------------------------------------
    def min_isr(self, p: "PartitionState") -> int:
        ts = self.state.topics.get(p.topic)
        want = ts.log_config.min_insync_replicas if ts is not None else 1
        return max(1, min(want, len(p.repl.replicas) or 1))

    @staticmethod
    def is_leader(p: "PartitionState") -> bool:
        r = p.repl
        return r is not None and r.role == LEADER and p.log is not None

    def check_leader(self, p: "PartitionState") -> None:
        r: Replication | None = p.repl
        if r is None or r.role != LEADER or p.log is None:
            raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                    f"This server is not the leader for {p.topic}-{p.index}")
        if not self.node.can_lead():
            raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                    f"Broker {self.node_id} has no live ZooKeeper session")

    async def append(self, p: "PartitionState", data: bytearray, headers: list[BatchHeader], *, acks: int,
                     now: int, timeout_ms: int | None) -> "AppendResult":
        self.check_leader(p)
        r: Replication = p.repl
        assert p.log is not None
        min_isr = self.min_isr(p)
        if acks == -1 and len(r.isr) < min_isr:
            raise errors.KafkaError(
                errors.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {list(r.isr)} is insufficient to satisfy the min.isr "
                f"requirement of {min_isr} for partition {p.topic}-{p.index}")
        gen = r.leader_gen
        try:
            res = p.log.append(data, headers, leader_epoch=p.leader_epoch, now_ms=now)
        except OSError as e:
            raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        p.notify()  # replica fetchers long-polling this partition
        self.maybe_advance_hw(p)
        try:
            await self.state.flush_if_due(p, now)
        except OSError as e:  # the fsync failed: the write may not be durable
            raise errors.KafkaError(errors.KAFKA_STORAGE_ERROR, str(e)) from e
        if acks != -1:
            return res
        await self._await_hw(p, res.last_offset + 1, gen, min_isr, timeout_ms)
        return res

    async def wait_replicated(self, p: "PartitionState", required: int, timeout_ms: int | None) -> None:
        """acks=all for a batch already in the log (an idempotent producer's
        duplicate): wait, as for a new append, until the high watermark passes it."""
        self.check_leader(p)
        await self._await_hw(p, required, p.repl.leader_gen, self.min_isr(p), timeout_ms)

    async def _await_hw(self, p: "PartitionState", required: int, gen: int, min_isr: int,
                        timeout_ms: int | None) -> None:
        r: Replication = p.repl
        assert p.log is not None
        deadline = trio.current_time() + (timeout_ms if timeout_ms is not None else 30000) / 1000
        while True:
            if r.leader_gen != gen or r.role != LEADER:
                raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                        f"Leadership of {p.topic}-{p.index} moved before the write was replicated")
            if p.log.high_watermark >= required:
                if not self.node.can_lead():
                    raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                            f"Broker {self.node_id} has no live ZooKeeper session")
                if len(r.maximal_isr) < min_isr:
                    raise errors.KafkaError(
                        errors.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                        f"The size of the current ISR {list(r.isr)} is insufficient to satisfy the min.isr "
                        f"requirement of {min_isr} for partition {p.topic}-{p.index}")
                return
            if trio.current_time() >= deadline:
                raise errors.KafkaError(errors.REQUEST_TIMED_OUT, None)
            ev = r.changed
            with trio.move_on_at(deadline):
                await ev.wait()

    def low_watermark(self, p: "PartitionState") -> int:
        """The lowest log start offset of the live replicas (Kafka's
        Partition.lowWatermarkIfLeader); -1 while a live follower has not
        reported one yet."""
        r: Replication = p.repl
        assert p.log is not None
        live = self.node.view.brokers
        return min([p.log.log_start_offset] + [fs.log_start for f, fs in r.followers.items() if f in live])

    async def wait_low_watermark(self, p: "PartitionState", required: int, timeout_ms: int) -> int:
        """DeleteRecords (Kafka's DelayedDeleteRecords): answered once every
        live replica's log start offset reached ``required``; a follower
        learns the leader's from its next fetch response and reports its own
        in the fetch after that."""
        r: Replication = p.repl
        deadline = trio.current_time() + max(timeout_ms, 0) / 1000
        while True:
            if r.role != LEADER or p.log is None:
                raise errors.KafkaError(errors.NOT_LEADER_OR_FOLLOWER,
                                        f"Leadership of {p.topic}-{p.index} moved before the deletion was replicated")
            low = self.low_watermark(p)
            if low >= required:
                return low
            if trio.current_time() >= deadline:
                raise errors.KafkaError(errors.REQUEST_TIMED_OUT, None)
            ev = r.changed
            p.notify()  # parked replica fetches answer now, with the new log start offset
            with trio.move_on_at(deadline):
                await ev.wait()

    # --- high watermark -------------------------------------------------------------------------------
    def isr_eligible(self, f: int) -> bool:
        view = self.node.view
        return f in view.brokers and f not in view.shutting_down

    def maybe_advance_hw(self, p: "PartitionState", now: int | None = None) -> bool:
        r: Replication = p.repl
        if r.role != LEADER or p.log is None:
            return False
        leo = p.log.log_end_offset
        now = mono_ms() if now is None else now
        new_hw = leo
        maximal = r.maximal_isr
        for f, fs in r.followers.items():
            if fs.leo < new_hw and (f in maximal or (fs.caught_up(leo, now, self.lag_ms) and self.isr_eligible(f))):
                new_hw = fs.leo
        if new_hw > p.log.high_watermark:
            p.log.high_watermark = new_hw
            r.signal()
            p.notify()
            return True
        return False

    # --- replica fetches (leader side) -------------------------------------------------------------------
    def update_follower(self, p: "PartitionState", f: int, fetch_offset: int, log_start: int,
                        leader_leo: int) -> None:
        r: Replication = p.repl
        fs = r.followers.get(f)
        if fs is None:
            return
        now = mono_ms()
        if fetch_offset >= leader_leo:
            caught = max(fs.last_caught_up_ms, now)
        elif fetch_offset >= fs.last_fetch_leader_leo:
            caught = max(fs.last_caught_up_ms, fs.last_fetch_ms)
        else:
            caught = fs.last_caught_up_ms
        prev = fs.leo
        fs.leo = fetch_offset
        if log_start != fs.log_start:
            fs.log_start = log_start
            r.signal()  # DeleteRecords waiting for the low watermark
        fs.last_fetch_leader_leo = max(leader_leo, fs.last_fetch_leader_leo)
        fs.last_fetch_ms = now
        fs.last_caught_up_ms = caught
        self.maybe_expand_isr(p, f)
        if prev != fetch_offset:
            self.maybe_advance_hw(p, now)

    def maybe_expand_isr(self, p: "PartitionState", f: int) -> None:
        r: Replication = p.repl
        if r.role != LEADER or r.pending_isr is not None or f in r.isr or p.log is None:
            return
        fs = r.followers.get(f)
        if fs is None or not self.isr_eligible(f) or not self.node.can_lead():
            return
        ta = self.node.view.topics.get(p.topic)
        if ta is not None and f in ta.removing.get(p.index, ()):
            return  # being reassigned away: it leaves with the move's end, not back into the ISR
        if fs.leo >= p.log.high_watermark and fs.leo >= r.epoch_start_offset >= 0:
            new_isr = tuple(list(r.isr) + [f])
            log.info("%s-%d: expanding ISR from %s to %s", p.topic, p.index, list(r.isr), list(new_isr))
            self.node.spawn(self.alter_isr, p, new_isr)

    def maybe_shrink_isr(self, p: "PartitionState") -> None:
        r: Replication = p.repl
        if r.role != LEADER or r.pending_isr is not None or p.log is None or not self.node.can_lead():
            return
        now = mono_ms()
        leo = p.log.log_end_offset
        out = [f for f in r.isr if f != self.node_id and
               (f not in r.followers or not r.followers[f].caught_up(leo, now, self.lag_ms))]
        if out:
            new_isr = tuple(f for f in r.isr if f not in out)
            log.info("%s-%d: shrinking ISR from %s to %s (out of sync: %s)", p.topic, p.index,
                     list(r.isr), list(new_isr), out)
            self.node.spawn(self.alter_isr, p, new_isr)

    async def alter_isr(self, p: "PartitionState", new_isr: tuple[int, ...]) -> None:
        """Write a new ISR to the partition's state znode (version-checked)."""
        from kazoo.exceptions import BadVersionError, KazooException, NoNodeError

        r: Replication = p.repl
        if r.role != LEADER or r.pending_isr is not None:
            return
        epoch, gen, version = p.leader_epoch, r.leader_gen, r.zk_version
        r.pending_isr = new_isr
        path = zd.state_path(p.topic, p.index)
        try:
            with trio.move_on_after(max(1.0, self.node.zk.session_timeout)):
                stat = await self.node.zk.set(path, zd.encode_state(self.node_id, epoch, new_isr, r.controller_epoch),
                                              version=version)
                if r.leader_gen == gen:
                    r.pending_isr = None
                self.node.view.apply_state(p.topic, p.index, LeaderIsr(
                    self.node_id, epoch, new_isr, r.controller_epoch, stat.version, stat.mzxid))
        except (BadVersionError, NoNodeError):
            log.info("%s-%d: ISR update to %s lost a race (state changed); re-reading", p.topic, p.index,
                     list(new_isr))
            self.node.spawn(self.node.view.refresh_state, p.topic, p.index)
        except KazooException as e:
            log.info("%s-%d: ISR update failed: %r", p.topic, p.index, e)
        finally:
            if r.leader_gen == gen:
                r.pending_isr = None
            self.maybe_advance_hw(p)
            r.signal()

    async def isr_expiration_loop(self) -> None:
        """Kafka's isr-expiration task: every replica.lag.time.max.ms / 2."""
        while True:
            await trio.sleep(max(0.05, self.lag_ms / 2000))
            for ts in list(self.state.topics.values()):
                for p in ts.partitions:
                    if p.repl is not None and p.repl.role == LEADER:
                        self.maybe_shrink_isr(p)

    def leader_throttled(self, p: "PartitionState") -> bool:
        """``p`` is listed in its topic's leader.replication.throttled.replicas for this broker."""
        ts = self.state.topics.get(p.topic)
        return ts is not None and is_throttled(ts.log_config.leader_replication_throttled_replicas, p.index,
                                               self.node_id)

    def follower_throttled(self, p: "PartitionState") -> bool:
        """This broker's replica of ``p`` is throttled as a follower and is not in the ISR."""
        ts = self.state.topics.get(p.topic)
        return (ts is not None and self.node_id not in p.repl.isr
                and is_throttled(ts.log_config.follower_replication_throttled_replicas, p.index, self.node_id))

    # --- replica fetch request (leader side) ----------------------------------------------------------------
    def _replica_partition(self, p: "PartitionState", fp: Message, replica_id: int, first: bool,
                           acc: "_Budget") -> Message:
        r: Replication = p.repl
        idx = fp["partition"]
        requested = fp["current_leader_epoch"]
        if requested >= 0 and requested != p.leader_epoch:
            code = errors.FENCED_LEADER_EPOCH if requested < p.leader_epoch else errors.UNKNOWN_LEADER_EPOCH
            return _error_part(idx, code)
        if r is None or r.role != LEADER or p.log is None or not self.node.can_lead():
            return _error_part(idx, errors.NOT_LEADER_OR_FOLLOWER)
        if replica_id not in r.followers:
            # not a replica of this partition (Kafka's followerReplicaOrThrow)
            return _error_part(idx, errors.UNKNOWN_LEADER_EPOCH if requested >= 0 else errors.NOT_LEADER_OR_FOLLOWER)
        plog = p.log
        hw, lso, leo = plog.high_watermark, plog.log_start_offset, plog.log_end_offset
        offset = fp["fetch_offset"]
        last_epoch = fp["last_fetched_epoch"]
        if last_epoch >= 0:
            e, end = plog.end_offset_for_epoch(last_epoch)
            if e < 0 or end < 0 or offset < lso:
                return _error_part(idx, errors.OFFSET_OUT_OF_RANGE, hw, lso)
            if e < last_epoch or end < offset:
                out = _error_part(idx, errors.NONE, hw, lso)
                out["diverging_epoch"] = {"epoch": e, "end_offset": end}
                return out
        from ..storage.log import OffsetOutOfRange

        throttled = replica_id not in r.isr and self.leader_throttled(p)
        if throttled and self.node.leader_quota.exceeded():
            # Kafka's shouldLeaderThrottle: no data for a catching-up throttled replica now
            if first:
                self.update_follower(p, replica_id, offset, fp["log_start_offset"], leo)
            return {"partition_index": idx, "error_code": errors.NONE, "high_watermark": plog.high_watermark,
                    "last_stable_offset": plog.high_watermark, "log_start_offset": lso,
                    "aborted_transactions": None, "preferred_read_replica": -1, "records": b""}
        try:
            res = plog.read(offset, max(min(fp["partition_max_bytes"], acc.remaining), 0), max_offset=None,
                            min_one_message=acc.min_one)
        except OffsetOutOfRange:
            return _error_part(idx, errors.OFFSET_OUT_OF_RANGE, hw, lso)
        except OSError:  # its log directory failed (storage LogOfflineError): this partition only
            return _error_part(idx, errors.KAFKA_STORAGE_ERROR, hw, lso)
        if throttled:
            self.node.leader_quota.record(res.size)
        if first:
            self.update_follower(p, replica_id, offset, fp["log_start_offset"], leo)
            hw = plog.high_watermark
        if res.size:
            acc.min_one = False
            acc.remaining -= res.size
            acc.total += res.size
        return {"partition_index": idx, "error_code": errors.NONE, "high_watermark": hw,
                "last_stable_offset": hw, "log_start_offset": lso, "aborted_transactions": None,
                "preferred_read_replica": -1, "records": res.chunks if res.size else b""}

    def _collect_replica(self, req: Message, v: int, replica_id: int,
                         first: bool) -> tuple[list[Message], list[PartitionState], bool, int]:
        st = self.state
        acc = _Budget(req["max_bytes"] if req["max_bytes"] > 0 else 2**31 - 1)
        out: list[Message] = []
        watched: list[PartitionState] = []
        has_error = False
        for t in req["topics"]:
            ts = st.topics_by_id.get(t["topic_id"]) if v >= 13 else st.topics.get(t["topic"])
            parts = []
            for fp in t["partitions"]:
                idx = fp["partition"]
                if ts is None or not 0 <= idx < len(ts.partitions):
                    code = errors.UNKNOWN_TOPIC_ID if (ts is None and v >= 13) else errors.UNKNOWN_TOPIC_OR_PARTITION
                    parts.append(_error_part(idx, code))
                    has_error = True
                    continue
                p = ts.partitions[idx]
                out_p = self._replica_partition(p, fp, replica_id, first, acc)
                parts.append(out_p)
                if out_p["error_code"] or out_p.get("diverging_epoch"):
                    has_error = True
                else:
                    watched.append(p)
            out.append({"topic": t["topic"], "topic_id": t["topic_id"], "partitions": parts})
        return out, watched, has_error, acc.total

    async def handle_replica_fetch(self, req: Message, version: int, replica_id: int) -> Message:
        """A follower's Fetch (``replica_id`` >= 0, API version ``version``): the whole response."""
        deadline = trio.current_time() + max(req["max_wait_ms"], 0) / 1000
        first = True
        starts: dict[tuple[str, int], int] = {}
        while True:
            responses, watched, has_error, total = self._collect_replica(req, version, replica_id, first)
            first = False
            # a log start offset moved (DeleteRecords): answer now, the follower follows it
            moved = any(p.log is not None and starts.get((p.topic, p.index), p.log.log_start_offset)
                        != p.log.log_start_offset for p in watched)
            if total >= req["min_bytes"] or has_error or not watched or moved or trio.current_time() >= deadline:
                break
            starts = {(p.topic, p.index): p.log.log_start_offset for p in watched if p.log is not None}
            ev = trio.Event()
            for p in watched:
                p.waiters.add(ev)
            with trio.move_on_at(deadline):
                await ev.wait()
            for p in watched:
                p.waiters.discard(ev)
        body = {"throttle_time_ms": 0, "error_code": errors.NONE, "session_id": 0, "responses": responses}
        if version >= 16:
            body["node_endpoints"] = []
        return body


class _Budget:
    __slots__ = ("remaining", "min_one", "total")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.min_one = True
        self.total = 0


def _error_part(idx: int, code: int, hw: int = -1, lso: int = -1) -> Message:
    return {"partition_index": idx, "error_code": code, "high_watermark": hw, "last_stable_offset": hw,
            "log_start_offset": lso, "aborted_transactions": None, "preferred_read_replica": -1,
            "records": b""}  # never null, as the client Fetch path: an empty record set
