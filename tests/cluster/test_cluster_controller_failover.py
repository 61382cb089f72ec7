"""Issue 12 regression: the controller, also a partition leader, is killed
with ``kill -9`` and started again at once.

The new process waits for its earlier incarnation's session (and with it
``/brokers/ids/<id>`` and ``/controller``) to expire, then registers at
almost the moment another broker becomes controller. That controller sees
the broker live with a new broker epoch but never saw the old one; the
partition states still name the broker as leader, a leadership the
restarted process does not take over (it was granted to its earlier
incarnation). Before the fix the controller left those states alone and
every broker advertised a leader that answered NOT_LEADER_OR_FOLLOWER for
minutes. Now the controller treats a broker registered after a state naming
it was written as bounced (failure, then start), so within the session
timeout plus a few seconds every partition has a leader that serves,
every broker's Metadata agrees with ZooKeeper, and acks=all writes to
every partition succeed.
"""

from __future__ import annotations

import time

from clusterlib import wait_until
from rawclient import RawClient

TOPIC = "failover"
PARTITIONS = 6
SESSION_MS = 6000  # long enough for the new process to be up before the old session expires


def _serving(cl, topic: str, partitions: int) -> bool:
    """Every partition: the leader in ZooKeeper is what every running broker's
    Metadata says (leader and epoch), and that leader answers ListOffsets."""
    for p in range(partitions):
        st = cl.state(topic, p)
        if st["leader"] < 0:
            return False
        for b in cl.brokers:
            if not b.is_running():
                continue
            with RawClient(b.bootstrap, timeout=5) as rc:
                md = rc.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
            mp = {x["partition_index"]: x for x in md["topics"][0]["partitions"]}[p]
            if (mp["leader_id"], mp["leader_epoch"]) != (st["leader"], st["leader_epoch"]):
                return False
        leader = cl.brokers[st["leader"]]
        if not leader.is_running():
            return False
        with RawClient(leader.bootstrap, timeout=5) as rc:
            lo = rc.call(2, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": topic, "partitions": [{"partition_index": p, "current_leader_epoch": -1,
                                                "timestamp": -1}]}]})
        if lo["topics"][0]["partitions"][0]["error_code"] != 0:
            return False
    return True


def _produce_everywhere(bootstrap: str, topic: str, partitions: int, timeout_s: float) -> list:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": int(timeout_s * 1000), "topic.metadata.refresh.interval.ms": 500})
    results: list = []
    for i in range(partitions):
        p.produce(topic, value=b"after-failover", partition=i,
                  on_delivery=lambda err, msg: results.append((msg.partition(), err)))
    p.flush(timeout_s + 5)
    return results


def test_controller_leader_killed_and_restarted_at_once(cluster_factory):
    cl = cluster_factory(overrides={"zookeeper.session.timeout.ms": SESSION_MS,
                                    "auto.leader.rebalance.enable": False})
    cl.create_topic(TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
    for round_ in range(2):
        cl.wait_full_isr(TOPIC, PARTITIONS)
        victim = cl.controller()
        led = [p for p in range(PARTITIONS) if cl.leader(TOPIC, p) == victim]
        assert led, f"round {round_}: controller {victim} leads nothing"
        cl.kill(victim)
        t_kill = time.monotonic()
        cl.restart(victim)  # registers once its old session has expired
        t_registered = time.monotonic()
        wait_until(lambda victim=victim: cl.controller() != -1, 30, "a controller")
        wait_until(lambda: _serving(cl, TOPIC, PARTITIONS), SESSION_MS / 1000 + 10,
                   f"round {round_}: every partition served by the leader every broker advertises")
        served = time.monotonic()
        results = _produce_everywhere(cl.running_bootstrap(), TOPIC, PARTITIONS, 20)
        assert sorted(p for p, err in results if err is None) == list(range(PARTITIONS)), results
        print(f"\nround {round_}: killed controller {victim} (led {led}); registered again after "
              f"{t_registered - t_kill:.1f}s; all partitions served {served - t_registered:.1f}s later; "
              f"new controller {cl.controller()}")


def test_the_controller_goes_on_after_a_zookeeper_error_while_settling_partitions(cluster_factory):
    """The controller settles the partitions of one change concurrently; when
    ZooKeeper refuses one of those writes (here an ACL that lets nobody but
    its writer change a partition's state), trio raises the failure as an
    ExceptionGroup. That group used to end the controller's event loop for
    good while the broker still held /controller: a zombie controller that
    ignored every later change (after ZooKeeper restarts, a bounced leader
    was never replaced). Now the controller starts over from ZooKeeper's
    state, and once the write is allowed again the partition gets its new
    leader; later changes are handled too."""
    from kazoo.client import KazooClient
    from kazoo.security import ACL, OPEN_ACL_UNSAFE, Permissions, make_digest_acl

    cl = cluster_factory(n=3)
    cl.create_topic(TOPIC, PARTITIONS, 3, {"min.insync.replicas": "1"})
    ctl = cl.controller()
    locked = next(p for p in range(PARTITIONS) if cl.leader(TOPIC, p) != ctl)
    victim = cl.leader(TOPIC, locked)
    path = f"/brokers/topics/{TOPIC}/partitions/{locked}/state"
    admin = KazooClient(hosts=cl.connect, timeout=10, auth_data=[("digest", "admin:secret")])
    admin.start(20)
    try:
        read_only = ACL(Permissions.READ, OPEN_ACL_UNSAFE[0].id)
        admin.set_acls(path, [make_digest_acl("admin", "secret", all=True), read_only])
        cl.kill(victim)
        # the controller replaces every other leadership of the victim; the locked one it cannot write
        others = [p for p in range(PARTITIONS) if p != locked]
        wait_until(lambda: all(cl.leader(TOPIC, p) not in (victim, -1) for p in others), 60,
                   "new leaders for the victim's other partitions")
        time.sleep(1.0)
        assert cl.leader(TOPIC, locked) == victim
        admin.set_acls(path, OPEN_ACL_UNSAFE)
        wait_until(lambda: cl.leader(TOPIC, locked) not in (victim, -1), 30,
                   f"a new leader for partition {locked} once its state may be written")
        # and the controller still follows broker changes: the victim comes back into every ISR
        cl.restart(victim)
        cl.wait_full_isr(TOPIC, PARTITIONS, timeout=60)
        assert cl.controller() == ctl
    finally:
        admin.stop()
        admin.close()
