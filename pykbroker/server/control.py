"""The HTTP control endpoint (``pykbroker.control.listener=127.0.0.1:PORT``).

Off unless that property is set; loopback addresses only (config check),
since it has no authentication. A deliberately tiny HTTP/1.1 server on trio:
one request per connection (``Connection: close``), JSON in and out, bodies
up to 1 MiB.

    GET    /                        this list
    GET    /health                  {"status": "ok", ...}
    GET    /metrics                 Prometheus text format 0.0.4
    GET    /faults                  fault rules (with hits)
    POST   /faults                  add a rule (a JSON object) or rules (a list)
    DELETE /faults                  remove every rule
    GET    /faults/ID               one rule
    DELETE /faults/ID               remove one rule
    GET    /topics                  topics, partitions and offsets
    GET    /topics/NAME/records     ?partition=P&offset=O&limit=N
    GET    /groups                  every group with state and lag
    GET    /groups/ID               one group's state, offsets and lag
    GET    /versions                the ApiVersions ranges being advertised
    GET    /trace                   ?limit=N, the last trace events (pykbroker.trace=true)

Record keys, values and header values are given as UTF-8 text when they
decode, else as ``{"base64": "..."}``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import trio

from . import inspect
from .faults import FaultRuleError
from .metrics import render

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.control")

MAX_HEADER = 16 * 1024
MAX_BODY = 1024 * 1024
IO_TIMEOUT = 10.0

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error"}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_listener(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve_control(broker: "Broker", *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    host, port = parse_listener(broker.config["pykbroker.control.listener"])
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    log.info("control endpoint on %s://%s:%d/", "https" if broker.state.security.control_ssl_context else "http",
             host, bound[1])
    task_status.started((host, bound[1]))
    await trio.serve_listeners(functools.partial(_serve, broker), listeners)


async def _serve(broker: "Broker", stream: Any) -> None:
    ssl_context = broker.state.security.control_ssl_context  # pykbroker.control.ssl.enable
    if ssl_context is not None:
        stream = trio.SSLStream(stream, ssl_context, server_side=True, https_compatible=True)
        try:
            with trio.fail_after(IO_TIMEOUT):
                await stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError):
            await trio.aclose_forcefully(stream)
            return
    async with stream:
        try:
            with trio.fail_after(IO_TIMEOUT):
                method, target, body = await _read_request(stream)
            status, ctype, payload = _route(broker, method, target, body)
        except HttpError as e:
            status, ctype, payload = e.status, "application/json", _json({"error": str(e)})
        except trio.TooSlowError:
            status, ctype, payload = 408, "application/json", _json({"error": "request timed out"})
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        except Exception as e:  # never take the broker down
            log.exception("control endpoint failed")
            status, ctype, payload = 500, "application/json", _json({"error": repr(e)})
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
                f"Connection: close\r\n\r\n").encode("latin-1")
        try:
            with trio.fail_after(IO_TIMEOUT):
                await stream.send_all(head + payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, ConnectionError):
            pass


async def _read_request(stream: Any) -> tuple[str, str, bytes]:
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEADER:
            raise HttpError(413, "request header too large")
        data = await stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("closed before the request header ended")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise HttpError(400, "bad request line") from None
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if sep:
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "chunked bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    if length > MAX_BODY or length < 0:
        raise HttpError(413, "body too large")
    body = bytearray(rest)
    while len(body) < length:
        data = await stream.receive_some(65536)
        if not data:
            raise HttpError(400, "body shorter than Content-Length")
        body += data
    return method.upper(), target, bytes(body[:length])


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
        return 200, J, _json({"endpoints": ROUTES})
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
            try:
                recs = inspect.records(state, path[1], _int(q, "partition"), offset=_int(q, "offset"),
                                       limit=_int(q, "limit"))
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
