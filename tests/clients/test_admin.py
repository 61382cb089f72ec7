"""Admin APIs against a real broker process, with real clients and raw requests.

APIs: CreateTopics (19), DeleteTopics (20), DescribeConfigs (32),
CreatePartitions (37), DescribeCluster (60).

Client tests drive confluent-kafka's AdminClient (CreateTopics v4,
DeleteTopics v4, CreatePartitions v2, DescribeConfigs v1, DescribeCluster
through Metadata), kafka-python's KafkaAdminClient (v7, v6, v3, v4, v2) and
aiokafka's AIOKafkaAdminClient (v3, v3, v1, v2, Metadata), each asserting the
exact error code/class and, where the client exposes it, Kafka's message.

Raw tests send every advertised version with our codec (tests/rawclient.py)
and check the decoded response field by field, including the versions no
client sends (CreateTopics 2, 5, 6; DeleteTopics 1, 2, 5; DescribeConfigs 3;
CreatePartitions 0; DescribeCluster 0, 1).

The module's broker runs with some static overrides so that config sources
and synonyms are meaningful: log.retention.hours=24, log.segment.bytes=2 MiB,
num.partitions=2, message.max.bytes=2000000.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokerproc import BrokerProcess
from rawclient import RawClient

from pykbroker.protocol import errors
from pykbroker.protocol.primitives import ZERO_UUID

OVERRIDES = {
    "log.retention.hours": 24,
    "log.segment.bytes": 2097152,
    "num.partitions": 2,
    "message.max.bytes": 2000000,
    # test brokers run without the web console; said here so the "static" listing is complete
    "pykbroker.console.enable": "false",
}
TOPIC_CONFIGS = {"cleanup.policy": "compact", "retention.ms": "3600000"}
RF3_MESSAGE = ("Unable to replicate the partition 3 time(s): The target replication factor of 3 "
               "cannot be reached because only 1 broker(s) are registered.")
BAD_NAME = "bad name!"
BAD_NAME_MESSAGE = ("Topic name is invalid: 'bad name!' contains one or more characters other "
                    "than ASCII alphanumerics, '.', '_' and '-'")
CLUSTER_OPS = 8096  # CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE
SOURCE = {"TOPIC": 1, "STATIC": 4, "DEFAULT": 5}


@pytest.fixture(scope="module")
def admin_broker(tmp_path_factory):
    b = BrokerProcess(name="admin_broker")
    b.start(OVERRIDES, log_dir=tmp_path_factory.mktemp("admin-broker-data"))
    yield b
    b.stop()


@pytest.fixture
def bs(admin_broker) -> str:
    return admin_broker.bootstrap


def new_name(prefix: str = "adm") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------ helpers
def metadata_topic(bootstrap: str, topic: str) -> dict:
    """The Metadata v12 entry of ``topic`` (never auto-creates)."""
    with RawClient(bootstrap) as c:
        r = c.call(3, 12, {"topics": [{"name": topic, "topic_id": ZERO_UUID}],
                           "allow_auto_topic_creation": False})
    (t,) = r["topics"]
    return t


def partition_count(bootstrap: str, topic: str) -> int | None:
    t = metadata_topic(bootstrap, topic)
    if t["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION:
        return None
    assert t["error_code"] == 0, t
    return len(t["partitions"])


def raw_create(bootstrap: str, name: str, partitions: int = 1, configs: dict | None = None,
               version: int = 7) -> dict:
    with RawClient(bootstrap) as c:
        r = c.call(19, version, {"topics": [topic_req(name, partitions, configs=configs)],
                                 "timeout_ms": 10000})
    (res,) = r["topics"]
    assert res["error_code"] == 0, res
    return res


def topic_req(name: str, partitions: int = 1, rf: int = 1, configs: dict | None = None,
              assignments: list | None = None) -> dict:
    return {"name": name, "num_partitions": partitions, "replication_factor": rf,
            "assignments": assignments or [],
            "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}


def syn_tuples(entry_synonyms) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(s["name"], s["value"], s["source"]) for s in entry_synonyms]


# Expected DescribeConfigs entries for a topic created with TOPIC_CONFIGS on
# the module's broker: name -> (value, source, synonyms).
EXPECTED_TOPIC = {
    "cleanup.policy": ("compact", 1, [("cleanup.policy", "compact", 1),
                                      ("log.cleanup.policy", "delete", 5)]),
    "retention.ms": ("3600000", 1, [("retention.ms", "3600000", 1)]),
    "segment.bytes": ("2097152", 4, [("log.segment.bytes", "2097152", 4),
                                     ("log.segment.bytes", "1073741824", 5)]),
    "max.message.bytes": ("2000000", 4, [("message.max.bytes", "2000000", 4),
                                         ("message.max.bytes", "1048588", 5)]),
    # log.retention.hours/log.roll.hours are not the first synonym: Kafka lists none
    "segment.ms": ("604800000", 5, []),
    "compression.type": ("producer", 5, [("compression.type", "producer", 5)]),
    "min.cleanable.dirty.ratio": ("0.5", 5, [("log.cleaner.min.cleanable.ratio", "0.5", 5)]),
    "file.delete.delay.ms": ("60000", 5, [("log.segment.delete.delay.ms", "60000", 5)]),
    "unclean.leader.election.enable": ("false", 5, [("unclean.leader.election.enable", "false", 5)]),
}
ALL_TOPIC_CONFIG_NAMES = sorted([
    "cleanup.policy", "compression.gzip.level", "compression.lz4.level", "compression.type",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
    "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms", "min.insync.replicas", "preallocate", "remote.log.copy.disable",
    "remote.log.delete.on.disable", "remote.storage.enable", "retention.bytes", "retention.ms",
    "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable"])
# Broker properties: name -> (value, source, read_only, synonyms)
EXPECTED_BROKER = {
    "log.retention.hours": ("24", 4, True, [("log.retention.hours", "24", 4),
                                            ("log.retention.hours", "168", 5)]),
    "log.retention.ms": (None, 5, False, []),
    "log.segment.bytes": ("2097152", 4, False, [("log.segment.bytes", "2097152", 4),
                                                ("log.segment.bytes", "1073741824", 5)]),
    "num.partitions": ("2", 4, True, [("num.partitions", "2", 4), ("num.partitions", "1", 5)]),
    "auto.create.topics.enable": ("true", 5, True, [("auto.create.topics.enable", "true", 5)]),
    "message.max.bytes": ("2000000", 4, False, [("message.max.bytes", "2000000", 4),
                                                ("message.max.bytes", "1048588", 5)]),
    "delete.topic.enable": ("true", 5, True, [("delete.topic.enable", "true", 5)]),
}


# ====================================================================== confluent-kafka
class TestConfluent:
    @pytest.fixture
    def admin(self, bs):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import AdminClient

        yield AdminClient({"bootstrap.servers": bs})
        gc.collect()  # destroy the client before the module's broker stops

    def _create_error(self, admin, new_topic, **kw):  # type: ignore[no-untyped-def]
        from confluent_kafka import KafkaException

        fs = admin.create_topics([new_topic], operation_timeout=10, **kw)
        with pytest.raises(KafkaException) as ei:
            fs[new_topic.topic].result(timeout=30)
        return ei.value.args[0]

    def test_create_topic_with_configs(self, admin, bs):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import NewTopic

        t = new_name("cf-create")
        fs = admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1,
                                           config=TOPIC_CONFIGS)], operation_timeout=10)
        assert fs[t].result(timeout=30) is None
        assert partition_count(bs, t) == 3
        md = admin.list_topics(topic=t, timeout=10)
        assert sorted(md.topics[t].partitions) == [0, 1, 2]
        # defaults: -1/-1 -> num.partitions (2, set on this broker) / 1
        t2 = new_name("cf-defaults")
        admin.create_topics([NewTopic(t2)], operation_timeout=10)[t2].result(timeout=30)
        assert partition_count(bs, t2) == 2

    def test_create_errors(self, admin, bs):  # type: ignore[no-untyped-def]
        from confluent_kafka import KafkaError
        from confluent_kafka.admin import NewTopic

        t = new_name("cf-dup")
        admin.create_topics([NewTopic(t, 1, 1)], operation_timeout=10)[t].result(timeout=30)
        err = self._create_error(admin, NewTopic(t, 1, 1))
        assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS
        assert err.str() == f"Topic '{t}' already exists."

        err = self._create_error(admin, NewTopic(BAD_NAME, 1, 1))
        assert err.code() == KafkaError.TOPIC_EXCEPTION
        assert err.str() == BAD_NAME_MESSAGE

        t3 = new_name("cf-rf3")
        err = self._create_error(admin, NewTopic(t3, 1, 3))
        assert err.code() == KafkaError.INVALID_REPLICATION_FACTOR
        assert err.str() == RF3_MESSAGE
        assert partition_count(bs, t3) is None

        err = self._create_error(admin, NewTopic(new_name("cf-badcfg"), 1, 1,
                                                 config={"retention.ms": "soon"}))
        assert err.code() == KafkaError.INVALID_CONFIG
        assert err.str() == "Invalid value soon for configuration retention.ms: Not a number of type LONG"

        err = self._create_error(admin, NewTopic(new_name("cf-unknown"), 1, 1,
                                                 config={"no.such.config": "1"}))
        assert err.code() == KafkaError.INVALID_CONFIG
        assert err.str() == "Unknown topic config name: no.such.config"

        err = self._create_error(admin, NewTopic(new_name("cf-zero"), 0, 1))
        assert err.code() == KafkaError.INVALID_PARTITIONS

    def test_validate_only(self, admin, bs):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import NewTopic

        t = new_name("cf-validate")
        fs = admin.create_topics([NewTopic(t, 4, 1)], validate_only=True, operation_timeout=10)
        assert fs[t].result(timeout=30) is None
        assert partition_count(bs, t) is None

    def test_describe_topic_configs(self, admin):  # type: ignore[no-untyped-def]
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

        t = new_name("cf-desc")
        admin.create_topics([NewTopic(t, 1, 1, config=TOPIC_CONFIGS)],
                            operation_timeout=10)[t].result(timeout=30)
        res = ConfigResource(ResourceType.TOPIC, t)
        entries = admin.describe_configs([res], request_timeout=10)[res].result(timeout=30)
        assert sorted(entries) == ALL_TOPIC_CONFIG_NAMES
        for name, (value, source, synonyms) in EXPECTED_TOPIC.items():
            e = entries[name]
            assert (e.value, int(e.source), e.is_read_only, e.is_sensitive) == \
                (value, source, False, False), name
            assert e.is_default == (source == 5), name
            # librdkafka keys synonyms by name: the last one of a name wins
            want = {n: (v, s) for n, v, s in synonyms}
            assert {n: (s.value, int(s.source)) for n, s in e.synonyms.items()} == want, name
        for name, code, message in ((new_name("cf-nope"), 3, "Broker: Unknown topic or partition"),
                                    (BAD_NAME, 17, BAD_NAME_MESSAGE)):
            res = ConfigResource(ResourceType.TOPIC, name)
            with pytest.raises(KafkaException) as ei:
                admin.describe_configs([res], request_timeout=10)[res].result(timeout=30)
            assert (ei.value.args[0].code(), ei.value.args[0].str()) == (code, message)

    def test_describe_broker_configs(self, admin):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import ConfigResource, ResourceType

        res = ConfigResource(ResourceType.BROKER, "0")
        entries = admin.describe_configs([res], request_timeout=10)[res].result(timeout=30)
        for name, (value, source, read_only, synonyms) in EXPECTED_BROKER.items():
            e = entries[name]
            assert (e.value, int(e.source), e.is_read_only) == (value, source, read_only), name
            want = {n: (v, s) for n, v, s in synonyms}
            assert {n: (s.value, int(s.source)) for n, s in e.synonyms.items()} == want, name
        assert entries["listeners"].value == "PLAINTEXT://127.0.0.1:0"
        assert (int(entries["listeners"].source), entries["listeners"].is_read_only) == (4, False)
        # (another broker id is not tested here: librdkafka sends the request to
        # that broker, which does not exist, and times out; see the raw test)

    def test_create_partitions(self, admin, bs):  # type: ignore[no-untyped-def]
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewPartitions, NewTopic

        t = new_name("cf-parts")
        admin.create_topics([NewTopic(t, 3, 1)], operation_timeout=10)[t].result(timeout=30)
        fs = admin.create_partitions([NewPartitions(t, 5)], operation_timeout=10)
        assert fs[t].result(timeout=30) is None
        assert partition_count(bs, t) == 5
        assert sorted(admin.list_topics(topic=t, timeout=10).topics[t].partitions) == [0, 1, 2, 3, 4]
        for count, msg in ((4, f"The topic {t} currently has 5 partition(s); 4 would not be an increase."),
                           (5, "Topic already has 5 partition(s).")):
            fs = admin.create_partitions([NewPartitions(t, count)], operation_timeout=10)
            with pytest.raises(KafkaException) as ei:
                fs[t].result(timeout=30)
            assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS
            assert ei.value.args[0].str() == msg
        assert partition_count(bs, t) == 5
        missing = new_name("cf-missing")
        fs = admin.create_partitions([NewPartitions(missing, 2)], operation_timeout=10)
        with pytest.raises(KafkaException) as ei:
            fs[missing].result(timeout=30)
        assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    def test_delete_topics(self, admin, bs):  # type: ignore[no-untyped-def]
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        t = new_name("cf-del")
        admin.create_topics([NewTopic(t, 2, 1)], operation_timeout=10)[t].result(timeout=30)
        assert partition_count(bs, t) == 2
        assert admin.delete_topics([t], operation_timeout=10)[t].result(timeout=30) is None
        assert partition_count(bs, t) is None
        assert t not in admin.list_topics(timeout=10).topics
        fs = admin.delete_topics([t], operation_timeout=10)
        with pytest.raises(KafkaException) as ei:
            fs[t].result(timeout=30)
        assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    def test_describe_cluster(self, admin, admin_broker):  # type: ignore[no-untyped-def]
        r = admin.describe_cluster(request_timeout=10).result(timeout=30)
        assert r.cluster_id and len(r.cluster_id) == 22
        assert [(n.id, n.host, n.port) for n in r.nodes] == [(0, "127.0.0.1", admin_broker.port)]
        assert r.controller.id == 0
        assert r.authorized_operations is None
        r = admin.describe_cluster(request_timeout=10, include_authorized_operations=True).result(timeout=30)
        assert sorted(op.name for op in r.authorized_operations) == sorted([
            "CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
            "IDEMPOTENT_WRITE"])


# ====================================================================== kafka-python
class TestKafkaPython:
    @pytest.fixture
    def admin(self, bs):  # type: ignore[no-untyped-def]
        from kafka.admin import KafkaAdminClient

        a = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
        yield a
        a.close()

    def test_create_topic_with_configs(self, admin, bs):  # type: ignore[no-untyped-def]
        t = new_name("kp-create")
        r = admin.create_topics({t: {"num_partitions": 3, "replication_factor": 1,
                                     "configs": TOPIC_CONFIGS}})  # CreateTopics v7
        (res,) = r["topics"]
        assert res["name"] == t and res["error_code"] == 0 and res["error_message"] is None
        assert (res["num_partitions"], res["replication_factor"]) == (3, 1)
        md = metadata_topic(bs, t)
        assert len(md["partitions"]) == 3
        assert res["topic_id"] == str(uuid.UUID(bytes=md["topic_id"]))
        cfg = res["configs"]
        assert sorted(cfg) == ALL_TOPIC_CONFIG_NAMES
        assert (cfg["cleanup.policy"]["value"], cfg["cleanup.policy"]["config_source"]) == \
            ("compact", "DYNAMIC_TOPIC_CONFIG")
        assert (cfg["retention.ms"]["value"], cfg["retention.ms"]["config_source"]) == \
            ("3600000", "DYNAMIC_TOPIC_CONFIG")
        assert (cfg["segment.bytes"]["value"], cfg["segment.bytes"]["config_source"]) == \
            ("2097152", "STATIC_BROKER_CONFIG")
        # log.roll.hours is not set: the topic default
        assert (cfg["segment.ms"]["value"], cfg["segment.ms"]["config_source"]) == \
            ("604800000", "DEFAULT_CONFIG")
        assert cfg["min.insync.replicas"]["read_only"] is False

    def test_create_errors(self, admin, bs):  # type: ignore[no-untyped-def]
        import kafka.errors as E

        t = new_name("kp-dup")
        admin.create_topics({t: {"num_partitions": 1}})
        with pytest.raises(E.TopicAlreadyExistsError):
            admin.create_topics({t: {"num_partitions": 1}})
        r = admin.create_topics({t: {}, BAD_NAME: {}, new_name("kp-rf3"): {"replication_factor": 3},
                                 new_name("kp-cfg"): {"configs": {"min.insync.replicas": "0"}}},
                                raise_errors=False)
        got = [(x["error_code"], x["error_message"], x["num_partitions"], x.get("configs"))
               for x in r["topics"]]
        assert got == [
            (36, f"Topic '{t}' already exists.", -1, None),
            (17, BAD_NAME_MESSAGE, -1, None),
            (38, RF3_MESSAGE, -1, None),
            (40, "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1",
             -1, None),
        ]
        with pytest.raises(E.InvalidTopicError):
            admin.create_topics([BAD_NAME])
        with pytest.raises(E.InvalidReplicationFactorError):
            admin.create_topics({new_name("kp-rf3"): {"replication_factor": 3}})
        with pytest.raises(E.InvalidConfigurationError):
            admin.create_topics({new_name("kp-cfg"): {"configs": {"cleanup.policy": "shred"}}})

    def test_manual_assignment(self, admin, bs):  # type: ignore[no-untyped-def]
        import kafka.errors as E

        t = new_name("kp-assign")
        r = admin.create_topics({t: {"assignments": {0: [0], 1: [0]}}})
        assert r["topics"][0]["num_partitions"] == 2
        assert partition_count(bs, t) == 2
        r = admin.create_topics({new_name("kp-assign-bad"): {"assignments": {0: [5]}}},
                                raise_errors=False)
        (res,) = r["topics"]
        assert res["error_code"] == errors.INVALID_REPLICA_ASSIGNMENT
        assert res["error_message"] == ("The manual partition assignment includes broker 5, "
                                        "but no such broker is registered.")
        with pytest.raises(E.InvalidReplicationAssignmentError):
            admin.create_topics({new_name("kp-assign-gap"): {"assignments": {0: [0], 2: [0]}}})

    def test_validate_only(self, admin, bs):  # type: ignore[no-untyped-def]
        t = new_name("kp-validate")
        r = admin.create_topics({t: {"num_partitions": 4}}, validate_only=True)
        (res,) = r["topics"]
        assert (res["error_code"], res["num_partitions"], res["replication_factor"]) == (0, 4, 1)
        assert partition_count(bs, t) is None

    def test_describe_topic_configs(self, admin):  # type: ignore[no-untyped-def]
        from kafka.admin import ConfigResource, ConfigResourceType

        t = new_name("kp-desc")
        admin.create_topics({t: {"num_partitions": 1, "configs": TOPIC_CONFIGS}})
        r = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)],
                                   include_synonyms=True, config_filter="all")  # v4
        entries = r["topic"][t]
        assert sorted(entries) == ALL_TOPIC_CONFIG_NAMES
        for name, (value, source, synonyms) in EXPECTED_TOPIC.items():
            e = entries[name]
            assert (e["value"], e["read_only"], e["is_sensitive"]) == (value, False, False), name
            assert e["config_source"] == {1: "DYNAMIC_TOPIC_CONFIG", 4: "STATIC_BROKER_CONFIG",
                                          5: "DEFAULT_CONFIG"}[source], name
            names = {1: "DYNAMIC_TOPIC_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG"}
            assert [(s["name"], s["value"], s["source"]) for s in e["synonyms"]] == \
                [(n, v, names[s]) for n, v, s in synonyms], name
        assert entries["retention.ms"]["config_type"] == "LONG"
        assert entries["cleanup.policy"]["config_type"] == "LIST"
        assert entries["min.cleanable.dirty.ratio"]["config_type"] == "DOUBLE"
        assert entries["preallocate"]["config_type"] == "BOOLEAN"
        # filtered by keys; modified only
        r = admin.describe_configs([ConfigResource("TOPIC", t, {"retention.ms": None,
                                                                "segment.bytes": None})])
        assert sorted(r["topic"][t]) == ["retention.ms"]

    def test_describe_broker_configs(self, admin, admin_broker):  # type: ignore[no-untyped-def]
        from kafka.admin import ConfigResource, ConfigResourceType

        r = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")],
                                   include_synonyms=True, config_filter="all")
        entries = r["broker"]["0"]
        names = {4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG"}
        for name, (value, source, read_only, synonyms) in EXPECTED_BROKER.items():
            e = entries[name]
            assert (e["value"], e["config_source"], e["read_only"], e["is_sensitive"]) == \
                (value, names[source], read_only, False), name
            assert [(s["name"], s["value"], s["source"]) for s in e["synonyms"]] == \
                [(n, v, names[s]) for n, v, s in synonyms], name
        assert entries["num.partitions"]["config_type"] == "INT"
        assert entries["log.dirs"]["value"] == str(admin_broker.log_dir)
        # config_filter='static': exactly what the broker was started with
        r = admin.describe_configs([ConfigResource("BROKER", "0")], config_filter="static")
        assert sorted(r["broker"]["0"]) == sorted(["listeners", "log.dirs", *OVERRIDES])

    def test_create_partitions(self, admin, bs):  # type: ignore[no-untyped-def]
        import kafka.errors as E

        t = new_name("kp-parts")
        admin.create_topics({t: {"num_partitions": 3}})
        r = admin.create_partitions({t: 5})  # v3
        assert [(x.name, x.error_code, x.error_message) for x in r.results] == [(t, 0, None)]
        assert partition_count(bs, t) == 5
        with pytest.raises(E.InvalidPartitionsError):
            admin.create_partitions({t: 4})
        r = admin.create_partitions({t: 4, new_name("kp-missing"): 2}, raise_errors=False)
        got = {x.name: (x.error_code, x.error_message) for x in r.results}
        assert got[t] == (37, f"The topic {t} currently has 5 partition(s); 4 would not be an increase.")
        assert sorted(c for c, _ in got.values()) == [3, 37]
        r = admin.create_partitions({t: {"count": 7, "assignments": [[0]]}}, raise_errors=False)
        assert [(x.error_code, x.error_message) for x in r.results] == [
            (39, "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.")]
        r = admin.create_partitions({t: {"count": 7, "assignments": [[0], [0]]}}, validate_only=True)
        assert r.results[0].error_code == 0
        assert partition_count(bs, t) == 5

    def test_delete_topics(self, admin, bs):  # type: ignore[no-untyped-def]
        import kafka.errors as E

        a, b = new_name("kp-del-a"), new_name("kp-del-b")
        admin.create_topics({a: {"num_partitions": 1}, b: {"num_partitions": 1}})
        id_b = uuid.UUID(bytes=metadata_topic(bs, b)["topic_id"])
        r = admin.delete_topics([a, id_b])  # v6: by name and by id
        got = {(x["name"], x["error_code"]) for x in r["topics"]}
        assert got == {(a, 0), (b, 0)}
        assert partition_count(bs, a) is None and partition_count(bs, b) is None
        with pytest.raises(E.UnknownTopicOrPartitionError):
            admin.delete_topics([a])
        r = admin.delete_topics([id_b], raise_errors=False)
        assert [(x["name"], x["topic_id"], x["error_code"], x["error_message"]) for x in r["topics"]] == \
            [(None, str(id_b), 100, "This server does not host this topic ID.")]

    def test_describe_cluster(self, admin, admin_broker):  # type: ignore[no-untyped-def]
        r = admin.describe_cluster()  # DescribeCluster v2
        assert [(x["broker_id"], x["host"], x["port"], x["rack"], x["is_fenced"])
                for x in r["brokers"]] == [(0, "127.0.0.1", admin_broker.port, None, False)]
        assert r["controller_id"] == 0
        assert isinstance(r["cluster_id"], str) and len(r["cluster_id"]) == 22
        assert sorted(r["authorized_operations"]) == sorted([
            "CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
            "IDEMPOTENT_WRITE"])


# ====================================================================== aiokafka
def _aio(coro_fn, bs):  # type: ignore[no-untyped-def]
    from aiokafka.admin import AIOKafkaAdminClient

    async def main():  # type: ignore[no-untyped-def]
        admin = AIOKafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
        await admin.start()
        try:
            return await coro_fn(admin)
        finally:
            await admin.close()

    return asyncio.run(main())


class TestAiokafka:
    def test_create_describe_partitions_delete(self, bs):  # type: ignore[no-untyped-def]
        from aiokafka.admin import NewPartitions, NewTopic
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        from aiokafka.errors import InvalidPartitionsError

        t = new_name("aio")

        async def scenario(admin):  # type: ignore[no-untyped-def]
            out = {}
            r = await admin.create_topics([NewTopic(t, 3, 1, topic_configs=TOPIC_CONFIGS)])  # v3
            out["create"] = list(r.topic_errors)
            r = await admin.create_topics([NewTopic(t, 1, 1), NewTopic(BAD_NAME, 1, 1),
                                           NewTopic(new_name("aio-rf3"), 1, 3)])
            out["errors"] = list(r.topic_errors)
            (r,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t)], include_synonyms=True)  # v2
            out["describe"] = r.resources
            (r,) = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")],
                                                include_synonyms=True)
            out["broker"] = r.resources
            r = await admin.create_partitions({t: NewPartitions(5)})  # v1
            out["partitions"] = list(r.topic_errors)
            out["count"] = partition_count(bs, t)
            try:
                await admin.create_partitions({t: NewPartitions(4)})
            except InvalidPartitionsError as e:
                out["shrink"] = str(e)
            out["cluster"] = await admin.describe_cluster()
            r = await admin.delete_topics([t])  # v3
            out["delete"] = list(r.topic_error_codes)
            return out

        out = _aio(scenario, bs)
        assert out["create"] == [(t, 0, None)]
        assert out["errors"] == [(t, 36, f"Topic '{t}' already exists."),
                                 (BAD_NAME, 17, BAD_NAME_MESSAGE),
                                 (out["errors"][2][0], 38, RF3_MESSAGE)]
        ((code, msg, rtype, rname, entries),) = out["describe"]
        assert (code, msg, rtype, rname) == (0, None, 2, t)
        by_name = {e[0]: e for e in entries}
        assert sorted(by_name) == ALL_TOPIC_CONFIG_NAMES
        for name, (value, source, synonyms) in EXPECTED_TOPIC.items():
            _, v, ro, src, sens, syns = by_name[name]
            assert (v, ro, src, sens) == (value, False, source, False), name
            assert [tuple(s) for s in syns] == synonyms, name
        ((code, msg, rtype, rname, entries),) = out["broker"]
        assert (code, rtype, rname) == (0, 4, "0")
        by_name = {e[0]: e for e in entries}
        for name, (value, source, read_only, synonyms) in EXPECTED_BROKER.items():
            _, v, ro, src, sens, syns = by_name[name]
            assert (v, ro, src, sens) == (value, read_only, source, False), name
            assert [tuple(s) for s in syns] == synonyms, name
        assert out["partitions"] == [(t, 0, None)]
        assert out["count"] == 5
        assert out["shrink"].endswith(f"The topic {t} currently has 5 partition(s); 4 would not be an increase.")
        assert out["cluster"]["controller_id"] == 0
        assert [(b["node_id"], b["host"]) for b in out["cluster"]["brokers"]] == [(0, "127.0.0.1")]
        assert out["delete"] == [(t, 0)]
        assert partition_count(bs, t) is None


# ====================================================================== raw protocol
def test_api_versions_advertise_kafka_ranges(bs):  # type: ignore[no-untyped-def]
    with RawClient(bs) as c:
        r = c.call(18, 3, {"client_software_name": "raw", "client_software_version": "1"})
    ranges = {k["api_key"]: (k["min_version"], k["max_version"]) for k in r["api_keys"]}
    assert {k: ranges.get(k) for k in (19, 20, 32, 37, 60)} == \
        {19: (2, 7), 20: (1, 6), 32: (1, 4), 37: (0, 3), 60: (0, 2)}


@pytest.mark.parametrize("version", range(2, 8))
def test_raw_create_topics(bs, version):  # type: ignore[no-untyped-def]
    ok, dup, existing = new_name(f"raw-ct{version}"), new_name("raw-dup"), new_name("raw-exists")
    raw_create(bs, existing)
    body = {"topics": [
        topic_req(ok, 3, configs={"retention.ms": "3600000", "cleanup.policy": "compact, delete"}),
        topic_req(dup), topic_req(dup),
        topic_req(existing),
        topic_req(BAD_NAME),
        topic_req(new_name("raw-rf"), 1, 3),
        topic_req(new_name("raw-rf0"), 1, 0),
        topic_req(new_name("raw-p0"), 0, 1),
        topic_req(new_name("raw-cfg"), 1, configs={"segment.bytes": "1000"}),
        topic_req(new_name("raw-null"), 1, configs={"retention.ms": None}),
        topic_req(new_name("raw-asg"), 1, -1, assignments=[{"partition_index": 0, "broker_ids": [0]}]),
        topic_req(new_name("raw-dflt"), -1, -1),
        topic_req("__cluster_metadata"),
    ], "timeout_ms": 10000, "validate_only": False}
    with RawClient(bs) as c:
        r = c.call(19, version, body)
    assert r["throttle_time_ms"] == 0
    res = r["topics"]
    names = [t["name"] for t in body["topics"]]
    # Kafka's order: the others in request order, then duplicates, then __cluster_metadata
    assert [x["name"] for x in res] == [n for n in names if n not in (dup, "__cluster_metadata")] + \
        [dup, "__cluster_metadata"]
    by = {x["name"]: x for x in res}
    expect = {
        ok: (0, None),
        dup: (42, "Duplicate topic name."),
        existing: (36, f"Topic '{existing}' already exists."),
        BAD_NAME: (17, BAD_NAME_MESSAGE),
        names[5]: (38, RF3_MESSAGE),
        names[6]: (38, "Replication factor must be larger than 0, or -1 to use the default value."),
        names[7]: (37, "Number of partitions was set to an invalid non-positive value."),
        names[8]: (40, "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576"),
        names[9]: (40, "Null value not supported for topic configs: retention.ms"),
        names[10]: (42, "A manual partition assignment was specified, but numPartitions was not set to -1."),
        names[11]: (0, None),
        "__cluster_metadata": (42, "Creation of internal topic __cluster_metadata is prohibited."),
    }
    assert {n: (x["error_code"], x["error_message"]) for n, x in by.items()} == expect
    assert partition_count(bs, ok) == 3
    assert partition_count(bs, names[11]) == 2  # num.partitions=2 on this broker
    assert partition_count(bs, names[5]) is None
    md = metadata_topic(bs, ok)
    for n, x in by.items():
        if version >= 5:
            if x["error_code"]:
                assert (x["num_partitions"], x["replication_factor"], x["configs"]) == (-1, -1, [])
            assert x["topic_config_error_code"] == 0
        else:  # not in these versions: decoded as the defaults
            assert (x["num_partitions"], x["replication_factor"], x["configs"]) == (-1, -1, [])
        if version >= 7:
            assert (x["topic_id"] == ZERO_UUID) == bool(x["error_code"]), n
    if version >= 5:
        x = by[ok]
        assert (x["num_partitions"], x["replication_factor"]) == (3, 1)
        cfg = {c["name"]: c for c in x["configs"]}
        assert [c["name"] for c in x["configs"]] == ALL_TOPIC_CONFIG_NAMES
        assert {k: (cfg[k]["value"], cfg[k]["config_source"], cfg[k]["read_only"], cfg[k]["is_sensitive"])
                for k in ("retention.ms", "cleanup.policy", "segment.bytes", "max.message.bytes",
                          "segment.ms", "compression.type")} == {
            "retention.ms": ("3600000", 1, False, False),
            "cleanup.policy": ("compact,delete", 1, False, False),
            "segment.bytes": ("2097152", 4, False, False),
            "max.message.bytes": ("2000000", 4, False, False),
            "segment.ms": ("604800000", 5, False, False),
            "compression.type": ("producer", 5, False, False),
        }
        # the controller's resolution converts log.retention.hours for topics without override
        assert by[names[11]]["num_partitions"] == 2
        dflt = {c["name"]: c for c in by[names[11]]["configs"]}
        assert (dflt["retention.ms"]["value"], dflt["retention.ms"]["config_source"]) == ("86400000", 4)
    if version >= 7:
        assert by[ok]["topic_id"] == md["topic_id"]
    else:
        assert by[ok]["topic_id"] == ZERO_UUID


@pytest.mark.parametrize("version", range(2, 8))
def test_raw_create_topics_validate_only(bs, version):  # type: ignore[no-untyped-def]
    t = new_name("raw-vo")
    with RawClient(bs) as c:
        r = c.call(19, version, {"topics": [topic_req(t, 4, configs={"retention.bytes": "1000"}),
                                            topic_req(BAD_NAME)],
                                 "timeout_ms": 5000, "validate_only": True})
    a, b = r["topics"]
    assert (a["name"], a["error_code"], a["error_message"]) == (t, 0, None)
    assert (b["error_code"], b["error_message"]) == (17, BAD_NAME_MESSAGE)
    if version >= 5:
        assert (a["num_partitions"], a["replication_factor"]) == (4, 1)
        assert {c["name"]: c["value"] for c in a["configs"]}["retention.bytes"] == "1000"
    assert partition_count(bs, t) is None


def test_raw_create_topics_collision(bs):  # type: ignore[no-untyped-def]
    base = new_name("raw-coll").replace("-", "_")
    raw_create(bs, base)
    other = base.replace("_", ".", 1)
    with RawClient(bs) as c:
        r = c.call(19, 7, {"topics": [topic_req(other)], "timeout_ms": 5000})
    (x,) = r["topics"]
    assert (x["error_code"], x["error_message"]) == \
        (17, f"Topic '{other}' collides with existing topic: {base}")


@pytest.mark.parametrize("version", range(1, 7))
def test_raw_delete_topics(bs, version):  # type: ignore[no-untyped-def]
    a, b, dup = new_name("raw-del-a"), new_name("raw-del-b"), new_name("raw-del-dup")
    for t in (a, b, dup):
        raw_create(bs, t)
    id_a = metadata_topic(bs, a)["topic_id"]
    id_b = metadata_topic(bs, b)["topic_id"]
    missing = new_name("raw-del-missing")
    if version >= 6:
        unknown_id = uuid.uuid4().bytes
        body = {"topics": [{"name": a, "topic_id": ZERO_UUID}, {"name": None, "topic_id": id_b},
                           {"name": dup, "topic_id": ZERO_UUID}, {"name": dup, "topic_id": ZERO_UUID},
                           {"name": missing, "topic_id": ZERO_UUID},
                           {"name": None, "topic_id": unknown_id},
                           {"name": None, "topic_id": ZERO_UUID},
                           {"name": "x", "topic_id": id_b}],
                "timeout_ms": 5000}
    else:
        body = {"topic_names": [a, b, dup, dup, missing], "timeout_ms": 5000}
    with RawClient(bs) as c:
        r = c.call(20, version, body)
    assert r["throttle_time_ms"] == 0
    got = [(x["name"], x["topic_id"], x["error_code"], x["error_message"]) for x in r["responses"]]
    unknown_msg = "This server does not host this topic-partition." if version >= 5 else None
    dup_msg = "Duplicate topic name." if version >= 5 else None
    if version >= 6:
        # errors in Kafka's construction order, then the deletions
        assert got[:5] == [
            (None, ZERO_UUID, 42, "Neither topic name nor id were specified."),
            ("x", id_b, 42, "You may not specify both topic name and topic id."),
            (dup, ZERO_UUID, 42, dup_msg),
            (None, unknown_id, 100, "This server does not host this topic ID."),
            (missing, ZERO_UUID, 3, unknown_msg),
        ]
        assert sorted(got[5:]) == sorted([(a, id_a, 0, None), (b, id_b, 0, None)])
    else:
        # topic ids are not in v1-5 responses: decoded as zero
        assert sorted(got, key=lambda g: g[0]) == sorted([
            (dup, ZERO_UUID, 42, dup_msg),
            (missing, ZERO_UUID, 3, unknown_msg),
            (a, ZERO_UUID, 0, None),
            (b, ZERO_UUID, 0, None),
        ], key=lambda g: g[0])
    assert partition_count(bs, a) is None and partition_count(bs, b) is None
    assert partition_count(bs, dup) == 1  # a duplicated name is not deleted


@pytest.mark.parametrize("version", range(1, 7))
def test_raw_delete_topics_disabled(broker_factory, version):  # type: ignore[no-untyped-def]
    b = broker_factory({"delete.topic.enable": False})
    t = new_name("raw-nodel")
    raw_create(b.bootstrap, t)
    body = ({"topics": [{"name": t, "topic_id": ZERO_UUID}], "timeout_ms": 1000} if version >= 6
            else {"topic_names": [t], "timeout_ms": 1000})
    with RawClient(b.bootstrap) as c:
        r = c.call(20, version, body)
    code = errors.INVALID_REQUEST if version < 3 else errors.TOPIC_DELETION_DISABLED
    assert [(x["name"], x["error_code"], x["error_message"]) for x in r["responses"]] == [(t, code, None)]
    assert partition_count(b.bootstrap, t) == 1


def test_delete_topics_disabled_clients(broker_factory):  # type: ignore[no-untyped-def]
    import kafka.errors as E
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient
    from kafka.admin import KafkaAdminClient

    b = broker_factory({"delete.topic.enable": False})
    t = new_name("nodel")
    raw_create(b.bootstrap, t)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = admin.delete_topics([t], operation_timeout=10)
    with pytest.raises(KafkaException) as ei:
        fs[t].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.TOPIC_DELETION_DISABLED
    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        with pytest.raises(E.TopicDeletionDisabledError):
            kp.delete_topics([t])
    finally:
        kp.close()
    assert partition_count(b.bootstrap, t) == 1
    del admin, fs, ei
    gc.collect()


@pytest.mark.parametrize("version", range(0, 4))
def test_raw_create_partitions(bs, version):  # type: ignore[no-untyped-def]
    t, dup, same = new_name("raw-cp"), new_name("raw-cp-dup"), new_name("raw-cp-same")
    raw_create(bs, t, 3)
    raw_create(bs, dup, 1)
    raw_create(bs, same, 2)
    missing = new_name("raw-cp-missing")
    body = {"topics": [
        {"name": t, "count": 5, "assignments": None},
        {"name": dup, "count": 2, "assignments": None},
        {"name": dup, "count": 3, "assignments": None},
        {"name": same, "count": 2, "assignments": None},
        {"name": missing, "count": 2, "assignments": None},
    ], "timeout_ms": 5000, "validate_only": False}
    with RawClient(bs) as c:
        r = c.call(37, version, body)
        assert [(x["name"], x["error_code"], x["error_message"]) for x in r["results"]] == [
            (dup, 42, "Duplicate topic name."),
            (t, 0, None),
            (same, 37, "Topic already has 2 partition(s)."),
            (missing, 3, None),
        ]
        assert partition_count(bs, t) == 5
        assert partition_count(bs, dup) == 1
        r = c.call(37, version, {"topics": [
            {"name": t, "count": 4, "assignments": None},
            {"name": same, "count": 4, "assignments": [{"broker_ids": [0]}, {"broker_ids": [0, 0]}]},
            {"name": dup, "count": 2, "assignments": [{"broker_ids": [3]}]},
        ], "timeout_ms": 5000, "validate_only": False})
        assert [(x["name"], x["error_code"], x["error_message"]) for x in r["results"]] == [
            (t, 37, f"The topic {t} currently has 5 partition(s); 4 would not be an increase."),
            (same, 39, "The manual partition assignment includes the broker 0 more than once."),
            (dup, 39, "The manual partition assignment includes broker 3, but no such broker is registered."),
        ]
        r = c.call(37, version, {"topics": [{"name": same, "count": 4,
                                             "assignments": [{"broker_ids": [0]}, {"broker_ids": [0]}]}],
                                 "timeout_ms": 5000, "validate_only": True})
        assert [(x["error_code"], x["error_message"]) for x in r["results"]] == [(0, None)]
        assert partition_count(bs, same) == 2
        r = c.call(37, version, {"topics": [{"name": same, "count": 4,
                                             "assignments": [{"broker_ids": [0]}, {"broker_ids": [0]}]}],
                                 "timeout_ms": 5000, "validate_only": False})
        assert r["results"][0]["error_code"] == 0
    assert partition_count(bs, same) == 4
    md = metadata_topic(bs, same)
    assert [(p["partition_index"], p["leader_id"], p["replica_nodes"]) for p in md["partitions"]] == \
        [(i, 0, [0]) for i in range(4)]


@pytest.mark.parametrize("version", range(1, 5))
def test_raw_describe_configs_topic(bs, version):  # type: ignore[no-untyped-def]
    t = new_name("raw-dc")
    raw_create(bs, t, 1, TOPIC_CONFIGS)
    with RawClient(bs) as c:
        r = c.call(32, version, {"resources": [
            {"resource_type": 2, "resource_name": t, "configuration_keys": None},
            {"resource_type": 2, "resource_name": t, "configuration_keys": ["retention.ms", "bogus"]},
            {"resource_type": 2, "resource_name": new_name("raw-dc-missing"), "configuration_keys": None},
            {"resource_type": 2, "resource_name": BAD_NAME, "configuration_keys": None},
        ], "include_synonyms": True, "include_documentation": True})
    full, filtered, missing, bad = r["results"]
    assert (full["error_code"], full["error_message"], full["resource_type"], full["resource_name"]) == \
        (0, None, 2, t)
    entries = {e["name"]: e for e in full["configs"]}
    assert [e["name"] for e in full["configs"]] == ALL_TOPIC_CONFIG_NAMES
    for name, (value, source, synonyms) in EXPECTED_TOPIC.items():
        e = entries[name]
        assert (e["value"], e["config_source"], e["read_only"], e["is_sensitive"]) == \
            (value, source, False, False), name
        assert syn_tuples(e["synonyms"]) == synonyms, name
        if version >= 3:  # not in v1-2 at all
            assert e["documentation"], name
    if version >= 3:
        assert {n: entries[n]["config_type"] for n in ("retention.ms", "segment.bytes", "cleanup.policy",
                                                       "preallocate", "min.cleanable.dirty.ratio",
                                                       "compression.type")} == \
            {"retention.ms": 5, "segment.bytes": 3, "cleanup.policy": 7, "preallocate": 1,
             "min.cleanable.dirty.ratio": 6, "compression.type": 2}
    assert [e["name"] for e in filtered["configs"]] == ["retention.ms"]
    assert (missing["error_code"], missing["error_message"], missing["configs"]) == (3, None, [])
    assert (bad["error_code"], bad["error_message"], bad["configs"]) == (17, BAD_NAME_MESSAGE, [])

    # without synonyms/documentation
    t2 = new_name("raw-dc-plain")
    raw_create(bs, t2)
    with RawClient(bs) as c:
        r = c.call(32, version, {"resources": [{"resource_type": 2, "resource_name": t2,
                                                "configuration_keys": []}],
                                 "include_synonyms": False, "include_documentation": False})
    entries = {e["name"]: e for e in r["results"][0]["configs"]}
    assert len(entries) == len(ALL_TOPIC_CONFIG_NAMES)
    assert all(e["synonyms"] == [] for e in entries.values())
    if version >= 3:
        assert all(e["documentation"] is None for e in entries.values())
    # the broker's log.retention.hours=24, reported as Kafka does (DEFAULT_CONFIG, no synonym)
    assert (entries["retention.ms"]["value"], entries["retention.ms"]["config_source"]) == ("86400000", 5)
    assert (entries["segment.bytes"]["value"], entries["segment.bytes"]["config_source"]) == ("2097152", 4)


@pytest.mark.parametrize("version", range(1, 5))
def test_raw_describe_configs_broker(bs, admin_broker, version):  # type: ignore[no-untyped-def]
    with RawClient(bs) as c:
        r = c.call(32, version, {"resources": [
            {"resource_type": 4, "resource_name": "0", "configuration_keys": None},
            {"resource_type": 4, "resource_name": "0",
             "configuration_keys": ["num.partitions", "log.retention.ms"]},
            {"resource_type": 4, "resource_name": "", "configuration_keys": None},
            {"resource_type": 4, "resource_name": "7", "configuration_keys": None},
            {"resource_type": 4, "resource_name": "x", "configuration_keys": None},
            {"resource_type": 8, "resource_name": "0", "configuration_keys": ["root"]},
            {"resource_type": 8, "resource_name": "", "configuration_keys": None},
        ], "include_synonyms": True, "include_documentation": True})
    full, filtered, default, other, notint, loggers, nologger = r["results"]
    assert (full["error_code"], full["resource_type"], full["resource_name"]) == (0, 4, "0")
    entries = {e["name"]: e for e in full["configs"]}
    for name, (value, source, read_only, synonyms) in EXPECTED_BROKER.items():
        e = entries[name]
        assert (e["value"], e["config_source"], e["read_only"], e["is_sensitive"]) == \
            (value, source, read_only, False), name
        assert syn_tuples(e["synonyms"]) == synonyms, name
    assert (entries["log.dirs"]["value"], entries["log.dirs"]["config_source"]) == \
        (str(admin_broker.log_dir), 4)
    assert entries["node.id"]["value"] == "0"
    if version >= 3:
        assert (entries["num.partitions"]["config_type"], entries["log.retention.hours"]["config_type"],
                entries["auto.create.topics.enable"]["config_type"], entries["listeners"]["config_type"]) == \
            (3, 3, 1, 7)
    assert sorted(e["name"] for e in filtered["configs"]) == ["log.retention.ms", "num.partitions"]
    assert (default["error_code"], default["configs"]) == (0, [])
    assert (other["error_code"], other["error_message"]) == \
        (42, "Unexpected broker id, expected 0 or empty string, but received 7")
    assert (notint["error_code"], notint["error_message"]) == \
        (42, "Broker id must be an integer, but it is: x")
    assert loggers["error_code"] == 0
    ((root,),) = [loggers["configs"]]
    assert (root["name"], root["config_source"], root["read_only"]) == ("root", 6, False)
    assert root["value"] in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
    assert (nologger["error_code"], nologger["error_message"]) == (42, "Broker id must not be empty")


def test_raw_describe_configs_other_resource_types(bs):  # type: ignore[no-untyped-def]
    with RawClient(bs) as c:
        r = c.call(32, 4, {"resources": [
            {"resource_type": 16, "resource_name": "subscription", "configuration_keys": None},
            {"resource_type": 16, "resource_name": "", "configuration_keys": None},
            {"resource_type": 32, "resource_name": "group", "configuration_keys": None},
        ], "include_synonyms": False})
    # an unknown subscription is described with its defaults (source DEFAULT_CONFIG, issue 15 telemetry)
    sub = r["results"][0]
    assert (sub["error_code"], sub["error_message"]) == (0, None)
    assert [(e["name"], e["value"], e["config_source"]) for e in sub["configs"]] == [
        ("metrics", "", 5), ("interval.ms", "300000", 5), ("match", "", 5)]
    assert (r["results"][1]["error_code"], r["results"][1]["error_message"], r["results"][1]["configs"]) == \
        (42, "Client metrics subscription name must not be empty", [])
    # GROUP: the share-group configs (issue 15; were "Unsupported resource type: GROUP")
    group = r["results"][2]
    assert (group["error_code"], group["error_message"]) == (0, None)
    assert [e["name"] for e in group["configs"]] == [
        "share.auto.offset.reset", "share.heartbeat.interval.ms", "share.record.lock.duration.ms",
        "share.session.timeout.ms"]


def test_raw_internal_segment_bytes(bs):  # type: ignore[no-untyped-def]
    """Kafka 4's internal test hook is accepted on create but never described."""
    t = new_name("raw-internal")
    res = raw_create(bs, t, 1, {"internal.segment.bytes": "1024"})
    assert [c["name"] for c in res["configs"]] == ALL_TOPIC_CONFIG_NAMES
    with RawClient(bs) as c:
        r = c.call(32, 4, {"resources": [{"resource_type": 2, "resource_name": t,
                                          "configuration_keys": None}]})
    assert [e["name"] for e in r["results"][0]["configs"]] == ALL_TOPIC_CONFIG_NAMES
    with RawClient(bs) as c:
        r = c.call(19, 7, {"topics": [topic_req(new_name("raw-internal-bad"), 1,
                                                configs={"internal.segment.bytes": "x"})]})
    assert (r["topics"][0]["error_code"], r["topics"][0]["error_message"]) == \
        (40, "Invalid value x for configuration internal.segment.bytes: Not a number of type INT")


