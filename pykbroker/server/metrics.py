"""Observability: per-request metrics, the request trace, fault-rule hooks,
Prometheus text rendering, JSON log lines.

:class:`Instrumentation` sits between the connection's dispatch and the
handlers (``state.hooks``, set by :class:`~pykbroker.broker.Broker`):
for every decoded request it

1. applies the fault rules (``pykbroker.server.faults``; one attribute
   check when there are none),
2. runs the handler and encodes the response,
3. records count, latency, errors and bytes for the API
   (``pykbroker.metrics.enable``),
4. logs the request and the response, decoded and bounded in length, on the
   ``pykbroker.trace`` logger and in a ring buffer (``pykbroker.trace``).

Metrics are plain counters in a dict; :func:`render` writes Prometheus'
text format 0.0.4 (no client library needed at run time):

- ``pykbroker_requests_total{api,version}``
- ``pykbroker_request_errors_total{api}``: responses carrying a non-zero
  ``error_code`` anywhere, plus requests that closed the connection
- ``pykbroker_request_duration_seconds{api}`` (histogram; decode to encode,
  injected delays included)
- ``pykbroker_request_bytes_total{api}``, ``pykbroker_response_bytes_total{api}``
  and the totals ``pykbroker_bytes_in_total`` / ``pykbroker_bytes_out_total``
- ``pykbroker_partition_log_end_offset``, ``..._log_start_offset``,
  ``..._high_watermark``, ``..._size_bytes`` ``{topic,partition}``
- ``pykbroker_group_lag{group,topic,partition}`` and
  ``pykbroker_group_committed_offset`` when groups have committed offsets
- ``pykbroker_fault_rule_hits_total{rule,action,api}``
"""

from __future__ import annotations

import bisect
import collections
import json
import logging
import time
import types
from typing import TYPE_CHECKING, Any
from collections.abc import Awaitable, Callable

from ..protocol.codec import Message
from ..protocol import codec
from ..protocol.framing import ProtocolViolation, encode_response
from .faults import FaultInjector

if TYPE_CHECKING:
    from .topics import PartitionState
    from ..config import BrokerConfig
    from .state import BrokerState

trace_log = logging.getLogger("pykbroker.trace")

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiStats:
    __slots__ = ("versions", "errors", "bytes_in", "bytes_out", "buckets", "sum", "count")

    def __init__(self) -> None:
        self.versions: dict[int, int] = {}
        self.errors = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0


class Metrics:
    def __init__(self) -> None:
        self.apis: dict[str, ApiStats] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.connections_closed_by_error = 0

    def observe(self, api: str, version: int, seconds: float, nin: int, nout: int, error: bool) -> None:
        s = self.apis.get(api)
        if s is None:
            s = self.apis[api] = ApiStats()
        s.versions[version] = s.versions.get(version, 0) + 1
        s.count += 1
        s.sum += seconds
        s.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        s.bytes_in += nin
        s.bytes_out += nout
        self.bytes_in += nin
        self.bytes_out += nout
        if error:
            s.errors += 1

    def snapshot(self) -> dict[str, Any]:
        """Counters as plain data (for tests and the Python API)."""
        return {
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "apis": {name: {"requests": s.count, "versions": dict(s.versions), "errors": s.errors,
                            "bytes_in": s.bytes_in, "bytes_out": s.bytes_out, "seconds": s.sum}
                     for name, s in self.apis.items()},
        }


def has_error(body: Any) -> bool:
    """True if any error code (``error_code``, ``partition_error_code``,
    ``topic_config_error_code``) in a response body is non-zero."""
    if body.__class__ is not dict:
        return False
    stack = [body]
    while stack:
        d = stack.pop()
        if d.get("error_code") or d.get("partition_error_code") or d.get("topic_config_error_code"):
            return True
        for v in d.values():
            cls = v.__class__
            if cls is list:
                if v and v[0].__class__ is dict:
                    stack.extend(v)
            elif cls is dict:
                stack.append(v)
    return False


def _size(parts: list[Any] | None) -> int:
    if not parts:
        return 0
    return sum(len(p) if isinstance(p, (bytes, bytearray, memoryview)) else p.length for p in parts)


# -- trace ---------------------------------------------------------------------------------------

