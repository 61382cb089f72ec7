"""DescribeTopicPartitions (75) v0, raw: partitions of named or all topics,
sorted, paginated by ResponsePartitionLimit and a cursor, Kafka's errors."""

from __future__ import annotations

import uuid

from pykbroker.protocol import errors
from rawclient import RawClient


def _create(c: RawClient, topic: str, partitions: int) -> None:
    r = c.call(19, 5, {"topics": [{"name": topic, "num_partitions": partitions, "replication_factor": 1,
                                   "assignments": [], "configs": []}], "timeout_ms": 10000})
    assert r["topics"][0]["error_code"] == 0, r


def _dtp(c: RawClient, topics: list[str], limit: int = 2000, cursor: tuple[str, int] | None = None) -> dict:
    return c.call(75, 0, {"topics": [{"name": t} for t in topics], "response_partition_limit": limit,
                          "cursor": None if cursor is None else {"topic_name": cursor[0],
                                                                 "partition_index": cursor[1]}})


def _shape(r: dict) -> tuple[list[tuple[str, int, list[int]]], tuple[str, int] | None]:
    cur = r["next_cursor"]
    return ([(t["name"], t["error_code"], [p["partition_index"] for p in t["partitions"]]) for t in r["topics"]],
            None if cur is None else (cur["topic_name"], cur["partition_index"]))


def test_named_topics_sorted_with_partition_details(shared_broker):
    base = f"dtp-{uuid.uuid4().hex[:6]}"
    b_, a_ = f"{base}-b", f"{base}-a"
    with RawClient(shared_broker.bootstrap) as c:
        _create(c, a_, 2)
        _create(c, b_, 3)
        md = c.call(3, 12, {"topics": [{"name": a_, "topic_id": b"\0" * 16}], "allow_auto_topic_creation": False})
        r = _dtp(c, [b_, a_, f"{base}-missing", a_])
        assert _shape(r) == ([(a_, 0, [0, 1]), (b_, 0, [0, 1, 2]),
                              (f"{base}-missing", errors.UNKNOWN_TOPIC_OR_PARTITION, [])], None)
        ta = r["topics"][0]
        assert ta["topic_id"] == md["topics"][0]["topic_id"] and ta["is_internal"] is False
        assert ta["topic_authorized_operations"] > 0
        p = ta["partitions"][0]
        assert (p["error_code"], p["leader_id"], p["leader_epoch"], p["replica_nodes"], p["isr_nodes"],
                p["offline_replicas"], p["eligible_leader_replicas"], p["last_known_elr"]) == \
            (0, 0, 0, [0], [0], [], [], [])
        missing = r["topics"][2]
        assert missing["topic_id"] == b"\0" * 16


def test_pagination_with_cursor(shared_broker):
    base = f"dtp-page-{uuid.uuid4().hex[:6]}"
    names = [f"{base}-{i}" for i in range(3)]
    with RawClient(shared_broker.bootstrap) as c:
        for n in names:
            _create(c, n, 3)
        # the limit inside a topic: that topic in part, the cursor at its next partition
        assert _shape(_dtp(c, names, limit=4)) == ([(names[0], 0, [0, 1, 2]), (names[1], 0, [0])], (names[1], 1))
        assert _shape(_dtp(c, names, limit=4, cursor=(names[1], 1))) == (
            [(names[1], 0, [1, 2]), (names[2], 0, [0, 1])], (names[2], 2))
        assert _shape(_dtp(c, names, limit=4, cursor=(names[2], 2))) == ([(names[2], 0, [2])], None)
        # the limit between two topics: the cursor at the next topic's first partition
        assert _shape(_dtp(c, names, limit=3)) == ([(names[0], 0, [0, 1, 2])], (names[1], 0))
        # all topics: sorted, internal ones included; walking the pages gives each partition once
        seen, cursor = [], None
        while True:
            r = _dtp(c, [], limit=5, cursor=cursor)
            for t in r["topics"]:
                assert t["error_code"] == 0
                seen += [(t["name"], p["partition_index"]) for p in t["partitions"]]
            shape = _shape(r)
            if shape[1] is None:
                break
            cursor = shape[1]
        assert seen == sorted(seen) and len(seen) == len(set(seen))
        assert [(n, i) for n in names for i in range(3)] == [x for x in seen if x[0].startswith(base)]


def test_cursor_must_name_a_requested_topic(shared_broker):
    base = f"dtp-cur-{uuid.uuid4().hex[:6]}"
    with RawClient(shared_broker.bootstrap) as c:
        _create(c, base, 1)
        r = _dtp(c, [base], cursor=(f"{base}-other", 0))
        assert _shape(r) == ([(base, errors.INVALID_REQUEST, [])], None)


def test_broker_limit_caps_the_request(broker_factory):
    b = broker_factory({"max.request.partition.size.limit": 2})
    with RawClient(b.bootstrap) as c:
        _create(c, "capped", 5)
        assert _shape(_dtp(c, ["capped"], limit=100)) == ([("capped", 0, [0, 1])], ("capped", 2))
