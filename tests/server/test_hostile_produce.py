"""Invalid and hostile batches over a real socket: Kafka's error codes,
nothing appended, other clients unaffected (issue 18)."""

from __future__ import annotations

import struct
import threading
import time

import pytest

from pykbroker.protocol import errors
from pykbroker.protocol import records as R
from rawclient import RawClient


def with_body(payload: bytes, count: int, *, codec: int = 0, last_offset_delta: int | None = None) -> bytes:
    size = R.BATCH_OVERHEAD + len(payload)
    buf = bytearray(size)
    R.BATCH_HEADER.pack_into(buf, 0, 0, size - 12, -1, 2, 0, codec,
                             count - 1 if last_offset_delta is None else last_offset_delta,
                             1000, 1000, -1, -1, -1, count)
    buf[R.BATCH_OVERHEAD:] = payload
    struct.pack_into(">I", buf, R.OFF_CRC, R.batch_crc(buf, 0, size))
    return bytes(buf)


def produce(c: RawClient, topic: str, data: bytes, version: int = 9) -> dict:
    resp = c.call(0, version, {"transactional_id": None, "acks": -1, "timeout_ms": 30000,
                               "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": data}]}]})
    return resp["responses"][0]["partition_responses"][0]


def create_topic(c: RawClient, name: str, configs: dict[str, str]) -> None:
    resp = c.call(19, 5, {"topics": [{"name": name, "num_partitions": 1, "replication_factor": 1,
                                      "assignments": [], "configs": [{"name": k, "value": v}
                                                                     for k, v in configs.items()]}],
                          "timeout_ms": 10000, "validate_only": False})
    assert resp["topics"][0]["error_code"] == 0, resp


def end_offset(c: RawClient, topic: str) -> int:
    resp = c.call(2, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    return resp["topics"][0]["partitions"][0]["offset"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


GOOD = [(b"k%d" % i, b"value-%d" % i, (), 1000 + i) for i in range(5)]


def _garbage_zstd() -> bytes:
    return with_body(b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 4, 1, codec=4)


def _codec6() -> bytes:
    return with_body(R.build_batch(GOOD)[R.BATCH_OVERHEAD:], len(GOOD), codec=6)


def _corrupt_under_crc() -> bytes:
    body = bytearray(R.build_batch(GOOD)[R.BATCH_OVERHEAD:])
    body[0] = 0x7E
    return with_body(bytes(body), len(GOOD))


def _huge_count() -> bytes:
    return with_body(R.build_batch(GOOD[:1])[R.BATCH_OVERHEAD:], 2**31 - 1)


CASES = {
    "codec6": (_codec6, errors.UNSUPPORTED_COMPRESSION_TYPE),
    "garbage-zstd": (_garbage_zstd, errors.CORRUPT_MESSAGE),
    "corrupt-records-valid-crc": (_corrupt_under_crc, errors.INVALID_RECORD),
    "count-2^31-1": (_huge_count, errors.INVALID_RECORD),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_batch_rejected_nothing_appended(shared_broker, unique_topic, case):
    make, code = CASES[case]
    with RawClient(shared_broker.bootstrap) as c:
        assert produce(c, unique_topic, R.build_batch(GOOD))["base_offset"] == 0
        r = produce(c, unique_topic, make())
        assert r["error_code"] == code, r
        assert end_offset(c, unique_topic) == len(GOOD)
        r = produce(c, unique_topic, R.build_batch(GOOD))
        assert (r["error_code"], r["base_offset"]) == (0, len(GOOD))
        # readers are not poisoned: ListOffsets by timestamp still answers
        resp = c.call(2, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": unique_topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                                   "timestamp": 1002}]}]})
        p = resp["topics"][0]["partitions"][0]
        assert (p["error_code"], p["offset"]) == (0, 2)
    assert "Traceback" not in shared_broker.log


def test_zstd_needs_produce_v7(shared_broker, unique_topic):
    with RawClient(shared_broker.bootstrap) as c:
        r = produce(c, unique_topic, R.build_batch(GOOD, compression=4), version=6)
        assert r["error_code"] == errors.UNSUPPORTED_COMPRESSION_TYPE
        assert produce(c, unique_topic, R.build_batch(GOOD, compression=4), version=7)["error_code"] == 0


def _zstd_bomb(total: int) -> bytes:
    """A zstd frame of ``total`` zero bytes, built without holding them."""
    zstandard = pytest.importorskip("zstandard")
    cobj = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = b"\0" * (1 << 20)
    out = [cobj.compress(chunk) for _ in range(total >> 20)]
    out.append(cobj.flush())
    return b"".join(out)


def _valid_records_bomb(total: int) -> tuple[bytes, int]:
    """Valid records (same 1 KiB value) filling ``total`` bytes, zstd-compressed."""
    zstandard = pytest.importorskip("zstandard")
    cobj = zstandard.ZstdCompressor(level=3).compressobj()
    out = []
    n = 0
    size = 0
    while size < total:
        chunk = b"".join(R.encode_record(n + i, 0, b"k", b"x" * 1024) for i in range(1000))
        out.append(cobj.compress(chunk))
        n += 1000
        size += len(chunk)
    out.append(cobj.flush())
    return b"".join(out), n


class Canary(threading.Thread):
    """Metadata round trips on its own connection; records the slowest."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.client = RawClient(bootstrap)
        self.stop = threading.Event()
        self.worst = 0.0
        self.count = 0

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.client.call(3, 12, {"topics": None, "allow_auto_topic_creation": False})
            self.worst = max(self.worst, time.monotonic() - t0)
            self.count += 1
            time.sleep(0.02)
        self.client.close()


@pytest.mark.parametrize("configs", [{"compression.type": "gzip"},
                                     {"cleanup.policy": "compact", "compression.type": "gzip"}],
                         ids=["gzip", "compacted"])
def test_decompression_bombs_cost_only_their_request(broker_factory, configs):
    b = broker_factory()
    bomb = with_body(_zstd_bomb(1 << 30), 1, codec=4)
    recs, n = _valid_records_bomb(256 << 20)
    valid_bomb = with_body(recs, n, codec=4)
    assert len(bomb) < 64 * 1024 and len(valid_bomb) < 1_000_000
    with RawClient(b.bootstrap, timeout=60) as c:
        create_topic(c, "bombed", configs)
        canary = Canary(b.bootstrap)
        canary.start()
        try:
            peak = 0.0
            for batch in (bomb, valid_bomb, bomb):
                r = produce(c, "bombed", batch)
                assert r["error_code"] == errors.MESSAGE_TOO_LARGE, r
                peak = max(peak, rss_mb(b.pid))
            assert end_offset(c, "bombed") == 0
            time.sleep(0.2)
        finally:
            canary.stop.set()
            canary.join(10)
        assert canary.count > 0
        assert canary.worst < 1.0, canary.worst
        assert peak < 300, peak
        assert rss_mb(b.pid) < 300
        # a normal compressed batch still goes in (recompressed to gzip)
        ok = R.build_batch(GOOD, compression=4)
        assert produce(c, "bombed", ok)["error_code"] == 0
    assert "Traceback" not in b.log
