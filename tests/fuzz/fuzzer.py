"""A seeded protocol fuzzer against a running broker (issue 18).

For every API key and version the broker advertises (ApiVersions), requests
are generated from our message definitions with edge-biased values; record
fields carry valid batches of every codec, batches mutated under a fixed-up
CRC, or random bytes; a share of frames is then mutated at the byte level
(flips, truncation, garbage, a lying size). Each frame goes out on a fuzz
connection; a closed connection is replaced, an unanswered request (a parked
long-poll or group join) is abandoned after ``answer_timeout``.

Alongside, a canary connection does a Metadata round trip every 20 ms and
the broker's RSS is sampled. At the end every batch of every partition is
fetched and checked as the produce path checks it (CRC, record structure):
an invalid batch that was acknowledged shows up there.

Used by tests/fuzz/test_fuzz.py (a short CI run) and scripts/fuzz (long runs).
"""

from __future__ import annotations

import collections
import multiprocessing
import queue
import random
import socket
import struct
import time
from typing import Any
from collections.abc import Callable

from pykbroker.protocol import codec
from pykbroker.protocol import records as R
from pykbroker.protocol.framing import encode_request
from pykbroker.protocol.validator import validate_records

INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
TOPICS = ["fuzz-a", "fuzz-b", "__consumer_offsets"]