def summarize(obj: Any, limit: int) -> str:
    """A compact, bounded rendering of a decoded message: record data as
    ``<records N bytes>``, long strings cut, the whole cut to ``limit``."""
    out: list[str] = []
    budget = [limit]

    def emit(s: str) -> bool:
        out.append(s)
        budget[0] -= len(s)
        return budget[0] > 0

    def walk(o: Any) -> bool:
        if isinstance(o, dict):
            if not emit("{"):
                return False
            first = True
            for k, v in o.items():
                if not emit(("" if first else ", ") + k + "="):
                    return False
                first = False
                if k == "records" and isinstance(v, (bytes, bytearray, memoryview)):
                    if not emit(f"<records {len(v)} bytes>"):
                        return False
                elif not walk(v):
                    return False
            return emit("}")
        if isinstance(o, list):
            if o and not isinstance(o[0], (dict, list, str, int)):
                n = sum(len(p) if isinstance(p, (bytes, bytearray, memoryview)) else getattr(p, "length", 0)
                        for p in o)
                return emit(f"<records {n} bytes>")
            if not emit("["):
                return False
            for i, v in enumerate(o):
                if i and not emit(", "):
                    return False
                if not walk(v):
                    return False
            return emit("]")
        if isinstance(o, (bytes, bytearray, memoryview)):
            return emit(f"<{len(o)} bytes>")
        if isinstance(o, str):
            return emit(repr(o if len(o) <= 200 else o[:200] + "..."))
        return emit(repr(o))

    walk(obj)
    s = "".join(out)
    if len(s) > limit:
        s = s[: max(limit - 3, 0)] + "..."
    return s


class Tracer:
    """Request/response trace: log lines plus a ring buffer of events."""

    def __init__(self, max_chars: int, keep: int = 10000) -> None:
        self.max_chars = max_chars
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)

    def _emit(self, ev: dict[str, Any], text: str) -> None:
        self.events.append(ev)
        if trace_log.isEnabledFor(logging.INFO):
            trace_log.info(text, extra={"trace": ev})

    def request(self, ctx: Any, name: str, req: Message) -> None:
        body = summarize(req, self.max_chars)
        ev = {"dir": "request", "api": name, "api_key": ctx.api_key, "version": ctx.api_version,
              "correlation_id": ctx.correlation_id, "client_id": ctx.client_id, "peer": ctx.peer,
              "time": time.time(), "body": body}
        self._emit(ev, f"-> {name} v{ctx.api_version} corr={ctx.correlation_id} "
                       f"client={ctx.client_id!r} peer={ctx.peer}: {body}")

    def response(self, ctx: Any, name: str, body: Message | None, seconds: float, note: str = "") -> None:
        text = "(no response)" if body is None else summarize(body, self.max_chars)
        if note:
            text = f"{note} {text}"
        ev = {"dir": "response", "api": name, "api_key": ctx.api_key, "version": ctx.api_version,
              "correlation_id": ctx.correlation_id, "client_id": ctx.client_id, "peer": ctx.peer,
              "time": time.time(), "ms": round(seconds * 1000, 3), "body": text}
        self._emit(ev, f"<- {name} v{ctx.api_version} corr={ctx.correlation_id} "
                       f"{seconds * 1000:.2f}ms: {text}")

    def closed(self, ctx: Any, name: str, reason: str, seconds: float) -> None:
        ev = {"dir": "close", "api": name, "api_key": ctx.api_key, "version": ctx.api_version,
              "correlation_id": ctx.correlation_id, "client_id": ctx.client_id, "peer": ctx.peer,
              "time": time.time(), "ms": round(seconds * 1000, 3), "body": reason}
        self._emit(ev, f"xx {name} v{ctx.api_version} corr={ctx.correlation_id}: connection closed: {reason}")


# -- the dispatch hook -----------------------------------------------------------------------------

