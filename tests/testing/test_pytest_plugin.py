"""The pytest plugin, seen from a fresh project.

What is proved here:
- acceptance: a new project directory (its own pytest.ini, no conftest, no
  imports from this repo) gets ``kafka_bootstrap`` from the installed
  package and works with confluent-kafka, kafka-python and aiokafka with no
  other setup; ``kafka_topic``, ``kafka_faults``, ``kafka_broker.records``
  and the ini settings work there too, and one broker serves the session;
- the plugin is registered in the ``pytest11`` entry point group;
- in this repo, the plugin's fixtures do not shadow ours (``unique_topic``,
  ``broker``, ``shared_broker`` still come from tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata

FRESH_TESTS = '''
import asyncio
import time

import pytest


def test_confluent_kafka(kafka_bootstrap, kafka_topic):
    from confluent_kafka import Consumer, Producer

    p = Producer({"bootstrap.servers": kafka_bootstrap})
    p.produce(kafka_topic, b"hello from confluent")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "g1", "auto.offset.reset": "earliest"})
    c.subscribe([kafka_topic])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                assert m.value() == b"hello from confluent"
                break
        else:
            pytest.fail("nothing consumed")
    finally:
        c.close()


def test_kafka_python(kafka_bootstrap, kafka_topic):
    from kafka import KafkaConsumer, KafkaProducer

    # kafka-python turns idempotence on by default; pykbroker has no
    # InitProducerId yet (issue 6), so it is switched off here
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    p.send(kafka_topic, b"hello from kafka-python").get(timeout=10)
    p.close()
    c = KafkaConsumer(kafka_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=10000)
    try:
        assert next(iter(c)).value == b"hello from kafka-python"
    finally:
        c.close()


def test_aiokafka(kafka_bootstrap, kafka_topic):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await p.start()
        try:
            await p.send_and_wait(kafka_topic, b"hello from aiokafka")
        finally:
            await p.stop()
        c = AIOKafkaConsumer(kafka_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await c.start()
        try:
            m = await asyncio.wait_for(c.getone(), 30)
            assert m.value == b"hello from aiokafka"
        finally:
            await c.stop()

    asyncio.run(main())


def test_helpers(kafka_broker, kafka_bootstrap, kafka_faults, kafka_topic_factory):
    from confluent_kafka import Producer

    assert kafka_broker.bootstrap == kafka_bootstrap
    topic = kafka_topic_factory(partitions=3, prefix="orders")
    assert topic.startswith("orders-") and kafka_broker.topics()[topic] == 3
    kafka_faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", count=1)
    p = Producer({"bootstrap.servers": kafka_bootstrap, "retry.backoff.ms": 10})
    p.produce(topic, b"x", partition=1)
    assert p.flush(10) == 0
    assert [r["value"] for r in kafka_broker.records(topic)] == [b"x"]
    assert kafka_faults.list()[0]["hits"] == 1


def test_faults_were_cleared(kafka_broker):
    assert kafka_broker.faults.list() == []


def test_ini_settings(kafka_broker):
    assert kafka_broker.control_url.startswith("http://127.0.0.1:")
    assert kafka_broker.config["num.partitions"] == 2
    assert kafka_broker.config["pykbroker.storage"] == "memory"
'''

FRESH_INI = """\
[pytest]
pykbroker_control = true
pykbroker_properties =
    num.partitions=2
"""


def test_fresh_project_uses_the_fixtures(tmp_path):
    (tmp_path / "pytest.ini").write_text(FRESH_INI)
    (tmp_path / "test_with_kafka.py").write_text(textwrap.dedent(FRESH_TESTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PYTHONPATH"))}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                          "ignore::DeprecationWarning"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert re.search(r"\b6 passed\b", out.stdout), out.stdout[-2000:]


def test_fixtures_listed_in_a_fresh_project(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    for name in ("kafka_broker", "kafka_bootstrap", "kafka_topic", "kafka_topic_factory", "kafka_faults",
                 "kafka_broker_factory"):
        assert name in out.stdout, name


def test_entry_point_registered():
    eps = metadata.entry_points(group="pytest11")
    assert any(ep.name == "pykbroker" and ep.value == "pykbroker.testing.plugin" for ep in eps)


def test_repo_fixtures_are_not_shadowed(unique_topic):
    # tests/conftest.py's unique_topic: "<test name>-<10 hex digits>"
    assert re.fullmatch(r"test_repo_fixtures_are_not_shadowed-[0-9a-f]{10}", unique_topic)
    import pykbroker.testing.plugin as plugin

    names = set(re.findall(r"^def (\w+)\(", open(plugin.__file__).read(), re.M)) - {
        "pytest_addoption", "_properties", "_prefix_for"}
    assert names == {"kafka_broker", "kafka_bootstrap", "kafka_topic_factory", "kafka_topic", "kafka_faults",
                     "kafka_broker_factory", "kafka_tls_ca", "kafka_secure_broker"}
    assert not names & {"broker", "shared_broker", "broker_factory", "unique_topic"}
