"""Codec: round-trips for every API, version and message, generated from the
specs; primitives; hostile input rejected cheaply."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykbroker.protocol import codec
from pykbroker.protocol import primitives as P
from pykbroker.protocol.framing import FrameBuffer, FrameTooLarge, decode_response, encode_request, encode_response

INT_RANGES = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def value_strategy(f: codec.Field, version: int, depth: int = 0) -> st.SearchStrategy[Any]:
    nullable = version in f.nullable
    if f.is_array:
        elem = (struct_strategy(f.fields, version, depth + 1) if f.fields is not None
                else scalar_strategy(f.elem))
        s = st.lists(elem, max_size=3)
    elif f.fields is not None:
        s = struct_strategy(f.fields, version, depth + 1)
    else:
        s = scalar_strategy(f.elem)
    if nullable and (f.is_array or f.fields is not None or f.elem in ("string", "bytes", "records")):
        s = st.one_of(st.none(), s)
    return s


def scalar_strategy(t: str) -> st.SearchStrategy[Any]:
    if t in INT_RANGES:
        bits = INT_RANGES[t]
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if t == "uint16":
        return st.integers(0, 65535)
    if t == "bool":
        return st.booleans()
    if t == "float64":
        return st.floats(allow_nan=False)
    if t == "uuid":
        return st.binary(min_size=16, max_size=16)
    if t == "string":
        return st.text(max_size=12)
    if t in ("bytes", "records"):
        return st.binary(max_size=20)
    raise AssertionError(t)


def struct_strategy(fields: list[codec.Field], version: int, depth: int = 0) -> st.SearchStrategy[dict]:
    present = [f for f in fields if version in f.versions]
    return st.fixed_dictionaries({f.key: value_strategy(f, version, depth) for f in present})


def _normalise(fields: list[codec.Field], version: int, msg: dict) -> dict:
    """What a decoded message must equal: present fields as given, the rest default."""
    out = {}
    for f in fields:
        if version not in f.versions:
            out[f.key] = f.default()
            continue
        v = msg[f.key]
        if f.fields is not None and v is not None:
            v = [_normalise(f.fields, version, x) for x in v] if f.is_array else _normalise(f.fields, version, v)
        out[f.key] = v
    return out


CASES = []
for _key, _api in sorted(codec.load_apis().items()):
    for _v in range(_api.valid.lo, _api.valid.hi + 1):
        for _kind in ("request", "response"):
            CASES.append((_api.name, _key, _v, _kind))


@pytest.mark.parametrize("name,key,version,kind", CASES, ids=[f"{c[0]}-v{c[2]}-{c[3]}" for c in CASES])
def test_roundtrip_every_version(name: str, key: int, version: int, kind: str) -> None:
    msg_codec = getattr(codec.api(key), kind)

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(struct_strategy(msg_codec.fields, version))
    def check(msg: dict) -> None:
        data = msg_codec.encode(msg, version)
        decoded, end = msg_codec.decode(data, version)
        assert end == len(data)
        assert decoded == _normalise(msg_codec.fields, version, msg)
        # Re-encoding the decoded form gives the same bytes.
        assert msg_codec.encode(decoded, version) == data

    check()


@given(st.integers(0, 2**63 - 1))
def test_uvarint_roundtrip(n: int) -> None:
    out = bytearray()
    P.write_uvarint(out, n)
    assert P.read_uvarint(bytes(out), 0) == (n, len(out))


@given(st.integers(-(2**63), 2**63 - 1))
def test_varint_zigzag_roundtrip(n: int) -> None:
    out = bytearray()
    P.write_varint(out, n)
    assert P.read_varint(bytes(out), 0) == (n, len(out))


def test_known_encodings() -> None:
    # Compact string "ab": length+1 = 3, then the bytes; null compact string = 0.
    out = bytearray()
    P.write_compact_string(out, "ab")
    P.write_compact_string(out, None)
    assert bytes(out) == b"\x03ab\x00"
    # Classic nullable string null = -1 as int16.
    out = bytearray()
    P.write_string(out, None)
    assert bytes(out) == b"\xff\xff"
    assert P.uvarint_bytes(300) == b"\xac\x02"


def test_api_versions_v0_bytes() -> None:
    api = codec.api(18)
    body = {"error_code": 0, "api_keys": [{"api_key": 3, "min_version": 0, "max_version": 13}]}
    data = api.response.encode(body, 0)
    assert data == struct.pack(">hihhh", 0, 1, 3, 0, 13)


def test_hostile_array_length_rejected_cheaply() -> None:
    api = codec.api(3)
    # Metadata v1 request: topics array claiming 2**31-1 entries with 0 bytes left.
    data = struct.pack(">i", 2**31 - 1)
    with pytest.raises(P.DecodeError):
        api.request.decode(data, 1)


def test_truncated_input_raises_decode_error() -> None:
    api = codec.api(0)
    body = {"transactional_id": None, "acks": 1, "timeout_ms": 1000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": b"x" * 10}]}]}
    data = api.request.encode(body, 7)
    for cut in range(len(data)):
        with pytest.raises(P.DecodeError):
            api.request.decode(data[:cut], 7)


def test_unknown_tagged_fields_are_skipped() -> None:
    api = codec.api(18)
    req = api.request.encode({"client_software_name": "a", "client_software_version": "1"}, 3)
    # Replace the empty tag section (last byte 0) with one unknown tag 7 of 3 bytes.
    data = req[:-1] + b"\x01\x07\x03xyz"
    decoded, end = api.request.decode(data, 3)
    assert end == len(data)
    assert decoded == {"client_software_name": "a", "client_software_version": "1"}


def test_request_framing_roundtrip() -> None:
    api = codec.api(3)
    frame = encode_request(api, 12, 99, {"topics": None, "allow_auto_topic_creation": True})
    fb = FrameBuffer(1 << 20)
    fb.feed(frame[:5])
    assert fb.next_frame() is None
    fb.feed(frame[5:])
    body = fb.next_frame()
    assert body is not None and len(body) == len(frame) - 4


def test_frame_too_large() -> None:
    fb = FrameBuffer(100)
    fb.feed(struct.pack(">i", 101))
    with pytest.raises(FrameTooLarge):
        fb.next_frame()


def test_response_header_versions() -> None:
    api = codec.api(3)
    parts = encode_response(api, 12, 5, {"brokers": [], "topics": []})
    frame = b"".join(parts)
    size = struct.unpack(">i", frame[:4])[0]
    assert size == len(frame) - 4
    # flexible: correlation id then an empty tagged section
    assert frame[4:9] == struct.pack(">i", 5) + b"\x00"
    corr, body = decode_response(api, 12, frame[4:])
    assert corr == 5 and body["brokers"] == []
    # ApiVersions v3 (flexible) still uses response header v0.
    av = codec.api(18)
    frame = b"".join(encode_response(av, 3, 6, {"api_keys": []}))
    assert frame[4:8] == struct.pack(">i", 6)
    assert av.response.decode(frame, 3, 8)[0]["api_keys"] == []


@given(st.lists(st.binary(max_size=40), max_size=20), st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_frame_buffer_any_split(frames: list[bytes], cuts: list[int]) -> None:
    """Frames come out whole and in order however the byte stream is split."""
    stream = b"".join(struct.pack(">i", len(f)) + f for f in frames)
    fb = FrameBuffer(1 << 20)
    out = []
    pos = 0
    i = 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        i += 1
        fb.feed(stream[pos : pos + n])
        pos += n
        while (fr := fb.next_frame()) is not None:
            out.append(fr)
    assert out == frames
    assert fb.next_frame() is None


# -- null where the spec says non-nullable ---------------------------------------

def _null_cases() -> list[tuple[str, int, int, str, tuple[str, ...], str]]:
    """Every (message, version, field path) whose value may not be null:
    non-nullable strings/bytes/arrays and the elements of scalar arrays."""
    out = []

    def walk(fields, version, path, name, key, kind):
        for f in fields:
            if version not in f.versions or f.tag is not None:
                continue
            p = path + (f.key,)
            nullable = version in f.nullable
            if f.is_array and f.fields is None and f.elem in ("string", "bytes"):
                out.append((name, key, version, kind, p, "element"))
            if not nullable and (f.is_array or f.elem in ("string", "bytes", "records")) and f.fields is None:
                out.append((name, key, version, kind, p, "value"))
            if f.fields is not None:
                walk(f.fields, version, p, name, key, kind)

    for key, api in sorted(codec.load_apis().items()):
        for v in range(api.valid.lo, api.valid.hi + 1):
            for kind in ("request", "response"):
                walk(getattr(api, kind).fields, v, (), api.name, key, kind)
    return out


def _message_with(fields: list[codec.Field], version: int, path: tuple[str, ...], value: Any) -> dict:
    """Defaults everywhere, one element in each array of structs on the way
    to ``path``, and ``value`` at its end."""
    msg = {f.key: f.default() for f in fields}
    head = path[0]
    f = next(x for x in fields if x.key == head)
    if len(path) == 1:
        msg[head] = value
    else:
        inner = _message_with(f.fields, version, path[1:], value)
        msg[head] = [inner] if f.is_array else inner
    return msg


NULL_CASES = _null_cases()


@pytest.mark.parametrize("name,key,version,kind,path,what", NULL_CASES,
                         ids=[f"{c[0]}-v{c[2]}-{c[3]}-{'.'.join(c[4])}-{c[5]}" for c in NULL_CASES])
def test_null_where_not_nullable_is_rejected(name, key, version, kind, path, what) -> None:
    msg_codec = getattr(codec.api(key), kind)
    value = [None] if what == "element" else None
    data = msg_codec.encode(_message_with(msg_codec.fields, version, path, value), version)
    with pytest.raises(P.DecodeError):
        msg_codec.decode(data, version)
