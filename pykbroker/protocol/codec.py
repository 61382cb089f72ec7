"""Spec-driven codec: compiles ``protocol_specs/*.json`` into per-version
decoders and encoders (Python source generated once per struct and version,
then ``exec``-ed), so there is no hand-written per-version code.

Messages are plain dicts keyed by the snake_case field names.
"""

from __future__ import annotations

import json
import struct as _struct
import re
from functools import cache, cached_property
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any
from collections.abc import Callable

from . import primitives as P
from .primitives import DecodeError, Writer

#: a decoded request or response body: snake_case keys, every field of the version present
Message = dict[str, Any]

PRIMITIVES = {
    "bool": (1, "_B"),
    "int8": (1, "P.I8"),
    "int16": (2, "P.I16"),
    "uint16": (2, "P.U16"),
    "int32": (4, "P.I32"),
    "int64": (8, "P.I64"),
    "float64": (8, "P.F64"),
}
SCALARS = set(PRIMITIVES) | {"uuid", "string", "bytes", "records"}


# -- version ranges -------------------------------------------------------------

class VersionRange:
    __slots__ = ("lo", "hi", "text")

    def __init__(self, text: str | None) -> None:
        self.text = text or "none"
        t = self.text.strip()
        if t == "none":
            self.lo, self.hi = 1, 0
        elif t.endswith("+"):
            self.lo, self.hi = int(t[:-1]), 1 << 15
        elif "-" in t:
            a, b = t.split("-")
            self.lo, self.hi = int(a), int(b)
        else:
            self.lo = self.hi = int(t)

    def __contains__(self, v: int) -> bool:
        return self.lo <= v <= self.hi

    def __repr__(self) -> str:
        return f"VersionRange({self.text!r})"


_SNAKE1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE2 = re.compile(r"([a-z0-9])([A-Z])")


def snake(name: str) -> str:
    return _SNAKE2.sub(r"\1_\2", _SNAKE1.sub(r"\1_\2", name)).lower()


# -- field model ----------------------------------------------------------------

class Field:
    def __init__(self, spec: dict[str, Any], structs: dict[str, list[dict[str, Any]]]) -> None:
        self.name: str = spec["name"]
        self.key = snake(self.name)
        self.type: str = spec["type"]
        self.versions = VersionRange(spec.get("versions"))
        self.nullable = VersionRange(spec.get("nullableVersions"))
        self.tag: int | None = spec.get("tag")
        self.tagged = VersionRange(spec.get("taggedVersions")) if self.tag is not None else VersionRange("none")
        self.flex_override = VersionRange(spec["flexibleVersions"]) if "flexibleVersions" in spec else None
        self.default_spec = spec.get("default")
        self.is_array = self.type.startswith("[]")
        self.elem = self.type[2:] if self.is_array else self.type
        self.fields: list[Field] | None = None
        if self.elem not in SCALARS:
            sub = spec.get("fields")
            if sub is None:
                if self.elem not in structs:
                    raise ValueError(f"unknown struct type {self.elem} for field {self.name}")
                sub = structs[self.elem]
            self.fields = [Field(f, structs) for f in sub]

    def default(self) -> Any:
        d = self.default_spec
        t = self.type
        if self.is_array:
            return None if d == "null" else []
        if self.fields is not None:
            return None if d == "null" else {f.key: f.default() for f in self.fields}
        if t in ("int8", "int16", "uint16", "int32", "int64"):
            if d is None or d == "":
                return 0
            return int(str(d), 0)
        if t == "float64":
            return float(d) if d not in (None, "") else 0.0
        if t == "bool":
            return str(d).lower() == "true" if d is not None else False
        if t == "string":
            if d == "null":
                return None
            return "" if d is None else str(d)
        if t == "uuid":
            return P.ZERO_UUID
        if t == "bytes":
            return None if d == "null" else b""
        if t == "records":
            return None
        raise ValueError(t)


# -- code generation ----------------------------------------------------------------

