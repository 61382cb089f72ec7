"""One topic-config schema (issue 11): CreateTopics, AlterConfigs and
IncrementalAlterConfigs reject an out-of-bounds topic config identically
(INVALID_CONFIG, Kafka's ConfigDef message), through confluent-kafka's and
kafka-python's admin clients over a real socket, and what they accept is
what the storage layer uses (the partition logs' LogConfig comes from the
same parse).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pykbroker.storage.log_config import LogConfig
from pykbroker.testing import BrokerThread

INVALID_CONFIG = 40

# (config, value, Kafka's message): an int bound, enums, a boolean, lists, a double
BAD = [
    ("segment.bytes", "100000",
     "Invalid value 100000 for configuration segment.bytes: Value must be at least 1048576"),
    ("segment.ms", "0", "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
    ("compression.lz4.level", "18",
     "Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17"),
    ("cleanup.policy", "compact,keep",
     "Invalid value keep for configuration cleanup.policy: String must be one of: compact, delete"),
    ("compression.type", "brotli",
     "Invalid value brotli for configuration compression.type: "
     "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
    ("message.timestamp.type", "Now",
     "Invalid value Now for configuration message.timestamp.type: "
     "String must be one of: CreateTime, LogAppendTime"),
    ("preallocate", "yes",
     "Invalid value yes for configuration preallocate: Expected value to be either true or false"),
    ("min.cleanable.dirty.ratio", "1.5",
     "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ("leader.replication.throttled.replicas", "0:x",
     "Invalid value [0:x] for configuration leader.replication.throttled.replicas: "
     "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the "
     "following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."),
    ("retention.ms", "soon", "Invalid value soon for configuration retention.ms: Not a number of type LONG"),
]

# accepted values, and what the storage layer must make of them
GOOD = {
    "segment.bytes": "1048576",
    "cleanup.policy": "compact , delete",
    "compression.type": "gzip",
    "compression.gzip.level": "5",
    "message.timestamp.type": "LogAppendTime",
    "preallocate": "TRUE",
    "min.cleanable.dirty.ratio": "0.25",
    "retention.ms": "-1",
}
GOOD_DESCRIBED = {
    "segment.bytes": "1048576", "cleanup.policy": "compact,delete", "compression.type": "gzip",
    "compression.gzip.level": "5", "message.timestamp.type": "LogAppendTime", "preallocate": "true",
    "min.cleanable.dirty.ratio": "0.25", "retention.ms": "-1",
}


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread(storage="disk") as b:
        yield b


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def storage_configs(b: BrokerThread, topic: str) -> list[LogConfig]:
    """The LogConfig of the topic and of every partition log."""
    def get() -> list[LogConfig]:
        st = b.state
        ts = st.topics[topic]
        logs = [st.logs.get(topic, p) for p in range(len(ts.partitions))]
        return [ts.log_config, *(log.config for log in logs if log is not None)]

    return b.call(get)


# ------------------------------------------------------------------ confluent-kafka
@pytest.fixture
def confluent(broker: BrokerThread) -> Iterator[Any]:
    from confluent_kafka.admin import AdminClient

    yield AdminClient({"bootstrap.servers": broker.bootstrap})
    gc.collect()


def _confluent_error(fut: Any) -> tuple[int, str]:
    from confluent_kafka import KafkaException

    with pytest.raises(KafkaException) as ei:
        fut.result(timeout=30)
    err = ei.value.args[0]
    return err.code(), err.str()


@pytest.mark.parametrize("name,value,message", BAD, ids=[c[0] for c in BAD])
def test_confluent_rejects_identically_on_all_three_apis(broker, confluent, name, value, message):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

    # CreateTopics: the topic is not created
    t = new_name("schema-cf")
    fs = confluent.create_topics([NewTopic(t, 1, 1, config={name: value})], operation_timeout=10)
    assert _confluent_error(fs[t]) == (INVALID_CONFIG, message)
    assert t not in broker.topics()
    # AlterConfigs (legacy) and IncrementalAlterConfigs on an existing topic: nothing changes
    confluent.create_topics([NewTopic(t, 1, 1)], operation_timeout=10)[t].result(timeout=30)
    before = storage_configs(broker, t)
    res = ConfigResource(ResourceType.TOPIC, t, set_config={name: value})
    with pytest.warns(DeprecationWarning):
        fut = confluent.alter_configs([res])[res]
    assert _confluent_error(fut) == (INVALID_CONFIG, message)
    inc = ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    assert _confluent_error(confluent.incremental_alter_configs([inc])[inc]) == (INVALID_CONFIG, message)
    # validate_only answers the same
    fs = confluent.create_topics([NewTopic(new_name("schema-vo"), 1, 1, config={name: value})],
                                 validate_only=True, operation_timeout=10)
    assert _confluent_error(next(iter(fs.values()))) == (INVALID_CONFIG, message)
    assert storage_configs(broker, t) == before


def test_confluent_accepted_values_mean_the_same_to_storage(broker, confluent):  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

    base = broker.call(lambda: broker.state.default_log_config())
    want = LogConfig.from_properties(GOOD, base=base)
    assert (want.segment_bytes, want.cleanup_policy, want.compression_type, want.compression_gzip_level,
            want.log_append_time, want.preallocate, want.min_cleanable_dirty_ratio, want.retention_ms) == \
        (1048576, ("compact", "delete"), "gzip", 5, True, True, 0.25, -1)

    def described(topic: str) -> dict[str, str]:
        res = ConfigResource(ResourceType.TOPIC, topic)
        entries = confluent.describe_configs([res], request_timeout=10)[res].result(timeout=30)
        return {k: entries[k].value for k in GOOD}

    created = new_name("schema-good-create")
    confluent.create_topics([NewTopic(created, 2, 1, config=GOOD)], operation_timeout=10)[created].result(30)
    legacy = new_name("schema-good-alter")
    incremental = new_name("schema-good-inc")
    for t in (legacy, incremental):
        confluent.create_topics([NewTopic(t, 2, 1)], operation_timeout=10)[t].result(30)
    res = ConfigResource(ResourceType.TOPIC, legacy, set_config=GOOD)
    with pytest.warns(DeprecationWarning):
        fut = confluent.alter_configs([res])[res]
    fut.result(timeout=30)
    inc = ConfigResource(ResourceType.TOPIC, incremental, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in GOOD.items()])
    confluent.incremental_alter_configs([inc])[inc].result(timeout=30)
    for t in (created, legacy, incremental):
        assert described(t) == GOOD_DESCRIBED, t
        assert storage_configs(broker, t) == [want, want, want], t


# ------------------------------------------------------------------ kafka-python
@pytest.fixture
def kafka_python(broker: BrokerThread) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    yield a
    a.close()


KP_BAD = BAD[:4] + BAD[6:8]


@pytest.mark.parametrize("name,value,message", KP_BAD, ids=[c[0] for c in KP_BAD])
def test_kafka_python_rejects_identically(broker, kafka_python, name, value, message):  # type: ignore[no-untyped-def]
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.errors import InvalidConfigurationError

    t = new_name("schema-kp")
    with pytest.raises(InvalidConfigurationError) as ei:  # CreateTopics v7
        kafka_python.create_topics([NewTopic(t, 1, 1, topic_configs={name: value})])
    assert f"error_code=40, error_message={message!r}" in str(ei.value)
    assert t not in broker.topics()
    kafka_python.create_topics([NewTopic(t, 1, 1)])
    before = storage_configs(broker, t)
    for incremental in (False, True):  # AlterConfigs, IncrementalAlterConfigs
        out = kafka_python.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, configs={name: value})],
                                         incremental=incremental, raise_on_unknown=False)
        assert out == {"topic": {t: f"[Error 40] InvalidConfigurationError: {message}"}}, incremental
    assert storage_configs(broker, t) == before
