"""The classic group: members, states and the bookkeeping Kafka's
``ClassicGroup`` keeps (pure data and helpers, no I/O).

States and their allowed predecessors (Kafka's ClassicGroupState)::

    Empty               <- PreparingRebalance
    PreparingRebalance  <- Stable, CompletingRebalance, Empty
    CompletingRebalance <- PreparingRebalance
    Stable              <- CompletingRebalance
    Dead                <- any

The operations that move a group between them (join, sync, heartbeat,
leave, expiry) live in :mod:`pykbroker.group.classic_ops`; they run under
the group's lock.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
import trio

from ..protocol.codec import Message
from ..protocol import codec, errors
from ..util import now_ms

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

VALID_PREVIOUS = {
    EMPTY: {PREPARING_REBALANCE},
    PREPARING_REBALANCE: {STABLE, COMPLETING_REBALANCE, EMPTY},
    COMPLETING_REBALANCE: {PREPARING_REBALANCE},
    STABLE: {COMPLETING_REBALANCE},
    DEAD: {STABLE, PREPARING_REBALANCE, COMPLETING_REBALANCE, EMPTY, DEAD},
}

UNKNOWN_MEMBER_ID = ""
NO_GENERATION = -1


class GroupError(Exception):
    """An operation's answer is a Kafka error code (raised inside group logic)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message or errors.NAMES.get(code, str(code)))
        self.code = code
        self.message = message


