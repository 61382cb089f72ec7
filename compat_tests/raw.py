"""Broker-side checks that do not go through the client under test.

Uses the project's own codec through ``tests/rawclient.py``: ApiVersions (to
decide pending cells), CreateTopics (scenario fixtures), ListOffsets, and a
Fetch that returns the stored record batches' headers (to check what a client
actually wrote: batch sizes, producer ids, transactional flags).

``bs`` is a bootstrap list (one broker, or every broker of a cluster): each
request goes where Kafka's clients send it (CreateTopics to the controller,
ListOffsets and Fetch to the partition's leader, per Metadata).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from rawclient import RawClient  # noqa: E402

from pykbroker.protocol.primitives import ZERO_UUID  # noqa: E402
from pykbroker.protocol.records import BatchHeader, decode_records, iter_batches  # noqa: E402


def _first(bs: str) -> str:
    return bs.split(",")[0]


def _metadata(bs: str, topics: list[str] | None) -> dict:
    with RawClient(_first(bs)) as c:
        return c.call(3, 12, {"topics": None if topics is None else
                              [{"name": t, "topic_id": ZERO_UUID} for t in topics],
                              "allow_auto_topic_creation": False,
                              "include_topic_authorized_operations": False})


def _address(md: dict, node_id: int) -> str | None:
    for b in md["brokers"]:
        if b["node_id"] == node_id:
            return f"{b['host']}:{b['port']}"
    return None


def controller(bs: str) -> str:
    """The controller's address (a lone broker is its own)."""
    if "," not in bs:
        return bs
    deadline = time.monotonic() + 30
    while True:
        md = _metadata(bs, [])
        addr = _address(md, md["controller_id"])
        if addr is not None or time.monotonic() > deadline:
            return addr or _first(bs)
        time.sleep(0.1)


def leader(bs: str, topic: str, partition: int, timeout: float = 30, *, ask_anyway: bool = False) -> str:
    """The partition leader's address (Metadata from the first broker of
    ``bs``; retried until it names one)."""
    if "," not in bs and not ask_anyway:
        return bs
    deadline = time.monotonic() + timeout
    while True:
        md = _metadata(bs, [topic])
        (t,) = md["topics"]
        for p in t["partitions"] if t["error_code"] == 0 else []:
            if p["partition_index"] == partition and p["error_code"] == 0 and p["leader_id"] >= 0:
                addr = _address(md, p["leader_id"])
                if addr is not None:
                    return addr
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}-{partition} has no leader in metadata: {t}")
        time.sleep(0.1)


def leader_ids(bs: str, topic: str) -> dict[int, int]:
    """Partition -> leader id, per the first broker's Metadata."""
    (t,) = _metadata(bs, [topic])["topics"]
    assert t["error_code"] == 0, t
    return {p["partition_index"]: p["leader_id"] for p in t["partitions"]}


def api_versions(bs: str) -> dict[int, tuple[int, int]]:
    with RawClient(_first(bs)) as c:
        r = c.call(18, 3, {"client_software_name": "pykbroker-compat", "client_software_version": "1"})
    assert r["error_code"] == 0, r
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in r["api_keys"]}


def create_topic(bs: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
    body = {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": -1,
                        "assignments": [],
                        "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
            "timeout_ms": 10000, "validate_only": False}
    with RawClient(controller(bs), timeout=30) as c:
        (res,) = c.call(19, 7, body)["topics"]
    assert res["error_code"] == 0, res
    if "," in bs:  # every broker knows the leaders before a client asks any of them
        for addr in bs.split(","):
            for p in range(partitions):
                leader(addr, name, p, ask_anyway=True)


def partition_count(bs: str, name: str) -> int | None:
    """Partitions of ``name`` per Metadata, None if the topic does not exist."""
    (t,) = _metadata(bs, [name])["topics"]
    if t["error_code"] == 3:
        return None
    assert t["error_code"] == 0, t
    return len(t["partitions"])


def end_offset(bs: str, topic: str, partition: int, committed: bool = False) -> int:
    """High watermark (or, with committed=True, the last stable offset)."""
    body = {"replica_id": -1, "isolation_level": 1 if committed else 0,
            "topics": [{"name": topic, "partitions": [
                {"partition_index": partition, "current_leader_epoch": -1, "timestamp": -1}]}]}
    with RawClient(leader(bs, topic, partition)) as c:
        (t,) = c.call(2, 7, body)["topics"]
    (p,) = t["partitions"]
    assert p["error_code"] == 0, p
    return p["offset"]


def wait_end_offset(bs: str, topic: str, partition: int, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        o = end_offset(bs, topic, partition)
        if o >= at_least or time.monotonic() > deadline:
            return o
        time.sleep(0.05)


def values(bs: str, topic: str, partition: int = 0) -> list[bytes | None]:
    """The values of the data records stored in the partition, in offset order."""
    out: list[bytes | None] = []
    for h, data in _fetch(bs, topic, partition, 0):
        if not h.is_control:
            out += [r.value for r in decode_records(data, h.position)]
    return out


def batches(bs: str, topic: str, partition: int = 0, offset: int = 0) -> list[BatchHeader]:
    """Headers of the record batches stored from ``offset`` on (Fetch v11, read_uncommitted)."""
    return [h for h, _ in _fetch(bs, topic, partition, offset)]


def uncompressed_batch_values(bs: str, topic: str, partition: int = 0) -> list[list[bytes | None]]:
    """The record values of each batch stored without compression."""
    return [[r.value for r in decode_records(data, h.position)]
            for h, data in _fetch(bs, topic, partition, 0) if h.compression == 0]


def _fetch(bs: str, topic: str, partition: int, offset: int) -> list[tuple[BatchHeader, bytes]]:
    """Every stored batch from ``offset`` on, with the fetched buffer it is in."""
    out: list[tuple[BatchHeader, bytes]] = []
    with RawClient(leader(bs, topic, partition)) as c:
        while True:
            body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 64 << 20,
                    "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                    "topics": [{"topic": topic, "partitions": [
                        {"partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
                         "log_start_offset": -1, "partition_max_bytes": 16 << 20}]}],
                    "forgotten_topics_data": [], "rack_id": ""}
            r = c.call(1, 11, body)
            (t,) = r["responses"]
            (p,) = t["partitions"]
            assert p["error_code"] == 0, p
            data = bytes(p["records"] or b"")
            got = list(iter_batches(data))
            if not got:
                return out
            out += [(h, data) for h in got]
            offset = got[-1].next_offset
