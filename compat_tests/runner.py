"""Runs cells: on one broker, a broker process per client family, shared by
its scenarios; on a cluster, one ZooKeeper + 3-broker cluster for every
family (started once: a cluster start costs far more than a broker's).

Cells run topology-major, then family-major; when the family changes the
previous single broker is stopped and a fresh one (own log dir) is started.
A cell that finds its broker (or any broker of its cluster) dead gets a
fresh one, so one crash fails one cell, not the rest. "Restart the broker"
on a cluster is a rolling restart: each broker in turn is stopped
(controlled shutdown) and started, the next one only once every partition
has its whole ISR again, as an operator upgrades a cluster.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from collections.abc import Callable
from typing import Any

from . import raw, scenarios
from .drivers import DriverError, NoSuchFeature, get_driver
from .matrix import FAIL, NA, PASS, PENDING, SCENARIO_BY_ID, Result, missing_apis

_TESTS = Path(__file__).resolve().parent.parent / "tests"
for _p in (_TESTS, _TESTS / "cluster"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from brokerproc import BrokerProcess  # noqa: E402

BROKER_OVERRIDES = {
    "message.max.bytes": scenarios.MESSAGE_MAX_BYTES,
    "num.partitions": 1,
    "group.initial.rebalance.delay.ms": 0,
}
# The cluster column: as scripts/cluster (replication factor 3 everywhere,
# min.insync.replicas=2); fewer internal-topic partitions than Kafka's 50
# keep the start quick while the coordinators still spread over the brokers.
CLUSTER_OVERRIDES = {
    **BROKER_OVERRIDES,
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 6,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "transaction.state.log.num.partitions": 6,
}

_API_NAMES = {8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
              12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup", 19: "CreateTopics",
              20: "DeleteTopics", 22: "InitProducerId", 24: "AddPartitionsToTxn", 26: "EndTxn",
              32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions",
              44: "IncrementalAlterConfigs", 17: "SaslHandshake", 36: "SaslAuthenticate"}


def _apis(alts: list[tuple[int, ...]]) -> str:
    return ", ".join(" or ".join(f"{_API_NAMES.get(k, k)} ({k})" for k in a) for a in alts)


SECURE_USERS = {"alice": "alice-secret", "admin": "admin-secret"}


def add_scram_users(zk: Any, users: dict[str, str]) -> None:
    """SCRAM credentials in ZooKeeper (``/config/users/<user>``), as
    ``kafka-configs --zookeeper ... --entity-type users`` writes them."""
    from pykbroker.cluster import zkdata as zd
    from pykbroker.security import scram

    zk.ensure_path("/config/users")
    for user, password in users.items():
        creds = {m: scram.ScramCredential.from_password(m, password).to_text() for m in scram.MECHANISMS}
        zk.create(f"/config/users/{user}", zd.encode_config(creds))


class ClusterSecureTarget:
    """The security scenarios on the cluster: each broker's listener named
    after the protocol, found in its ZooKeeper registration (the ports are
    chosen at start and change on a restart)."""

    def __init__(self, cluster: Any, ca: Any, client: Any) -> None:
        self.cluster, self.ca, self.client = cluster, ca, client

    def _bootstrap(self, listener: str) -> str:
        import json

        out = []
        for node in sorted(self.cluster.zk.get_children("/brokers/ids")):
            reg = json.loads(self.cluster.zk.get(f"/brokers/ids/{node}")[0])
            out += [ep.split("://", 1)[1] for ep in reg["endpoints"] if ep.startswith(f"{listener}://")]
        return ",".join(out)

    def settings(self, protocol: str, mechanism: str | None) -> dict[str, Any]:
        return {"bootstrap": self._bootstrap(protocol), "protocol": protocol, "mechanism": mechanism,
                "username": "alice", "password": SECURE_USERS["alice"], "ca": str(self.ca.ca_pem),
                "cert": str(self.client.cert) if protocol == "SSL" else None,
                "key": str(self.client.key) if protocol == "SSL" else None}

    def create_topic(self, name: str) -> None:
        raw.create_topic(str(self.cluster.bootstrap), name, 1)

    def values(self, topic: str) -> list[bytes | None]:
        return raw.values(str(self.cluster.bootstrap), topic)


class CompatRun:
    def __init__(self, make_dir: Callable[[str], Path]) -> None:
        self.make_dir = make_dir
        self.results: dict[tuple[str, str, str], Result] = {}
        self.versions: dict[str, str] = {}
        self.family: str | None = None
        self.broker: BrokerProcess | None = None
        self.advertised: set[int] = set()
        self.zk: Any = None  # ZkServer, started with the first cluster cell
        self.cluster: Any = None  # tests/cluster/clusterlib.Cluster
        self.cluster_secure: ClusterSecureTarget | None = None  # its TLS/SASL listeners
        self.cluster_advertised: set[int] = set()

    # ------------------------------------------------------------ brokers
    def _start(self, family: str) -> None:
        self.close_broker()
        b = BrokerProcess(name=f"compat-{family}")
        b.start(BROKER_OVERRIDES, log_dir=self.make_dir(f"compat-{family}"))
        self.broker, self.family = b, family
        self.advertised = set(raw.api_versions(b.bootstrap))

    def broker_for(self, family: str) -> BrokerProcess:
        if self.family != family or self.broker is None or not self.broker.is_running():
            self._start(family)
        assert self.broker is not None
        return self.broker

    def restart(self) -> None:
        assert self.broker is not None
        self.broker.restart()

    def close_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        self.broker, self.family = None, None

    # ------------------------------------------------------------ the cluster
    def cluster_bootstrap(self) -> str:
        """The shared cluster's bootstrap list (started, or started again
        when one of its brokers died)."""
        from pykbroker.cluster.zkserver import ZkServer, zookeeper_available

        if self.cluster is not None and all(b.is_running() for b in self.cluster.brokers):
            return str(self.cluster.bootstrap)
        self.close_cluster()
        if self.zk is None:
            if not zookeeper_available():
                raise RuntimeError("ZooKeeper (Debian package 'zookeeper' + java) is not installed")
            self.zk = ZkServer(self.make_dir("compat-zookeeper"))
            self.zk.start()
        from clusterlib import Cluster

        from pykbroker.testing.security import TestCA, secure_properties

        # every broker also has SSL (client certificates required), SASL_PLAINTEXT and
        # SASL_SSL listeners (PLAIN users in the JAAS line, SCRAM users in ZooKeeper);
        # brokers replicate over PLAINTEXT, the first listener
        ca = TestCA(self.make_dir("compat-cluster-ca"))
        server = ca.issue("localhost", server=True, filename="broker")
        client = ca.issue("client", ou="test", filename="client")
        props = secure_properties(ca, server, SECURE_USERS, mechanisms="PLAIN,SCRAM-SHA-256,SCRAM-SHA-512")
        self.cluster = Cluster(self.zk.connect, self.make_dir("compat-cluster"), 3, {**CLUSTER_OVERRIDES, **props})
        add_scram_users(self.cluster.zk, SECURE_USERS)
        self.cluster.start()
        self.cluster_secure = ClusterSecureTarget(self.cluster, ca, client)
        bs = str(self.cluster.bootstrap)
        raw.controller(bs)  # a controller is elected
        self.cluster_advertised = set(raw.api_versions(bs))
        return bs

    def rolling_restart(self) -> None:
        from clusterlib import wait_until

        c = self.cluster
        assert c is not None
        for i in range(c.n):
            c.restart(i)
            wait_until(lambda: self._isr_complete(c), 90, "every partition's whole ISR after a restart")

    @staticmethod
    def _isr_complete(c: Any) -> bool:
        for topic in c.zk.get_children("/brokers/topics"):
            for p, replicas in c.assignment(topic).items():
                st = c.state(topic, p)
                if st["leader"] < 0 or sorted(st["isr"]) != sorted(replicas):
                    return False
        return True

    def close_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
        self.cluster = None
        self.cluster_secure = None

    def close(self) -> None:
        self.close_broker()
        self.close_cluster()
        if self.zk is not None:
            self.zk.close()
            self.zk = None

    # -------------------------------------------------------------- cells
    def version_of(self, family: str) -> str:
        if family not in self.versions:
            try:
                self.versions[family] = get_driver(family).versions()
            except Exception as e:  # shown in the doc, the cells fail on their own
                self.versions[family] = f"? ({e})".splitlines()[0]
        return self.versions[family]

    def run_cell(self, topology: str, family: str, scenario_id: str) -> Result:
        r = self._run_cell(topology, family, scenario_id)
        self.results[(topology, family, scenario_id)] = r
        return r

    def _run_cell(self, topology: str, family: str, scenario_id: str) -> Result:
        d = get_driver(family)
        sc = SCENARIO_BY_ID[scenario_id]
        self.version_of(family)
        if scenario_id in d.unsupported:
            return Result(NA, d.unsupported[scenario_id])
        if topology in dict(sc.not_on):
            return Result(NA, dict(sc.not_on)[topology])
        codec = scenario_id if scenario_id in scenarios.CODEC_IDS else None
        if codec and codec not in d.codecs:
            return Result(NA, d.no_codec_reason(codec))
        t0 = time.monotonic()
        try:
            if topology == "cluster":
                self.close_broker()
                bootstrap = self.cluster_bootstrap()
                advertised, restart = self.cluster_advertised, self.rolling_restart
            else:
                self.close_cluster()
                bootstrap, advertised, restart = self.broker_for(family).bootstrap, self.advertised, self.restart
        except Exception as e:
            return Result(FAIL, f"broker did not start: {e}".splitlines()[0], detail=traceback.format_exc())
        missing = missing_apis(sc, advertised)
        if missing:
            return Result(PENDING, f"{sc.pending_reason} (broker lacks {_apis(missing)})")
        if scenario_id in scenarios.READS_RECORDS and d.consume_needs:
            missing = [a for a in d.consume_needs if not any(k in advertised for k in a)]
            if missing:
                return Result(PENDING, f"{family} reads records only as a consumer-group member: "
                                       f"consumer groups + committed offsets: issue 4 "
                                       f"(broker lacks {_apis(missing)})")
        ctx = scenarios.Ctx(d, bootstrap, advertised, restart, family, scenario_id,
                            secure=self.cluster_secure if topology == "cluster" else None)
        try:
            notes = scenarios.SCENARIO_FUNCS[scenario_id](ctx) or []
        except NoSuchFeature as e:
            return Result(NA, str(e), seconds=time.monotonic() - t0)
        except BaseException as e:  # a failed cell, whatever the cause
            if isinstance(e, KeyboardInterrupt):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            kind = "" if isinstance(e, (AssertionError, DriverError)) else f"{type(e).__name__}: "
            detail = traceback.format_exc()
            procs = list(self.cluster.brokers) if topology == "cluster" and self.cluster is not None else \
                [self.broker] if self.broker is not None else []
            for proc in procs:
                detail += f"\n--- broker log ({proc.describe()}), last 80 lines ---\n"
                detail += proc.log_tail(80)
            return Result(FAIL, (kind + first)[:200], seconds=time.monotonic() - t0, detail=detail)
        return Result(PASS, seconds=time.monotonic() - t0, notes=list(notes))