def test_raw_describe_configs_unknown_resource_type(bs):  # type: ignore[no-untyped-def]
    with RawClient(bs) as c:
        r = c.call(32, 4, {"resources": [
            {"resource_type": 2, "resource_name": "whatever", "configuration_keys": None},
            {"resource_type": 99, "resource_name": "x", "configuration_keys": None},
        ], "include_synonyms": False})
    assert [(x["error_code"], x["resource_type"], x["configs"]) for x in r["results"]] == \
        [(42, 2, []), (42, 99, [])]
    assert r["results"][0]["error_message"].startswith("This most likely occurs because of a request")


@pytest.mark.parametrize("version", range(0, 3))
def test_raw_describe_cluster(bs, admin_broker, version):  # type: ignore[no-untyped-def]
    with RawClient(bs) as c:
        r = c.call(60, version, {"include_cluster_authorized_operations": True,
                                 "endpoint_type": 1, "include_fenced_brokers": True})
        assert (r["error_code"], r["error_message"], r["endpoint_type"], r["controller_id"]) == \
            (0, None, 1, 0)
        assert r["brokers"] == [{"broker_id": 0, "host": "127.0.0.1", "port": admin_broker.port,
                                 "rack": None, "is_fenced": False}]
        assert r["cluster_authorized_operations"] == CLUSTER_OPS
        md = c.call(3, 12, {"topics": [], "allow_auto_topic_creation": False})
        assert r["cluster_id"] == md["cluster_id"] and len(r["cluster_id"]) == 22
        r = c.call(60, version, {"include_cluster_authorized_operations": False})
        assert r["cluster_authorized_operations"] == -2147483648
        if version >= 1:
            r = c.call(60, version, {"endpoint_type": 2})
            assert (r["error_code"], r["error_message"], r["brokers"], r["controller_id"]) == \
                (errors.MISMATCHED_ENDPOINT_TYPE, "The request was sent to an endpoint of type BROKER, "
                 "but we wanted an endpoint of type CONTROLLER", [], -1)
            r = c.call(60, version, {"endpoint_type": 7})
            assert (r["error_code"], r["error_message"]) == \
                (errors.UNSUPPORTED_ENDPOINT_TYPE, "Unsupported endpoint type 7")


