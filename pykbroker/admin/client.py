"""A small blocking Kafka client on our own codec, for the CLI's commands.

One socket per broker, one request at a time on it; the version of each API
is the highest both sides serve (ApiVersions) capped at :data:`PREFERRED`,
versions whose request shapes the commands are written for (topic names,
not ids; one group per OffsetFetch), which every Kafka since 2.8 serves.
Errors carry Kafka's code name: :class:`ClientError` (a clear message for
the command line), :class:`KafkaError` for a code in a response.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

from ..protocol import codec
from ..protocol import errors as E
from ..protocol.framing import decode_response, encode_request
from ..protocol.records import (
    COMPRESSION_NONE,
    Record,
    build_batch,
    decode_records,
    iter_batches,
)

Message = dict[str, Any]

# API key -> the newest version the commands are written for
PREFERRED: dict[int, int] = {
    0: 9,    # Produce
    1: 12,   # Fetch (v13+ names topics by id)
    2: 7,    # ListOffsets
    3: 12,   # Metadata
    8: 8,    # OffsetCommit (v10 names topics by id)
    9: 7,    # OffsetFetch (v8+ batches groups)
    10: 3,   # FindCoordinator (v4+ batches keys)
    11: 7,   # JoinGroup
    12: 4,   # Heartbeat
    13: 4,   # LeaveGroup
    14: 5,   # SyncGroup
    15: 5,   # DescribeGroups
    16: 4,   # ListGroups
    18: 3,   # ApiVersions
    19: 5,   # CreateTopics
    20: 4,   # DeleteTopics (v6 adds ids)
    32: 4,   # DescribeConfigs
    37: 2,   # CreatePartitions
    42: 2,   # DeleteGroups
    44: 1,   # IncrementalAlterConfigs
    45: 0,   # AlterPartitionReassignments (v1, Kafka 3.6+, adds allow_replication_factor_change)
    46: 0,   # ListPartitionReassignments
    69: 1,   # ConsumerGroupDescribe
}

EARLIEST = -2
LATEST = -1
TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4  # config resource types
SET, DELETE = 0, 1  # IncrementalAlterConfigs operations
MAX_RESPONSE = 256 << 20  # a bigger size prefix means the peer does not speak Kafka


class ClientError(Exception):
    """Something the user should read: a connection failure, a bad answer."""


class KafkaError(ClientError):
    """An error code in a broker's answer."""

    def __init__(self, code: int, what: str, message: str | None = None) -> None:
        self.code = code
        self.name = E.NAMES.get(code, f"error {code}")
        detail = f": {message}" if message else ""
        super().__init__(f"{what}: {self.name}{detail}")


def check(code: int, what: str, message: str | None = None) -> None:
    if code:
        raise KafkaError(code, what, message)


