"""What each scenario does and checks, the same for every client family.

A scenario is ``fn(ctx)``; ``ctx`` (a :class:`Ctx`) gives the driver, the
broker's bootstrap address, the API keys it advertises, fresh names and a
broker restart. A scenario raises AssertionError (or any error) to fail,
:class:`NoSuchFeature` for "n/a", and returns a list of notes (shown as
footnotes in docs/compat.md) or None.

Topics a scenario reads from are created over the raw protocol (not through
the client under test) unless creating them is what is being tested.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Protocol

from . import raw
from .drivers import Ack, Driver, NoSuchFeature, Rec

CODEC_IDS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
MESSAGE_MAX_BYTES = 1048588  # the broker's message.max.bytes (Kafka's default), set explicitly


@dataclass
class Ctx:
    driver: Driver
    bootstrap: str
    advertised: set[int]
    restart_broker: Callable[[], None]
    family: str
    scenario: str
    # the TLS/SASL listeners of the same topology (security scenarios); None: one in-process broker
    secure: "SecureTarget | None" = None

    def name(self, what: str = "") -> str:
        return f"compat-{self.family}-{self.scenario}{'-' + what if what else ''}-{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------ helpers

def make_records(d: Driver, n: int, partitions: int, base_ts: int) -> list[Rec]:
    """Record i goes to partition i % partitions. Keys (some null), values
    (some null, one empty for binary-capable clients), headers (some none,
    binary values where the client can send them) and explicit timestamps
    where the client can set them."""
    out = []
    for i in range(n):
        key = None if i % 10 == 0 else f"key-{i}".encode()
        value: bytes | None = f"value-{i}-".encode() + b"x" * (i % 13)
        if i % 7 == 3 and key is not None:
            value = None
        if d.binary_data:
            if i == 1:
                value = b""
            elif value is not None and i % 3 == 0:
                value += b"\x00\xff\n\t" + bytes([i % 256])
            headers = () if i % 4 == 0 else (("idx", str(i).encode()), ("bin", b"\x00\xff" + bytes([i])))
        else:
            # kcat sets headers per invocation: one set for the first half.
            headers = (("h1", b"v1"), ("h2", b"v-2")) if i < n // 2 else ()
        ts = base_ts + i if d.explicit_timestamps else -1
        out.append(Rec(i % partitions, -1, key, value, headers, ts))
    return out


def check_acks(acks: list[Ack], recs: list[Rec]) -> None:
    bad = [(i, a) for i, a in enumerate(acks) if a.error is not None]
    assert not bad, f"produce errors: {bad[:3]}"
    assert [a.partition for a in acks] == [r.partition for r in recs]
    if any(a.offset >= 0 for a in acks):
        for p in {r.partition for r in recs}:
            got = [a.offset for a in acks if a.partition == p]
            assert got == list(range(len(got))), f"partition {p}: acked offsets {got}"


def check_records(got: dict[int, list[Rec]], recs: list[Rec], *, t0: int = 0, t1: int = 0,
                  start: int = 0) -> None:
    """``got`` holds exactly ``recs`` (from offset ``start`` on in each
    partition), in order, at the right offsets, with every field intact.
    Timestamps: equal when the records set them, else within [t0, t1]."""
    for p in sorted({r.partition for r in recs}):
        want = [r for r in recs if r.partition == p][start:]
        have = got.get(p, [])
        assert len(have) == len(want), f"partition {p}: {len(have)} records, expected {len(want)}"
        for j, (h, w) in enumerate(zip(have, want)):
            where = f"partition {p} offset {start + j}"
            assert (h.partition, h.offset) == (p, start + j), f"{where}: got ({h.partition}, {h.offset})"
            assert h.key == w.key, f"{where}: key {h.key!r} != {w.key!r}"
            assert h.value == w.value, f"{where}: value {h.value!r} != {w.value!r}"
            assert h.headers == w.headers, f"{where}: headers {h.headers!r} != {w.headers!r}"
            if w.timestamp >= 0:
                assert h.timestamp == w.timestamp, f"{where}: timestamp {h.timestamp} != {w.timestamp}"
            else:
                assert t0 <= h.timestamp <= t1, f"{where}: timestamp {h.timestamp} not in [{t0}, {t1}]"


def text_records(n: int, partition: int = 0, prefix: str = "r") -> list[Rec]:
    return [Rec(partition, -1, None, f"{prefix}-{i}".encode()) for i in range(n)]


# ---------------------------------------------------------------- scenarios

def metadata(ctx: Ctx) -> None:
    topic = ctx.name()
    raw.create_topic(ctx.bootstrap, topic, 3)
    md = ctx.driver.metadata(ctx.bootstrap, topic)
    want = []  # node ids 0.. in bootstrap order (a lone broker is node 0)
    for i, addr in enumerate(ctx.bootstrap.split(",")):
        host, _, port = addr.rpartition(":")
        want.append((i, host, int(port)))
    assert sorted(tuple(b) for b in md["brokers"]) == want, md["brokers"]
    assert md["partitions"] == raw.leader_ids(ctx.bootstrap, topic), md["partitions"]


def produce_consume(ctx: Ctx) -> None:
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    raw.create_topic(bs, topic, 3)
    recs = make_records(d, 60, 3, now_ms() - 3_600_000)
    t0 = now_ms()
    acks = d.produce(bs, topic, recs)
    t1 = now_ms()
    check_acks(acks, recs)
    got = d.consume(bs, topic, {p: 0 for p in range(3)}, {p: 20 for p in range(3)})
    check_records(got, recs, t0=t0, t1=t1)


def compression(codec: str) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
        if codec not in d.codecs:
            raise NoSuchFeature(d.no_codec_reason(codec))
        raw.create_topic(bs, topic, 1)
        # Compressible values: some clients send a batch uncompressed when
        # compressing would not make it smaller.
        recs = [Rec(r.partition, -1, r.key, None if r.value is None else r.value + b"z" * 200,
                    r.headers, r.timestamp) for r in make_records(d, 200, 1, now_ms() - 60_000)]
        t0 = now_ms()
        check_acks(d.produce(bs, topic, recs, compression=codec), recs)
        t1 = now_ms()
        # The client really compressed: every stored batch carries the codec, except one holding
        # only null values (librdkafka sends a batch uncompressed when compressing would not make
        # it smaller, as for a lone tombstone cut off by the linger under load)
        found = {b.compression for b in raw.batches(bs, topic)}
        if found == {0, CODEC_IDS[codec]}:
            plain = raw.uncompressed_batch_values(bs, topic)
            if all(v is None for values in plain for v in values):
                found = {CODEC_IDS[codec]}
        assert found == {CODEC_IDS[codec]}, (
            f"stored batches have compression ids {found}, expected {CODEC_IDS[codec]}"
            + (f": the client sent them uncompressed, so it judged from ApiVersions that the broker "
               f"cannot take {codec} (librdkafka: debug=feature shows why, e.g. its LZ4 feature "
               f"needs FindCoordinator v0 advertised)" if found == {0} else ""))
        got = d.consume(bs, topic, {0: 0}, {0: len(recs)})
        check_records(got, recs, t0=t0, t1=t1)

    run.__name__ = codec
    return run


def seek_timestamp(ctx: Ctx) -> None:
    """10 records per partition; seek to a timestamp between the 5th and 6th."""
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    raw.create_topic(bs, topic, 2)
    first = [Rec(p, -1, None, f"early-{p}-{i}".encode()) for i in range(5) for p in range(2)]
    second = [Rec(p, -1, None, f"late-{p}-{i}".encode()) for i in range(5) for p in range(2)]
    if d.explicit_timestamps:
        base = now_ms() - 600_000
        first = [Rec(r.partition, -1, None, r.value, (), base + 10 * i) for i, r in enumerate(first)]
        second = [Rec(r.partition, -1, None, r.value, (), base + 1000 + 10 * i) for i, r in enumerate(second)]
        check_acks(d.produce(bs, topic, first + second), first + second)
        ts = base + 500
    else:  # the producer's clock stamps the records: a pause between the halves
        check_acks(d.produce(bs, topic, first), first)
        time.sleep(0.02)
        ts = now_ms()
        time.sleep(0.02)
        check_acks(d.produce(bs, topic, second), second)
    got = d.consume_from_time(bs, topic, [0, 1], ts, {0: 5, 1: 5})
    for p in range(2):
        have = [(r.offset, r.value) for r in got[p]][:5]
        want = [(5 + i, f"late-{p}-{i}".encode()) for i in range(5)]
        assert have == want, f"partition {p}: from timestamp {ts} got {have}"


def batch_size_for_value(v: int) -> int:
    """Bytes of a v2 batch holding one uncompressed record with a null key,
    a ``v``-byte value, no headers (whole batch: 61-byte header incl. the
    12-byte offset+length prefix Kafka counts in message.max.bytes)."""
    from pykbroker.protocol.records import size_of_varint

    body = 1 + 1 + 1 + 1 + size_of_varint(v) + v + 1  # attrs, ts delta, offset delta, key -1, value, 0 headers
    return 61 + size_of_varint(body) + body


def max_message_bytes(ctx: Ctx) -> list[str]:
    """Kafka compares each batch's whole size (log overhead included) with
    message.max.bytes. The record is one uncompressed record in its own batch,
    its value sized so that batch is exactly the limit (then one byte more);
    the stored batch's size is checked, so a client that encodes differently
    fails loudly instead of testing something else."""
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    raw.create_topic(bs, topic, 1)
    v = MESSAGE_MAX_BYTES - 80
    while batch_size_for_value(v + 1) <= MESSAGE_MAX_BYTES:
        v += 1
    assert batch_size_for_value(v) == MESSAGE_MAX_BYTES, "no value size gives the exact limit"
    limit = 4 * MESSAGE_MAX_BYTES
    (ok,) = d.produce(bs, topic, [Rec(0, -1, None, b"m" * v)], max_request=limit)
    assert ok.error is None, f"a batch of exactly message.max.bytes was refused: {ok}"
    (stored,) = raw.batches(bs, topic)
    assert stored.size == MESSAGE_MAX_BYTES, \
        f"client wrote a {stored.size}-byte batch, expected {MESSAGE_MAX_BYTES}"
    (big,) = d.produce(bs, topic, [Rec(0, -1, None, b"M" * (v + 1))], max_request=limit)
    assert big.error == 10, f"one byte over the limit: expected MESSAGE_TOO_LARGE (10), got {big}"
    assert raw.end_offset(bs, topic, 0) == 1
    got = d.consume(bs, topic, {0: 0}, {0: 1})
    assert [(r.offset, len(r.value or b"")) for r in got[0]] == [(0, v)]
    return []


def admin_topics(ctx: Ctx) -> None:
    d, bs = ctx.driver, ctx.bootstrap
    a, b = ctx.name("a"), ctx.name("b")
    d.create_topics(bs, [(a, 2, {"retention.ms": "3600000"}), (b, 1, {})])
    assert (raw.partition_count(bs, a), raw.partition_count(bs, b)) == (2, 1)
    d.create_partitions(bs, a, 4)
    assert raw.partition_count(bs, a) == 4
    d.delete_topics(bs, [a, b])
    deadline = time.monotonic() + 15
    while raw.partition_count(bs, a) is not None or raw.partition_count(bs, b) is not None:
        assert time.monotonic() < deadline, "deleted topics still listed"
        time.sleep(0.05)


def describe_configs(ctx: Ctx) -> None:
    topic = ctx.name()
    raw.create_topic(ctx.bootstrap, topic, 1, {"retention.ms": "3600000", "cleanup.policy": "compact"})
    cfg = ctx.driver.describe_configs(ctx.bootstrap, topic)
    assert cfg.get("retention.ms") == "3600000", cfg.get("retention.ms")
    assert cfg.get("cleanup.policy") == "compact", cfg.get("cleanup.policy")
    assert cfg.get("max.message.bytes") == str(MESSAGE_MAX_BYTES), cfg.get("max.message.bytes")
    assert cfg.get("segment.bytes") == "1073741824", cfg.get("segment.bytes")


def alter_configs(ctx: Ctx) -> None:
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    raw.create_topic(bs, topic, 1)
    d.alter_configs(bs, topic, {"retention.ms": "7200000"}, ctx.advertised)
    cfg = d.describe_configs(bs, topic)
    assert cfg.get("retention.ms") == "7200000", cfg.get("retention.ms")


def group_rebalance(ctx: Ctx) -> None:
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    parts = 6
    raw.create_topic(bs, topic, parts)
    check_acks(d.produce(bs, topic, [Rec(p, -1, None, f"before-{p}".encode()) for p in range(parts)]),
               [Rec(p, -1, None, b"") for p in range(parts)])
    r = d.group_rebalance(bs, topic, ctx.name("group"), parts)

    def is_split(shares: list[list[int]], n: int) -> bool:
        return len(shares) == n and all(shares) and sorted(p for s in shares for p in s) == list(range(parts))

    assert is_split(r["assign3"], 3), f"3 members: {r['assign3']}"
    assert is_split(r["assign2"], 2), f"after one left: {r['assign2']}"
    for p, _off, v in r["before"] + r["after"]:
        assert v.endswith(f"-{p}"), f"record {v!r} read from partition {p}"
    assert {v for _, _, v in r["before"]} >= {f"before-{p}" for p in range(parts)}, r["before"]
    after = sorted(v for _, _, v in r["after"] if v.startswith("after-"))
    assert after == sorted(f"after-{p}" for p in range(parts)), f"read after the rebalance: {after}"


def commit_resume(ctx: Ctx) -> None:
    d, bs, topic, group = ctx.driver, ctx.bootstrap, ctx.name(), ctx.name("group")
    raw.create_topic(bs, topic, 1)
    recs = text_records(10)
    check_acks(d.produce(bs, topic, recs), recs)
    first = d.group_consume(bs, topic, group, 4)
    assert [(r.offset, r.value) for r in first] == [(i, f"r-{i}".encode()) for i in range(4)], first
    ctx.restart_broker()
    second = d.group_consume(bs, topic, group, 6)
    assert [(r.offset, r.value) for r in second] == [(i, f"r-{i}".encode()) for i in range(4, 10)], \
        f"after the restart the group resumed at {second[0].offset if second else None}"


def idempotent(ctx: Ctx) -> None:
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    raw.create_topic(bs, topic, 2)
    recs = make_records(d, 40, 2, now_ms() - 60_000)
    t0 = now_ms()
    check_acks(d.produce(bs, topic, recs, idempotent=True), recs)
    t1 = now_ms()
    for p in range(2):
        stored = raw.batches(bs, topic, p)
        assert stored and all(b.producer_id >= 0 for b in stored), \
            f"partition {p}: batches without a producer id: {stored}"
        seq: dict[int, int] = {}  # per producer id (kcat: one producer per invocation)
        for b in stored:
            want = seq.get(b.producer_id, 0)
            assert b.base_sequence == want, \
                f"partition {p}: producer {b.producer_id} base sequence {b.base_sequence}, expected {want}"
            seq[b.producer_id] = want + b.records_count
    got = d.consume(bs, topic, {0: 0, 1: 0}, {0: 20, 1: 20})
    check_records(got, recs, t0=t0, t1=t1)


def transactions(ctx: Ctx) -> None:
    d, bs, topic = ctx.driver, ctx.bootstrap, ctx.name()
    raw.create_topic(bs, topic, 1)
    aborted, committed = text_records(3, prefix="aborted"), text_records(3, prefix="committed")
    d.produce_transactions(bs, topic, ctx.name("txn"), aborted, committed)
    stored = raw.batches(bs, topic)
    assert sum(b.records_count for b in stored if b.is_transactional and not b.is_control) >= 6, stored
    assert sum(1 for b in stored if b.is_control) >= 2, f"no abort + commit markers: {stored}"
    got = d.consume(bs, topic, {0: 0}, {0: 3}, read_committed=True)
    assert [r.value for r in got[0]] == [r.value for r in committed], \
        f"read_committed returned {[r.value for r in got[0]]}"


class SecureTarget(Protocol):
    """Where the security scenarios run: listeners named after their protocol
    (SSL with client certificates required, SASL_PLAINTEXT and SASL_SSL with
    PLAIN and SCRAM users), a CA, a client certificate."""

    def settings(self, protocol: str, mechanism: str | None) -> dict[str, Any]:
        """The driver's ``sec`` for user alice on ``protocol``."""
        ...

    def create_topic(self, name: str) -> None: ...

    def values(self, topic: str) -> list[bytes | None]:
        """The values stored in partition 0, read without the client under test."""
        ...