class _Gen:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"P": P, "DecodeError": DecodeError, "Writer": Writer,
                                   "_B": _BOOL}
        self.src: list[str] = []
        self.counter = 0
        self.cache: dict[tuple[Any, ...], tuple[str, str]] = {}

    def const(self, value: Any) -> str:
        self.counter += 1
        name = f"_c{self.counter}"
        self.ns[name] = value
        return name

    def struct(self, fields: list[Field], version: int, flexible: bool) -> tuple[str, str]:
        key = (id(fields), version, flexible)
        if key in self.cache:
            return self.cache[key]
        self.counter += 1
        dec_name = f"_dec{self.counter}"
        enc_name = f"_enc{self.counter}"
        self.cache[key] = (dec_name, enc_name)
        self._gen_decoder(dec_name, fields, version, flexible)
        self._gen_encoder(enc_name, fields, version, flexible)
        return dec_name, enc_name

    # decoding ------------------------------------------------------------
    def _read_scalar(self, lines: list[str], ind: str, t: str, flex: bool, target: str) -> None:
        if t in PRIMITIVES:
            size, st = PRIMITIVES[t]
            lines.append(f"{ind}if pos + {size} > len(buf): raise DecodeError('truncated {t}')")
            if t == "bool":
                lines.append(f"{ind}{target} = buf[pos] != 0; pos += 1")
            else:
                lines.append(f"{ind}{target} = {st}.unpack_from(buf, pos)[0]; pos += {size}")
        elif t == "uuid":
            lines.append(f"{ind}if pos + 16 > len(buf): raise DecodeError('truncated uuid')")
            lines.append(f"{ind}{target} = bytes(buf[pos:pos + 16]); pos += 16")
        elif t == "string":
            fn = "P.read_compact_string" if flex else "P.read_string"
            lines.append(f"{ind}{target}, pos = {fn}(buf, pos)")
        elif t in ("bytes", "records"):
            fn = "P.read_compact_bytes" if flex else "P.read_bytes"
            lines.append(f"{ind}{target}, pos = {fn}(buf, pos)")
        else:
            raise ValueError(t)

    def _read_field(self, lines: list[str], ind: str, f: Field, version: int,
                    flexible: bool, target: str) -> None:
        flex = flexible and (f.flex_override is None or version in f.flex_override)
        nullable = version in f.nullable
        if f.is_array:
            fn = "P.read_compact_array_len" if flex else "P.read_array_len"
            lines.append(f"{ind}_n, pos = {fn}(buf, pos)")
            lines.append(f"{ind}if _n < 0:")
            if not nullable:
                lines.append(f"{ind}    raise DecodeError('null array {f.name}')")
            else:
                lines.append(f"{ind}    {target} = None")
            lines.append(f"{ind}else:")
            lines.append(f"{ind}    _l = []")
            if f.fields is not None:
                dec, _ = self.struct(f.fields, version, flexible)
                lines.append(f"{ind}    for _ in range(_n):")
                lines.append(f"{ind}        _v, pos = {dec}(buf, pos)")
                lines.append(f"{ind}        _l.append(_v)")
            else:
                lines.append(f"{ind}    for _ in range(_n):")
                self._read_scalar(lines, ind + "        ", f.elem, flex, "_v")
                if f.elem in ("string", "bytes", "records"):
                    # elements of an array are never nullable in Kafka's
                    # message definitions (nullableVersions is the array's)
                    lines.append(f"{ind}        if _v is None: raise DecodeError('null element in {f.name}')")
                lines.append(f"{ind}        _l.append(_v)")
            lines.append(f"{ind}    {target} = _l")
        elif f.fields is not None:
            dec, _ = self.struct(f.fields, version, flexible)
            if nullable:
                lines.append(f"{ind}if pos + 1 > len(buf): raise DecodeError('truncated')")
                lines.append(f"{ind}if buf[pos] == 0xff:")
                lines.append(f"{ind}    pos += 1; {target} = None")
                lines.append(f"{ind}else:")
                lines.append(f"{ind}    {target}, pos = {dec}(buf, pos + 1)")
            else:
                lines.append(f"{ind}{target}, pos = {dec}(buf, pos)")
        else:
            self._read_scalar(lines, ind, f.elem, flex, target)
            if not nullable and f.elem in ("string", "bytes", "records"):
                lines.append(f"{ind}if {target} is None: raise DecodeError('null {f.name}')")

    def _gen_decoder(self, name: str, fields: list[Field], version: int, flexible: bool) -> None:
        lines = [f"def {name}(buf, pos):", "    d = {}"]
        tagged: list[Field] = []
        for f in fields:
            tgt = f"d[{f.key!r}]"
            if version not in f.versions:
                lines.append(f"    {tgt} = {self.const(f.default())}" if not _mutable(f) else
                             f"    {tgt} = _copy({self.const(f.default())})")
                continue
            if flexible and f.tag is not None and version in f.tagged:
                tagged.append(f)
                lines.append(f"    {tgt} = _copy({self.const(f.default())})" if _mutable(f) else
                             f"    {tgt} = {self.const(f.default())}")
                continue
            self._read_field(lines, "    ", f, version, flexible, tgt)
        if flexible:
            lines.append("    _nt, pos = P.read_uvarint(buf, pos)")
            lines.append("    for _ in range(_nt):")
            lines.append("        _tag, pos = P.read_uvarint(buf, pos)")
            lines.append("        _sz, pos = P.read_uvarint(buf, pos)")
            lines.append("        _end = pos + _sz")
            lines.append("        if _end > len(buf): raise DecodeError('truncated tagged field')")
            first = True
            for f in sorted(tagged, key=lambda x: -1 if x.tag is None else x.tag):
                kw = "if" if first else "elif"
                first = False
                lines.append(f"        {kw} _tag == {f.tag}:")
                self._read_field(lines, "            ", f, version, flexible, f"d[{f.key!r}]")
                lines.append("            if pos != _end: raise DecodeError('bad tagged field size')")
            if tagged:
                lines.append("        else:")
                lines.append("            pos = _end")
            else:
                lines.append("        pos = _end")
        lines.append("    return d, pos")
        self.src.append("\n".join(lines))

    # encoding ------------------------------------------------------------
    def _write_scalar(self, lines: list[str], ind: str, t: str, flex: bool, val: str) -> None:
        if t in PRIMITIVES:
            _, st = PRIMITIVES[t]
            if t == "bool":
                lines.append(f"{ind}b.append(1 if {val} else 0)")
            else:
                lines.append(f"{ind}b += {st}.pack({val})")
        elif t == "uuid":
            lines.append(f"{ind}b += ({val} or P.ZERO_UUID)")
        elif t == "string":
            fn = "P.write_compact_string" if flex else "P.write_string"
            lines.append(f"{ind}{fn}(b, {val})")
        elif t == "bytes":
            fn = "P.write_compact_bytes" if flex else "P.write_bytes"
            lines.append(f"{ind}{fn}(b, {val})")
        elif t == "records":
            lines.append(f"{ind}P.write_records(w, {val}, {flex})")
        else:
            raise ValueError(t)

    def _write_field(self, lines: list[str], ind: str, f: Field, version: int,
                     flexible: bool, val: str) -> None:
        flex = flexible and (f.flex_override is None or version in f.flex_override)
        if f.is_array:
            lines.append(f"{ind}_a = {val}")
            lines.append(f"{ind}if _a is None:")
            if flex:
                lines.append(f"{ind}    b.append(0)")
            else:
                lines.append(f"{ind}    b += b'\\xff\\xff\\xff\\xff'")
            if f.fields is not None:  # structs may come already encoded (primitives.EncodedArray)
                lines.append(f"{ind}elif _a.__class__ is P.EncodedArray:")
                if flex:
                    lines.append(f"{ind}    P.write_uvarint(b, _a.count + 1)")
                else:
                    lines.append(f"{ind}    b += P.I32.pack(_a.count)")
                lines.append(f"{ind}    b += _a.data")
            lines.append(f"{ind}else:")
            if flex:
                lines.append(f"{ind}    P.write_uvarint(b, len(_a) + 1)")
            else:
                lines.append(f"{ind}    b += P.I32.pack(len(_a))")
            if f.fields is not None:
                _, enc = self.struct(f.fields, version, flexible)
                lines.append(f"{ind}    for _e in _a:")
                lines.append(f"{ind}        {enc}(w, _e)")
            else:
                lines.append(f"{ind}    for _e in _a:")
                self._write_scalar(lines, ind + "        ", f.elem, flex, "_e")
        elif f.fields is not None:
            _, enc = self.struct(f.fields, version, flexible)
            if version in f.nullable:
                lines.append(f"{ind}_s = {val}")
                lines.append(f"{ind}if _s is None:")
                lines.append(f"{ind}    b.append(0xff)")
                lines.append(f"{ind}else:")
                lines.append(f"{ind}    b.append(1); {enc}(w, _s)")
            else:
                lines.append(f"{ind}{enc}(w, {val} or {{}})")
        else:
            self._write_scalar(lines, ind, f.elem, flex, val)

    def _gen_encoder(self, name: str, fields: list[Field], version: int, flexible: bool) -> None:
        lines = [f"def {name}(w, d):", "    b = w.buf", "    g = d.get"]
        tagged: list[Field] = []
        for f in fields:
            if version not in f.versions:
                continue
            dflt = self.const(f.default())
            if flexible and f.tag is not None and version in f.tagged:
                tagged.append(f)
                continue
            self._write_field(lines, "    ", f, version, flexible, f"g({f.key!r}, {dflt})")
        if flexible:
            if not tagged:
                lines.append("    b.append(0)")
            else:
                lines.append("    _tags = []")
                for f in sorted(tagged, key=lambda x: -1 if x.tag is None else x.tag):
                    dflt = self.const(f.default())
                    lines.append(f"    _tv = g({f.key!r}, {dflt})")
                    lines.append(f"    if _tv != {dflt}:")
                    lines.append("        _outer = w; w = Writer(); b = w.buf")
                    self._write_field(lines, "        ", f, version, flexible, "_tv")
                    lines.append(f"        _tags.append(({f.tag}, w.getvalue())); w = _outer; b = w.buf")
                lines.append("    P.write_uvarint(b, len(_tags))")
                lines.append("    for _t, _bytes in _tags:")
                lines.append("        P.write_uvarint(b, _t); P.write_uvarint(b, len(_bytes)); b += _bytes")
        self.src.append("\n".join(lines))

    def compile(self) -> None:
        code = "\n\n".join(self.src)
        self.src = []
        exec(compile(code, "<pykbroker-codec>", "exec"), self.ns)


