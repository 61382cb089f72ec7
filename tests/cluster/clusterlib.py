"""A ZooKeeper-coordinated pykbroker cluster of real broker processes, for tests.

``Cluster(zk, root, n=3)`` starts n brokers (tests/brokerproc.py
``BrokerProcess``) sharing one ZooKeeper under a chroot of their own, so
several clusters can use one ZooKeeper server one after the other. It also
keeps a kazoo client on that chroot to look at partition states the way the
controller wrote them.

Timeouts are generous (other test runs share the machine); the ZooKeeper
session timeout of the brokers is ``PYKBROKER_TEST_ZK_SESSION_MS`` (default
2500 ms).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerproc import BrokerProcess

SESSION_MS = int(os.environ.get("PYKBROKER_TEST_ZK_SESSION_MS", "2500"))

BASE_OVERRIDES = {
    "zookeeper.session.timeout.ms": SESSION_MS,
    "replica.lag.time.max.ms": 4000,
    "replica.fetch.backoff.ms": 200,
    "controlled.shutdown.retry.backoff.ms": 500,
    "controlled.shutdown.max.retries": 3,
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 3,
    "default.replication.factor": 3,
    "num.partitions": 3,
}


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # retried until the deadline
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


class Cluster:
    def __init__(self, zk_connect: str, root: Path, n: int = 3, overrides: dict | None = None,
                 per_broker: dict[int, dict] | None = None) -> None:
        self.chroot = f"/t-{uuid.uuid4().hex[:10]}"
        self.zk_connect = zk_connect
        self.connect = zk_connect + self.chroot
        self.root = Path(root)
        self.n = n
        self.overrides = dict(BASE_OVERRIDES)
        self.overrides.update(overrides or {})
        self.per_broker = per_broker or {}
        self.brokers = [BrokerProcess(name=f"broker{i}", ready_timeout=60) for i in range(n)]
        self._zk: Any = None

    # --- lifecycle --------------------------------------------------------------------
    def broker_overrides(self, i: int) -> dict:
        ov = dict(self.overrides)
        ov.update({"node.id": i, "zookeeper.connect": self.connect})
        ov.update(self.per_broker.get(i, {}))
        return ov

    def start(self) -> "Cluster":
        errors: list[BaseException] = []

        def one(i: int) -> None:
            try:
                self.brokers[i].start(self.broker_overrides(i), log_dir=self.root / f"broker{i}")
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        self.wait_registered(range(self.n))
        return self

    def add_broker(self, overrides: dict | None = None) -> int:
        """Start one more broker (the next node id) and wait for its registration."""
        i = len(self.brokers)
        self.brokers.append(BrokerProcess(name=f"broker{i}", ready_timeout=60))
        self.n = len(self.brokers)
        if overrides:
            self.per_broker[i] = dict(overrides)
        self.brokers[i].start(self.broker_overrides(i), log_dir=self.root / f"broker{i}")
        self.wait_registered([i])
        return i

    def topic_znode(self, topic: str) -> dict:
        data, _ = self.zk.get(f"/brokers/topics/{topic}")
        return json.loads(data)

    def close(self) -> None:
        keep = os.environ.get("PYKBROKER_CLUSTER_LOGS")  # a directory: every broker's whole log goes there
        for b in self.brokers:
            if b.is_running():
                try:
                    os.kill(b.pid, signal.SIGCONT)
                except (ProcessLookupError, TypeError):
                    pass
        threads = [threading.Thread(target=b.stop, kwargs={"timeout": 30}) for b in self.brokers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for b in self.brokers:
                (Path(keep) / f"{self.chroot.strip('/')}-{b.name}.log").write_text(b.log)
        if self._zk is not None:
            try:
                self._zk.stop()
                self._zk.close()
            except Exception:
                pass
            self._zk = None

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.port is not None)

    def running_bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.is_running())

    # --- ZooKeeper inspection ---------------------------------------------------------------
    @property
    def zk(self) -> Any:
        if self._zk is None:
            import logging

            from kazoo.client import KazooClient

            quiet = logging.getLogger("tests.cluster.kazoo")
            quiet.setLevel(logging.ERROR)
            self._zk = KazooClient(hosts=self.connect, timeout=10, logger=quiet)
            self._zk.start(20)
        return self._zk

    def live_ids(self) -> list[int]:
        try:
            return sorted(int(c) for c in self.zk.get_children("/brokers/ids"))
        except Exception:
            return []

    def wait_registered(self, ids: Any, timeout: float = 60) -> None:
        want = set(ids)
        wait_until(lambda: want <= set(self.live_ids()), timeout, f"brokers {sorted(want)} registered")

    def controller(self) -> int:
        data, _ = self.zk.get("/controller")
        return json.loads(data)["brokerid"]

    def state(self, topic: str, p: int) -> dict:
        data, stat = self.zk.get(f"/brokers/topics/{topic}/partitions/{p}/state")
        st = json.loads(data)
        st["mtime"] = stat.mtime
        st["zk_version"] = stat.version
        return st

    def assignment(self, topic: str) -> dict[int, list[int]]:
        data, _ = self.zk.get(f"/brokers/topics/{topic}")
        return {int(p): r for p, r in json.loads(data)["partitions"].items()}

    def leader(self, topic: str, p: int) -> int:
        return self.state(topic, p)["leader"]

    def wait_full_isr(self, topic: str, partitions: int, timeout: float = 60, size: int | None = None) -> None:
        size = size or self.n

        def ok() -> bool:
            return all(len(self.state(topic, p)["isr"]) >= size and self.state(topic, p)["leader"] >= 0
                       for p in range(partitions))

        wait_until(ok, timeout, f"{topic}: every partition with a leader and an ISR of {size}")

    # --- topics ---------------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int, rf: int = 3, config: dict | None = None,
                     wait_isr: bool = True) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.running_bootstrap()})
        fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=rf,
                                           config=config or {})], operation_timeout=30, request_timeout=60)
        fs[name].result(timeout=90)
        if wait_isr:
            self.wait_full_isr(name, partitions, size=rf)
            self.wait_metadata(name, partitions)

    def wait_metadata(self, name: str, partitions: int, timeout: float = 60) -> None:
        """Until every running broker's Metadata shows a leader for every partition
        (brokers learn the states through their watches, a moment after ZooKeeper has them)."""
        from rawclient import RawClient

        def ok() -> bool:
            for b in self.brokers:
                if not b.is_running():
                    continue
                with RawClient(b.bootstrap) as rc:
                    md = rc.call(3, 9, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
                t = md["topics"][0]
                if t["error_code"] or len(t["partitions"]) != partitions or \
                        any(p["error_code"] or p["leader_id"] < 0 for p in t["partitions"]):
                    return False
            return True

        wait_until(ok, timeout, f"{name}: leaders in every broker's metadata")

    # --- faults -----------------------------------------------------------------------------------
    def kill(self, i: int) -> None:
        self.brokers[i].kill()

    def restart(self, i: int) -> None:
        b = self.brokers[i]
        if b.is_running():
            b.stop(timeout=30)
        b.restart()
        self.wait_registered([i])

    def log_dir(self, i: int, topic: str, p: int) -> Path:
        return self.root / f"broker{i}" / f"{topic}-{p}"


# --- logs on disk ----------------------------------------------------------------------------------

def log_bytes(partition_dir: Path, upto_offset: int) -> bytes:
    """The bytes of every whole batch of a partition's log (all segments, in
    order) whose last offset is below ``upto_offset`` (the high watermark)."""
    out = bytearray()
    for seg in sorted(partition_dir.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            end = pos + 12 + length
            if end > len(data):
                break
            last = base + struct.unpack_from(">i", data, pos + 23)[0]
            if last >= upto_offset:
                return bytes(out)
            out += data[pos:end]
            pos = end
    return bytes(out)
