"""Server-side partition assignors for KIP-848 consumer groups.

Both take the members' subscriptions (topic ids), the subscribed topics'
partition counts and the previous target assignment, and return the new
target assignment ``{member_id: {topic_id: set(partitions)}}``. Pure
functions, deterministic for a given input.

- ``uniform`` (Kafka's default): every partition of a subscribed topic goes
  to exactly one member subscribed to it; loads differ by at most one
  between members that could take each other's partitions; sticky (a
  partition stays with its previous owner unless balance requires a move).
- ``range``: per topic, the subscribed members sorted by instance id (then
  member id) get contiguous ranges, the first ``partitions % members``
  getting one extra; co-partitioned topics line up.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

Assignment = dict[bytes, set[int]]


@attrs.frozen
class MemberSpec:
    topics: frozenset[bytes]  # subscribed topic ids that exist
    instance_id: str | None = None
    rack_id: str | None = None


def _sort_key(mid: str, spec: MemberSpec) -> tuple[str, str]:
    return (spec.instance_id or "\uffff", mid)


def uniform(members: Mapping[str, MemberSpec], topics: Mapping[bytes, int],
            previous: Mapping[str, Assignment]) -> dict[str, Assignment]:
    order = sorted(members)
    result: dict[str, Assignment] = {m: {} for m in order}
    load = {m: 0 for m in order}
    owner: dict[tuple[bytes, int], str] = {}
    # 1. stickiness: keep previous partitions that are still valid and subscribed
    for m in order:
        for tid, parts in sorted(previous.get(m, {}).items()):
            if tid not in members[m].topics or tid not in topics:
                continue
            for p in sorted(parts):
                if p < topics[tid] and (tid, p) not in owner:
                    owner[(tid, p)] = m
                    result[m].setdefault(tid, set()).add(p)
                    load[m] += 1
    subscribers: dict[bytes, list[str]] = {tid: [m for m in order if tid in members[m].topics]
                                           for tid in topics}
    # 2. unassigned partitions to the least loaded subscriber
    for tid in sorted(topics):
        subs = subscribers[tid]
        if not subs:
            continue
        for p in range(topics[tid]):
            if (tid, p) in owner:
                continue
            m = min(subs, key=lambda x: (load[x], x))
            owner[(tid, p)] = m
            result[m].setdefault(tid, set()).add(p)
            load[m] += 1
    # 3. balance: move partitions from the most to the least loaded eligible member
    for _ in range(sum(topics.values()) * 2 + 1):
        moved = False
        for src in sorted(order, key=lambda x: (-load[x], x)):
            best = None
            for tid in sorted(result[src]):
                for dst in subscribers.get(tid, ()):
                    if load[dst] + 1 < load[src] and (best is None or load[dst] < load[best[1]]):
                        best = (tid, dst)
            if best is not None:
                tid, dst = best
                p = max(result[src][tid])
                result[src][tid].discard(p)
                if not result[src][tid]:
                    del result[src][tid]
                result[dst].setdefault(tid, set()).add(p)
                load[src] -= 1
                load[dst] += 1
                moved = True
                break
        if not moved:
            break
    return result


def range_(members: Mapping[str, MemberSpec], topics: Mapping[bytes, int],
           previous: Mapping[str, Assignment]) -> dict[str, Assignment]:
    result: dict[str, Assignment] = {m: {} for m in members}
    for tid in sorted(topics):
        subs = sorted((m for m in members if tid in members[m].topics),
                      key=lambda m: _sort_key(m, members[m]))
        if not subs:
            continue
        n = topics[tid]
        base, extra = divmod(n, len(subs))
        start = 0
        for i, m in enumerate(subs):
            count = base + (1 if i < extra else 0)
            if count:
                result[m][tid] = set(range(start, start + count))
            start += count
    return result


ASSIGNORS = {"uniform": uniform, "range": range_}
DEFAULT = "uniform"
