"""Real clients over real sockets against TLS and SASL listeners.

One SecureBroker for the module (the ``kafka_secure_broker`` plugin fixture):
PLAINTEXT, SSL (client certificates required), SASL_PLAINTEXT and SASL_SSL.
Every case produces records and reads them back, checking content and offsets.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CASES = [("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "SCRAM-SHA-256"), ("SASL_PLAINTEXT", "PLAIN"),
         ("SSL", None), ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN")]


def _topic(tag: str) -> str:
    return f"sec-{tag.lower().replace('_', '-')}-{uuid.uuid4().hex[:8]}"


def _values(n: int, tag: str) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(n)]


@pytest.mark.parametrize("listener,mechanism", CASES)
def test_confluent_kafka(kafka_secure_broker, listener, mechanism):
    from confluent_kafka import Consumer, Producer

    kb = kafka_secure_broker
    conf = kb.librdkafka_config(listener, "alice", mechanism=mechanism or "PLAIN")
    topic = _topic(f"ck-{listener}-{mechanism}")
    want = _values(5, topic)
    p = Producer(conf)
    for v in want:
        p.produce(topic, v, key=b"k")
    assert p.flush(15) == 0
    c = Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    for _ in range(30):
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.value()))
        if len(got) == len(want):
            break
    c.close()
    assert got == list(enumerate(want))


def test_confluent_kafka_oauthbearer_unsecured_token(kafka_secure_broker):
    from confluent_kafka import Consumer, Producer

    kb = kafka_secure_broker
    conf = kb.librdkafka_config("SASL_SSL", "oauth-user", mechanism="OAUTHBEARER")
    topic = _topic("oauth")
    p = Producer(conf)
    p.produce(topic, b"token-ok")
    assert p.flush(15) == 0
    c = Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = None
    for _ in range(30):
        m = c.poll(1.0)
        if m is not None and not m.error():
            got = (m.offset(), m.value())
            break
    c.close()
    assert got == (0, b"token-ok")


@pytest.mark.parametrize("listener,mechanism", CASES)
def test_kafka_python(kafka_secure_broker, listener, mechanism):
    from kafka import KafkaConsumer, KafkaProducer

    kb = kafka_secure_broker
    conf = kb.kafka_python_config(listener, "alice", mechanism=mechanism or "PLAIN")
    if not listener.startswith("SASL_"):
        conf = {k: v for k, v in conf.items() if not k.startswith("sasl_")}
    topic = _topic(f"kp-{listener}-{mechanism}")
    want = _values(5, topic)
    p = KafkaProducer(**conf, request_timeout_ms=10000)
    offsets = [p.send(topic, v).get(timeout=15).offset for v in want]
    p.close()
    assert offsets == [0, 1, 2, 3, 4]
    c = KafkaConsumer(topic, **conf, group_id=topic, auto_offset_reset="earliest", consumer_timeout_ms=10000)
    got = []
    for m in c:
        got.append((m.offset, m.value))
        if len(got) == len(want):
            break
    c.close()
    assert got == list(enumerate(want))


@pytest.mark.parametrize("listener,mechanism", CASES)
def test_aiokafka(kafka_secure_broker, listener, mechanism):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    kb = kafka_secure_broker
    conf: dict = {"bootstrap_servers": kb.bootstrap_for(listener), "security_protocol": listener}
    if "SSL" in listener:
        conf["ssl_context"] = kb.ssl_context(kb.client if listener == "SSL" else None)
    if listener.startswith("SASL_"):
        conf.update(sasl_mechanism=mechanism, sasl_plain_username="alice", sasl_plain_password="alice-secret")
    topic = _topic(f"aio-{listener}-{mechanism}")
    want = _values(5, topic)

    async def run() -> list:
        p = AIOKafkaProducer(**conf)
        await p.start()
        try:
            offsets = [(await p.send_and_wait(topic, v)).offset for v in want]
        finally:
            await p.stop()
        assert offsets == [0, 1, 2, 3, 4]
        c = AIOKafkaConsumer(topic, **conf, group_id=topic, auto_offset_reset="earliest")
        await c.start()
        got = []
        try:
            while len(got) < len(want):
                m = await asyncio.wait_for(c.getone(), 15)
                got.append((m.offset, m.value))
        finally:
            await c.stop()
        return got

    assert asyncio.run(run()) == list(enumerate(want))


def _kcat_args(kb, listener: str, mechanism: str | None) -> list[str]:
    conf = kb.librdkafka_config(listener, "alice", mechanism=mechanism or "PLAIN")
    args = ["-b", conf.pop("bootstrap.servers")]
    for k, v in conf.items():
        args += ["-X", f"{k}={v}"]
    return args


@pytest.mark.parametrize("listener,mechanism", [("SASL_SSL", "SCRAM-SHA-512"), ("SASL_PLAINTEXT", "PLAIN"),
                                                ("SSL", None)])
def test_kcat(kafka_secure_broker, listener, mechanism):
    kb = kafka_secure_broker
    topic = _topic(f"kcat-{listener}")
    args = _kcat_args(kb, listener, mechanism)
    subprocess.run(["kcat", *args, "-P", "-t", topic], input=b"one\ntwo\nthree\n", check=True, timeout=30)
    out = subprocess.run(["kcat", *args, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o:%s\\n"],
                         capture_output=True, check=True, timeout=30)
    assert out.stdout.decode().split() == ["0:one", "1:two", "2:three"]


def test_kafkajs(kafka_secure_broker):
    """kafkajs: SASL_SSL with SCRAM-SHA-512 (driver in tests/security/kafkajs_sasl.js)."""
    node_modules = ROOT / "compat_tests" / "node" / "node_modules"
    if not (node_modules / "kafkajs").exists():
        pytest.skip("kafkajs not installed (scripts/test installs it)")
    kb = kafka_secure_broker
    topic = _topic("kafkajs")
    cfg = {"brokers": [kb.bootstrap_for("SASL_SSL")], "ca": kb.ca.ca_pem.read_text(), "topic": topic,
           "mechanism": "scram-sha-512", "username": "alice", "password": "alice-secret"}
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/test installs it)")
    r = subprocess.run([node, str(Path(__file__).with_name("kafkajs_sasl.js"))], input=json.dumps(cfg).encode(),
                       capture_output=True, timeout=60, env={**os.environ, "NODE_PATH": str(node_modules)})
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert json.loads(r.stdout) == [["0", "a"], ["1", "b"], ["2", "c"]]


def test_scram_users_managed_with_admin_api(kafka_secure_broker):
    """AlterUserScramCredentials/DescribeUserScramCredentials over SASL_SSL,
    then the new user authenticates and the deleted one no longer can."""
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion, UserScramCredentialUpsertion)

    kb = kafka_secure_broker
    admin = AdminClient(kb.librdkafka_config("SASL_SSL", "admin"))
    user = f"bob-{uuid.uuid4().hex[:6]}"
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    futs = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, b"bob-secret")])
    futs[user].result(15)
    desc = admin.describe_user_scram_credentials([user])[user].result(15)
    assert [(ci.mechanism, ci.iterations) for ci in desc.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_512, 8192)]

    conf = kb.librdkafka_config("SASL_SSL", user, password="bob-secret")
    p = Producer(conf)
    topic = _topic("bob")
    p.produce(topic, b"from-bob")
    assert p.flush(15) == 0

    futs = admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)])
    futs[user].result(15)
    with pytest.raises(KafkaException) as e:
        admin.describe_user_scram_credentials([user])[user].result(15)
    assert "RESOURCE_NOT_FOUND" in str(e.value) or "does not exist" in str(e.value)
