"""Compaction (storage/cleaner.py) on real segment files: newest value per
key at its original offset, tombstones kept delete.retention.ms then
removed, compressed batches rewritten, the active segment untouched, the
dirty-ratio / lag rules, crash-safe swaps, and a model-based property test."""

from __future__ import annotations

import os

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lm_helpers import SMALL, compact, latest_by_key, open_log, put, records

from pykbroker.protocol.records import (
    ATTR_DELETE_HORIZON,
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    iter_batches,
)
from pykbroker.storage.cleaner import (
    CLEANER_CHECKPOINT,
    LogCleaner,
    SegmentFile,
    clean_log,
    group_segments_by_size,
    log_to_clean,
)
from pykbroker.storage.log import PartitionLog

COMPACT = attrs.evolve(SMALL, cleanup_policy=("compact",), delete_retention_ms=1000)


def batches(log: PartitionLog):  # type: ignore[no-untyped-def]
    out = []
    for seg in log.segments:
        data = seg.log_path.read_bytes()
        out += [(seg.base_offset, h) for h in iter_batches(data)]
    return out


def test_newest_value_per_key_at_original_offsets(tmp_path):
    log = open_log(tmp_path, COMPACT)
    written = []
    for i in range(200):
        key = b"k%d" % (i % 7)
        put(log, [(key, b"v%d" % i)])
        written.append((i, key, b"v%d" % i))
    active_before = log.segments[-1].log_path.read_bytes()
    before = records(log)
    cleaned, end = compact(log)
    assert cleaned and end == log.segments[-1].base_offset
    after = records(log)
    # the active segment is never touched
    assert log.segments[-1].log_path.read_bytes() == active_before
    first_uncleanable = log.segments[-1].base_offset
    latest = {}
    for off, key, value in written:
        if off < first_uncleanable:
            latest[key] = (off, value)
    cleaned_part = [(r.offset, r.key, r.value) for r in after if r.offset < first_uncleanable]
    # each key at most once in the cleaned part: its newest record of the cleaned range,
    # unless a newer one sits in the active segment ... which Kafka's map does not see
    assert sorted(cleaned_part) == sorted((o, k, v) for k, (o, v) in latest.items())
    # the rest is unchanged
    assert [(r.offset, r.value) for r in after if r.offset >= first_uncleanable] == \
        [(r.offset, r.value) for r in before if r.offset >= first_uncleanable]
    # offsets are original (gaps are normal), strictly increasing
    offs = [r.offset for r in after]
    assert offs == sorted(set(offs))
    # the log end, start and high watermark are unchanged
    assert log.log_end_offset == 200 and log.log_start_offset == 0
    log.close()
    # and it all survives a reopen
    log = open_log(tmp_path, COMPACT)
    assert [(r.offset, r.value) for r in records(log)] == [(r.offset, r.value) for r in after]
    log.close()


def test_tombstones_kept_for_delete_retention_then_removed(tmp_path):
    log = open_log(tmp_path, COMPACT)
    for i in range(20):
        put(log, [(b"k%d" % (i % 5), b"v%d" % i)])
    put(log, [(b"k1", None)])  # tombstones
    put(log, [(b"k2", None)])
    for i in range(30):  # more data so the tombstones' segment is cleanable
        put(log, [(b"x%d" % (i % 3), b"y%d" % i)])
    t0 = 1_000_000
    cleaned, end = compact(log, now_ms=t0)
    assert cleaned
    recs = latest_by_key(records(log))
    assert recs[b"k1"].value is None and recs[b"k2"].value is None  # still there
    # the batches holding them carry the delete horizon (KIP-534): base timestamp = now + delete.retention.ms
    horizon_batches = [h for _, h in batches(log) if h.attributes & ATTR_DELETE_HORIZON]
    assert horizon_batches and all(h.base_timestamp == t0 + 1000 for h in horizon_batches)
    # record timestamps are unchanged by the horizon
    assert {r.timestamp for r in records(log)} == {1000}
    # before the horizon: kept
    for i in range(30):
        put(log, [(b"z%d" % (i % 3), b"w%d" % i)])
    cleaned, end = compact(log, now_ms=t0 + 999, checkpoint=end)
    assert cleaned
    assert b"k1" in latest_by_key(records(log))
    # after it: gone
    for i in range(30):
        put(log, [(b"z%d" % (i % 3), b"w%d" % i)])
    cleaned, end = compact(log, now_ms=t0 + 1000, checkpoint=end)
    assert cleaned
    keys = latest_by_key(records(log))
    assert b"k1" not in keys and b"k2" not in keys
    assert keys[b"k0"].value is not None
    log.close()


