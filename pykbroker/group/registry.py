"""What the parts of the group coordinator share.

The coordinator (:mod:`.coordinator`) is a few cooperating objects, each
built with explicit references to what it uses:

- :class:`GroupConfig`: the group settings, read once from the broker config;
- :class:`GroupRegistry`: every group by id and the keyed timers of all groups;
- :class:`OffsetsLog`: appending records to a group's partition of
  ``__consumer_offsets`` (implemented by the coordinator, which knows where
  the topic and its partitions are);
- :class:`~.classic_ops.ClassicOps` (JoinGroup/SyncGroup/Heartbeat/LeaveGroup),
  :class:`~.consumer_ops.ConsumerOps` (ConsumerGroupHeartbeat, KIP-848),
  :class:`~.offsets.OffsetStore` (committed and transactional offsets,
  expiry, deletion);
- :class:`~.coordinator.GroupCoordinator`: the per-group locks, loading,
  and the entry points the handlers call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Awaitable, Callable, Sequence

import attrs

from .classic import ClassicGroup
from .consumer import ConsumerGroup
from .timers import Timers

if TYPE_CHECKING:
    from ..config import BrokerConfig

Group = ClassicGroup | ConsumerGroup
Records = Sequence[tuple[bytes, bytes | None]]


def _cfg(cfg: BrokerConfig, key: str, default: Any) -> Any:
    try:
        v = cfg[key]
    except KeyError:
        return default
    return default if v is None else v


@attrs.frozen
class GroupConfig:
    initial_rebalance_delay_ms: int
    min_session_timeout_ms: int
    max_session_timeout_ms: int
    classic_max_size: int
    consumer_max_size: int
    consumer_session_timeout_ms: int
    consumer_heartbeat_interval_ms: int
    #: server-side assignors of KIP-848 groups, the default first
    consumer_assignors: tuple[str, ...]
    offsets_partitions: int
    offsets_retention_ms: int
    offsets_retention_check_ms: int
    offset_metadata_max_bytes: int
    #: group.coordinator.rebalance.protocols
    protocols: frozenset[str]

    @classmethod
    def from_broker(cls, cfg: BrokerConfig) -> GroupConfig:
        names = [a.strip() for a in str(_cfg(cfg, "group.consumer.assignors", "uniform,range")).split(",")]
        return cls(
            initial_rebalance_delay_ms=int(cfg["group.initial.rebalance.delay.ms"]),
            min_session_timeout_ms=int(cfg["group.min.session.timeout.ms"]),
            max_session_timeout_ms=int(cfg["group.max.session.timeout.ms"]),
            classic_max_size=int(cfg["group.max.size"]),
            consumer_max_size=int(_cfg(cfg, "group.consumer.max.size", cfg["group.max.size"])),
            consumer_session_timeout_ms=int(cfg["group.consumer.session.timeout.ms"]),
            consumer_heartbeat_interval_ms=int(cfg["group.consumer.heartbeat.interval.ms"]),
            consumer_assignors=tuple(dict.fromkeys(n for n in names if n)),
            offsets_partitions=int(cfg["offsets.topic.num.partitions"]),
            offsets_retention_ms=int(cfg["offsets.retention.minutes"]) * 60_000,
            offsets_retention_check_ms=int(cfg["offsets.retention.check.interval.ms"]),
            offset_metadata_max_bytes=int(_cfg(cfg, "offset.metadata.max.bytes", 4096)),
            protocols=frozenset(p.strip() for p in str(cfg["group.coordinator.rebalance.protocols"]).split(",")),
        )


class GroupRegistry:
    """Every group this coordinator holds, by id, and their timers (one
    :class:`~.timers.Timers`: a timer fires under its group's lock)."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.timers = Timers()

    def schedule(self, key: Any, delay_ms: float, group: Group, fn: Callable[[], Awaitable[None]]) -> None:
        self.timers.schedule(key, delay_ms, group.group_id, fn)

    def remove(self, gid: str) -> None:
        """Forget a group and cancel its timers."""
        self.groups.pop(gid, None)
        self.timers.cancel_group(gid)


class OffsetsLog(Protocol):
    """Appends to a group's partition of ``__consumer_offsets``; each call
    returns an error code (``errors.NONE`` when appended)."""

    def partition_for(self, key: str) -> int: ...

    async def write(self, group_id: str, recs: Records) -> int: ...

    async def write_txn(self, group_id: str, recs: Records, producer_id: int, producer_epoch: int,
                        now: int) -> int: ...
