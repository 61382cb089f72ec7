"""Record-level produce-path work (storage/convert.py): keyless records on
compacted topics, compression.type recompression, levels, timestamps."""

from __future__ import annotations

import attrs
import pytest
from lm_helpers import SMALL, open_log

from pykbroker.protocol.records import (
    COMPRESSION_GZIP,
    COMPRESSION_LZ4,
    COMPRESSION_NONE,
    COMPRESSION_SNAPPY,
    COMPRESSION_ZSTD,
    INVALID_RECORD,
    MESSAGE_TOO_LARGE,
    InvalidRecords,
    build_batch,
    decode_records,
    iter_batches,
    validate_batches,
)
from pykbroker.storage.convert import RecordErrors, convert_batches, needs_conversion, validate_records
from pykbroker.storage.log_config import LogConfig

CODECS = {"uncompressed": COMPRESSION_NONE, "gzip": COMPRESSION_GZIP, "snappy": COMPRESSION_SNAPPY,
          "lz4": COMPRESSION_LZ4, "zstd": COMPRESSION_ZSTD}


def batch(recs, **kw) -> bytes:  # type: ignore[no-untyped-def]
    return build_batch([(k, v, [("h", b"x")], 1000 + i) for i, (k, v) in enumerate(recs)], **kw)


def test_compacted_topic_rejects_keyless_records_as_kafka():
    data = batch([(b"a", b"1"), (None, b"2"), (b"c", b"3"), (None, b"4")], compression=COMPRESSION_LZ4)
    headers = validate_batches(data, max_batch_bytes=None)
    config = LogConfig(cleanup_policy=("compact",))
    with pytest.raises(RecordErrors) as e:
        validate_records(data, headers, config, "orders-3")
    err = e.value
    assert err.error_code == INVALID_RECORD
    msg = "Compacted topic cannot accept message without key in topic partition orders-3"
    assert err.record_errors == [(1, msg), (3, msg)]
    assert str(err) == (
        "One or more records have been rejected due to 2 record errors in total, and only showing the first "
        f"three errors at most: [RecordError(batchIndex=1, message='{msg}'), "
        f"RecordError(batchIndex=3, message='{msg}')]")
    validate_records(data, headers, LogConfig(), "orders-3")  # not compacted: fine


def test_log_validate_checks_keys_on_compacted_topics(tmp_path):
    log = open_log(tmp_path, attrs.evolve(SMALL, cleanup_policy=("compact", "delete")))
    with pytest.raises(RecordErrors):
        log.validate(batch([(None, b"x")]))
    assert log.validate(batch([(b"k", None)]))  # a tombstone has a key: fine
    log.close()


@pytest.mark.parametrize("source", list(CODECS))
@pytest.mark.parametrize("target", list(CODECS))
def test_recompression_to_the_topic_codec(tmp_path, source, target):
    config = attrs.evolve(SMALL, segment_bytes=10**6, compression_type=target)
    log = open_log(tmp_path, config, name=f"t-{source}-{target}-0")
    data = bytearray(batch([(b"k%d" % i, b"value-%d" % i * 3) for i in range(20)], compression=CODECS[source],
                           producer_id=42, producer_epoch=3, base_sequence=7))
    headers = validate_batches(bytes(data), max_batch_bytes=None)
    assert needs_conversion(config, headers) == (source != target)
    res = log.append(data, headers, leader_epoch=0, now_ms=5000)
    stored = log.segments[0].log_path.read_bytes()
    [h] = list(iter_batches(stored))
    assert h.compression == CODECS[target]
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (42, 3, 7)
    assert (h.base_offset, h.last_offset, h.records_count) == (res.base_offset, res.last_offset, 20)
    validate_batches(stored, max_batch_bytes=None, client=False)  # CRC valid
    recs = decode_records(stored)
    assert [(r.offset, r.key, r.value, r.timestamp, r.headers) for r in recs] == [
        (i, b"k%d" % i, b"value-%d" % i * 3, 1000 + i, (("h", b"x"),)) for i in range(20)]
    log.close()


