"""In-process helpers for the group coordinator unit tests (no sockets):
a real BrokerState on a temporary log dir, a GroupCoordinator running its
timers in the test's nursery, and request builders."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import trio

from pykbroker.config import BrokerConfig
from pykbroker.group import GroupCoordinator
from pykbroker.protocol import codec
from pykbroker.server.state import BrokerState, build_state

BASE = {"group.min.session.timeout.ms": "100", "offsets.topic.num.partitions": "3"}


def make_state(log_dir: Path, **overrides: Any) -> BrokerState:
    props = dict(BASE)
    props["log.dirs"] = str(log_dir)
    props.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
    return build_state(BrokerConfig(overrides=props))


async def start(nursery: trio.Nursery, st: BrokerState) -> GroupCoordinator:
    c = st.group_coordinator
    await nursery.start(c.run)
    return c


def subscription(*topics: str, version: int = 0) -> bytes:
    sub = codec.load_data_schema("consumer_protocol_subscription")
    return struct.pack(">h", version) + sub.encode({"topics": list(topics), "user_data": None}, version)


def assignment(parts: dict[str, list[int]]) -> bytes:
    a = codec.load_data_schema("consumer_protocol_assignment")
    return struct.pack(">h", 0) + a.encode(
        {"assigned_partitions": [{"topic": t, "partitions": p} for t, p in parts.items()], "user_data": None}, 0)


def jreq(gid: str, member_id: str = "", *, instance: str | None = None,
         protocols: list[tuple[str, bytes]] | None = None, session: int = 10_000,
         rebalance: int = 10_000, ptype: str = "consumer") -> dict:
    if protocols is None:
        protocols = [("range", subscription("t"))]
    return {"group_id": gid, "session_timeout_ms": session, "rebalance_timeout_ms": rebalance,
            "member_id": member_id, "group_instance_id": instance, "protocol_type": ptype,
            "protocols": [{"name": n, "metadata": m} for n, m in protocols], "reason": None}


def sreq(gid: str, generation: int, member_id: str, assignments: dict[str, bytes] | None = None,
         instance: str | None = None, ptype: str | None = "consumer", pname: str | None = None) -> dict:
    return {"group_id": gid, "generation_id": generation, "member_id": member_id,
            "group_instance_id": instance, "protocol_type": ptype, "protocol_name": pname,
            "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()]}


def hreq(gid: str, generation: int, member_id: str, instance: str | None = None) -> dict:
    return {"group_id": gid, "generation_id": generation, "member_id": member_id,
            "group_instance_id": instance}


class Results:
    """Collects the answers of requests started as background tasks."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.events: dict[str, trio.Event] = {}

    def start(self, nursery: trio.Nursery, name: str, fn: Any, *args: Any, **kw: Any) -> None:
        ev = self.events[name] = trio.Event()

        async def run() -> None:
            self.values[name] = await fn(*args, **kw)
            ev.set()

        nursery.start_soon(run)

    async def get(self, name: str) -> Any:
        await self.events[name].wait()
        return self.values[name]

    def done(self, name: str) -> bool:
        return self.events[name].is_set()


async def join_new(c: GroupCoordinator, gid: str, version: int = 5, **kw: Any) -> dict:
    """Join as a new dynamic member (through MEMBER_ID_REQUIRED on v4+)."""
    r = await c.join_group(jreq(gid, **kw), version, "client", "/127.0.0.1")
    if r["error_code"] == 79:
        r = await c.join_group(jreq(gid, r["member_id"], **kw), version, "client", "/127.0.0.1")
    return r
