"""Record batch v2 codec, produce-path validation and offset assignment."""

from __future__ import annotations

import struct

import cramjam
import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykbroker.protocol import records as r
from pykbroker.protocol.records import (
    CORRUPT_MESSAGE,
    INVALID_RECORD,
    INVALID_TIMESTAMP,
    MESSAGE_TOO_LARGE,
    InvalidRecords,
    Record,
    assign_offsets,
    build_batch,
    decode_records,
    iter_batches,
    parse_batch_header,
    validate_batches,
)

CODECS = [r.COMPRESSION_NONE, r.COMPRESSION_GZIP, r.COMPRESSION_SNAPPY, r.COMPRESSION_LZ4, r.COMPRESSION_ZSTD]


def _code(fn, *args, **kw) -> int:
    with pytest.raises(InvalidRecords) as ei:
        fn(*args, **kw)
    return ei.value.error_code


def _simple(n: int = 3, **kw) -> bytes:
    return build_batch([(b"k%d" % i, b"value-%d" % i, [("h", b"x")], 1_000 + i) for i in range(n)], **kw)


def _recrc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return buf


# --- varints --------------------------------------------------------------------------


def test_varint_known_encodings():
    assert r.encode_varint(0) == b"\x00"
    assert r.encode_varint(-1) == b"\x01"
    assert r.encode_varint(1) == b"\x02"
    assert r.encode_varint(-64) == b"\x7f"
    assert r.encode_varint(64) == b"\x80\x01"
    assert r.encode_varint(300) == b"\xd8\x04"
    assert r.encode_varint(-(2**31)) == b"\xff\xff\xff\xff\x0f"
    assert r.encode_unsigned_varint(300) == b"\xac\x02"
    assert r.encode_varlong(-(2**63)) == b"\xff" * 9 + b"\x01"


@given(st.integers(-(2**31), 2**31 - 1))
def test_varint_roundtrip(n):
    enc = r.encode_varint(n)
    assert len(enc) == r.size_of_varint(n)
    assert r.decode_varint(enc + b"junk", 0) == (n, len(enc))


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_roundtrip(n):
    enc = r.encode_varlong(n)
    assert r.decode_varlong(enc, 0) == (n, len(enc))
    assert r.zigzag_decode(r.zigzag_encode(n)) == n


def test_varint_too_long_or_truncated():
    with pytest.raises(ValueError):
        r.decode_varint(b"\xff\xff\xff\xff\xff\x01", 0)
    with pytest.raises(ValueError):
        r.decode_varint(b"\x80", 0)


# --- build / decode round trip -------------------------------------------------------------

_bytes_or_none = st.one_of(st.none(), st.binary(max_size=300))
_record = st.tuples(
    _bytes_or_none,
    _bytes_or_none,
    st.lists(st.tuples(st.text(max_size=10), _bytes_or_none), max_size=3),
    st.integers(0, 2**45),
)


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(_record, min_size=1, max_size=20), base=st.integers(0, 2**40))
def test_roundtrip_every_codec(codec, recs, base):
    data = build_batch(recs, base_offset=base, compression=codec, producer_id=7, producer_epoch=1, base_sequence=3)
    h = parse_batch_header(data)
    assert h.size == len(data)
    assert h.compression == codec
    assert h.base_offset == base
    assert h.records_count == len(recs)
    assert h.last_offset_delta == len(recs) - 1
    assert h.base_timestamp == recs[0][3]
    assert h.max_timestamp == max(t for *_, t in recs)
    assert h.crc == crc32c.crc32c(data[21:])
    got = decode_records(data)
    assert got == [
        Record(base + i, ts, k, v, tuple((hk, hv) for hk, hv in hdrs)) for i, (k, v, hdrs, ts) in enumerate(recs)
    ]
    # the produce validation accepts it once the base offset is 0
    data0 = build_batch(recs, compression=codec, producer_id=7, producer_epoch=1, base_sequence=3)
    [v] = validate_batches(data0, max_batch_bytes=None)
    assert (v.position, v.size, v.records_count) == (0, len(data0), len(recs))


