"""ZooKeeper + N broker processes, every connection through a fault proxy.

Broker i listens on ``127.0.0.1:<real port>`` and advertises
``127.0.0.1:<proxy port>`` (``advertised.listeners``), so clients and the
other brokers' replica fetchers go through ``broker_proxies[i]``; its
``zookeeper.connect`` is ``zk_proxies[i]`` (with the chroot), so it alone
can be cut from ZooKeeper. Ports are fixed for the whole run, so a
restarted broker comes back at the same addresses.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).resolve().parent.parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from brokerproc import BrokerProcess  # noqa: E402

from pykbroker.cluster.zkserver import ZkServer, free_port  # noqa: E402

from .proxy import BrokerPids, FaultProxy  # noqa: E402

CHROOT = "/nemesis"

# Kafka's defaults except where noted; the session timeout is the run's.
DEFAULT_OVERRIDES: dict[str, Any] = {
    "default.replication.factor": 3,
    "offsets.topic.replication.factor": 3,
    "transaction.state.log.replication.factor": 3,
    "replica.fetch.backoff.ms": 200,
}


class NemesisCluster:
    def __init__(self, root: Path, n: int = 3, session_ms: int = 18000,
                 overrides: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.n = n
        self.session_ms = session_ms
        self.overrides = dict(DEFAULT_OVERRIDES)
        self.overrides["zookeeper.session.timeout.ms"] = session_ms
        self.overrides.update(overrides or {})
        self.zk_server = ZkServer(self.root / "zookeeper")
        self.pids = BrokerPids()
        self.real_ports = [free_port() for _ in range(n)]
        self.broker_proxies: list[FaultProxy] = []
        self.zk_proxies: list[FaultProxy] = []
        # the slow-disk fault: broker i's log writes sleep as long as this file says (storage/disk_faults.py)
        self.slow_disk_files = [self.root / f"slow-disk-{i}" for i in range(n)]
        self.brokers = [BrokerProcess(name=f"broker{i}", ready_timeout=90,
                                      env={"PYKBROKER_SLOW_DISK_FILE": str(self.slow_disk_files[i])})
                        for i in range(n)]
        self._kz: Any = None
        self.lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "NemesisCluster":
        self.zk_server.start()
        for i in range(self.n):
            self.broker_proxies.append(FaultProxy(self.real_ports[i], f"broker{i}", resolver=self.pids))
            self.zk_proxies.append(FaultProxy(self.zk_server.port, f"zk{i}"))
        # one after the other from this thread: brokerproc sets PR_SET_PDEATHSIG only
        # for processes started from the main thread, so they die with the harness
        for i in range(self.n):
            self.brokers[i].start(self.broker_overrides(i), log_dir=self.root / f"broker{i}")
            self.pids.set(i, self.brokers[i].pid)
        self.wait_registered(range(self.n), 90)
        return self

    def broker_overrides(self, i: int) -> dict[str, Any]:
        ov = dict(self.overrides)
        ov.update({
            "node.id": i,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.real_ports[i]}",
            "advertised.listeners": f"PLAINTEXT://{self.broker_proxies[i].address}",
            "zookeeper.connect": self.zk_proxies[i].address + CHROOT,
        })
        return ov

    def close(self) -> None:
        for b in self.brokers:
            if b.is_running() and b.pid is not None:
                try:
                    os.kill(b.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        for p in self.broker_proxies + self.zk_proxies:
            p.heal()
        threads = [threading.Thread(target=b.stop, kwargs={"timeout": 30}) for b in self.brokers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._kz is not None:
            try:
                self._kz.stop()
                self._kz.close()
            except Exception:
                pass
            self._kz = None
        for p in self.broker_proxies + self.zk_proxies:
            p.close()
        self.zk_server.stop()

    def save_logs(self, into: Path) -> None:
        into.mkdir(parents=True, exist_ok=True)
        for b in self.brokers:
            (into / f"{b.name}.log").write_text(b.log)

    @property
    def bootstrap(self) -> str:
        return ",".join(p.address for p in self.broker_proxies)

    # --- broker processes -------------------------------------------------------------------------
    def kill(self, i: int) -> None:
        self.brokers[i].kill()
        self.pids.set(i, None)

    def restart(self, i: int) -> None:
        b = self.brokers[i]
        if b.is_running():
            b.kill()
        b.restart()
        self.pids.set(i, b.pid)

    def pause(self, i: int) -> None:
        self.brokers[i].signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.brokers[i].signal(signal.SIGCONT)

    def slow_disk(self, i: int, delay_ms: int) -> None:
        """Every log write and fsync of broker i sleeps ``delay_ms`` (0: off)."""
        f = self.slow_disk_files[i]
        if delay_ms > 0:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(str(delay_ms))
        else:
            f.unlink(missing_ok=True)

    def restart_zookeeper(self, down_s: float) -> None:
        self.zk_server.stop()
        time.sleep(down_s)
        self.zk_server.start()

    # --- ZooKeeper inspection (the harness's own session, not through a proxy) ---------------------
    @property
    def kz(self) -> Any:
        if self._kz is None:
            from kazoo.client import KazooClient

            quiet = logging.getLogger("nemesis.kazoo")
            quiet.setLevel(logging.CRITICAL)
            self._kz = KazooClient(hosts=self.zk_server.connect + CHROOT, timeout=10, logger=quiet)
            self._kz.start(30)
        return self._kz

    def live_ids(self) -> list[int]:
        try:
            return sorted(int(c) for c in self.kz.get_children("/brokers/ids"))
        except Exception:
            return []

    def wait_registered(self, ids: Any, timeout: float) -> None:
        want = set(ids)
        deadline = time.monotonic() + timeout
        while not want <= set(self.live_ids()):
            if time.monotonic() > deadline:
                raise AssertionError(f"brokers {sorted(want)} not registered within {timeout:.0f}s "
                                     f"(live: {self.live_ids()})")
            time.sleep(0.1)

    def controller(self) -> int:
        try:
            data, _ = self.kz.get("/controller")
            return int(json.loads(data)["brokerid"])
        except Exception:
            return -1

    def state(self, topic: str, p: int) -> dict | None:
        try:
            data, _ = self.kz.get(f"/brokers/topics/{topic}/partitions/{p}/state")
            return json.loads(data)
        except Exception:
            return None

    def leader(self, topic: str, p: int) -> int:
        st = self.state(topic, p)
        return st["leader"] if st else -1

    def create_topic(self, name: str, partitions: int, rf: int, config: dict[str, str]) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        from confluent_kafka import KafkaException

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + 90
        while True:
            fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf,
                                               config=config)], operation_timeout=30, request_timeout=60)
            try:
                fs[name].result(timeout=90)
                break
            except KafkaException as e:
                # the controller may not have seen every registration yet
                if "INVALID_REPLICATION_FACTOR" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while True:
            states = [self.state(name, p) for p in range(partitions)]
            if all(s and s["leader"] >= 0 and len(s["isr"]) == rf for s in states):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: partitions not ready: {states}")
            time.sleep(0.1)

    # --- what brokers serve -------------------------------------------------------------------------
    def metadata_view(self, i: int, topic: str) -> dict[int, tuple[int, int]] | None:
        """Broker i's Metadata for ``topic`` (directly, not through its proxy):
        partition -> (leader, leader epoch); None if it does not answer."""
        from rawclient import RawClient

        b = self.brokers[i]
        if not b.is_running():
            return None
        try:
            with RawClient(("127.0.0.1", self.real_ports[i]), timeout=3) as rc:
                md = rc.call(3, 9, {"topics": [{"name": topic}], "allow_auto_topic_creation": False})
        except Exception:
            return None
        t = md["topics"][0]
        if t["error_code"]:
            return None
        return {x["partition_index"]: (x["leader_id"], x["leader_epoch"]) for x in t["partitions"]}

    def leader_serves(self, topic: str, p: int, leader: int) -> bool:
        """The broker answers ListOffsets (latest) for the partition without error."""
        from rawclient import RawClient

        if not 0 <= leader < self.n or not self.brokers[leader].is_running():
            return False
        try:
            with RawClient(("127.0.0.1", self.real_ports[leader]), timeout=3) as rc:
                lo = rc.call(2, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
                    {"name": topic, "partitions": [{"partition_index": p, "current_leader_epoch": -1,
                                                    "timestamp": -1}]}]})
        except Exception:
            return False
        return lo["topics"][0]["partitions"][0]["error_code"] == 0

    def agreement(self, topic: str, partitions: int) -> tuple[bool, str]:
        """(True, "") when ZooKeeper, every running broker's Metadata and the
        leader itself agree on every partition's leader and epoch."""
        for p in range(partitions):
            st = self.state(topic, p)
            if st is None or st["leader"] < 0:
                return False, f"partition {p}: no leader in ZooKeeper ({st})"
            want = (st["leader"], st["leader_epoch"])
            for i in range(self.n):
                view = self.metadata_view(i, topic)
                if view is None:
                    return False, f"broker {i}: no metadata"
                if view.get(p) != want:
                    return False, f"partition {p}: broker {i} says {view.get(p)}, ZooKeeper {want}"
            if not self.leader_serves(topic, p, st["leader"]):
                return False, f"partition {p}: leader {st['leader']} does not serve it"
        return True, ""
