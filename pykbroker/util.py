"""Tiny helpers shared by every layer (imports nothing from pykbroker)."""

from __future__ import annotations

import time

INT_MAX = 2**31 - 1  # Java's Integer.MAX_VALUE
LONG_MAX = 2**63 - 1  # Java's Long.MAX_VALUE


def now_ms() -> int:
    """Wall-clock time in milliseconds (Kafka's ``time.milliseconds()``)."""
    return int(time.time() * 1000)


def fd_soft_limit() -> int:
    """The process's RLIMIT_NOFILE soft limit (a large number if unlimited)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY and soft > 0 else 1 << 20


def open_fd_count() -> int:
    """How many file descriptors the process has open (-1 if unknown)."""
    import errno
    import os

    for d in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(d)) - 1  # the listing's own fd
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):  # not even one left to look
                return fd_soft_limit()
            continue
    return -1


def fd_headroom() -> int:
    """Descriptors still free under the soft limit (a large number if unknown)."""
    n = open_fd_count()
    return fd_soft_limit() - n if n >= 0 else 1 << 20

