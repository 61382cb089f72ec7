"""LogManager (topics, log dirs, meta.properties, checkpoints), LogConfig, checkpoint files."""

from __future__ import annotations

import json
import os

import pytest
from storage_helpers import append, records_of

from pykbroker.storage.checkpoints import (
    kafka_uuid_from_str,
    kafka_uuid_str,
    random_kafka_uuid,
    read_epoch_checkpoint,
    read_offset_checkpoint,
    read_properties,
    write_offset_checkpoint,
)
from pykbroker.storage.log_config import TOPIC_CONFIG_DEFAULTS, InvalidConfigError, LogConfig
from pykbroker.storage.manager import (
    CLEAN_SHUTDOWN_FILE,
    TOPICS_FILE,
    InvalidPartitionsError,
    InvalidTopicError,
    LogManager,
    TopicAlreadyExistsError,
    UnknownTopicError,
    validate_topic_name,
)


def _mgr(dirs, **kw) -> LogManager:
    m = LogManager(dirs, LogConfig(segment_bytes=2000, index_interval_bytes=100), **kw)
    m.load()
    return m


def test_validate_topic_name():
    assert validate_topic_name("orders.v1_x-2") is None
    assert validate_topic_name("a" * 249) is None
    assert "longer than the max allowed length 249" in validate_topic_name("a" * 250)
    assert validate_topic_name("") is not None
    assert validate_topic_name(".") == "'.' is not allowed"
    assert validate_topic_name("..") == "'..' is not allowed"
    assert "other than ASCII alphanumerics" in validate_topic_name("bad name")
    assert validate_topic_name("é") is not None


# Small segments come from Kafka's test hook internal.segment.bytes: since
# Kafka 4.1 (KAFKA-19080) segment.bytes is atLeast(1048576) for a topic, and
# the one topic-config schema (storage/log_config.py) follows Kafka.
def test_topics_persist_and_reload_with_data(tmp_path):
    m = _mgr([tmp_path], node_id=3)
    tid = bytes(range(1, 17))
    meta = m.create_topic("orders", 3, {"internal.segment.bytes": "1000", "cleanup.policy": "compact"}, topic_id=tid)
    assert (meta.name, meta.topic_id, meta.partitions) == ("orders", tid, 3)
    m.create_topic("other", 1)
    log = m.get("orders", 1)
    assert log.config.segment_bytes == 1000 and log.config.compact and log.config.index_interval_bytes == 100
    for i in range(20):
        append(log, 2, tag=b"%d-" % i)
    data = log.read(0, 10**6).read_bytes()
    assert m.get("orders", 3) is None and m.get("nope", 0) is None
    assert m.topic_by_id(tid) is meta
    doc = json.loads((tmp_path / TOPICS_FILE).read_text())
    assert {t["name"]: t["partitions"] for t in doc["topics"]} == {"orders": 3, "other": 1}
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["orders-0", "orders-1", "orders-2", "other-0"]
    cluster = m.cluster_id
    assert len(cluster) == 22
    m.close()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert read_offset_checkpoint(tmp_path / "recovery-point-offset-checkpoint")[("orders", 1)] == 40

    m2 = _mgr([tmp_path], node_id=3)
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert m2.cluster_id == cluster
    assert set(m2.topics) == {"orders", "other"}
    assert m2.topics["orders"].topic_id == tid
    assert m2.topics["orders"].configs == {"internal.segment.bytes": "1000", "cleanup.policy": "compact"}
    log2 = m2.get("orders", 1)
    assert log2.log_end_offset == 40 and log2.high_watermark == 40
    assert log2.read(0, 10**6).read_bytes() == data
    assert [r.value.split(b"-")[0] for r in records_of(data)][::2] == [b"%d" % i for i in range(20)]
    assert m2.get("orders", 0).log_end_offset == 0
    m2.close()


