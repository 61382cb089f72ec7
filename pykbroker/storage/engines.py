"""Choosing the storage engine (``pykbroker.storage``): ``disk`` (Kafka's
on-disk layout, :class:`~pykbroker.storage.manager.LogManager`) or
``memory`` (:class:`~pykbroker.storage.memory.MemoryLogManager`, for
tests). Both are a :class:`~pykbroker.storage.api.LogStore`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .api import LogStore
from .log_config import LogConfig
from .manager import LogManager
from .memory import MemoryLogManager

ENGINES: dict[str, type[LogManager]] = {"disk": LogManager, "memory": MemoryLogManager}


def open_log_store(engine: str, log_dirs: Sequence[Path | str], default_config: LogConfig, *,
                   node_id: int, cluster_id: str | None) -> LogStore:
    """The (not yet loaded) log store of ``engine``; ValueError for an unknown name."""
    try:
        cls = ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown storage engine {engine!r} (pykbroker.storage: one of {sorted(ENGINES)})") from None
    return cls(log_dirs, default_config, node_id=node_id, cluster_id=cluster_id)


__all__ = ["ENGINES", "open_log_store"]
