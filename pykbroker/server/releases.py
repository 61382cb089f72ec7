"""Kafka release emulation applied to a broker (``--as-version``,
``pykbroker.as.version``); the release table is ``pykbroker.protocol.releases``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol.releases import ranges

if TYPE_CHECKING:
    from .state import BrokerState


def apply_release(state: BrokerState, release: str) -> None:
    """Cap ``state``'s advertised and accepted versions to ``release``'s."""
    r = ranges(release)
    state.api_version_caps = {k: hi for k, (lo, hi) in r.items()}
    state.api_version_floors = {k: lo for k, (lo, hi) in r.items()}
    state._api_versions_cache = None
