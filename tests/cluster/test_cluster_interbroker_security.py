"""Brokers of a cluster talk to each other over a secured listener, and every
listener of every broker is registered (Kafka's multi-endpoint
``/brokers/ids/<id>``), so a client on any listener is told the other
brokers' addresses on that same listener.

Replication (the followers' Fetch), the coordinators' requests between
brokers and the controller's metadata checks go to ``inter.broker.listener.name``
with TLS and SASL (PLAIN or SCRAM with the credential kept in ZooKeeper).
An acks=all produce on a topic with ``min.insync.replicas=3`` is acknowledged
only once both followers have fetched the records, so its success proves
replication ran over the secured listener: there is no other listener
between the brokers.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from clusterlib import wait_until
from pykbroker.cluster import zkdata as zd
from pykbroker.security import scram
from pykbroker.testing.security import JAAS_PLAIN, TestCA
from rawclient import RawClient

JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports(n: int) -> dict[int, dict[str, int]]:
    return {i: {"CLIENT": _free_port(), "BROKER": _free_port()} for i in range(n)}


def _listeners(ports: dict[str, int]) -> str:
    return f"CLIENT://127.0.0.1:{ports['CLIENT']},BROKER://127.0.0.1:{ports['BROKER']}"


def _secure_cluster(cluster_factory, tmp_path, protocol: str, mechanism: str, *, broker_password: str = "ib-secret",
                    per_broker_password: dict[int, str] | None = None, client_protocol: str = "PLAINTEXT"):
    """3 brokers: CLIENT (``client_protocol``) for the test's clients, BROKER
    (``protocol`` with ``mechanism``) between the brokers and nothing else."""
    ca = TestCA(tmp_path / "ca")
    server = ca.issue("localhost", server=True, filename="broker")
    ports = _ports(3)
    overrides = {
        "listener.security.protocol.map": f"CLIENT:{client_protocol},BROKER:{protocol}",
        "inter.broker.listener.name": "BROKER",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": mechanism,
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(server.keystore),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca.ca_pem),
        "listener.name.client.plain.sasl.jaas.config": f'{JAAS_PLAIN} user_alice="alice-secret";',
    }
    per_broker = {}
    for i in range(3):
        pw = (per_broker_password or {}).get(i, broker_password)
        per_broker[i] = {
            "listeners": _listeners(ports[i]),
            "listener.name.broker.plain.sasl.jaas.config":
                f'{JAAS_PLAIN} username="broker" password="{pw}" user_broker="{broker_password}";',
            "listener.name.broker.scram-sha-512.sasl.jaas.config":
                f'{JAAS_SCRAM} username="broker" password="{pw}";',
        }
    cl = cluster_factory(3, overrides=overrides, per_broker=per_broker, start=False)
    if mechanism.startswith("SCRAM"):
        # the brokers' own credential, created in ZooKeeper before they start (as Kafka's
        # kafka-configs --zookeeper ... --entity-type users does)
        cred = scram.ScramCredential.from_password(mechanism, broker_password)
        cl.zk.ensure_path("/config/users")
        cl.zk.create("/config/users/broker", zd.encode_config({mechanism: cred.to_text()}))
    cl.start()
    return cl, ports, ca


def _metadata(bootstrap: str, topic: str) -> dict:
    with RawClient(bootstrap, timeout=10) as c:
        return c.call(3, 12, {"topics": [{"name": topic, "topic_id": bytes(16)}],
                              "allow_auto_topic_creation": False,
                              "include_topic_authorized_operations": False})


def _produce_and_read_back(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "3"})])[topic].result(30)
    acked: list[tuple[int, int, bytes]] = []
    failed: list[str] = []

    def done(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 60000})
    for i in range(n):
        p.produce(topic, key=str(i % 7).encode(), value=f"v{i}".encode(), on_delivery=done)
    assert p.flush(90) == 0
    assert not failed and len(acked) == n
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.partition(), m.offset(), m.value()))
    c.close()
    assert sorted(got) == sorted(acked)
    for part in range(3):  # per partition: offsets 0.. in order, values in produce order
        mine = [g for g in got if g[0] == part]
        assert [o for _, o, _ in mine] == list(range(len(mine)))


@pytest.mark.parametrize("protocol,mechanism", [("SASL_SSL", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
                                                ("SSL", "PLAIN")])
def test_replication_over_a_secured_inter_broker_listener(cluster_factory, tmp_path, protocol, mechanism):
    cl, ports, _ = _secure_cluster(cluster_factory, tmp_path, protocol, mechanism)
    # the registration holds both listeners, with their protocols, as Kafka writes it
    reg = json.loads(cl.zk.get("/brokers/ids/1")[0])
    assert reg["endpoints"] == [f"CLIENT://127.0.0.1:{ports[1]['CLIENT']}", f"BROKER://127.0.0.1:{ports[1]['BROKER']}"]
    assert reg["listener_security_protocol_map"] == {"CLIENT": "PLAINTEXT", "BROKER": protocol}
    assert (reg["host"], reg["port"]) == ("127.0.0.1", ports[1]["CLIENT"])  # the PLAINTEXT one
    bootstrap = f"127.0.0.1:{ports[0]['CLIENT']}"
    topic = f"ib-{protocol.lower()}-{mechanism.lower()}"
    _produce_and_read_back(bootstrap, topic, 600)
    # every replica in the ISR: the followers fetched over BROKER
    md = _metadata(bootstrap, topic)
    for p in md["topics"][0]["partitions"]:
        assert sorted(p["isr_nodes"]) == [0, 1, 2]
    # clients on CLIENT are told every broker's CLIENT address (not the BROKER one)
    assert sorted((b["node_id"], b["port"]) for b in md["brokers"]) == [(i, ports[i]["CLIENT"]) for i in range(3)]


def test_each_listener_advertises_its_own_addresses(cluster_factory, tmp_path):
    """A client on the SASL listener of broker 2 learns every broker's SASL
    address, and FindCoordinator answers on that listener too."""
    cl, ports, ca = _secure_cluster(cluster_factory, tmp_path, "SSL", "PLAIN")
    bootstrap = f"127.0.0.1:{ports[2]['BROKER']}"
    from confluent_kafka.admin import AdminClient

    conf = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": str(ca.ca_pem)}
    md = AdminClient(conf).list_topics(timeout=20)
    assert sorted((b.id, b.port) for b in md.brokers.values()) == [(i, ports[i]["BROKER"]) for i in range(3)]
    def coordinator() -> dict | None:
        with RawClient(f"127.0.0.1:{ports[0]['CLIENT']}", timeout=10) as c:
            co = c.call(10, 4, {"key_type": 0, "coordinator_keys": ["some-group"]})["coordinators"][0]
        return co if co["error_code"] == 0 else None
    co = wait_until(coordinator, 30, "a group coordinator")
    assert co["port"] == ports[co["node_id"]]["CLIENT"]


def test_a_broker_with_the_wrong_inter_broker_password_never_joins_the_isr(cluster_factory, tmp_path):
    cl, ports, _ = _secure_cluster(cluster_factory, tmp_path, "SASL_PLAINTEXT", "PLAIN",
                                   per_broker_password={2: "not-the-password"})
    bootstrap = f"127.0.0.1:{ports[0]['CLIENT']}"
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("wrongpw", 3, 3)])["wrongpw"].result(30)
    # partitions led by 0 or 1 shrink their ISR to exclude 2 (its logins are refused);
    # 0 and 1 log in to 2 fine, so partitions led by 2 keep all three
    def settled() -> bool:
        md = _metadata(bootstrap, "wrongpw")
        parts = md["topics"][0]["partitions"]
        return len(parts) == 3 and all(
            (sorted(p["isr_nodes"]) == [0, 1]) if p["leader_id"] != 2 else (sorted(p["isr_nodes"]) == [0, 1, 2])
            for p in parts)
    wait_until(settled, 60, "the ISR of every partition settled without broker 2's follower")
    assert "inter-broker authentication failed" in cl.brokers[2].log