def test_producer_keeps_the_batch_and_levels_apply(tmp_path):
    config = attrs.evolve(SMALL, segment_bytes=10**6)
    data = batch([(b"k", b"z" * 5000)], compression=COMPRESSION_SNAPPY)
    headers = validate_batches(data, max_batch_bytes=None)
    assert not needs_conversion(config, headers)  # compression.type=producer
    low = attrs.evolve(config, compression_type="zstd", compression_zstd_level=1)
    high = attrs.evolve(config, compression_type="zstd", compression_zstd_level=19)
    a, _ = convert_batches(data, headers, low, "t-0", 0)
    b, _ = convert_batches(data, headers, high, "t-0", 0)
    assert decode_records(bytes(a))[0].value == decode_records(bytes(b))[0].value == b"z" * 5000


def test_recompressed_batch_too_large(tmp_path):
    config = attrs.evolve(SMALL, compression_type="uncompressed", max_message_bytes=500)
    data = batch([(b"k", b"z" * 5000)], compression=COMPRESSION_ZSTD)
    headers = validate_batches(data, max_batch_bytes=500)
    with pytest.raises(InvalidRecords) as e:
        convert_batches(data, headers, config, "t-0", 0)
    assert e.value.error_code == MESSAGE_TOO_LARGE
    assert "in append to partition t-0 which exceeds the maximum configured size of 500" in str(e.value)


def test_log_append_time_with_recompression(tmp_path):
    config = attrs.evolve(SMALL, segment_bytes=10**6, compression_type="gzip",
                          message_timestamp_type="LogAppendTime")
    log = open_log(tmp_path, config)
    data = bytearray(batch([(b"a", b"1"), (b"b", b"2")]))
    headers = validate_batches(bytes(data), max_batch_bytes=None)
    res = log.append(data, headers, leader_epoch=0, now_ms=777_000)
    assert res.log_append_time == 777_000
    stored = log.segments[0].log_path.read_bytes()
    [h] = list(iter_batches(stored))
    assert h.compression == COMPRESSION_GZIP and h.timestamp_type == 1 and h.max_timestamp == 777_000
    assert [r.timestamp for r in decode_records(stored)] == [777_000, 777_000]
    log.close()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pykbroker.protocol.records import parse_batch_header  # noqa: E402
from pykbroker.storage.convert import reencode_offset, reencode_timestamp, split_records  # noqa: E402

record = st.tuples(st.one_of(st.none(), st.binary(max_size=300)), st.one_of(st.none(), st.binary(max_size=300)),
                   st.integers(-(2**40), 2**40))


@settings(max_examples=150, deadline=None)
@given(st.lists(record, min_size=1, max_size=150), st.sampled_from([0, 1, 2, 3, 4]))
def test_split_records_agrees_with_the_decoder(recs, codec):
    data = build_batch([(k, v, [("h", b"1")], ts) for k, v, ts in recs], compression=codec)
    h = parse_batch_header(data)
    split = split_records(data, h)
    full = decode_records(data)
    assert len(split) == len(full)
    for s, r in zip(split, full):
        assert s.key == r.key and s.has_value == (r.value is not None)
        assert h.base_offset + s.offset_delta == r.offset
        assert h.base_timestamp + s.timestamp_delta == r.timestamp
        # re-encoding keeps everything else
        moved = reencode_timestamp(s, s.timestamp_delta - 12345)
        moved_h = split_records(build_raw(moved), parse_batch_header(build_raw(moved)))[0]
        assert moved_h.timestamp_delta == s.timestamp_delta - 12345 and moved_h.key == s.key
        moved = reencode_offset(s, 7)
        assert split_records(build_raw(moved), parse_batch_header(build_raw(moved)))[0].offset_delta == 7


def build_raw(encoded: bytes) -> bytes:
    from pykbroker.storage.convert import build_batch_v2

    return bytes(build_batch_v2([encoded], base_offset=0, last_offset_delta=0, base_timestamp=0, max_timestamp=0))
