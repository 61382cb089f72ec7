"""kafkajs (Node): one ``node compat_tests/node/driver.js`` process per operation,
JSON in on stdin, JSON out on stdout."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

from . import DEADLINE, Ack, Driver, DriverError, NoSuchFeature, Rec

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
SCRIPT = NODE_DIR / "driver.js"


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def _enc(r: Rec) -> dict:
    return {"partition": r.partition, "key": _b64(r.key), "value": _b64(r.value),
            "headers": [[k, _b64(v)] for k, v in r.headers], "timestamp": r.timestamp}


def _dec(d: dict) -> Rec:
    return Rec(d["partition"], d["offset"], _unb64(d["key"]), _unb64(d["value"]),
               tuple((k, _unb64(v)) for k, v in d["headers"]), d["timestamp"])


class NodeError(DriverError):
    def __init__(self, error: dict, stderr: str) -> None:
        self.code = error.get("code")
        super().__init__(f"kafkajs: {error}\n--- node stderr (tail) ---\n{stderr[-3000:]}")


class Kafkajs(Driver):
    family = "kafkajs"
    codecs = ("gzip",)
    # kafkajs has no assign(): its only consumer is a group member, so every
    # scenario that reads records needs the broker's group APIs.
    consume_needs = ((8,), (9,), (10,), (11,), (12,), (13,), (14,))
    notes = ("`compat_tests/node/driver.js`, one Node process per operation (JSON over stdin/stdout); "
             "kafkajs can only consume as a group member (no assign()), so its reads join a fresh group "
             "and seek(); offsets of produced records are the batch base offset + position.",)

    def no_codec_reason(self, codec: str) -> str:
        return (f"kafkajs ships gzip only; {codec} needs a third-party codec package "
                "plugged into CompressionCodecs")

    def call(self, op: str, timeout: float = DEADLINE * 2, **args) -> object:  # type: ignore[no-untyped-def]
        node = shutil.which("node")
        if node is None:
            raise DriverError("node is not installed (bash scripts/test installs it)")
        if not (NODE_DIR / "node_modules" / "kafkajs").is_dir():
            raise DriverError("kafkajs is not installed in compat_tests/node (bash scripts/test runs npm)")
        try:
            p = subprocess.run([node, str(SCRIPT)], input=json.dumps({"op": op, **args}),
                               capture_output=True, text=True, timeout=timeout, cwd=NODE_DIR,
                               env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
        except subprocess.TimeoutExpired as e:
            raise DriverError(f"kafkajs {op}: no answer in {timeout}s; stderr: {(e.stderr or '')[-3000:]}") from e
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise DriverError(f"kafkajs {op}: exit {p.returncode}, no reply; stderr: {p.stderr[-3000:]}")
        reply = json.loads(lines[-1])
        if not reply["ok"]:
            raise NodeError(reply["error"], p.stderr + "\n" + reply.get("stack", ""))
        return reply["result"]

    def secure_roundtrip(self, sec, topic, values):  # type: ignore[no-untyped-def]
        sec = dict(sec)
        for k in ("ca", "cert", "key"):  # kafkajs takes PEM text
            sec[k] = Path(sec[k]).read_text() if sec.get(k) else None
        got = self.call("secure_roundtrip", sec=sec, topic=topic, values=[_b64(v) for v in values])
        return [(o, _unb64(v)) for o, v in got]  # type: ignore[union-attr]

    def versions(self) -> str:
        v = self.call("versions", timeout=30)
        return f"kafkajs {v['kafkajs']} (Node {v['node']})"  # type: ignore[index]

    # -- data -------------------------------------------------------------
    def metadata(self, bs, topic):  # type: ignore[no-untyped-def]
        r = self.call("metadata", bs=bs, topic=topic)
        return {"brokers": [tuple(b) for b in r["brokers"]],  # type: ignore[index]
                "partitions": {int(p): ps for p, ps in r["partitions"].items()}}  # type: ignore[index]

    def produce(self, bs, topic, recs, *, compression=None, idempotent=False, max_request=None):  # type: ignore[no-untyped-def]
        if compression and compression not in self.codecs:
            raise NoSuchFeature(self.no_codec_reason(compression))
        # kafkajs checks no request size of its own, so max_request needs nothing.
        r = self.call("produce", bs=bs, topic=topic, recs=[_enc(x) for x in recs],
                      compression=compression, idempotent=idempotent)
        return [Ack(a["partition"], a["offset"], a.get("error"), a.get("message", ""))  # type: ignore[union-attr]
                for a in r]  # type: ignore[union-attr]

    def consume(self, bs, topic, start, want, *, read_committed=False):  # type: ignore[no-untyped-def]
        r = self.call("consume", bs=bs, topic=topic, start={str(p): o for p, o in start.items()},
                      want={str(p): n for p, n in want.items()}, read_committed=read_committed)
        return {int(p): [_dec(x) for x in lst] for p, lst in r.items()}  # type: ignore[union-attr]

    def offsets_for_times(self, bs, topic, times):  # type: ignore[no-untyped-def]
        r = self.call("offsets_for_times", bs=bs, topic=topic, times={str(p): t for p, t in times.items()})
        return {int(p): o for p, o in r.items()}  # type: ignore[union-attr]

    # -- admin ------------------------------------------------------------
    def create_topics(self, bs, topics):  # type: ignore[no-untyped-def]
        self.call("admin", bs=bs, action="create_topics", args={"topics": [list(t) for t in topics]})

    def delete_topics(self, bs, names):  # type: ignore[no-untyped-def]
        self.call("admin", bs=bs, action="delete_topics", args={"names": names})

    def create_partitions(self, bs, topic, total):  # type: ignore[no-untyped-def]
        self.call("admin", bs=bs, action="create_partitions", args={"topic": topic, "total": total})

    def describe_configs(self, bs, topic):  # type: ignore[no-untyped-def]
        return self.call("admin", bs=bs, action="describe_configs", args={"topic": topic})

    def alter_configs(self, bs, topic, configs, advertised):  # type: ignore[no-untyped-def]
        self.call("admin", bs=bs, action="alter_configs", args={"topic": topic, "configs": configs})

    # -- groups -----------------------------------------------------------
    def group_rebalance(self, bs, topic, group, partitions):  # type: ignore[no-untyped-def]
        return self.call("group_rebalance", bs=bs, topic=topic, group=group, partitions=partitions)

    def group_consume(self, bs, topic, group, n):  # type: ignore[no-untyped-def]
        r = self.call("group_consume", bs=bs, topic=topic, group=group, n=n)
        return [_dec(x) for x in r]  # type: ignore[union-attr]

    # -- exactly once -----------------------------------------------------
    def produce_transactions(self, bs, topic, txn_id, aborted, committed):  # type: ignore[no-untyped-def]
        self.call("produce_transactions", bs=bs, topic=topic, txn_id=txn_id,
                  aborted=[_enc(x) for x in aborted], committed=[_enc(x) for x in committed])


DRIVER = Kafkajs()
