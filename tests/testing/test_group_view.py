"""The read-only group view (state, committed offsets, lag).

What is proved here:
- committed offsets and classic group metadata are folded from
  ``__consumer_offsets`` records in Kafka's formats (written here with
  ``pykbroker.group.records``), tombstones included, incrementally;
- lag = high watermark - committed, per partition, in the view and in
  /metrics (``pykbroker_group_lag``);
- a live group of a real consumer shows its coordinator state and members.
"""

from __future__ import annotations

import time

import pytest

records_mod = pytest.importorskip("pykbroker.group.records")

from pykbroker.protocol.records import build_batch, validate_batches  # noqa: E402
from pykbroker.testing.inspect import OFFSETS_TOPIC  # noqa: E402


def _append(b, topic: str, pairs: list[tuple[bytes, bytes | None]]) -> None:
    data = bytearray(build_batch([(k, v, [], int(time.time() * 1000)) for k, v in pairs]))

    def go() -> None:
        st = b.broker.state
        ts = st.topics.get(topic) or st.ensure_internal_topic(topic, 1)
        p = ts.partitions[0]
        p.log.append(data, validate_batches(bytes(data), max_batch_bytes=None), leader_epoch=0,
                     now_ms=int(time.time() * 1000))
        st.after_append(p)

    b.call(go)


def test_offsets_and_metadata_folded_from_the_log(kafka_broker_factory):
    R = records_mod
    b = kafka_broker_factory()
    topic = b.create_topic("lagged", 2)
    _append(b, topic, [(None, b"x")] * 7)  # partition 0: high watermark 7
    om = R.OffsetAndMetadata(offset=3, leader_epoch=-1, metadata="", commit_timestamp=1)
    meta = {"protocol_type": "consumer", "generation": 4, "protocol": "range", "leader": "m1",
            "current_state_timestamp": -1, "members": [
                {"member_id": "m1", "group_instance_id": None, "client_id": "c1", "client_host": "/127.0.0.1",
                 "rebalance_timeout": 1000, "session_timeout": 1000, "subscription": b"", "assignment": b""}]}
    _append(b, OFFSETS_TOPIC, [
        (R.offset_commit_key("synthetic", topic, 0), R.offset_commit_value(om)),
        (R.offset_commit_key("synthetic", topic, 1), R.offset_commit_value(om)),
        (R.group_metadata_key("synthetic"), R.group_metadata_value(meta)),
    ])
    g = b.group("synthetic")
    assert (g["state"], g["generation"], g["protocol"], g["leader"]) == ("Stable", 4, "range", "m1")
    assert [m["client_id"] for m in g["members"]] == ["c1"]
    assert [(o["partition"], o["committed"], o["high_watermark"], o["lag"]) for o in g["offsets"]] == [
        (0, 3, 7, 4), (1, 3, 0, 0)]
    assert g["total_lag"] == 4
    assert "pykbroker_group_lag{group=\"synthetic\",topic=\"lagged\",partition=\"0\"} 4" in b.metrics_text()
    # incremental: a tombstone for partition 1 and an emptied group
    meta["members"] = []
    _append(b, OFFSETS_TOPIC, [(R.offset_commit_key("synthetic", topic, 1), None),
                               (R.group_metadata_key("synthetic"), R.group_metadata_value(meta))])
    g = b.group("synthetic")
    assert g["state"] == "Empty" and [o["partition"] for o in g["offsets"]] == [0]
    assert "synthetic" in [x["group_id"] for x in b.groups()]
    _append(b, OFFSETS_TOPIC, [(R.group_metadata_key("synthetic"), None)])
    assert b.group("synthetic")["offsets"] == []


def test_live_group_of_a_real_consumer(kafka_broker, kafka_topic):
    from confluent_kafka import Consumer, Producer

    if getattr(kafka_broker.state, "group_coordinator", None) is None:
        pytest.skip("pending: group coordinator (issue 4)")
    p = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for i in range(4):
        p.produce(kafka_topic, b"%d" % i)
    assert p.flush(10) == 0
    gid = f"live-{kafka_topic}"
    c = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": gid, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([kafka_topic])
    try:
        got = 0
        deadline = time.monotonic() + 30
        while got < 1 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got += 1
                c.commit(message=m, asynchronous=False)
        g = kafka_broker.group(gid)
        assert g["state"] == "Stable" and g["source"] == "coordinator" and len(g["members"]) == 1
        assert g["offsets"] == [{"topic": kafka_topic, "partition": 0, "committed": 1, "high_watermark": 4,
                                 "lag": 3}]
    finally:
        c.close()