class Instrumentation:
    """``state.hooks``: fault rules, metrics and trace around every request."""

    def __init__(self, config: "BrokerConfig") -> None:
        cfg = config
        self.config = config
        self.metrics = Metrics()
        self.metrics_enabled = bool(cfg["pykbroker.metrics.enable"])
        self.faults = FaultInjector()
        self.tracer: Tracer | None = Tracer(int(cfg["pykbroker.trace.max.chars"])) if cfg["pykbroker.trace"] else None
        # fn(ctx, response body) after each handled request: the console's
        # bytes-out-per-topic meter (server/console/history.py), when enabled
        self.topic_meter: Callable[[Any, Message], None] | None = None

    def enable_trace(self, max_chars: int | None = None) -> Tracer:
        if self.tracer is None:
            self.tracer = Tracer(max_chars or int(self.config["pykbroker.trace.max.chars"]))
        return self.tracer

    async def dispatch(self, ctx: Any, h: Any, req: Message, nbytes_in: int,
                       call: Callable[[Any, Any, Message], Awaitable[Message | None]]) -> list[Any] | None:
        tracer = self.tracer
        if tracer is None and not self.metrics_enabled and not self.faults.active and self.topic_meter is None:
            body = await call(h, ctx, req)
            if body is None:
                return None
            return encode_response(codec.api(ctx.api_key), ctx.api_version, ctx.correlation_id, body)
        t0 = time.perf_counter()
        if tracer is not None:
            tracer.request(ctx, h.name, req)
        plan = self.faults.plan(ctx, req) if self.faults.active else None
        try:
            if plan is None:
                body = await call(h, ctx, req)
            else:
                body = await plan.run(h, ctx, req, call)
            parts = None
            if body is not None:
                parts = encode_response(codec.api(ctx.api_key), ctx.api_version, ctx.correlation_id, body)
            if plan is not None:
                await plan.after(ctx, h)
        except ProtocolViolation as e:
            dt = time.perf_counter() - t0
            if self.metrics_enabled:
                self.metrics.observe(h.name, ctx.api_version, dt, nbytes_in, 0, True)
            if tracer is not None:
                tracer.closed(ctx, h.name, str(e), dt)
            raise
        dt = time.perf_counter() - t0
        if self.topic_meter is not None and body is not None:
            self.topic_meter(ctx, body)
        if self.metrics_enabled:
            self.metrics.observe(h.name, ctx.api_version, dt, nbytes_in, _size(parts), has_error(body))
        if tracer is not None:
            tracer.response(ctx, h.name, body, dt)
        return parts

    def unsupported_api_versions(self, version: int, corr: int, peer: str, body: Message) -> None:
        """An ApiVersions above our range got the KIP-511 v0 fallback."""
        if self.metrics_enabled:
            self.metrics.observe("ApiVersions", version, 0.0, 0, 0, True)
        if self.tracer is not None:
            ctx = types.SimpleNamespace(api_key=18, api_version=version, correlation_id=corr,
                                        client_id=None, peer=peer)
            self.tracer.request(ctx, "ApiVersions", {"unsupported_version": version})
            self.tracer.response(ctx, "ApiVersions", body, 0.0, note="UNSUPPORTED_VERSION, v0 reply:")


# -- Prometheus text format ---------------------------------------------------------------------------

def _esc(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw: Any) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}"