def _BOOL() -> None:  # placeholder symbol; bools are handled inline
    raise AssertionError


def _mutable(f: Field) -> bool:
    return f.is_array or f.fields is not None


def _copy(v: Any) -> Any:
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v


# -- messages ------------------------------------------------------------------

class MessageCodec:
    """Decoders/encoders for one message (a request, response or header)."""

    def __init__(self, name: str, fields_spec: list[dict[str, Any]], structs_spec: list[dict[str, Any]],
                 valid: VersionRange, flexible: VersionRange) -> None:
        structs = {s["name"]: s["fields"] for s in structs_spec}
        self.name = name
        self.fields = [Field(f, structs) for f in fields_spec]
        self.valid = valid
        self.flexible = flexible
        self._dec: dict[int, Callable[[Any, int], tuple[Message, int]]] = {}
        self._enc: dict[int, Callable[[Writer, Message], None]] = {}

    def _compile(self, version: int) -> None:
        gen = _Gen()
        gen.ns["_copy"] = _copy
        dec, enc = gen.struct(self.fields, version, version in self.flexible)
        gen.compile()
        self._dec[version] = gen.ns[dec]
        self._enc[version] = gen.ns[enc]

    def decoder(self, version: int) -> Callable[[Any, int], tuple[Message, int]]:
        fn = self._dec.get(version)
        if fn is None:
            self._compile(version)
            fn = self._dec[version]
        return fn

    def encoder(self, version: int) -> Callable[[Writer, Message], None]:
        fn = self._enc.get(version)
        if fn is None:
            self._compile(version)
            fn = self._enc[version]
        return fn

    def decode(self, buf: Any, version: int, pos: int = 0) -> tuple[Message, int]:
        try:
            return self.decoder(version)(buf, pos)
        except DecodeError:
            raise
        except (IndexError, ValueError, OverflowError, _struct.error) as e:
            raise DecodeError(f"{self.name} v{version}: {e}") from None

    def encode_into(self, w: Writer, msg: Message, version: int) -> None:
        self.encoder(version)(w, msg)

    def encode(self, msg: Message, version: int) -> bytes:
        w = Writer()
        self.encoder(version)(w, msg)
        return w.getvalue()

    def default(self, version: int | None = None) -> Message:
        return {f.key: f.default() for f in self.fields}


