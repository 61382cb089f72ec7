"""The aborted-transaction index: one ``<base offset>.txnindex`` per segment.

Kafka's layout (``TransactionIndex`` / ``AbortedTxn``): a file of 34-byte
entries, one per aborted transaction whose ABORT marker landed in the
segment, in marker order::

    version int16 (0) | producer id int64 | first offset int64 |
    last offset int64 (the marker's) | last stable offset int64

The last stable offset is the LSO right after the abort (the first offset
of the earliest other open transaction, else the marker offset + 1); a
search may stop at the first entry whose LSO reaches the upper bound of
the fetch. The file exists only for segments that had an abort.

:class:`AbortedTxnIndex` keeps every segment's entries in memory (aborts
are rare), appends to the files as aborts happen (no fd is kept open; a
segment retired by retention or compaction takes its file along, see
``LogSegment.retire``) and answers Fetch's question "which aborted
transactions overlap [fetch offset, upper bound)". With no directory (the
in-memory engine) nothing is written.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
from pathlib import Path
from typing import NamedTuple
from collections.abc import Iterable

from .segment import with_fd_relief

log = logging.getLogger("pykbroker.storage")

TXNINDEX_SUFFIX = ".txnindex"
ENTRY = struct.Struct(">hqqqq")  # 34 bytes
ENTRY_SIZE = ENTRY.size
VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def txnindex_path(dir: Path, base_offset: int) -> Path:
    return dir / f"{base_offset:020d}{TXNINDEX_SUFFIX}"


def encode(entries: Iterable[AbortedTxn]) -> bytes:
    return b"".join(ENTRY.pack(VERSION, *e) for e in entries)


def read_file(path: Path) -> list[AbortedTxn]:
    """Entries of a ``.txnindex`` file; a torn last entry is ignored (and
    later cut off by :meth:`AbortedTxnIndex.truncate_to`)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for pos in range(0, len(data) - ENTRY_SIZE + 1, ENTRY_SIZE):
        version, *rest = ENTRY.unpack_from(data, pos)
        if version != VERSION:
            log.warning("%s: unknown aborted-transaction entry version %d at byte %d; ignoring the rest",
                        path, version, pos)
            break
        out.append(AbortedTxn(*rest))
    return out


class AbortedTxnIndex:
    """The aborted-transaction entries of one partition, per segment."""

    def __init__(self, dir: Path | None) -> None:
        self.dir = dir
        self._buckets: dict[int, list[AbortedTxn]] = {}  # segment base offset -> entries
        self._bases: list[int] = []  # sorted keys of _buckets

    def __len__(self) -> int:
        return sum(len(v) for v in self._buckets.values())

    def entries(self) -> list[AbortedTxn]:
        return [e for b in self._bases for e in self._buckets[b]]

    # -- loading ------------------------------------------------------------------------------
    def load(self, segment_bases: list[int], names: list[str] | None = None) -> None:
        """Read the ``.txnindex`` files of these segments (others are orphans:
        deleted). ``names``: the directory's file names if the caller has
        just listed it (else it is listed here)."""
        self._buckets.clear()
        if self.dir is None:
            self._bases = []
            return
        wanted = set(segment_bases)
        if names is None:
            with os.scandir(self.dir) as it:
                names = [e.name for e in it]
        for name in names:
            if not name.endswith(TXNINDEX_SUFFIX):
                continue
            stem = name[: -len(TXNINDEX_SUFFIX)]
            if len(stem) != 20 or not stem.isdigit():
                continue
            base = int(stem)
            path = os.path.join(self.dir, name)
            if base not in wanted:
                try:
                    os.unlink(path)
                except OSError:
                    pass
                continue
            got = with_fd_relief(read_file, Path(path))
            if got:
                self._buckets[base] = got
        self._bases = sorted(self._buckets)

    # -- writes ---------------------------------------------------------------------------------
    def append(self, segment_base: int, entry: AbortedTxn) -> None:
        bucket = self._buckets.get(segment_base)
        if bucket is None:
            bucket = self._buckets[segment_base] = []
            bisect.insort(self._bases, segment_base)
        bucket.append(entry)
        if self.dir is not None:
            fd = os.open(txnindex_path(self.dir, segment_base), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                         0o644)
            try:
                os.write(fd, ENTRY.pack(VERSION, *entry))
            finally:
                os.close(fd)

    def remove(self, segment_base: int, entry: AbortedTxn) -> None:
        """Take back an entry just appended (an append that did not happen)."""
        bucket = self._buckets.get(segment_base)
        if bucket and bucket[-1] == entry:
            bucket.pop()
            self._rewrite(segment_base)

    def truncate_to(self, offset: int) -> None:
        """Drop every entry whose marker is at or after ``offset`` (Kafka's
        ``TransactionIndex.truncateTo``), rewriting the files."""
        for base in list(self._bases):
            bucket = self._buckets[base]
            keep = [e for e in bucket if e.last_offset < offset]
            if len(keep) != len(bucket):
                self._buckets[base] = keep
                self._rewrite(base)

    def drop_segments_except(self, segment_bases: list[int]) -> None:
        """Forget the entries of segments no longer in the log (retention,
        DeleteRecords, compaction: their files went with the segment)."""
        live = set(segment_bases)
        for base in [b for b in self._bases if b not in live]:
            del self._buckets[base]
        self._bases = sorted(self._buckets)

    def segments_replaced(self, new_base: int, old_bases: list[int]) -> None:
        """Compaction swapped ``old_bases`` for one segment at ``new_base``:
        their entries now belong to it (the cleaner wrote its ``.txnindex``)."""
        merged = [e for b in sorted(old_bases) for e in self._buckets.pop(b, [])]
        merged += self._buckets.pop(new_base, [])  # (new_base is normally the first old base)
        if merged:
            self._buckets[new_base] = sorted(merged, key=lambda e: e.last_offset)
        self._bases = sorted(self._buckets)

    def clear(self) -> None:
        for base in list(self._bases):
            self._buckets[base] = []
            self._rewrite(base)

    def _rewrite(self, base: int) -> None:
        bucket = self._buckets.get(base) or []
        if not bucket:
            self._buckets.pop(base, None)
            self._bases = sorted(self._buckets)
        if self.dir is None:
            return
        path = txnindex_path(self.dir, base)
        if not bucket:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(encode(bucket))
        os.replace(tmp, path)

    def flush(self) -> None:
        """fsync the index files (clean shutdown)."""
        if self.dir is None:
            return
        for base in self._bases:
            try:
                fd = os.open(txnindex_path(self.dir, base), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- reads ----------------------------------------------------------------------------------
    def collect(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound): from
        the segment holding ``fetch_offset`` on, entries whose marker is at
        or after the fetch offset and whose first offset is below the upper
        bound; stops at the first entry whose LSO reaches the upper bound
        (Kafka's ``collectAbortedTransactions``)."""
        if not self._bases:
            return []
        i = max(bisect.bisect_right(self._bases, fetch_offset) - 1, 0)
        out = []
        for base in self._bases[i:]:
            for e in self._buckets[base]:
                if e.last_offset >= fetch_offset and e.first_offset < upper_bound:
                    out.append(e)
                if e.last_stable_offset >= upper_bound:
                    return out
        return out
