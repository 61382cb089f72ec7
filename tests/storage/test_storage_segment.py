"""LogSegment: Kafka's file layout, sparse indexes, recovery, index rebuilds."""

from __future__ import annotations

import os
import struct

import pytest
from storage_helpers import make_batch

from pykbroker.protocol.records import build_batch, iter_batches, validate_batches
from pykbroker.storage.segment import LogSegment


def _seg(tmp_path, base=0, interval=250, max_index_bytes=10 * 1024 * 1024, create=True):
    return LogSegment(tmp_path, base, index_interval_bytes=interval, max_index_bytes=max_index_bytes, create=create)


def _append(seg, base_offset, n=1, ts=1000, value_size=10):
    data = make_batch(n, ts=ts, value_size=value_size)
    struct.pack_into(">q", data, 0, base_offset)
    hs = validate_batches(bytes(data), max_batch_bytes=None, client=False)
    seg.append(data, hs)
    return hs[0].size


def test_file_names_and_index_entries_follow_kafka(tmp_path):
    seg = _seg(tmp_path, base=100, interval=250)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000000000000000100.index", "00000000000000000100.log", "00000000000000000100.timeindex"]
    sizes = []
    for i in range(10):
        sizes.append(_append(seg, 100 + 2 * i, n=2, ts=1000 + i))
    size = sizes[0]
    assert all(s == size for s in sizes) and 80 < size < 126  # so entries come every 3 batches
    # entry when more than 250 bytes were appended since the previous one:
    # before batches 3, 6, 9 (never for the first batch); entry = (last offset, position)
    assert seg.offset_index() == [(107, 3 * size), (113, 6 * size), (119, 9 * size)]
    raw = seg.index_path.read_bytes()
    assert raw == b"".join(struct.pack(">ii", o - 100, p) for o, p in seg.offset_index())
    # time index: max timestamp so far with the last offset of its batch
    assert seg.time_index() == [(1003, 107), (1006, 113), (1009, 119)]
    assert seg.timeindex_path.read_bytes() == b"".join(
        struct.pack(">qi", t, o - 100) for t, o in seg.time_index())
    assert seg.next_offset == 120 and seg.size == 10 * size
    seg.close()


def test_time_index_only_grows(tmp_path):
    seg = _seg(tmp_path, interval=0)
    for i, ts in enumerate([50, 40, 60, 60, 55, 70]):
        _append(seg, i, ts=ts)
    # interval 0: an index entry for every batch but the first; time entries only on growth
    assert [o for o, _ in seg.offset_index()] == [1, 2, 3, 4, 5]
    assert seg.time_index() == [(50, 0), (60, 2), (70, 5)]
    assert seg.max_timestamp_and_offset == (70, 5)
    seg.close()


def test_translate_offset_scans_forward_from_index(tmp_path):
    seg = _seg(tmp_path, interval=300)
    positions = {}
    pos = 0
    for i in range(40):
        positions[3 * i] = pos
        pos += _append(seg, 3 * i, n=3)
    for off in range(120):
        h = seg.translate_offset(off)
        assert h.base_offset == off - off % 3 and h.position == positions[h.base_offset]
    assert seg.translate_offset(120) is None
    seg.close()


def _fill(tmp_path, n=30):
    seg = _seg(tmp_path, interval=200)
    for i in range(n):
        _append(seg, i, ts=1000 + i)
    return seg


def test_recover_truncates_garbage_and_half_batch(tmp_path):
    seg = _fill(tmp_path)
    good = seg.size
    idx, tidx = seg.offset_index(), seg.time_index()
    seg.close()
    one = make_batch(1)
    for tail in (b"\x00" * 100, os.urandom(300), bytes(build_batch([(b"k", b"v" * 50, [], 1)]))[:70], bytes(one)[:20]):
        with open(seg.log_path, "ab") as f:
            f.write(tail)
        s2 = _seg(tmp_path, interval=200, create=False)
        assert s2.recover() == len(tail)
        assert s2.size == good == os.path.getsize(s2.log_path)
        assert s2.offset_index() == idx
        # recovery appends the final time index entry, as a clean close does
        assert s2.time_index()[: len(tidx)] == tidx
        assert s2.next_offset == 30
        _append(s2, 30)
        assert [h.base_offset for h in iter_batches(s2.log_path.read_bytes())] == list(range(31))
        s2.truncate_to(30)
        s2.close()