def _fmt(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def render(state: "BrokerState", groups: list[dict[str, Any]] | None = None) -> str:
    """Everything as Prometheus text (exposition format 0.0.4): ``state.hooks``'
    metrics, the partitions of ``state.topics``, ``groups``."""
    instr = state.hooks
    m = instr.metrics
    lines: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")

    apis = sorted(m.apis.items())
    family("pykbroker_requests_total", "counter", "Requests handled, by API and version.")
    for name, s in apis:
        for v, n in sorted(s.versions.items()):
            lines.append(f"pykbroker_requests_total{_labels(api=name, version=v)} {n}")
    family("pykbroker_request_errors_total", "counter",
           "Responses with a non-zero error code, and requests that closed the connection.")
    for name, s in apis:
        lines.append(f"pykbroker_request_errors_total{_labels(api=name)} {s.errors}")
    family("pykbroker_request_duration_seconds", "histogram", "Time from decoded request to encoded response.")
    for name, s in apis:
        acc = 0
        for le, n in zip(BUCKETS, s.buckets):
            acc += n
            lines.append(f'pykbroker_request_duration_seconds_bucket{{api="{_esc(name)}",le="{le}"}} {acc}')
        acc += s.buckets[-1]
        lines.append(f'pykbroker_request_duration_seconds_bucket{{api="{_esc(name)}",le="+Inf"}} {acc}')
        lines.append(f"pykbroker_request_duration_seconds_sum{_labels(api=name)} {_fmt(s.sum)}")
        lines.append(f"pykbroker_request_duration_seconds_count{_labels(api=name)} {s.count}")
    family("pykbroker_request_bytes_total", "counter", "Request bytes received (size prefix included), by API.")
    for name, s in apis:
        lines.append(f"pykbroker_request_bytes_total{_labels(api=name)} {s.bytes_in}")
    family("pykbroker_response_bytes_total", "counter", "Response bytes sent (size prefix included), by API.")
    for name, s in apis:
        lines.append(f"pykbroker_response_bytes_total{_labels(api=name)} {s.bytes_out}")
    family("pykbroker_bytes_in_total", "counter", "Request bytes received.")
    lines.append(f"pykbroker_bytes_in_total {m.bytes_in}")
    family("pykbroker_bytes_out_total", "counter", "Response bytes sent.")
    lines.append(f"pykbroker_bytes_out_total {m.bytes_out}")

    fs = state.fetch_sessions
    for name, kind, help_, value in (
            ("pykbroker_fetch_sessions", "gauge", "Incremental fetch sessions cached (KIP-227).", len(fs)),
            ("pykbroker_fetch_session_partitions", "gauge", "Partitions over all cached fetch sessions.",
             fs.num_partitions),
            ("pykbroker_fetch_sessions_created_total", "counter", "Fetch sessions opened.", fs.created),
            ("pykbroker_fetch_session_evictions_total", "counter", "Fetch sessions evicted from the cache.",
             fs.evictions),
            ("pykbroker_incremental_fetches_total", "counter", "Incremental fetch requests served.",
             fs.incremental_requests)):
        family(name, kind, help_)
        lines.append(f"{name} {value}")

    parts = []
    for tname in sorted(state.topics):
        ts = state.topics[tname]
        for p in ts.partitions:
            parts.append((tname, p))
    gauges: tuple[tuple[str, str, Callable[[PartitionState], int]], ...] = (
        ("pykbroker_partition_log_end_offset", "Next offset to be assigned.", lambda p: p.log_end_offset),
        ("pykbroker_partition_log_start_offset", "First offset kept.", lambda p: p.log_start_offset),
        ("pykbroker_partition_high_watermark", "High watermark.", lambda p: p.high_watermark),
        ("pykbroker_partition_size_bytes", "Bytes of record batches kept.", lambda p: p.log.size),
    )
    for metric, help_, get in gauges:
        family(metric, "gauge", help_)
        for tname, p in parts:
            lines.append(f"{metric}{_labels(topic=tname, partition=p.index)} {get(p)}")

    family("pykbroker_group_lag", "gauge", "High watermark minus committed offset, per group partition.")
    family_lines = []
    for g in groups or []:
        for o in g.get("offsets", []):
            labels = _labels(group=g['group_id'], topic=o['topic'], partition=o['partition'])
            if o.get("lag") is not None:
                lines.append(f"pykbroker_group_lag{labels} {o['lag']}")
            family_lines.append(f"pykbroker_group_committed_offset{labels} {o['committed']}")
    family("pykbroker_group_committed_offset", "gauge", "Committed offset, per group partition.")
    lines.extend(family_lines)

    family("pykbroker_fault_rule_hits_total", "counter", "Times each fault rule fired.")
    for r in instr.faults.list():
        labels = _labels(rule=r['id'], action=r['action'], api=r['api'] or '*')
        lines.append(f"pykbroker_fault_rule_hits_total{labels} {r['hits']}")

    telemetry = state.telemetry
    series = telemetry.snapshot()
    family("pykbroker_client_metric", "gauge", "Metrics pushed by clients (KIP-714 PushTelemetry), "
           "the latest value per client instance and series; name = the client's metric name.")
    for labels_, name, _kind, metric_value in series:
        lines.append(f"pykbroker_client_metric{_labels(**{**_safe(labels_), 'name': name})} {_fmt(metric_value)}")
    family("pykbroker_client_telemetry_instances", "gauge", "Client instances known from GetTelemetrySubscriptions.")
    lines.append(f"pykbroker_client_telemetry_instances {len(telemetry.instances)}")
    return "\n".join(lines) + "\n"


def _safe(labels: dict[str, str]) -> dict[str, str]:
    """Prometheus label names: [a-zA-Z_][a-zA-Z0-9_]* (OTLP attribute keys have dots)."""
    out = {}
    for k, v in labels.items():
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in k) or "_"
        out[name if not name[0].isdigit() else "_" + name] = v
    return out


# -- structured logs -----------------------------------------------------------------------------------

class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the
    decoded trace event under ``trace`` for pykbroker.trace lines)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ev = getattr(record, "trace", None)
        if ev is not None:
            doc["trace"] = ev
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)
