"""Sampled history for the console's charts, kept in memory.

Every ``pykbroker.console.sample.interval.ms`` the sampler records, per
topic, the sum of its partitions' log end offsets and sizes and the bytes
fetched from it, and per group its total lag; the last :data:`KEEP`
samples are kept. Rates are differences between samples: records/s in from
log end offsets, bytes/s in from log sizes (retention and compaction can
make a size shrink: such an interval counts as 0), bytes/s out from the
Fetch responses (:class:`TopicMeter`), records/s out estimated from bytes
out and the topic's bytes per record.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any
from collections.abc import Awaitable, Callable

import attrs
import trio

from .. import inspect

if TYPE_CHECKING:
    from ..state import BrokerState

log = logging.getLogger("pykbroker.console")

KEEP = 600


class TopicMeter:
    """Bytes of record data fetched per topic (the ``topic_meter`` hook of
    ``server/metrics.py`` ``Instrumentation``; consumers' and followers'
    fetches alike)."""

    def __init__(self, state: "BrokerState") -> None:
        self.state = state
        self.bytes_out: dict[str, int] = collections.defaultdict(int)

    def __call__(self, ctx: Any, body: dict[str, Any]) -> None:
        if ctx.api_key != 1:
            return
        for t in body.get("responses") or ():
            name = t.get("topic")
            if not name:
                ts = self.state.topics_by_id.get(t.get("topic_id") or b"")
                name = ts.name if ts is not None else None
            if not name:
                continue
            n = 0
            for p in t.get("partitions") or ():
                recs = p.get("records")
                if recs is None:
                    continue
                if isinstance(recs, (bytes, bytearray, memoryview)):
                    n += len(recs)
                else:
                    n += sum(len(c) if isinstance(c, (bytes, bytearray, memoryview)) else c.length for c in recs)
            if n:
                self.bytes_out[name] += n


@attrs.define
class TopicSample:
    t: float
    records: int  # sum of log end offsets
    size: int  # bytes on disk
    bytes_out: int


@attrs.define
class Rates:
    records_in: float = 0.0
    bytes_in: float = 0.0
    bytes_out: float = 0.0
    records_out: float = 0.0


class History:
    def __init__(self, state: "BrokerState", meter: TopicMeter) -> None:
        self.state = state
        self.meter = meter
        self.topics: dict[str, collections.deque[TopicSample]] = {}
        self.lag: dict[str, collections.deque[tuple[float, int]]] = {}

    def sample(self, now: float) -> None:
        st = self.state
        for name in list(self.topics):
            if name not in st.topics:
                del self.topics[name]
        for name, ts in st.topics.items():
            if ts.internal:
                continue
            records = size = 0
            for p in ts.partitions:
                try:
                    records += p.log_end_offset
                    size += p.log.size
                except Exception:  # a partition without a local replica (a cluster)
                    continue
            self.topics.setdefault(name, collections.deque(maxlen=KEEP)).append(
                TopicSample(now, records, size, self.meter.bytes_out.get(name, 0)))
        for g in inspect.groups(st):
            self.lag.setdefault(g["group_id"], collections.deque(maxlen=KEEP)).append((now, int(g["total_lag"])))

    def sample_group(self, group: str, lag: int) -> None:
        """A sample of one group now (after a change made on the page)."""
        self.lag.setdefault(group, collections.deque(maxlen=KEEP)).append((trio.current_time(), int(lag)))

    def rates(self, topic: str, window: int = 5) -> Rates:
        """Rates over the last ``window`` intervals."""
        s = self.topics.get(topic)
        if not s or len(s) < 2:
            return Rates()
        a, b = s[max(0, len(s) - 1 - window)], s[-1]
        return self._between(a, b)

    @staticmethod
    def _between(a: TopicSample, b: TopicSample) -> Rates:
        dt = b.t - a.t
        if dt <= 0:
            return Rates()
        per_record = (b.size / b.records) if b.records else 0.0
        bytes_out = max(b.bytes_out - a.bytes_out, 0) / dt
        return Rates(max(b.records - a.records, 0) / dt, max(b.size - a.size, 0) / dt, bytes_out,
                     bytes_out / per_record if per_record else 0.0)

    def series(self, topic: str) -> list[tuple[float, Rates]]:
        s = list(self.topics.get(topic) or ())
        return [(b.t, self._between(a, b)) for a, b in zip(s, s[1:])]

    async def run(self, interval: float,
                  more_lag: "Callable[[], Awaitable[dict[str, int]]] | None" = None) -> None:
        """Sample every ``interval`` s; ``more_lag`` gives the total lag of
        groups ``inspect`` does not cover (share groups)."""
        while True:
            try:
                now = trio.current_time()
                self.sample(now)
                if more_lag is not None:
                    for gid, lag in (await more_lag()).items():
                        self.lag.setdefault(gid, collections.deque(maxlen=KEEP)).append((now, lag))
            except Exception:  # a sample must never stop the broker
                log.exception("console sampling failed")
            await trio.sleep(interval)