class ApiSpec:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.api_key: int = spec["apiKey"]
        self.name: str = spec["name"]
        self.valid = VersionRange(spec["validVersions"])
        self.flexible = VersionRange(spec["flexibleVersions"])
        self._spec = spec

    # The codecs are built on first use (the first request of this API), not
    # when the handler registers at start-up: 8 ms for all APIs (issue 17).
    @cached_property
    def request(self) -> MessageCodec:
        return _message(self._spec["request"], self.name + "Request", self.valid, self.flexible)

    @cached_property
    def response(self) -> MessageCodec:
        return _message(self._spec["response"], self.name + "Response", self.valid, self.flexible)

    def is_flexible(self, version: int) -> bool:
        return version in self.flexible


def _message(part: dict[str, Any], name: str, valid: VersionRange, flexible: VersionRange) -> MessageCodec:
    return MessageCodec(
        name,
        part.get("fields", []),
        part.get("commonStructs", []),
        VersionRange(part["validVersions"]) if "validVersions" in part else valid,
        VersionRange(part["flexibleVersions"]) if "flexibleVersions" in part else flexible,
    )


def specs_dir() -> Traversable:
    """The message definitions: the package ``pykbroker.protocol_specs``
    (``protocol_specs/`` in the repository), found only through
    ``importlib.resources``, so an installed wheel, an sdist build and an
    editable install all read the same files."""
    return resources.files("pykbroker.protocol_specs")


