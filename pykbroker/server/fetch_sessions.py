"""Fetch sessions (KIP-227): the broker's cache of incremental fetch sessions.

A Fetch (v7+) names a session id and epoch:

- id 0, epoch -1: sessionless, a full request answered in full, nothing cached;
- epoch 0 (any id; a non-zero id is closed first): a full request that asks
  for a new session; the answer carries its id, or 0 when the cache has no
  slot for it;
- id N, epoch -1: close session N, then as sessionless;
- id N, epoch E > 0: incremental. The request lists only partitions that are
  new or whose fetch parameters changed, plus the ones to forget; the broker
  reads every partition of the session and answers only those with records,
  a changed high watermark or log start offset, or an error. A session that
  does not exist is FETCH_SESSION_ID_NOT_FOUND; an epoch other than the
  session's next one is INVALID_FETCH_SESSION_EPOCH; a session opened with
  topic ids (v13+) used with names, or the reverse, is
  FETCH_SESSION_TOPIC_ID_ERROR. A session left with no partition is closed
  and the answer is sessionless.

The cache is Kafka's FetchSessionCache: at most
``max.incremental.fetch.session.cache.slots`` sessions (1000). A new session
takes a free slot, else evicts a session not used for
``EVICTION_MS`` (two minutes), else the least valuable evictable session if
the new one is worth at least as much: followers' sessions (privileged)
rank above consumers', then larger sessions above smaller ones. A session
becomes evictable by anyone two minutes after it was created (as seen when
it was last used); a consumer's session is evictable by a follower's at
any time. Answered partitions move to the end of the session's order, so a
response that hits max_bytes leaves the others first in line next time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..protocol import errors
from ..util import now_ms

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
INVALID_SESSION_ID = 0
EVICTION_MS = 120_000  # Kafka: MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS

# (topic id, partition) for sessions with topic ids (v13+), else (topic name, partition)
PartKey = tuple[Any, int]


def next_epoch(epoch: int) -> int:
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == 2**31 - 1 else epoch + 1


@attrs.define(slots=True, eq=False)
class CachedPartition:
    """One partition of a session: the fetcher's last parameters and what it was last told."""
    topic: str
    topic_id: bytes
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1  # the fetcher's (followers)
    last_fetched_epoch: int = -1
    high_watermark: int = -1  # last answered (-1: answer next time)
    local_log_start_offset: int = -1  # last answered
    entry: dict[str, Any] | None = attrs.field(default=None, init=False)  # request() built once per change

    def update_request(self, fp: dict[str, Any]) -> None:
        self.entry = None
        self.fetch_offset = fp["fetch_offset"]
        self.partition_max_bytes = fp["partition_max_bytes"]
        self.current_leader_epoch = fp["current_leader_epoch"]
        self.log_start_offset = fp["log_start_offset"]
        self.last_fetched_epoch = fp["last_fetched_epoch"]

    def request(self) -> dict[str, Any]:
        """The partition as a Fetch request entry (what the session reads; not to be changed)."""
        if self.entry is None:
            self.entry = {"partition": self.partition, "current_leader_epoch": self.current_leader_epoch,
                          "fetch_offset": self.fetch_offset, "last_fetched_epoch": self.last_fetched_epoch,
                          "log_start_offset": self.log_start_offset,
                          "partition_max_bytes": self.partition_max_bytes}
        return self.entry

    def must_respond(self, resp: dict[str, Any], has_records: bool) -> bool:
        """Whether an incremental answer includes this partition; updates what it was told."""
        must = has_records
        if resp["high_watermark"] != self.high_watermark:
            must = True
            self.high_watermark = resp["high_watermark"]
        if resp["log_start_offset"] != self.local_log_start_offset:
            must = True
            self.local_log_start_offset = resp["log_start_offset"]
        if resp.get("preferred_read_replica", -1) >= 0:
            must = True
        if resp["error_code"]:
            self.high_watermark = -1  # answer it again once the error is gone
            must = True
        diverging = resp.get("diverging_epoch")
        if diverging is not None and diverging.get("epoch", -1) >= 0:
            must = True
        return must


@attrs.define(slots=True, eq=False)
class FetchSession:
    id: int
    privileged: bool
    uses_topic_ids: bool
    creation_ms: int
    last_used_ms: int
    epoch: int
    partitions: dict[PartKey, CachedPartition]  # in answer order
    cached_size: int = -1  # the size the cache accounted, -1 before the first touch
    evictable_by_all: bool = False
    evictable_by_privileged: bool = False

    @property
    def size(self) -> int:
        return len(self.partitions)

    def evictable_key(self) -> tuple[bool, int, int]:
        return (self.privileged, self.cached_size, self.id)

    def update(self, adds: Iterable[tuple[PartKey, str, bytes, dict[str, Any]]],
               forget: Iterable[PartKey]) -> None:
        """An incremental request: new and changed partitions first, then the forgotten ones."""
        for key, topic, topic_id, fp in adds:
            cp = self.partitions.get(key)
            if cp is None:
                cp = self.partitions[key] = CachedPartition(topic, topic_id, fp["partition"],
                                                            fp["fetch_offset"], fp["partition_max_bytes"])
            cp.update_request(fp)
        for key in forget:
            self.partitions.pop(key, None)

    def rotate(self, answered: Iterable[PartKey]) -> None:
        """Move the answered partitions to the end (Kafka's fairness across responses)."""
        for key in answered:
            cp = self.partitions.pop(key, None)
            if cp is not None:
                self.partitions[key] = cp


