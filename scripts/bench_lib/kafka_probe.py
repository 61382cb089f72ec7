"""Minimal raw Kafka requests (no client library) to tell when a broker is ready."""

from __future__ import annotations

import socket
import struct


def _request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> bytes:
    client_id = b"bench-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    if not 4 <= size <= 64 << 20:
        raise ValueError(f"bad response size {size}")
    resp = _recv_exact(sock, size)
    (got_corr,) = struct.unpack_from(">i", resp)
    if got_corr != corr:
        raise ValueError(f"correlation id {got_corr} != {corr}")
    return resp[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return bytes(buf)


def probe(host: str, port: int, timeout: float = 1.0) -> dict:
    """ApiVersions v0 then Metadata v1 (no topics). Raises if either fails.

    Returns {"api_count": N, "brokers": [(node_id, host, port), ...]}.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        r = _request(s, 18, 0, 1, b"")
        err, n = struct.unpack_from(">hi", r)
        if err != 0 or n <= 0:
            raise ValueError(f"ApiVersions error_code={err} count={n}")
        r = _request(s, 3, 1, 2, struct.pack(">i", 0))  # Metadata v1, empty topic list
        (nb,) = struct.unpack_from(">i", r)
        off, brokers = 4, []
        for _ in range(nb):
            node, hl = struct.unpack_from(">ih", r, off)
            off += 6
            h = r[off : off + hl].decode()
            off += hl
            (p, rl) = struct.unpack_from(">ih", r, off)
            off += 6 + max(rl, 0)
            brokers.append((node, h, p))
        if not brokers:
            raise ValueError("Metadata returned no brokers")
        return {"api_count": n, "brokers": brokers}
