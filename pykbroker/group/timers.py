"""Keyed one-shot timers for the group coordinator, driven by one trio task.

``schedule(key, delay_ms, group_id, fn)`` replaces any timer with the same
key; ``cancel(key)`` drops it. The runner sleeps until the earliest
deadline (a trio deadline, woken early when an earlier timer is added; no
polling) and hands each due timer to ``fire(timer)``, which runs it under
its group's lock. A timer cancelled or replaced after it became due but
before it got the lock is skipped (``timer.alive`` is checked under the
lock), so a heartbeat that arrives just in time always wins.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any
from collections.abc import Awaitable, Callable

import attrs
import trio


@attrs.define(eq=False)
class Timer:
    deadline: float
    seq: int
    key: Any
    group_id: str
    fn: Callable[[], Any]
    alive: bool = True

    def __lt__(self, other: "Timer") -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class Timers:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._by_key: dict[Any, Timer] = {}
        self._seq = itertools.count()
        self._wake = trio.Event()

    def schedule(self, key: Any, delay_ms: float, group_id: str, fn: Callable[[], Any]) -> Timer:
        self.cancel(key)
        t = Timer(trio.current_time() + max(delay_ms, 0) / 1000.0, next(self._seq), key, group_id, fn)
        self._by_key[key] = t
        heapq.heappush(self._heap, t)
        if self._heap[0] is t:
            self._wake.set()
        return t

    def cancel(self, key: Any) -> None:
        t = self._by_key.pop(key, None)
        if t is not None:
            t.alive = False

    def cancel_group(self, group_id: str) -> None:
        for key in [k for k, t in self._by_key.items() if t.group_id == group_id]:
            self.cancel(key)

    def pending(self, key: Any) -> bool:
        return key in self._by_key

    def consume(self, t: Timer) -> bool:
        """Called under the group lock before running ``t``: False if it was
        cancelled or replaced meanwhile."""
        if not t.alive:
            return False
        if self._by_key.get(t.key) is t:
            del self._by_key[t.key]
        t.alive = False
        return True

    def __len__(self) -> int:
        return len(self._by_key)

    async def run(self, fire: Callable[[Timer], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                now = trio.current_time()
                while self._heap and (not self._heap[0].alive or self._heap[0].deadline <= now):
                    t = heapq.heappop(self._heap)
                    if t.alive:
                        nursery.start_soon(fire, t)
                # drop dead entries lazily so the heap does not grow without bound
                if len(self._heap) > 64 and len(self._heap) > 4 * len(self._by_key):
                    self._heap = [t for t in self._heap if t.alive]
                    heapq.heapify(self._heap)
                self._wake = trio.Event()
                deadline = self._heap[0].deadline if self._heap else float("inf")
                with trio.move_on_at(deadline):
                    await self._wake.wait()
