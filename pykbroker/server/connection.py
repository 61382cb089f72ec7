"""One trio task per client connection.

Requests are handled one at a time per connection, as Kafka mutes a channel
while a request is in flight, so responses go out in request order even
while a long-poll Fetch is pending.

What closes the connection (Kafka closes it in each of these cases): a frame
larger than socket.request.max.bytes or with a negative size, an unknown
API key, a version outside the advertised range (except ApiVersions, which
gets the v0 UNSUPPORTED_VERSION reply), a request that does not parse, and
a handler failure. Each is logged and affects only this connection.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import trio

from ..protocol.codec import Message
from ..handlers import REGISTRY, CloseConnection, RequestContext
from ..handlers.api_versions import unsupported_version_body
from ..protocol import codec
from ..protocol.framing import FrameBuffer, ProtocolViolation, encode_response, parse_header, peek_api
from ..protocol.primitives import DecodeError
from .state import BrokerState

log = logging.getLogger("pykbroker.connection")

# Regions smaller than this are read and sent with the surrounding bytes in
# one send; larger ones go out with os.sendfile (zero-copy).
SENDFILE_MIN = 32 * 1024


async def serve_connection(state: BrokerState, stream: trio.SocketStream) -> None:
    try:
        peer = "%s:%s" % stream.socket.getpeername()[:2]
    except OSError:
        peer = "?"
    fb = FrameBuffer(int(state.config["socket.request.max.bytes"]))
    sendfile_ok = bool(state.config["pykbroker.fetch.sendfile"])
    try:
        async with stream:
            while True:
                try:
                    data = await stream.receive_some(256 * 1024)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
                if not data:
                    return
                fb.feed(data)
                while True:
                    frame = fb.next_frame()
                    if frame is None:
                        break
                    parts = await _dispatch(state, frame, peer)
                    if parts is not None:
                        await _send(stream, parts, sendfile_ok)
    except ProtocolViolation as e:
        log.warning("closing connection from %s: %s", peer, e)
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass


async def _dispatch(state: BrokerState, frame: bytes, peer: str) -> list[Any] | None:
    api_key, version, corr = peek_api(frame)
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
    ctx = RequestContext(state, api_key, version, corr, header.client_id, peer)
    if state.hooks is not None:  # metrics, trace, fault rules (server/metrics.py)
        return await state.hooks.dispatch(ctx, h, req, len(frame) + 4, _call)
    body = await _call(h, ctx, req)
    if body is None:
        return None
    return encode_response(api, version, corr, body)


async def _call(h: Any, ctx: RequestContext, req: Message) -> Message | None:
    """Run the handler; what must close the connection becomes ProtocolViolation."""
    try:
        body: Message | None = await h.fn(ctx, req)
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


async def _send(stream: trio.SocketStream, parts: list[Any], sendfile_ok: bool) -> None:
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
