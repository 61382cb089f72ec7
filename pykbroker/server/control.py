"""The HTTP control endpoint (``pykbroker.control.listener=HOST:PORT``) and,
with ``pykbroker.console.enable``, the web console (``server/console/``).

An ASGI app (Starlette) served by Hypercorn's trio worker inside the
broker's own nursery: the same event loop as the Kafka listeners, so every
route reads the broker state directly, with no locks and no threads.
Starlette, Hypercorn and Jinja2 are imported only when the listener is
configured (this module is imported lazily by ``broker.py``), so a broker
without it starts as fast as before.

Off unless ``pykbroker.control.listener`` is set. Loopback addresses only,
unless ``pykbroker.control.ssl.enable=true`` and a login
(``pykbroker.control.auth.user`` / ``.password``, HTTP Basic) are both
configured (config check). With a login every route asks for it.
JSON in and out, request bodies up to 1 MiB.

    GET    /                        this list
    GET    /health                  {"status": "ok", ...}
    GET    /metrics                 Prometheus text format 0.0.4
    GET    /faults                  fault rules (with hits)
    POST   /faults                  add a rule (a JSON object) or rules (a list)
    DELETE /faults                  remove every rule
    GET    /faults/ID               one rule
    DELETE /faults/ID               remove one rule
    GET    /topics                  topics, partitions and offsets
    GET    /topics/NAME/records     ?partition=P&offset=O&limit=N (N at most 10000)
    GET    /groups                  every group with state and lag
    GET    /groups/ID               one group's state, offsets and lag
    GET    /versions                the ApiVersions ranges being advertised
    GET    /trace                   ?limit=N, the last trace events (pykbroker.trace=true)
    GET    /console/...             the web console (docs/console.md), when enabled

Record keys, values and header values are given as UTF-8 text when they
decode, else as ``{"base64": "..."}``. Errors are ``{"error": "..."}`` with
a 4xx status (5xx only for a bug, which is logged; the broker keeps serving).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import is_loopback
from . import inspect
from .faults import FaultRuleError
from .metrics import render

if TYPE_CHECKING:
    import ssl

    from ..broker import Broker

log = logging.getLogger("pykbroker.control")

MAX_BODY = 1024 * 1024
MAX_RECORDS_LIMIT = 10_000
IO_TIMEOUT = 10
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_listener(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Config(HypercornConfig):
    """Hypercorn's config with the broker's own TLS context (the ``ssl.*``
    stores, ``listener.name.control.*``; security/listeners.py) instead of
    Hypercorn's certfile/keyfile."""

    def __init__(self, ssl_context: "ssl.SSLContext | None") -> None:
        super().__init__()
        self._ssl_context = ssl_context

    @property
    def ssl_enabled(self) -> bool:
        return self._ssl_context is not None

    def create_ssl_context(self) -> "ssl.SSLContext | None":
        return self._ssl_context


def hypercorn_config(host: str, port: int, ssl_context: "ssl.SSLContext | None") -> HypercornConfig:
    cfg = _Config(ssl_context)
    cfg.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = log
    cfg.read_timeout = IO_TIMEOUT
    cfg.keep_alive_timeout = IO_TIMEOUT
    cfg.ssl_handshake_timeout = IO_TIMEOUT
    cfg.graceful_timeout = 1.0
    cfg.include_server_header = False
    cfg.alpn_protocols = ["http/1.1"]
    return cfg