class SecureBrokerTarget:
    """One in-process broker with TLS and SASL listeners
    (pykbroker.testing.security), shared by the security cells of every
    family; stopped at exit."""

    def __init__(self) -> None:
        import atexit
        import tempfile

        from pykbroker.testing.security import SecureBroker, TestCA

        self.kb = SecureBroker(TestCA(tempfile.mkdtemp(prefix="compat-ca-"))).start()
        atexit.register(self.kb.stop)

    def settings(self, protocol: str, mechanism: str | None) -> dict[str, Any]:
        kb = self.kb
        return {"bootstrap": kb.bootstrap_for(protocol), "protocol": protocol, "mechanism": mechanism,
                "username": "alice", "password": kb.users["alice"], "ca": str(kb.ca.ca_pem),
                "cert": str(kb.client.cert) if protocol == "SSL" else None,
                "key": str(kb.client.key) if protocol == "SSL" else None}

    def create_topic(self, name: str) -> None:
        self.kb.thread.create_topic(name, 1)

    def values(self, topic: str) -> list[bytes | None]:
        return self.kb.thread.values(topic)


_SECURE: list[SecureBrokerTarget] = []


def secure_broker() -> SecureBrokerTarget:
    if not _SECURE:
        _SECURE.append(SecureBrokerTarget())
    return _SECURE[0]


