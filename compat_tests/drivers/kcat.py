"""kcat (the Debian package; its own bundled librdkafka), one process per operation.

What kcat cannot express is reported as "no such feature": admin operations,
per-record timestamps, non-text payloads. Its producer gives no offsets, so
produce acks carry offset -1 and scenarios check offsets on the consume side.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from itertools import groupby

from . import DEADLINE, HEARTBEAT_MS, SESSION_TIMEOUT_MS, Ack, Driver, DriverError, Rec, seen_all

# librdkafka's texts for the broker errors the scenarios expect (rd_kafka_err2str).
_ERRORS = {"Broker: Message size too large": 10}

_REBALANCED = re.compile(r"% Group \S+ rebalanced \(memberid [^)]*\): (assigned|revoked): ?(.*)")


def _kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        raise DriverError("kcat is not installed (bash scripts/test installs it from apt)")
    return path


def _run(args: list[str], *, stdin: bytes | None = None, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([_kcat(), *args], input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DriverError(f"kcat {' '.join(args)}: no exit in {timeout}s; stderr: {e.stderr!r}") from e


def _rec(d: dict) -> Rec:
    h = d.get("headers") or []
    headers = tuple((h[i], h[i + 1].encode()) for i in range(0, len(h), 2))
    def enc(s):
        return (None if s is None else s.encode())
    return Rec(d["partition"], d["offset"], enc(d["key"]), enc(d["payload"]), headers, d["ts"])


def _ascii(b: bytes | None, what: str) -> None:
    if b is not None and (not b or any(c < 0x20 or c > 0x7e for c in b) or b"\t" in b):
        raise DriverError(f"kcat can only send non-empty printable text as {what}: {b!r}")


class Kcat(Driver):
    family = "kcat"
    explicit_timestamps = False
    binary_data = False
    unsupported = {s: "kcat has no admin operations (only -L metadata and -Q offset lookups)"
                   for s in ("admin_topics", "describe_configs", "alter_configs")}
    notes = ("`kcat` subprocesses: `-P` (stdin lines `key<TAB>value`, `-Z` for null values, "
             "`-H` headers per invocation, files for the large records), `-C -J` to read, `-L -J`, "
             "`-o s@<ts>` to seek to a timestamp, `-G` for groups (auto commit on close), "
             "`-X transactional.id` (committed when stdin closes; the aborted transaction is one whose kcat "
             "was killed, aborted by the coordinator when the next kcat with that transactional.id "
             "starts). kcat can set "
             "no record timestamps (CreateTime is the producer's clock) and no binary data, so its "
             "records are text.",)

    def versions(self) -> str:
        out = _run(["-V"]).stdout.decode()
        m = re.search(r"Version (\S+) .*librdkafka (\S+)", out)
        return f"kcat {m.group(1)}, librdkafka {m.group(2)}" if m else out.strip().splitlines()[0]

    def secure_roundtrip(self, sec, topic, values):  # type: ignore[no-untyped-def]
        from .confluent import librdkafka_security

        conf = librdkafka_security(sec)
        args = ["-b", conf.pop("bootstrap.servers")]
        for k, v in conf.items():
            args += ["-X", f"{k}={v}"]
        for v in values:
            _ascii(v, "value")
        p = _run([*args, "-P", "-t", topic, "-p", "0"], stdin=b"\n".join(values) + b"\n")
        if p.returncode:
            raise DriverError(f"kcat -P over {sec['protocol']}: {p.stderr.decode()[-500:]}")
        c = _run([*args, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J", "-q"])
        if c.returncode:
            raise DriverError(f"kcat -C over {sec['protocol']}: {c.stderr.decode()[-500:]}")
        return [(r.offset, r.value) for r in (_rec(json.loads(ln)) for ln in c.stdout.decode().splitlines() if ln)]

    # -- data -------------------------------------------------------------
    def metadata(self, bs, topic):  # type: ignore[no-untyped-def]
        p = _run(["-L", "-J", "-b", bs, "-t", topic, "-m", "10"])
        if p.returncode:
            raise DriverError(p.stderr.decode())
        md = json.loads(p.stdout)
        brokers = []
        for b in md["brokers"]:
            host, _, port = b["name"].rpartition(":")
            brokers.append((b["id"], host, int(port)))
        (t,) = [t for t in md["topics"] if t["topic"] == topic]
        if t.get("error"):
            raise DriverError(t["error"])
        return {"brokers": brokers, "partitions": {x["partition"]: x["leader"] for x in t["partitions"]}}

    def _produce_args(self, bs: str, topic: str, partition: int, compression: str | None,
                      idempotent: bool, max_request: int | None) -> list[str]:
        args = ["-P", "-b", bs, "-t", topic, "-p", str(partition), "-X", "linger.ms=5", "-X", "acks=all"]
        if compression:
            args += ["-z", compression]
        if idempotent:
            args += ["-X", "enable.idempotence=true"]
        if max_request:
            args += ["-X", f"message.max.bytes={max_request}"]
        return args

    def produce(self, bs, topic, recs, *, compression=None, idempotent=False, max_request=None):  # type: ignore[no-untyped-def]
        acks: dict[int, Ack] = {}
        # One kcat run per stretch of records with the same partition and
        # headers; a partition's records keep their order.
        order = sorted(range(len(recs)), key=lambda i: recs[i].partition)
        for (part, headers), idx in groupby(order, key=lambda i: (recs[i].partition, recs[i].headers)):
            idx = list(idx)
            run = [recs[i] for i in idx]
            args = self._produce_args(bs, topic, part, compression, idempotent, max_request)
            for k, v in headers:
                _ascii(v, "header value")
                args += ["-H", f"{k}={v.decode()}"]
            if len(run) == 1 and run[0].key is None and run[0].value is not None and len(run[0].value) > 65536:
                # A large value: kcat sends a file as one message.
                with tempfile.NamedTemporaryFile() as f:
                    f.write(run[0].value)
                    f.flush()
                    p = _run(args + [f.name])
            else:
                lines = []
                for r in run:
                    if r.timestamp >= 0:
                        raise DriverError("kcat cannot set record timestamps")
                    _ascii(r.key, "key")
                    if r.value is not None:
                        _ascii(r.value, "value")
                    if r.key is None and r.value is None:
                        raise DriverError("kcat cannot send a record with a null key and a null value")
                    val = r.value or b""
                    lines.append(val if r.key is None else r.key + b"\t" + val)
                p = _run(args + ["-K", "\t", "-Z"], stdin=b"\n".join(lines) + b"\n")
            err = p.stderr.decode()
            failed = re.findall(r"Delivery failed for message: (.*)", err)
            if p.returncode or failed:
                text = failed[0].strip() if failed else err.strip()
                acks.update({i: Ack(part, error=_ERRORS.get(text, text), message=text) for i in idx})
            else:
                acks.update({i: Ack(part) for i in idx})
        return [acks[i] for i in range(len(recs))]

    def _consume_args(self, bs: str, topic: str, read_committed: bool) -> list[str]:
        return ["-C", "-b", bs, "-t", topic, "-J", "-e", "-q", "-X",
                f"isolation.level={'read_committed' if read_committed else 'read_uncommitted'}",
                "-X", "fetch.message.max.bytes=4000000"]

    def consume(self, bs, topic, start, want, *, read_committed=False):  # type: ignore[no-untyped-def]
        got: dict[int, list[Rec]] = {}
        for part, off in start.items():
            args = self._consume_args(bs, topic, read_committed) + ["-p", str(part), "-o", str(off)]
            if part in want:
                args += ["-c", str(want[part])]
            got[part] = self._read(args)
        return got

    def _read(self, args: list[str]) -> list[Rec]:
        p = _run(args)
        if p.returncode:
            raise DriverError(f"kcat {' '.join(args)}: exit {p.returncode}: {p.stderr.decode()}")
        return [_rec(json.loads(ln)) for ln in p.stdout.splitlines() if ln.strip()]

    def offsets_for_times(self, bs, topic, times):  # type: ignore[no-untyped-def]
        args = ["-Q", "-b", bs]
        for p, ts in times.items():
            args += ["-t", f"{topic}:{p}:{ts}"]
        p = _run(args)
        out = {int(m.group(1)): int(m.group(2))
               for m in re.finditer(r"\[(\d+)\] offset (-?\d+)", p.stdout.decode())}
        if p.returncode or set(out) != set(times):
            raise DriverError(f"kcat -Q: exit {p.returncode}: {p.stdout!r} {p.stderr!r}")
        return out

    def consume_from_time(self, bs, topic, partitions, ts, want):  # type: ignore[no-untyped-def]
        got = {}
        for part in partitions:  # kcat's own seek: -o s@<timestamp>
            args = self._consume_args(bs, topic, False) + ["-p", str(part), "-o", f"s@{ts}"]
            if part in want:
                args += ["-c", str(want[part])]
            got[part] = self._read(args)
        return got

    # -- groups -----------------------------------------------------------
    def _group_args(self, bs: str, group: str, topic: str) -> list[str]:
        return ["-b", bs, "-G", group, topic, "-J", "-u",
                "-X", "auto.offset.reset=earliest", "-X", f"session.timeout.ms={SESSION_TIMEOUT_MS}",
                "-X", f"heartbeat.interval.ms={HEARTBEAT_MS}"]

    def group_rebalance(self, bs, topic, group, partitions):  # type: ignore[no-untyped-def]
        lock = threading.Lock()
        assigned: list[set[int]] = [set(), set(), set()]
        sinks = {"cur": []}
        before = sinks["cur"]
        log: list[str] = []
        procs = []

        def read_out(i: int, pipe) -> None:  # type: ignore[no-untyped-def]
            for ln in pipe:
                if ln.strip():
                    d = json.loads(ln)
                    with lock:
                        sinks["cur"].append([d["partition"], d["offset"], d["payload"]])

        def read_err(i: int, pipe) -> None:  # type: ignore[no-untyped-def]
            for ln in pipe:
                ln = ln.decode(errors="replace").rstrip()
                with lock:
                    log.append(f"[{i}] {ln}")
                    m = _REBALANCED.search(ln)
                    if m:
                        parts = {int(x) for x in re.findall(r"\[(\d+)\]", m.group(2))}
                        assigned[i] = parts if m.group(1) == "assigned" else set()

        threads = []
        for i in range(3):
            p = subprocess.Popen([_kcat(), *self._group_args(bs, group, topic),
                                  "-X", "enable.auto.commit=false"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            procs.append(p)
            for fn, pipe in ((read_out, p.stdout), (read_err, p.stderr)):
                t = threading.Thread(target=fn, args=(i, pipe), daemon=True)
                t.start()
                threads.append(t)

        def split(live: list[int]) -> bool:
            shares = [assigned[i] for i in live]
            return all(shares) and sorted(p for s in shares for p in s) == list(range(partitions))

        def wait(live: list[int], cond) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + DEADLINE
            while True:
                with lock:
                    if cond():
                        return
                    if time.monotonic() > deadline:
                        raise DriverError(f"timed out; assignments {[sorted(assigned[i]) for i in live]}, "
                                          f"consumed {sinks['cur']}; kcat stderr:\n" + "\n".join(log[-60:]))
                for i in live:
                    if procs[i].poll() is not None:
                        raise DriverError(f"kcat member {i} exited {procs[i].returncode}:\n"
                                          + "\n".join(log[-60:]))
                time.sleep(0.05)

        try:
            wait([0, 1, 2], lambda: split([0, 1, 2]) and seen_all(before, "before-", partitions))
            assign3 = [sorted(assigned[i]) for i in range(3)]
            procs[2].send_signal(signal.SIGTERM)  # kcat closes the consumer: LeaveGroup
            procs[2].wait(DEADLINE)
            with lock:
                assigned[2] = set()
            wait([0, 1], lambda: split([0, 1]))
            with lock:
                assign2 = [sorted(assigned[i]) for i in range(2)]
                after: list = []
                sinks["cur"] = after
            self.produce(bs, topic, [Rec(p, -1, None, f"after-{p}".encode()) for p in range(partitions)])
            wait([0, 1], lambda: seen_all(after, "after-", partitions))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        return {"assign3": assign3, "assign2": assign2, "before": before, "after": after}

    def group_consume(self, bs, topic, group, n):  # type: ignore[no-untyped-def]
        # kcat commits the offsets of what it printed when it closes after -c n
        # records (enable.auto.commit with offsets stored as records are handed over).
        args = self._group_args(bs, group, topic) + ["-c", str(n), "-q", "-X", "enable.auto.commit=true"]
        p = _run(args)
        if p.returncode:
            raise DriverError(f"kcat -G: exit {p.returncode}: {p.stderr.decode()}")
        return [_rec(json.loads(ln)) for ln in p.stdout.splitlines() if ln.strip()]

    # -- exactly once -----------------------------------------------------
    def produce_transactions(self, bs, topic, txn_id, aborted, committed):  # type: ignore[no-untyped-def]
        from .. import raw

        def lines(recs: list[Rec]) -> bytes:
            for r in recs:
                _ascii(r.value, "value")
                if r.key is not None or r.partition != recs[0].partition:
                    raise DriverError("kcat transaction records: one partition, no keys")
            return b"".join(r.value + b"\n" for r in recs)  # type: ignore[operator]

        part = aborted[0].partition
        args = ["-P", "-b", bs, "-t", topic, "-p", str(part), "-X", f"transactional.id={txn_id}"]
        # kcat aborts only when a signal ends its input, and 1.7.1 reads stdin
        # in chunks (a line is produced only once more input follows), so a
        # clean abort cannot be timed. Instead the first transaction is left
        # open: its lines (plus filler lines, all in that transaction) reach
        # the log, then kcat is killed. The next kcat with the same
        # transactional.id makes the coordinator abort it (InitProducerId
        # fences the old epoch, as in Kafka).
        start = raw.end_offset(bs, topic, part)
        p = subprocess.Popen([_kcat(), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            assert p.stdin is not None
            p.stdin.write(lines(aborted) + b"filler\n" * 4000)
            p.stdin.flush()
            end = raw.wait_end_offset(bs, topic, part, start + len(aborted))
            if end < start + len(aborted):
                raise DriverError(f"the first transaction's records never reached the log (end offset {end})")
        finally:
            p.kill()
            p.communicate(timeout=DEADLINE)
        c = _run(args, stdin=lines(committed))
        if c.returncode:
            raise DriverError(f"kcat transactional produce: exit {c.returncode}: {c.stderr.decode()}")


DRIVER = Kcat()