def test_compressed_batches_are_rewritten_with_their_codec(tmp_path):
    log = open_log(tmp_path, attrs.evolve(COMPACT, segment_bytes=900))
    codecs = [COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD, COMPRESSION_NONE]
    for i in range(60):
        c = codecs[i % len(codecs)]
        put(log, [(b"a", b"a%d" % i), (b"b%d" % (i % 4), b"b%d" % i), (b"c", b"c%d" % i)], codec=c)
    raw_codecs = {h.base_offset: h.compression for _, h in batches(log)}
    cleaned, _ = compact(log)
    assert cleaned
    after = batches(log)
    for _, h in after:
        assert h.compression == raw_codecs[h.base_offset]  # same codec, same base offset
    got = latest_by_key(records(log))
    assert got[b"a"].value == b"a59" and got[b"c"].value == b"c59"
    # some batches lost records and were rebuilt (recompressed) yet decode fine
    assert any(h.records_count < 3 for _, h in after)
    log.close()


def test_keyless_records_go(tmp_path):
    log = open_log(tmp_path, SMALL)  # written while the topic was not compacted
    for i in range(30):
        put(log, [(None if i % 2 else b"k", b"v%d" % i)])
    log.config = COMPACT
    compact(log)
    cleaned_part = [r for r in records(log) if r.offset < log.segments[-1].base_offset]
    assert all(r.key is not None for r in cleaned_part)
    log.close()


def test_dirty_ratio_and_compaction_lags(tmp_path):
    log = open_log(tmp_path, attrs.evolve(COMPACT, min_cleanable_dirty_ratio=0.99))
    for i in range(40):
        put(log, [(b"k%d" % (i % 3), b"v%d" % i)], ts=1000 + i)
    cleaner = LogCleaner([tmp_path], isolation="thread")
    logs = {("topic", 0): log}
    # never cleaned: everything inactive is dirty, ratio 1.0 > 0.99
    ltc = cleaner.grab_filthiest(logs, now_ms=10_000)
    assert ltc is not None and ltc.cleanable_ratio == 1.0
    # after a clean, a little new dirty data is below the ratio
    compact(log)
    cleaner.checkpoints[("topic", 0)] = log.segments[-1].base_offset
    for i in range(5):
        put(log, [(b"k%d" % (i % 3), b"n%d" % i)], ts=2000 + i)
    assert cleaner.grab_filthiest(logs, now_ms=10_000) is None
    # ... unless max.compaction.lag.ms says a dirty segment waited too long
    log.config = attrs.evolve(log.config, max_compaction_lag_ms=5000)
    ltc = cleaner.grab_filthiest(logs, now_ms=2000 + 5001)
    assert ltc is not None and ltc.need_compaction_now
    # min.compaction.lag.ms: segments with recent records are not cleanable yet
    log.config = attrs.evolve(log.config, min_cleanable_dirty_ratio=0.0, min_compaction_lag_ms=1000)
    ltc = log_to_clean(("topic", 0), log, cleaner.checkpoints[("topic", 0)], now_ms=1500)
    assert ltc.cleanable_bytes == 0  # the dirty segment's records (ts 1032..1039) are < 1 s old
    ltc = log_to_clean(("topic", 0), log, cleaner.checkpoints[("topic", 0)], now_ms=10_000)
    assert ltc.cleanable_bytes > 0
    # a checkpoint beyond the log end resets to the log start offset
    ltc = log_to_clean(("topic", 0), log, 10**9, now_ms=10_000)
    assert ltc.first_dirty == log.log_start_offset and ltc.force_checkpoint
    log.close()


def test_max_compaction_lag_rolls_the_active_segment(tmp_path):
    log = open_log(tmp_path, attrs.evolve(COMPACT, segment_bytes=10**6, max_compaction_lag_ms=100))
    put(log, [(b"k", b"1")], ts=1000, now_ms=1000)
    put(log, [(b"k", b"2")], ts=1050, now_ms=1050)
    assert len(log.segments) == 1
    put(log, [(b"k", b"3")], ts=1101, now_ms=1101)  # > max.compaction.lag.ms after the first batch
    assert len(log.segments) == 2
    log.close()


