"""Client-metrics subscriptions and client instances (KIP-714), as Kafka's
``ClientMetricsManager``.

Kafka advertises GetTelemetrySubscriptions and PushTelemetry only when a
metrics reporter implementing ClientTelemetry is configured; here
``pykbroker.client.telemetry.enable=true`` does it (the receiver is the
broker's own ``/metrics``). Subscriptions can be managed either way.

**Subscriptions** are CLIENT_METRICS config resources (DescribeConfigs /
IncrementalAlterConfigs resource type 16, listed by ListConfigResources):

- ``metrics``: metric-name prefixes (``*`` = every metric; empty = none);
- ``interval.ms``: push interval, 100 .. 3600000 (default 300000);
- ``match``: ``selector=regex`` patterns, all of which a client must match
  (selectors ``client_instance_id``, ``client_id``, ``client_software_name``,
  ``client_software_version``, ``client_source_address``,
  ``client_source_port``); none = every client.

Deleting every config of a subscription removes it. Deviation: Kafka keeps
them in the cluster metadata; here they are in ``client-metrics.json`` in
the first log directory (each broker its own in a cluster).

**Client instances**: GetTelemetrySubscriptions with a zero id gets a new
id; the instance's subscription is the union of the matching
subscriptions' metrics with the lowest interval, its id a CRC32C of the
metrics and interval XORed with the instance id's hash. A second
GetTelemetrySubscriptions within the push interval is
THROTTLING_QUOTA_EXCEEDED (unless the last push failed with
UNKNOWN_SUBSCRIPTION_ID or UNSUPPORTED_COMPRESSION_TYPE); a subscription
change re-evaluates every instance on its next request.

**PushTelemetry**: a zero instance id is INVALID_REQUEST; after a
terminating push, INVALID_REQUEST; a push sooner than the interval after the
last (and not right after a GetTelemetrySubscriptions) is
THROTTLING_QUOTA_EXCEEDED unless terminating; a stale subscription id
UNKNOWN_SUBSCRIPTION_ID; an unknown codec UNSUPPORTED_COMPRESSION_TYPE; more
than ``telemetry.max.bytes`` TELEMETRY_TOO_LARGE; a payload that does not
decompress or decode INVALID_RECORD. Accepted metrics are kept per instance
(the latest value of each series) and shown on ``/metrics`` as
``pykbroker_client_metric{client_instance_id, client_id, name, ...}``; an
instance is forgotten after max(3 × its interval, 5 minutes) without a request.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..protocol import errors
from ..storage.checkpoints import atomic_write
from ..protocol.records import COMPRESSION_GZIP, COMPRESSION_LZ4, COMPRESSION_NONE, COMPRESSION_SNAPPY, COMPRESSION_ZSTD
from . import otlp

log = logging.getLogger("pykbroker.telemetry")

TELEMETRY_APIS = (71, 72)  # advertised only with pykbroker.client.telemetry.enable
FILE_NAME = "client-metrics.json"
INTERVAL_DEFAULT_MS = 300_000
INTERVAL_MIN_MS, INTERVAL_MAX_MS = 100, 3_600_000
ALL_METRICS = "*"
SELECTORS = ("client_instance_id", "client_id", "client_software_name", "client_software_version",
             "client_source_address", "client_source_port")
CONFIG_NAMES = ("metrics", "interval.ms", "match")
# Kafka's preference order; the client takes the first one it supports
ACCEPTED_COMPRESSION = [COMPRESSION_ZSTD, COMPRESSION_LZ4, COMPRESSION_GZIP, COMPRESSION_SNAPPY]
KNOWN_COMPRESSION = {COMPRESSION_NONE, *ACCEPTED_COMPRESSION}
CACHE_EXPIRY_MS = 300_000
MAX_SERIES_PER_INSTANCE = 2000


class ClientMetricsConfigError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@attrs.frozen
class Subscription:
    name: str
    metrics: tuple[str, ...]
    interval_ms: int
    match: tuple[tuple[str, re.Pattern[str]], ...]

    def matches(self, client: Mapping[str, str]) -> bool:
        return all(pat.fullmatch(client.get(sel, "")) is not None for sel, pat in self.match)


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_subscription(name: str, configs: Mapping[str, str]) -> Subscription:
    """Kafka's ClientMetricsConfigs.validate: known names, interval bounds, match syntax."""
    if not name.strip():
        raise ClientMetricsConfigError("Subscription name can't be empty")
    for k in configs:
        if k not in CONFIG_NAMES:
            raise ClientMetricsConfigError(f"Unknown client metrics configuration: {k}")
    try:
        interval = int(configs.get("interval.ms", str(INTERVAL_DEFAULT_MS)))
    except ValueError:
        raise ClientMetricsConfigError("Invalid value for interval.ms: not an integer") from None
    if not INTERVAL_MIN_MS <= interval <= INTERVAL_MAX_MS:
        raise ClientMetricsConfigError(f"Invalid value {interval} for interval.ms, interval must be between "
                                       f"{INTERVAL_MIN_MS} and {INTERVAL_MAX_MS}")
    match: list[tuple[str, re.Pattern[str]]] = []
    for pattern in _list(configs.get("match", "")):
        sel, sep, rx = pattern.partition("=")
        sel = sel.strip()
        if not sep or not rx:
            raise ClientMetricsConfigError(f"Illegal client matching pattern: {pattern}")
        if sel not in SELECTORS:
            raise ClientMetricsConfigError(f"Illegal client matching selector: {sel}")
        try:
            match.append((sel, re.compile(rx.strip())))
        except re.error as e:
            raise ClientMetricsConfigError(f"Illegal regex pattern for {sel}: {e}") from None
    return Subscription(name, tuple(_list(configs.get("metrics", ""))), interval, tuple(match))


