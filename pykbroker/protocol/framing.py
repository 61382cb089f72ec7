"""Sans-IO framing: size-prefixed frames in, parsed request headers out,
responses (header + body parts) back. No sockets here.

A response header carries only the correlation id, so the connection keeps
(api_key, version) of each request it is answering; the server processes
one request at a time per connection (as Kafka mutes a channel while a
request is in flight), which keeps responses in request order.
"""

from __future__ import annotations

from typing import Any

import attrs

from .codec import Message
from . import codec
from .primitives import I32, DecodeError, Writer, read_uvarint, skip_tagged_value


class ProtocolViolation(Exception):
    """The peer broke the protocol: the connection must be closed."""


class FrameTooLarge(ProtocolViolation):
    pass


@attrs.define(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_pos: int


class FrameBuffer:
    """Accumulates received bytes and yields whole frames.

    Received chunks are kept as a list and joined once per frame, so a large
    frame arriving in many reads is copied once, and a small frame inside
    one read is a single slice.
    """

    def __init__(self, max_frame: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0  # bytes held in chunks
        self.need = -1  # body size of the frame being assembled, -1 = unknown
        self.off = 0  # bytes of chunks[0] already taken
        self.max_frame = max_frame

    def feed(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def _take(self, n: int) -> bytes:
        """Remove and return the first ``n`` buffered bytes."""
        first = self.chunks[0]
        off = self.off
        avail = len(first) - off
        self.size -= n
        if avail > n:
            self.off = off + n
            return first[off : off + n]
        if avail == n:
            self.chunks.pop(0)
            self.off = 0
            return first if off == 0 else first[off:]
        joined = b"".join([first[off:]] + self.chunks[1:])
        self.chunks = [joined] if len(joined) > n else []
        self.off = n if len(joined) > n else 0
        return joined[:n]

    def next_frame(self) -> bytes | None:
        if self.need < 0:
            if self.size < 4:
                return None
            (size,) = I32.unpack(self._take(4))
            if size < 0 or size > self.max_frame:
                raise FrameTooLarge(f"frame of {size} bytes exceeds socket.request.max.bytes={self.max_frame}")
            self.need = size
        if self.size < self.need:
            return None
        frame = self._take(self.need) if self.need else b""
        self.need = -1
        return frame


def peek_api(frame: bytes) -> tuple[int, int, int]:
    """api_key, api_version, correlation_id of a frame (first 8 bytes)."""
    if len(frame) < 8:
        raise ProtocolViolation(f"request of {len(frame)} bytes is shorter than a header")
    api_key = int.from_bytes(frame[0:2], "big", signed=True)
    api_version = int.from_bytes(frame[2:4], "big", signed=True)
    corr = int.from_bytes(frame[4:8], "big", signed=True)
    return api_key, api_version, corr


def parse_header(frame: bytes, flexible: bool) -> RequestHeader:
    req_h, _ = codec.headers()
    try:
        h, pos = req_h.decode(frame, 2 if flexible else 1)
    except DecodeError as e:
        raise ProtocolViolation(f"bad request header: {e}") from None
    return RequestHeader(h["request_api_key"], h["request_api_version"], h["correlation_id"],
                         h["client_id"], pos)


def encode_response(api: codec.ApiSpec, version: int, correlation_id: int, body: Message,
                    *, header_version: int | None = None) -> list[Any]:
    """Frame a response: [size prefix + header + body bytes, regions...]."""
    if header_version is None:
        # ApiVersions always answers with header v0 (KIP-511).
        header_version = 1 if (api.is_flexible(version) and api.api_key != 18) else 0
    w = Writer()
    w.buf += b"\x00\x00\x00\x00"
    w.buf += I32.pack(correlation_id)
    if header_version >= 1:
        w.buf.append(0)  # empty tagged-field section
    api.response.encode_into(w, body, version)
    size = len(w) - 4
    parts = w.finish()
    first = bytearray(parts[0])
    first[0:4] = I32.pack(size)
    parts[0] = bytes(first)
    return parts


def encode_request(api: codec.ApiSpec, version: int, correlation_id: int, body: Message,
                   client_id: str | None = "pykbroker") -> bytes:
    """Frame a request (used by tests, tools and, later, the replica fetcher)."""
    req_h, _ = codec.headers()
    flexible = api.is_flexible(version)
    w = Writer()
    w.buf += b"\x00\x00\x00\x00"
    req_h.encode_into(w, {"request_api_key": api.api_key, "request_api_version": version,
                          "correlation_id": correlation_id, "client_id": client_id},
                      2 if flexible else 1)
    api.request.encode_into(w, body, version)
    data = bytearray(w.getvalue())
    data[0:4] = I32.pack(len(data) - 4)
    return bytes(data)


def decode_response(api: codec.ApiSpec, version: int, frame: bytes) -> tuple[int, Message]:
    """Parse a response frame (without its size prefix): (correlation_id, body)."""
    (corr,) = I32.unpack_from(frame, 0)
    pos = 4
    if api.is_flexible(version) and api.api_key != 18:
        n, pos = read_uvarint(frame, pos)
        for _ in range(n):
            _, pos = read_uvarint(frame, pos)
            pos = skip_tagged_value(frame, pos)
    body, end = api.response.decode(frame, version, pos)
    return corr, body