def test_build_from_records_keeps_offsets_and_empty_batch():
    recs = [Record(10, 5, b"a", b"1"), Record(13, 7, None, b"2", (("x", None),))]
    data = build_batch(recs, base_offset=10)
    assert parse_batch_header(data).last_offset_delta == 3
    assert decode_records(data) == recs
    empty = build_batch([], base_offset=20, last_offset_delta=4)
    h = parse_batch_header(empty)
    assert (h.records_count, h.last_offset, h.size) == (0, 24, 61)
    assert decode_records(empty) == []


def test_log_append_time_batch_gives_every_record_the_max_timestamp():
    data = build_batch([(b"a", b"1", [], 5), (b"b", b"2", [], 9)], timestamp_type=1, max_timestamp=1234)
    assert [x.timestamp for x in decode_records(data)] == [1234, 1234]


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_our_batches(codec):
    from kafka.record.default_records import DefaultRecordBatch

    recs = [(b"key", b"v" * 500, [("h1", b"x"), ("h2", None)], 1_700_000_000_000), (None, b"", [], 1_699_999_999_000)]
    batch = DefaultRecordBatch(bytearray(build_batch(recs, compression=codec, base_offset=42)))
    assert batch.validate_crc()
    got = [(x.offset, x.timestamp, x.key, x.value, list(x.headers)) for x in batch]
    assert got == [
        (42, 1_700_000_000_000, b"key", b"v" * 500, [("h1", b"x"), ("h2", None)]),
        (43, 1_699_999_999_000, None, b"", []),
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_we_read_kafka_python_batches(codec):
    from kafka.record.default_records import DefaultRecordBatchBuilder

    b = DefaultRecordBatchBuilder(2, codec, False, 99, 2, 17, 1 << 20)
    for i in range(30):
        b.append(i, 1_000 + 3 * i, b"k%d" % i, b"payload %d " % i * 20, [("n", b"%d" % i)])
    data = bytes(b.build())
    [h] = validate_batches(data, max_batch_bytes=None)
    assert (h.compression, h.producer_id, h.producer_epoch, h.base_sequence, h.records_count) == (codec, 99, 2, 17, 30)
    got = decode_records(data)
    assert [x.offset for x in got] == list(range(30))
    assert got[29] == Record(29, 1_087, b"k29", b"payload 29 " * 20, (("n", b"29"),))


def test_snappy_variants():
    raw_records = r.encode_record(0, 0, b"k", b"v" * 100)
    ours = build_batch([(b"k", b"v" * 100, [], 0)], compression=r.COMPRESSION_SNAPPY)
    assert ours[61:69] == r.XERIAL_MAGIC  # Java's SnappyOutputStream framing
    # librdkafka writes a raw snappy block
    assert r.decompress(2, bytes(cramjam.snappy.compress_raw(raw_records))) == raw_records
    # the official framing format is accepted too
    assert r.decompress(2, bytes(cramjam.snappy.compress(raw_records))) == raw_records
    # xerial with several chunks
    big = bytes(range(256)) * 600
    assert r.decompress(2, r.compress(2, big)) == big


def test_zstd_frame_without_content_size():
    zstandard = pytest.importorskip("zstandard")
    payload = r.encode_record(0, 0, b"k", b"zz" * 1000)
    cobj = zstandard.ZstdCompressor().compressobj()
    frame = cobj.compress(payload) + cobj.flush()
    assert r.decompress(4, frame) == payload


def test_lz4_frame_is_block_independent():
    frame = r.compress(3, b"x" * 200_000)
    assert frame[:4] == b"\x04\x22\x4d\x18"
    assert frame[4] & 0x20  # FLG block independence: required by Kafka's Lz4BlockInputStream


def test_corrupt_compressed_payload():
    data = bytearray(build_batch([(b"k", b"v" * 50, [], 1)], compression=r.COMPRESSION_GZIP))
    data[70:80] = b"\x00" * 10
    assert _code(decode_records, _recrc(data)) == CORRUPT_MESSAGE


def test_malformed_record_structure():
    data = bytearray(build_batch([(b"k", b"v", [], 1)]))
    struct.pack_into(">i", data, 57, 2)  # claims 2 records, holds 1
    assert _code(decode_records, _recrc(data)) == INVALID_RECORD


# --- iter_batches ---------------------------------------------------------------------------


def test_iter_batches_stops_at_partial_tail():
    a, b = _simple(2), _simple(5)
    buf = a + b + b[:30]
    hs = list(iter_batches(buf))
    assert [(h.position, h.size, h.records_count) for h in hs] == [(0, len(a), 2), (len(a), len(b), 5)]
    assert list(iter_batches(a[:11])) == []
    bad = bytearray(a)
    struct.pack_into(">i", bad, 8, 20)
    assert _code(lambda: list(iter_batches(bytes(bad)))) == CORRUPT_MESSAGE


# --- validate_batches -------------------------------------------------------------------------


def test_validate_accepts_one_batch():
    data = _simple(4)
    [h] = validate_batches(data, max_batch_bytes=len(data))
    assert (h.base_offset, h.last_offset_delta, h.records_count, h.position) == (0, 3, 4, 0)


@pytest.mark.parametrize("data", [b"", None])
def test_validate_empty_is_invalid_record(data):
    assert _code(validate_batches, data, max_batch_bytes=None) == INVALID_RECORD


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(1, 200))
def test_validate_truncated_single_batch(cut):
    data = _simple(5)
    cut = cut % len(data)
    if cut == 0:
        return
    # not even one whole batch: Kafka's "must have at least one record batch"
    assert _code(validate_batches, data[:cut], max_batch_bytes=None) in (INVALID_RECORD, CORRUPT_MESSAGE)
    if cut >= 12:
        assert _code(validate_batches, data[:cut], max_batch_bytes=None) == INVALID_RECORD


