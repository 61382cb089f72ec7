"""Replica placement, with the behaviour of Kafka's ``AdminUtils.assignReplicasToBrokers``.

- Rack-unaware (no broker has ``broker.rack``): partition ``p``'s first
  replica (its preferred leader) is broker ``(p + start) % n`` of the sorted
  broker list, so leaders go round-robin; the followers come at a distance
  ``1 + (shift + j) % (n - 1)`` from it, and the shift grows by one every
  ``n`` partitions, so the follower sets differ between rounds too.
- Rack-aware (every broker has a rack): the broker list is first arranged to
  alternate racks (rack a, rack b, rack c, rack a, ...; racks sorted, brokers
  sorted inside a rack); then the same walk, except that a broker is skipped
  while some rack has no replica yet and this broker's rack already has one,
  or while some broker has none and this one already has one. With as many
  racks as replicas every replica lands in a different rack.
- Some brokers with a rack and some without: as Kafka, an error.

``start``/``shift`` are random unless ``fixed_start`` is given (tests; Kafka
uses the position of partition 0's first replica when adding partitions).
"""

from __future__ import annotations

import random
from collections.abc import Mapping


class AssignmentError(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def rack_alternated(racks: Mapping[int, str]) -> list[int]:
    by_rack: dict[str, list[int]] = {}
    for b, r in racks.items():
        by_rack.setdefault(r, []).append(b)
    names = sorted(by_rack)
    iters = {r: iter(sorted(by_rack[r])) for r in names}
    out: list[int] = []
    i = 0
    while len(out) < len(racks):
        nxt = next(iters[names[i]], None)
        if nxt is not None:
            out.append(nxt)
        i = (i + 1) % len(names)
    return out


def assign_replicas(brokers: Mapping[int, str | None], partitions: int, replication_factor: int, *,
                    fixed_start: int = -1, start_partition: int = 0,
                    rng: random.Random | None = None) -> dict[int, list[int]]:
    """``brokers``: broker id -> rack (or None). Returns partition -> replicas."""
    from ..protocol import errors

    if partitions <= 0:
        raise AssignmentError(errors.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise AssignmentError(errors.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise AssignmentError(
            errors.INVALID_REPLICATION_FACTOR,
            f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}.")
    rng = rng or random.Random()
    with_rack = [b for b, r in brokers.items() if r is not None]
    if not with_rack:
        ordered = sorted(brokers)
        racks: dict[int, str] | None = None
    elif len(with_rack) != len(brokers):
        raise AssignmentError(errors.INVALID_REPLICATION_FACTOR,
                              "Not all brokers have rack information for replica rack aware assignment.")
    else:
        racks = {b: r for b, r in brokers.items() if r is not None}
        ordered = rack_alternated(racks)
    n = len(ordered)
    start = fixed_start if fixed_start >= 0 else rng.randrange(n)
    shift = fixed_start if fixed_start >= 0 else rng.randrange(n)
    out: dict[int, list[int]] = {}
    p = max(0, start_partition)
    for _ in range(partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start) % n
        replicas = [ordered[first]]
        if racks is None:
            for j in range(replication_factor - 1):
                replicas.append(ordered[_replica_index(first, shift, j, n)])
        else:
            n_racks = len(set(racks.values()))
            used_racks = {racks[ordered[first]]}
            k = 0
            for _j in range(replication_factor - 1):
                while True:
                    b = ordered[_replica_index(first, shift * n_racks, k, n)]
                    k += 1
                    rack_ok = racks[b] not in used_racks or len(used_racks) == n_racks
                    broker_ok = b not in replicas or len(replicas) == n
                    if rack_ok and broker_ok:
                        replicas.append(b)
                        used_racks.add(racks[b])
                        break
        out[p] = replicas
        p += 1
    return out
