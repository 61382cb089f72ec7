"""DescribeTopicPartitions (75) with kafka-python's admin client
(``describe_topic_partitions``): partition details and paging by cursor."""

from __future__ import annotations

import uuid

from clientlib import create_topic


def test_kafka_python_pages_through_partitions(shared_broker):
    from kafka import KafkaAdminClient

    base = f"dtp-kp-{uuid.uuid4().hex[:6]}"
    names = [f"{base}-a", f"{base}-b"]
    for n in names:
        create_topic(shared_broker.bootstrap, n, 4)
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap)
    try:
        pages, cursor = [], None
        while True:
            r = admin.describe_topic_partitions(names[::-1], response_partition_limit=3, cursor=cursor)
            pages.append([(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in r["topics"]])
            for t in r["topics"]:
                assert t["error_code"] == 0 and t["is_internal"] is False
                for p in t["partitions"]:
                    assert (p["leader_id"], p["replica_nodes"], p["isr_nodes"], p["error_code"]) == (0, [0], [0], 0)
            cursor = r["next_cursor"]
            if cursor is None:
                break
        a, b = names
        assert pages == [[(a, [0, 1, 2])], [(a, [3]), (b, [0, 1])], [(b, [2, 3])]]
        r = admin.describe_topic_partitions([f"{base}-missing"])
        assert [(t["name"], t["error_code"]) for t in r["topics"]] == [(f"{base}-missing", 3)]
    finally:
        admin.close()
