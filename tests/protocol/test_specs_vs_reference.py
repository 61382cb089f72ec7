"""Check our hand-written protocol specs against Kafka's reference definitions.

Our specs live in ``protocol_specs/`` (one JSON file per API, plus
``headers.json`` and ``data/*.json`` for embedded data schemas). Kafka's own
definitions (JSON with ``//`` comments) are expected in
``<repo>/../shared/kafka-protocol/message/``; the comparison tests are skipped
when that folder does not exist.

For every version in validVersions we compare a normalised, wire-level view of
the message: the ordered inline (non-tagged) fields present in that version
with name, type (struct types resolved and compared recursively), nullability
in that version, effective flexible-ness and normalised default; the tagged
fields by tag number with the same attributes; and the message's own
flexible-ness. Differences are reported as
``<file> <section> v<N>: <field path>: <what> ours=... ref=...``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = REPO_ROOT / "protocol_specs"
DATA_DIR = SPECS_DIR / "data"
REF_DIR = Path(__file__).resolve().parents[3] / "shared/kafka-protocol/message"

PRIMITIVES = {
    "bool", "int8", "int16", "uint16", "int32", "int64", "float64",
    "uuid", "string", "bytes", "records",
}
INT_TYPES = {"int8", "int16", "uint16", "int32", "int64"}

# Keys our files may use (anything else is a codegen-only hint or documentation
# that must not be carried over from Kafka's files).
TOP_KEYS = {"apiKey", "name", "validVersions", "flexibleVersions", "request", "response"}
SECTION_KEYS = {"validVersions", "flexibleVersions", "fields", "commonStructs"}
HEADER_KEYS = {"validVersions", "flexibleVersions", "fields", "commonStructs"}
DATA_KEYS = {"name", "validVersions", "flexibleVersions", "fields", "commonStructs"}
STRUCT_KEYS = {"name", "versions", "fields"}
FIELD_KEYS = {
    "name", "type", "versions", "nullableVersions", "tag", "taggedVersions",
    "default", "flexibleVersions", "fields",
}

needs_reference = pytest.mark.skipif(
    not REF_DIR.is_dir(),
    reason=f"Kafka reference definitions not found at {REF_DIR} "
    "(expected a sibling 'shared/kafka-protocol/message' of the repo root)",
)


# --------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------


def strip_json_comments(text: str) -> str:
    """Remove ``//`` line comments and ``/* */`` block comments that are
    outside JSON string literals (a ``//`` inside a string, e.g. in a URL, is
    kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j == -1 else j  # keep the newline
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j == -1:
                raise ValueError("unterminated /* comment")
            out.append(" ")
            i = j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def load_reference(path: Path) -> dict:
    return json.loads(strip_json_comments(path.read_text(encoding="utf-8")))


def load_spec(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


_VERSIONS_RE = re.compile(r"^(none|\d+|\d+\+|\d+-\d+)$")


class Versions:
    """A Kafka version range: "3", "3-7", "3+", "none"."""

    def __init__(self, spec: str | None):
        spec = "none" if spec is None else str(spec).strip()
        if not _VERSIONS_RE.match(spec):
            raise ValueError(f"bad version range {spec!r}")
        self.spec = spec
        if spec == "none":
            self.lo, self.hi = None, None
        elif spec.endswith("+"):
            self.lo, self.hi = int(spec[:-1]), None
        elif "-" in spec:
            lo, hi = spec.split("-")
            self.lo, self.hi = int(lo), int(hi)
            if self.lo > self.hi:
                raise ValueError(f"empty version range {spec!r}")
        else:
            self.lo = self.hi = int(spec)

    @property
    def empty(self) -> bool:
        return self.lo is None

    def __contains__(self, v: int) -> bool:
        if self.lo is None:
            return False
        return v >= self.lo and (self.hi is None or v <= self.hi)

    def key(self):
        return (self.lo, self.hi)

    def __eq__(self, other):
        return isinstance(other, Versions) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return repr(self.spec)

    def iter_bounded(self):
        if self.lo is None:
            return range(0)
        if self.hi is None:
            raise ValueError(f"validVersions {self.spec!r} must be bounded")
        return range(self.lo, self.hi + 1)


def snake_case(name: str) -> str:
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


# --------------------------------------------------------------------------
# Normalised per-version view
# --------------------------------------------------------------------------


def _parse_int(raw) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"bool default {raw!r} for an integer field")
    if isinstance(raw, int):
        return raw
    s = str(raw).strip()
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s.lower().startswith("0x"):
        return sign * int(s[2:], 16)
    return sign * int(s, 10)


def normalise_default(raw, ftype: str):
    """Normalised default value of a field of type ``ftype`` (raw may be
    absent = None)."""
    if ftype.startswith("[]"):
        if raw is None:
            return ()
        if raw == "null":
            return None
        raise ValueError(f"unsupported array default {raw!r}")
    if ftype in INT_TYPES:
        return 0 if raw is None else _parse_int(raw)
    if ftype == "float64":
        return 0.0 if raw is None else float(raw)
    if ftype == "bool":
        if raw is None:
            return False
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s not in ("true", "false"):
            raise ValueError(f"bad bool default {raw!r}")
        return s == "true"
    if ftype == "string":
        if raw is None:
            return ""
        return None if raw == "null" else str(raw)
    if ftype == "uuid":
        zero = "AAAAAAAAAAAAAAAAAAAAAA"
        if raw is None or raw in (zero, "00000000-0000-0000-0000-000000000000"):
            return zero
        return str(raw)
    if ftype == "bytes":
        if raw is None:
            return b""
        if raw == "null":
            return None
        raise ValueError(f"unsupported bytes default {raw!r}")
    if ftype == "records":
        if raw is None or raw == "null":
            return None
        raise ValueError(f"unsupported records default {raw!r}")
    # struct: absent = an instance with all-default fields; "null" = null
    if raw is None:
        return "<default struct>"
    if raw == "null":
        return None
    raise ValueError(f"unsupported struct default {raw!r}")


class Problem(Exception):
    pass


def struct_registry(fields: list, common: list | None, strict_common: bool) -> dict:
    """Map struct name -> field list. Our files may only refer to
    commonStructs by name; the reference may also refer to inline ones."""
    registry = {}
    for cs in common or []:
        if cs["name"] in registry:
            raise Problem(f"commonStruct {cs['name']} defined twice")
        registry[cs["name"]] = cs["fields"]
    if strict_common:
        return registry

    def walk(fs):
        for f in fs:
            if "fields" in f:
                base = f["type"][2:] if f["type"].startswith("[]") else f["type"]
                registry.setdefault(base, f["fields"])
                walk(f["fields"])

    walk(fields)
    for cs in common or []:
        walk(cs["fields"])
    return registry


def view_struct(fields: list, v: int, msg_flex: Versions, registry: dict,
                path: str, depth: int = 0) -> dict:
    if depth > 20:
        raise Problem(f"{path}: struct nesting too deep (recursive type?)")
    inline = []
    tagged = {}
    for f in fields:
        fpath = f"{path}.{f['name']}" if path else f["name"]
        if v not in Versions(f.get("versions")):
            continue
        desc = view_field(f, v, msg_flex, registry, fpath, depth)
        if "tag" in f and v in Versions(f.get("taggedVersions")):
            tag = int(f["tag"])
            if tag in tagged:
                raise Problem(f"{fpath}: tag {tag} used twice in v{v}")
            tagged[tag] = desc
        else:
            inline.append(desc)
    return {"inline": inline, "tagged": tagged}


def view_field(f: dict, v: int, msg_flex: Versions, registry: dict,
               fpath: str, depth: int) -> dict:
    ftype = f["type"]
    base = ftype[2:] if ftype.startswith("[]") else ftype
    struct = None
    if base not in PRIMITIVES:
        if "fields" in f:
            sub_fields = f["fields"]
        elif base in registry:
            sub_fields = registry[base]
        else:
            raise Problem(f"{fpath}: unknown struct type {base!r}")
        elem_path = fpath + "[]" if ftype.startswith("[]") else fpath
        struct = view_struct(sub_fields, v, msg_flex, registry, elem_path, depth + 1)
    elif "fields" in f:
        raise Problem(f"{fpath}: primitive type {ftype!r} with nested fields")
    flex = Versions(f["flexibleVersions"]) if "flexibleVersions" in f else msg_flex
    try:
        default = normalise_default(f.get("default"), ftype)
    except ValueError as e:
        raise Problem(f"{fpath}: {e}") from None
    return {
        "name": f["name"],
        "type": ftype,
        "nullable": v in Versions(f.get("nullableVersions")),
        "flexible": v in flex,
        "default": default,
        "struct": struct,
        "path": fpath,
    }


ATTRS = ("type", "nullable", "flexible", "default")


def diff_struct(ours: dict, ref: dict, where: str, path: str) -> list[str]:
    out = []
    label = path or "<root>"
    o_names = [d["name"] for d in ours["inline"]]
    r_names = [d["name"] for d in ref["inline"]]
    if o_names != r_names:
        out.append(f"{where}: {label}: inline fields differ: ours={o_names} ref={r_names}")
    r_by_name = {d["name"]: d for d in ref["inline"]}
    for d in ours["inline"]:
        if d["name"] in r_by_name:
            out += diff_field(d, r_by_name[d["name"]], where)
    o_tags, r_tags = set(ours["tagged"]), set(ref["tagged"])
    if o_tags != r_tags:
        describe = lambda m, ts: {t: m[t]["name"] for t in sorted(ts)}  # noqa: E731
        out.append(
            f"{where}: {label}: tagged fields differ: "
            f"ours={describe(ours['tagged'], o_tags)} ref={describe(ref['tagged'], r_tags)}"
        )
    for t in sorted(o_tags & r_tags):
        od, rd = ours["tagged"][t], ref["tagged"][t]
        if od["name"] != rd["name"]:
            out.append(f"{where}: {label}: tag {t}: name ours={od['name']} ref={rd['name']}")
        out += diff_field(od, rd, where)
    return out


def diff_field(od: dict, rd: dict, where: str) -> list[str]:
    out = []
    for attr in ATTRS:
        if od[attr] != rd[attr]:
            out.append(f"{where}: {od['path']}: {attr} ours={od[attr]!r} ref={rd[attr]!r}")
    if (od["struct"] is None) != (rd["struct"] is None):
        out.append(f"{where}: {od['path']}: struct-ness differs")
    elif od["struct"] is not None:
        sub = od["path"] + "[]" if od["type"].startswith("[]") else od["path"]
        out += diff_struct(od["struct"], rd["struct"], where, sub)
    return out


def compare_message(ours: dict, ref: dict, where: str, our_common_only: bool = True) -> list[str]:
    """Compare one message body (fields/commonStructs/validVersions/
    flexibleVersions already resolved into ``ours`` and ``ref``)."""
    problems = []
    o_valid, r_valid = Versions(ours["validVersions"]), Versions(ref["validVersions"])
    o_flex, r_flex = Versions(ours["flexibleVersions"]), Versions(ref["flexibleVersions"])
    if o_valid != r_valid:
        problems.append(f"{where}: validVersions ours={o_valid} ref={r_valid}")
    if o_flex != r_flex:
        problems.append(f"{where}: flexibleVersions ours={o_flex} ref={r_flex}")
    try:
        o_reg = struct_registry(ours["fields"], ours.get("commonStructs"), strict_common=our_common_only)
        r_reg = struct_registry(ref["fields"], ref.get("commonStructs"), strict_common=False)
    except Problem as e:
        return problems + [f"{where}: {e}"]

    # commonStructs: same names, same versions
    o_cs = {c["name"]: Versions(c.get("versions")) for c in ours.get("commonStructs") or []}
    r_cs = {c["name"]: Versions(c.get("versions")) for c in ref.get("commonStructs") or []}
    if set(o_cs) != set(r_cs):
        problems.append(f"{where}: commonStructs ours={sorted(o_cs)} ref={sorted(r_cs)}")
    for name in sorted(set(o_cs) & set(r_cs)):
        if o_cs[name] != r_cs[name]:
            problems.append(f"{where}: commonStruct {name}: versions ours={o_cs[name]} ref={r_cs[name]}")

    versions = set(r_valid.iter_bounded()) | set(o_valid.iter_bounded())
    for v in sorted(versions):
        w = f"{where} v{v}"
        if (v in o_flex) != (v in r_flex):
            problems.append(f"{w}: flexible ours={v in o_flex} ref={v in r_flex}")
        try:
            ov = view_struct(ours["fields"], v, o_flex, o_reg, "")
        except Problem as e:
            problems.append(f"{w}: ours: {e}")
            continue
        try:
            rv = view_struct(ref["fields"], v, r_flex, r_reg, "")
        except Problem as e:
            problems.append(f"{w}: ref: {e}")
            continue
        # compare commonStruct bodies too (also those only reachable in
        # other versions are covered because we iterate all versions)
        problems += diff_struct(ov, rv, w, "")
        for name in sorted(set(o_cs) & set(r_cs)):
            if v in o_cs[name] or v in r_cs[name]:
                try:
                    ocs = view_struct(o_reg[name], v, o_flex, o_reg, name)
                    rcs = view_struct(r_reg[name], v, r_flex, r_reg, name)
                except Problem as e:
                    problems.append(f"{w}: {e}")
                    continue
                problems += diff_struct(ocs, rcs, w, f"commonStruct {name}")
    return problems


# --------------------------------------------------------------------------
# Discovery of our files and their reference counterparts
# --------------------------------------------------------------------------


def api_spec_files() -> list[Path]:
    return sorted(p for p in SPECS_DIR.glob("*.json") if p.name != "headers.json")


def data_spec_files() -> list[Path]:
    return sorted(DATA_DIR.glob("*.json")) if DATA_DIR.is_dir() else []


def all_spec_files() -> list[Path]:
    files = api_spec_files() + data_spec_files()
    if (SPECS_DIR / "headers.json").exists():
        files.append(SPECS_DIR / "headers.json")
    return files


def _rel(p: Path) -> str:
    return str(p.relative_to(SPECS_DIR))


def pairs_for(path: Path) -> list[tuple[str, dict, Path]]:
    """(section label, our resolved section, reference file) for one spec file."""
    spec = load_spec(path)
    out = []
    if path.name == "headers.json":
        for key, ref_name in (("requestHeader", "RequestHeader"), ("responseHeader", "ResponseHeader")):
            if key in spec:
                out.append((key, spec[key], REF_DIR / f"{ref_name}.json"))
    elif path.parent == DATA_DIR:
        out.append(("data", spec, REF_DIR / f"{spec['name']}.json"))
    else:
        for key, suffix in (("request", "Request"), ("response", "Response")):
            if key in spec:
                section = dict(spec[key])
                section.setdefault("validVersions", spec["validVersions"])
                section.setdefault("flexibleVersions", spec["flexibleVersions"])
                section["apiKey"] = spec.get("apiKey")
                out.append((key, section, REF_DIR / f"{spec['name']}{suffix}.json"))
    return out


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def test_strip_json_comments_keeps_slashes_in_strings():
    text = '{\n  // comment "x"\n  "a": "http://x//y", // trailing\n  "b": "q\\"//", /* c */ "c": 1\n}'
    assert json.loads(strip_json_comments(text)) == {"a": "http://x//y", "b": 'q"//', "c": 1}


def test_version_ranges():
    assert 3 in Versions("3+") and 2 not in Versions("3+")
    assert 7 in Versions("3-7") and 8 not in Versions("3-7")
    assert 3 in Versions("3") and 4 not in Versions("3")
    assert 0 not in Versions("none")
    assert normalise_default("0x7fffffff", "int32") == 2147483647
    assert normalise_default("-1", "int64") == -1 == normalise_default(-1, "int64")
    assert normalise_default("false", "bool") is False
    assert normalise_default(None, "int32") == 0
    assert normalise_default("null", "string") is None


def _check_fields(fields, path, errors, struct_names):
    names = set()
    for f in fields:
        fpath = f"{path}.{f.get('name')}"
        extra = set(f) - FIELD_KEYS
        if extra:
            errors.append(f"{fpath}: unexpected keys {sorted(extra)}")
        for k in ("name", "type", "versions"):
            if k not in f:
                errors.append(f"{fpath}: missing {k!r}")
        if f.get("name") in names:
            errors.append(f"{fpath}: duplicate field name")
        names.add(f.get("name"))
        for k in ("versions", "nullableVersions", "taggedVersions", "flexibleVersions"):
            if k in f:
                try:
                    Versions(f[k])
                except ValueError as e:
                    errors.append(f"{fpath}: {k}: {e}")
        if ("tag" in f) != ("taggedVersions" in f):
            errors.append(f"{fpath}: tag and taggedVersions must come together")
        if "tag" in f and not isinstance(f["tag"], int):
            errors.append(f"{fpath}: tag must be an integer")
        ftype = f.get("type", "")
        base = ftype[2:] if ftype.startswith("[]") else ftype
        if base not in PRIMITIVES and "fields" not in f and base not in struct_names:
            errors.append(f"{fpath}: struct type {base!r} has no fields and is not a commonStruct")
        if base in PRIMITIVES and "fields" in f:
            errors.append(f"{fpath}: primitive type with fields")
        try:
            normalise_default(f.get("default"), ftype)
        except ValueError as e:
            errors.append(f"{fpath}: {e}")
        if "fields" in f:
            _check_fields(f["fields"], fpath, errors, struct_names)


def _check_body(body, path, errors, allowed_keys):
    extra = set(body) - allowed_keys
    if extra:
        errors.append(f"{path}: unexpected keys {sorted(extra)}")
    if not isinstance(body.get("fields"), list):
        errors.append(f"{path}: 'fields' must be a list")
        return
    common = body.get("commonStructs") or []
    struct_names = set()
    for cs in common:
        extra = set(cs) - STRUCT_KEYS
        if extra:
            errors.append(f"{path}.commonStructs.{cs.get('name')}: unexpected keys {sorted(extra)}")
        struct_names.add(cs.get("name"))
    for cs in common:
        _check_fields(cs.get("fields", []), f"{path}.{cs.get('name')}", errors, struct_names)
    _check_fields(body["fields"], path, errors, struct_names)
    for k in ("validVersions", "flexibleVersions"):
        if k in body:
            try:
                Versions(body[k])
            except ValueError as e:
                errors.append(f"{path}: {k}: {e}")


@pytest.mark.parametrize("path", all_spec_files(), ids=_rel)
def test_spec_file_parses(path):
    spec = load_spec(path)  # valid plain JSON (no comments)
    errors: list[str] = []
    rel = _rel(path)
    if path.name == "headers.json":
        assert set(spec) == {"requestHeader", "responseHeader"}, sorted(spec)
        for key in spec:
            _check_body(spec[key], f"{rel}:{key}", errors, HEADER_KEYS)
            for k in ("validVersions", "flexibleVersions"):
                if k not in spec[key]:
                    errors.append(f"{rel}:{key}: missing {k}")
    elif path.parent == DATA_DIR:
        _check_body(spec, rel, errors, DATA_KEYS)
        for k in ("name", "validVersions", "flexibleVersions"):
            if k not in spec:
                errors.append(f"{rel}: missing {k}")
        name = spec.get("name", "")
        if path.stem not in (snake_case(name), snake_case(name).removesuffix("_schema")):
            errors.append(f"{rel}: file name does not match name {name!r}")
    else:
        extra = set(spec) - TOP_KEYS
        if extra:
            errors.append(f"{rel}: unexpected keys {sorted(extra)}")
        for k in ("apiKey", "name", "validVersions", "flexibleVersions", "request", "response"):
            if k not in spec:
                errors.append(f"{rel}: missing {k}")
        if not isinstance(spec.get("apiKey"), int):
            errors.append(f"{rel}: apiKey must be an integer")
        if path.stem != snake_case(spec.get("name", "")):
            errors.append(f"{rel}: file name should be {snake_case(spec.get('name', ''))}.json")
        try:
            Versions(spec.get("validVersions")).iter_bounded()
            Versions(spec.get("flexibleVersions"))
        except ValueError as e:
            errors.append(f"{rel}: {e}")
        for key in ("request", "response"):
            if key in spec:
                _check_body(spec[key], f"{rel}:{key}", errors, SECTION_KEYS)
    assert not errors, "\n".join(errors)


def test_names_and_api_keys_unique():
    files = api_spec_files()
    assert files, f"no spec files in {SPECS_DIR}"
    names, keys, errors = {}, {}, []
    for p in files:
        spec = load_spec(p)
        for table, value in ((names, spec.get("name")), (keys, spec.get("apiKey"))):
            if value in table:
                errors.append(f"{p.name}: {value!r} also used by {table[value]}")
            table[value] = p.name
    data_names = {}
    for p in data_spec_files():
        name = load_spec(p).get("name")
        if name in data_names or name in names:
            errors.append(f"data/{p.name}: name {name!r} not unique")
        data_names[name] = p.name
    assert not errors, "\n".join(errors)


@needs_reference
@pytest.mark.parametrize("path", all_spec_files(), ids=_rel)
def test_spec_matches_reference(path):
    rel = _rel(path)
    pairs = pairs_for(path)
    assert pairs, f"{rel}: nothing to compare"
    problems: list[str] = []
    compared = 0
    for label, ours, ref_path in pairs:
        if not ref_path.exists():
            problems.append(f"{rel} {label}: no reference counterpart {ref_path.name}")
            continue
        ref = load_reference(ref_path)
        where = f"{rel} {label}"
        if label in ("request", "response"):
            if ours.get("apiKey") != ref.get("apiKey"):
                problems.append(f"{where}: apiKey ours={ours.get('apiKey')} ref={ref.get('apiKey')}")
            if ref.get("type") != label:
                problems.append(f"{where}: reference {ref_path.name} has type {ref.get('type')!r}")
        elif label == "data":
            if ref.get("type") != "data":
                problems.append(f"{where}: reference {ref_path.name} has type {ref.get('type')!r}")
            if ours.get("name") != ref.get("name"):
                problems.append(f"{where}: name ours={ours.get('name')} ref={ref.get('name')}")
        problems += compare_message(ours, ref, where)
        compared += 1
    if path.parent != DATA_DIR and path.name != "headers.json":
        spec = load_spec(path)
        for key in ("request", "response"):
            if key not in spec:
                problems.append(f"{rel}: missing {key!r} section")
    assert not problems, f"{len(problems)} difference(s):\n" + "\n".join(problems)
    assert compared


@needs_reference
def test_reference_files_parse():
    """Sanity check of the comment stripper on every reference file."""
    bad = []
    for p in sorted(REF_DIR.glob("*.json")):
        try:
            load_reference(p)
        except ValueError as e:
            bad.append(f"{p.name}: {e}")
    assert not bad, "\n".join(bad)


@needs_reference
def test_comparator_detects_differences():
    """The comparison must notice every kind of wire-relevant change."""
    spec = load_spec(SPECS_DIR / "api_versions.json")
    ref = load_reference(REF_DIR / "ApiVersionsResponse.json")

    def section(mutate=None):
        body = json.loads(json.dumps(spec["response"]))
        body.setdefault("validVersions", spec["validVersions"])
        body.setdefault("flexibleVersions", spec["flexibleVersions"])
        if mutate:
            mutate(body)
        return compare_message(body, ref, "api_versions.json response")

    assert section() == []
    fields = lambda b: b["fields"]  # noqa: E731
    mutations = {
        "default": lambda b: fields(b)[4].update(default="0"),
        "nullable": lambda b: fields(b)[1].update(nullableVersions="0+"),
        "type": lambda b: fields(b)[2].update(type="int64"),
        "nested type": lambda b: fields(b)[1]["fields"][0].update(type="int32"),
        "struct name": lambda b: fields(b)[1].update(type="[]ApiVersionX"),
        "order": lambda b: fields(b).insert(0, fields(b).pop(1)),
        "versions": lambda b: fields(b)[2].update(versions="2+"),
        "missing": lambda b: fields(b).pop(2),
        "tag": lambda b: fields(b)[6].update(tag=4),
        "tagged->inline": lambda b: [fields(b)[6].pop("tag"), fields(b)[6].pop("taggedVersions")],
        "field flexible": lambda b: fields(b)[0].update(flexibleVersions="none"),
        "message flexible": lambda b: b.update(flexibleVersions="4+"),
        "validVersions": lambda b: b.update(validVersions="0-3"),
        "name": lambda b: fields(b)[0].update(name="ErrorCodes"),
    }
    for label, mutate in mutations.items():
        assert section(mutate), f"mutation {label!r} not detected"
