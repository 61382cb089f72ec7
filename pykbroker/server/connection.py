"""One trio task per client connection.

Requests are handled one at a time per connection, as Kafka mutes a channel
while a request is in flight, so responses go out in request order even
while a long-poll Fetch is pending.

What closes the connection (Kafka closes it in each of these cases): a frame
larger than socket.request.max.bytes or with a negative size, an unknown
API key, a version outside the advertised range (except ApiVersions, which
gets the v0 UNSUPPORTED_VERSION reply), a request that does not parse, and
a handler failure. Each is logged and affects only this connection.

Bounds (:class:`ConnectionLimits`, one per broker, made by the listener):

- ``connections.max.idle.ms``: a connection with no request for that long
  is closed (only between requests; a request being handled never counts).
- ``pykbroker.request.receive.timeout.ms``: a request must arrive in full
  that long after its first byte, else the connection is closed (a header
  promising 100 MB followed by a trickle is not held forever).
- ``queued.max.request.bytes``: request bytes buffered over all
  connections (received and not yet answered); at the bound no socket is
  read until it drops, as Kafka mutes channels when its memory pool is
  exhausted. A single request larger than what is free is admitted once
  nothing else is buffered, so no request below socket.request.max.bytes
  starves.
- ``max.connections`` (the accept loop waits for a free slot) and
  ``max.connections.per.ip`` / ``max.connections.per.ip.overrides`` (the
  new connection is closed at once), as Kafka's acceptor does.
- While a Fetch, ShareFetch, JoinGroup or SyncGroup is parked, the socket
  is watched: if the client closes it, the request is cancelled at once
  and the socket released (instead of lingering in CLOSE_WAIT until
  max_wait_ms, which may be days, or until the rebalance completes). The
  group keeps the member as Kafka does (its response is simply never
  delivered; the session timeout removes it; records a ShareFetch
  acquired are released by their lock timeout).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import time
from collections.abc import Coroutine, Generator
from typing import Any

import trio

from ..protocol.codec import Message
from ..handlers import REGISTRY, CloseConnection, RequestContext
from ..handlers.api_versions import unsupported_version_body
from ..protocol import codec
from ..protocol.framing import FrameBuffer, ProtocolViolation, encode_response, parse_header, peek_api
from ..protocol.primitives import DecodeError
from ..security import quotas
from ..security.session import AuthClose, ConnectionAuth, linger, open_stream
from .state import BrokerState

log = logging.getLogger("pykbroker.connection")

# Regions smaller than this are read and sent with the surrounding bytes in
# one send; larger ones go out with os.sendfile (zero-copy).
SENDFILE_MIN = 32 * 1024


# Requests that may wait a long time for something else: their socket is
# watched for the client going away. Fetch is read-only (safe to cancel
# anywhere); JoinGroup/SyncGroup and ShareFetch change group state under
# the group's lock before they park, and their coordinators shield that
# part, so a cancel lands only on the wait (group/coordinator.py,
# share/coordinator.py steady_lock).
PARKING_APIS = frozenset({1, 11, 14, 78})
RECV_SIZE = 256 * 1024


def _parse_overrides(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        host, _, n = item.rpartition(":")
        out[host.strip("[]")] = int(n)
    return out


class ConnectionLimits:
    """The broker-wide bounds on connections and buffered request bytes."""

    def __init__(self, config: Any) -> None:
        self.max_connections = int(config["max.connections"])
        self.max_per_ip = int(config["max.connections.per.ip"])
        self.per_ip_overrides = _parse_overrides(config["max.connections.per.ip.overrides"])
        idle = int(config["connections.max.idle.ms"])
        self.idle_s = idle / 1000 if idle > 0 else math.inf
        self.receive_timeout_s = int(config["pykbroker.request.receive.timeout.ms"]) / 1000
        queued = int(config["queued.max.request.bytes"])
        self.max_queued = queued if queued > 0 else math.inf
        self.queued = 0
        self.connections = 0
        self.per_ip: dict[str, int] = {}
        self._freed = trio.Event()

    # connections -----------------------------------------------------------------
    def _changed(self) -> None:
        self._freed.set()
        self._freed = trio.Event()

    async def wait_for_slot(self) -> None:
        while self.connections >= self.max_connections:
            await self._freed.wait()

    def admit(self, ip: str) -> bool:
        limit = self.per_ip_overrides.get(ip, self.max_per_ip)
        if self.per_ip.get(ip, 0) >= limit:
            return False
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        self.connections += 1
        return True

    def release(self, ip: str) -> None:
        self.connections -= 1
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)
        self._changed()

    # buffered request bytes ----------------------------------------------------------
    async def wait_for_memory(self, held: int, extra: int = 0) -> None:
        """Until reading is allowed: ``extra`` more bytes fit under the
        bound (with ``extra`` 0: the total is below it), or nothing but this
        connection's ``held`` bytes is buffered (so a big request is never
        starved)."""
        while self.queued > held and (self.queued + extra > self.max_queued if extra
                                      else self.queued >= self.max_queued):
            await self._freed.wait()

    def adjust(self, n: int) -> None:
        if n:
            self.queued += n
            if n < 0:
                self._changed()


async def serve_connection(state: BrokerState, stream: trio.SocketStream,
                           limits: ConnectionLimits | None = None, security: Any = None) -> None:
    try:
        peer = "%s:%s" % stream.socket.getpeername()[:2]
    except OSError:
        peer = "?"
    # TLS handshake and the connection's authentication state (pykbroker/security/session.py)
    raw = stream  # the socket under TLS, watched for the client going away
    opened = await open_stream(security, stream, peer)
    if opened is None:
        return
    stream, auth = opened
    if limits is None:
        limits = ConnectionLimits(state.config)
    fb = FrameBuffer(int(state.config["socket.request.max.bytes"]))
    sendfile_ok = bool(state.config["pykbroker.fetch.sendfile"]) and isinstance(stream, trio.SocketStream)
    # Request memory as Kafka's pool hands it out: once a frame's size is
    # known, the whole frame is reserved before more of it is read (so
    # connections never deadlock holding parts of frames), and it stays
    # counted until its response is built.
    held = 0  # this connection's bytes counted in limits.queued
    admitted = False  # the frame being received has its size reserved
    inflight = 0  # size of the frame being handled

    def sync() -> None:
        nonlocal held
        target = fb.size + inflight + (max(fb.need - fb.size, 0) if admitted else 0)
        limits.adjust(target - held)
        held = target

    frame_deadline = math.inf  # when the partly received request must be complete
    try:
        async with stream:
            while True:
                if fb.size == 0 and fb.need < 0:
                    frame_deadline = math.inf
                    deadline = trio.current_time() + limits.idle_s
                elif frame_deadline == math.inf:
                    frame_deadline = trio.current_time() + limits.receive_timeout_s
                    deadline = frame_deadline
                else:
                    deadline = frame_deadline
                data = b""
                with trio.move_on_at(deadline):
                    if fb.need >= 0 and not admitted:
                        await limits.wait_for_memory(held, max(fb.need - fb.size, 1))
                        admitted = True
                        sync()
                    elif not admitted:
                        await limits.wait_for_memory(held)
                    try:
                        data = await stream.receive_some(RECV_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        return
                    if not data:
                        return
                if not data:
                    if fb.size or fb.need >= 0:
                        log.warning("closing connection from %s: request not received in full within "
                                    "%.0f ms", peer, limits.receive_timeout_s * 1000)
                    else:
                        log.info("closing idle connection from %s", peer)
                    return
                fb.feed(data)
                sync()
                while True:
                    frame = fb.next_frame()
                    if frame is None:
                        sync()
                        break
                    admitted = False
                    inflight = len(frame)
                    sync()
                    frame_deadline = math.inf
                    if auth.raw:  # SaslHandshake v0: bare SASL tokens until authenticated
                        token = auth.raw_token(frame)
                        await stream.send_all(len(token).to_bytes(4, "big") + token)
                        inflight = 0
                        sync()
                        continue
                    if frame[:2] in _PARKING_PREFIXES:
                        parts = await _dispatch_watching(state, frame, peer, raw, auth)
                    else:
                        parts = await _dispatch(state, frame, peer, auth)
                    # the request is answered: its bytes leave the buffered total
                    inflight = 0
                    sync()
                    if parts is not None:
                        await _send(stream, parts, sendfile_ok)
                    if auth.close_after_response:  # failed SASL: answered, then closed
                        await linger(stream)
                        return
                    if auth.mute_until > trio.current_time():
                        # a quota's throttle time: nothing more is read until it is over (Kafka mutes
                        # the channel after sending the response, KIP-219)
                        await trio.sleep_until(auth.mute_until)
    except (ProtocolViolation, AuthClose) as e:
        log.warning("closing connection from %s: %s", peer, e)
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass
    finally:
        limits.adjust(-held)


_PARKING_PREFIXES = frozenset(k.to_bytes(2, "big") for k in PARKING_APIS)


async def _dispatch_watching(state: BrokerState, frame: bytes, peer: str,
                             stream: trio.SocketStream, auth: ConnectionAuth | None = None) -> list[Any] | None:
    """:func:`_dispatch`, cancelled the moment the client closes its socket."""
    sock = stream.socket
    gone = False
    result: list[Any] | None = None
    failure: Exception | None = None

    async with trio.open_nursery() as n:
        async def watch() -> None:
            nonlocal gone
            try:
                b = await sock.recv(1, socket.MSG_PEEK)  # waits until readable; consumes nothing
            except Exception:  # OSError, ClosedResourceError: the peer is gone
                b = b""
            if b == b"":
                gone = True
                n.cancel_scope.cancel()
            # else a pipelined request is waiting: nothing more to learn

        n.start_soon(watch)
        try:
            result = await _dispatch(state, frame, peer, auth)
        except Exception as e:  # re-raised below as itself, not wrapped in an ExceptionGroup
            failure = e
        n.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if gone:
        raise trio.ClosedResourceError("client closed the connection while its request was parked")
    return result


async def _dispatch(state: BrokerState, frame: bytes, peer: str,
                    auth: ConnectionAuth | None = None) -> list[Any] | None:
    api_key, version, corr = peek_api(frame)
    if auth is not None:
        auth.check(api_key)  # SASL: only ApiVersions/SaslHandshake/SaslAuthenticate before authentication
    h = REGISTRY.get(api_key)
    if h is None:
        raise ProtocolViolation(f"unknown API key {api_key}")
    api = codec.api(api_key)
    if api_key == 18 and version > _max_version(state, api_key, h.max_version):
        # KIP-511: answer with a v0 body listing our ApiVersions range.
        body = unsupported_version_body(state)
        if state.hooks is not None:
            state.hooks.unsupported_api_versions(version, corr, peer, body)
        return encode_response(api, 0, corr, body, header_version=0)
    if not _min_version(state, api_key, h.advertised_min) <= version <= _max_version(state, api_key, h.max_version):
        raise ProtocolViolation(f"unsupported version {version} of {h.name} (API key {api_key})")
    if version < h.min_version:
        raise ProtocolViolation(f"{h.name} v{version} is advertised for old clients but no longer served")
    header = parse_header(frame, api.is_flexible(version))
    try:
        req, end = api.request.decode(frame, version, header.body_pos)
    except DecodeError as e:
        raise ProtocolViolation(f"malformed {h.name} v{version} request: {e}") from None
    ctx = RequestContext(state, api_key, version, corr, header.client_id, peer,
                         auth.listener if auth is not None else "PLAINTEXT", auth)
    if state.hooks is not None:  # metrics, trace, fault rules (server/metrics.py)
        return await state.hooks.dispatch(ctx, h, req, len(frame) + 4, _call)
    body = await _call(h, ctx, req)
    if body is None:
        return None
    return encode_response(api, version, corr, body)


class _Timed:
    """Drives a handler's coroutine step by step, adding the time each step runs to
    ``ctx.handler_ns``: the time the event loop spends on this request, not the time it
    waits (a long-polling Fetch, acks=all, work in a thread), as Kafka counts a request
    handler thread's time but not a request's time in purgatory."""

    __slots__ = ("coro", "ctx")

    def __init__(self, coro: Coroutine[Any, Any, Message | None], ctx: RequestContext) -> None:
        self.coro = coro
        self.ctx = ctx

    def __await__(self) -> Generator[Any, Any, Message | None]:
        coro, ctx = self.coro, self.ctx
        value: Any = None
        exc: BaseException | None = None
        while True:
            t0 = ctx.step_started_ns = time.perf_counter_ns()
            try:
                step = coro.send(value) if exc is None else coro.throw(exc)
            except StopIteration as done:
                result: Message | None = done.value
                return result
            finally:
                ctx.handler_ns += time.perf_counter_ns() - t0
                ctx.step_started_ns = 0
            value, exc = None, None
            try:
                value = yield step
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as e:
                exc = e


def _request_quota_applies(ctx: RequestContext) -> bool:
    """A request_percentage quota applies to this request (Kafka's authenticator answers
    the requests of a SASL exchange itself: they are not counted)."""
    if ctx.auth is not None and not ctx.auth.authenticated:
        return False
    qm = ctx.state.security.quotas
    return bool(qm.store.quotas) and \
        qm.quota_for(quotas.REQUEST, ctx.principal.partition(":")[2], ctx.client_id or "") is not None


async def _call(h: Any, ctx: RequestContext, req: Message) -> Message | None:
    """Run the handler; what must close the connection becomes ProtocolViolation.

    request_percentage (security/quotas.py): with a quota for this client, the handler's
    running time is counted against it when the answer is ready (unless the handler did so
    itself, as Fetch does, or the request is an exempt cluster action); the answer's
    throttle_time_ms is the longest of the request quota's and the handler's own
    (a byte rate, controller_mutation_rate), as Kafka's."""
    try:
        if not _request_quota_applies(ctx):
            body: Message | None = await h.fn(ctx, req)
            return body
        body = await _Timed(h.fn(ctx, req), ctx)
        throttle = ctx.record_request_quota()
        ctx.record_request_rest()
        if body is not None and throttle > 0 and "throttle_time_ms" in body:
            body["throttle_time_ms"] = max(body["throttle_time_ms"] or 0, throttle)
        return body
    except CloseConnection as e:
        raise ProtocolViolation(f"{h.name}: {e}") from None
    except Exception as e:  # a handler bug must not take the broker down
        log.exception("handler %s v%d failed for %s", h.name, ctx.api_version, ctx.peer)
        raise ProtocolViolation(f"internal error in {h.name}: {e!r}") from e