def test_meta_properties(tmp_path):
    m = _mgr([tmp_path], node_id=7, cluster_id="q1Sh-9_ISia_zwGINzRvyQ")
    props = read_properties(tmp_path / "meta.properties")
    assert props["node.id"] == "7" and props["version"] == "1"
    assert props["cluster.id"] == "q1Sh-9_ISia_zwGINzRvyQ"
    assert len(kafka_uuid_from_str(props["directory.id"])) == 16
    m.close()
    m2 = _mgr([tmp_path], node_id=7)  # reuses the stored cluster id
    assert m2.cluster_id == "q1Sh-9_ISia_zwGINzRvyQ"
    m2.close()
    with pytest.raises(RuntimeError):
        _mgr([tmp_path], node_id=7, cluster_id="AAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(RuntimeError):
        _mgr([tmp_path], node_id=8)


def test_topic_errors(tmp_path):
    m = _mgr([tmp_path])
    m.create_topic("a.b", 1)
    with pytest.raises(TopicAlreadyExistsError) as e:
        m.create_topic("a.b", 1)
    assert e.value.error_code == 36
    with pytest.raises(InvalidTopicError) as e:
        m.create_topic("a_b", 1)  # collides with a.b
    assert e.value.error_code == 17
    with pytest.raises(InvalidTopicError):
        m.create_topic("bad/name", 1)
    with pytest.raises(InvalidPartitionsError) as e:
        m.create_topic("zero", 0)
    assert e.value.error_code == 37
    with pytest.raises(InvalidConfigError) as e:
        m.create_topic("cfg", 1, {"no.such.config": "1"})
    assert e.value.error_code == 40
    with pytest.raises(InvalidConfigError):
        m.create_topic("cfg", 1, {"segment.ms": "0"})
    assert "cfg" not in m.topics and not (tmp_path / "cfg-0").exists()
    with pytest.raises(UnknownTopicError) as e:
        m.delete_topic("missing")
    assert e.value.error_code == 3
    with pytest.raises(InvalidPartitionsError):
        m.create_partitions("a.b", 1)
    m.close()


def test_delete_topic_and_create_partitions(tmp_path):
    m = _mgr([tmp_path])
    m.create_topic("gone", 2)
    append(m.get("gone", 0), 3)
    m.create_topic("grow", 1)
    append(m.get("grow", 0), 1)
    m.delete_topic("gone")
    assert "gone" not in m.topics and m.get("gone", 0) is None
    assert not any(p.name.startswith("gone") for p in tmp_path.iterdir())
    new = m.create_partitions("grow", 3)
    assert new.partitions == 3 and m.get("grow", 2).log_end_offset == 0
    m.close()
    m2 = _mgr([tmp_path])
    assert set(m2.topics) == {"grow"} and m2.topics["grow"].partitions == 3
    assert m2.get("grow", 0).log_end_offset == 1
    # a re-created topic of the same name starts empty with a new id
    meta = m2.create_topic("gone", 1)
    assert m2.get("gone", 0).log_end_offset == 0 and meta.topic_id != bytes(16)
    m2.close()


def test_unclean_shutdown_recovers(tmp_path):
    m = _mgr([tmp_path])
    m.create_topic("t", 1)
    log = m.get("t", 0)
    for _ in range(10):
        append(log, 2)
    active = log.active_segment.log_path
    log.flush()
    # simulate a crash: no close(), garbage at the end of the active segment
    with open(active, "ab") as f:
        f.write(os.urandom(777))
    m2 = LogManager([tmp_path], LogConfig(segment_bytes=2000, index_interval_bytes=100))
    m2.load()
    log2 = m2.get("t", 0)
    assert log2.log_end_offset == 20
    assert append(log2, 1).base_offset == 20
    m2.close()
    log.close_files()


def test_multiple_log_dirs_and_stray_dirs(tmp_path):
    d1, d2 = tmp_path / "a", tmp_path / "b"
    m = _mgr([d1, d2])
    m.create_topic("spread", 4)
    assert sorted(p.name for p in d1.iterdir() if p.is_dir()) == ["spread-0", "spread-2"]
    assert sorted(p.name for p in d2.iterdir() if p.is_dir()) == ["spread-1", "spread-3"]
    assert (d2 / "meta.properties").exists() and not (d2 / TOPICS_FILE).exists()
    append(m.get("spread", 3), 2)
    m.close()
    (d2 / "unknown-0").mkdir()
    (d1 / "old-0.abc-delete").mkdir()
    m2 = _mgr([d1, d2])
    assert m2.get("spread", 3).log_end_offset == 2 and m2.log_dir_of("spread", 3) == d2
    assert not (d2 / "unknown-0").exists()
    assert any(p.name.startswith("unknown-0.") and p.name.endswith("-stray") for p in d2.iterdir())
    assert not (d1 / "old-0.abc-delete").exists()
    m2.close()


def test_alter_topic_configs(tmp_path):
    m = _mgr([tmp_path])
    m.create_topic("t", 2)
    m.alter_topic_configs("t", {"message.timestamp.type": "LogAppendTime"})
    assert m.get("t", 1).config.log_append_time
    assert append(m.get("t", 1), 1, now_ms=4242).log_append_time == 4242
    m.close()
    m2 = _mgr([tmp_path])
    assert m2.topics["t"].configs == {"message.timestamp.type": "LogAppendTime"}
    assert m2.get("t", 0).config.log_append_time
    m2.close()


# --- LogConfig -----------------------------------------------------------------------------


def test_log_config_defaults_are_kafkas():
    c = LogConfig()
    assert (c.segment_bytes, c.segment_ms, c.index_interval_bytes, c.segment_index_bytes) == (
        1073741824, 604800000, 4096, 10485760)
    assert c.max_message_bytes == 1048588
    assert c.flush_messages == c.flush_ms == 2**63 - 1
    assert c.message_timestamp_type == "CreateTime" and c.message_timestamp_after_max_ms == 3600000
    assert TOPIC_CONFIG_DEFAULTS["cleanup.policy"] == "delete"
    assert TOPIC_CONFIG_DEFAULTS["unclean.leader.election.enable"] == "false"


def test_log_config_from_properties():
    base = LogConfig(index_interval_bytes=10)
    c = LogConfig.from_properties(
        {"segment.bytes": "1048576", "segment.ms": "60000", "max.message.bytes": "100", "flush.messages": "1",
         "cleanup.policy": "compact,delete", "preallocate": "TRUE", "min.cleanable.dirty.ratio": "0.25"},
        base=base,
    )
    assert (c.segment_bytes, c.segment_ms, c.max_message_bytes, c.flush_messages) == (1048576, 60000, 100, 1)
    assert c.index_interval_bytes == 10 and c.compact and c.delete and c.preallocate
    assert c.min_cleanable_dirty_ratio == 0.25
    assert LogConfig.from_properties(c.to_properties()) == c
    assert c.overrides(base)["segment.bytes"] == "1048576"
    assert LogConfig.from_properties({"internal.segment.bytes": "100"}).segment_bytes == 100
    for bad in ({"segment.bytes": "10"}, {"segment.bytes": "x"}, {"segment.bytes": str(2**31)},
                {"message.timestamp.type": "Now"}, {"cleanup.policy": "keep"}, {"preallocate": "yes"},
                {"compression.type": "brotli"}, {"bogus": "1"}):
        with pytest.raises(InvalidConfigError):
            LogConfig.from_properties(bad)


# --- checkpoint files ------------------------------------------------------------------------


def test_checkpoint_file_formats(tmp_path):
    p = tmp_path / "recovery-point-offset-checkpoint"
    write_offset_checkpoint(p, {("b", 1): 7, ("a", 0): 42})
    assert p.read_text() == "0\n2\na 0 42\nb 1 7\n"
    assert read_offset_checkpoint(p) == {("a", 0): 42, ("b", 1): 7}
    assert read_offset_checkpoint(tmp_path / "missing") == {}
    (tmp_path / "leader-epoch-checkpoint").write_text("0\n2\n0 0\n4 17\n")
    assert read_epoch_checkpoint(tmp_path / "leader-epoch-checkpoint") == [(0, 0), (4, 17)]
    raw = random_kafka_uuid()
    s = kafka_uuid_str(raw)
    assert len(s) == 22 and not s.startswith("-") and kafka_uuid_from_str(s) == raw
    assert kafka_uuid_str(bytes(16)) == "AAAAAAAAAAAAAAAAAAAAAA"
