"""Handler registry: one module per API, each registering its key and range.

ApiVersions is generated from this registry, so nothing unimplemented is
advertised. A handler is ``async def handle(ctx, req) -> dict | None``
(None = no response, e.g. Produce with acks=0).

Each module starts with a short header: the versions it serves, its
behaviour in a few bullets, notes per version.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from typing import TYPE_CHECKING, Any
from collections.abc import Awaitable, Callable

import attrs
import trio

from ..protocol.codec import Message
from ..protocol import codec
from ..security import acl, quotas

if TYPE_CHECKING:
    from ..security.session import ConnectionAuth
    from ..server.state import BrokerState

HandlerFn = Callable[["RequestContext", Message], Awaitable[Message | None]]


@attrs.define(slots=True)
class RequestContext:
    state: "BrokerState"
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    peer: str = ""
    listener: str = "PLAINTEXT"
    auth: ConnectionAuth | None = None  # the connection's principal and SASL state (security/session.py)
    # request_percentage (security/quotas.py): the time this request's handler has run so far
    # (kept by the dispatcher, server/connection.py); exempt: an authorized cluster action
    handler_ns: int = 0
    step_started_ns: int = 0  # perf_counter_ns() when the running step began (0: none running)
    quota_exempt: bool = False
    request_recorded_ns: int | None = None

    # -- authorization (security/acl.py; everything is allowed without authorizer.class.name) --------
    @property
    def principal(self) -> str:
        return self.auth.principal if self.auth is not None else "User:ANONYMOUS"

    @property
    def host(self) -> str:
        return self.peer.rpartition(":")[0] or self.peer

    def allowed(self, op: int, resource_type: int, name: str = acl.CLUSTER_NAME) -> bool:
        """May this connection's principal do ``op`` on the resource (Kafka's authorizer)?"""
        authz = self.state.security.authorizer
        return authz is None or authz.authorize(self.principal, self.host, op, resource_type, name)

    def may_create_topic(self, name: str) -> bool:
        """CREATE on the cluster or on the topic (Kafka's check for creation and auto-creation)."""
        return self.allowed(acl.CREATE, acl.CLUSTER) or self.allowed(acl.CREATE, acl.TOPIC, name)

    def allowed_any(self, op: int, resource_type: int) -> bool:
        """``op`` allowed on some resource of the type (Kafka's authorizeByResourceType)."""
        authz = self.state.security.authorizer
        return authz is None or authz.authorize_any(self.principal, self.host, op, resource_type)

    def throttle(self, ms: int) -> None:
        """Mute the connection for ``ms`` after the answer (Kafka mutes the channel; the
        longest of several quotas' throttle times wins)."""
        if ms > 0 and self.auth is not None:
            self.auth.mute_until = max(self.auth.mute_until, trio.current_time() + ms / 1000)

    def record_quota(self, key: str, value: float) -> int:
        """Count ``value`` (bytes) against this client's ``key`` quota (security/quotas.py);
        the throttle time in ms, for which the connection is also muted after the answer."""
        user = self.principal.partition(":")[2]
        ms = self.state.security.quotas.record(key, user, self.client_id or "", value, time.time() * 1000)
        self.throttle(ms)
        return ms

    def record_request_quota(self) -> int:
        """Count the handler time so far against request_percentage (Kafka's
        ClientRequestQuotaManager: 1 s = 100, throttle at most one window); once per request,
        later time is counted without throttling. The throttle time in ms (connection muted)."""
        if self.quota_exempt or self.request_recorded_ns is not None:
            return 0
        spent = self.handler_time_ns()
        self.request_recorded_ns = spent
        qm = self.state.security.quotas
        ms = qm.record(quotas.REQUEST, self.principal.partition(":")[2], self.client_id or "",
                       spent / 1e7, time.time() * 1000, max_ms=qm.window_ms)
        self.throttle(ms)
        return ms

    def handler_time_ns(self) -> int:
        """The handler's running time so far, the step now running included."""
        running = time.perf_counter_ns() - self.step_started_ns if self.step_started_ns else 0
        return self.handler_ns + running

    def record_request_rest(self) -> None:
        """The handler time after :meth:`record_request_quota`, counted without throttling."""
        if self.quota_exempt or self.request_recorded_ns is None:
            return
        rest = self.handler_ns - self.request_recorded_ns
        if rest > 0:
            self.state.security.quotas.record(quotas.REQUEST, self.principal.partition(":")[2],
                                              self.client_id or "", rest / 1e7, time.time() * 1000)
        self.request_recorded_ns = self.handler_ns

    def mutation_quota(self, strict_since: int) -> quotas.MutationQuota:
        """This request's controller_mutation_rate: strict from version ``strict_since``
        (THROTTLING_QUOTA_EXCEEDED per topic), permissive (throttle only) before."""
        return self.state.security.quotas.mutation_quota(self.principal.partition(":")[2], self.client_id or "",
                                                         self.api_version >= strict_since)

    def unrecord_quota(self, key: str, value: float) -> None:
        self.state.security.quotas.unrecord(key, self.principal.partition(":")[2], self.client_id or "", value,
                                            time.time() * 1000)

    def authorized_ops(self, resource_type: int, name: str = acl.CLUSTER_NAME) -> int:
        """The authorized-operations bit field of a resource (every supported one without authorizer)."""
        authz = self.state.security.authorizer
        if authz is None:
            return acl.ops_bits(acl.BITFIELD_OPS[resource_type])
        return authz.authorized_ops(self.principal, self.host, resource_type, name)


class CloseConnection(Exception):
    """Raised by a handler when Kafka would close the connection instead of answering."""


@attrs.frozen
class Handler:
    api_key: int
    name: str
    min_version: int  # lowest version served
    max_version: int  # highest version served
    advertised_min: int  # lowest version advertised in ApiVersions (may be < min_version)
    fn: HandlerFn
    module: str

    @property
    def spec(self) -> codec.ApiSpec:
        return codec.api(self.api_key)


REGISTRY: dict[int, Handler] = {}


def handler(api_key: int, min_version: int, max_version: int, *,
            advertised_min: int | None = None) -> Callable[[HandlerFn], HandlerFn]:
    """Register ``fn`` as the handler of ``api_key`` for the given versions."""

    def deco(fn: HandlerFn) -> HandlerFn:
        # The handler module's name is its spec file's name (produce.py ↔ produce.json).
        spec = codec.load_api_file(fn.__module__.rpartition(".")[2])
        if spec.api_key != api_key:
            raise ValueError(f"{fn.__module__}: spec file is for API key {spec.api_key}, not {api_key}")
        if not (spec.valid.lo <= min_version and max_version <= spec.valid.hi) and \
                not (min_version >= 0 and max_version <= spec.valid.hi):
            raise ValueError(f"{spec.name}: versions {min_version}-{max_version} outside the spec")
        REGISTRY[api_key] = Handler(api_key, spec.name, min_version, max_version,
                                    min_version if advertised_min is None else advertised_min,
                                    fn, fn.__module__)
        return fn

    return deco


_loaded = False


def load_all() -> dict[int, Handler]:
    """Import every handler module (each registers itself) and return the registry."""
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True
    return REGISTRY


def advertised(max_versions: dict[int, int] | None = None) -> list[dict[str, Any]]:
    """The ApiVersions ``api_keys`` array, optionally capped per key."""
    out = []
    for key in sorted(load_all()):
        h = REGISTRY[key]
        hi = h.max_version
        if max_versions is not None:
            if key not in max_versions:
                continue
            hi = min(hi, max_versions[key])
        out.append({"api_key": key, "min_version": h.advertised_min, "max_version": hi})
    return out
