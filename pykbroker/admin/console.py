"""``pykbroker produce`` and ``pykbroker consume``: kafka-console-producer.sh
and kafka-console-consumer.sh, on our own client.

::

    printf 'k1\\tv1\\nk2\\tv2\\n' | pykbroker produce --bootstrap-server HOST:PORT --topic T \\
        --property parse.key=true [--property key.separator=,] [--partition P] [--print-offsets]
    pykbroker consume --topic T --from-beginning [--max-messages N] [--timeout-ms MS] \\
        [--partition P [--offset earliest|latest|N]] [--property print.key=true] [--print-headers]

Produce: one record per input line; a keyed record goes where Kafka's
Java client puts it (murmur2 of the key), keyless records round-robin;
lines are sent in batches of ``--batch-size`` (one at a time when stdin is
a terminal). ``--key-format``/``--value-format`` say how a line's key and
value are read (text, json checked, hex, base64) and, for consume, shown.
Consume prints records in offset order per partition with Kafka's
formatter layout (timestamp, partition, offset, headers, key, value,
tab-separated) and ends after ``--max-messages`` records or ``--timeout-ms``
without one, printing "Processed a total of N messages" on stderr.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import signal
import sys
import threading
import time
from typing import Any

from . import common
from .client import ClientError, KafkaClient, TopicMeta, check, partition_for_key
from .membership import GroupMember
from ..protocol.records import (
    Record,
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
)

FORMATS = ("text", "json", "hex", "base64")
CODECS = {"none": COMPRESSION_NONE, "gzip": COMPRESSION_GZIP, "snappy": COMPRESSION_SNAPPY,
          "lz4": COMPRESSION_LZ4, "zstd": COMPRESSION_ZSTD}


def _unescape(s: str) -> str:
    """``\\t``, ``\\n`` as Kafka's tools take separators on the command line."""
    return s.encode("utf-8").decode("unicode_escape") if "\\" in s else s


def to_bytes(text: str, fmt: str, what: str) -> bytes:
    if fmt == "text":
        return text.encode("utf-8")
    if fmt == "json":
        try:
            json.loads(text)
        except ValueError as e:
            raise common.UsageError(f"{what} is not JSON: {e}: {text[:80]!r}") from None
        return text.encode("utf-8")
    try:
        return bytes.fromhex(text) if fmt == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise common.UsageError(f"{what} is not {fmt}: {text[:80]!r}") from None


def show(data: bytes | None, fmt: str, null: str) -> str:
    if data is None:
        return null
    if fmt == "hex":
        return data.hex()
    if fmt == "base64":
        return base64.b64encode(data).decode("ascii")
    text = data.decode("utf-8", "replace")
    if fmt == "json":
        try:
            return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            return text
    return text


def _format_args(ap: argparse.ArgumentParser, verb: str) -> None:
    ap.add_argument("--key-format", choices=FORMATS, default="text", help=f"how keys are {verb} "
                    "(default text, UTF-8)")
    ap.add_argument("--value-format", choices=FORMATS, default="text", help=f"how values are {verb}")
    ap.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                    help="a formatter property as Kafka's tool takes it (repeatable)")


def _bool(v: str) -> bool:
    return v.strip().lower() == "true"


