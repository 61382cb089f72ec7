"""Record-level produce validation (protocol/validator.py): what Kafka's
LogValidator rejects is rejected with its error code; what real clients
write passes; decompression never exceeds its bound."""

from __future__ import annotations

import struct
import time

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pykbroker.protocol import records as R
from pykbroker.protocol.validator import (
    MIN_RECORD_SIZE,
    UNSUPPORTED_COMPRESSION_TYPE,
    RecordErrors,
    decompress_bounded,
    max_decompressed_bytes,
    validate_records,
)

MAX = 1 << 20


def check(batch: bytes, **kw) -> None:
    headers = R.validate_batches(batch, max_batch_bytes=None)
    validate_records(batch, headers, max_message_bytes=kw.pop("max_message_bytes", MAX), **kw)


def reject(batch: bytes, code: int, **kw) -> R.InvalidRecords:
    with pytest.raises(R.InvalidRecords) as ei:
        check(batch, **kw)
    assert ei.value.error_code == code, ei.value
    return ei.value


def with_body(body: bytes, count: int, *, codec: int = 0, last_offset_delta: int | None = None,
              base_ts: int = 1000) -> bytes:
    """A v2 batch with a correct CRC around an arbitrary records block."""
    payload = R.compress(codec, body) if codec in (1, 2, 3, 4) else body
    size = R.BATCH_OVERHEAD + len(payload)
    buf = bytearray(size)
    R.BATCH_HEADER.pack_into(buf, 0, 0, size - 12, -1, 2, 0, codec, count - 1 if last_offset_delta is None
                             else last_offset_delta, base_ts, base_ts, -1, -1, -1, count)
    buf[R.BATCH_OVERHEAD:] = payload
    struct.pack_into(">I", buf, R.OFF_CRC, R.batch_crc(buf, 0, size))
    return bytes(buf)


RECS = [(b"k%d" % i, b"v" * i, [("h", b"x"), ("n", None)], 1000 + i) for i in range(20)]


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_client_batches_pass(codec: int) -> None:
    check(R.build_batch(RECS, compression=codec))
    check(R.build_batch([(None, None, (), 5)], compression=codec))


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec_is_unsupported_compression_type(codec: int) -> None:
    body = R.build_batch(RECS)[R.BATCH_OVERHEAD:]
    reject(with_body(body, len(RECS), codec=codec), UNSUPPORTED_COMPRESSION_TYPE)


def test_garbage_zstd_is_corrupt_message() -> None:
    reject(with_body(b"\x28\xb5\x2f\xfd" + b"garbage" * 10, 1, codec=9 & 4 | 4) if False else
           _compressed_garbage(4), R.CORRUPT_MESSAGE)
    for codec in (1, 2, 3):
        reject(_compressed_garbage(codec), R.CORRUPT_MESSAGE)


def _compressed_garbage(codec: int) -> bytes:
    payload = {1: b"\x1f\x8b" + b"junk" * 8, 2: b"\xff" * 20, 3: b"\x04\x22\x4d\x18" + b"junk" * 8,
               4: b"\x28\xb5\x2f\xfd" + b"junk" * 8}[codec]
    size = R.BATCH_OVERHEAD + len(payload)
    buf = bytearray(size)
    R.BATCH_HEADER.pack_into(buf, 0, 0, size - 12, -1, 2, 0, codec, 0, 1, 1, -1, -1, -1, 1)
    buf[R.BATCH_OVERHEAD:] = payload
    struct.pack_into(">I", buf, R.OFF_CRC, R.batch_crc(buf, 0, size))
    return bytes(buf)


def test_records_corrupted_under_a_valid_crc() -> None:
    good = R.build_batch(RECS)
    body = bytearray(good[R.BATCH_OVERHEAD:])
    body[0] = 0x7E  # first record's length now runs far past its end
    reject(with_body(bytes(body), len(RECS)), R.INVALID_RECORD)


def test_huge_record_count_is_invalid_record() -> None:
    body = R.build_batch(RECS[:1])[R.BATCH_OVERHEAD:]
    reject(with_body(body, 2**31 - 1), R.INVALID_RECORD)
    # compressed: rejected before decompressing anything
    reject(with_body(body, 2**31 - 1, codec=4), R.MESSAGE_TOO_LARGE)


def test_count_matches_header_but_not_records() -> None:
    body = R.build_batch(RECS[:3])[R.BATCH_OVERHEAD:]
    reject(with_body(body, 4), R.INVALID_RECORD)  # fewer records than declared
    reject(with_body(body, 2), R.INVALID_RECORD)  # bytes left after the records
    reject(with_body(body, 4, codec=1), R.INVALID_RECORD)
    reject(with_body(body, 2, codec=1), R.INVALID_RECORD)


