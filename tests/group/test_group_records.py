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
    # type 11: ShareGroupMetadataKey (share groups keep their state elsewhere here)
    assert records.decode(struct.pack(">h", 11) + b"\x00\x01g", b"\x00\x00") is None


def test_consumer_group_record_bytes():
    # ConsumerGroupMetadataKey (type 3): int16 type, then the group id; value v0 flexible:
    # int16 version, int32 epoch, empty tagged fields
    assert records.consumer_group_key(3, "g") == b"\x00\x03\x00\x01g"
    assert records.consumer_group_value(3, {"epoch": 7}) == b"\x00\x00\x00\x00\x00\x07\x00"
    assert records.consumer_group_key(5, "g", "m") == b"\x00\x05\x00\x01g\x00\x01m"
    r = records.decode(records.consumer_group_key(5, "g", "m"), None)
    assert r == records.ConsumerGroupRecord(5, "g", "m", None)


def test_consumer_group_records_roundtrip():
    tid = bytes(range(16))
    values = {
        3: {"epoch": 4},
        4: {"epoch": 4, "topics": [{"topic_id": tid, "topic_name": "t", "num_partitions": 6,
                                    "partition_racks": [{"partition": 0, "racks": ["r1"]}]}]},
        5: {"instance_id": None, "rack_id": "r1", "client_id": "c", "client_host": "/h",
            "subscribed_topic_names": ["t"], "subscribed_topic_regex": "^t.*", "rebalance_timeout_ms": 300000,
            "server_assignor": "uniform"},
        6: {"assignment_epoch": 4},
        7: {"topic_partitions": [{"topic_id": tid, "partitions": [0, 2]}]},
        8: {"member_epoch": 4, "previous_member_epoch": 3, "state": 1,
            "assigned_partitions": [{"topic_id": tid, "partitions": [0]}],
            "partitions_pending_revocation": [{"topic_id": tid, "partitions": [2]}]},
    }
    for kind, v in values.items():
        member = "m1" if kind in (5, 7, 8) else None
        r = records.decode(records.consumer_group_key(kind, "grp", member), records.consumer_group_value(kind, v))
        assert r == records.ConsumerGroupRecord(kind, "grp", member, v)


def test_consumer_group_rebuilt_from_its_records():
    from pykbroker.group.consumer import ConsumerGroup, ConsumerMember, group_from_records, group_records

    tid = bytes(range(16))
    g = ConsumerGroup("grp")
    g.group_epoch, g.assignment_epoch = 5, 5
    g.subscription_metadata = {"t": (tid, 4)}
    g.update_member(ConsumerMember("a", instance_id="i-a", rebalance_timeout_ms=1000, client_id="ca",
                                   subscribed_topic_names=["t"], member_epoch=5, previous_member_epoch=4,
                                   assigned={tid: {0, 1}}))
    g.update_member(ConsumerMember("b", subscribed_topic_regex="^t$", member_epoch=4, previous_member_epoch=4,
                                   state="UNREVOKED_PARTITIONS", assigned={tid: {2}}, pending_revocation={tid: {3}}))
    g.target = {"a": {tid: {0, 1}}, "b": {tid: {2, 3}}}
    recs = {k: records.decode(k, v) for k, v in group_records(g).items()}
    g2 = group_from_records("grp", recs)
    assert g2 is not None
    assert (g2.group_epoch, g2.assignment_epoch, g2.subscription_metadata, g2.target) == \
        (5, 5, {"t": (tid, 4)}, g.target)
    assert {m: (x.member_epoch, x.previous_member_epoch, x.state, x.assigned, x.pending_revocation, x.instance_id)
            for m, x in g2.members.items()} == \
        {m: (x.member_epoch, x.previous_member_epoch, x.state, x.assigned, x.pending_revocation, x.instance_id)
         for m, x in g.members.items()}
    assert g2.owners == g.owners and g2.static_members == {"i-a": "a"}
    # nothing changed: nothing to write; a member gone: its three records are tombstoned
    assert g2.records_to_write()[1] == []
    g2.remove_member("b")
    tomb = [k for k, v in g2.records_to_write()[1] if v is None]
    assert sorted(tomb) == sorted(records.consumer_group_key(k, "grp", "b") for k in (5, 7, 8))


@given(st.text(max_size=40), st.text(max_size=40), st.integers(0, 2**31 - 1), st.integers(-1, 2**62),
       st.integers(-1, 2**31 - 1), st.text(max_size=100))
def test_offset_roundtrip(group, topic, partition, offset, epoch, meta):
    om = OffsetAndMetadata(offset, epoch, meta, 17)
    r = records.decode(records.offset_commit_key(group, topic, partition), records.offset_commit_value(om))
    assert (r.group, r.topic, r.partition, r.value) == (group, topic, partition, om)