def test_offset_map_full_cleans_in_rounds(tmp_path):
    log = open_log(tmp_path, COMPACT)
    for i in range(120):
        put(log, [(b"k%d" % i, b"v")])  # all distinct keys
    for i in range(120):
        put(log, [(b"k%d" % i, b"w")])
    first_uncleanable = log.segments[-1].base_offset
    cleaned, end = compact(log, max_map_entries=50)
    assert cleaned and end < first_uncleanable
    rounds = 1
    while end < first_uncleanable and rounds < 20:
        cleaned, end = compact(log, checkpoint=end, max_map_entries=50)
        rounds += 1
    assert rounds > 1 and end == first_uncleanable
    got = latest_by_key(records(log))
    assert all(r.value == b"w" for r in got.values())
    log.close()


def test_group_segments_by_size():
    segs = [SegmentFile(i * 10, 100, 8, 12, 0) for i in range(7)]
    groups = group_segments_by_size(segs, 250, 10**6, 70)
    assert [[s.base for s in g] for g in groups] == [[0, 10], [20, 30], [40, 50], [60]]
    groups = group_segments_by_size(segs, 10**6, 20, 70)  # index size bound
    assert [len(g) for g in groups] == [1] * 7  # 8 + 8 <= 20, but 12 + 12 > 20


def test_interrupted_swap_is_completed_on_open(tmp_path):
    log = open_log(tmp_path, COMPACT)
    for i in range(60):
        put(log, [(b"k%d" % (i % 4), b"v%d" % i)])
    ltc = log_to_clean(("topic", 0), log, None, 10_000)
    cleaner = LogCleaner([tmp_path], isolation="thread")
    job, objs = cleaner.make_job(ltc, 10_000)
    result = clean_log(job)
    g = result.groups[0]
    # crash right after the cleaned files became ".swap": old segments still there
    for suffix in (".log", ".index", ".timeindex"):
        src = log.dir / ("%020d%s.cleaned" % (g.base, suffix))
        os.rename(src, log.dir / ("%020d%s.swap" % (g.base, suffix)))
    log.close()  # the other groups' ".cleaned" files are left behind: removed at open
    log = open_log(tmp_path, COMPACT)
    names = os.listdir(log.dir)
    assert not any(n.endswith((".swap", ".cleaned")) for n in names)
    # the swapped segment replaced every segment of its range
    bases = [s.base_offset for s in log.segments]
    assert g.base in bases and not any(b in bases for b in g.sources if b != g.base)
    recs = records(log)
    offs = [r.offset for r in recs]
    assert offs == sorted(set(offs)) and log.log_end_offset == 60
    got = latest_by_key(recs)
    assert {k: r.value for k, r in got.items()} == {b"k%d" % i: b"v%d" % (56 + i) for i in range(4)}
    log.close()


def test_swap_refused_when_segments_changed(tmp_path):
    from pykbroker.storage import retention
    from pykbroker.storage.cleaner import discard_cleaned, open_cleaned

    log = open_log(tmp_path, attrs.evolve(COMPACT, cleanup_policy=("compact", "delete"), retention_ms=1))
    for i in range(40):
        put(log, [(b"k%d" % (i % 4), b"v%d" % i)])
    ltc = log_to_clean(("topic", 0), log, None, 10_000)
    cleaner = LogCleaner([tmp_path], isolation="thread")
    job, objs = cleaner.make_job(ltc, 10_000)
    result = clean_log(job)
    retention.delete_old_segments(log, now_ms=10**9)  # meanwhile retention removed them
    g = result.groups[0]
    new = open_cleaned(job.dir, g, index_interval_bytes=job.index_interval_bytes,
                       segment_index_bytes=job.segment_index_bytes)
    assert not log.replace_segments(new, [objs[b] for b in g.sources])
    new.close()
    for g in result.groups:
        discard_cleaned(job.dir, g.base)
    assert not any(n.endswith(".cleaned") for n in os.listdir(log.dir))
    log.close()


def test_timestamp_lookups_after_compaction(tmp_path):
    log = open_log(tmp_path, COMPACT)
    for i in range(50):
        put(log, [(b"k%d" % (i % 5), b"v%d" % i)], ts=10_000 + i * 10)
    compact(log)
    recs = records(log)
    for target in (0, 10_000, 10_155, 10_300, 10_400):
        want = next(((r.offset, r.timestamp) for r in recs if r.timestamp >= target), None)
        assert log.offset_for_timestamp(target) == want
    ts, off = log.max_timestamp()
    assert ts == max(r.timestamp for r in recs) and off == next(r.offset for r in recs if r.timestamp == ts)
    log.close()


