"""The controller: one broker, elected through ZooKeeper, decides leaders.

As Kafka's ZooKeeper-era ``KafkaController``:

- **Election**: brokers race to create the ephemeral ``/controller``; the
  winner bumps ``/controller_epoch`` in the same multi-op. Every state it
  writes afterwards is a multi-op that also checks the version of
  ``/controller_epoch``, so a controller that lost its place (a zombie) can
  write nothing. It resigns when its session is lost or ``/controller``
  names someone else.
- **Partition states** (``/brokers/topics/<t>/partitions/<p>/state``):
  new partitions get the first live replica of their assignment as leader
  and all live replicas as ISR (epoch 0); a partition whose leader is not
  live gets a new leader from the live ISR members, in assignment order
  (``unclean.leader.election.enable``, topic or broker level, allows any
  live replica, with an ISR of just that one); with none the leader becomes
  -1 and the ISR keeps its last member, who may lead again when it is back.
  Dead replicas leave the ISR (leader epoch + 1, as Kafka's controller does
  for OfflineReplica). A *bounced* broker (its registration's czxid, the
  broker epoch, changed: it restarted before its old session expired) is
  handled as a failure followed by a start; so is, per partition, a live
  broker named by a state written before it registered (broker epoch >
  the state's mzxid), which a controller elected after the restart never
  saw bounce.
- **Controlled shutdown** (a broker creates
  ``/pykbroker/controlled_shutdown/<id>``): leaders on that broker move to
  the next live ISR member, it leaves every ISR, and the answer lists what
  it still leads (partitions with no other ISR member).
- **Preferred leader election** (ElectLeaders, and
  ``auto.leader.rebalance.enable`` every
  ``leader.imbalance.check.interval.seconds`` when a broker leads less than
  ``leader.imbalance.per.broker.percentage`` % of what it is preferred for
  less) and unclean election on request.
- **Partition reassignment** (AlterPartitionReassignments, Kafka 2.4+'s
  KIP-455 in ZooKeeper mode): the topic znode holds the full replica set
  RS = distinct(target + current) with ``adding_replicas`` (target - origin)
  and ``removing_replicas`` (RS - target), so a new controller resumes a
  move where it was. Brokers open (and start fetching) the replicas they are
  added to from the topic znode. Once every target replica is in the ISR
  the controller writes, in one multi-op, the state (leadership moved to the
  first live in-sync target replica if the leader leaves, ISR cut to the
  target, leader epoch + 1) and the topic znode (RS = target, nothing
  adding or removing); removed replicas stop and delete their logs when
  they see it. Cancelling (null target) reassigns back to the origin. A
  move that is not complete at once bumps the leader epoch as it starts
  (Kafka's phase A1, in the multi-op that writes the topic znode). Kafka's
  legacy ``/admin/reassign_partitions`` znode is watched: created (or found
  at failover), its entries start as API entries would; failed ones, and
  completed ones, leave it; it is deleted once empty.
- **Topics**: CreateTopics / CreatePartitions / DeleteTopics are served by
  the controller (other brokers answer NOT_CONTROLLER, as Kafka's ZooKeeper
  mode does); auto-created topics are written by any broker and picked up
  here through the /brokers/topics watch.

All work runs in one task, one event at a time (Kafka's single controller
event thread); a decision is recomputed from the current view whenever a
write loses a version race.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import trio

from ..protocol import errors
from ..storage.checkpoints import random_kafka_uuid
from . import zkdata as zd
from .assignment import AssignmentError, assign_replicas
from .zk import first_leaf, is_zk_error
from .zkdata import LeaderIsr, TopicAssignment

if TYPE_CHECKING:
    from .node import ClusterNode

log = logging.getLogger("pykbroker.cluster.controller")

PREFERRED, UNCLEAN = 0, 1


class NotController(Exception):
    pass


def _no_offline_replicas(topic: str, partition: int) -> set[int]:
    return set()


class Controller:
    # brokers whose replica of a partition is in a failed log directory (cluster/log_dir_failures.py)
    offline_replicas: Callable[[str, int], set[int]] = staticmethod(_no_offline_replicas)

    def __init__(self, node: "ClusterNode") -> None:
        self.node = node
        self.offline_replicas = node.log_dir_failures.offline_brokers
        self.zk = node.zk
        self.view = node.view
        self.config = node.config
        self.active = False
        self.epoch = -1
        self.epoch_version = -1
        self.live: dict[int, int] = {}  # broker id -> broker epoch, as last handled
        self.shutting_down: set[int] = set()
        self._send, self._recv = trio.open_memory_channel[tuple[str, Any]](math.inf)
        self._scope: trio.CancelScope | None = None
        self._current: _Reply | None = None
        self._electing = False
        # czxid of the /admin/reassign_partitions znode acted on (Kafka acts on its creation only)
        self._zk_reassign_seen: int | None = None
        node.view.add_path_hook(zd.REASSIGN_PARTITIONS, self._on_reassign_znode, self._on_reassign_resync)

    # --- election ------------------------------------------------------------------------------
    async def try_elect(self) -> None:
        """Run for controller if there is none (called on registration and when
        /controller goes away)."""
        from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError

        if self.active or self._electing or not self.node.registered:
            return
        self._electing = True
        try:
            for _ in range(5):
                try:
                    try:
                        data, stat = await self.zk.get(zd.CONTROLLER_EPOCH)
                    except NoNodeError:
                        try:
                            await self.zk.create(zd.CONTROLLER_EPOCH, zd.encode_controller_epoch(0))
                        except NodeExistsError:
                            pass
                        continue
                    epoch = zd.decode_controller_epoch(data)
                    await self.zk.commit([
                        ("create", (zd.CONTROLLER, zd.encode_controller(self.node.node_id)), {"ephemeral": True}),
                        ("set_data", (zd.CONTROLLER_EPOCH, zd.encode_controller_epoch(epoch + 1)),
                         {"version": stat.version}),
                    ])
                except NodeExistsError:
                    return  # someone else is the controller
                except BadVersionError:
                    continue
                self.epoch = epoch + 1
                self.epoch_version = stat.version + 1
                self.active = True
                log.info("broker %d is the controller (epoch %d)", self.node.node_id, self.epoch)
                self.node.spawn(self._run)
                return
        except KazooException as e:
            log.info("controller election failed: %r", e)
        finally:
            self._electing = False

    def resign(self, why: str) -> None:
        if not self.active:
            return
        log.info("broker %d resigns as controller: %s", self.node.node_id, why)
        self.active = False
        self.live = {}
        self.shutting_down = set()
        if self._scope is not None:
            self._scope.cancel()
        if self._current is not None and not self._current.event.is_set():
            self._current.fail(NotController())
        # fail pending requests
        while True:
            try:
                kind, arg = self._recv.receive_nowait()
            except trio.WouldBlock:
                break
            reply = arg.get("reply") if isinstance(arg, dict) else None
            if reply is not None:
                reply.fail(NotController())

    # --- events ---------------------------------------------------------------------------------
    def notify(self, kind: str) -> None:
        if self.active:
            self._send.send_nowait((kind, {}))

    async def request(self, kind: str, **kw: Any) -> Any:
        if not self.active:
            raise NotController()
        reply = _Reply()
        kw["reply"] = reply
        self._send.send_nowait((kind, kw))
        return await reply.wait()

    async def _run(self) -> None:
        with trio.CancelScope() as self._scope:
            while self.active:
                try:
                    await self._failover()
                    rebalance_every = int(self.config["leader.imbalance.check.interval.seconds"])
                    next_rebalance = trio.current_time() + rebalance_every
                    while self.active:
                        item = None
                        with trio.move_on_at(next_rebalance):
                            item = await self._recv.receive()
                        if item is not None:
                            await self._handle(*item)
                            continue
                        next_rebalance = trio.current_time() + rebalance_every
                        if self.config["auto.leader.rebalance.enable"]:
                            await self._auto_rebalance()
                except Exception as e:
                    # Errors come alone or grouped: the partitions of one reconciliation
                    # are settled concurrently, and trio's nursery raises their failures
                    # as an ExceptionGroup. A group that escaped here used to end this
                    # loop for good while `active` stayed true: a zombie controller that
                    # ignored every later broker change (a bounced leader was never
                    # replaced after ZooKeeper restarts).
                    fenced = _fenced_in(e)
                    if fenced is not None:
                        self.resign(str(fenced))
                    elif is_zk_error(e):
                        # connection trouble: the session (and /controller) may well
                        # be intact; start over from ZooKeeper's state once it answers.
                        # A lost session makes the node resign us.
                        log.info("controller: ZooKeeper error %r; starting over", first_leaf(e))
                        await trio.sleep(0.1)
                    else:
                        # a bug in one event's handling: not the end of the controller
                        # (it still holds /controller, and nobody else would take over)
                        log.exception("controller: unexpected error; starting over")
                        await trio.sleep(1.0)

    async def _handle(self, kind: str, arg: dict[str, Any]) -> None:
        reply: _Reply | None = arg.get("reply")
        self._current = reply
        try:
            if kind in ("brokers", "topics", "shutdowns", "states", "offline_replicas"):
                await self._reconcile()
                await self._progress_reassignments()
            elif kind == "create_topic":
                _answer(reply, await self._create_topic(**{k: v for k, v in arg.items() if k != "reply"}))
            elif kind == "create_partitions":
                await self._create_partitions(**{k: v for k, v in arg.items() if k != "reply"})
                _answer(reply, None)
            elif kind == "delete_topic":
                await self._delete_topic(arg["name"])
                _answer(reply, None)
            elif kind == "elect":
                _answer(reply, await self._elect(arg["partitions"], arg["election_type"]))
            elif kind == "reassign":
                _answer(reply, await self._alter_reassignments(arg["wanted"]))
            elif kind == "reassignments":
                await self._progress_reassignments()
            elif kind == "zk_reassign":
                await self._zk_reassignment()
        except Exception as e:
            if _fenced_in(e) is not None:
                if reply is not None:
                    reply.fail(NotController())
                raise
            if reply is not None:
                reply.fail(first_leaf(e) if is_zk_error(e) else e)
            else:
                raise
        finally:
            self._current = None

    # --- failover and reconciliation ---------------------------------------------------------------
    async def _failover(self) -> None:
        # Start from what ZooKeeper says now, not from a possibly older view.
        await self.view.refresh_brokers()
        await self.view.refresh_shutdowns()
        await self.view.refresh_topics(full=True)
        self.live = {}
        await self._reconcile(first=True)
        await self._progress_reassignments()  # moves a former controller left in flight
        # Kafka's initializePartitionReassignments: a /admin/reassign_partitions
        # written meanwhile (or left by the former controller) is (re)started
        self._zk_reassign_seen = None
        await self._zk_reassignment()

    def _live_sets(self) -> tuple[dict[int, int], set[int], set[int]]:
        """(live brokers -> epoch, bounced since last time, shutting down)."""
        now = {b: info.epoch for b, info in self.view.brokers.items()}
        bounced = {b for b, e in now.items() if b in self.live and self.live[b] != e}
        sd = {b for b, e in self.view.shutting_down.items() if b in now}
        return now, bounced, sd

    async def _reconcile(self, first: bool = False) -> None:
        now, bounced, sd = self._live_sets()
        dead = set(self.live) - set(now)
        started = set(now) - set(self.live)
        if first:
            # brokers that registered again after a state naming them was
            # written: bounced, even though this controller never saw their
            # earlier epoch (_decide handles them per partition)
            bounced_since = set()
            for stt in self.view.states.values():
                bounced_since |= self._restarted_since(stt, set(now))
            log.info("controller failover: live brokers %s with epochs %s, bounced %s", sorted(now),
                     [now[b] for b in sorted(now)], sorted(bounced_since))
        elif dead or bounced or started:
            log.info("controller: live brokers %s (failed %s, bounced %s, started %s)", sorted(now),
                     sorted(dead), sorted(bounced), sorted(started))
        self.shutting_down = sd
        if bounced:
            # a bounced broker is handled as a failure first ...
            await self._reconcile_partitions(set(now) - bounced, sd)
        # ... then as a (re)start
        self.live = now
        await self._reconcile_partitions(set(now), sd)
        await self._answer_shutdowns()

    def _unclean(self, topic: str) -> bool:
        v = self.view.configs.get(topic, {}).get("unclean.leader.election.enable")
        if v is None:
            return bool(self.config["unclean.leader.election.enable"])
        return v.strip().lower() == "true"

    def _decide(self, ta: TopicAssignment, p: int, st: LeaderIsr | None, live: set[int],
                sd: set[int]) -> tuple[int, tuple[int, ...], bool] | None:
        """The state partition ``p`` should have, or None if it is fine:
        (leader, isr, bump_epoch)."""
        # a replica in a failed log directory counts as not live (Kafka's OfflineReplica)
        live = live - self.offline_replicas(ta.name, p)
        replicas = ta.partitions[p]
        usable = [r for r in replicas if r in live and r not in sd]
        if st is None:
            live_replicas = [r for r in replicas if r in live]
            if not live_replicas:
                return None  # stays new until a replica is live
            leader = usable[0] if usable else live_replicas[0]
            return leader, tuple(live_replicas), False
        # Replicas named by the state that registered again after it was written
        # restarted since (their broker epoch is newer than the state): a bounced
        # broker, handled as a failure followed by a start, whether or not this
        # controller saw its old epoch (Kafka's onControllerFailover compares the
        # broker epochs too). A restarted broker never takes over a leadership
        # granted to its earlier incarnation (ClusterNode.may_lead), so without
        # this a new controller would keep advertising a leader that does not lead.
        restarted = self._restarted_since(st, live)
        if restarted:
            return self._decide_restarted(ta, p, st, live, sd, restarted)
        isr_live = [r for r in st.isr if r in live and r not in sd]
        leader_ok = st.leader in live and st.leader not in sd
        if not leader_ok:
            if st.leader in live and st.leader in sd and not [r for r in usable if r in st.isr]:
                # shutting down and nobody to take over: keep it (the answer lists it)
                new_isr = tuple(r for r in st.isr if r == st.leader or r not in sd)
                return (st.leader, new_isr, True) if new_isr != st.isr else None
            candidates = [r for r in replicas if r in isr_live]
            if candidates:
                leader = candidates[0]
                return leader, tuple(r for r in st.isr if r in live and r not in sd), True
            if self._unclean(ta.name) and usable:
                log.warning("%s-%d: unclean leader election of %d (ISR %s is gone)", ta.name, p, usable[0],
                            list(st.isr))
                return usable[0], (usable[0],), True
            # no leader: keep the last ISR member so it can lead again when it is back
            keep = st.leader if st.leader in st.isr else (st.isr[-1] if st.isr else -1)
            new_isr = tuple(r for r in st.isr if r in live and r not in sd) or ((keep,) if keep >= 0 else ())
            if st.leader == zd.NO_LEADER and new_isr == st.isr:
                return None
            return zd.NO_LEADER, new_isr, True
        # leader fine: drop dead / shutting-down / bounced followers from the ISR
        new_isr = tuple(r for r in st.isr if r == st.leader or (r in live and r not in sd))
        if st.leader not in new_isr:
            new_isr = (st.leader,) + new_isr
        if new_isr != st.isr:
            return st.leader, new_isr, True
        return None

    def _restarted_since(self, st: LeaderIsr, live: set[int]) -> set[int]:
        """Live replicas named in ``st`` (leader or ISR) whose registration is
        newer than the write of ``st``."""
        if st.mzxid < 0:
            return set()
        brokers = getattr(self.view, "brokers", None) or {}
        named = set(st.isr) | ({st.leader} if st.leader >= 0 else set())
        return {b for b in named if b in live and b in brokers and brokers[b].epoch > st.mzxid}

    def _decide_restarted(self, ta: TopicAssignment, p: int, st: LeaderIsr, live: set[int], sd: set[int],
                          restarted: set[int]) -> tuple[int, tuple[int, ...], bool] | None:
        """The decision for a state naming brokers that restarted since it was
        written: first as if they had failed (they leave the ISR, a leader among
        them is replaced by the next in-sync replica that did not restart), then
        as if they had started (a partition left without a leader is led again
        by the ISR member kept for it)."""
        d = self._decide(ta, p, st, live - restarted, sd)
        leader, isr = (d[0], d[1]) if d is not None else (st.leader, st.isr)
        after = LeaderIsr(leader, st.leader_epoch + 1, isr, st.controller_epoch, st.version, -1)
        d2 = self._decide(ta, p, after, live, sd)
        if d2 is not None:
            leader, isr = d2[0], d2[1]
        if d is None and d2 is None:
            return None
        return leader, isr, True

    async def _reconcile_partitions(self, live: set[int], sd: set[int]) -> None:
        todo = []
        for ta in list(self.view.topics.values()):
            for p in ta.partitions:
                st = self.view.states.get((ta.name, p))
                d = self._decide(ta, p, st, live, sd)
                if d is not None:
                    todo.append((ta, p))
        if todo:
            async with trio.open_nursery() as n:
                for ta, p in todo:
                    n.start_soon(self._settle, ta, p, live, sd)

    async def _settle(self, ta: TopicAssignment, p: int, live: set[int], sd: set[int]) -> None:
        """Write the decided state of one partition, re-deciding after a lost race."""
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

        for _ in range(10):
            if self.view.topics.get(ta.name) is not ta and self.view.topics.get(ta.name) is not None:
                ta = self.view.topics[ta.name]
            if ta.name not in self.view.topics:
                return
            st = self.view.states.get((ta.name, p))
            d = self._decide(ta, p, st, live, sd)
            if d is None:
                return
            leader, isr, bump = d
            try:
                if st is None:
                    await self._create_state(ta.name, p, leader, isr)
                else:
                    epoch = st.leader_epoch + 1 if bump else st.leader_epoch
                    await self._write_state(ta.name, p, leader, epoch, isr, st.version)
                    if leader != st.leader:
                        log.info("%s-%d: leader %d -> %d (epoch %d), ISR %s", ta.name, p, st.leader, leader, epoch,
                                 list(isr))
                return
            except (BadVersionError, NodeExistsError, NoNodeError):
                await self.view.refresh_state(ta.name, p)

    async def _check_epoch_results(self, results: list[Any]) -> None:
        from kazoo.exceptions import RolledBackError

        if results and isinstance(results[0], Exception) and not isinstance(results[0], RolledBackError):
            raise _Fenced(f"controller epoch moved on ({results[0]!r})")
        for r in results[1:]:
            if isinstance(r, Exception) and not isinstance(r, RolledBackError):
                raise r

    async def _multi(self, ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """A multi-op guarded by the controller epoch's version (zombie fencing)."""
        assert self.zk.kz is not None
        tx = self.zk.kz.transaction()
        tx.check(zd.CONTROLLER_EPOCH, self.epoch_version)
        for name, args, kw in ops:
            getattr(tx, name)(*args, **kw)
        results: list[Any] = await self.zk.await_result(tx.commit_async())
        await self._check_epoch_results(results)
        return results

    async def _create_state(self, topic: str, p: int, leader: int, isr: tuple[int, ...]) -> None:
        from kazoo.exceptions import NodeExistsError

        for path in (zd.partitions_path(topic), zd.partition_path(topic, p)):
            try:
                await self.zk.create(path, b"")  # no makepath: never resurrect a deleted topic
            except NodeExistsError:
                pass
        await self._multi([("create", (zd.state_path(topic, p), zd.encode_state(leader, 0, isr, self.epoch)), {})])
        log.info("%s-%d: initialized, leader %d, ISR %s", topic, p, leader, list(isr))

    async def _write_state(self, topic: str, p: int, leader: int, epoch: int, isr: tuple[int, ...],
                           version: int) -> None:
        state = zd.encode_state(leader, epoch, isr, self.epoch)
        results = await self._multi([("set_data", (zd.state_path(topic, p), state), {"version": version})])
        stat = results[1]
        if hasattr(stat, "version"):
            self.view.apply_state(topic, p, LeaderIsr(leader, epoch, isr, self.epoch, stat.version, stat.mzxid))

    # --- controlled shutdown ---------------------------------------------------------------------------
    async def _answer_shutdowns(self) -> None:
        from kazoo.exceptions import KazooException

        for b, bepoch in list(self.view.shutting_down.items()):
            if b not in self.view.brokers:
                continue
            remaining = sorted(
                (t, p) for (t, p), st in self.view.states.items()
                if st.leader == b and len(self.view.topics.get(t, _EMPTY_TA).partitions.get(p, ())) > 1)
            try:
                data, stat = await self.zk.get(zd.shutdown_path(b))
                _, answered = zd.decode_shutdown(data)
                if answered is None or sorted(answered) != remaining:
                    await self.zk.set(zd.shutdown_path(b), zd.encode_shutdown(bepoch, remaining), version=stat.version)
            except KazooException:
                continue

    # --- preferred / unclean election --------------------------------------------------------------------
    async def _elect(self, partitions: list[tuple[str, int]],
                     election_type: int) -> dict[tuple[str, int], tuple[int, str | None]]:
        from kazoo.exceptions import BadVersionError

        now, _, sd = self._live_sets()
        live = set(now)
        out: dict[tuple[str, int], tuple[int, str | None]] = {}
        for topic, p in partitions:
            ta = self.view.topics.get(topic)
            st = self.view.states.get((topic, p))
            if ta is None or p not in ta.partitions or st is None:
                out[(topic, p)] = (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")
                continue
            replicas = ta.partitions[p]
            for _ in range(5):
                st = self.view.states[(topic, p)]
                if election_type == PREFERRED:
                    preferred = replicas[0]
                    if st.leader == preferred:
                        out[(topic, p)] = (errors.ELECTION_NOT_NEEDED, None)
                        break
                    if preferred not in live or preferred in sd or preferred not in st.isr:
                        out[(topic, p)] = (errors.PREFERRED_LEADER_NOT_AVAILABLE,
                                           f"Failed to elect leader for partition {topic}-{p} under strategy "
                                           f"PreferredReplicaPartitionLeaderElectionStrategy")
                        break
                    leader, isr = preferred, st.isr
                else:
                    if st.leader in live and st.leader not in sd:
                        out[(topic, p)] = (errors.ELECTION_NOT_NEEDED, None)
                        break
                    cands = [r for r in replicas if r in live and r not in sd]
                    if not cands:
                        out[(topic, p)] = (errors.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                                           f"Failed to elect leader for partition {topic}-{p} under strategy "
                                           f"OfflinePartitionLeaderElectionStrategy(true)")
                        break
                    in_isr = [r for r in cands if r in st.isr]
                    leader = in_isr[0] if in_isr else cands[0]
                    isr = tuple(r for r in st.isr if r in live and r not in sd) if in_isr else (leader,)
                try:
                    await self._write_state(topic, p, leader, st.leader_epoch + 1, isr, st.version)
                    log.info("%s-%d: %s election: leader %d -> %d", topic, p,
                             "preferred" if election_type == PREFERRED else "unclean", st.leader, leader)
                    out[(topic, p)] = (errors.NONE, None)
                    break
                except BadVersionError:
                    await self.view.refresh_state(topic, p)
            else:
                out[(topic, p)] = (errors.REQUEST_TIMED_OUT, "lost every race for the partition state")
        return out

    async def _auto_rebalance(self) -> None:
        pct = int(self.config["leader.imbalance.per.broker.percentage"])
        now, _, sd = self._live_sets()
        preferred_of: dict[int, list[tuple[str, int]]] = {}
        for ta in self.view.topics.values():
            for p, replicas in ta.partitions.items():
                if replicas and not ta.reassigning(p):  # Kafka leaves partitions being moved alone
                    preferred_of.setdefault(replicas[0], []).append((ta.name, p))
        todo: list[tuple[str, int]] = []
        for b, parts in preferred_of.items():
            if b not in now or b in sd:
                continue
            not_led = [(t, p) for t, p in parts if (st := self.view.states.get((t, p))) is not None
                       and st.leader != b]
            if parts and len(not_led) * 100 > pct * len(parts):
                todo += [(t, p) for t, p in not_led if b in self.view.states[(t, p)].isr]
        if todo:
            log.info("controller: preferred leader election for %d partitions (leader imbalance)", len(todo))
            await self._elect(todo, PREFERRED)

    # --- partition reassignment (KIP-455, ZooKeeper mode) ---------------------------------------------------
    def _validate_target(self, ta: TopicAssignment | None, p: int, target: list[int]) -> tuple[int, str] | None:
        """Kafka's KafkaController.validateReplicas: (code, message) or None."""
        if not target:
            return errors.INVALID_REPLICA_ASSIGNMENT, "Empty replica list specified in partition reassignment."
        if len(set(target)) != len(target):
            return (errors.INVALID_REPLICA_ASSIGNMENT,
                    f"Duplicate replica ids in partition reassignment replica list: {target}")
        if any(r < 0 for r in target):
            return errors.INVALID_REPLICA_ASSIGNMENT, f"Invalid broker id in replica list: {target}"
        origin = ta.origin(p) if ta is not None and p in ta.partitions else ()
        adding = [r for r in target if r not in origin]
        live = sorted(self.view.brokers)
        if any(r not in live for r in adding):
            return (errors.INVALID_REPLICA_ASSIGNMENT,
                    f"Replica assignment has brokers that are not alive. Replica list: {adding}, "
                    f"live broker list: {live}")
        return None

    async def _alter_reassignments(self, wanted: dict[tuple[str, int], list[int] | None], from_zk: bool = False
                                   ) -> dict[tuple[str, int], tuple[int, str | None]]:
        """Validate, then write the new replica sets of every valid partition
        to its topic znode (a partition with a bad target is left as it is).
        The latest reassignment wins: partitions the API moves (or cancels)
        leave ``/admin/reassign_partitions`` (Kafka's processApiPartitionReassignment)."""
        out: dict[tuple[str, int], tuple[int, str | None]] = {}
        todo: dict[str, dict[int, tuple[int, ...]]] = {}
        for (t, p), target in wanted.items():
            ta = self.view.topics.get(t)
            if target is None:
                if ta is None or not ta.reassigning(p):
                    out[(t, p)] = (errors.NO_REASSIGNMENT_IN_PROGRESS, None)
                    continue
                new = ta.origin(p)  # cancel: back to the replicas before the move
            else:
                bad = self._validate_target(ta, p, target)
                if bad is not None:
                    out[(t, p)] = bad
                    continue
                new = tuple(target)
            if ta is None or p not in ta.partitions:
                out[(t, p)] = (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")
                continue
            todo.setdefault(t, {})[p] = new
        if not from_zk and todo:
            superseded = {(t, p) for t, parts in todo.items() for p in parts}
            await self._prune_zk_reassignment(lambda tp, _replicas: tp in superseded)
        for t, parts in todo.items():
            out.update(await self._start_reassignments(t, parts))
        await self._progress_reassignments()
        return out

    # --- /admin/reassign_partitions (Kafka's ZooKeeper-era way in) ---------------------------------------
    async def _on_reassign_znode(self, path: str) -> None:
        self.notify("zk_reassign")

    async def _on_reassign_resync(self) -> None:
        self.notify("zk_reassign")  # after a reconnection: the watch is set again

    async def _zk_reassignment(self) -> None:
        try:
            await self._zk_reassignment_once()
        except Exception as e:
            if _fenced_in(e) is not None or is_zk_error(e):
                raise
            # a bad request must not stop the controller's event loop
            log.exception("controller: handling %s failed", zd.REASSIGN_PARTITIONS)

    async def _zk_reassignment_once(self) -> None:
        """Kafka's processZkPartitionReassignment: watch the znode; when it is
        created (or found at failover), start its moves with the API's
        validation; entries that fail are logged and removed from it. The
        others stay until their move completes (``_prune_zk_reassignment``);
        the znode is deleted when none is left. Rewrites of an existing znode
        are not acted on (Kafka's handler reacts to its creation only)."""
        from kazoo.exceptions import NoNodeError

        stat = await self.zk.exists(zd.REASSIGN_PARTITIONS, watch=True)
        if stat is None:
            self._zk_reassign_seen = None
            return
        if stat.czxid == self._zk_reassign_seen:
            return
        self._zk_reassign_seen = stat.czxid
        try:
            data, _ = await self.zk.get(zd.REASSIGN_PARTITIONS)
        except NoNodeError:
            self._zk_reassign_seen = None
            return
        wanted = zd.decode_reassignment(data)
        if wanted is None:
            log.warning("ignoring %s: not a partition reassignment (%r)", zd.REASSIGN_PARTITIONS, bytes(data)[:200])
            return
        log.info("controller: %s asks for %d partition move(s)", zd.REASSIGN_PARTITIONS, len(wanted))
        results = await self._alter_reassignments(dict(wanted), from_zk=True)
        failed = {tp: r for tp, r in results.items() if r[0] != errors.NONE}
        if failed:
            log.warning("controller: failed reassignment through %s: %s", zd.REASSIGN_PARTITIONS,
                        {f"{t}-{p}": f"{errors.NAMES.get(c, c)}: {m}" for (t, p), (c, m) in sorted(failed.items())})
        await self._prune_zk_reassignment(lambda tp, _replicas: tp in failed)

    def _zk_entry_done(self, tp: tuple[str, int], replicas: list[int]) -> bool:
        """The partition has exactly these replicas and is not moving (Kafka
        removes an entry when its partition's move completes with them)."""
        ta = self.view.topics.get(tp[0])
        return ta is not None and tp[1] in ta.partitions and not ta.reassigning(tp[1]) \
            and list(ta.partitions[tp[1]]) == list(replicas)

    async def _prune_zk_reassignment(self, drop: Callable[[tuple[str, int], list[int]], bool] | None = None
                                     ) -> None:
        """Kafka's maybeRemoveFromZkReassignment: remove the entries ``drop``
        names and those whose move is complete from /admin/reassign_partitions
        (version-checked, fenced by the controller epoch); delete it when
        nothing is left."""
        from kazoo.exceptions import BadVersionError, NoNodeError

        for _ in range(10):
            try:
                data, stat = await self.zk.get(zd.REASSIGN_PARTITIONS)
            except NoNodeError:
                return
            entries = zd.decode_reassignment(data)
            if entries is None:
                return  # not ours to touch (ignored, as Kafka does)
            keep = {tp: r for tp, r in entries.items()
                    if not (drop is not None and drop(tp, r)) and not self._zk_entry_done(tp, r)}
            if keep == entries:
                return
            try:
                if keep:
                    await self._multi([("set_data", (zd.REASSIGN_PARTITIONS, zd.encode_reassignment(keep)),
                                        {"version": stat.version})])
                else:
                    await self._multi([("delete", (zd.REASSIGN_PARTITIONS,), {"version": stat.version})])
                    log.info("controller: no more partitions to reassign; %s deleted", zd.REASSIGN_PARTITIONS)
                    if stat.czxid == self._zk_reassign_seen:
                        self._zk_reassign_seen = None
            except (BadVersionError, NoNodeError):
                continue
            return

    async def _start_reassignments(self, topic: str, parts: dict[int, tuple[int, ...]]
                                   ) -> dict[tuple[str, int], tuple[int, str | None]]:
        """Kafka's phases U1 and A1 in one multi-op: the topic znode gets the
        full replica set (RS, adding, removing) and each partition whose
        target is not all in the ISR yet its leader epoch + 1."""
        from kazoo.exceptions import BadVersionError, NoNodeError

        for _ in range(10):
            await self.view.refresh_topic(topic)
            ta = self.view.topics.get(topic)
            if ta is None:
                return {(topic, p): (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")
                        for p in parts}
            partitions, adding, removing = dict(ta.partitions), dict(ta.adding), dict(ta.removing)
            changed = False
            bumps: list[tuple[int, LeaderIsr]] = []
            for p, target in parts.items():
                if p not in ta.partitions:
                    continue  # gone meanwhile (answered below)
                current = ta.partitions[p]
                origin = ta.origin(p)
                # RS = target + origin as Kafka; replicas that were being added and
                # are no longer wanted stay (as removing) until the move completes,
                # so they leave the ISR and their logs go like any removed replica
                full = tuple(dict.fromkeys(target + origin + current))
                add = tuple(r for r in target if r not in origin)
                rem = tuple(r for r in full if r not in target)
                if full == current and add == adding.get(p, ()) and rem == removing.get(p, ()):
                    continue
                changed = True
                partitions[p] = full
                adding[p], removing[p] = add, rem
                st = self.view.states.get((topic, p))
                bump = st is not None and not set(target) <= set(st.isr)
                if st is not None and bump:
                    # Kafka's phase A1: the move is not complete, so the leader
                    # epoch goes up with the new replica set (leader and ISR kept)
                    bumps.append((p, st))
                log.info("%s-%d: reassigning %s -> %s (adding %s, removing %s)%s", topic, p, list(current),
                         list(target), list(add), list(rem),
                         f", leader epoch {st.leader_epoch + 1}" if st is not None and bump else "")
            if not changed:
                break
            written = zd.encode_topic(ta.topic_id, partitions, adding, removing)
            ops: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
                ("set_data", (zd.topic_path(topic), written), {"version": ta.version})]
            for p, st in bumps:
                ops.append(("set_data", (zd.state_path(topic, p),
                                         zd.encode_state(st.leader, st.leader_epoch + 1, st.isr, self.epoch)),
                            {"version": st.version}))
            try:
                results = await self._multi(ops)
            except (BadVersionError, NoNodeError):
                for p, _ in bumps:
                    await self.view.refresh_state(topic, p)
                continue
            self._apply_written_topic(topic, written, results[1])
            for (p, st), stat in zip(bumps, results[2:]):
                if hasattr(stat, "version"):
                    self.view.apply_state(topic, p, LeaderIsr(st.leader, st.leader_epoch + 1, st.isr, self.epoch,
                                                              stat.version, stat.mzxid))
            break
        else:
            return {(topic, p): (errors.REQUEST_TIMED_OUT, "lost every race for the topic's assignment")
                    for p in parts}
        ta = self.view.topics.get(topic)
        return {(topic, p): (errors.NONE, None) if ta is not None and p in ta.partitions
                else (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.") for p in parts}

    async def _progress_reassignments(self) -> None:
        """Complete every move whose target replicas are all in the ISR."""
        for ta in list(self.view.topics.values()):
            for p in sorted(ta.partitions):
                if ta.reassigning(p):
                    await self._maybe_complete(ta.name, p)

    async def _maybe_complete(self, topic: str, p: int) -> None:
        from kazoo.exceptions import BadVersionError, NoNodeError

        ta = self.view.topics.get(topic)
        st = self.view.states.get((topic, p))
        if ta is None or st is None or not ta.reassigning(p):
            return
        target = ta.target(p)
        if not set(target) <= set(st.isr):
            return  # phase A: the new replicas are catching up
        now, _, sd = self._live_sets()
        usable = [r for r in target if r in now and r not in sd and r in st.isr]
        if st.leader in target and st.leader in usable:
            leader = st.leader
        elif usable:
            leader = usable[0]
        else:
            return  # no target replica can lead now; the next broker change retries
        isr = tuple(r for r in st.isr if r in target)
        partitions = dict(ta.partitions)
        partitions[p] = target
        adding = {q: r for q, r in ta.adding.items() if q != p}
        removing = {q: r for q, r in ta.removing.items() if q != p}
        epoch = st.leader_epoch + 1
        written = zd.encode_topic(ta.topic_id, partitions, adding, removing)
        try:
            results = await self._multi([
                ("set_data", (zd.state_path(topic, p), zd.encode_state(leader, epoch, isr, self.epoch)),
                 {"version": st.version}),
                ("set_data", (zd.topic_path(topic), written), {"version": ta.version}),
            ])
        except (BadVersionError, NoNodeError):
            await self.view.refresh_topic(topic)
            await self.view.refresh_state(topic, p)
            return  # the watch that changed them brings us back here
        log.info("%s-%d: reassignment complete: replicas %s, leader %d -> %d (epoch %d), ISR %s", topic, p,
                 list(target), st.leader, leader, epoch, list(isr))
        stat = results[1]
        self._apply_written_topic(topic, written, results[2])
        if hasattr(stat, "version"):
            self.view.apply_state(topic, p, LeaderIsr(leader, epoch, isr, self.epoch, stat.version, stat.mzxid))
        await self._prune_zk_reassignment()  # Kafka's step B7: out of /admin/reassign_partitions

    def _apply_written_topic(self, topic: str, written: bytes, stat: Any) -> None:
        """Our write of a topic znode goes into the view at once, as written
        (no read back; the topic's watch brings it again): a
        ListPartitionReassignments answered meanwhile must not list a move
        that ZooKeeper already shows complete."""
        if hasattr(stat, "version"):
            new = zd.decode_topic(topic, written, stat.version)
            if new is not None:
                self.view.apply_topic(new)

    def list_reassignments(self, partitions: list[tuple[str, int]] | None
                           ) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        """(replicas, adding, removing) of the partitions being reassigned
        (of those asked for; others are left out, as Kafka)."""
        if not self.active:
            raise NotController()
        if partitions is None:
            partitions = [(ta.name, p) for ta in self.view.topics.values() for p in sorted(ta.partitions)]
        out: dict[tuple[str, int], tuple[list[int], list[int], list[int]]] = {}
        for t, p in partitions:
            ta = self.view.topics.get(t)
            if ta is not None and ta.reassigning(p):
                out[(t, p)] = (list(ta.partitions[p]), list(ta.adding.get(p, ())), list(ta.removing.get(p, ())))
        return out

    # --- topics --------------------------------------------------------------------------------------------
    def placement_brokers(self) -> dict[int, str | None]:
        now, _, sd = self._live_sets()
        return {b: self.view.brokers[b].rack for b in now if b not in sd} or \
            {b: self.view.brokers[b].rack for b in now}

    async def _create_topic(self, name: str, partitions: int, replication_factor: int,
                            configs: dict[str, str], assignment: dict[int, list[int]] | None) -> bytes:

        if assignment is None:
            assignment = assign_replicas(self.placement_brokers(), partitions, replication_factor)
        topic_id = random_kafka_uuid()
        await write_topic(self.zk, name, topic_id, assignment, configs)
        # initialize the partitions now instead of waiting for the watch
        await self.view.refresh_topic(name)
        await self._reconcile()
        return topic_id

    async def _create_partitions(self, name: str, total: int, assignment: list[list[int]] | None) -> None:
        from kazoo.exceptions import BadVersionError

        for _ in range(5):
            await self.view.refresh_topic(name)
            ta = self.view.topics.get(name)
            if ta is None:
                raise AssignmentError(errors.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist.")
            current = len(ta.partitions)
            new = dict(ta.partitions)
            if assignment is not None:
                for i, reps in enumerate(assignment):
                    new[current + i] = tuple(reps)
            else:
                rf = len(ta.partitions[0])
                brokers = self.placement_brokers()
                ordered = sorted(brokers)
                first = ta.partitions[0][0]
                start = ordered.index(first) if first in ordered else -1
                extra = assign_replicas(brokers, total - current, rf, fixed_start=start, start_partition=current)
                new.update({p: tuple(r) for p, r in extra.items()})
            try:
                await self.zk.set(zd.topic_path(name), zd.encode_topic(ta.topic_id, new, ta.adding, ta.removing),
                                  version=ta.version)
            except BadVersionError:
                continue
            await self.view.refresh_topic(name)
            await self._reconcile()
            return
        raise AssignmentError(errors.REQUEST_TIMED_OUT, "lost every race for the topic's assignment")

    async def _delete_topic(self, name: str) -> None:
        await self.zk.delete_recursive(zd.topic_path(name))
        await self.zk.delete_recursive(zd.config_path(name))
        await self.view.refresh_topics()


async def write_topic(zk: Any, name: str, topic_id: bytes, assignment: Mapping[int, Sequence[int]],
                      configs: dict[str, str]) -> None:
    """Kafka's AdminZkClient.createTopicWithAssignment: the config znode
    first, then the topic znode (NodeExistsError if the topic exists)."""
    from kazoo.exceptions import NodeExistsError

    cpath = zd.config_path(name)
    try:
        await zk.create(cpath, zd.encode_config(configs), makepath=True)
    except NodeExistsError:
        await zk.set(cpath, zd.encode_config(configs))
    await zk.create(zd.topic_path(name), zd.encode_topic(topic_id, assignment), makepath=True)


def _answer(reply: _Reply | None, value: Any) -> None:
    assert reply is not None, "a controller request comes with its reply"
    reply.ok(value)


class _Fenced(Exception):
    pass


def _fenced_in(e: BaseException) -> _Fenced | None:
    """``e`` itself or the first _Fenced inside a (nested) exception group."""
    if isinstance(e, BaseExceptionGroup):
        g = e.subgroup(_Fenced)
        return None if g is None else cast(_Fenced, first_leaf(g))
    return e if isinstance(e, _Fenced) else None


_EMPTY_TA = TopicAssignment("", bytes(16), {})


class _Reply:
    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def ok(self, value: Any) -> None:
        self.value = value
        self.event.set()

    def fail(self, e: BaseException) -> None:
        self.error = e
        self.event.set()

    async def wait(self) -> Any:
        await self.event.wait()
        if self.error is not None:
            raise self.error
        return self.value