def secure(protocol: str, mechanism: str | None) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        target = ctx.secure or secure_broker()
        sec = target.settings(protocol, mechanism)
        topic = ctx.name()
        target.create_topic(topic)
        values = [f"secure-{i}".encode() for i in range(5)]
        got = ctx.driver.secure_roundtrip(sec, topic, values)
        assert got == list(enumerate(values)), f"read back over {protocol}: {got}"
        assert target.values(topic) == values, "stored records differ"

    return run


SCENARIO_FUNCS: dict[str, Callable[[Ctx], object]] = {
    "metadata": metadata,
    "produce_consume": produce_consume,
    "gzip": compression("gzip"),
    "snappy": compression("snappy"),
    "lz4": compression("lz4"),
    "zstd": compression("zstd"),
    "seek_timestamp": seek_timestamp,
    "max_message_bytes": max_message_bytes,
    "admin_topics": admin_topics,
    "describe_configs": describe_configs,
    "alter_configs": alter_configs,
    "group_rebalance": group_rebalance,
    "commit_resume": commit_resume,
    "idempotent": idempotent,
    "sasl_ssl_scram": secure("SASL_SSL", "SCRAM-SHA-512"),
    "sasl_plaintext_plain": secure("SASL_PLAINTEXT", "PLAIN"),
    "ssl_client_cert": secure("SSL", None),
    "transactions": transactions,
}

# Scenarios that read records back (kafkajs can only do that as a group member).
READS_RECORDS = {"produce_consume", "gzip", "snappy", "lz4", "zstd", "seek_timestamp",
                 "max_message_bytes", "idempotent", "transactions"}