class Waiter:
    """A one-shot result a parked request waits for (JoinGroup, SyncGroup)."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None

    def complete(self, value: Any) -> bool:
        if self.event.is_set():
            return False
        self.value = value
        self.event.set()
        return True

    @property
    def done(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> Any:
        await self.event.wait()
        return self.value


@attrs.define(eq=False)
class ClassicMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata) in preference order
    assignment: bytes = b""
    join_waiter: Waiter | None = None
    sync_waiter: Waiter | None = None
    is_new: bool = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def has_satisfied_heartbeat(self) -> bool:
        if self.is_new:
            return False
        return self.awaiting_join or self.awaiting_sync

    def protocol_names(self) -> list[str]:
        return [n for n, _ in self.protocols]

    def metadata(self, protocol: str | None) -> bytes:
        for n, m in self.protocols:
            if n == protocol:
                return m
        raise KeyError(protocol)

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return protocols == self.protocols

    def vote(self, candidates: set[str]) -> str:
        for n, _ in self.protocols:
            if n in candidates:
                return n
        raise ValueError("member supports none of the candidate protocols")


class ClassicGroup:
    type = "classic"

    def __init__(self, group_id: str, now: int | None = None) -> None:
        self.group_id = group_id
        self.state = EMPTY
        self.previous_state: str | None = None
        self.state_timestamp: int = now if now is not None else now_ms()
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, ClassicMember] = {}  # insertion ordered, as Kafka's map
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_join: set[str] = set()
        self.pending_sync: set[str] = set()
        self.supported_protocols: dict[str, int] = {}
        self.new_member_added = False
        self.initial_delay_elapsed = False  # initial join phase now waits only for pending members
        self.subscribed_topics: set[str] | None = None

    # -- queries --------------------------------------------------------------
    def is_empty(self) -> bool:
        return self.state == EMPTY

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.awaiting_join)

    def has_all_members_joined(self) -> bool:
        return len(self.members) == self.num_awaiting_join and not self.pending_join

    def not_yet_rejoined(self) -> list[ClassicMember]:
        return [m for m in self.members.values() if not m.awaiting_join]

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def can_rebalance(self) -> bool:
        return self.state in VALID_PREVIOUS[PREPARING_REBALANCE]

    def static_member_id(self, instance_id: str | None) -> str | None:
        return None if instance_id is None else self.static_members.get(instance_id)

    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == "consumer"

    def is_subscribed_to(self, topic: str) -> bool:
        if self.subscribed_topics is not None:
            return topic in self.subscribed_topics
        return self.uses_consumer_protocol()

    # -- transitions ----------------------------------------------------------
    def transition(self, state: str, now: int | None = None) -> None:
        if self.state not in VALID_PREVIOUS[state]:
            raise AssertionError(f"group {self.group_id}: illegal transition {self.state} -> {state}")
        self.previous_state = self.state
        self.state = state
        self.state_timestamp = now if now is not None else now_ms()

    # -- membership -------------------------------------------------------------
    def generate_member_id(self, client_id: str | None, instance_id: str | None) -> str:
        return f"{instance_id if instance_id is not None else (client_id or '')}-{uuid.uuid4()}"

    def supports_protocols(self, protocol_type: str, names: list[str]) -> bool:
        if self.state == EMPTY:
            return bool(protocol_type) and bool(names)
        return self.protocol_type == protocol_type and any(
            self.supported_protocols.get(n, 0) == len(self.members) for n in names)

    def _inc(self, m: ClassicMember, delta: int) -> None:
        # Each name once per member (Kafka's coordinator counts the member's set
        # of protocol names): a request that repeats a name must not make the
        # count exceed the member count, or no protocol is ever a candidate.
        for n in set(m.protocol_names()):
            self.supported_protocols[n] = self.supported_protocols.get(n, 0) + delta

    def add(self, m: ClassicMember) -> None:
        if m.group_instance_id is not None:
            assert m.group_instance_id not in self.static_members
            self.static_members[m.group_instance_id] = m.member_id
        if not self.members:
            self.protocol_type = m.protocol_type
        if self.leader_id is None:
            self.leader_id = m.member_id
        self.members[m.member_id] = m
        self._inc(m, 1)
        self.pending_join.discard(m.member_id)

    def remove(self, member_id: str) -> None:
        m = self.members.pop(member_id, None)
        if m is not None:
            self._inc(m, -1)
            if m.group_instance_id is not None:
                self.static_members.pop(m.group_instance_id, None)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self.pending_join.discard(member_id)
        self.pending_sync.discard(member_id)

    def update_member(self, m: ClassicMember, protocols: list[tuple[str, bytes]],
                      rebalance_timeout_ms: int, session_timeout_ms: int,
                      join_waiter: Waiter | None) -> None:
        self._inc(m, -1)
        m.protocols = protocols
        self._inc(m, 1)
        m.rebalance_timeout_ms = rebalance_timeout_ms
        m.session_timeout_ms = session_timeout_ms
        m.join_waiter = join_waiter

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> ClassicMember:
        old = self.members.pop(old_id)
        # fence whoever still waits with the old member id
        self.complete_join(old, {"error_code": errors.FENCED_INSTANCE_ID, "member_id": old_id,
                                 "generation_id": NO_GENERATION, "leader": "", "members": [],
                                 "protocol_name": None, "protocol_type": None})
        self.complete_sync(old, {"error_code": errors.FENCED_INSTANCE_ID, "assignment": b"",
                                 "protocol_name": None, "protocol_type": None})
        new = ClassicMember(new_id, old.group_instance_id, old.client_id, old.client_host,
                            old.rebalance_timeout_ms, old.session_timeout_ms, old.protocol_type,
                            old.protocols, old.assignment)
        # keep the member's position (Kafka's map is a hash map; order only picks a new leader)
        self.members[new_id] = new
        if self.leader_id == old_id:
            self.leader_id = new_id
        self.static_members[instance_id] = new_id
        self.pending_sync.discard(old_id)
        return new

    def validate_member(self, member_id: str, instance_id: str | None) -> None:
        """Kafka's ``validateMember``: FENCED_INSTANCE_ID / UNKNOWN_MEMBER_ID."""
        if instance_id is not None:
            existing = self.static_members.get(instance_id)
            if existing is None:
                raise GroupError(errors.UNKNOWN_MEMBER_ID)
            if existing != member_id:
                raise GroupError(errors.FENCED_INSTANCE_ID)
        if member_id not in self.members:
            raise GroupError(errors.UNKNOWN_MEMBER_ID)

    def maybe_elect_new_joined_leader(self) -> bool:
        if self.leader_id is None:
            return False
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.awaiting_join:
            return True
        for m in self.members.values():
            if m.awaiting_join:
                self.leader_id = m.member_id
                return True
        return False

    def select_protocol(self) -> str:
        candidates = {n for n, c in self.supported_protocols.items() if c == len(self.members)}
        votes: dict[str, int] = {}
        for m in self.members.values():
            v = m.vote(candidates)
            votes[v] = votes.get(v, 0) + 1
        best = max(votes.values())
        # ties: the first protocol (in member order) that reached the top count
        return next(n for n in votes if votes[n] == best)

    def compute_subscribed_topics(self) -> set[str] | None:
        if self.protocol_type != "consumer":
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        sub = codec.load_data_schema("consumer_protocol_subscription")
        topics: set[str] = set()
        try:
            for m in self.members.values():
                data = m.metadata(self.protocol_name)
                # version 0 is a prefix of every version: read the topics only
                d, _ = sub.decode(data, 0, 2)
                topics.update(t for t in d["topics"] if t is not None)
        except Exception:
            return None
        return topics

    def init_next_generation(self, now: int | None = None) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition(COMPLETING_REBALANCE, now)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition(EMPTY, now)
        self.pending_sync.clear()

    # -- waiters ------------------------------------------------------------------
    def complete_join(self, m: ClassicMember, response: Message) -> bool:
        w = m.join_waiter
        if w is None:
            return False
        m.join_waiter = None
        w.complete(response)
        return True

    def complete_sync(self, m: ClassicMember, response: Message) -> bool:
        w = m.sync_waiter
        if w is None:
            return False
        m.sync_waiter = None
        w.complete(response)
        return True

    def current_members_for_leader(self) -> list[Message]:
        return [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                 "metadata": m.metadata(self.protocol_name)} for m in self.members.values()]

    def join_response(self, member_id: str, *, error: int = errors.NONE,
                      with_members: bool | None = None, skip_assignment: bool = False) -> Message:
        if with_members is None:
            with_members = self.is_leader(member_id)
        return {"error_code": error, "generation_id": self.generation_id,
                "protocol_type": self.protocol_type, "protocol_name": self.protocol_name,
                "leader": self.leader_id or "", "skip_assignment": skip_assignment,
                "member_id": member_id,
                "members": self.current_members_for_leader() if with_members else []}

    # -- persistence ----------------------------------------------------------------
    def metadata_value(self, assignment: dict[str, bytes] | None = None) -> Message:
        """GroupMetadataValue of the current generation (``assignment``
        overrides the members' stored assignments)."""
        members = []
        if self.state != EMPTY:
            for m in self.members.values():
                members.append({
                    "member_id": m.member_id, "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id, "client_host": m.client_host,
                    "rebalance_timeout": m.rebalance_timeout_ms,
                    "session_timeout": m.session_timeout_ms,
                    "subscription": m.metadata(self.protocol_name) if self.protocol_name else b"",
                    "assignment": (assignment or {}).get(m.member_id, m.assignment),
                })
        return {"protocol_type": self.protocol_type or "", "generation": self.generation_id,
                "protocol": self.protocol_name, "leader": self.leader_id,
                "current_state_timestamp": self.state_timestamp, "members": members}

    @classmethod
    def from_metadata(cls, group_id: str, v: Message) -> "ClassicGroup":
        """Rebuild a group from its last GroupMetadataValue (on load): Empty
        when it has no members, else Stable with the stored assignment
        (members must heartbeat within their session timeout to stay)."""
        g = cls(group_id, v.get("current_state_timestamp", -1))
        g.generation_id = v["generation"]
        g.protocol_type = v["protocol_type"] or None
        g.protocol_name = v["protocol"]
        for mm in v["members"]:
            m = ClassicMember(mm["member_id"], mm.get("group_instance_id"), mm["client_id"],
                              mm["client_host"], mm.get("rebalance_timeout", mm["session_timeout"]),
                              mm["session_timeout"], g.protocol_type or "",
                              [(g.protocol_name or "", mm["subscription"] or b"")],
                              mm["assignment"] or b"")
            g.add(m)
        g.leader_id = v["leader"] if v["leader"] in g.members else g.leader_id
        g.state = STABLE if g.members else EMPTY
        if g.state_timestamp < 0:
            g.state_timestamp = now_ms()
        g.subscribed_topics = g.compute_subscribed_topics()
        return g
