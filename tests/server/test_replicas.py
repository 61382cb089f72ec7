"""The cluster seam (server/replicas.py), the topic registry (server/topics.py)
and the broker state built whole (server/state.py), on a lone broker."""

from __future__ import annotations

import re
from pathlib import Path

import trio

import pykbroker
from pykbroker.config import BrokerConfig
from pykbroker.group import GroupCoordinator
from pykbroker.protocol import errors
from pykbroker.protocol.records import build_batch, validate_batches
from pykbroker.server.metrics import Instrumentation
from pykbroker.server.replicas import BrokerEndpoint, LocalReplicas, PartitionInfo
from pykbroker.server.state import BrokerState, build_state
from pykbroker.txn.coordinator import TransactionCoordinator

HANDLERS = Path(pykbroker.__file__).parent / "handlers"


def config(**extra: str) -> BrokerConfig:
    props = {"pykbroker.storage": "memory", "node.id": "7", "offsets.topic.num.partitions": "2",
             "transaction.state.log.num.partitions": "2"}
    props.update(extra)
    return BrokerConfig(overrides=props)


def test_handlers_do_not_know_which_cluster() -> None:
    """Handlers ask state.replicas; they never branch on the kind of broker
    nor import the cluster package or kazoo."""
    pattern = re.compile(r"cluster is (not )?None|\.cluster\b|from \.\.cluster|import kazoo|from kazoo")
    found = [f"{path.name}:{i}: {line.strip()}"
             for path in sorted(HANDLERS.glob("*.py"))
             for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_state_is_built_whole() -> None:
    st = build_state(config())
    assert isinstance(st.replicas, LocalReplicas)
    assert isinstance(st.hooks, Instrumentation)
    assert isinstance(st.group_coordinator, GroupCoordinator)
    assert isinstance(st.txn_coordinator, TransactionCoordinator)
    st.close()


async def test_broker_attaches_nothing_to_its_state() -> None:
    """The broker's state has exactly the attributes the factory gives it."""
    reference = build_state(config())
    expected = set(vars(reference))
    reference.close()
    async with pykbroker.Broker({"listeners": "PLAINTEXT://127.0.0.1:0", "pykbroker.storage": "memory",
                                 "node.id": "7"}) as b:
        assert set(vars(b.state)) == expected
        assert b.state.hooks is b.instrumentation
        assert (b.state.advertised_host, b.state.advertised_port) == b.bound[0]


async def test_local_replicas_are_a_one_node_cluster() -> None:
    st = build_state(config())
    r = st.replicas
    ts = st.create_topic("t", 2)
    me = BrokerEndpoint(7, "127.0.0.1", 9092, None)
    assert r.live_brokers() == [me]
    assert r.broker(7) == me and r.broker(8) is None
    assert r.controller_id() == 7 and r.is_controller()
    assert r.leader_of("t", 1) == 7
    assert r.leader_of("t", 2) is None and r.leader_of("nope", 0) is None
    p = ts.partitions[1]
    assert r.is_leader(p)
    r.check_leader(p)  # no error
    assert r.partition_info(ts, p) == PartitionInfo(7, 0, [7], [7], [])
    assert r.replication_factor("t") == 1
    assert await r.elect_leaders([("t", 0), ("t", 9)], 0, 1000) == {
        ("t", 0): (errors.ELECTION_NOT_NEEDED, None),
        ("t", 9): (errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")}
    assert await r.replica_fetch({}, 12, 3) is None  # no followers: served as a consumer's fetch

    # acks=all on the only replica: the high watermark is the log end at once
    data = build_batch([(None, b"v%d" % i, (), 1000) for i in range(3)])
    res = await st.append(p, bytearray(data), validate_batches(data, max_batch_bytes=None), acks=-1)
    assert res.base_offset == 0 and res.last_offset == 2
    assert p.high_watermark == p.log_end_offset == 3
    res = await st.append(p, bytearray(data), validate_batches(data, max_batch_bytes=None), acks=1)
    assert res.base_offset == 3 and p.high_watermark == 6

    # admin through the seam: create, grow, delete
    tid = await r.create_topic("u", 1, 1, {"cleanup.policy": "compact"}, None, 1000)
    assert st.topics["u"].topic_id == tid and st.topics_by_id[tid].name == "u"
    assert st.topics["u"].log_config.compact
    await r.create_partitions("u", 3, None, 1000)
    assert len(st.topics["u"].partitions) == 3 and r.leader_of("u", 2) == 7
    await r.delete_topic("u", 1000)
    assert "u" not in st.topics and tid not in st.topics_by_id
    auto = r.auto_create("v", 2, 1, None)
    assert auto is not None and st.topics["v"] is auto and len(auto.partitions) == 2
    st.close()


async def test_topic_registry_by_name_and_id() -> None:
    st = build_state(config())
    ts = st.create_topic("t", 1)
    assert list(st.topics) == ["t"] and len(st.topics) == 1
    assert st.topics.partition("t", 0) is ts.partitions[0] and st.topics.partition("t", 1) is None
    # a fetch waiting on the topic wakes when it goes
    ev = trio.Event()
    ts.partitions[0].waiters.add(ev)
    assert st.topics.unregister("t") is ts
    assert ev.is_set() and "t" not in st.topics and ts.topic_id not in st.topics.by_id
    assert st.topics.unregister("t") is None
    st.topics.register(ts)
    assert st.topics["t"] is ts and st.topics.by_id[ts.topic_id] is ts
    st.delete_topic("t")
    assert "t" not in st.topics and st.logs is not None and "t" not in st.logs.topics
    st.close()


def test_lone_broker_registers_its_log_dirs_topics(tmp_path: Path) -> None:
    cfg = BrokerConfig(overrides={"log.dirs": str(tmp_path), "offsets.topic.num.partitions": "2"})
    st = build_state(cfg)
    tid = st.create_topic("kept", 3, {"retention.ms": "1000"}).topic_id
    st.close()
    st2 = build_state(BrokerConfig(overrides={"log.dirs": str(tmp_path), "offsets.topic.num.partitions": "2"}))
    assert isinstance(st2, BrokerState)
    ts = st2.topics["kept"]
    assert ts.topic_id == tid and len(ts.partitions) == 3 and ts.configs == {"retention.ms": "1000"}
    assert st2.topics_by_id[tid] is ts and ts.log_config.retention_ms == 1000
    st2.close()


def test_stored_dynamic_broker_configs_apply_before_the_parts_read_them(tmp_path: Path) -> None:
    """A restart: the stored dynamic configs layer over server.properties
    before the log tasks (and every topic) read them."""
    props = {"log.dirs": str(tmp_path), "offsets.topic.num.partitions": "2"}
    st = build_state(BrokerConfig(overrides=props))
    st.create_topic("t", 1)
    assert st.logs is not None
    st.logs.set_dynamic_configs("", {"log.cleaner.io.max.bytes.per.second": "1000",
                                     "log.retention.ms": "5000"})
    st.close()
    st2 = build_state(BrokerConfig(overrides=props))
    assert st2.log_tasks.cleaner is not None and st2.log_tasks.cleaner.io_max_bytes_per_second == 1000
    assert st2.topics["t"].log_config.retention_ms == 5000
    st2.close()
