"""The console's actions and Kafka-level views, as Kafka requests.

Every change the console makes (create or delete a topic, change a config,
produce a test record, reset a group's offsets) and the views that Kafka's
admin APIs already compute (configs with their sources, group members and
their assignments, the offset for a timestamp) go through the handler
registry in-process: the request is encoded and decoded with the message
definitions, as from a client, and handled by the same handler, so the
console validates exactly as Kafka clients see it and answers with Kafka's
own error messages. Nothing here bypasses the handlers' checks.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any

from ...handlers import RequestContext, load_all
from ...protocol import codec, errors
from ...protocol.primitives import ZERO_UUID
from ...protocol.records import build_batch

if TYPE_CHECKING:
    from ..state import BrokerState

# which version of each API the console speaks (topic names, not ids)
VERSIONS = {0: 11, 2: 8, 8: 8, 15: 5, 16: 5, 19: 7, 20: 6, 32: 4, 44: 1, 69: 1, 77: 1, 90: 1, 91: 0}
CONFIG_SOURCES = {1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG", 3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
                  4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG",
                  7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}
TOPIC = 2  # ConfigResource type


class AdminError(Exception):
    """A Kafka error answered to one of the console's requests."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        name = errors.NAMES.get(code, str(code))
        super().__init__(f"{name}: {message}" if message else name)


async def call(state: "BrokerState", key: int, req: dict[str, Any]) -> dict[str, Any]:
    """Run one request through its handler, as a client's would be."""
    h = load_all()[key]
    v = VERSIONS[key]
    spec = codec.api(key)
    full, _ = spec.request.decode(spec.request.encode(req, v), v)
    ctx = RequestContext(state, key, v, 0, "pykbroker-console", peer="console",
                         listener=state.config.listeners[0].name)
    resp = await h.fn(ctx, full)
    if resp is None:
        raise AdminError(errors.UNKNOWN_SERVER_ERROR, "no response")
    return resp


def _check(code: int, message: str | None) -> None:
    if code != errors.NONE:
        raise AdminError(code, message)


async def create_topic(state: "BrokerState", name: str, partitions: int, replication_factor: int,
                       configs: dict[str, str]) -> None:
    resp = await call(state, 19, {"topics": [{
        "name": name, "num_partitions": partitions, "replication_factor": replication_factor,
        "assignments": [], "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
        "timeout_ms": 30000, "validate_only": False})
    t = resp["topics"][0]
    _check(t["error_code"], t["error_message"])


async def delete_topic(state: "BrokerState", name: str) -> None:
    resp = await call(state, 20, {"topics": [{"name": name, "topic_id": ZERO_UUID}], "timeout_ms": 30000})
    r = resp["responses"][0]
    _check(r["error_code"], r["error_message"])


async def alter_topic_config(state: "BrokerState", topic: str, name: str, value: str | None) -> None:
    """Set (or with None, delete) one topic config (IncrementalAlterConfigs)."""
    resp = await call(state, 44, {"resources": [{
        "resource_type": TOPIC, "resource_name": topic,
        "configs": [{"name": name, "config_operation": 0 if value is not None else 1, "value": value}]}],
        "validate_only": False})
    r = resp["responses"][0]
    _check(r["error_code"], r["error_message"])


async def topic_configs(state: "BrokerState", topic: str) -> list[dict[str, Any]]:
    """Every config of a topic with its value and source (DescribeConfigs)."""
    resp = await call(state, 32, {"resources": [{"resource_type": TOPIC, "resource_name": topic,
                                                  "configuration_keys": None}],
                                  "include_synonyms": False, "include_documentation": False})
    r = resp["results"][0]
    _check(r["error_code"], r["error_message"])
    return [{"name": c["name"], "value": None if c["is_sensitive"] else c["value"],
             "source": CONFIG_SOURCES.get(c["config_source"], str(c["config_source"])),
             "read_only": c["read_only"]} for c in sorted(r["configs"], key=lambda c: c["name"])]


async def produce(state: "BrokerState", topic: str, partition: int, key: bytes | None, value: bytes | None,
                  headers: list[tuple[str, bytes | None]]) -> int:
    """Append one record (acks=all); its offset."""
    batch = build_batch([(key, value, headers, int(time.time() * 1000))])
    resp = await call(state, 0, {"transactional_id": None, "acks": -1, "timeout_ms": 30000, "topic_data": [
        {"name": topic, "partition_data": [{"index": partition, "records": batch}]}]})
    p = resp["responses"][0]["partition_responses"][0]
    _check(p["error_code"], p["error_message"])
    return int(p["base_offset"])


async def offset_for(state: "BrokerState", topic: str, partition: int, timestamp: int) -> int:
    """ListOffsets: the first offset at or after ``timestamp`` (ms; -1 latest,
    -2 earliest); the log end offset when there is none."""
    resp = await call(state, 2, {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
        {"partition_index": partition, "current_leader_epoch": -1, "timestamp": timestamp}]}]})
    p = resp["topics"][0]["partitions"][0]
    _check(p["error_code"], None)
    off = int(p["offset"])
    if off < 0:
        return await offset_for(state, topic, partition, -1)
    return off