_LOADED: dict[int, ApiSpec] = {}


@cache
def load_api_file(name: str) -> ApiSpec:
    """One API's spec by file name (``produce`` → protocol_specs/produce.json).

    The broker loads only the specs of the APIs it serves, on demand, which
    keeps start-up fast."""
    spec = ApiSpec(json.loads((specs_dir() / f"{name}.json").read_text()))
    _LOADED.setdefault(spec.api_key, spec)
    return spec


@cache
def load_apis() -> dict[int, ApiSpec]:
    """Every spec in protocol_specs/, by API key."""
    apis: dict[int, ApiSpec] = {}
    names = sorted(e.name for e in specs_dir().iterdir() if e.name.endswith(".json"))
    for name in names:
        if name == "headers.json":
            continue
        api = load_api_file(name.removesuffix(".json"))
        apis[api.api_key] = api
    return apis


@cache
def load_data_schema(name: str) -> MessageCodec:
    spec = json.loads((specs_dir() / "data" / f"{name}.json").read_text())
    return MessageCodec(spec["name"], spec["fields"], spec.get("commonStructs", []),
                        VersionRange(spec["validVersions"]),
                        VersionRange(spec.get("flexibleVersions", "none")))


@cache
def headers() -> tuple[MessageCodec, MessageCodec]:
    spec = json.loads((specs_dir() / "headers.json").read_text())
    out = []
    for key, name in (("requestHeader", "RequestHeader"), ("responseHeader", "ResponseHeader")):
        h = spec[key]
        out.append(MessageCodec(name, h["fields"], h.get("commonStructs", []),
                                VersionRange(h["validVersions"]), VersionRange(h["flexibleVersions"])))
    return out[0], out[1]


def api(api_key: int) -> ApiSpec:
    spec = _LOADED.get(api_key)
    if spec is None:
        spec = load_apis()[api_key]
    return spec