async def serve_control(broker: "Broker", *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the control app (and the console) until cancelled; reports the
    bound ``(host, port)``."""
    host, port = parse_listener(broker.config["pykbroker.control.listener"])
    if port:  # a taken address fails here, as OSError, before anything starts
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    ssl_context = broker.state.security.control_ssl_context  # pykbroker.control.ssl.enable
    routes: list[BaseRoute] = []
    console = None
    if broker.config["pykbroker.console.enable"]:
        from .console import Console

        console = Console(broker)
        routes += console.routes()
    routes.append(Route("/{path:path}", _json_endpoint(broker), methods=METHODS))
    app: ASGIApp = OriginCheck(Starlette(routes=routes), host)
    user, password = broker.config["pykbroker.control.auth.user"], broker.config["pykbroker.control.auth.password"]
    if user:
        app = BasicAuth(app, user, password or "")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, hypercorn_config(host, port, ssl_context))
        bound = int(binds[0].rpartition(":")[2])
        log.info("control endpoint on %s://%s:%d/", "https" if ssl_context else "http", host, bound)
        if console is not None:
            nursery.start_soon(console.run)
        task_status.started((host, bound))


class OriginCheck:
    """Requests a browser was tricked into sending are refused (403):

    - a change (any method but GET/HEAD) whose ``Origin`` is another site
      (cross-site request forgery: a page elsewhere posting a form to
      127.0.0.1);
    - on a loopback listener, a ``Host`` that is not a loopback name or
      address (DNS rebinding: another site's name resolved to 127.0.0.1).
    Clients that send no ``Origin`` (curl, urllib, ``pykbroker ctl``) are
    not affected."""

    def __init__(self, app: ASGIApp, listen_host: str) -> None:
        self.app = app
        self.loopback_only = is_loopback(listen_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            why = None
            if self.loopback_only and host and not is_loopback(_hostname(host)):
                why = f"refused: Host {host!r} is not a loopback address"
            origin = headers.get(b"origin")
            if why is None and scope["method"] not in ("GET", "HEAD") and origin is not None:
                o = origin.decode("latin-1")
                if o == "null" or o.partition("://")[2] != host:
                    why = f"refused: a cross-origin request from {o!r}"
            if why is not None:
                await Response(_json({"error": why}), 403, media_type="application/json")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _hostname(host: str) -> str:
    """The name in a Host header (without the port; IPv6 in brackets)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class BasicAuth:
    """HTTP Basic authentication on every route (``pykbroker.control.auth.*``)."""

    def __init__(self, app: ASGIApp, user: str, password: str) -> None:
        self.app = app
        self.expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            got = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                await Response(_json({"error": "authentication required"}), 401, media_type="application/json",
                               headers={"WWW-Authenticate": 'Basic realm="pykbroker"'})(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused (413) past ``limit`` bytes."""
    try:
        if int(request.headers.get("content-length", "0")) > limit:
            raise HttpError(413, "body too large")
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpError(413, "body too large")
    return bytes(body)


def _json_endpoint(broker: "Broker") -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            body = await read_body(request)
            raw = request.scope.get("raw_path")  # still percent-encoded: _route unquotes each segment
            path = raw.decode("latin-1") if raw else request.url.path
            target = path + (f"?{request.url.query}" if request.url.query else "")
            status, ctype, payload = _route(broker, request.method, target, body)
        except HttpError as e:
            status, ctype, payload = e.status, "application/json", _json({"error": str(e)})
        except Exception as e:  # never take the broker down
            log.exception("control endpoint failed")
            status, ctype, payload = 500, "application/json", _json({"error": repr(e)})
        return Response(payload, status, media_type=ctype)
    return endpoint


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, default=str) + "\n").encode("utf-8")


def _bytes(b: bytes | None) -> Any:
    if b is None:
        return None
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode("ascii")}


def _int(q: dict[str, list[str]], name: str) -> int | None:
    v = q.get(name)
    if not v or v[0] == "":
        return None
    try:
        return int(v[0])
    except ValueError:
        raise HttpError(400, f"{name} must be an integer") from None


ROUTES = [
    "GET /health", "GET /metrics", "GET /faults", "POST /faults", "DELETE /faults", "GET /faults/ID",
    "DELETE /faults/ID", "GET /topics", "GET /topics/NAME/records?partition=&offset=&limit=",
    "GET /groups", "GET /groups/ID", "GET /versions", "GET /trace?limit=",
]
CONSOLE_ROUTE = "GET /console"


def _route(broker: "Broker", method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
    url = urlsplit(target)
    path = [unquote(p) for p in url.path.split("/") if p]
    q = parse_qs(url.query)
    state = broker.state
    faults = broker.faults
    J = "application/json"

    def need(*methods: str) -> None:
        if method not in methods:
            raise HttpError(405, f"{method} not allowed here (use {', '.join(methods)})")

    if not path:
        need("GET")
        routes = ROUTES + ([CONSOLE_ROUTE] if broker.config["pykbroker.console.enable"] else [])
        return 200, J, _json({"endpoints": routes})
    head = path[0]
    if head == "health" and len(path) == 1:
        need("GET")
        return 200, J, _json({"status": "ok", "bootstrap": broker.bootstrap, "cluster_id": state.cluster_id,
                              "as_version": broker.config["pykbroker.as.version"],
                              "storage": broker.config["pykbroker.storage"]})
    if head == "metrics" and len(path) == 1:
        need("GET")
        text = render(state, inspect.groups(state))
        return 200, "text/plain; version=0.0.4; charset=utf-8", text.encode("utf-8")
    if head == "faults":
        if len(path) == 1:
            need("GET", "POST", "DELETE")
            if method == "GET":
                return 200, J, _json(faults.list())
            if method == "DELETE":
                return 200, J, _json({"removed": faults.clear()})
            try:
                doc = json.loads(body or b"null")
            except ValueError as e:
                raise HttpError(400, f"body is not JSON: {e}") from None
            try:
                if isinstance(doc, list):
                    added: Any = [faults.add(r) for r in doc]
                elif isinstance(doc, dict):
                    added = faults.add(doc)
                else:
                    raise HttpError(400, "send a JSON object (one rule) or a list of rules")
            except FaultRuleError as e:
                raise HttpError(400, str(e)) from None
            return 201, J, _json(added)
        if len(path) == 2:
            need("GET", "DELETE")
            try:
                rid = int(path[1])
            except ValueError:
                raise HttpError(404, "no such rule") from None
            if method == "GET":
                r = faults.get(rid)
                if r is None:
                    raise HttpError(404, f"no rule {rid}")
                return 200, J, _json(r)
            if not faults.remove(rid):
                raise HttpError(404, f"no rule {rid}")
            return 200, J, _json({"removed": 1})
    if head == "topics":
        need("GET")
        if len(path) == 1:
            out = []
            for name in sorted(state.topics):
                ts = state.topics[name]
                out.append({"name": name, "internal": ts.internal, "partitions": [
                    {"partition": p.index, "log_start_offset": p.log_start_offset,
                     "log_end_offset": p.log_end_offset, "high_watermark": p.high_watermark,
                     "size_bytes": p.log.size} for p in ts.partitions]})
            return 200, J, _json(out)
        if len(path) == 3 and path[2] == "records":
            limit = _int(q, "limit")
            if limit is not None and not 0 <= limit <= MAX_RECORDS_LIMIT:
                raise HttpError(400, f"limit must be between 0 and {MAX_RECORDS_LIMIT}")
            try:
                recs = inspect.records(state, path[1], _int(q, "partition"), offset=_int(q, "offset"),
                                       limit=limit)
            except KeyError as e:
                raise HttpError(404, str(e.args[0])) from None
            for r in recs:
                r["key"] = _bytes(r["key"])
                r["value"] = _bytes(r["value"])
                r["headers"] = [[k, _bytes(v)] for k, v in r["headers"]]
            return 200, J, _json(recs)
    if head == "groups":
        need("GET")
        if len(path) == 1:
            return 200, J, _json(inspect.groups(state))
        if len(path) == 2:
            return 200, J, _json(inspect.group(state, path[1]))
    if head == "versions" and len(path) == 1:
        need("GET")
        return 200, J, _json({"as_version": broker.config["pykbroker.as.version"],
                              "api_keys": state.api_versions()})
    if head == "trace" and len(path) == 1:
        need("GET")
        tracer = broker.instrumentation.tracer
        events = list(tracer.events) if tracer is not None else []
        limit = _int(q, "limit")
        if limit is not None:
            events = events[-limit:] if limit > 0 else []
        return 200, J, _json({"enabled": tracer is not None, "events": events})
    raise HttpError(404, f"no such endpoint: {method} {url.path}")
