"""Group coordination: classic groups (JoinGroup/SyncGroup/Heartbeat/
LeaveGroup), KIP-848 consumer groups (ConsumerGroupHeartbeat), committed
offsets, all persisted in ``__consumer_offsets``.

- :mod:`.coordinator` - the coordinator: per-group locks, the offsets topic
  (appends, loading), the entry points handlers call; it composes
- :mod:`.registry` - what the parts share: config, groups and timers, the log seam
- :mod:`.classic`, :mod:`.classic_ops` - the classic group state machine and its operations
- :mod:`.consumer`, :mod:`.consumer_ops`, :mod:`.assignors` - KIP-848 groups, their
  operations and server-side assignors
- :mod:`.offsets` - committed and transactional offsets, expiry, group deletion
- :mod:`.records` - Kafka's record formats of ``__consumer_offsets``
- :mod:`.timers` - keyed timers on one trio task
- :mod:`.coordinator_base` - where a coordinator lives (shared with pykbroker.txn)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .coordinator import GroupCoordinator

if TYPE_CHECKING:
    from ..server.state import BrokerState

__all__ = ["GroupCoordinator", "coordinator_of", "client_host"]


def coordinator_of(state: BrokerState) -> GroupCoordinator:
    """The broker's group coordinator (built with the state)."""
    return state.group_coordinator


def client_host(peer: str) -> str:
    """Kafka's clientHost form of a peer address: ``/127.0.0.1``."""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return "/" + host.strip("[]")
