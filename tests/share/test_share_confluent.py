"""Share groups with a real client: confluent-kafka's ShareConsumer
(librdkafka 2.16: ShareGroupHeartbeat, ShareFetch and ShareAcknowledge v1)
against a broker process: several consumers on one partition split the
records, unacknowledged records come back after the lock times out,
rejected ones are archived, released ones come back, and nothing is lost
across a broker restart."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rawclient import RawClient
from share_helpers import alter_offsets, create_topic, produce

ck = pytest.importorskip("confluent_kafka")
if not hasattr(ck, "ShareConsumer"):  # confluent-kafka < 2.16
    pytest.skip("confluent-kafka without ShareConsumer", allow_module_level=True)

LOCK_MS = 1500
BASE = {"share.coordinator.state.topic.num.partitions": 3, "offsets.topic.num.partitions": 3,
        "group.share.heartbeat.interval.ms": 1000}


def _consumer(bootstrap: str, group: str, **conf: Any) -> Any:
    c = ck.ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **conf})
    return c


def _setup(bootstrap: str, topic: str, group: str, n: int, *, batch: int = 10, admin: bool = True) -> bytes:
    with RawClient(bootstrap) as c:
        tid = create_topic(c, topic, 1)
        produce(c, topic, [f"job-{i}".encode() for i in range(n)], batch=batch)
        if not admin:  # start at offset 0 with AlterShareGroupOffsets
            assert alter_offsets(c, group, topic, {0: 0})["error_code"] == 0
    if admin:  # share.auto.offset.reset=earliest as a group config (the default is latest)
        from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        a = AdminClient({"bootstrap.servers": bootstrap})
        res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
            ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
        for f in a.incremental_alter_configs([res]).values():
            f.result()
        desc = a.describe_configs([ConfigResource(ResourceType.GROUP, group)])
        assert [f.result()["share.auto.offset.reset"].value for f in desc.values()] == ["earliest"]
    return tid


def _start_offset(bootstrap: str, group: str) -> int:
    with RawClient(bootstrap) as c:
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
    return d["groups"][0]["topics"][0]["partitions"][0]["start_offset"]


def _wait_start_offset(bootstrap: str, group: str, want: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _start_offset(bootstrap, group) != want:
        assert time.monotonic() < deadline, _start_offset(bootstrap, group)
        time.sleep(0.1)


def test_consumers_split_one_partition(broker_factory):
    b = broker_factory(dict(BASE))
    topic, group, n = "tasks", "workers", 300
    _setup(b.bootstrap, topic, group, n)
    got: dict[int, list[int]] = {0: [], 1: [], 2: []}
    lock = threading.Lock()
    seen: list[int] = []
    errs: list[BaseException] = []

    def work(i: int) -> None:
        try:
            c = _consumer(b.bootstrap, group, **{"max.poll.records": 10})
            c.subscribe([topic])
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                with lock:
                    if len(seen) >= n:
                        break
                for m in c.poll(0.5):
                    assert m.error() is None, m.error()
                    assert m.value() == f"job-{m.offset()}".encode()
                    with lock:
                        got[i].append(m.offset())
                        seen.append(m.offset())
                time.sleep(0.02)  # a little work per batch
            c.commit_sync()
            c.close()
        except BaseException as e:
            errs.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errs, errs
    assert sorted(seen) == list(range(n))  # every record once: all were accepted in time
    assert sum(1 for offs in got.values() if offs) >= 2, {i: len(o) for i, o in got.items()}
    _wait_start_offset(b.bootstrap, group, n)


def test_unacknowledged_records_come_back_after_the_lock_times_out(broker_factory):
    b = broker_factory(dict(BASE, **{"group.share.record.lock.duration.ms": LOCK_MS}))
    topic, group = "tasks", "workers"
    _setup(b.bootstrap, topic, group, 5, batch=5, admin=False)
    slow = _consumer(b.bootstrap, group, **{"share.acknowledgement.mode": "explicit"})
    slow.subscribe([topic])
    first: list[Any] = []
    deadline = time.monotonic() + 20
    while len(first) < 5 and time.monotonic() < deadline:
        first += [m for m in slow.poll(0.5) if m.error() is None]
    assert [m.offset() for m in first] == [0, 1, 2, 3, 4]
    assert all(m.delivery_count() == 1 for m in first)
    t_acquired = time.monotonic()
    # the slow consumer never acknowledges; another one gets the records once the lock expires
    other = _consumer(b.bootstrap, group)
    other.subscribe([topic])
    again: list[Any] = []
    deadline = time.monotonic() + 20
    while len(again) < 5 and time.monotonic() < deadline:
        again += [m for m in other.poll(0.5) if m.error() is None]
    assert sorted(m.offset() for m in again) == [0, 1, 2, 3, 4]
    assert all(m.delivery_count() == 2 for m in again)
    assert time.monotonic() - t_acquired >= LOCK_MS / 1000 * 0.8
    other.commit_sync()
    _wait_start_offset(b.bootstrap, group, 5)
    other.close()
    slow.close()


def test_rejected_records_are_archived_released_ones_come_back(broker_factory):
    b = broker_factory(dict(BASE))
    topic, group = "tasks", "workers"
    _setup(b.bootstrap, topic, group, 6, batch=6)
    c = _consumer(b.bootstrap, group, **{"share.acknowledgement.mode": "explicit"})
    c.subscribe([topic])
    msgs: list[Any] = []
    deadline = time.monotonic() + 20
    while len(msgs) < 6 and time.monotonic() < deadline:
        batch = [m for m in c.poll(0.5) if m.error() is None]
        msgs += batch
    assert [m.offset() for m in msgs] == list(range(6))
    kinds = {0: ck.AcknowledgeType.ACCEPT, 1: ck.AcknowledgeType.REJECT, 2: ck.AcknowledgeType.RELEASE,
             3: ck.AcknowledgeType.REJECT, 4: ck.AcknowledgeType.ACCEPT, 5: ck.AcknowledgeType.ACCEPT}
    for m in msgs:
        c.acknowledge(m, kinds[m.offset()])
    res = c.commit_sync()
    assert all(v is None for v in res.values()), res
    # only the released record comes back, with its second delivery
    back: list[Any] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for m in c.poll(0.5):
            if m.error() is None:
                back.append(m)
                c.acknowledge(m, ck.AcknowledgeType.ACCEPT)
        if back:
            c.commit_sync()
    assert [(m.offset(), m.delivery_count()) for m in back] == [(2, 2)]
    _wait_start_offset(b.bootstrap, group, 6)  # the rejected ones are archived: nothing left
    c.close()


def test_nothing_lost_across_a_broker_restart(broker_factory):
    b = broker_factory(dict(BASE, **{"group.share.record.lock.duration.ms": LOCK_MS}))
    topic, group, n = "tasks", "workers", 40
    _setup(b.bootstrap, topic, group, n, batch=10)
    accepted: list[int] = []
    c = _consumer(b.bootstrap, group, **{"share.acknowledgement.mode": "explicit", "max.poll.records": 10})
    c.subscribe([topic])
    deadline = time.monotonic() + 20
    while len(accepted) < 10 and time.monotonic() < deadline:
        for m in c.poll(0.5):
            if m.error() is None:
                c.acknowledge(m, ck.AcknowledgeType.ACCEPT)
                accepted.append(m.offset())
        c.commit_sync()
    assert len(accepted) >= 10
    c.close()
    b.restart(kill=True)
    later: list[int] = []
    c = _consumer(b.bootstrap, group)
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while len(set(accepted) | set(later)) < n and time.monotonic() < deadline:
        later += [m.offset() for m in c.poll(0.5) if m.error() is None]
    c.commit_sync()
    c.close()
    assert not set(accepted) & set(later)  # accepted before the restart: never again
    assert sorted(set(accepted) | set(later)) == list(range(n))
    _wait_start_offset(b.bootstrap, group, n)