def test_validate_trailing_partial_batch_is_corrupt():
    data = _simple(2)
    assert _code(validate_batches, data + data[:20], max_batch_bytes=None, client=False) == CORRUPT_MESSAGE
    assert _code(validate_batches, data + b"\x00" * 5, max_batch_bytes=None) == CORRUPT_MESSAGE


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_validate_any_flip_under_the_crc_is_corrupt(data):
    batch = bytearray(_simple(3, compression=data.draw(st.sampled_from(CODECS))))
    pos = data.draw(st.integers(21, len(batch) - 1))
    bit = data.draw(st.integers(0, 7))
    batch[pos] ^= 1 << bit
    assert _code(validate_batches, bytes(batch), max_batch_bytes=None) == CORRUPT_MESSAGE


def test_validate_wrong_stored_crc():
    batch = bytearray(_simple(1))
    batch[17] ^= 0xFF
    e = pytest.raises(InvalidRecords, validate_batches, bytes(batch), max_batch_bytes=None).value
    assert e.error_code == CORRUPT_MESSAGE and "crc" in str(e)


@pytest.mark.parametrize("magic", [0, 1, 3])
def test_validate_rejects_other_magic_with_invalid_record(magic):
    batch = bytearray(_simple(1))
    batch[16] = magic
    assert _code(validate_batches, bytes(batch), max_batch_bytes=None) == INVALID_RECORD


def test_validate_legacy_message_set():
    # a magic v1 message: offset, size, crc, magic 1, attributes, timestamp, key, value
    body = struct.pack(">bbq", 1, 0, 1234) + struct.pack(">i", -1) + struct.pack(">i", 3) + b"abc"
    msg = struct.pack(">I", 0) + body
    data = struct.pack(">qi", 0, len(msg)) + msg
    assert _code(validate_batches, data, max_batch_bytes=None) == INVALID_RECORD


def test_validate_length_too_small():
    batch = bytearray(_simple(1))
    struct.pack_into(">i", batch, 8, 10)  # < 14: corrupt framing
    assert _code(validate_batches, bytes(batch), max_batch_bytes=None) == CORRUPT_MESSAGE
    small = bytearray(batch[:12 + 40])
    struct.pack_into(">i", small, 8, 40)  # 14 <= 40 < 49: too small for a v2 batch
    small[16] = 2
    assert _code(validate_batches, bytes(small), max_batch_bytes=None) == CORRUPT_MESSAGE


def test_validate_too_large_checked_before_crc():
    data = _simple(3)
    assert _code(validate_batches, data, max_batch_bytes=len(data) - 1) == MESSAGE_TOO_LARGE
    bad = bytearray(data)
    bad[-1] ^= 1
    assert _code(validate_batches, bytes(bad), max_batch_bytes=len(data) - 1) == MESSAGE_TOO_LARGE


