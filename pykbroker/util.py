"""Tiny helpers shared by every layer (imports nothing from pykbroker)."""

from __future__ import annotations

import time

INT_MAX = 2**31 - 1  # Java's Integer.MAX_VALUE
LONG_MAX = 2**63 - 1  # Java's Long.MAX_VALUE


def now_ms() -> int:
    """Wall-clock time in milliseconds (Kafka's ``time.milliseconds()``)."""
    return int(time.time() * 1000)
