"""Injected disk latency, for fault tests (the nemesis harness's ``slow-disk``).

When the environment variable ``PYKBROKER_SLOW_DISK_FILE`` names a file,
every log write and fsync of this process (:class:`~.local_log.LocalLog`)
first sleeps for the number of milliseconds the file holds, blocking the
writing thread as a slow disk blocks ``write()`` / ``fsync()``. A missing,
empty or unparsable file means no delay. The file is looked at again at most
every 100 ms, so a test turns the fault on and off while the broker runs.
Without the variable (every real deployment) this costs one attribute check.
"""

from __future__ import annotations

import os
import time

_PATH = os.environ.get("PYKBROKER_SLOW_DISK_FILE") or None
_RECHECK_S = 0.1
_state = {"checked": 0.0, "delay_s": 0.0}


def _delay_s() -> float:
    now = time.monotonic()
    if now - _state["checked"] >= _RECHECK_S:
        _state["checked"] = now
        try:
            with open(_PATH, encoding="ascii") as f:  # type: ignore[arg-type]
                _state["delay_s"] = max(0.0, float(f.read().strip() or 0) / 1000)
        except (OSError, ValueError):
            _state["delay_s"] = 0.0
    return _state["delay_s"]


def disk_delay() -> None:
    """Sleep as long as the slow-disk fault asks (nothing when it is off)."""
    if _PATH is None:
        return
    d = _delay_s()
    if d > 0:
        time.sleep(d)