class Produce(common.CommandBody):
    def parser(self, prog: str) -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser(prog=prog, description="Send records read from stdin, one a line "
                                     "(kafka-console-producer.sh's flags). Properties: parse.key, "
                                     "key.separator (tab), parse.headers, headers.delimiter (tab), "
                                     "headers.separator (,), headers.key.separator (:).")
        common.add_connection_args(ap)
        ap.add_argument("--topic", required=True)
        ap.add_argument("--partition", type=int, help="send every record to this partition")
        _format_args(ap, "read from the input")
        ap.add_argument("--acks", "--request-required-acks", dest="acks", type=int, default=-1,
                        choices=[-1, 0, 1], help="default -1 (all)")
        ap.add_argument("--compression-codec", choices=sorted(CODECS), default="none")
        ap.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="records per produce request (default 500; 1 when stdin is a terminal)")
        ap.add_argument("--print-offsets", action="store_true", help="print TOPIC PARTITION OFFSET of each "
                        "record sent")
        common.add_progress_args(ap)
        return ap

    def run(self, ns: argparse.Namespace) -> int:
        props = common.parse_kv(ns.property, "--property")
        parse_key = _bool(props.get("parse.key", "false"))
        key_sep = _unescape(props.get("key.separator", "\t"))
        parse_headers = _bool(props.get("parse.headers", "false"))
        h_delim = _unescape(props.get("headers.delimiter", "\t"))
        h_sep = _unescape(props.get("headers.separator", ","))
        h_key_sep = _unescape(props.get("headers.key.separator", ":"))
        if ns.batch_size < 1:
            raise common.UsageError("--batch-size must be at least 1")
        batch_size = 1 if sys.stdin.isatty() else ns.batch_size
        with common.connect(ns) as client:
            topic = client.topic(ns.topic)
            n = len(topic.partitions)
            if ns.partition is not None and ns.partition not in topic.partitions:
                raise ClientError(f"topic {ns.topic!r} has no partition {ns.partition} (it has {n})")
            sender = _Sender(client, topic, ns, common.Progress(ns.progress, f"produced to {ns.topic}"))
            rr = 0
            for lineno, line in enumerate(sys.stdin, 1):
                line = line.rstrip("\n").rstrip("\r")
                headers: list[tuple[str, bytes | None]] = []
                if parse_headers:
                    head, sep, line = line.partition(h_delim)
                    if not sep:
                        raise common.UsageError(f"line {lineno}: no headers delimiter {h_delim!r}")
                    for item in filter(None, head.split(h_sep)):
                        hk, hs, hv = item.partition(h_key_sep)
                        headers.append((hk, hv.encode("utf-8") if hs else None))
                key: bytes | None = None
                if parse_key:
                    k, sep, line = line.partition(key_sep)
                    if not sep:
                        raise common.UsageError(f"line {lineno}: no key separator {key_sep!r} "
                                                "(parse.key=true)")
                    key = to_bytes(k, ns.key_format, f"line {lineno}: the key")
                value = to_bytes(line, ns.value_format, f"line {lineno}: the value")
                if ns.partition is not None:
                    p = ns.partition
                elif key is not None:
                    p = partition_for_key(key, n)
                else:
                    p = rr % n
                    rr += 1
                sender.add(p, (key, value, headers, int(time.time() * 1000)), batch_size)
            sender.flush_all()
            sender.progress.done()
        return 0


class _Sender:
    def __init__(self, client: KafkaClient, topic: TopicMeta, ns: argparse.Namespace,
                 progress: common.Progress) -> None:
        self.client = client
        self.topic = topic
        self.ns = ns
        self.progress = progress
        self.pending: dict[int, list[tuple[Any, ...]]] = {}

    def add(self, partition: int, rec: tuple[Any, ...], batch_size: int) -> None:
        recs = self.pending.setdefault(partition, [])
        recs.append(rec)
        if len(recs) >= batch_size:
            self.flush(partition)

    def flush(self, partition: int) -> None:
        recs = self.pending.pop(partition, [])
        if not recs:
            return
        base = self.client.produce(self.topic, partition, recs, acks=self.ns.acks,
                                   compression=CODECS[self.ns.compression_codec])
        if self.ns.print_offsets:
            for i in range(len(recs)):
                print(f"{self.topic.name}\t{partition}\t{base + i if base >= 0 else -1}")
            sys.stdout.flush()
        self.progress.add(len(recs))

    def flush_all(self) -> None:
        for p in sorted(self.pending):
            self.flush(p)


