"""Reading OpenTelemetry ``MetricsData`` (OTLP protobuf, v1), the payload of
PushTelemetry (KIP-714): just the parts a metrics endpoint needs.

Protobuf's wire format is small and fixed: a record is fields of
``(number << 3 | wire type)`` varint tags followed by a varint, a 64-bit
or 32-bit value, or length-delimited bytes (strings, nested messages). This
module walks it directly, instead of depending on ``protobuf`` and
``opentelemetry-proto`` (a compiled runtime and its version pins, for one
message type read by one API): the schema read here is

- MetricsData: 1 = ResourceMetrics (repeated)
- ResourceMetrics: 1 = Resource (1 = attributes, KeyValue), 2 = ScopeMetrics (repeated)
- ScopeMetrics: 2 = Metric (repeated)
- Metric: 1 = name, 5 = Gauge, 7 = Sum (1 = data points, 3 = is_monotonic),
  9 = Histogram, 11 = Summary (1 = data points: 4 = count, 5 = sum, attributes 9 / 7)
- NumberDataPoint: 7 = attributes, 3 = time_unix_nano, 4 = as_double, 6 = as_int
- KeyValue: 1 = key, 2 = AnyValue (1 string, 2 bool, 3 int, 4 double)

Malformed input raises :class:`OtlpError`; unknown fields are skipped, as
protobuf readers do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import attrs

_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")


class OtlpError(ValueError):
    pass


@attrs.frozen
class Point:
    """One data point: metric name, kind (gauge, sum, histogram, summary),
    value (for histograms and summaries: the sum; ``count`` beside it),
    its attributes and the resource's."""

    name: str
    kind: str
    value: float
    attributes: tuple[tuple[str, str], ...] = ()
    resource: tuple[tuple[str, str], ...] = ()
    count: int | None = None
    monotonic: bool = False


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        if pos >= len(buf):
            raise OtlpError("truncated varint")
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7
        if shift > 63:
            raise OtlpError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of a message: ints for varint and
    fixed-width types (fixed64/fixed32 as raw unsigned), bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise OtlpError("field number 0")
        if wt == 0:
            v, pos = _varint(buf, pos)
            yield num, wt, v
        elif wt == 1:
            if pos + 8 > len(buf):
                raise OtlpError("truncated fixed64")
            yield num, wt, int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise OtlpError("truncated length-delimited field")
            yield num, wt, buf[pos:pos + n]
            pos += n
        elif wt == 5:
            if pos + 4 > len(buf):
                raise OtlpError("truncated fixed32")
            yield num, wt, int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise OtlpError(f"unsupported wire type {wt}")


def _sub(v: int | bytes) -> bytes:
    if not isinstance(v, bytes):
        raise OtlpError("expected a nested message")
    return v


def _any_value(buf: bytes) -> str:
    for num, wt, v in fields(buf):
        if num == 1 and wt == 2:
            return _sub(v).decode("utf-8", "replace")
        if num == 2 and wt == 0:
            return "true" if v else "false"
        if num == 3 and wt == 0:
            assert isinstance(v, int)
            return str(v - (1 << 64) if v >= 1 << 63 else v)
        if num == 4 and wt == 1:
            assert isinstance(v, int)
            return repr(_F64.unpack(v.to_bytes(8, "little"))[0])
    return ""


def _key_value(buf: bytes) -> tuple[str, str]:
    key, value = "", ""
    for num, wt, v in fields(buf):
        if num == 1 and wt == 2:
            key = _sub(v).decode("utf-8", "replace")
        elif num == 2 and wt == 2:
            value = _any_value(_sub(v))
    return key, value


def _attributes(buf: bytes, field: int) -> tuple[tuple[str, str], ...]:
    return tuple(_key_value(_sub(v)) for num, wt, v in fields(buf) if num == field and wt == 2)


def _number_point(buf: bytes) -> tuple[float, tuple[tuple[str, str], ...]]:
    value = 0.0
    for num, wt, v in fields(buf):
        if num == 4 and wt == 1:
            assert isinstance(v, int)
            value = _F64.unpack(v.to_bytes(8, "little"))[0]
        elif num == 6 and wt == 1:
            assert isinstance(v, int)
            value = float(_I64.unpack(v.to_bytes(8, "little"))[0])
    return value, _attributes(buf, 7)


Attrs = tuple[tuple[str, str], ...]


def _summary_point(buf: bytes, attr_field: int, count_field: int, sum_field: int) -> tuple[float, int, Attrs]:
    count, total = 0, 0.0
    for num, wt, v in fields(buf):
        assert isinstance(v, (int, bytes))
        if num == count_field and wt == 1 and isinstance(v, int):
            count = v
        elif num == sum_field and wt == 1 and isinstance(v, int):
            total = _F64.unpack(v.to_bytes(8, "little"))[0]
    return total, count, _attributes(buf, attr_field)


def _metric(buf: bytes, resource: tuple[tuple[str, str], ...]) -> Iterator[Point]:
    name = ""
    body: list[tuple[int, bytes]] = []
    for num, wt, v in fields(buf):
        if num == 1 and wt == 2:
            name = _sub(v).decode("utf-8", "replace")
        elif num in (5, 7, 9, 11) and wt == 2:
            body.append((num, _sub(v)))
    for kind_num, data in body:
        if kind_num in (5, 7):
            monotonic = kind_num == 7 and any(n == 3 and v for n, _, v in fields(data))
            for num, wt, v in fields(data):
                if num == 1 and wt == 2:
                    value, attrs_ = _number_point(_sub(v))
                    yield Point(name, "sum" if kind_num == 7 else "gauge", value, attrs_, resource,
                                monotonic=monotonic)
        else:  # histogram (count 4, sum 5, attributes 9) / summary (count 4, sum 5, attributes 7)
            attr_field = 9 if kind_num == 9 else 7
            for num, wt, v in fields(data):
                if num == 1 and wt == 2:
                    total, count, attrs_ = _summary_point(_sub(v), attr_field, 4, 5)
                    yield Point(name, "histogram" if kind_num == 9 else "summary", total, attrs_, resource,
                                count=count)


def read_metrics(buf: bytes) -> list[Point]:
    """Every data point of a MetricsData message."""
    out: list[Point] = []
    for num, wt, rm in fields(buf):
        if num != 1 or wt != 2:
            continue
        rm_b = _sub(rm)
        resource: tuple[tuple[str, str], ...] = ()
        for n2, w2, v2 in fields(rm_b):
            if n2 == 1 and w2 == 2:
                resource = _attributes(_sub(v2), 1)
        for n2, w2, sm in fields(rm_b):
            if n2 == 2 and w2 == 2:
                for n3, w3, metric in fields(_sub(sm)):
                    if n3 == 2 and w3 == 2:
                        out.extend(_metric(_sub(metric), resource))
    return out