def test_recover_stops_at_bad_crc_in_the_middle(tmp_path):
    seg = _fill(tmp_path, 10)
    hs = list(iter_batches(seg.log_path.read_bytes()))
    seg.close()
    with open(seg.log_path, "r+b") as f:
        f.seek(hs[6].position + 70)
        b = f.read(1)
        f.seek(hs[6].position + 70)
        f.write(bytes([b[0] ^ 0xFF]))
    s2 = _seg(tmp_path, interval=200, create=False)
    assert s2.recover() == sum(h.size for h in hs[6:])
    assert s2.next_offset == 6
    s2.close()


def test_missing_index_is_rebuilt_identically(tmp_path):
    seg = _fill(tmp_path)
    seg.close()
    idx = seg.index_path.read_bytes()
    tidx = seg.timeindex_path.read_bytes()
    assert idx and tidx
    seg.index_path.unlink()
    s2 = _seg(tmp_path, interval=200, create=False)
    assert s2.translate_offset(17).base_offset == 17
    s2.close()
    assert seg.index_path.read_bytes() == idx
    assert seg.timeindex_path.read_bytes() == tidx


def test_preallocated_zero_tail_is_ignored(tmp_path):
    seg = _fill(tmp_path)
    seg.close()
    entries = seg.offset_index()
    with open(seg.index_path, "ab") as f:  # real Kafka preallocates the active index
        f.write(b"\x00" * 800)
    with open(seg.timeindex_path, "ab") as f:
        f.write(b"\x00" * 1200)
    s2 = _seg(tmp_path, interval=200, create=False)
    assert s2.offset_index() == entries
    for i in range(30, 45):
        _append(s2, i)
    s2.close()
    raw = seg.index_path.read_bytes()
    assert len(raw) == 8 * len(s2.offset_index()) and len(s2.offset_index()) > len(entries)
    assert raw == b"".join(struct.pack(">ii", o, p) for o, p in s2.offset_index())


def test_inconsistent_index_is_rebuilt(tmp_path):
    seg = _fill(tmp_path)
    seg.close()
    good = seg.index_path.read_bytes()
    # an entry pointing into the middle of a batch
    seg.index_path.write_bytes(good[:-8] + struct.pack(">ii", 25, 17))
    s2 = _seg(tmp_path, interval=200, create=False)
    assert s2.translate_offset(25).base_offset == 25
    s2.close()
    assert seg.index_path.read_bytes() == good


def test_truncate_to_removes_batch_and_entries(tmp_path):
    seg = _seg(tmp_path, interval=100)
    for i in range(20):
        _append(seg, 2 * i, n=2, ts=1000 + i)
    seg.truncate_to(21)  # inside the batch 20..21: that batch goes
    assert seg.next_offset == 20
    assert all(o < 21 for o, _ in seg.offset_index())
    assert all(o < 21 for _, o in seg.time_index())
    assert seg.max_timestamp == 1009
    assert os.path.getsize(seg.index_path) == 8 * seg.index_entries
    _append(seg, 20, ts=5)
    assert [h.base_offset for h in iter_batches(seg.log_path.read_bytes())][-2:] == [18, 20]
    seg.close()


def test_append_refuses_offsets_going_backwards(tmp_path):
    seg = _seg(tmp_path)
    _append(seg, 0, n=3)
    with pytest.raises(ValueError):
        _append(seg, 2)
    seg.close()


def test_segment_read_whole_batches(tmp_path):
    seg = _seg(tmp_path, interval=100)
    sizes = [_append(seg, i, value_size=10 * i) for i in range(10)]
    starts = [sum(sizes[:i]) for i in range(10)]
    assert seg.read(starts[2], sizes[2] + sizes[3] + sizes[4] - 1) == (starts[2], sizes[2] + sizes[3])
    assert seg.read(starts[2], sizes[2] - 1) == (starts[2], 0)
    assert seg.read(starts[2], sizes[2] - 1, min_one_message=True) == (starts[2], sizes[2])
    assert seg.read(0, 10**6) == (0, seg.size)
    seg.close()
