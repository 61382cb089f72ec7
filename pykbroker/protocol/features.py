"""The features (KIP-584) a Kafka 4.x broker lists in ApiVersions v3+, and
their finalized levels.

Each feature has a supported range 0..max and levels that need some API
versions to be advertised (so ``--as-version`` narrows what can be served):

- ``transaction.version`` 0-2: level 2 needs EndTxn v5, Produce v12 and
  TxnOffsetCommit v5 (KIP-890 part 2);
- ``group.version`` 0-1: level 1 needs ConsumerGroupHeartbeat (KIP-848);
- ``share.version`` 0-1: level 1 needs ShareGroupHeartbeat v1 (KIP-932).

Finalized levels: until an admin changed them (UpdateFeatures), each
feature is finalized at the highest level the advertised versions serve.
Once changed, the stored levels are authoritative (a feature missing from
them is at level 0, as in Kafka's ``/feature`` znode), capped at what the
advertised versions serve. Level 0 is never listed as finalized.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# feature -> (supported max level, [(level, {api key: lowest max version it needs})], highest first)
FEATURES: dict[str, tuple[int, list[tuple[int, dict[int, int]]]]] = {
    "group.version": (1, [(1, {68: 0})]),
    "share.version": (1, [(1, {76: 1})]),
    "transaction.version": (2, [(2, {26: 5, 0: 12, 28: 5})]),
}


def _tops(api_keys: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    return {k["api_key"]: k["max_version"] for k in api_keys}


def supported() -> list[dict[str, Any]]:
    """ApiVersions' SupportedFeatures entries."""
    return [{"name": name, "min_version": 0, "max_version": top} for name, (top, _) in sorted(FEATURES.items())]


def servable_levels(api_keys: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Per feature the highest level these advertised API ranges serve (0 if none)."""
    top = _tops(api_keys)
    out = {}
    for name, (_max, levels) in FEATURES.items():
        out[name] = next((level for level, needs in levels
                          if all(top.get(key, -1) >= v for key, v in needs.items())), 0)
    return out


def finalized_levels(api_keys: Iterable[Mapping[str, Any]], stored: Mapping[str, int] | None) -> dict[str, int]:
    """Every known feature's finalized level (0 included): the servable level
    when nothing was stored, else the stored one (missing = 0) capped at it."""
    servable = servable_levels(api_keys)
    if stored is None:
        return servable
    return {name: min(int(stored.get(name, 0)), top) for name, top in servable.items()}


def finalized(api_keys: Iterable[Mapping[str, Any]], stored: Mapping[str, int] | None) -> list[dict[str, Any]]:
    """ApiVersions' FinalizedFeatures entries (levels above 0)."""
    return [{"name": name, "min_version_level": level, "max_version_level": level}
            for name, level in sorted(finalized_levels(api_keys, stored).items()) if level > 0]