class Consume(common.CommandBody):
    def parser(self, prog: str) -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser(prog=prog, description="Print a topic's records "
                                     "(kafka-console-consumer.sh's flags). Properties: print.key, "
                                     "print.value, print.timestamp, print.partition, print.offset, "
                                     "print.headers, key.separator, line.separator, headers.separator, "
                                     "null.literal.")
        common.add_connection_args(ap)
        ap.add_argument("--topic", required=True)
        ap.add_argument("--partition", type=int, help="only this partition")
        ap.add_argument("--offset", default=None, help="with --partition: earliest, latest or an offset "
                        "(default latest)")
        ap.add_argument("--from-beginning", action="store_true", help="start at the earliest offset "
                        "(default: only new records)")
        ap.add_argument("--group", help="consume as a member of this consumer group (classic protocol, "
                        "range assignment): start at its committed offsets, commit as it goes")
        ap.add_argument("--max-messages", type=int, metavar="N", help="stop after N records")
        ap.add_argument("--timeout-ms", type=int, metavar="MS", help="stop when no record came for MS")
        ap.add_argument("--isolation-level", choices=["read_uncommitted", "read_committed"],
                        default="read_uncommitted")
        _format_args(ap, "shown")
        for name in ("key", "timestamp", "headers", "partition", "offset"):
            ap.add_argument(f"--print-{name}", action="store_true", help=f"= --property print.{name}=true")
        common.add_progress_args(ap)
        return ap

    def run(self, ns: argparse.Namespace) -> int:
        props = common.parse_kv(ns.property, "--property")
        for name in ("key", "timestamp", "headers", "partition", "offset"):
            if getattr(ns, f"print_{name}"):
                props[f"print.{name}"] = "true"
        if ns.offset is not None and ns.partition is None:
            raise common.UsageError("--offset needs --partition")
        if ns.offset is not None and ns.from_beginning:
            raise common.UsageError("--offset and --from-beginning exclude each other")
        if ns.max_messages is not None and ns.max_messages < 1:
            raise common.UsageError("--max-messages must be at least 1")
        start: int | None = None
        if ns.offset is not None and ns.offset not in ("earliest", "latest"):
            try:
                start = int(ns.offset)
            except ValueError:
                raise common.UsageError(f"--offset {ns.offset!r}: earliest, latest or a number") from None
            if start < 0:
                raise common.UsageError("--offset must not be negative")
        if ns.group is not None and (ns.partition is not None or ns.offset is not None):
            raise common.UsageError("--group excludes --partition and --offset (the group assigns partitions)")
        fmt = _Formatter(props, ns.key_format, ns.value_format)
        progress = common.Progress(ns.progress, f"consumed from {ns.topic}")
        loop = _ConsumeLoop(ns, fmt, progress)
        main_thread = threading.current_thread() is threading.main_thread()
        # SIGTERM as Ctrl-C: commit (with --group), leave the group, print the summary
        old_handler = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
        try:
            with common.connect(ns) as client:
                loop.run(client, start)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, old_handler)
            progress.done()
            print(f"Processed a total of {loop.count} messages", file=sys.stderr)
        return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _ConsumeLoop:
    """Fetch, print, and with ``--group`` be a member of the group: heartbeat
    between fetches, commit every 5 s and at the end (the offset after the
    last record printed), rejoin when the group rebalances."""

    COMMIT_INTERVAL = 5.0

    def __init__(self, ns: argparse.Namespace, fmt: _Formatter, progress: common.Progress) -> None:
        self.ns = ns
        self.fmt = fmt
        self.progress = progress
        self.isolation = 1 if ns.isolation_level == "read_committed" else 0
        self.count = 0
        self.member: GroupMember | None = None
        self.offsets: dict[int, int] = {}

    def _start_offsets(self, client: KafkaClient, topic: TopicMeta, parts: list[int],
                       committed: dict[int, int]) -> dict[int, int]:
        earliest = self.ns.from_beginning or self.ns.offset == "earliest"
        missing = [p for p in parts if p not in committed]
        out = {p: committed[p] for p in parts if p in committed}
        if missing:
            out.update(client.list_offsets(topic, {p: -2 if earliest else -1 for p in missing}, self.isolation))
        return out

    def _join(self, client: KafkaClient, topic: TopicMeta) -> None:
        assert self.member is not None
        assigned = self.member.join().get(topic.name, [])
        self.offsets = self._start_offsets(client, topic, assigned, self.member.committed(topic.name))
        print(f"joined group {self.ns.group!r} (generation {self.member.generation}): "
              f"partitions {assigned}", file=sys.stderr)

    def _commit(self, topic: TopicMeta) -> bool:
        assert self.member is not None
        return self.member.commit({(topic.name, p): o for p, o in self.offsets.items()})

    def run(self, client: KafkaClient, start: int | None) -> None:
        ns = self.ns
        topic = client.topic(ns.topic)
        if ns.group is not None:
            self.member = GroupMember(client, ns.group, [ns.topic])
            self._join(client, topic)
            try:
                self._loop(client, topic)
            finally:
                try:
                    self._commit(topic)
                finally:
                    self.member.leave()
            return
        if ns.partition is not None:
            if ns.partition not in topic.partitions:
                raise ClientError(f"topic {ns.topic!r} has no partition {ns.partition} "
                                  f"(it has {len(topic.partitions)})")
            parts = [ns.partition]
        else:
            parts = list(topic.partitions)
        self.offsets = self._start_offsets(client, topic, parts, {})
        if start is not None:
            lo = client.list_offsets(topic, {ns.partition: -2}, self.isolation)[ns.partition]
            hi = client.list_offsets(topic, {ns.partition: -1}, self.isolation)[ns.partition]
            if not lo <= start <= hi:
                raise ClientError(f"offset {start} is out of range for {ns.topic}-{ns.partition} [{lo}, {hi}]")
            self.offsets[ns.partition] = start
        self._loop(client, topic)

    def _loop(self, client: KafkaClient, topic: TopicMeta) -> None:
        ns = self.ns
        last = last_commit = time.monotonic()
        while True:
            got = False
            wait = 500 if ns.timeout_ms is None else max(0, min(500, ns.timeout_ms))
            if self.offsets:
                fetched = client.fetch(topic, self.offsets, max_wait_ms=wait, isolation_level=self.isolation)
            else:  # a group member without partitions: wait, heartbeat
                time.sleep(wait / 1000)
                fetched = iter(())
            for fp in fetched:
                if fp.error_code:
                    check(fp.error_code, f"Fetch {ns.topic}-{fp.partition}")
                for r in fp.records:
                    sys.stdout.write(self.fmt.format(ns.topic, fp.partition, r))
                    self.offsets[fp.partition] = r.offset + 1
                    self.count += 1
                    self.progress.add()
                    got = True
                    if ns.max_messages is not None and self.count >= ns.max_messages:
                        sys.stdout.flush()
                        return
                self.offsets[fp.partition] = max(self.offsets[fp.partition], fp.next_offset)
            sys.stdout.flush()
            now = time.monotonic()
            if got:
                last = now
            elif ns.timeout_ms is not None and (now - last) * 1000 >= ns.timeout_ms:
                return
            if self.member is not None:
                ok = True
                if now - last_commit >= self.COMMIT_INTERVAL:
                    ok = self._commit(topic)
                    last_commit = now
                if ok and self.member.heartbeat_due():
                    ok = self.member.heartbeat()
                if not ok:
                    self._commit(topic)  # refused once the generation is gone: the next owner re-reads
                    self._join(client, topic)