def _crc32c(data: bytes) -> int:
    from crc32c import crc32c

    return int(crc32c(data))


def _java_uuid_hash(u: bytes) -> int:
    """Kafka's Uuid.hashCode: the 64-bit halves XORed, then the halves of that XORed."""
    msb, lsb = int.from_bytes(u[:8], "big"), int.from_bytes(u[8:], "big")
    h = msb ^ lsb
    v = ((h >> 32) ^ h) & 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _to_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@attrs.define
class ClientInstance:
    instance_id: bytes
    client: dict[str, str]  # selector -> value
    subscription_id: int
    metrics: list[str]
    interval_ms: int
    version: int  # the subscriptions' version it was evaluated at
    last_get_ms: float = -1.0
    last_push_ms: float = -1.0
    last_seen_ms: float = 0.0
    last_error: int = errors.NONE
    terminating: bool = False
    # series key (name, attributes) -> (kind, value)
    values: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, float]] = attrs.Factory(dict)
    pushes: int = 0


class TelemetryManager:
    def __init__(self, broker_config: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = int(broker_config["telemetry.max.bytes"])
        self.clock = clock
        self.configs: dict[str, dict[str, str]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.version = 0
        self.instances: dict[bytes, ClientInstance] = {}
        self.path: Path | None = None
        if broker_config["pykbroker.storage"] != "memory" and broker_config.log_dirs:
            self.path = Path(broker_config.log_dirs[0]) / FILE_NAME
            self._load()

    # -- subscriptions (CLIENT_METRICS config resources) ---------------------------------------
    def _load(self) -> None:
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.error("cannot read %s: %s", self.path, e)
            return
        for name, cfg in (doc.items() if isinstance(doc, dict) else []):
            try:
                configs = {str(k): str(v) for k, v in cfg.items()}
                self.subscriptions[str(name)] = parse_subscription(str(name), configs)
                self.configs[str(name)] = configs
            except (ClientMetricsConfigError, AttributeError) as e:
                log.error("%s: ignoring subscription %r: %s", self.path, name, e)

    def _save(self) -> None:
        if self.path is None:
            return
        atomic_write(self.path, json.dumps(self.configs, sort_keys=True).encode())

    def resources(self) -> list[str]:
        return sorted(self.configs)

    def describe(self, name: str) -> list[tuple[str, str, bool]]:
        """(config, value, is_default) of a subscription (every name; defaults for an unknown one)."""
        cfg = self.configs.get(name, {})
        defaults = {"metrics": "", "interval.ms": str(INTERVAL_DEFAULT_MS), "match": ""}
        return [(k, cfg.get(k, defaults[k]), k not in cfg) for k in CONFIG_NAMES]

    def alter(self, name: str, ops: list[tuple[str, int, str | None]], validate_only: bool) -> None:
        """IncrementalAlterConfigs on a subscription: SET (0), DELETE (1),
        APPEND (2) / SUBTRACT (3) on the list configs (``metrics``, ``match``).
        Raises ClientMetricsConfigError (nothing changes) or OSError."""
        if not name.strip():
            raise ClientMetricsConfigError("Subscription name can't be empty")
        configs = dict(self.configs.get(name, {}))
        for key, op, value in ops:
            if key not in CONFIG_NAMES:
                raise ClientMetricsConfigError(f"Unknown client metrics configuration: {key}")
            if op == 0:
                configs[key] = value or ""
            elif op == 1:
                configs.pop(key, None)
            elif key == "interval.ms":
                raise ClientMetricsConfigError(f"Can't {'APPEND' if op == 2 else 'SUBTRACT'} to key {key} "
                                               "because its type is not LIST.")
            else:
                items = _list(configs.get(key, ""))
                given = _list(value or "")
                items = items + [v for v in given if v not in items] if op == 2 else \
                    [v for v in items if v not in given]
                configs[key] = ",".join(items)
        if configs:
            parse_subscription(name, configs)
        if not validate_only:
            self.update(name, configs)

    def update(self, name: str, configs: Mapping[str, str]) -> None:
        """Replace a subscription's configs (empty: remove it); raises
        ClientMetricsConfigError (nothing changes) or OSError (not saved, nothing changes)."""
        old_cfg, old_sub = self.configs.get(name), self.subscriptions.get(name)
        if configs:
            self.subscriptions[name] = parse_subscription(name, configs)
            self.configs[name] = dict(configs)
        else:
            self.subscriptions.pop(name, None)
            self.configs.pop(name, None)
        try:
            self._save()
        except OSError:
            if old_cfg is None:
                self.configs.pop(name, None)
                self.subscriptions.pop(name, None)
            else:
                assert old_sub is not None
                self.configs[name], self.subscriptions[name] = old_cfg, old_sub
            raise
        self.version += 1
        log.info("client metrics subscription %s %s", name, "updated" if configs else "removed")

    # -- client instances ------------------------------------------------------------------------
    def _evaluate(self, instance_id: bytes, client: dict[str, str]) -> ClientInstance:
        metrics: set[str] = set()
        interval = INTERVAL_DEFAULT_MS
        every = False
        for sub in self.subscriptions.values():
            if sub.matches(client):
                every = every or ALL_METRICS in sub.metrics
                metrics.update(sub.metrics)
                interval = min(interval, sub.interval_ms)
        if every:
            metrics = {ALL_METRICS}
        ordered = sorted(metrics)
        text = "[" + ", ".join(ordered) + "]" + str(interval)
        sub_id = _to_int32(_crc32c(text.encode()) ^ _java_uuid_hash(instance_id))
        # Kafka sends "*" as the single prefix "" (every metric)
        requested = [""] if every else ordered
        return ClientInstance(instance_id, client, sub_id, requested, interval, self.version)

    def _instance(self, instance_id: bytes, client: dict[str, str]) -> ClientInstance:
        self._expire()
        inst = self.instances.get(instance_id)
        if inst is None:
            inst = self.instances[instance_id] = self._evaluate(instance_id, client)
        elif inst.version < self.version:
            # re-evaluated as a new instance (Kafka's rule: answered at once, timestamps start
            # again); the metrics it pushed stay on /metrics
            fresh = self._evaluate(instance_id, inst.client)
            fresh.values, fresh.pushes = inst.values, inst.pushes
            inst = self.instances[instance_id] = fresh
        inst.last_seen_ms = self.clock() * 1000
        return inst

    def _expire(self) -> None:
        now = self.clock() * 1000
        for iid, inst in list(self.instances.items()):
            if now - inst.last_seen_ms > max(CACHE_EXPIRY_MS, 3 * inst.interval_ms):
                del self.instances[iid]

    def get_subscriptions(self, instance_id: bytes, client: dict[str, str]) -> dict[str, Any]:
        """GetTelemetrySubscriptions: the response body."""
        if instance_id == bytes(16):
            instance_id = uuid.uuid4().bytes
            while instance_id in self.instances or instance_id == bytes(16):
                instance_id = uuid.uuid4().bytes
        client = dict(client, client_instance_id=str(uuid.UUID(bytes=instance_id)))
        inst = self._instance(instance_id, client)
        now = self.clock() * 1000
        body: dict[str, Any] = {"throttle_time_ms": 0, "error_code": errors.NONE, "client_instance_id": instance_id,
                                "subscription_id": 0, "accepted_compression_types": [], "push_interval_ms": 0,
                                "telemetry_max_bytes": 0, "delta_temporality": False, "requested_metrics": []}
        if (inst.last_get_ms >= 0 and now - inst.last_get_ms < inst.interval_ms
                and inst.last_error not in (errors.UNKNOWN_SUBSCRIPTION_ID, errors.UNSUPPORTED_COMPRESSION_TYPE)):
            body["error_code"] = errors.THROTTLING_QUOTA_EXCEEDED
            return body
        inst.last_get_ms = now
        inst.last_error = errors.NONE
        body.update(subscription_id=inst.subscription_id, accepted_compression_types=list(ACCEPTED_COMPRESSION),
                    push_interval_ms=inst.interval_ms, telemetry_max_bytes=self.max_bytes, delta_temporality=True,
                    requested_metrics=list(inst.metrics))
        return body

    def push(self, instance_id: bytes, subscription_id: int, terminating: bool, compression: int,
             metrics: bytes | None, client: dict[str, str]) -> tuple[int, str | None]:
        """PushTelemetry: (error code, message)."""
        if instance_id == bytes(16) or instance_id == b"\0" * 15 + b"\1":  # Kafka's reserved ids
            return errors.INVALID_REQUEST, "invalid client instance id"
        client = dict(client, client_instance_id=str(uuid.UUID(bytes=instance_id)))
        inst = self._instance(instance_id, client)
        now = self.clock() * 1000
        code, msg = self._check_push(inst, subscription_id, terminating, compression, metrics, now)
        inst.terminating = inst.terminating or terminating
        if code:
            inst.last_error = code
            return code, msg
        if metrics:
            try:
                data = self._decompress(compression, metrics)
                points = otlp.read_metrics(data)
            except TelemetryTooLarge:
                inst.last_error = errors.TELEMETRY_TOO_LARGE
                return errors.TELEMETRY_TOO_LARGE, "decompressed telemetry is larger than allowed"
            except Exception as e:  # any undecodable payload
                inst.last_error = errors.INVALID_RECORD
                log.info("client instance %s: undecodable telemetry: %s", client["client_instance_id"], e)
                return errors.INVALID_RECORD, f"cannot decode the pushed metrics: {e}"
            for p in points:
                key = (p.name, p.attributes)
                if key in inst.values or len(inst.values) < MAX_SERIES_PER_INSTANCE:
                    value = p.value
                    if p.kind == "sum" and p.monotonic and key in inst.values:
                        value = inst.values[key][1] + p.value  # deltas (DeltaTemporality) add up
                    inst.values[key] = (p.kind, value)
        inst.pushes += 1
        inst.last_error = errors.NONE
        return errors.NONE, None

    def _check_push(self, inst: ClientInstance, subscription_id: int, terminating: bool, compression: int,
                    metrics: bytes | None, now: float) -> tuple[int, str | None]:
        if inst.terminating:
            return errors.INVALID_REQUEST, "the client sent a terminating push before; no more requests accepted"
        after_get = inst.last_get_ms > inst.last_push_ms
        if not after_get and inst.last_push_ms >= 0 and now - inst.last_push_ms < inst.interval_ms and not terminating:
            return errors.THROTTLING_QUOTA_EXCEEDED, "request arrived before the next push interval time"
        if subscription_id != inst.subscription_id:
            return errors.UNKNOWN_SUBSCRIPTION_ID, "Unknown client subscription id"
        if compression not in KNOWN_COMPRESSION:
            return errors.UNSUPPORTED_COMPRESSION_TYPE, f"Unknown compression type [{compression}]"
        if metrics is not None and len(metrics) > self.max_bytes:
            return errors.TELEMETRY_TOO_LARGE, f"larger than the maximum allowed size [{self.max_bytes}]"
        inst.last_push_ms = now
        return errors.NONE, None

    def _decompress(self, compression: int, data: bytes) -> bytes:
        if compression == COMPRESSION_NONE:
            return data
        from ..protocol.records import MESSAGE_TOO_LARGE, InvalidRecords
        from ..protocol.validator import decompress_bounded

        try:
            return decompress_bounded(compression, data, 16 * self.max_bytes)
        except InvalidRecords as e:
            if e.error_code == MESSAGE_TOO_LARGE:
                raise TelemetryTooLarge(str(e)) from e
            raise

    # -- for /metrics ------------------------------------------------------------------------------
    def snapshot(self) -> list[tuple[dict[str, str], str, str, float]]:
        """(labels, name, kind, value) of every series of every live instance."""
        self._expire()
        out = []
        for inst in self.instances.values():
            base = {"client_instance_id": inst.client.get("client_instance_id", ""),
                    "client_id": inst.client.get("client_id", "")}
            for (name, attrs_), (kind, value) in sorted(inst.values.items()):
                out.append(({**base, **dict(attrs_)}, name, kind, value))
        return out


class TelemetryTooLarge(Exception):
    pass