class FetchSessionCache:
    """Sessions by id, bounded by ``max.incremental.fetch.session.cache.slots``."""

    def __init__(self, max_entries: int, eviction_ms: int = EVICTION_MS,
                 clock: Callable[[], int] = now_ms) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.clock = clock
        self.sessions: dict[int, FetchSession] = {}
        self.num_partitions = 0  # partitions over all sessions (Kafka: NumIncrementalFetchPartitionsCached)
        self.evictions = 0  # Kafka: IncrementalFetchSessionEvictionsPerSec, as a count
        self.created = 0  # sessions opened
        self.incremental_requests = 0  # incremental fetches served (epoch > 0, session found)

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def remove(self, session_id: int) -> FetchSession | None:
        s = self.sessions.pop(session_id, None)
        if s is not None and s.cached_size >= 0:
            self.num_partitions -= s.cached_size
        return s

    def touch(self, s: FetchSession, now: int) -> None:
        """Record a use: last-used time, size, and whether it may be evicted (Kafka's touch)."""
        s.last_used_ms = now
        if s.cached_size >= 0:
            self.num_partitions -= s.cached_size
        s.cached_size = s.size
        self.num_partitions += s.cached_size
        old = now - s.creation_ms > self.eviction_ms
        s.evictable_by_all = old
        s.evictable_by_privileged = old or not s.privileged

    def _new_id(self) -> int:
        while True:
            sid = random.randint(1, 2**31 - 1)
            if sid not in self.sessions:
                return sid

    def _try_evict(self, privileged: bool, size: int, now: int) -> bool:
        if not self.sessions:
            return False
        stale = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now - stale.last_used_ms > self.eviction_ms:
            self.remove(stale.id)
            self.evictions += 1
            return True
        candidates = [s for s in self.sessions.values()
                      if (s.evictable_by_privileged if privileged else s.evictable_by_all)]
        if not candidates:
            return False
        victim = min(candidates, key=FetchSession.evictable_key)
        if (privileged, size, 0) < victim.evictable_key():
            return False  # the new session is worth less than any evictable one
        self.remove(victim.id)
        self.evictions += 1
        return True

    def maybe_create(self, privileged: bool, uses_topic_ids: bool,
                     answered: Iterable[tuple[PartKey, str, bytes, dict[str, Any], dict[str, Any]]]) -> int:
        """After a full answer: a new session of its partitions ((key, topic, topic id,
        request entry, answer entry) each); its id, or 0 when there is no slot for it."""
        now = self.clock()
        partitions: dict[PartKey, CachedPartition] = {}
        for key, topic, topic_id, fp, resp in answered:
            cp = CachedPartition(topic, topic_id, fp["partition"], fp["fetch_offset"], fp["partition_max_bytes"])
            cp.update_request(fp)
            cp.high_watermark = resp["high_watermark"]
            cp.local_log_start_offset = resp["log_start_offset"]
            partitions[key] = cp
        if self.max_entries <= 0:
            return INVALID_SESSION_ID
        if len(self.sessions) >= self.max_entries and not self._try_evict(privileged, len(partitions), now):
            return INVALID_SESSION_ID
        s = FetchSession(self._new_id(), privileged, uses_topic_ids, now, now,
                         next_epoch(INITIAL_EPOCH), partitions)
        self.sessions[s.id] = s
        self.created += 1
        self.touch(s, now)
        return s.id

    def new_context(self, session_id: int, epoch: int, uses_topic_ids: bool,
                    adds: list[tuple[PartKey, str, bytes, dict[str, Any]]],
                    forget: list[PartKey]) -> FetchContext:
        """Kafka's FetchManager.newContext: what a request with these session fields reads."""
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                self.remove(session_id)
            return FetchContext("sessionless" if epoch == FINAL_EPOCH else "full")
        s = self.sessions.get(session_id)
        if s is None:
            return FetchContext("error", errors.FETCH_SESSION_ID_NOT_FOUND)
        if s.epoch != epoch:
            return FetchContext("error", errors.INVALID_FETCH_SESSION_EPOCH)
        if s.uses_topic_ids != uses_topic_ids:
            return FetchContext("error", errors.FETCH_SESSION_TOPIC_ID_ERROR)
        s.update(adds, forget)
        if not s.partitions:
            self.remove(s.id)
            return FetchContext("sessionless")
        self.touch(s, self.clock())
        s.epoch = next_epoch(s.epoch)
        self.incremental_requests += 1
        return FetchContext("incremental", session=s)


@attrs.define(slots=True)
class FetchContext:
    """What one Fetch request reads and how its answer is shaped.

    ``kind`` is "sessionless", "full" (create a session after answering),
    "incremental" (``session`` set) or "error" (``error`` set)."""
    kind: str
    error: int = errors.NONE
    session: FetchSession | None = None

