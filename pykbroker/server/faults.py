"""Fault injection as data rules.

A rule is a small dict (JSON over the control endpoint, keyword arguments in
Python); the same :class:`FaultInjector` serves both, so a rule behaves the
same wherever it was added::

    {"action": "fail", "api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 2}
    {"action": "delay", "api": "Fetch", "delay_ms": 300, "probability": 0.5, "seed": 7}
    {"action": "drop", "api": "Produce", "count": 1, "client_id": "my-app*"}
    {"action": "pause_fetch", "topic": "orders", "partition": 0}

Fields (all optional except ``action``):

- ``api``: API name (``Produce``, ``list_offsets``) or key; absent = every API.
- ``error``: Kafka error name or code, for ``fail``.
- ``count``: the rule fires at most this many times (absent = no limit).
- ``probability``: chance of firing on a matching request (default 1);
  ``seed`` makes the draws repeatable.
- ``topic``: only requests naming a matching topic (shell-style pattern);
  ``partition`` narrows ``pause_fetch``.
- ``client_id``: only requests from a matching client id (pattern).
- ``delay_ms``: for ``delay``.
- ``message``: error message for responses that carry one.

Actions:

- ``fail``: the request is answered with ``error`` in that API's own
  response shape and is not processed (produce appends nothing). For
  read-only APIs (Metadata, ListOffsets, DescribeConfigs, ...) the real
  response is computed and every ``error_code`` in it set, so e.g. the
  broker list stays intact; for the others the response is built from the
  request: every array of the response mirrors the matching array of the
  request (topics, partitions, resources, groups ...), keys copied, every
  ``error_code`` set. With ``topic``, only that topic's entries fail and
  the rest of the request is processed normally. An ``acks=0`` produce that
  fails closes the connection, as Kafka does.
- ``delay``: the response is sent ``delay_ms`` late (delays of several
  matching rules add up). The connection answers one request at a time,
  so later requests on it wait too, as with a slow Kafka broker.
- ``drop``: the request is processed, then the connection is closed
  without a response (the classic "did my produce land?" case).
- ``pause_fetch``: Fetch returns no records for the matching partitions
  (their high watermark is still reported) until the rule is removed; a
  fetch that asks only for paused partitions waits ``max_wait_ms`` first,
  so clients do not spin.

Rules are evaluated in the order they were added; the first ``fail`` that
fires wins, and a rule that did not fire does not use up its ``count``.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import threading
from typing import Any
from collections.abc import Awaitable, Callable

import attrs
import trio

from ..protocol.codec import Message
from ..protocol.primitives import EncodedArray
from ..protocol import codec, errors
from ..protocol.framing import ProtocolViolation

ACTIONS = ("fail", "delay", "drop", "pause_fetch")

# APIs whose failure is computed on the real response (no side effects).
READ_ONLY_APIS = frozenset({2, 3, 9, 10, 15, 16, 29, 32, 35, 60, 61, 65, 66, 69, 75})

FETCH = 1
PRODUCE = 0


class InjectedDisconnect(ProtocolViolation):
    """A ``drop`` rule closes the connection after processing the request."""


class FaultRuleError(ValueError):
    """A rule that does not make sense (unknown API or error name, ...)."""


# -- names ------------------------------------------------------------------------------

def api_key_of(api: Any) -> int | None:
    """``"Produce"``, ``"produce"``, ``"list_offsets"``, ``0``, ``"0"`` -> key."""
    if api is None or api == "" or api == "*":
        return None
    if isinstance(api, int) and not isinstance(api, bool):
        key = api
    elif isinstance(api, str) and api.strip().lstrip("-").isdigit():
        key = int(api)
    else:
        want = str(api).strip().lower().replace("_", "").replace("-", "")
        for k, spec in codec.load_apis().items():
            if spec.name.lower() == want:
                return k
        raise FaultRuleError(f"unknown API {api!r}")
    if key not in codec.load_apis():
        raise FaultRuleError(f"unknown API key {key}")
    return key


def api_name(key: int | None) -> str | None:
    if key is None:
        return None
    spec = codec.load_apis().get(key)
    return spec.name if spec else str(key)


def error_code_of(error: Any) -> int:
    if isinstance(error, int) and not isinstance(error, bool):
        return error
    s = str(error).strip()
    if s.lstrip("-").isdigit():
        return int(s)
    code = getattr(errors, s.upper(), None)
    if not isinstance(code, int):
        raise FaultRuleError(f"unknown Kafka error {error!r}")
    return code


def error_name(code: int) -> str:
    return errors.NAMES.get(code, str(code))


# -- rules -----------------------------------------------------------------------------------

@attrs.define(eq=False)
class FaultRule:
    action: str
    api: int | None = None
    error: int | None = None
    count: int | None = None
    probability: float = 1.0
    topic: str | None = None
    partition: int | None = None
    client_id: str | None = None
    delay_ms: int = 0
    seed: int | None = None
    message: str | None = None
    id: int = 0
    hits: int = 0
    _rng: random.Random = attrs.field(factory=random.Random, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FaultRule":
        d = dict(d)
        unknown = set(d) - {"action", "api", "error", "count", "times", "probability", "topic", "partition",
                            "client_id", "delay_ms", "seed", "message", "id", "hits", "remaining", "active"}
        if unknown:
            raise FaultRuleError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
        action = str(d.get("action", "")).strip().lower().replace("-", "_")
        if action not in ACTIONS:
            raise FaultRuleError(f"action must be one of {', '.join(ACTIONS)}, got {d.get('action')!r}")
        count = d.get("count", d.get("times"))
        rule = cls(
            action=action,
            api=api_key_of(d.get("api")),
            error=None if d.get("error") in (None, "") else error_code_of(d["error"]),
            count=None if count in (None, "") else int(count),
            probability=float(d.get("probability", 1.0) if d.get("probability") is not None else 1.0),
            topic=d.get("topic") or None,
            partition=None if d.get("partition") in (None, "") else int(d["partition"]),
            client_id=d.get("client_id") or None,
            delay_ms=int(d.get("delay_ms") or 0),
            seed=None if d.get("seed") in (None, "") else int(d["seed"]),
            message=d.get("message"),
        )
        rule.check()
        return rule

    def check(self) -> None:
        if self.action == "fail" and self.error is None:
            raise FaultRuleError("a fail rule needs an error (name or code)")
        if self.action == "fail" and self.error == errors.NONE:
            raise FaultRuleError("a fail rule needs a non-zero error code")
        if self.action == "delay" and self.delay_ms <= 0:
            raise FaultRuleError("a delay rule needs delay_ms > 0")
        if self.action == "pause_fetch":
            if self.api not in (None, FETCH):
                raise FaultRuleError("pause_fetch applies to Fetch only")
            self.api = FETCH
        if self.count is not None and self.count < 0:
            raise FaultRuleError("count must be >= 0")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultRuleError("probability must be between 0 and 1")
        if self.partition is not None and self.topic is None:
            raise FaultRuleError("partition needs a topic")
        if self.seed is not None:
            self._rng.seed(self.seed)

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else max(self.count - self.hits, 0)

    @property
    def active(self) -> bool:
        return self.count is None or self.hits < self.count

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "action": self.action, "api": api_name(self.api),
            "error": None if self.error is None else error_name(self.error),
            "count": self.count, "probability": self.probability, "topic": self.topic,
            "partition": self.partition, "client_id": self.client_id, "delay_ms": self.delay_ms,
            "seed": self.seed, "message": self.message,
            "hits": self.hits, "remaining": self.remaining, "active": self.active,
        }

    def matches_client(self, client_id: str | None) -> bool:
        return self.client_id is None or fnmatch.fnmatchcase(client_id or "", self.client_id)

    def matches_topic(self, name: str | None) -> bool:
        return self.topic is None or (name is not None and fnmatch.fnmatchcase(name, self.topic))

    def draw(self) -> bool:
        return self.probability >= 1.0 or self._rng.random() < self.probability


# -- the injector -------------------------------------------------------------------------------

class FaultInjector:
    """The rule list; thread-safe (rules are changed from test threads and the
    control endpoint while the broker's trio thread evaluates them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self.active = False  # any rule at all (a cheap check per request)

    # Python API ----------------------------------------------------------------
    def add(self, rule: dict[str, Any] | None = None, /, **kw: Any) -> dict[str, Any]:
        """Add a rule (a dict as over HTTP, or keyword arguments); returns it
        with its ``id``."""
        r = FaultRule.from_dict({**(rule or {}), **kw})
        with self._lock:
            r.id = next(self._ids)
            self._rules.append(r)
            self.active = True
        return r.to_dict()

    def fail(self, api: Any, error: Any, *, count: int | None = None, **kw: Any) -> dict[str, Any]:
        return self.add(action="fail", api=api, error=error, count=count, **kw)

    def delay(self, api: Any, delay_ms: int, **kw: Any) -> dict[str, Any]:
        return self.add(action="delay", api=api, delay_ms=delay_ms, **kw)

    def drop(self, api: Any, **kw: Any) -> dict[str, Any]:
        return self.add(action="drop", api=api, **kw)

    def pause_fetch(self, topic: str, partition: int | None = None, **kw: Any) -> dict[str, Any]:
        return self.add(action="pause_fetch", topic=topic, partition=partition, **kw)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def get(self, rule_id: int) -> dict[str, Any] | None:
        with self._lock:
            for r in self._rules:
                if r.id == rule_id:
                    return r.to_dict()
        return None

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            n = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            self.active = bool(self._rules)
            return len(self._rules) != n

    def clear(self) -> int:
        with self._lock:
            n = len(self._rules)
            self._rules = []
            self.active = False
            return n

    def hits(self) -> dict[int, int]:
        with self._lock:
            return {r.id: r.hits for r in self._rules}

    # evaluation (trio thread) ------------------------------------------------------
    def plan(self, ctx: Any, req: Message) -> "Plan | None":
        """What the rules do to this request (None: nothing)."""
        key = ctx.api_key
        state = ctx.state
        fail: FaultRule | None = None
        delay_ms = 0
        drop: list[FaultRule] = []
        paused: list[FaultRule] = []
        with self._lock:
            for r in self._rules:
                if r.api is not None and r.api != key:
                    continue
                if not r.active or not r.matches_client(ctx.client_id):
                    continue
                if r.action == "pause_fetch":
                    paused.append(r)
                    continue
                if r.action == "fail" and fail is not None:
                    continue
                if r.topic is not None and not any(r.matches_topic(t) for t in request_topics(state, req)):
                    continue
                if not r.draw():
                    continue
                r.hits += 1
                if r.action == "fail":
                    fail = r
                elif r.action == "delay":
                    delay_ms += r.delay_ms
                else:
                    drop.append(r)
        if fail is None and not delay_ms and not drop and not paused:
            return None
        return Plan(self, fail, delay_ms, drop, paused)


Call = Callable[[Any, Any, Message], Awaitable["Message | None"]]


@attrs.define(eq=False)
class Plan:
    injector: FaultInjector
    fail: FaultRule | None
    delay_ms: int
    drop: list[FaultRule]
    paused: list[FaultRule]

    async def run(self, h: Any, ctx: Any, req: Message, call: Call) -> Message | None:
        """The response body (None = no response) with the rules applied."""
        if self.fail is not None:
            return await self._fail(h, ctx, req, call, self.fail)
        if self.paused and ctx.api_key == FETCH:
            return await _paused_fetch(self, h, ctx, req, call)
        return await call(h, ctx, req)

    async def after(self, ctx: Any, h: Any) -> None:
        """Called once the response is ready, before it is sent."""
        if self.delay_ms:
            await trio.sleep(self.delay_ms / 1000)
        if self.drop:
            ids = ", ".join(str(r.id) for r in self.drop)
            raise InjectedDisconnect(f"fault rule {ids}: dropped the connection after {h.name}")

    async def _fail(self, h: Any, ctx: Any, req: Message, call: Call, rule: FaultRule) -> Message | None:
        code = rule.error if rule.error is not None else errors.UNKNOWN_SERVER_ERROR
        message = rule.message or f"{error_name(code)} injected by pykbroker fault rule {rule.id}"
        spec = codec.api(ctx.api_key)
        version = ctx.api_version
        if ctx.api_key == PRODUCE and req.get("acks") == 0:
            raise ProtocolViolation(f"fault rule {rule.id}: acks=0 Produce failed with {error_name(code)}")
        if rule.topic is not None:
            split = split_by_topic(ctx.state, req, rule.matches_topic)
            if split is not None:
                key, matching, rest = split
                if rest:
                    ok = await call(h, ctx, {**req, key: rest})
                    err = error_response(spec, version, {**req, key: matching}, code, message)
                    out_key = mirrored_key(spec, version, req, key)
                    if ok is None or out_key is None:
                        return ok
                    ok[out_key] = list(ok.get(out_key) or []) + list(err.get(out_key) or [])
                    return ok
        if ctx.api_key in READ_ONLY_APIS:
            body = await call(h, ctx, req)
            if body is not None:
                set_error_codes(body, code, message)
            return body
        return error_response(spec, version, req, code, message)


# -- which topics a request names ---------------------------------------------------------------

_TOPIC_KEYS = ("name", "topic", "topic_name")


def _entry_topic(state: Any, e: Any) -> str | None:
    if isinstance(e, str):
        return e
    if not isinstance(e, dict):
        return None
    for k in _TOPIC_KEYS:
        v = e.get(k)
        if isinstance(v, str) and v:
            return v
    tid = e.get("topic_id")
    if tid and state is not None:
        ts = state.topics_by_id.get(tid)
        if ts is not None:
            name: str = ts.name
            return name
    return None


def topic_array_key(req: Message) -> str | None:
    """The top-level request field that lists topics (``topic_data``,
    ``topics``, ``topic_names`` ...), if any."""
    for k, v in req.items():
        if not isinstance(v, list) or not v:
            continue
        first = v[0]
        if isinstance(first, dict) and any(x in first for x in _TOPIC_KEYS + ("topic_id",)):
            return k
        if isinstance(first, str) and k in ("topic_names", "topics"):
            return k
    return None


def request_topics(state: Any, req: Message) -> list[str]:
    key = topic_array_key(req)
    if key is None:
        found: list[str] = []
        _scan_topics(req, found, 0)
        return found
    out = []
    for e in req[key]:
        t = _entry_topic(state, e)
        if t is not None:
            out.append(t)
    return out


def _scan_topics(obj: Any, out: list[str], depth: int) -> None:
    if depth > 4:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("topic", "topic_name") and isinstance(v, str):
                out.append(v)
            elif isinstance(v, (dict, list)):
                _scan_topics(v, out, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _scan_topics(v, out, depth + 1)


def split_by_topic(state: Any, req: Message,
                   pred: Callable[[str | None], bool]) -> tuple[str, list[Message], list[Message]] | None:
    key = topic_array_key(req)
    if key is None:
        return None
    matching: list[Message] = []
    rest: list[Message] = []
    for e in req[key]:
        (matching if pred(_entry_topic(state, e)) else rest).append(e)
    return key, matching, rest


# -- error responses ------------------------------------------------------------------------------

# response array key -> request array keys it mirrors (after an exact name match)
_ARRAY_ALIASES = {
    "responses": ("topics", "topic_data", "topic_names", "resources"),
    "partition_responses": ("partition_data", "partitions"),
    "partitions": ("partitions", "partition_data", "partition_indexes"),
    "topics": ("topics", "topic_data"),
    "results": ("resources", "topics", "groups_names", "groups", "transactions", "users", "upsertions",
                "deletions", "creations"),
    "filter_results": ("filters",),  # DeleteAcls
    "groups": ("groups", "group_ids"),
    "coordinators": ("coordinator_keys",),
    "results_by_topic_v3_and_below": ("v3_and_below_topics",),
    "results_by_transaction": ("transactions",),
    "topic_results": ("topics",),
    "results_by_partition": ("partitions",),
    "replica_election_results": ("topic_partitions",),
    "partition_result": ("partitions",),
    "transaction_states": ("transactional_ids",),
}
# response scalar key -> request keys it copies (identity fields only)
_SCALAR_ALIASES = {
    "name": ("name", "topic", "topic_name"),
    "topic": ("topic", "name", "topic_name"),
    "topic_name": ("topic_name", "name", "topic"),
    "topic_id": ("topic_id",),
    "partition_index": ("partition_index", "partition", "index", "partition_id"),
    "index": ("index", "partition_index", "partition"),
    "partition": ("partition", "partition_index", "index"),
    "partition_id": ("partition_id", "partition_index", "partition"),
    "group_id": ("group_id",),
    "member_id": ("member_id",),
    "group_instance_id": ("group_instance_id",),
    "transactional_id": ("transactional_id",),
    "resource_type": ("resource_type",),
    "resource_name": ("resource_name",),
    "key": ("key",),
    "producer_id": ("producer_id",),
    "producer_epoch": ("producer_epoch",),
    "protocol_type": ("protocol_type",),
    "protocol_name": ("protocol_name",),
    "user": ("user", "name"),  # SCRAM credential APIs
}


def _is_error_field(f: codec.Field) -> bool:
    return f.key.endswith("error_code") and f.type == "int16"


_CARRIES_ERROR: dict[int, bool] = {}


def _carries_error(fields: list[Any], _cache: dict[int, bool] = _CARRIES_ERROR) -> bool:
    """Whether a response struct has an ``error_code`` at any depth (only
    such arrays mirror the request: e.g. CreateTopics' response configs do not)."""
    got = _cache.get(id(fields))
    if got is None:
        got = any(_is_error_field(f) or (f.fields is not None and _carries_error(f.fields)) for f in fields)
        _cache[id(fields)] = got
    return got


def _match_array(resp_key: str, req: Message) -> str | None:
    v = req.get(resp_key)
    if isinstance(v, list):
        return resp_key
    for k in _ARRAY_ALIASES.get(resp_key, ()):
        if isinstance(req.get(k), list):
            return k
    return None


def mirrored_key(spec: codec.ApiSpec, version: int, req: Message, req_key: str) -> str | None:
    """The top-level response array that mirrors request array ``req_key``."""
    for f in spec.response.fields:
        if version in f.versions and f.is_array and f.fields is not None:
            if _match_array(f.key, req) == req_key:
                return f.key
    return None


def error_response(spec: codec.ApiSpec, version: int, req: Message, code: int, message: str | None) -> Message:
    """``spec``'s response to ``req`` with every ``error_code`` set to ``code``."""
    return _build(spec.response.fields, version, req, code, message)


def _build(fields: list[Any], version: int, req: Any, code: int, message: str | None) -> Message:
    out: dict[str, Any] = {}
    scalar_elem = None if isinstance(req, dict) else req
    req = req if isinstance(req, dict) else {}
    if isinstance(req.get("dirs"), list) and "topics" not in req:
        # AlterReplicaLogDirs: the response lists the topics of every requested directory
        req = {**req, "topics": [t for d in req["dirs"] for t in (d.get("topics") or [])]}
    for f in fields:
        if version not in f.versions:
            continue
        key = f.key
        if _is_error_field(f):
            out[key] = code
        elif key == "error_message" and f.type == "string":
            out[key] = message
        elif f.is_array and f.fields is not None:
            src_key = _match_array(key, req) if _carries_error(f.fields) else None
            src = req.get(src_key) if src_key else None
            out[key] = [_build(f.fields, version, e, code, message) for e in src] if src else []
        elif f.fields is not None or f.is_array:
            out[key] = f.default()
        else:
            val = f.default()
            if val is None and f.type == "records" and version not in f.nullable:
                val = b""  # records that may not be null in this version (ShareFetch v1+): empty
            for k in _SCALAR_ALIASES.get(key, ()):
                if k in req and req[k] is not None:
                    val = req[k]
                    break
            out[key] = val
    if scalar_elem is not None:
        # an element of a request array of plain values (topic names, group ids,
        # partition indexes): it fills the first identity field of its type
        want = str if isinstance(scalar_elem, str) else int
        for f in fields:
            if version in f.versions and f.key in _SCALAR_ALIASES and f.fields is None and not f.is_array:
                if (f.type == "string") == (want is str):
                    out[f.key] = scalar_elem
                    break
    return out


def set_error_codes(body: Any, code: int, message: str | None) -> None:
    """Set every ``error_code`` (and ``error_message``) in a response body."""
    if isinstance(body, dict):
        for k, v in body.items():
            if isinstance(v, EncodedArray) and v.items is not None:
                v = body[k] = v.items()  # encoded by the handler: its elements as dicts, to stamp
            if isinstance(v, (dict, list)):
                set_error_codes(v, code, message)
            elif k.endswith("error_code"):
                body[k] = code
                if "error_message" in body:
                    body["error_message"] = message
    elif isinstance(body, list):
        for v in body:
            if isinstance(v, (dict, list)):
                set_error_codes(v, code, message)


# -- pause_fetch ---------------------------------------------------------------------------------

async def _paused_fetch(plan: Plan, h: Any, ctx: Any, req: Message, call: Call) -> Message | None:
    state = ctx.state
    kept_topics = []
    paused: list[tuple[Message, int]] = []  # (request topic entry, partition index)
    for t in req["topics"]:
        name = _entry_topic(state, t)
        keep = []
        for p in t["partitions"]:
            idx = p["partition"]
            hit = None
            for r in plan.paused:
                if r.matches_topic(name) and (r.partition is None or r.partition == idx):
                    hit = r
                    break
            if hit is None:
                keep.append(p)
            else:
                paused.append((t, idx))
                with plan.injector._lock:
                    hit.hits += 1
        if keep:
            kept_topics.append({**t, "partitions": keep})
    if not paused:
        return await call(h, ctx, req)
    if kept_topics:
        body = await call(h, ctx, {**req, "topics": kept_topics})
        if body is None:
            return None
    else:
        await trio.sleep(max(req.get("max_wait_ms", 0), 0) / 1000)
        body = {"throttle_time_ms": 0, "error_code": errors.NONE, "session_id": 0, "responses": []}
    read_committed = req.get("isolation_level") == 1
    by_topic: dict[int, Message] = {}
    for t, idx in paused:
        out_t = by_topic.get(id(t))
        if out_t is None:
            out_t = next((r for r in body["responses"]
                          if r.get("topic") == t.get("topic") and r.get("topic_id") == t.get("topic_id")), None)
            if out_t is None:
                out_t = {"topic": t.get("topic"), "topic_id": t.get("topic_id"), "partitions": []}
                body["responses"].append(out_t)
            by_topic[id(t)] = out_t
        name = _entry_topic(state, t)
        p = state.partition(name, idx) if name is not None else None
        hw = p.high_watermark if p is not None else -1
        out_t["partitions"].append({
            "partition_index": idx,
            "error_code": errors.NONE if p is not None else errors.UNKNOWN_TOPIC_OR_PARTITION,
            "high_watermark": hw,
            "last_stable_offset": p.last_stable_offset if p is not None else -1,
            "log_start_offset": p.log_start_offset if p is not None else -1,
            "aborted_transactions": [] if read_committed else None,
            "preferred_read_replica": -1,
            "records": b"",
        })
    return body


__all__ = [
    "ACTIONS", "FaultInjector", "FaultRule", "FaultRuleError", "InjectedDisconnect",
    "api_key_of", "error_code_of", "error_response", "set_error_codes",
]
