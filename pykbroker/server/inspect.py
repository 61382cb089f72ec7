"""Read-only views of a running broker, without writing a consumer:
the records of a topic, a consumer group's state, committed offsets and lag.

Functions here take the :class:`~pykbroker.server.state.BrokerState` and
must run on the broker's trio thread (the thread-backed handle and the
control endpoint take care of that).

Groups come from two places, whichever exists:

- the live group coordinator, if the broker has one (``state.groups`` or
  ``state.group_coordinator`` holding ``.groups``: {group id: group with
  ``state``, ``generation_id``, ``protocol_type``, ``protocol_name``,
  ``leader_id``, ``members``}), or a function registered with
  :func:`register_group_inspector`;
- ``__consumer_offsets``: committed offsets and group metadata records in
  Kafka's formats, decoded with ``pykbroker.group.records`` (read
  incrementally, so repeated calls are cheap).

Lag = high watermark - committed offset, per partition with a commit.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator

from ..group import records as group_records
from ..protocol.records import BatchHeader, Record, decode_records, iter_batches
from ..storage.log import OffsetOutOfRange

if TYPE_CHECKING:
    from ..server.state import BrokerState

log = logging.getLogger("pykbroker.inspect")

OFFSETS_TOPIC = "__consumer_offsets"
READ_CHUNK = 1 << 20

GroupInspector = Callable[["BrokerState", str], "dict[str, Any] | None"]
_INSPECTORS: list[GroupInspector] = []


def register_group_inspector(fn: GroupInspector) -> None:
    """``fn(state, group_id)`` -> dict with any of ``state``, ``protocol_type``,
    ``protocol``, ``generation``, ``leader``, ``members`` (list of dicts) and
    ``offsets`` ({(topic, partition): committed offset}); None if unknown.
    Registered inspectors are asked first."""
    _INSPECTORS.append(fn)


# -- records --------------------------------------------------------------------------------

def iter_partition_records(state: "BrokerState", topic: str, partition: int, start: int | None = None,
                           *, include_control: bool = False,
                           upto: int | None = None) -> Iterator[tuple[BatchHeader, Record]]:
    """Records of one partition from ``start`` (default: the log start) to the
    high watermark (or ``upto``), as ``(batch header, Record)`` pairs."""
    p = state.partition(topic, partition)
    if p is None:
        raise KeyError(f"unknown partition {topic}-{partition}")
    pos = p.log_start_offset if start is None else max(start, p.log_start_offset)
    end = p.high_watermark if upto is None else min(upto, p.high_watermark)
    while pos < end:
        try:
            res = p.log.read(pos, READ_CHUNK, max_offset=end, min_one_message=True)
        except OffsetOutOfRange:
            return
        if not res.size:
            return
        data = res.read_bytes()
        last_next = pos
        for h in iter_batches(data):
            last_next = h.next_offset
            if h.is_control and not include_control:
                continue
            for r in decode_records(data, h.position):
                if pos <= r.offset < end:
                    yield h, r
        if last_next <= pos:
            return
        pos = last_next


def records(state: "BrokerState", topic: str, partition: int | None = None, *, offset: int | None = None,
            limit: int | None = None, include_control: bool = False) -> list[dict[str, Any]]:
    """Records of ``topic`` (all partitions, or one), each as a dict:
    topic, partition, offset, timestamp, key, value (bytes or None), headers
    (list of (name, bytes)). Read up to the high watermark; control records
    (transaction markers) are left out unless ``include_control``."""
    ts = state.topics.get(topic)
    if ts is None:
        raise KeyError(f"unknown topic {topic}")
    parts = range(len(ts.partitions)) if partition is None else [partition]
    out: list[dict[str, Any]] = []
    for i in parts:
        n = 0
        for h, r in iter_partition_records(state, topic, i, offset, include_control=include_control):
            out.append({"topic": topic, "partition": i, "offset": r.offset, "timestamp": r.timestamp,
                        "key": r.key, "value": r.value, "headers": list(r.headers),
                        "control": h.is_control, "transactional": h.is_transactional})
            n += 1
            if limit is not None and n >= limit:
                break
    return out


# -- __consumer_offsets ---------------------------------------------------------------------------

class _OffsetsView:
    """Committed offsets and group metadata folded from __consumer_offsets."""

    def __init__(self) -> None:
        self.positions: dict[int, int] = {}
        self.offsets: dict[str, dict[tuple[str, int], int]] = {}
        self.groups: dict[str, dict[str, Any] | None] = {}

    def update(self, state: "BrokerState") -> None:
        ts = state.topics.get(OFFSETS_TOPIC)
        if ts is None:
            return
        for p in ts.partitions:
            pos = self.positions.get(p.index, 0)
            if pos < p.log_start_offset or pos > p.log_end_offset:
                pos = p.log_start_offset  # truncated or compacted away: fold again from the start
            for _h, r in iter_partition_records(state, OFFSETS_TOPIC, p.index, pos):
                try:
                    rec = group_records.decode(r.key, r.value)
                except Exception as e:  # a record we cannot read must not break the view
                    log.debug("skipping %s record at %d: %s", OFFSETS_TOPIC, r.offset, e)
                    continue
                if rec is None:
                    continue
                group = rec.group
                if isinstance(rec, group_records.OffsetRecord):
                    offs = self.offsets.setdefault(group, {})
                    tp = (rec.topic, rec.partition)
                    if rec.value is None:
                        offs.pop(tp, None)
                    else:
                        offs[tp] = rec.value.offset
                else:
                    self.groups[group] = rec.value
                    if rec.value is None:
                        self.offsets.pop(group, None)
            self.positions[p.index] = p.high_watermark


_views: "weakref.WeakKeyDictionary[Any, _OffsetsView]" = weakref.WeakKeyDictionary()


def _offsets_view(state: "BrokerState") -> _OffsetsView:
    v = _views.get(state)
    if v is None:
        v = _views[state] = _OffsetsView()
    v.update(state)
    return v


def _coordinator(state: "BrokerState") -> Any:
    return getattr(state, "group_coordinator", None) or getattr(state, "groups", None)


def _coordinator_groups(state: "BrokerState") -> dict[str, Any] | None:
    coord = _coordinator(state)
    if coord is None:
        return None
    groups = getattr(coord, "groups", coord)
    return groups if isinstance(groups, dict) else None


def _coordinator_offsets(state: "BrokerState", group_id: str) -> dict[tuple[str, int], int] | None:
    """Committed offsets as the coordinator holds them ({(topic, partition):
    object with ``offset``, or an int}), if it keeps them in memory."""
    offsets = getattr(_coordinator(state), "offsets", None)
    if not isinstance(offsets, dict) or group_id not in offsets:
        return None
    out = {}
    for tp, om in offsets[group_id].items():
        out[tuple(tp)] = om if isinstance(om, int) else getattr(om, "offset", -1)
    return out


def _live_group(state: "BrokerState", group_id: str) -> dict[str, Any] | None:
    for fn in _INSPECTORS:
        got = fn(state, group_id)
        if got is not None:
            return dict(got)
    groups = _coordinator_groups(state)
    if groups is None or group_id not in groups:
        return None
    g = groups[group_id]
    members = []
    for mid, m in (getattr(g, "members", None) or {}).items():
        members.append({"member_id": getattr(m, "member_id", mid),
                        "group_instance_id": getattr(m, "group_instance_id", None),
                        "client_id": getattr(m, "client_id", None),
                        "client_host": getattr(m, "client_host", None)})
    return {"state": getattr(g, "state", None), "protocol_type": getattr(g, "protocol_type", None),
            "protocol": getattr(g, "protocol_name", None), "generation": getattr(g, "generation_id", None),
            "leader": getattr(g, "leader_id", None), "members": members, "type": getattr(g, "type", None)}


def list_groups(state: "BrokerState") -> list[str]:
    names = set(_offsets_view(state).offsets) | {g for g, v in _offsets_view(state).groups.items() if v}
    groups = _coordinator_groups(state)
    if groups:
        names |= set(groups)
    offsets = getattr(_coordinator(state), "offsets", None)
    if isinstance(offsets, dict):
        names |= {g for g, o in offsets.items() if o}
    return sorted(names)


def group(state: "BrokerState", group_id: str) -> dict[str, Any]:
    """A group's state, members, committed offsets and lag."""
    view = _offsets_view(state)
    live = _live_group(state, group_id)
    meta = view.groups.get(group_id)
    out: dict[str, Any] = {"group_id": group_id, "state": "Dead", "protocol_type": None, "protocol": None,
                           "generation": None, "leader": None, "members": [], "offsets": [], "total_lag": 0,
                           "source": None, "pending": None}
    if live is not None:
        out.update({k: v for k, v in live.items() if k != "offsets"})
        out["source"] = "coordinator"
    elif meta:
        members = [{"member_id": m.get("member_id"), "group_instance_id": m.get("group_instance_id"),
                    "client_id": m.get("client_id"), "client_host": m.get("client_host")}
                   for m in meta.get("members") or []]
        out.update({"state": "Stable" if members else "Empty", "protocol_type": meta.get("protocol_type"),
                    "protocol": meta.get("protocol"), "generation": meta.get("generation"),
                    "leader": meta.get("leader"), "members": members, "source": OFFSETS_TOPIC})
    committed = dict(view.offsets.get(group_id, {}))
    from_coordinator = _coordinator_offsets(state, group_id)
    if from_coordinator is not None:
        committed = from_coordinator  # the coordinator's copy is the current one
    if live is not None and isinstance(live.get("offsets"), dict):
        committed.update(live["offsets"])
    if committed and out["state"] == "Dead":
        out["state"] = "Empty"
        out["source"] = out["source"] or OFFSETS_TOPIC
    total = 0
    for (topic, part), off in sorted(committed.items()):
        p = state.partition(topic, part)
        hw = p.high_watermark if p is not None else None
        lag = None if hw is None or off < 0 else max(hw - off, 0)
        if lag is not None:
            total += lag
        out["offsets"].append({"topic": topic, "partition": part, "committed": off,
                               "high_watermark": hw, "lag": lag})
    out["total_lag"] = total
    return out


def groups(state: "BrokerState") -> list[dict[str, Any]]:
    return [group(state, g) for g in list_groups(state)]
