"""Share-partition state survives a broker restart (graceful and kill -9):
it is in __share_group_state, written before each answer."""

from __future__ import annotations

import time

import pytest

from pykbroker.protocol import errors

from rawclient import RawClient
from share_helpers import (ACCEPT, REJECT, RELEASE, acquired, alter_offsets, create_topic, join, produce,
                           share_ack, share_fetch, values)


@pytest.mark.parametrize("kill", [False, True], ids=["stop", "kill9"])
def test_share_state_survives_restart(broker_factory, kill):
    b = broker_factory({"share.coordinator.state.topic.num.partitions": 3, "offsets.topic.num.partitions": 3})
    topic, group = "queue", "workers"
    with RawClient(b.bootstrap) as c:
        tid = create_topic(c, topic, 1)
        produce(c, topic, [f"job-{i}".encode() for i in range(10)])
        assert alter_offsets(c, group, topic, {0: 0})["error_code"] == 0
        m, _ = join(c, group, [topic])
        assert acquired(share_fetch(c, group, m, 0, tid)) == [(0, 9, 1)]
        r = share_ack(c, group, m, 1, tid, 0, [(0, 3, [ACCEPT]), (4, 4, [REJECT]), (5, 5, [RELEASE])])
        assert r["responses"][0]["partitions"][0]["error_code"] == 0
        # 6..9 stay acquired by m when the broker goes away
    b.restart(kill=kill)
    with RawClient(b.bootstrap) as c:
        lg = c.call(16, 5, {"states_filter": [], "types_filter": ["share"]})
        deadline = time.monotonic() + 10
        while lg["error_code"] == errors.COORDINATOR_LOAD_IN_PROGRESS and time.monotonic() < deadline:
            time.sleep(0.05)
            lg = c.call(16, 5, {"states_filter": [], "types_filter": ["share"]})
        assert lg["error_code"] == 0
        assert [(g["group_id"], g["group_state"]) for g in lg["groups"]] == [(group, "Empty")]
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        row = d["groups"][0]["topics"][0]["partitions"][0]
        assert row["start_offset"] == 5 and row["lag"] == 5
        m2, _ = join(c, group, [topic])
        r = share_fetch(c, group, m2, 0, tid)
        # nothing accepted or rejected comes back; every other record does, its deliveries counted
        assert acquired(r) == [(5, 9, 2)]
        assert values(r) == {i: f"job-{i}".encode() for i in range(5, 10)}
        assert share_ack(c, group, m2, 1, tid, 0, [(5, 9, [ACCEPT])])["responses"][0]["partitions"][0][
            "error_code"] == 0
    b.restart()
    with RawClient(b.bootstrap) as c:
        d = c.call(90, 1, {"groups": [{"group_id": group, "topics": None}]})
        assert d["groups"][0]["topics"][0]["partitions"][0]["start_offset"] == 10
