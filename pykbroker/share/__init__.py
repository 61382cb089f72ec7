"""Share groups (KIP-932, "queues for Kafka"): many consumers per partition,
records acquired, acknowledged one by one and redelivered when not.

- :mod:`.coordinator` - share groups, sessions, fetch/acknowledge, persistence
- :mod:`.partition` - the share-partition state machine (record states, delivery counts)
- :mod:`.records` - the ``__share_group_state`` record format
"""

from __future__ import annotations

from .coordinator import DISABLED, ShareCoordinator, share_coordinator_of, share_groups_disabled

__all__ = ["DISABLED", "ShareCoordinator", "share_coordinator_of", "share_groups_disabled"]
