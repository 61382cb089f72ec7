"""A minimal blocking Kafka-protocol client for tests: one socket, our codec.

    with RawClient("127.0.0.1:9092") as c:
        resp = c.call(19, 5, {"topics": [...], "timeout_ms": 1000})  # decoded dict
        frame = c.roundtrip(raw_bytes)                               # raw frame

``call`` encodes a request with ``pykbroker.protocol.framing.encode_request``
(missing fields take their defaults), sends it, reads one size-prefixed
response and decodes it, checking the correlation id. ``send_frame`` and
``read_frame`` are there for malformed-input tests. The socket has a timeout
so a broker that never answers fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from pykbroker.protocol import codec
from pykbroker.protocol.framing import decode_response, encode_request


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF before a whole response)."""


def parse_bootstrap(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class RawClient:
    def __init__(self, bootstrap: str | tuple[str, int], *, timeout: float = 10.0,
                 client_id: str | None = "rawclient") -> None:
        addr = parse_bootstrap(bootstrap) if isinstance(bootstrap, str) else bootstrap
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.settimeout(timeout)
        self.client_id = client_id
        self._corr = 0

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- raw frames ----------------------------------------------------------
    def send_frame(self, data: bytes) -> None:
        """Send bytes as they are (``data`` must include the size prefix)."""
        self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionClosed(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def read_frame(self) -> bytes:
        """One response frame, without its 4-byte size prefix."""
        (size,) = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(size)

    def roundtrip(self, data: bytes) -> bytes:
        self.send_frame(data)
        return self.read_frame()

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the broker closes the connection within ``timeout``."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(old)

    # -- decoded calls -------------------------------------------------------
    def next_correlation_id(self) -> int:
        self._corr += 1
        return self._corr

    def encode(self, api_key: int, version: int, body: dict[str, Any],
               correlation_id: int | None = None) -> bytes:
        corr = self.next_correlation_id() if correlation_id is None else correlation_id
        return encode_request(codec.api(api_key), version, corr, body, client_id=self.client_id)

    def call(self, api_key: int, version: int, body: dict[str, Any] | None = None) -> dict:
        """Send one request and return the decoded response body."""
        api = codec.api(api_key)
        corr = self.next_correlation_id()
        self.send_frame(encode_request(api, version, corr, body or {}, client_id=self.client_id))
        got, resp = decode_response(api, version, self.read_frame())
        if got != corr:
            raise AssertionError(f"correlation id {got} != {corr}")
        return resp


def call(bootstrap: str, api_key: int, version: int, body: dict[str, Any] | None = None) -> dict:
    """One request on a fresh connection."""
    with RawClient(bootstrap) as c:
        return c.call(api_key, version, body)
