"""Share groups on the in-memory engine (the pytest plugin's broker):
a ShareConsumer reads a topic from the start with share.auto.offset.reset=earliest."""

from __future__ import annotations

import time

import pytest

ck = pytest.importorskip("confluent_kafka")
if not hasattr(ck, "ShareConsumer"):
    pytest.skip("confluent-kafka without ShareConsumer", allow_module_level=True)


def test_share_consumer_on_the_memory_engine(kafka_bootstrap, kafka_topic):
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    p = ck.Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(20):
        p.produce(kafka_topic, f"m{i}".encode(), partition=0)
    assert p.flush(10) == 0
    group = "share-" + kafka_topic
    a = AdminClient({"bootstrap.servers": kafka_bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result()
    c = ck.ShareConsumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    c.subscribe([kafka_topic])
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 20
    while len(got) < 20 and time.monotonic() < deadline:
        got += [(m.offset(), m.value()) for m in c.poll(0.5) if m.error() is None]
    c.commit_sync()
    c.close()
    assert sorted(got) == [(i, f"m{i}".encode()) for i in range(20)]