# ====================================================================== topic_configs (no broker)
@pytest.mark.parametrize("configs, expected", [
    ({"retention.ms": "86400000", "cleanup.policy": "compact,delete", "preallocate": "TRUE",
      "min.cleanable.dirty.ratio": " 0.25 ", "compression.type": "zstd"}, None),
    ({"foo.bar": "1"}, "Unknown topic config name: foo.bar"),
    ({"a": None, "retention.ms": None}, "Null value not supported for topic configs: a,retention.ms"),
    ({"retention.ms": "1h"}, "Invalid value 1h for configuration retention.ms: Not a number of type LONG"),
    ({"segment.bytes": "3000000000"},
     "Invalid value 3000000000 for configuration segment.bytes: Not a number of type INT"),
    ({"retention.ms": "-2"}, "Invalid value -2 for configuration retention.ms: Value must be at least -1"),
    ({"min.cleanable.dirty.ratio": "2"},
     "Invalid value 2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
    ({"preallocate": "yes"},
     "Invalid value yes for configuration preallocate: Expected value to be either true or false"),
    ({"cleanup.policy": "compact,shred"},
     "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete"),
    ({"message.timestamp.type": "createtime"},
     "Invalid value createtime for configuration message.timestamp.type: String must be one of: "
     "CreateTime, LogAppendTime"),
    ({"compression.gzip.level": "10"},
     "Invalid value 10 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"),
    # the first bad value in Kafka's schema order is reported
    ({"retention.ms": "x", "segment.ms": "0"},
     "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
    ({"min.compaction.lag.ms": "100", "max.compaction.lag.ms": "50"},
     "conflict topic config setting min.compaction.lag.ms (100) > max.compaction.lag.ms (50)"),
    ({"remote.storage.enable": "true"},
     "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with "
     "remote log storage."),
    ({"message.downconversion.enable": "true"}, "Unknown topic config name: message.downconversion.enable"),
])
def test_validate_topic_configs(configs, expected):  # type: ignore[no-untyped-def]
    from pykbroker.topic_configs import validate_topic_configs

    got = validate_topic_configs(configs)
    assert got == (None if expected is None else (errors.INVALID_CONFIG, expected))


def test_topic_config_sources_follow_broker_config():  # type: ignore[no-untyped-def]
    from pykbroker.config import BrokerConfig
    from pykbroker.topic_configs import describe_topic_configs, effective_topic_configs

    cfg = BrokerConfig(overrides={"log.retention.minutes": "30", "log.cleanup.policy": "compact"})
    d = {e["name"]: e for e in describe_topic_configs(cfg, {"segment.ms": "1000"}, include_synonyms=True)}
    # describe: the first synonym (log.retention.ms) is unset, so no synonyms, DEFAULT_CONFIG
    assert (d["retention.ms"]["value"], d["retention.ms"]["config_source"], d["retention.ms"]["synonyms"]) == \
        ("1800000", 5, [])
    assert (d["cleanup.policy"]["value"], d["cleanup.policy"]["config_source"]) == ("compact", 4)
    assert syn_tuples(d["cleanup.policy"]["synonyms"]) == [("log.cleanup.policy", "compact", 4),
                                                           ("log.cleanup.policy", "delete", 5)]
    assert syn_tuples(d["segment.ms"]["synonyms"]) == [("segment.ms", "1000", 1)]
    # the controller's view (CreateTopics v5+) follows every synonym, converted
    e = {x["name"]: x for x in effective_topic_configs(cfg, {"segment.ms": "1000"})}
    assert (e["retention.ms"]["value"], e["retention.ms"]["config_source"]) == ("1800000", 4)
    assert (e["segment.ms"]["value"], e["segment.ms"]["config_source"]) == ("1000", 1)
    assert (e["flush.ms"]["value"], e["flush.ms"]["config_source"]) == ("9223372036854775807", 5)