async def commit_offsets(state: "BrokerState", group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for a group without members (as kafka-consumer-groups
    --reset-offsets does: generation -1, no member id)."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (t, p), off in sorted(offsets.items()):
        by_topic.setdefault(t, []).append({"partition_index": p, "committed_offset": off,
                                           "committed_leader_epoch": -1, "committed_metadata": ""})
    resp = await call(state, 8, {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
                                 "group_instance_id": None, "retention_time_ms": -1,
                                 "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]})
    for t in resp["topics"]:
        for p in t["partitions"]:
            _check(p["error_code"], f"{t['name']}-{p['partition_index']}")


async def list_groups(state: "BrokerState") -> dict[str, dict[str, str]]:
    """{group id: {"type", "state", "protocol_type"}} of every group (ListGroups)."""
    resp = await call(state, 16, {"states_filter": [], "types_filter": []})
    return {g["group_id"]: {"type": g["group_type"] or "classic", "state": g["group_state"],
                            "protocol_type": g["protocol_type"]} for g in resp["groups"]}


def consumer_assignment(data: bytes | None) -> list[tuple[str, list[int]]]:
    """A classic consumer member's assignment (ConsumerProtocolAssignment:
    version, [topic, [partition]], user data) as (topic, partitions)."""
    if not data:
        return []
    out = []
    try:
        pos = 2
        (n,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(max(n, 0)):
            (ln,) = struct.unpack_from(">h", data, pos)
            pos += 2
            topic = bytes(data[pos:pos + ln]).decode("utf-8")
            pos += ln
            (np,) = struct.unpack_from(">i", data, pos)
            pos += 4
            parts = list(struct.unpack_from(f">{max(np, 0)}i", data, pos))
            pos += 4 * max(np, 0)
            out.append((topic, sorted(parts)))
    except (struct.error, UnicodeDecodeError):
        return out
    return out


async def group_members(state: "BrokerState", group: str, group_type: str) -> list[dict[str, Any]]:
    """Members with client id, host and assigned partitions, from the
    group's describe API (DescribeGroups, ConsumerGroupDescribe or
    ShareGroupDescribe)."""
    out: list[dict[str, Any]] = []
    if group_type in ("consumer", "share"):
        key = 69 if group_type == "consumer" else 77
        resp = await call(state, key, {"group_ids": [group], "include_authorized_operations": False})
        g = resp["groups"][0]
        if g["error_code"] != errors.NONE:
            return out
        for m in g["members"]:
            tps = (m.get("assignment") or {}).get("topic_partitions") or []
            out.append({"member_id": m["member_id"], "client_id": m["client_id"], "client_host": m["client_host"],
                        "instance_id": m.get("instance_id"),
                        "assignment": sorted((tp["topic_name"], sorted(tp["partitions"])) for tp in tps)})
        return out
    resp = await call(state, 15, {"groups": [group], "include_authorized_operations": False})
    g = resp["groups"][0]
    if g["error_code"] != errors.NONE:
        return out
    for m in g["members"]:
        assignment = consumer_assignment(m["member_assignment"]) if g["protocol_type"] == "consumer" else []
        out.append({"member_id": m["member_id"], "client_id": m["client_id"], "client_host": m["client_host"],
                    "instance_id": m.get("group_instance_id"), "assignment": assignment})
    return out


async def share_offsets(state: "BrokerState", group: str) -> list[dict[str, Any]]:
    """A share group's start offset and lag per partition
    (DescribeShareGroupOffsets v1), as rows like ``inspect.group``'s offsets."""
    resp = await call(state, 90, {"groups": [{"group_id": group, "topics": None}]})
    g = resp["groups"][0]
    if g["error_code"] != errors.NONE:
        return []
    out = []
    for t in g["topics"]:
        for p in t["partitions"]:
            if p["error_code"] != errors.NONE or p["start_offset"] < 0:
                continue
            ps = state.partition(t["topic_name"], p["partition_index"])
            out.append({"topic": t["topic_name"], "partition": p["partition_index"],
                        "committed": p["start_offset"], "high_watermark": ps.high_watermark if ps else None,
                        "lag": p["lag"] if p["lag"] >= 0 else None})
    return sorted(out, key=lambda o: (o["topic"], o["partition"]))


async def alter_share_offsets(state: "BrokerState", group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Set an empty share group's start offsets (AlterShareGroupOffsets)."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (t, p), off in sorted(offsets.items()):
        by_topic.setdefault(t, []).append({"partition_index": p, "start_offset": off})
    resp = await call(state, 91, {"group_id": group, "topics": [{"topic_name": t, "partitions": ps}
                                                                  for t, ps in by_topic.items()]})
    _check(resp["error_code"], resp["error_message"])
    for t in resp["responses"]:
        for p in t["partitions"]:
            _check(p["error_code"], p["error_message"] or f"{t['topic_name']}-{p['partition_index']}")