def _min_version(state: BrokerState, api_key: int, lo: int) -> int:
    floors = state.api_version_floors
    if floors is None:
        return lo
    return max(lo, floors.get(api_key, lo))


def _max_version(state: BrokerState, api_key: int, hi: int) -> int:
    caps = state.api_version_caps
    if caps is None:
        return hi
    return min(hi, caps.get(api_key, -1))


async def _send(stream: Any, parts: list[Any], sendfile_ok: bool) -> None:
    pending = bytearray()
    for p in parts:
        if isinstance(p, (bytes, bytearray, memoryview)):
            pending += p
        elif not sendfile_ok or p.length < SENDFILE_MIN:
            pending += p.read_bytes()
        else:
            if pending:
                await stream.send_all(pending)
                pending = bytearray()
            await _sendfile(stream, p)
    if pending:
        await stream.send_all(pending)


async def _sendfile(stream: trio.SocketStream, region: Any) -> None:
    sock = stream.socket
    fd_out = sock.fileno()
    offset, remaining = region.offset, region.length
    while remaining > 0:
        try:
            sent = os.sendfile(fd_out, region.fd, offset, remaining)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                await trio.lowlevel.wait_writable(sock)
                continue
            raise trio.BrokenResourceError(str(e)) from e
        if sent == 0:
            # The file is shorter than the region (truncated meanwhile):
            # the response would be corrupt, so drop the connection.
            raise trio.BrokenResourceError("file region shrank during sendfile")
        offset += sent
        remaining -= sent
        await trio.lowlevel.checkpoint_if_cancelled()
