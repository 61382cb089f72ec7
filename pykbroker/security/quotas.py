"""Client quotas as Kafka's ClientQuotaManager keeps and enforces them.

Entities are sets of (type, name) with the types ``user``, ``client-id``
(and ``ip``); a name of None is the type's default entity. Values:
``producer_byte_rate``, ``consumer_byte_rate`` (bytes/s),
``request_percentage``, ``controller_mutation_rate`` (user / client-id
entities) and ``connection_creation_rate`` (ip entities).

The quota of a connection (its principal's user name and its client id)
is the first that exists of, as Kafka's DefaultQuotaCallback looks them up::

    user=<u>,client-id=<c>   user=<u>,client-id=<default>   user=<u>
    user=<default>,client-id=<c>   user=<default>,client-id=<default>   user=<default>
    client-id=<c>   client-id=<default>

Every connection sharing the matched entity shares one rate sensor (e.g.
all clients of a user with a user quota). A sensor counts bytes in
``quota.window.num`` (11) samples of ``quota.window.size.seconds`` (1 s);
the rate is their total over the window (at least ``num - 1`` full
samples long), and a request that takes the rate over the quota is
throttled for ``(rate - quota) / quota * window`` ms (Kafka's
``ClientQuotaManager.throttleTime``), at most the whole window.

``request_percentage`` (Kafka's ClientRequestQuotaManager) uses the same
sensors and formula over the time spent handling a client's requests, as a
percentage of one thread (1 s of handling per second = 100; the server's
dispatcher measures it, ``server/connection.py``), its throttle time at most
one window. ``controller_mutation_rate`` (KIP-599, Kafka's
ControllerMutationQuotaManager) is a token bucket instead: it refills at the
quota (partitions/s) up to ``controller.quota.window.num`` x
``controller.quota.window.size.seconds`` x quota tokens; each topic created
or deleted, or each partition added, takes one token per partition. A strict
quota (new request versions) first refuses a topic while the bucket is
below zero (THROTTLING_QUOTA_EXCEEDED), then takes the tokens, so the request
that empties the bucket may overdraw it; a permissive one (old versions)
takes them and only reports the throttle time. The throttle time is the time
the bucket needs to refill to zero.

Quotas are kept in ``<first log dir>/client-quotas.json`` (in memory with
``pykbroker.storage=memory``); in cluster mode in ZooKeeper, as Kafka keeps
them (``cluster/quotas.py``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import trio

USER, CLIENT_ID, IP = "user", "client-id", "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)
PRODUCE, FETCH = "producer_byte_rate", "consumer_byte_rate"
REQUEST, MUTATION = "request_percentage", "controller_mutation_rate"
CLIENT_KEYS = (PRODUCE, FETCH, REQUEST, MUTATION)
IP_KEYS = ("connection_creation_rate",)

Entity = tuple[tuple[str, str | None], ...]  # sorted by type


def entity_of(pairs: Any) -> Entity:
    """A canonical entity: sorted by type (then name; a default's None first)."""
    return tuple(sorted(((str(t), n) for t, n in pairs), key=lambda p: (p[0], p[1] is not None, p[1] or "")))


class QuotaError(ValueError):
    pass


def validate(entity: Entity, ops: list[tuple[str, float, bool]]) -> None:
    """Kafka's checks of one AlterClientQuotas entry (QuotaError: INVALID_REQUEST)."""
    types = [t for t, _ in entity]
    if not types:
        raise QuotaError("Invalid empty client quota entity")
    for t in types:
        if t not in ENTITY_TYPES:
            raise QuotaError(f"Unhandled client quota entity type: {t}")
    if len(set(types)) != len(types):
        raise QuotaError("Duplicate entity type in client quota entity")
    if IP in types and len(types) > 1:
        raise QuotaError("Invalid quota entity combination, IP entity should not be combined with "
                         "User or ClientId entities.")
    allowed = IP_KEYS if IP in types else CLIENT_KEYS
    seen: set[str] = set()
    for key, value, remove in ops:
        if key in seen:
            raise QuotaError(f"Duplicate quota key: {key}")
        seen.add(key)
        if key not in allowed:
            raise QuotaError(f"Invalid configuration key {key}")
        if not remove and not value > 0:
            raise QuotaError(f"Quota {key} must be greater than 0")


class QuotaStore:
    """entity -> {key: value}; persisted when ``path`` is given."""

    FILE = "client-quotas.json"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.quotas: dict[Entity, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._taken = 0  # snapshots taken / the newest written: an older one never replaces a newer
        self._written = 0
        if path is not None and path.exists():
            for e in json.loads(path.read_text()).get("quotas", []):
                self.quotas[entity_of((p["type"], p["name"]) for p in e["entity"])] = {
                    k: float(v) for k, v in e["values"].items()}

    def alter(self, entity: Entity, ops: list[tuple[str, float, bool]]) -> None:
        values = dict(self.quotas.get(entity, {}))
        for key, value, remove in ops:
            if remove:
                values.pop(key, None)
            else:
                values[key] = float(value)
        if values:
            self.quotas[entity] = values
        else:
            self.quotas.pop(entity, None)

    def describe(self, components: list[tuple[str, int, str | None]],
                 strict: bool) -> list[tuple[Entity, dict[str, float]]]:
        """Kafka's ClientQuotaFilter: each component (type, match type 0 exact /
        1 default / 2 any, name) must match; ``strict``: no other types."""
        out = []
        for entity, values in sorted(self.quotas.items(), key=lambda kv: repr(kv[0])):
            names = dict(entity)
            ok = True
            for etype, mtype, match in components:
                if etype not in names:
                    ok = False
                elif mtype == 0 and names[etype] != match:
                    ok = False
                elif mtype == 1 and names[etype] is not None:
                    ok = False
                if not ok:
                    break
            if ok and strict and len(names) != len(components):
                ok = False
            if ok:
                out.append((entity, dict(values)))
        return out

    def snapshot(self) -> dict[str, Any]:
        """The file's content now (taken on the event loop)."""
        self._taken += 1
        return {"version": 1, "seq": self._taken, "quotas": [
            {"entity": [{"type": t, "name": n} for t, n in e], "values": dict(v)}
            for e, v in sorted(self.quotas.items(), key=lambda kv: repr(kv[0]))]}

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data`` atomically (safe from worker threads)."""
        if self.path is None:
            return
        with self._lock:
            if data["seq"] <= self._written:
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({k: v for k, v in data.items() if k != "seq"}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._written = data["seq"]


class Sensor:
    """Kafka's Rate over ``samples`` windows of ``window_ms``."""

    def __init__(self, samples: int, window_ms: int) -> None:
        self.samples = samples
        self.window_ms = window_ms
        self.windows: deque[list[float]] = deque()  # [start ms, total]

    def _purge(self, now_ms: float) -> None:
        while self.windows and self.windows[0][0] <= now_ms - self.samples * self.window_ms:
            self.windows.popleft()

    def record(self, value: float, now_ms: float) -> None:
        self._purge(now_ms)
        if not self.windows or now_ms >= self.windows[-1][0] + self.window_ms:
            self.windows.append([now_ms, 0.0])
        self.windows[-1][1] += value

    def window_size_ms(self, now_ms: float) -> float:
        elapsed = now_ms - self.windows[0][0] if self.windows else 0.0
        full = elapsed // self.window_ms
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def rate(self, now_ms: float) -> float:
        """Per second."""
        self._purge(now_ms)
        return sum(w[1] for w in self.windows) / (self.window_size_ms(now_ms) / 1000)


class TokenBucket:
    """Kafka's TokenBucket stat: refills at the quota per second up to ``burst_s`` x quota;
    a new bucket is full."""

    def __init__(self, burst_s: float) -> None:
        self.burst_s = burst_s
        self.tokens = 0.0
        self.last_ms: float | None = None

    def measure(self, bound: float, now_ms: float) -> float:
        burst = self.burst_s * bound
        if self.last_ms is None:
            self.tokens = burst
        else:
            self.tokens = min(burst, self.tokens + bound * max(now_ms - self.last_ms, 0.0) / 1000)
        self.last_ms = now_ms
        return self.tokens

    def record(self, value: float, bound: float, now_ms: float) -> float:
        self.measure(bound, now_ms)
        self.tokens = min(self.burst_s * bound, self.tokens - value)
        return self.tokens


class ThrottlingQuotaExceeded(Exception):
    """A strict controller mutation quota refused a topic (THROTTLING_QUOTA_EXCEEDED)."""

    def __init__(self, throttle_ms: int) -> None:
        super().__init__("The throttling quota has been exceeded.")
        self.throttle_ms = throttle_ms


class MutationQuota:
    """One request's view of its controller_mutation_rate (Kafka's Strict/Permissive
    ControllerMutationQuota); ``record`` per topic, ``throttle_ms`` for the answer."""

    def __init__(self, bucket: TokenBucket | None, bound: float, strict: bool,
                 clock: Callable[[], float] = lambda: time.time() * 1000) -> None:
        self.bucket = bucket  # None: no quota applies
        self.bound = bound
        self.strict = strict
        self.clock = clock
        self._throttle = 0.0
        self._at = 0.0

    def _violated(self, tokens: float, now_ms: float) -> None:
        self._throttle = round(-tokens / self.bound * 1000)
        self._at = now_ms

    def record(self, permits: int) -> None:
        """Take ``permits`` tokens; strict: ThrottlingQuotaExceeded (nothing taken)
        while the bucket is below zero."""
        if self.bucket is None:
            return
        now = self.clock()
        if self.strict:
            tokens = self.bucket.measure(self.bound, now)
            if tokens < 0:
                self._violated(tokens, now)
                raise ThrottlingQuotaExceeded(int(self._throttle))
            self.bucket.record(permits, self.bound, now)
        else:
            tokens = self.bucket.record(permits, self.bound, now)
            if tokens < 0:
                self._violated(tokens, now)

    def throttle_ms(self) -> int:
        """The last throttle time, less the time since (Kafka's AbstractControllerMutationQuota)."""
        if self._throttle <= 0:
            return 0
        return int(max(0.0, self._throttle - (self.clock() - self._at)))


class QuotaManager:
    """Quotas per matched entity: rate sensors (``record`` answers the throttle time) and
    the controller mutation token buckets (``mutation_quota``)."""

    def __init__(self, store: QuotaStore, samples: int = 11, window_s: int = 1,
                 mutation_samples: int = 11, mutation_window_s: int = 1) -> None:
        self.store = store
        self.samples = samples
        self.window_ms = window_s * 1000
        self.sensors: dict[tuple[str, Entity], Sensor] = {}
        self.mutation_burst_s = float(mutation_samples * mutation_window_s)
        self.buckets: dict[Entity, TokenBucket] = {}

    def quota_for(self, key: str, user: str, client_id: str) -> tuple[Entity, float] | None:
        q = self.store.quotas
        if not q:
            return None
        candidates: list[Entity] = [
            entity_of([(USER, user), (CLIENT_ID, client_id)]), entity_of([(USER, user), (CLIENT_ID, None)]),
            ((USER, user),),
            entity_of([(USER, None), (CLIENT_ID, client_id)]), entity_of([(USER, None), (CLIENT_ID, None)]),
            ((USER, None),),
            ((CLIENT_ID, client_id),), ((CLIENT_ID, None),)]
        for e in candidates:
            values = q.get(e)
            if values is not None and key in values:
                return e, values[key]
        return None

    def record(self, key: str, user: str, client_id: str, value: float, now_ms: float,
               max_ms: float | None = None) -> int:
        """Count ``value`` against the connection's quota of ``key``; the throttle time in ms
        (at most the whole window, or ``max_ms``)."""
        found = self.quota_for(key, user, client_id)
        if found is None:
            return 0
        entity, bound = found
        sensor = self.sensors.get((key, entity))
        if sensor is None:
            sensor = self.sensors[(key, entity)] = Sensor(self.samples, self.window_ms)
        sensor.record(value, now_ms)
        rate = sensor.rate(now_ms)
        if rate <= bound:
            return 0
        throttle = (rate - bound) / bound * sensor.window_size_ms(now_ms)
        return int(min(throttle, self.samples * self.window_ms if max_ms is None else max_ms))

    def unrecord(self, key: str, user: str, client_id: str, value: float, now_ms: float) -> None:
        """Take back a recorded value (a throttled Fetch sends no data, as Kafka)."""
        found = self.quota_for(key, user, client_id)
        if found is not None:
            sensor = self.sensors.get((key, found[0]))
            if sensor is not None and sensor.windows:
                sensor.windows[-1][1] -= value


    def mutation_quota(self, user: str, client_id: str, strict: bool) -> MutationQuota:
        """The controller_mutation_rate of a request (unbounded when none applies)."""
        found = self.quota_for(MUTATION, user, client_id)
        if found is None:
            return MutationQuota(None, 0.0, strict)
        entity, bound = found
        bucket = self.buckets.get(entity)
        if bucket is None:
            bucket = self.buckets[entity] = TokenBucket(self.mutation_burst_s)
        return MutationQuota(bucket, bound, strict)


class QuotaSink(Protocol):
    """Where altered quotas are kept: the broker's file, or ZooKeeper in a
    cluster (``cluster/quotas.py``); called after the store changed."""

    async def save(self, entities: set[Entity]) -> None:
        """Persist ``entities``' quotas as they are now in the store."""


class FileQuotas:
    def __init__(self, store: QuotaStore) -> None:
        self.store = store

    async def save(self, entities: set[Entity]) -> None:
        if entities:
            await trio.to_thread.run_sync(self.store.write, self.store.snapshot())