class Gen:
    """Random request bodies from the message definitions."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def int_(self, bits: int) -> int:
        r = self.rng.random()
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if r < 0.35:
            return self.rng.choice([0, 1, -1, 2, 3])
        if r < 0.5:
            return self.rng.choice([lo, hi, hi - 1, lo + 1])
        if r < 0.8:
            return self.rng.randint(-5, 1000)
        return self.rng.randint(lo, hi)

    def string(self) -> str:
        r = self.rng.random()
        if r < 0.4:
            return self.rng.choice(TOPICS + ["g1", "txn1", "", "producer", "compression.type",
                                             "cleanup.policy", "max.message.bytes", "retention.ms"])
        n = self.rng.choice([0, 1, 3, 8, 40, 300])
        return "".join(self.rng.choice("abc-_.\u00e9\u4e2d0") for _ in range(n))

    def batch(self) -> bytes:
        rng = self.rng
        n = rng.choice([1, 1, 2, 5, 20])
        now = int(time.time() * 1000)
        recs = [(rng.choice([None, b"k", b"key%d" % i]), rng.choice([None, b"", b"v" * rng.randint(0, 300)]),
                 [("h", b"x")] if rng.random() < 0.3 else [], now + rng.randint(-5, 5)) for i in range(n)]
        pid = rng.choice([-1, -1, rng.randint(0, 5)])
        b = R.build_batch(recs, compression=rng.choice([0, 1, 2, 3, 4]), producer_id=pid,
                          producer_epoch=0 if pid >= 0 else -1, base_sequence=0 if pid >= 0 else -1,
                          transactional=pid >= 0 and rng.random() < 0.3)
        r = rng.random()
        if r < 0.4:
            return b
        buf = bytearray(b)
        if r < 0.85:  # mutate under the CRC, then fix the CRC up
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(R.OFF_ATTRIBUTES, len(buf))
                buf[i] = rng.randrange(256)
            if rng.random() < 0.3:  # lie about the count
                struct.pack_into(">ii", buf, R.OFF_LAST_OFFSET_DELTA, 0, 0)
                v = rng.choice([0, 2**31 - 1, n + 1, n - 1])
                struct.pack_into(">i", buf, R.OFF_LAST_OFFSET_DELTA, v - 1)
                struct.pack_into(">i", buf, R.OFF_RECORDS_COUNT, v)
            struct.pack_into(">I", buf, R.OFF_CRC, R.batch_crc(buf, 0, len(buf)))
            return bytes(buf)
        i = rng.randrange(len(buf))  # mutate anywhere, CRC left as it is
        buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf)

    def scalar(self, t: str) -> Any:
        rng = self.rng
        if t in INT_BITS:
            return self.int_(INT_BITS[t])
        if t == "uint16":
            return rng.randint(0, 65535)
        if t == "bool":
            return rng.random() < 0.5
        if t == "float64":
            return rng.choice([0.0, 1.5, -1.0])
        if t == "uuid":
            return rng.choice([bytes(16), rng.randbytes(16)])
        if t == "string":
            return self.string()
        if t == "bytes":
            return rng.randbytes(rng.choice([0, 4, 30]))
        if t == "records":
            return self.batch() if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 100))
        raise AssertionError(t)

    def fields(self, fields: list[codec.Field], version: int, depth: int = 0) -> dict:
        out: dict[str, Any] = {}
        for f in fields:
            if version not in f.versions:
                continue
            out[f.key] = self.value(f, version, depth)
        return out

    def value(self, f: codec.Field, version: int, depth: int) -> Any:
        rng = self.rng
        nullable = version in f.nullable
        if nullable and rng.random() < 0.15:
            return None
        if f.is_array:
            n = rng.choice([0, 1, 1, 2, 3]) if depth < 3 else 0
            if f.fields is not None:
                return [self.fields(f.fields, version, depth + 1) for _ in range(n)]
            return [self.scalar(f.elem) for _ in range(n)]
        if f.fields is not None:
            return self.fields(f.fields, version, depth + 1)
        v = self.scalar(f.elem)
        if f.key in ("topic", "name", "topic_name", "topics") and f.elem == "string":
            # a small pool: every created topic holds file descriptors, and
            # running the broker out of them is not what this run is about
            v = rng.choice(TOPICS + ["fuzz-c", "fuzz-d", ""])
        if f.key in ("max_wait_ms", "timeout_ms", "rebalance_timeout_ms", "session_timeout_ms") and rng.random() < 0.7:
            v = rng.choice([0, 10, 100, 6000])
        if f.key in ("count", "num_partitions") and f.elem == "int32":
            # creating partitions is real disk work on the event loop (about
            # 1.5 ms each here): edge values and small counts only, so the
            # canary measures stalls, not legitimate admin work
            v = rng.choice([-2, -1, 0, 1, 2, 3, 5, 10001, 117444884, 2**31 - 1])
        return v


def mutate(rng: random.Random, frame: bytes) -> bytes:
    buf = bytearray(frame)
    r = rng.random()
    if r < 0.35:
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(4, len(buf))
            buf[i] = rng.randrange(256)
    elif r < 0.55:  # truncate, keeping the size prefix honest
        cut = rng.randrange(8, len(buf)) if len(buf) > 8 else len(buf)
        buf = buf[:cut]
        struct.pack_into(">i", buf, 0, len(buf) - 4)
    elif r < 0.75:  # garbage appended
        buf += rng.randbytes(rng.randint(1, 64))
        struct.pack_into(">i", buf, 0, len(buf) - 4)
    elif r < 0.85:  # a size that lies (bigger or negative)
        struct.pack_into(">i", buf, 0, rng.choice([-1, -(2**31), len(buf) + 10, 2**31 - 1, 0]))
        buf = buf[: rng.randint(4, len(buf))]
    else:  # a random version or key
        struct.pack_into(">hh", buf, 4, rng.choice([rng.randint(0, 80), -1, 999]), rng.randint(-1, 20))
    return bytes(buf)


def _canary_main(addr: tuple[str, int], stop, worst, count, fails, slow) -> None:  # type: ignore[no-untyped-def]
    """Metadata round trips every 20 ms (in its own process, so the fuzzer's
    own CPU use does not count against the broker)."""
    api = codec.api(3)
    sock = socket.create_connection(addr, timeout=10)
    corr = 0
    try:
        while not stop.is_set():
            corr += 1
            t0 = time.monotonic()
            try:
                sock.sendall(encode_request(api, 12, corr, {"topics": None, "allow_auto_topic_creation": False}))
                _read_frame(sock)
            except OSError:
                fails.value += 1
                sock.close()
                sock = socket.create_connection(addr, timeout=10)
                continue
            took = time.monotonic() - t0
            if took > worst.value:
                worst.value = took
            if took > 0.5:
                slow.put((t0, took))
            count.value += 1
            time.sleep(0.02)
    finally:
        sock.close()


class Canary:
    def __init__(self, bootstrap: tuple[str, int]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop_event = ctx.Event()
        self._worst = ctx.Value("d", 0.0)
        self._count = ctx.Value("i", 0)
        self._fails = ctx.Value("i", 0)
        self._slow = ctx.Queue()
        self.slow: list[tuple[float, float]] = []
        self.proc = ctx.Process(target=_canary_main, daemon=True,
                                args=(bootstrap, self.stop_event, self._worst, self._count, self._fails, self._slow))

    def start(self) -> None:
        self.proc.start()

    def poll_slow(self) -> None:
        while True:
            try:
                self.slow.append(self._slow.get_nowait())
            except queue.Empty:
                return

    def join(self, timeout: float) -> None:
        self.proc.join(timeout)
        self.poll_slow()

    @property
    def worst(self) -> float:
        return self._worst.value

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def failures(self) -> list[str]:
        return [f"{self._fails.value} canary round trips failed"] if self._fails.value else []


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def _read_frame(sock: socket.socket) -> bytes:
    (n,) = struct.unpack(">i", _read_exact(sock, 4))
    return _read_exact(sock, n)


def advertised(addr: tuple[str, int]) -> list[tuple[int, int]]:
    api = codec.api(18)
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(encode_request(api, 3, 1, {"client_software_name": "fuzz", "client_software_version": "1"}))
        frame = _read_frame(s)
    from pykbroker.protocol.framing import decode_response

    _, body = decode_response(api, 3, frame)
    out = []
    known = codec.load_apis()
    for k in body["api_keys"]:
        if k["api_key"] not in known:
            continue
        for v in range(k["min_version"], k["max_version"] + 1):
            out.append((k["api_key"], v))
    return out


def check_log(addr: tuple[str, int]) -> tuple[int, list[str]]:
    """Fetch every partition from its start; check every batch as Produce
    does. Returns (batches checked, problems)."""
    from pykbroker.protocol.framing import decode_response

    meta = codec.api(3)
    fetch = codec.api(1)
    problems: list[str] = []
    checked = 0
    with socket.create_connection(addr, timeout=30) as s:
        s.sendall(encode_request(meta, 12, 1, {"topics": None, "allow_auto_topic_creation": False}))
        _, md = decode_response(meta, 12, _read_frame(s))
        corr = 1
        for t in md["topics"]:
            for p in t["partitions"]:
                offset = 0
                for _ in range(10000):
                    corr += 1
                    req = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 8 << 20,
                           "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                           "topics": [{"topic": t["name"], "partitions": [
                               {"partition": p["partition_index"], "fetch_offset": offset,
                                "log_start_offset": -1, "partition_max_bytes": 8 << 20}]}]}
                    s.sendall(encode_request(fetch, 12, corr, req))
                    _, resp = decode_response(fetch, 12, _read_frame(s))
                    pr = resp["responses"][0]["partitions"][0]
                    if pr["error_code"] == 1:  # OFFSET_OUT_OF_RANGE: moved start
                        offset = pr["log_start_offset"]
                        continue
                    data = pr["records"] or b""
                    hs = list(R.iter_batches(data))
                    if not hs:
                        break
                    for h in hs:
                        checked += 1
                        where = f"{t['name']}-{p['partition_index']}@{h.base_offset}"
                        if R.batch_crc(data, h.position, h.size) != h.crc:
                            problems.append(f"{where}: bad CRC")
                            continue
                        try:
                            validate_records(data, [h], max_message_bytes=1 << 20)
                        except R.InvalidRecords as e:
                            problems.append(f"{where}: {e}")
                    offset = hs[-1].next_offset
    return checked, problems


def _create_topics(addr: tuple[str, int]) -> None:
    api = codec.api(19)
    with socket.create_connection(addr, timeout=30) as s:
        s.sendall(encode_request(api, 5, 1, {"topics": [
            {"name": t, "num_partitions": 2, "replication_factor": 1, "assignments": [], "configs": []}
            for t in TOPICS[:2]], "timeout_ms": 10000, "validate_only": False}))
        _read_frame(s)
        # the internal topics (50 partitions each) are created on first use: before the canary starts
        fc = codec.api(10)
        for corr, key_type in ((2, 0), (3, 1)):
            s.sendall(encode_request(fc, 3, corr, {"key": "g1", "key_type": key_type}))
            _read_frame(s)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(bootstrap: str, *, frames: int, seed: int, pid: int | None = None, connections: int = 4,
        answer_timeout: float = 0.5, log: Callable[[str], None] = lambda s: None,
        seconds: float | None = None) -> dict:
    host, _, port = bootstrap.rpartition(":")
    addr = (host, int(port))
    rng = random.Random(seed)
    gen = Gen(rng)
    keys = advertised(addr)
    _create_topics(addr)
    canary = Canary(addr)
    canary.start()
    socks: list[socket.socket | None] = [None] * connections
    stats = {"frames": 0, "answered": 0, "closed": 0, "unanswered": 0, "connections": 0,
             "peak_rss_mb": 0.0, "mutated": 0}
    t_start = time.monotonic()
    sent: collections.deque = collections.deque(maxlen=2000)  # (time, api, version) of recent frames
    suspects: list[tuple[int, list[str]]] = []
    slow_frames: list[tuple[int, str]] = []  # fuzz requests answered after more than 0.3 s
    seen_slow = 0
    try:
        stop_at = t_start + seconds if seconds else None
        i = -1
        while stats["frames"] < frames:  # frames sent (a body the encoder cannot write is not one)
            i += 1
            if stop_at is not None and time.monotonic() > stop_at:
                break
            api_key, version = rng.choice(keys)
            api = codec.api(api_key)
            try:
                body = gen.fields(api.request.fields, version)
                frame = encode_request(api, version, i & 0x7FFFFFFF, body, client_id="fuzz")
            except Exception:  # a value the encoder cannot write (e.g. a string too long): skip
                continue
            if rng.random() < 0.3:
                frame = mutate(rng, frame)
                stats["mutated"] += 1
            sent.append((time.monotonic(), api.name, version))
            slot = i % connections
            s = socks[slot]
            if s is None:
                s = socket.create_connection(addr, timeout=10)
                stats["connections"] += 1
                socks[slot] = s
            s.settimeout(answer_timeout)
            stats["frames"] += 1
            try:
                s.sendall(frame)
                if api_key == 0 and body.get("acks") == 0:
                    continue
                t_req = time.monotonic()
                _read_frame(s)
                stats["answered"] += 1
                if time.monotonic() - t_req > 0.3:
                    slow_frames.append((round((time.monotonic() - t_req) * 1000), f"{api.name} v{version}"))
            except TimeoutError:
                stats["unanswered"] += 1
                s.close()
                socks[slot] = None
            except OSError:
                stats["closed"] += 1
                s.close()
                socks[slot] = None
            canary.poll_slow()
            while seen_slow < len(canary.slow):  # which frames were in flight around a slow canary
                t0, took = canary.slow[seen_slow]
                seen_slow += 1
                # every API (by name, versions folded) sent around the slow trip
                suspects.append((round(took * 1000), sorted({n for ts, n, v in sent
                                                            if t0 - 1.0 <= ts <= t0 + took})))
            if pid is not None and i % 50 == 0:
                stats["peak_rss_mb"] = max(stats["peak_rss_mb"], rss_mb(pid))
            if i and i % 10000 == 0:
                log(f"{i} frames, {time.monotonic() - t_start:.0f} s, canary worst "
                    f"{canary.worst * 1000:.0f} ms, rss {stats['peak_rss_mb']:.0f} MB")
    finally:
        for s in socks:
            if s is not None:
                s.close()
        canary.stop_event.set()
        canary.join(15)
    stats["seconds"] = round(time.monotonic() - t_start, 1)
    stats["canary_worst_ms"] = round(canary.worst * 1000, 1)
    stats["canary_round_trips"] = canary.count
    stats["canary_failures"] = canary.failures
    stats["slow_canary"] = suspects
    stats["slow_frames"] = slow_frames
    checked, problems = check_log(addr)
    stats["batches_checked"] = checked
    stats["invalid_batches"] = problems
    return stats
