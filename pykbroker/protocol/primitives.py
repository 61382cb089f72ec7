"""Wire primitives shared by the generated codecs (sans-IO, no trio).

Decoders take ``(buf, pos)`` and return ``(value, new_pos)``; they raise
:class:`DecodeError` on short or hostile input. Encoders append to a
:class:`Writer`.
"""

from __future__ import annotations

import struct
from typing import Any
from collections.abc import Callable

I8 = struct.Struct(">b")
I16 = struct.Struct(">h")
U16 = struct.Struct(">H")
I32 = struct.Struct(">i")
U32 = struct.Struct(">I")
I64 = struct.Struct(">q")
F64 = struct.Struct(">d")

ZERO_UUID = b"\x00" * 16


class EncodedArray:
    """An array of structs already encoded for the version being written
    (the elements' bytes, without the length prefix, which the encoder
    writes from ``count``): a handler that answers thousands of alike
    entries (Metadata's partitions) builds them faster than one dict each
    through the generic encoder. ``len()`` is the element count.
    ``items``, when given, builds the same elements as dicts, for what must
    look inside (the fault rules stamping error codes on a real response)."""

    __slots__ = ("count", "data", "items")

    def __init__(self, count: int, data: bytes | bytearray,
                 items: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self.count = count
        self.data = data
        self.items = items

    def __len__(self) -> int:
        return self.count


class DecodeError(Exception):
    """The peer sent bytes that do not parse as the message it claims to be."""


class Writer:
    """Accumulates an encoded message.

    Most bytes go into ``buf``; a ``records`` value that is not plain bytes
    (a list of file regions to be sent with ``sendfile``) is kept as a
    separate part, so log data is never copied through Python.
    """

    __slots__ = ("buf", "parts", "size_before")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.parts: list[Any] = []
        self.size_before = 0  # bytes already moved into ``parts``

    def add_region(self, region: Any, length: int) -> None:
        if self.buf:
            self.parts.append(bytes(self.buf))
            self.size_before += len(self.buf)
            self.buf.clear()
        self.parts.append(region)
        self.size_before += length

    def __len__(self) -> int:
        return self.size_before + len(self.buf)

    def finish(self) -> list[Any]:
        """Return the message as a list of parts (bytes or region objects)."""
        if self.buf or not self.parts:
            self.parts.append(bytes(self.buf))
            self.buf.clear()
        return self.parts

    def getvalue(self) -> bytes:
        """The whole message as bytes (regions are read with ``read_bytes()``)."""
        out = bytearray()
        for p in self.finish():
            out += p if isinstance(p, (bytes, bytearray, memoryview)) else p.read_bytes()
        return bytes(out)


# -- unsigned varint / zig-zag -------------------------------------------------

def read_uvarint(buf: Any, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def write_uvarint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("negative unsigned varint")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def uvarint_bytes(value: int) -> bytes:
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)


def read_varint(buf: Any, pos: int) -> tuple[int, int]:
    v, pos = read_uvarint(buf, pos)
    return (v >> 1) ^ -(v & 1), pos


def write_varint(out: bytearray, value: int) -> None:
    write_uvarint(out, (value << 1) ^ (value >> 63))


# -- strings, bytes, arrays -----------------------------------------------------

def _need(buf: Any, pos: int, n: int) -> None:
    if n < 0 or pos + n > len(buf):
        raise DecodeError(f"need {n} bytes at {pos}, have {len(buf) - pos}")


def read_string(buf: Any, pos: int) -> tuple[str | None, int]:
    if pos + 2 > len(buf):
        raise DecodeError("truncated string length")
    (n,) = I16.unpack_from(buf, pos)
    pos += 2
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError("negative string length")
    _need(buf, pos, n)
    try:
        return bytes(buf[pos : pos + n]).decode("utf-8"), pos + n
    except UnicodeDecodeError as e:
        raise DecodeError(f"invalid utf-8 in string: {e}") from None


def read_compact_string(buf: Any, pos: int) -> tuple[str | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    n -= 1
    _need(buf, pos, n)
    try:
        return bytes(buf[pos : pos + n]).decode("utf-8"), pos + n
    except UnicodeDecodeError as e:
        raise DecodeError(f"invalid utf-8 in string: {e}") from None


def read_bytes(buf: Any, pos: int) -> tuple[bytes | None, int]:
    if pos + 4 > len(buf):
        raise DecodeError("truncated bytes length")
    (n,) = I32.unpack_from(buf, pos)
    pos += 4
    if n < 0:
        if n == -1:
            return None, pos
        raise DecodeError("negative bytes length")
    _need(buf, pos, n)
    return bytes(buf[pos : pos + n]), pos + n


def read_compact_bytes(buf: Any, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_uvarint(buf, pos)
    if n == 0:
        return None, pos
    n -= 1
    _need(buf, pos, n)
    return bytes(buf[pos : pos + n]), pos + n


def read_array_len(buf: Any, pos: int) -> tuple[int, int]:
    """Classic array length (int32, -1 = null). Bounded by the bytes left."""
    if pos + 4 > len(buf):
        raise DecodeError("truncated array length")
    (n,) = I32.unpack_from(buf, pos)
    pos += 4
    if n > len(buf) - pos:
        raise DecodeError(f"array length {n} exceeds the {len(buf) - pos} bytes left")
    if n < -1:
        raise DecodeError("negative array length")
    return n, pos


def read_compact_array_len(buf: Any, pos: int) -> tuple[int, int]:
    n, pos = read_uvarint(buf, pos)
    n -= 1
    if n > len(buf) - pos:
        raise DecodeError(f"array length {n} exceeds the {len(buf) - pos} bytes left")
    return n, pos


def write_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out += b"\xff\xff"
        return
    b = s.encode("utf-8")
    out += I16.pack(len(b))
    out += b


def write_compact_string(out: bytearray, s: str | None) -> None:
    if s is None:
        out.append(0)
        return
    b = s.encode("utf-8")
    write_uvarint(out, len(b) + 1)
    out += b


def write_bytes(out: bytearray, b: Any) -> None:
    if b is None:
        out += b"\xff\xff\xff\xff"
        return
    out += I32.pack(len(b))
    out += b


def write_compact_bytes(out: bytearray, b: Any) -> None:
    if b is None:
        out.append(0)
        return
    write_uvarint(out, len(b) + 1)
    out += b


def write_records(w: Writer, value: Any, compact: bool) -> None:
    """``records`` field: bytes-like, None, or a list of regions/bytes."""
    out = w.buf
    if value is None:
        if compact:
            out.append(0)
        else:
            out += b"\xff\xff\xff\xff"
        return
    if isinstance(value, (bytes, bytearray, memoryview)):
        if compact:
            write_compact_bytes(out, value)
        else:
            write_bytes(out, value)
        return
    # A sequence of parts: bytes-like objects or regions with a ``length``.
    total = 0
    for part in value:
        total += len(part) if isinstance(part, (bytes, bytearray, memoryview)) else part.length
    if compact:
        write_uvarint(out, total + 1)
    else:
        out += I32.pack(total)
    for part in value:
        if isinstance(part, (bytes, bytearray, memoryview)):
            w.buf += part
        else:
            w.add_region(part, part.length)


def skip_tagged_value(buf: Any, pos: int) -> int:
    size, pos = read_uvarint(buf, pos)
    _need(buf, pos, size)
    return pos + size