class _Formatter:
    """Kafka's DefaultMessageFormatter: [CreateTime:ts] [Partition:p]
    [Offset:o] [headers] [key] value, separated by key.separator."""

    def __init__(self, props: dict[str, str], key_fmt: str, value_fmt: str) -> None:
        self.key = _bool(props.get("print.key", "false"))
        self.value = _bool(props.get("print.value", "true"))
        self.ts = _bool(props.get("print.timestamp", "false"))
        self.partition = _bool(props.get("print.partition", "false"))
        self.offset = _bool(props.get("print.offset", "false"))
        self.headers = _bool(props.get("print.headers", "false"))
        self.sep = _unescape(props.get("key.separator", "\t"))
        self.line_sep = _unescape(props.get("line.separator", "\n"))
        self.h_sep = _unescape(props.get("headers.separator", ","))
        self.null = props.get("null.literal", "null")
        self.key_fmt = key_fmt
        self.value_fmt = value_fmt

    def format(self, topic: str, partition: int, r: Record) -> str:
        parts = []
        if self.ts:
            parts.append(f"CreateTime:{r.timestamp}" if r.timestamp >= 0 else "NO_TIMESTAMP")
        if self.partition:
            parts.append(f"Partition:{partition}")
        if self.offset:
            parts.append(f"Offset:{r.offset}")
        if self.headers:
            parts.append(self.h_sep.join(f"{k}:{show(v, 'text', self.null)}" for k, v in r.headers)
                         if r.headers else "NO_HEADERS")
        if self.key:
            parts.append(show(r.key, self.key_fmt, self.null))
        if self.value:
            parts.append(show(r.value, self.value_fmt, self.null))
        return self.sep.join(parts) + self.line_sep