def parse_servers(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` (IPv6 as ``[::1]:9092``)."""
    out = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ClientError(f"bootstrap server {item!r} is not host:port")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    if not out:
        raise ClientError("--bootstrap-server is empty")
    return out


class Connection:
    """One broker: a socket, correlation ids, the negotiated versions."""

    def __init__(self, host: str, port: int, *, client_id: str, timeout: float) -> None:
        self.address = (host, port)
        self.client_id = client_id
        self.timeout = timeout
        self._corr = 0
        self.versions: dict[int, tuple[int, int]] = {}
        self._in_flight = False
        self._connect()

    def _connect(self) -> None:
        host, port = self.address
        try:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
        except OSError as e:
            raise ClientError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        self.sock.settimeout(self.timeout)
        self._negotiate()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _negotiate(self) -> None:
        resp = self._roundtrip(18, 3, {"client_software_name": "pykbroker-cli",
                                       "client_software_version": "1"})
        if resp["error_code"] == E.UNSUPPORTED_VERSION:  # an old broker: v0 is always understood
            resp = self._roundtrip(18, 0, {})
        check(resp["error_code"], "ApiVersions")
        self.versions = {k["api_key"]: (k["min_version"], k["max_version"]) for k in resp["api_keys"]}

    def version(self, api_key: int) -> int:
        api = codec.api(api_key)
        if api_key not in self.versions:
            raise ClientError(f"broker {self.address[0]}:{self.address[1]} does not serve {api.name}")
        lo, hi = self.versions[api_key]
        v = min(hi, PREFERRED.get(api_key, api.valid.hi), api.valid.hi)
        if v < lo or v < api.valid.lo:
            raise ClientError(f"broker {self.address[0]}:{self.address[1]} serves {api.name} "
                              f"v{lo}-{hi}, none of which this client speaks")
        return v

    def call(self, api_key: int, body: Message, version: int | None = None) -> Message:
        return self._roundtrip(api_key, self.version(api_key) if version is None else version, body)

    def _roundtrip(self, api_key: int, version: int, body: Message) -> Message:
        if self._in_flight:
            # a request was interrupted (Ctrl-C, a timeout) before its answer was read:
            # that answer would come next, so start over on a new socket
            self.close()
            self._in_flight = False
            self._connect()
        self._in_flight = True
        resp = self._exchange(api_key, version, body)
        self._in_flight = False
        return resp

    def _exchange(self, api_key: int, version: int, body: Message) -> Message:
        api = codec.api(api_key)
        self._corr += 1
        frame = encode_request(api, version, self._corr, body, client_id=self.client_id)
        try:
            self.sock.sendall(frame)
            if api_key == 0 and body.get("acks") == 0:
                return {}
            (size,) = struct.unpack(">i", self._recv(4))
            if not 4 <= size <= MAX_RESPONSE:
                raise ClientError(f"{self.address[0]}:{self.address[1]} is not a Kafka broker? "
                                  f"(an answer of {size} bytes)")
            data = self._recv(size)
        except OSError as e:
            raise ClientError(f"{api.name} to {self.address[0]}:{self.address[1]}: "
                              f"{e.strerror or e or 'timed out'}") from None
        try:
            corr, resp = decode_response(api, version, data)
        except Exception as e:  # the codec's DecodeError, or worse: a peer that is no Kafka broker
            raise ClientError(f"{api.name} from {self.address[0]}:{self.address[1]}: "
                              f"an answer that does not parse ({e})") from None
        if corr != self._corr:
            raise ClientError(f"{api.name}: answer to request {corr}, expected {self._corr}")
        return resp

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ClientError(f"broker {self.address[0]}:{self.address[1]} closed the connection")
            buf += chunk
        return bytes(buf)


@attrs.define
class PartitionMeta:
    partition: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int]
    error_code: int = 0


@attrs.define
class TopicMeta:
    name: str
    error_code: int
    topic_id: str
    internal: bool
    partitions: dict[int, PartitionMeta]


@attrs.define
class Metadata:
    brokers: dict[int, tuple[str, int, str | None]]
    controller_id: int
    cluster_id: str | None
    topics: dict[str, TopicMeta]


@attrs.define
class FetchedPartition:
    partition: int
    error_code: int
    high_watermark: int
    log_start_offset: int
    records: list[Record]
    next_offset: int


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (32 bits, seed 0x9747b28c), as an unsigned int."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    n4 = length & ~3
    for i in range(0, n4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length - n4
    if rest == 3:
        h ^= data[n4 + 2] << 16
    if rest >= 2:
        h ^= data[n4 + 1] << 8
    if rest >= 1:
        h ^= data[n4]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KafkaClient:
    """Bootstrap, metadata, and requests routed to leaders and coordinators."""

    def __init__(self, bootstrap: str, *, client_id: str = "pykbroker-cli", timeout: float = 30.0) -> None:
        self.client_id = client_id
        self.timeout = timeout
        self._servers = parse_servers(bootstrap)
        self._conns: dict[int, Connection] = {}
        self._bootstrap: Connection | None = None
        self._brokers: dict[int, tuple[str, int, str | None]] = {}
        self._last_meta: Metadata | None = None
        failures = []
        for host, port in self._servers:
            try:
                self._bootstrap = Connection(host, port, client_id=client_id, timeout=timeout)
                break
            except ClientError as e:
                failures.append(str(e))
        if self._bootstrap is None:
            raise ClientError("; ".join(failures))

    def __enter__(self) -> KafkaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        if self._bootstrap is not None:
            self._bootstrap.close()
        self._conns.clear()

    # -- connections ---------------------------------------------------------
    @property
    def any(self) -> Connection:
        assert self._bootstrap is not None
        return self._bootstrap

    def node(self, broker_id: int) -> Connection:
        conn = self._conns.get(broker_id)
        if conn is None:
            if broker_id not in self._brokers:
                self.metadata([])
            if broker_id not in self._brokers:
                raise ClientError(f"broker {broker_id} is not in the cluster's metadata")
            host, port, _rack = self._brokers[broker_id]
            conn = Connection(host, port, client_id=self.client_id, timeout=self.timeout)
            self._conns[broker_id] = conn
        return conn

    def controller(self) -> Connection:
        meta = self.metadata([])
        return self.node(meta.controller_id) if meta.controller_id >= 0 else self.any

    def drop(self, broker_id: int) -> None:
        """Close the connection to a broker (the next request opens a new one)."""
        conn = self._conns.pop(broker_id, None)
        if conn is not None:
            conn.close()

    def controller_call(self, api_key: int, body: Message, attempts: int = 10,
                        results: str | None = None) -> Message:
        """A request only the controller serves: sent to the controller
        Metadata names, and again with fresh metadata while the answer is
        NOT_CONTROLLER (the controller moved), as Kafka's admin client does.
        A top-level error code is raised as :class:`KafkaError`. With
        ``results`` (the per-topic list of CreateTopics, CreatePartitions,
        DeleteTopics), NOT_CONTROLLER is in each item instead: the request is
        sent again while every item has it."""
        name = codec.api(api_key).name
        for _ in range(attempts):
            cid = self.metadata([]).controller_id
            resp = (self.node(cid) if cid >= 0 else self.any).call(api_key, body)
            if results is not None:
                items = resp[results]
                if not items or any(r["error_code"] != E.NOT_CONTROLLER for r in items):
                    return resp
            elif resp["error_code"] != E.NOT_CONTROLLER:
                check(resp["error_code"], name, resp.get("error_message"))
                return resp
            self.drop(cid)
            time.sleep(0.5)
        raise ClientError(f"{name}: no controller answered")

    # -- metadata --------------------------------------------------------------
    def metadata(self, topics: Sequence[str] | None = None) -> Metadata:
        """``topics`` None: every topic; [] none (brokers only)."""
        body = {"topics": None if topics is None else [{"name": t, "topic_id": None} for t in topics],
                "allow_auto_topic_creation": False}
        resp = self.any.call(3, body)
        brokers = {b["node_id"]: (b["host"], b["port"], b["rack"]) for b in resp["brokers"]}
        self._brokers.update(brokers)
        out: dict[str, TopicMeta] = {}
        for t in resp["topics"]:
            parts = {p["partition_index"]: PartitionMeta(p["partition_index"], p["leader_id"],
                                                         p["leader_epoch"], list(p["replica_nodes"]),
                                                         list(p["isr_nodes"]), list(p["offline_replicas"]),
                                                         p["error_code"])
                     for p in t["partitions"]}
            out[t["name"]] = TopicMeta(t["name"], t["error_code"], _uuid(t["topic_id"]), t["is_internal"],
                                       dict(sorted(parts.items())))
        meta = Metadata(brokers, resp["controller_id"], resp["cluster_id"], out)
        self._last_meta = meta
        return meta

    def topic(self, name: str) -> TopicMeta:
        """One existing topic's metadata (ClientError if it does not exist)."""
        deadline = time.monotonic() + 5
        while True:
            t = self.metadata([name]).topics.get(name)
            if t is None:
                raise ClientError(f"topic {name!r}: no metadata")
            if t.error_code == E.UNKNOWN_TOPIC_OR_PARTITION:
                raise ClientError(f"topic {name!r} does not exist")
            if t.error_code in (E.LEADER_NOT_AVAILABLE,) and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            check(t.error_code, f"topic {name!r}")
            return t

    def leader(self, topic: TopicMeta, partition: int) -> int:
        p = topic.partitions.get(partition)
        if p is None:
            raise ClientError(f"topic {topic.name!r} has no partition {partition} "
                              f"(it has {len(topic.partitions)})")
        if p.leader < 0:
            raise ClientError(f"{topic.name}-{partition} has no leader")
        return p.leader

    def by_leader(self, topic: TopicMeta, partitions: Iterable[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for p in partitions:
            out.setdefault(self.leader(topic, p), []).append(p)
        return out

    # -- configs and partition reassignment ----------------------------------------
    def alter_configs(self, resource_type: int, name: str, ops: dict[str, str | None]) -> None:
        """IncrementalAlterConfigs of one resource (value None deletes); a
        broker's own configs go to that broker, as Kafka's admin client sends them."""
        target = self.node(int(name)) if resource_type == BROKER_RESOURCE and name else self.any
        body = {"resources": [{"resource_type": resource_type, "resource_name": name, "configs": [
            {"name": k, "config_operation": SET if v is not None else DELETE, "value": v} for k, v in ops.items()]}],
            "validate_only": False}
        for r in target.call(44, body)["responses"]:
            check(r["error_code"], f"altering the configs of {name}", r.get("error_message"))

    def alter_partition_reassignments(self, wanted: dict[tuple[str, int], list[int] | None]
                                      ) -> dict[tuple[str, int], tuple[int, str | None]]:
        """AlterPartitionReassignments (to the controller): the target replicas
        of each partition, None cancels; (error code, message) per partition."""
        topics: dict[str, list[Message]] = {}
        for (t, p), reps in sorted(wanted.items()):
            topics.setdefault(t, []).append({"partition_index": p, "replicas": reps})
        resp = self.controller_call(45, {"timeout_ms": int(self.timeout * 1000),
                                         "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]})
        return {(t["name"], p["partition_index"]): (p["error_code"], p["error_message"])
                for t in resp["responses"] for p in t["partitions"]}

    def list_partition_reassignments(self, partitions: Iterable[tuple[str, int]] | None = None
                                     ) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        """ListPartitionReassignments (to the controller): (replicas, adding,
        removing) of the partitions being moved (of ``partitions``, None: all)."""
        topics: list[Message] | None = None
        if partitions is not None:
            by: dict[str, list[int]] = {}
            for t, p in partitions:
                by.setdefault(t, []).append(p)
            topics = [{"name": t, "partition_indexes": ps} for t, ps in sorted(by.items())]
        resp = self.controller_call(46, {"timeout_ms": int(self.timeout * 1000), "topics": topics})
        return {(t["name"], p["partition_index"]): (list(p["replicas"]), list(p["adding_replicas"]),
                                                     list(p["removing_replicas"]))
                for t in resp["topics"] for p in t["partitions"]}

    # -- offsets -------------------------------------------------------------
    def list_offsets(self, topic: TopicMeta, timestamps: dict[int, int],
                     isolation_level: int = 0) -> dict[int, int]:
        """partition -> offset for each (partition, timestamp); -2 earliest,
        -1 latest, or a time in ms (-1 as the answer: no record that late)."""
        out: dict[int, int] = {}
        for leader, parts in self.by_leader(topic, timestamps).items():
            body = {"replica_id": -1, "isolation_level": isolation_level,
                    "topics": [{"name": topic.name, "partitions": [
                        {"partition_index": p, "current_leader_epoch": -1, "timestamp": timestamps[p]}
                        for p in parts]}]}
            resp = self.node(leader).call(2, body)
            for t in resp["topics"]:
                for p in t["partitions"]:
                    check(p["error_code"], f"ListOffsets {topic.name}-{p['partition_index']}")
                    out[p["partition_index"]] = p["offset"]
        return out

    # -- records -------------------------------------------------------------
    def fetch(self, topic: TopicMeta, offsets: dict[int, int], *, max_wait_ms: int = 500,
              max_bytes: int = 4 << 20, partition_max_bytes: int = 1 << 20,
              isolation_level: int = 0) -> Iterator[FetchedPartition]:
        for leader, parts in self.by_leader(topic, offsets).items():
            body = {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": max_bytes,
                    "isolation_level": isolation_level, "session_id": 0, "session_epoch": -1,
                    "topics": [{"topic": topic.name, "topic_id": None, "partitions": [
                        {"partition": p, "current_leader_epoch": -1, "fetch_offset": offsets[p],
                         "last_fetched_epoch": -1, "log_start_offset": -1,
                         "partition_max_bytes": partition_max_bytes} for p in parts]}],
                    "forgotten_topics_data": [], "rack_id": ""}
            resp = self.node(leader).call(1, body)
            check(resp["error_code"], "Fetch")
            for t in resp["responses"]:
                for p in t["partitions"]:
                    idx = p["partition_index"]
                    start = offsets[idx]
                    recs, nxt = _records(p["records"], start, p["aborted_transactions"])
                    yield FetchedPartition(idx, p["error_code"], p["high_watermark"], p["log_start_offset"],
                                           recs, nxt)

    def produce(self, topic: TopicMeta, partition: int, records: Sequence[Record | tuple[Any, ...]], *,
                acks: int = -1, compression: int = COMPRESSION_NONE, timeout_ms: int = 30000) -> int:
        """Append one batch; the base offset (-1 with acks=0)."""
        batch = build_batch(records, compression=compression)
        body = {"transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
                "topic_data": [{"name": topic.name, "partition_data": [{"index": partition, "records": batch}]}]}
        resp = self.node(self.leader(topic, partition)).call(0, body)
        if acks == 0:
            return -1
        for t in resp["responses"]:
            for p in t["partition_responses"]:
                check(p["error_code"], f"Produce {topic.name}-{partition}", p.get("error_message"))
                return int(p["base_offset"])
        raise ClientError("Produce: empty answer")

    # -- groups --------------------------------------------------------------
    def coordinator(self, group: str) -> Connection:
        deadline = time.monotonic() + self.timeout
        while True:
            resp = self.any.call(10, {"key": group, "key_type": 0})
            if resp["error_code"] in (E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS) \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            check(resp["error_code"], f"FindCoordinator {group!r}", resp.get("error_message"))
            node = resp["node_id"]
            self._brokers.setdefault(node, (resp["host"], resp["port"], None))
            return self.node(node)

    def list_groups(self) -> list[Message]:
        """Every group of every broker (each answers for the groups it coordinates)."""
        meta = self.metadata([])
        out: dict[str, Message] = {}
        for broker_id in sorted(meta.brokers):
            resp = self.node(broker_id).call(16, {"states_filter": []})
            check(resp["error_code"], f"ListGroups on broker {broker_id}")
            for g in resp["groups"]:
                out.setdefault(g["group_id"], g)
        return [out[k] for k in sorted(out)]

    def describe_group(self, group: str) -> Message:
        """DescribeGroups' answer for the group. A KIP-848 consumer group (to
        which DescribeGroups may answer Dead) is described with
        ConsumerGroupDescribe, in the same shape; its members carry their
        partitions as ``assigned``: [(topic, partition)]."""
        conn = self.coordinator(group)
        resp = conn.call(15, {"groups": [group], "include_authorized_operations": False})
        g: Message = resp["groups"][0]
        check(g["error_code"], f"DescribeGroups {group!r}", g.get("error_message"))
        if g["group_state"] == "Dead" and 69 in conn.versions:
            r = conn.call(69, {"group_ids": [group], "include_authorized_operations": False})["groups"][0]
            if r["error_code"] == 0:
                members = [{"member_id": m["member_id"], "group_instance_id": m["instance_id"],
                            "client_id": m["client_id"], "client_host": m["client_host"],
                            "member_metadata": b"", "member_assignment": b"",
                            "assigned": [(tp["topic_name"], p) for tp in m["assignment"]["topic_partitions"]
                                         for p in tp["partitions"]]}
                           for m in r["members"]]
                g = {"error_code": 0, "group_id": group, "group_state": r["group_state"],
                     "protocol_type": "consumer", "protocol_data": r["assignor_name"], "members": members}
        return g

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """(topic, partition) -> committed offset, every one the group has."""
        conn = self.coordinator(group)
        resp = conn.call(9, {"group_id": group, "topics": None, "require_stable": False})
        check(resp["error_code"], f"OffsetFetch {group!r}")
        out = {}
        for t in resp["topics"]:
            for p in t["partitions"]:
                check(p["error_code"], f"OffsetFetch {group!r} {t['name']}-{p['partition_index']}")
                if p["committed_offset"] >= 0:
                    out[(t["name"], p["partition_index"])] = p["committed_offset"]
        return out

    def delete_group(self, group: str) -> None:
        """DeleteGroups: an empty group and its offsets (NON_EMPTY_GROUP otherwise)."""
        resp = self.coordinator(group).call(42, {"groups_names": [group]})
        for r in resp["results"]:
            check(r["error_code"], f"cannot delete group {group!r}")

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        """Commit as an admin (generation -1, no member): only for an empty group."""
        topics: dict[str, list[Message]] = {}
        for (t, p), off in sorted(offsets.items()):
            topics.setdefault(t, []).append({"partition_index": p, "committed_offset": off,
                                             "committed_leader_epoch": -1, "committed_metadata": ""})
        body = {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
                "group_instance_id": None, "retention_time_ms": -1,
                "topics": [{"name": t, "topic_id": None, "partitions": ps} for t, ps in topics.items()]}
        resp = self.coordinator(group).call(8, body)
        for t in resp["topics"]:
            for p in t["partitions"]:
                check(p["error_code"], f"OffsetCommit {group!r} {t['name']}-{p['partition_index']}")


def _uuid(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        import uuid

        return str(uuid.UUID(bytes=bytes(v)))
    return str(v)


def _records(buf: Any, start: int, aborted: Any) -> tuple[list[Record], int]:
    """Records at or after ``start`` of the whole batches in ``buf`` (control
    batches and aborted transactions left out) and the next fetch offset."""
    if not buf:
        return [], start
    data = bytes(buf)
    nxt = start
    out: list[Record] = []
    aborted_pids = {a["producer_id"]: a["first_offset"] for a in (aborted or [])}
    for h in iter_batches(data):
        nxt = max(nxt, h.next_offset)
        if h.is_control:
            if h.producer_id in aborted_pids:
                aborted_pids.pop(h.producer_id, None)
            continue
        if h.is_transactional and h.producer_id in aborted_pids \
                and h.base_offset >= aborted_pids[h.producer_id]:
            continue
        for r in decode_records(data, h.position):
            if r.offset >= start:
                out.append(r)
    return out, nxt