def test_validate_client_rules():
    a, b = _simple(1), _simple(2)
    assert _code(validate_batches, a + b, max_batch_bytes=None) == INVALID_RECORD  # one batch per partition
    assert [h.position for h in validate_batches(a + b, max_batch_bytes=None, client=False)] == [0, len(a)]
    assert _code(validate_batches, _simple(1, base_offset=5), max_batch_bytes=None) == INVALID_RECORD
    mismatch = _recrc(bytearray(_simple(3)))
    struct.pack_into(">i", mismatch, 57, 2)
    assert _code(validate_batches, bytes(_recrc(mismatch)), max_batch_bytes=None) == INVALID_RECORD
    control = build_batch([(b"\x00\x00\x00\x00", b"", [], 1)], control=True)
    assert _code(validate_batches, control, max_batch_bytes=None) == INVALID_RECORD
    no_seq = build_batch([(b"k", b"v", [], 1)], producer_id=5, producer_epoch=0, base_sequence=-1)
    assert _code(validate_batches, no_seq, max_batch_bytes=None) == INVALID_RECORD
    assert validate_batches(no_seq, max_batch_bytes=None, client=False)


def test_validate_timestamps():
    now = 10_000_000
    future = build_batch([(b"k", b"v", [], now + 3_600_001)])
    assert _code(validate_batches, future, max_batch_bytes=None, now_ms=now) == INVALID_TIMESTAMP
    assert validate_batches(future, max_batch_bytes=None)  # unchecked without now_ms
    ok = build_batch([(b"k", b"v", [], now + 3_600_000)])
    assert validate_batches(ok, max_batch_bytes=None, now_ms=now)
    old = build_batch([(b"k", b"v", [], now - 1001)])
    code = _code(validate_batches, old, max_batch_bytes=None, now_ms=now, timestamp_before_max_ms=1000)
    assert code == INVALID_TIMESTAMP
    lat = build_batch([(b"k", b"v", [], now)], timestamp_type=1)
    assert _code(validate_batches, lat, max_batch_bytes=None, now_ms=now, log_append_time=True) == INVALID_TIMESTAMP


# --- assign_offsets -------------------------------------------------------------------------------


def test_assign_offsets_patches_header_without_touching_crc():
    a, b = _simple(3), _simple(2, compression=r.COMPRESSION_LZ4)
    buf = bytearray(a + b)
    hs = validate_batches(bytes(buf), max_batch_bytes=None, client=False)
    last = assign_offsets(buf, hs, 1000, partition_leader_epoch=7, log_append_time=None)
    assert last == 1004
    hs2 = validate_batches(bytes(buf), max_batch_bytes=None, client=False)  # CRCs still valid
    assert [(h.base_offset, h.last_offset, h.partition_leader_epoch) for h in hs2] == [(1000, 1002, 7), (1003, 1004, 7)]
    assert [h.crc for h in hs2] == [h.crc for h in hs]
    assert [x.offset for x in decode_records(buf, hs2[1].position)] == [1003, 1004]


def test_assign_offsets_log_append_time_rewrites_max_timestamp_and_crc():
    buf = bytearray(_simple(3, compression=r.COMPRESSION_GZIP))
    hs = validate_batches(bytes(buf), max_batch_bytes=None)
    assign_offsets(buf, hs, 50, partition_leader_epoch=0, log_append_time=777)
    [h] = validate_batches(bytes(buf), max_batch_bytes=None, client=False)
    assert (h.timestamp_type, h.max_timestamp, h.base_timestamp) == (1, 777, 1000)
    assert h.crc != hs[0].crc
    assert [(x.offset, x.timestamp) for x in decode_records(buf)] == [(50, 777), (51, 777), (52, 777)]


def test_assign_offsets_clears_producer_log_append_time_bit_on_create_time_topic():
    buf = bytearray(build_batch([(b"k", b"v", [], 5)], timestamp_type=1, max_timestamp=5))
    hs = validate_batches(bytes(buf), max_batch_bytes=None)
    assign_offsets(buf, hs, 0, partition_leader_epoch=0, log_append_time=None)
    [h] = validate_batches(bytes(buf), max_batch_bytes=None)
    assert h.timestamp_type == 0 and h.max_timestamp == 5
