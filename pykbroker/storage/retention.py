"""Retention: which old segments go (Kafka's UnifiedLog.deleteOldSegments).

Run for every log each ``log.retention.check.interval.ms`` (server/log_tasks.py):

- every log: segments wholly below the log start offset (DeleteRecords
  moved it) — ``deleteLogStartOffsetBreachedSegments``;
- ``cleanup.policy`` containing ``delete`` also:
  - ``retention.bytes`` >= 0: while the log is larger than retention.bytes,
    the oldest segments whose removal keeps it at or above the limit
    (``deleteRetentionSizeBreachedSegments``: ``size - retention.bytes >=
    segment size``);
  - ``retention.ms`` >= 0: the oldest segments whose largest record
    timestamp (file mtime without timestamps) is more than retention.ms
    old (``deleteRetentionMsBreachedSegments``).

Deletion is whole segments only, oldest first, stopping at the first one
that must stay; never past the high watermark; when every segment goes,
the log first rolls so an empty active segment remains (the log start
offset then equals the log end offset). The log start offset moves to the
first remaining segment; deleted files are renamed ``.deleted`` and removed
after ``file.delete.delay.ms`` (:meth:`PartitionLog.due_deletes`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..util import now_ms as _now_ms

if TYPE_CHECKING:
    from .log import PartitionLog
    from .segment import LogSegment

log = logging.getLogger("pykbroker.storage.retention")


def delete_log_start_offset_breached(plog: "PartitionLog", now_ms: int) -> int:
    start = plog.log_start_offset

    def breached(seg: "LogSegment", nxt: "LogSegment | None") -> bool:
        return nxt is not None and nxt.base_offset <= start

    return plog.delete_segments(plog.deletable_segments(breached), now_ms)


def delete_retention_size_breached(plog: "PartitionLog", now_ms: int) -> int:
    limit = plog.config.retention_bytes
    size = plog.size
    if limit < 0 or size < limit:
        return 0
    diff = size - limit

    def breached(seg: "LogSegment", nxt: "LogSegment | None") -> bool:
        nonlocal diff
        if diff - seg.size >= 0:
            diff -= seg.size
            return True
        return False

    return plog.delete_segments(plog.deletable_segments(breached), now_ms)


def delete_retention_ms_breached(plog: "PartitionLog", now_ms: int) -> int:
    retention_ms = plog.config.retention_ms
    if retention_ms < 0:
        return 0

    def breached(seg: "LogSegment", nxt: "LogSegment | None") -> bool:
        return now_ms - seg.largest_timestamp > retention_ms

    return plog.delete_segments(plog.deletable_segments(breached), now_ms)


def delete_old_segments(plog: "PartitionLog", now_ms: int | None = None) -> int:
    """Apply the log's retention policy once; returns the segments deleted."""
    now = _now_ms() if now_ms is None else now_ms
    if plog.closed:
        return 0
    before = plog.log_start_offset
    n = delete_log_start_offset_breached(plog, now)
    if plog.config.delete:
        n += delete_retention_size_breached(plog, now)
        n += delete_retention_ms_breached(plog, now)
    if n:
        log.info("%s: retention deleted %d segment(s); log start offset %d -> %d",
                 plog.name, n, before, plog.log_start_offset)
    return n


__all__ = [
    "delete_log_start_offset_breached",
    "delete_old_segments",
    "delete_retention_ms_breached",
    "delete_retention_size_breached",
]