def test_producer_last_batch_and_round_end_kept_empty(tmp_path):
    log = open_log(tmp_path, COMPACT)
    for i in range(30):
        put(log, [(b"k", b"v%d" % i)], producer_id=7 if i == 10 else -1)
    first_uncleanable = log.segments[-1].base_offset
    compact(log)
    hs = {h.base_offset: h for _, h in batches(log)}
    assert 10 in hs and hs[10].records_count == 0 and hs[10].producer_id == 7  # producer state kept
    last = max(b for b in hs if b < first_uncleanable)
    assert hs[last].next_offset == first_uncleanable  # the round's last batch stays
    log.close()


def test_cleaner_checkpoint_file(tmp_path):
    from pykbroker.storage.checkpoints import read_offset_checkpoint

    c = LogCleaner([tmp_path], isolation="thread")
    c.checkpoints[("a", 0)] = 5
    c.checkpoints[("gone", 1)] = 9
    c.write_checkpoint(tmp_path, {("a", 0): tmp_path})
    assert read_offset_checkpoint(tmp_path / CLEANER_CHECKPOINT) == {("a", 0): 5}
    assert LogCleaner([tmp_path], isolation="thread").checkpoints == {("a", 0): 5}


# --- model-based: compaction never loses the newest value of a key ----------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 6), st.booleans(), st.sampled_from([0, 1, 3, 4])),
        st.tuples(st.just("clean"), st.integers(0, 3000), st.just(False), st.just(0)),
        st.tuples(st.just("roll"), st.just(0), st.just(False), st.just(0)),
    ),
    min_size=5, max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_compaction_model(tmp_path_factory, script):
    root = tmp_path_factory.mktemp("model")
    log = open_log(root, attrs.evolve(COMPACT, segment_bytes=400, delete_retention_ms=500))
    written: list[tuple[int, bytes, bytes | None]] = []
    checkpoint = None
    now = 10_000
    for op, a, tomb, codec in script:
        if op == "put":
            key = b"k%d" % a
            value = None if tomb else b"v%d" % len(written)
            r = put(log, [(key, value)], codec=codec)
            written.append((r.base_offset, key, value))
        elif op == "roll":
            log.roll()
        else:
            now += a
            cleaned, end = compact(log, now_ms=now, checkpoint=checkpoint)
            if cleaned:
                checkpoint = end
        recs = records(log)
        offs = [r.offset for r in recs]
        assert offs == sorted(set(offs))
        # every key's newest record survives, with its value, unless it is a
        # tombstone (which may go once its horizon passed)
        newest = {}
        for off, key, value in written:
            newest[key] = (off, value)
        got = {r.key: (r.offset, r.value) for r in recs}
        for key, (off, value) in newest.items():
            if value is None:
                assert key not in got or got[key] == (off, None)
            else:
                assert got.get(key) == (off, value)
        # nothing that was never written appears
        assert set((r.offset, r.key, r.value) for r in recs) <= set(written)
    log.close()


def test_aborted_transactions_never_supersede_committed_records(tmp_path):
    """An aborted transactional record newer than a committed one for the
    same key must not make the cleaner drop the committed one; the cleaned
    segment keeps the aborted-transaction index entries."""
    import struct

    from pykbroker.protocol.records import build_batch, validate_batches
    from pykbroker.storage.txn_index import AbortedTxn, AbortedTxnIndex, read_file, txnindex_path

    log = open_log(tmp_path, COMPACT)
    put(log, [(b"k", b"committed")])  # offset 0

    def append_raw(data: bytes) -> int:
        buf = bytearray(data)
        res = log.append(buf, validate_batches(bytes(buf), max_batch_bytes=None, client=False),
                         leader_epoch=0, now_ms=10_000)
        log.high_watermark = log.log_end_offset
        return res.base_offset

    first = append_raw(build_batch([(b"k", b"aborted", [], 1000)], transactional=True, producer_id=9,
                                   producer_epoch=0, base_sequence=0))
    marker = append_raw(build_batch([(struct.pack(">hh", 0, 0), struct.pack(">hi", 0, 1), [], 1000)],
                                    transactional=True, control=True, producer_id=9, producer_epoch=0))
    seg_base = log.segments[-1].base_offset
    AbortedTxnIndex(log.dir).append(seg_base, AbortedTxn(9, first, marker, marker + 1))
    for i in range(40):
        put(log, [(b"other%d" % (i % 3), b"x%d" % i)])
    assert compact(log)[0]
    recs = records(log)
    assert (0, b"k", b"committed") in [(r.offset, r.key, r.value) for r in recs]
    assert marker in [r.offset for r in recs]  # markers stay
    # the entry moved with the cleaned segment holding it
    entries = [e for s in log.segments for e in read_file(txnindex_path(log.dir, s.base_offset))]
    assert entries == [AbortedTxn(9, first, marker, marker + 1)]
    log.close()