def test_offset_deltas_must_be_consecutive() -> None:
    recs = [R.encode_record(d, 0, b"k", b"v") for d in (0, 2, 3)]
    reject(with_body(b"".join(recs), 3), R.INVALID_RECORD)
    reject(with_body(b"".join(recs), 3, codec=3), R.INVALID_RECORD)


def test_negative_header_key_and_value_lengths() -> None:
    rec = bytearray(R.encode_record(0, 0, b"k", b"v", [("hk", b"hv")]))
    # the header key length varint follows the header count: patch it to -2
    i = rec.index(b"hk") - 1
    rec[i] = R.zigzag_encode(-5) & 0x7F
    reject(with_body(bytes(rec), 1), R.INVALID_RECORD)
    rec2 = R.encode_varint(7) + b"\x00\x00\x00" + R.encode_varint(-3) + b"\x00\x00\x00"
    reject(with_body(rec2, 1), R.INVALID_RECORD)


def test_compacted_topic_needs_keys() -> None:
    batch = R.build_batch([(b"k", b"v", (), 1), (None, b"v", (), 2), (None, b"v", (), 3)], compression=1)
    e = reject(batch, R.INVALID_RECORD, compact=True, partition="t-0")
    assert isinstance(e, RecordErrors)
    assert [i for i, _ in e.record_errors] == [1, 2]
    check(batch)  # fine when not compacted


def test_record_timestamps_checked_when_create_time() -> None:
    now = int(time.time() * 1000)
    recs = [(b"k", b"v", (), now), (b"k", b"v", (), now + 10 * 3600_000)]
    batch = R.build_batch(recs, max_timestamp=now)  # the header hides the future record
    e = reject(batch, R.INVALID_TIMESTAMP, now_ms=now, timestamp_after_max_ms=3600_000)
    assert [i for i, _ in e.record_errors] == [1]
    check(batch)  # not checked without now_ms (LogAppendTime topics)


def test_bomb_is_bounded() -> None:
    limit = max_decompressed_bytes(MAX)
    for codec, comp in ((4, cramjam.zstd.compress(b"\0" * (256 << 20))),
                        (1, cramjam.gzip.compress(b"\0" * (64 << 20)))):
        t0 = time.perf_counter()
        with pytest.raises(R.InvalidRecords) as ei:
            decompress_bounded(codec, bytes(comp), limit)
        assert ei.value.error_code == R.MESSAGE_TOO_LARGE
        assert time.perf_counter() - t0 < 5
    # a snappy block declaring a huge length is refused before decompressing
    fake = R.encode_unsigned_varint(1 << 31) + b"\x00" * 10
    with pytest.raises(R.InvalidRecords) as ei:
        decompress_bounded(2, fake, limit)
    assert ei.value.error_code == R.MESSAGE_TOO_LARGE


def test_bomb_batch_rejected_as_message_too_large() -> None:
    body = b"\0" * (64 << 20)
    batch = with_body(body, 1, codec=4)
    reject(batch, R.MESSAGE_TOO_LARGE)


records_st = st.lists(
    st.tuples(st.one_of(st.none(), st.binary(max_size=40)), st.one_of(st.none(), st.binary(max_size=200)),
              st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=20))), max_size=3),
              st.integers(0, 2**40)),
    min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(records_st, st.sampled_from([0, 1, 2, 3, 4]))
def test_any_client_batch_passes(recs, codec) -> None:
    check(R.build_batch(recs, compression=codec))


@settings(max_examples=300, deadline=None)
@given(records_st, st.integers(0, 10_000), st.integers(0, 255), st.sampled_from([0, 1, 4]))
def test_mutated_records_never_pass_undecodable(recs, where, value, codec) -> None:
    """Flip a byte in the records block (CRC fixed up): either the validator
    rejects it with a Kafka code, or every record still decodes."""
    good = R.build_batch(recs)
    body = bytearray(good[R.BATCH_OVERHEAD:])
    body[where % len(body)] = value
    batch = with_body(bytes(body), len(recs), codec=codec)
    try:
        check(batch)
    except R.InvalidRecords as e:
        assert e.error_code in (R.INVALID_RECORD, R.CORRUPT_MESSAGE, R.MESSAGE_TOO_LARGE)
        return
    out = R.decode_records(batch)
    assert [r.offset for r in out] == list(range(len(recs)))


def test_min_record_size() -> None:
    assert len(R.encode_record(0, 0, None, None)) == MIN_RECORD_SIZE
