"""__consumer_offsets record formats and the group -> partition mapping,
checked against values Kafka computes."""

from __future__ import annotations

import struct

from hypothesis import given, strategies as st

from pykbroker.group import records
from pykbroker.group.records import OffsetAndMetadata


def test_java_string_hash():
    # values of java.lang.String.hashCode()
    assert records.java_string_hash("") == 0
    assert records.java_string_hash("a") == 97
    assert records.java_string_hash("hello") == 99162322
    assert records.java_string_hash("polygenelubricants") == -2147483648
    assert records.java_string_hash("\U0001F600") == 0xD83D * 31 + 0xDE00  # a surrogate pair: two units


def test_partition_for_matches_kafka():
    # Utils.abs(hashCode) % 50; Utils.abs(MIN_VALUE) == 0
    assert records.partition_for("polygenelubricants", 50) == 0
    assert records.partition_for("hello", 50) == 99162322 % 50
    assert records.partition_for("my-group", 50) == abs(records.java_string_hash("my-group")) % 50


def test_offset_commit_record_bytes():
    key = records.offset_commit_key("g", "t", 3)
    # int16 key type 1, then group, topic (int16-length strings), partition
    assert key == struct.pack(">h", 1) + b"\x00\x01g" + b"\x00\x01t" + struct.pack(">i", 3)
    om = OffsetAndMetadata(42, 7, "meta", 1700000000000)
    value = records.offset_commit_value(om)
    assert value == (struct.pack(">hqi", 3, 42, 7) + b"\x00\x04meta" + struct.pack(">q", 1700000000000))
    # with an expire timestamp: version 1 (no leader epoch)
    v1 = records.offset_commit_value(OffsetAndMetadata(42, 7, "", 1, 99))
    assert v1 == struct.pack(">hq", 1, 42) + b"\x00\x00" + struct.pack(">qq", 1, 99)
    r = records.decode(key, value)
    assert (r.group, r.topic, r.partition, r.value) == ("g", "t", 3, om)
    assert records.decode(key, None).value is None  # tombstone


def test_group_metadata_record_roundtrip_and_versions():
    v = {"protocol_type": "consumer", "generation": 5, "protocol": "range", "leader": "m1",
         "current_state_timestamp": 123, "members": [
             {"member_id": "m1", "group_instance_id": "i1", "client_id": "c", "client_host": "/h",
              "rebalance_timeout": 300, "session_timeout": 100, "subscription": b"S", "assignment": b"A"}]}
    key = records.group_metadata_key("grp")
    assert key == struct.pack(">h", 2) + b"\x00\x03grp"
    value = records.group_metadata_value(v)
    assert value[:2] == struct.pack(">h", 3)
    r = records.decode(key, value)
    assert r.group == "grp" and r.value == v
    # an older (v0) value written by an old broker still loads
    v0 = records.GROUP_METADATA_VALUE.encode(v, 0)
    r0 = records.decode(key, struct.pack(">h", 0) + v0)
    assert r0.value["members"][0]["rebalance_timeout"] == 100 and r0.value["members"][0]["group_instance_id"] is None


def test_unknown_record_types_are_skipped():
    assert records.decode(struct.pack(">h", 3) + b"\x00\x01g", b"\x00\x00") is None


@given(st.text(max_size=40), st.text(max_size=40), st.integers(0, 2**31 - 1), st.integers(-1, 2**62),
       st.integers(-1, 2**31 - 1), st.text(max_size=100))
def test_offset_roundtrip(group, topic, partition, offset, epoch, meta):
    om = OffsetAndMetadata(offset, epoch, meta, 17)
    r = records.decode(records.offset_commit_key(group, topic, partition), records.offset_commit_value(om))
    assert (r.group, r.topic, r.partition, r.value) == (group, topic, partition, om)
