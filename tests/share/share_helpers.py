"""Raw-protocol helpers for the share-group tests (tests/rawclient.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pykbroker.protocol.records import build_batch, decode_records, iter_batches
from rawclient import RawClient

ACCEPT, RELEASE, REJECT, GAP, RENEW = 1, 2, 3, 0, 4


def create_topic(c: RawClient, topic: str, partitions: int = 1) -> bytes:
    resp = c.call(19, 7, {"topics": [{"name": topic, "num_partitions": partitions, "replication_factor": 1,
                                      "assignments": [], "configs": []}], "timeout_ms": 5000,
                          "validate_only": False})
    assert resp["topics"][0]["error_code"] == 0, resp
    return bytes(resp["topics"][0]["topic_id"])


def produce(c: RawClient, topic: str, values: list[bytes], partition: int = 0, *, batch: int = 0) -> None:
    """Produce ``values`` in batches of ``batch`` records (0: one batch)."""
    step = batch or len(values)
    now = int(time.time() * 1000)
    for i in range(0, len(values), step):
        data = build_batch([(None, v, (), now) for v in values[i:i + step]])
        resp = c.call(0, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                             "topic_data": [{"name": topic, "partition_data": [
                                 {"index": partition, "records": data}]}]})
        p = resp["responses"][0]["partition_responses"][0]
        assert p["error_code"] == 0, resp


def heartbeat(c: RawClient, group: str, member: str, epoch: int, topics: list[str] | None = None,
              v: int = 1) -> dict[str, Any]:
    return c.call(76, v, {"group_id": group, "member_id": member, "member_epoch": epoch, "rack_id": None,
                          "subscribed_topic_names": topics})


def join(c: RawClient, group: str, topics: list[str], member: str | None = None) -> tuple[str, dict[str, Any]]:
    member = member or uuid.uuid4().hex
    resp = heartbeat(c, group, member, 0, topics)
    assert resp["error_code"] == 0, resp
    return member, resp


def alter_offsets(c: RawClient, group: str, topic: str, offsets: dict[int, int]) -> dict[str, Any]:
    return c.call(91, 0, {"group_id": group, "topics": [{"topic_name": topic, "partitions": [
        {"partition_index": p, "start_offset": o} for p, o in offsets.items()]}]})


def acks_for(topic_id: bytes, partition: int, batches: list[tuple[int, int, list[int]]]) -> list[dict[str, Any]]:
    return [{"topic_id": topic_id, "partitions": [{"partition_index": partition, "acknowledgement_batches": [
        {"first_offset": a, "last_offset": b, "acknowledge_types": t} for a, b, t in batches]}]}]


def share_fetch(c: RawClient, group: str, member: str, epoch: int, topic_id: bytes,
                partitions: list[int] | None = None, *, acks: list[tuple[int, int, list[int]]] | None = None,
                max_records: int = 500, max_wait_ms: int = 500, v: int = 1, renew: bool = False,
                forgotten: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    parts = [0] if partitions is None else partitions
    topics = [{"topic_id": topic_id, "partitions": [
        {"partition_index": p, "partition_max_bytes": 0, "acknowledgement_batches": [
            {"first_offset": a, "last_offset": b, "acknowledge_types": t} for a, b, t in (acks or [])]
            if p == parts[0] else []} for p in parts]}] if parts else []
    return c.call(78, v, {"group_id": group, "member_id": member, "share_session_epoch": epoch,
                          "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
                          "max_records": max_records, "batch_size": max_records, "is_renew_ack": renew,
                          "topics": topics, "forgotten_topics_data": forgotten or []})


def share_ack(c: RawClient, group: str, member: str, epoch: int, topic_id: bytes, partition: int,
              batches: list[tuple[int, int, list[int]]], v: int = 1, renew: bool = False) -> dict[str, Any]:
    return c.call(79, v, {"group_id": group, "member_id": member, "share_session_epoch": epoch,
                          "is_renew_ack": renew, "topics": acks_for(topic_id, partition, batches)})


def acquired(resp: dict[str, Any], partition: int = 0) -> list[tuple[int, int, int]]:
    """(first, last, delivery count) ranges of one partition in a ShareFetch response."""
    out = []
    for t in resp["responses"]:
        for p in t["partitions"]:
            if p["partition_index"] == partition:
                out += [(a["first_offset"], a["last_offset"], a["delivery_count"]) for a in p["acquired_records"]]
    return out


def acquired_offsets(resp: dict[str, Any], partition: int = 0) -> list[int]:
    return [o for a, b, _ in acquired(resp, partition) for o in range(a, b + 1)]


def values(resp: dict[str, Any], partition: int = 0) -> dict[int, bytes]:
    """offset -> value of the acquired records in a ShareFetch response."""
    offs = set(acquired_offsets(resp, partition))
    out: dict[int, bytes] = {}
    for t in resp["responses"]:
        for p in t["partitions"]:
            if p["partition_index"] != partition or not p["records"]:
                continue
            data = bytes(p["records"]) if not isinstance(p["records"], list) else b"".join(
                bytes(x) for x in p["records"])
            for h in iter_batches(data):
                for r in decode_records(data, h.position):
                    if r.offset in offs:
                        out[r.offset] = r.value
    return out


def partition_result(resp: dict[str, Any], partition: int = 0) -> dict[str, Any]:
    for t in resp["responses"]:
        for p in t["partitions"]:
            if p["partition_index"] == partition:
                return p
    raise AssertionError(f"partition {partition} not in {resp}")
