"""Replication quotas: Kafka's ReplicationQuotaManager, leader and follower side.

A reassignment copies whole logs to the new replicas; the throttles keep it
from starving client traffic (Kafka's KIP-73):

- ``leader.replication.throttled.rate`` / ``follower.replication.throttled.rate``
  (dynamic broker configs, bytes/second, default unlimited) cap the bytes a
  leader sends to, and a follower fetches for, *throttled replicas*;
- a replica is throttled when its topic lists it in
  ``leader.replication.throttled.replicas`` (on the leader: ``<partition>:<leader id>``)
  or ``follower.replication.throttled.replicas`` (on the follower:
  ``<partition>:<follower id>``), or the list is ``*``;
- replicas in the ISR are never throttled (Kafka's ``shouldLeaderThrottle``
  / ``shouldFollowerThrottle``): only catching-up replicas are held back.

When the rate over the quota window (``replication.quota.window.num`` samples
of ``replication.quota.window.size.seconds``) is above the limit, a leader
answers a throttled partition with no records and a follower leaves it out of
its next fetch; the bytes of throttled partitions are recorded as they go.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

UNLIMITED = 2**63 - 1


class ReplicationQuota:
    """A byte rate over a sliding window of samples."""

    def __init__(self, limit: Callable[[], int], window_num: Callable[[], int],
                 window_size_s: Callable[[], int], clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._num = window_num
        self._size = window_size_s
        self._clock = clock
        self._samples: collections.deque[tuple[float, int]] = collections.deque()  # (sample start, bytes)
        self.total = 0  # bytes recorded, ever (metrics, benchmark)

    @property
    def limit(self) -> int:
        return int(self._limit())

    def enabled(self) -> bool:
        return self.limit < UNLIMITED

    def _trim(self, now: float) -> None:
        span = self._num() * self._size()
        while self._samples and self._samples[0][0] <= now - span:
            self._samples.popleft()

    def record(self, n: int) -> None:
        if n <= 0:
            return
        self.total += n
        now = self._clock()
        size = self._size()
        if self._samples and now - self._samples[-1][0] < size:
            start, b = self._samples[-1]
            self._samples[-1] = (start, b + n)
        else:
            self._samples.append((now, n))
        self._trim(now)

    def rate(self) -> float:
        """Bytes per second over the window (at least one sample long)."""
        now = self._clock()
        self._trim(now)
        if not self._samples:
            return 0.0
        elapsed = max(now - self._samples[0][0], float(self._size()))
        return sum(b for _, b in self._samples) / elapsed

    def exceeded(self) -> bool:
        return self.enabled() and self.rate() > self.limit


def is_throttled(replicas: tuple[str, ...], partition: int, broker: int) -> bool:
    """``replicas``: a topic's ``*.replication.throttled.replicas`` value."""
    if not replicas:
        return False
    return "*" in replicas or f"{partition}:{broker}" in replicas
