"""The classic group state machine, driven in-process (no sockets) under
trio's virtual clock: every transition, timeout and error code the
coordinator answers, checked against Kafka's GroupMetadataManager rules."""

from __future__ import annotations

import trio
import trio.testing

from pykbroker.protocol import errors
from group_helpers import Results, assignment, hreq, join_new, jreq, make_state, sreq, start, subscription

V = 5  # JoinGroup version librdkafka sends


async def stable_group(c, nursery, gid, n, **kw):
    """n members joined and synced; returns their join responses (leader first)."""
    res = Results()
    for i in range(n):
        res.start(nursery, f"m{i}", join_new, c, gid, V, **kw)
        await trio.sleep(0)  # joins arrive in order
    joins = [await res.get(f"m{i}") for i in range(n)]
    gen = joins[0]["generation_id"]
    leader = joins[0]["leader"]
    assert all(j["error_code"] == 0 and j["generation_id"] == gen for j in joins)
    for j in joins:
        if j["member_id"] != leader:
            res.start(nursery, "s" + j["member_id"], c.sync_group, sreq(gid, gen, j["member_id"]), 3)
    plan = {j["member_id"]: assignment({"t": [i]}) for i, j in enumerate(joins)}
    lr = await c.sync_group(sreq(gid, gen, leader, plan), 3)
    assert lr["error_code"] == 0
    for j in joins:
        if j["member_id"] != leader:
            assert (await res.get("s" + j["member_id"]))["assignment"] == plan[j["member_id"]]
    assert c.groups[gid].state == "Stable"
    return joins


async def test_first_join_member_id_required_then_stable(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    r = await c.join_group(jreq("g"), 4, "cid", "/127.0.0.1")
    assert r["error_code"] == errors.MEMBER_ID_REQUIRED and r["member_id"].startswith("cid-")
    assert c.groups["g"].state == "Empty" and r["member_id"] in c.groups["g"].pending_join
    r2 = await c.join_group(jreq("g", r["member_id"]), 4, "cid", "/127.0.0.1")
    assert r2["error_code"] == 0 and r2["generation_id"] == 1
    assert r2["leader"] == r["member_id"] == r2["member_id"]
    assert r2["protocol_name"] == "range" and r2["protocol_type"] == "consumer"
    assert [m["member_id"] for m in r2["members"]] == [r["member_id"]]
    assert c.groups["g"].state == "CompletingRebalance"
    s = await c.sync_group(sreq("g", 1, r["member_id"], {r["member_id"]: b"A"}), 3)
    assert (s["error_code"], s["assignment"]) == (0, b"A")
    assert c.groups["g"].state == "Stable"


async def test_v3_join_needs_no_member_id(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    r = await c.join_group(jreq("g"), 3, "cid", "/h")
    assert r["error_code"] == 0 and r["member_id"] and r["generation_id"] == 1


async def test_second_member_rebalance_leader_gets_all_metadata(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    (a,) = await stable_group(c, nursery, "g", 1, protocols=[("range", subscription("t", "u"))])
    res = Results()
    res.start(nursery, "b", join_new, c, "g", V, protocols=[("range", subscription("t"))])
    await trio.sleep(0.01)
    g = c.groups["g"]
    assert g.state == "PreparingRebalance" and not res.done("b")
    # the first member learns of the rebalance through its heartbeat
    assert await c.heartbeat(hreq("g", 1, a["member_id"])) == errors.REBALANCE_IN_PROGRESS
    ra = await c.join_group(jreq("g", a["member_id"], protocols=[("range", subscription("t", "u"))]), V, "c", "/h")
    rb = await res.get("b")
    assert ra["generation_id"] == rb["generation_id"] == 2
    assert ra["leader"] == a["member_id"] == rb["leader"]
    metas = {m["member_id"]: m["metadata"] for m in ra["members"]}
    assert metas == {a["member_id"]: subscription("t", "u"), rb["member_id"]: subscription("t")}
    assert rb["members"] == []
    # the follower's SyncGroup waits for the leader's
    res.start(nursery, "sb", c.sync_group, sreq("g", 2, rb["member_id"]), 3)
    await trio.sleep(0.01)
    assert not res.done("sb")
    await c.sync_group(sreq("g", 2, a["member_id"], {rb["member_id"]: b"B", a["member_id"]: b"A"}), 3)
    assert (await res.get("sb"))["assignment"] == b"B"
    assert g.subscribed_topics == {"t", "u"}


async def test_protocol_chosen_by_vote(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    res = Results()
    prefs = [[("range", b"1"), ("roundrobin", b"2"), ("sticky", b"3")],
             [("roundrobin", b"2"), ("range", b"1")],
             [("roundrobin", b"2"), ("range", b"1"), ("sticky", b"3")]]
    for i, p in enumerate(prefs):
        res.start(nursery, str(i), c.join_group, jreq("g", protocols=p), 3, "c", "/h")
        await trio.sleep(0)
    out = [await res.get(str(i)) for i in range(3)]
    # sticky is not supported by all; roundrobin has two votes
    assert {r["protocol_name"] for r in out} == {"roundrobin"}
    leader = next(r for r in out if r["members"])
    assert {m["metadata"] for m in leader["members"]} == {b"2"}


async def test_join_errors(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path, group_max_size=2))
    # session timeout outside [min, max]
    r = await c.join_group(jreq("g", session=50), V, "c", "/h")
    assert r["error_code"] == errors.INVALID_SESSION_TIMEOUT
    r = await c.join_group(jreq("g", session=1_800_001), V, "c", "/h")
    assert r["error_code"] == errors.INVALID_SESSION_TIMEOUT
    # empty group id
    assert (await c.join_group(jreq(""), V, "c", "/h"))["error_code"] == errors.INVALID_GROUP_ID
    # no protocols / no protocol type
    assert (await c.join_group(jreq("g", protocols=[]), V, "c", "/h"))["error_code"] == \
        errors.INCONSISTENT_GROUP_PROTOCOL
    assert (await c.join_group(jreq("g", ptype=""), V, "c", "/h"))["error_code"] == \
        errors.INCONSISTENT_GROUP_PROTOCOL
    # unknown member id in an unknown group
    r = await c.join_group(jreq("nope", "someone"), V, "c", "/h")
    assert (r["error_code"], r["member_id"]) == (errors.UNKNOWN_MEMBER_ID, "someone")
    await stable_group(c, nursery, "h", 1)
    # unknown member id in a known group
    r = await c.join_group(jreq("h", "someone"), V, "c", "/h")
    assert r["error_code"] == errors.UNKNOWN_MEMBER_ID
    await stable_group(c, nursery, "g", 2)
    # in a full group even an unknown member id is refused for the size first (as Kafka)
    r = await c.join_group(jreq("g", "someone"), V, "c", "/h")
    assert r["error_code"] == errors.GROUP_MAX_SIZE_REACHED
    # other protocol type, or protocols the group does not share
    r = await c.join_group(jreq("h", ptype="connect"), V, "c", "/h")
    assert r["error_code"] == errors.INCONSISTENT_GROUP_PROTOCOL
    r = await c.join_group(jreq("h", protocols=[("sticky", b"")]), V, "c", "/h")
    assert r["error_code"] == errors.INCONSISTENT_GROUP_PROTOCOL
    # group.max.size = 2
    r = await join_new(c, "g", 3)
    assert r["error_code"] == errors.GROUP_MAX_SIZE_REACHED
    assert c.groups["g"].state == "Stable"


async def test_heartbeat_errors_exactly_where_kafka_answers_them(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    assert await c.heartbeat(hreq("nope", 1, "m")) == errors.UNKNOWN_MEMBER_ID
    assert await c.heartbeat(hreq("", 1, "m")) == errors.INVALID_GROUP_ID
    (a, b) = await stable_group(c, nursery, "g", 2)
    assert await c.heartbeat(hreq("g", 1, a["member_id"])) == errors.NONE
    assert await c.heartbeat(hreq("g", 0, a["member_id"])) == errors.ILLEGAL_GENERATION
    assert await c.heartbeat(hreq("g", 1, "ghost")) == errors.UNKNOWN_MEMBER_ID
    assert await c.heartbeat(hreq("g", 1, a["member_id"], instance="i1")) == errors.UNKNOWN_MEMBER_ID
    # a stale generation in SyncGroup too
    assert (await c.sync_group(sreq("g", 7, a["member_id"]), 3))["error_code"] == errors.ILLEGAL_GENERATION
    assert (await c.sync_group(sreq("g", 1, "ghost"), 3))["error_code"] == errors.UNKNOWN_MEMBER_ID
    assert (await c.sync_group(sreq("g", 1, a["member_id"], ptype="connect"), 3))["error_code"] == \
        errors.INCONSISTENT_GROUP_PROTOCOL
    # rebalance in progress: heartbeat says so, sync too
    res = Results()
    res.start(nursery, "new", join_new, c, "g", V)
    await trio.sleep(0.01)
    assert await c.heartbeat(hreq("g", 1, b["member_id"])) == errors.REBALANCE_IN_PROGRESS
    assert (await c.sync_group(sreq("g", 1, b["member_id"]), 3))["error_code"] == errors.REBALANCE_IN_PROGRESS
    # everyone leaves: Empty group answers UNKNOWN_MEMBER_ID
    new_id = next(iter(c.groups["g"].members.keys() - {a["member_id"], b["member_id"]}))
    await c.leave_group("g", [{"member_id": m, "group_instance_id": None}
                              for m in (a["member_id"], b["member_id"], new_id)])
    assert (await res.get("new"))["error_code"] == errors.UNKNOWN_MEMBER_ID
    assert c.groups["g"].state == "Empty"
    assert await c.heartbeat(hreq("g", 2, a["member_id"])) == errors.UNKNOWN_MEMBER_ID


async def test_session_timeout_expels_silent_member(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path))
    a, b = await stable_group(c, nursery, "g", 2, session=3000)
    t0 = trio.current_time()
    # a keeps heartbeating, b is silent
    while c.groups["g"].state == "Stable":
        assert await c.heartbeat(hreq("g", 1, a["member_id"])) == 0
        await trio.sleep(0.5)
    assert 2.9 <= trio.current_time() - t0 <= 3.6
    assert b["member_id"] not in c.groups["g"].members
    assert await c.heartbeat(hreq("g", 1, a["member_id"])) == errors.REBALANCE_IN_PROGRESS
    r = await c.join_group(jreq("g", a["member_id"], session=3000), V, "c", "/h")
    assert r["generation_id"] == 2 and [m["member_id"] for m in r["members"]] == [a["member_id"]]
    assert await c.heartbeat(hreq("g", 1, b["member_id"])) == errors.UNKNOWN_MEMBER_ID


async def test_rebalance_timeout_drops_members_that_do_not_rejoin(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path))
    a, b = await stable_group(c, nursery, "g", 2, session=60_000, rebalance=5000)
    t0 = trio.current_time()
    # a rejoins (e.g. new subscription); b never does
    r = await c.join_group(jreq("g", a["member_id"], rebalance=5000, session=60_000,
                                protocols=[("range", subscription("t", "x"))]), V, "c", "/h")
    assert 4.9 <= trio.current_time() - t0 <= 5.2
    assert r["generation_id"] == 2 and [m["member_id"] for m in r["members"]] == [a["member_id"]]
    assert b["member_id"] not in c.groups["g"].members


async def test_sync_timeout_drops_members_that_do_not_sync(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path))
    res = Results()
    res.start(nursery, "a", join_new, c, "g", V, rebalance=2000)
    await trio.sleep(0)
    res.start(nursery, "b", join_new, c, "g", V, rebalance=2000)
    a, b = await res.get("a"), await res.get("b")
    lead = a if a["members"] else b
    other = b if lead is a else a
    # only the follower syncs; the leader never sends its SyncGroup
    res.start(nursery, "sync", c.sync_group, sreq("g", 1, other["member_id"]), 3)
    t0 = trio.current_time()
    s = await res.get("sync")
    assert s["error_code"] == errors.REBALANCE_IN_PROGRESS
    assert 1.9 <= trio.current_time() - t0 <= 2.2
    assert lead["member_id"] not in c.groups["g"].members
    assert c.groups["g"].state == "PreparingRebalance"


async def test_initial_rebalance_delay_collects_joins(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path, group_initial_rebalance_delay_ms=300))
    res = Results()
    t0 = trio.current_time()
    for i in range(3):
        res.start(nursery, str(i), join_new, c, "g", V)
        await trio.sleep(0.1)
    out = [await res.get(str(i)) for i in range(3)]
    assert {r["generation_id"] for r in out} == {1}
    assert sum(len(r["members"]) for r in out) == 3  # the leader sees all three
    # each new member extended the delay (up to the rebalance timeout)
    assert 0.5 <= trio.current_time() - t0 <= 0.9


async def test_static_member_rejoin_keeps_assignment_without_rebalance(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    res = Results()
    for i in range(2):
        res.start(nursery, str(i), c.join_group, jreq("g", instance=f"inst-{i}"), V, "c", "/h")
        await trio.sleep(0)
    j0, j1 = await res.get("0"), await res.get("1")
    assert j0["member_id"].startswith("inst-0-")  # static members skip MEMBER_ID_REQUIRED
    lead, other = (j0, j1) if j0["members"] else (j1, j0)
    res.start(nursery, "s", c.sync_group, sreq("g", 1, other["member_id"]), 3)
    await c.sync_group(sreq("g", 1, lead["member_id"], {j0["member_id"]: b"P0", j1["member_id"]: b"P1"}), 3)
    await res.get("s")
    g = c.groups["g"]
    # inst-1 restarts: a new JoinGroup with its instance id and no member id
    r = await c.join_group(jreq("g", instance="inst-1"), V, "c", "/h")
    assert r["error_code"] == 0 and r["generation_id"] == 1 and r["member_id"] != j1["member_id"]
    assert g.state == "Stable" and g.generation_id == 1
    s = await c.sync_group(sreq("g", 1, r["member_id"], instance="inst-1"), 3)
    assert s["assignment"] == b"P1"
    # the other member saw nothing
    assert await c.heartbeat(hreq("g", 1, j0["member_id"], "inst-0")) == errors.NONE
    # the old incarnation is fenced
    assert await c.heartbeat(hreq("g", 1, j1["member_id"], "inst-1")) == errors.FENCED_INSTANCE_ID
    r2 = await c.join_group(jreq("g", j1["member_id"], instance="inst-1"), V, "c", "/h")
    assert r2["error_code"] == errors.FENCED_INSTANCE_ID


async def test_static_leader_rejoin_v9_skips_assignment(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    j = await c.join_group(jreq("g", instance="solo"), 9, "c", "/h")
    await c.sync_group(sreq("g", 1, j["member_id"], {j["member_id"]: b"X"}), 5)
    r = await c.join_group(jreq("g", instance="solo"), 9, "c", "/h")
    assert r["skip_assignment"] is True and r["leader"] == r["member_id"] and len(r["members"]) == 1
    r = await c.join_group(jreq("g", instance="solo"), 5, "c", "/h")
    assert r["skip_assignment"] is False and r["leader"] != r["member_id"]  # old leader id (Kafka < v9)


async def test_leave_group(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    a, b = await stable_group(c, nursery, "g", 2)
    out = await c.leave_group("g", [{"member_id": a["member_id"], "group_instance_id": None},
                                    {"member_id": "ghost", "group_instance_id": None}])
    assert [m["error_code"] for m in out["members"]] == [0, errors.UNKNOWN_MEMBER_ID]
    g = c.groups["g"]
    assert g.leader_id == b["member_id"] and g.state == "PreparingRebalance"
    r = await c.join_group(jreq("g", b["member_id"]), V, "c", "/h")
    assert r["generation_id"] == 2 and r["leader"] == b["member_id"]
    out = await c.leave_group("nope", [{"member_id": "x", "group_instance_id": None}])
    assert out["members"][0]["error_code"] == errors.UNKNOWN_MEMBER_ID


async def test_offset_commit_rules(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    c.state.create_topic("t", 2)
    commit = c.commit_offsets
    p = [("t", 0, 5, -1, "meta")]
    # no group, generation -1: a simple group is created and the commit accepted
    assert await commit("simple", -1, "", None, -1, 8, p) == {("t", 0): 0}
    assert c.groups["simple"].state == "Empty" and c.groups["simple"].protocol_type is None
    # no group, with a generation
    assert await commit("nope", 3, "m", None, -1, 8, p) == {("t", 0): errors.ILLEGAL_GENERATION}
    assert await commit("nope", 3, "m", None, -1, 9, p) == {("t", 0): errors.GROUP_ID_NOT_FOUND}
    a, b = await stable_group(c, nursery, "g", 2)
    assert await commit("g", 1, a["member_id"], None, -1, 8, p) == {("t", 0): 0}
    assert await commit("g", 0, a["member_id"], None, -1, 8, p) == {("t", 0): errors.ILLEGAL_GENERATION}
    assert await commit("g", 1, "ghost", None, -1, 8, p) == {("t", 0): errors.UNKNOWN_MEMBER_ID}
    # generation -1 from outside while the group has members
    assert await commit("g", -1, "", None, -1, 8, p) == {("t", 0): errors.UNKNOWN_MEMBER_ID}
    big = [("t", 1, 1, -1, "x" * 4097)]
    assert await commit("g", 1, a["member_id"], None, -1, 8, big) == {("t", 1): errors.OFFSET_METADATA_TOO_LARGE}
    code, topics = c.fetch_offsets("g", [("t", [0, 1])])
    (name, parts), = topics
    assert code == 0 and parts[0][1].offset == 5 and parts[0][1].metadata == "meta" and parts[1][1] is None
    # CompletingRebalance: REBALANCE_IN_PROGRESS
    res = Results()
    res.start(nursery, "x", join_new, c, "g", V)
    await trio.sleep(0.01)
    res.start(nursery, "a", c.join_group, jreq("g", a["member_id"]), V, "c", "/h")
    res.start(nursery, "b", c.join_group, jreq("g", b["member_id"]), V, "c", "/h")
    await res.get("x")
    assert c.groups["g"].state == "CompletingRebalance"
    assert await commit("g", 2, b["member_id"], None, -1, 8, p) == {("t", 0): errors.REBALANCE_IN_PROGRESS}
    assert (await res.get("a"))["generation_id"] == (await res.get("b"))["generation_id"] == 2


async def test_offsets_and_groups_survive_restart(tmp_path, nursery):
    st = make_state(tmp_path)
    async with trio.open_nursery() as first:
        c = await start(first, st)
        st.create_topic("t", 3)
        a, b = await stable_group(c, first, "g", 2, session=1500)
        r = await c.commit_offsets("g", 1, a["member_id"], None, -1, 8,
                                   [("t", 0, 42, 7, "m0"), ("t", 1, 43, -1, ""), ("t", 2, 1, -1, "")])
        assert set(r.values()) == {0}
        await c.commit_offsets("g", 1, a["member_id"], None, -1, 8, [("t", 2, 44, -1, "again")])
        await c.commit_offsets("simple", -1, "", None, -1, 8, [("t", 0, 9, -1, "")])
        first.cancel_scope.cancel()  # the broker stops
    st.close()
    # a new broker on the same log dir (real time: loading runs in worker threads)
    st2 = make_state(tmp_path)
    c2 = GroupCoordinatorNoRun(st2)
    assert c2.availability("g") == errors.COORDINATOR_LOAD_IN_PROGRESS
    nursery.start_soon(c2.run)
    await c2.loaded.wait()
    assert c2.availability("g") == 0
    _, topics = c2.fetch_offsets("g", None)
    got = {(t, p): (om.offset, om.leader_epoch, om.metadata) for t, ps in topics for p, om in ps}
    assert got == {("t", 0): (42, 7, "m0"), ("t", 1): (43, -1, ""), ("t", 2): (44, -1, "again")}
    assert c2.fetch_offsets("simple", [("t", [0])])[1][0][1][0][1].offset == 9
    g = c2.groups["g"]
    assert g.state == "Stable" and g.generation_id == 1 and set(g.members) == {a["member_id"], b["member_id"]}
    assert g.members[b["member_id"]].assignment == assignment({"t": [1]})
    # the loaded members must heartbeat within their session timeout
    with trio.fail_after(5):
        while g.state != "Empty":
            await trio.sleep(0.05)
    assert not g.members
    st2.close()


def GroupCoordinatorNoRun(st):
    return st.group_coordinator


async def test_offset_retention_expiry(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    c.state.create_topic("t", 1)
    await c.commit_offsets("simple", -1, "", None, -1, 8, [("t", 0, 1, -1, "")])
    await c.commit_offsets("explicit", -1, "", None, 1000, 2, [("t", 0, 1, -1, "")])  # v2 retention time
    a, = await stable_group(c, nursery, "live", 1, protocols=[("range", subscription("t"))])
    await c.commit_offsets("live", 1, a["member_id"], None, -1, 8, [("t", 0, 3, -1, "")])
    now = c.groups["simple"].state_timestamp
    assert await c.expire_offsets(now + 2000) == 1  # only the explicit expire timestamp passed
    assert "explicit" not in c.groups and "simple" in c.groups
    week = 7 * 24 * 3600 * 1000
    # the stable "live" group is subscribed to t: its offset is kept
    assert await c.expire_offsets(now + week + 60_000) == 1
    assert "simple" not in c.groups and "simple" not in c.offsets
    assert c.fetch_offsets("live", [("t", [0])])[1][0][1][0][1].offset == 3


async def test_offset_commit_retention_of_long_max_never_expires(tmp_path, nursery):
    """OffsetCommit v2-v4 with retention_time_ms = Long.MAX_VALUE (fuzzer
    finding: the expire timestamp overflowed its int64 and the handler failed)."""
    c = await start(nursery, make_state(tmp_path))
    c.state.create_topic("t", 1)
    r = await c.commit_offsets("forever", -1, "", None, 2**63 - 1, 4, [("t", 0, 5, -1, "")])
    assert r == {("t", 0): 0}
    assert await c.expire_offsets(c.groups["forever"].state_timestamp + 10 * 365 * 24 * 3600 * 1000) == 0
    assert c.offsets["forever"][("t", 0)].offset == 5


async def test_delete_groups(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    c.state.create_topic("t", 1)
    await stable_group(c, nursery, "busy", 1)
    await c.commit_offsets("idle", -1, "", None, -1, 8, [("t", 0, 1, -1, "")])
    out = dict(await c.delete_groups(["busy", "idle", "nope"]))
    assert out == {"busy": 68, "idle": 0, "nope": errors.GROUP_ID_NOT_FOUND}
    assert "idle" not in c.groups and c.fetch_offsets("idle", [("t", [0])])[1][0][1][0][1] is None


async def test_oversized_metadata_fails_sync_and_group_recovers(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path))
    a, = await stable_group(c, nursery, "g", 1, session=60_000, rebalance=3000)
    res = Results()
    huge = subscription("t") + b"\0" * 1_100_000
    res.start(nursery, "big", join_new, c, "g", V, protocols=[("range", huge)], session=60_000, rebalance=3000)
    await trio.sleep(0.01)
    ja = await c.join_group(jreq("g", a["member_id"], session=60_000, rebalance=3000), V, "c", "/h")
    big = await res.get("big")
    assert ja["generation_id"] == big["generation_id"] == 2
    res.start(nursery, "bigsync", c.sync_group, sreq("g", 2, big["member_id"]), 3)
    await trio.sleep(0.01)
    s = await c.sync_group(sreq("g", 2, a["member_id"], {a["member_id"]: b"A", big["member_id"]: b"B"}), 3)
    # the GroupMetadata record exceeds max.message.bytes: Kafka's answer
    assert s["error_code"] == errors.UNKNOWN_SERVER_ERROR
    assert (await res.get("bigsync"))["error_code"] == errors.UNKNOWN_SERVER_ERROR
    assert c.groups["g"].state == "PreparingRebalance"
    # the normal member rejoins; the big one gives up and is dropped after the rebalance timeout
    ja = await c.join_group(jreq("g", a["member_id"], session=60_000, rebalance=3000), V, "c", "/h")
    assert ja["error_code"] == 0 and [m["member_id"] for m in ja["members"]] == [a["member_id"]]
    s = await c.sync_group(sreq("g", ja["generation_id"], a["member_id"], {a["member_id"]: b"A"}), 3)
    assert s["error_code"] == 0 and c.groups["g"].state == "Stable"


async def test_load_in_progress_until_loaded(tmp_path, nursery):
    st = make_state(tmp_path)
    async with trio.open_nursery() as first:
        c = await start(first, st)
        await c.commit_offsets("g", -1, "", None, -1, 8, [("t", 0, 1, -1, "")])
        first.cancel_scope.cancel()
    st.close()
    st2 = make_state(tmp_path)
    c2 = GroupCoordinatorNoRun(st2)
    r = await c2.join_group(jreq("g"), V, "c", "/h")
    assert r["error_code"] == errors.COORDINATOR_LOAD_IN_PROGRESS
    assert (await c2.commit_offsets("g", -1, "", None, -1, 8, [("t", 0, 2, -1, "")])) == \
        {("t", 0): errors.COORDINATOR_LOAD_IN_PROGRESS}
    assert c2.fetch_offsets("g", None)[0] == errors.COORDINATOR_LOAD_IN_PROGRESS
    assert await c2.heartbeat(hreq("g", 1, "m")) == 0  # accepted blindly while loading, as Kafka
    nursery.start_soon(c2.run)
    await c2.loaded.wait()
    assert (await c2.join_group(jreq("g"), V, "c", "/h"))["error_code"] == errors.MEMBER_ID_REQUIRED
    st2.close()


async def test_initial_join_waits_for_members_told_member_id_required(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path))
    # b got its member id (MEMBER_ID_REQUIRED) before a's join phase started
    pending_b = await c.join_group(jreq("g", session=4000), V, "c", "/h")
    assert pending_b["error_code"] == errors.MEMBER_ID_REQUIRED
    res = Results()
    res.start(nursery, "a", join_new, c, "g", V, session=4000)
    await trio.sleep(0.05)
    assert not res.done("a")  # waits for b, which is due back with its id
    rb = await c.join_group(jreq("g", pending_b["member_id"], session=4000), V, "c", "/h")
    ra = await res.get("a")
    assert ra["generation_id"] == rb["generation_id"] == 1 and len(ra["members"] or rb["members"]) == 2
    # a pending member that never comes back is dropped when its session times out
    ghost = await c.join_group(jreq("h", session=4000), V, "c", "/h")
    t0 = trio.current_time()
    r = await join_new(c, "h", V, session=4000)
    assert r["generation_id"] == 1 and [m["member_id"] for m in r["members"]] == [r["member_id"]]
    assert 3.9 <= trio.current_time() - t0 <= 4.2 and ghost["member_id"] not in c.groups["h"].pending_join


async def _restarted_not_leading(tmp_path):  # type: ignore[no-untyped-def]
    """Group "g" with one member and offset 42 committed for t-0; then the
    broker's state opened again with its replica of every __consumer_offsets
    partition not leading (add a partition to ``leading`` to grant it) and
    nothing loading. Returns (state, coordinator, leading, the member)."""
    from pykbroker.group.records import OFFSETS_TOPIC

    st = make_state(tmp_path)
    async with trio.open_nursery() as first:
        c = await start(first, st)
        st.create_topic("t", 1)
        a, = await stable_group(c, first, "g", 1, session=30000)
        r = await c.commit_offsets("g", 1, a["member_id"], None, -1, 8, [("t", 0, 42, -1, "")])
        assert set(r.values()) == {0}
        first.cancel_scope.cancel()
    st.close()
    st = make_state(tmp_path)
    c = st.group_coordinator
    leading: set[int] = set()
    real_is_leader = st.replicas.is_leader
    st.replicas.is_leader = lambda p: (p.index in leading if p.topic == OFFSETS_TOPIC  # type: ignore[method-assign]
                                       else real_is_leader(p))
    c.loading.clear()
    c.epochs.clear()  # as if constructed while not leading (the patch above came after)
    return st, c, leading, a


async def test_not_coordinator_until_leading_and_loaded(tmp_path, nursery):
    """Issue 12 (nemesis, finding 4): a broker restarted after a kill -9 sees
    ZooKeeper still naming it the leader of the group's __consumer_offsets
    partition before the controller moves it; its replica does not lead.
    Its coordinator had loaded nothing and served the group from scratch
    (generation 0, UNKNOWN_MEMBER_ID / no committed offsets) next to the real
    coordinator. It must answer NOT_COORDINATOR until its replica leads and
    the partition is loaded."""
    from pykbroker.group.records import OFFSETS_TOPIC

    st, c, leading, a = await _restarted_not_leading(tmp_path)
    c.loaded.set()
    part = c.partition_for("g")
    await start(nursery, st)
    assert c.fetch_offsets("g", None)[0] == errors.NOT_COORDINATOR
    assert set((await c.commit_offsets("g", 1, a["member_id"], None, -1, 8, [("t", 0, 43, -1, "")])).values()) == \
        {errors.NOT_COORDINATOR}
    assert (await c.join_group(jreq("g", ""), 4, "c", "/h"))["error_code"] == errors.NOT_COORDINATOR
    assert await c.heartbeat(hreq("g", 1, a["member_id"])) == errors.NOT_COORDINATOR
    leading.add(part)
    st.partition(OFFSETS_TOPIC, part).leader_epoch = 1  # as the cluster sets it before telling
    c._on_leadership(OFFSETS_TOPIC, part, True, 1)
    with trio.fail_after(10):
        while c.fetch_offsets("g", None)[0] == errors.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.02)
    code, topics = c.fetch_offsets("g", None)
    assert code == 0 and topics[0][1][0][1].offset == 42
    assert c.groups["g"].generation_id == 1 and a["member_id"] in c.groups["g"].members
    st.close()


async def test_leadership_at_a_new_epoch_during_a_load_still_loads(tmp_path, nursery, monkeypatch):
    """Issue 12: a second leadership notice (a later epoch) while the
    partition's load is in flight. The stale load skipped the partition and
    no new one was started: it stayed loading for good
    (COORDINATOR_LOAD_IN_PROGRESS to every member, ``loaded`` never set, so
    transactions found in PrepareAbort at load were never completed).
    The load in flight now finishes at the later epoch (still leading: the
    state stays, as in Kafka)."""
    from pykbroker.group.records import OFFSETS_TOPIC

    st, c, leading, _ = await _restarted_not_leading(tmp_path)
    part = c.partition_for("g")
    await start(nursery, st)
    leading.add(part)
    # the first load is held inside its read of the log while the second
    # leadership notice (a later epoch) arrives
    import threading
    from pykbroker.group import coordinator as gc_module

    reading, go_on = threading.Event(), threading.Event()
    real_read = gc_module._read_partition

    def held_read(plog):  # type: ignore[no-untyped-def]
        reading.set()
        go_on.wait(10)
        return real_read(plog)

    monkeypatch.setattr(gc_module, "_read_partition", held_read)
    st.partition(OFFSETS_TOPIC, part).leader_epoch = 1
    c._on_leadership(OFFSETS_TOPIC, part, True, 1)
    assert await trio.to_thread.run_sync(reading.wait, 10)
    st.partition(OFFSETS_TOPIC, part).leader_epoch = 2
    c._on_leadership(OFFSETS_TOPIC, part, True, 2)
    go_on.set()
    with trio.fail_after(10):
        while c.fetch_offsets("g", None)[0] == errors.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.02)
    code, topics = c.fetch_offsets("g", None)
    assert code == 0 and topics[0][1][0][1].offset == 42
    assert c.loading == set() and c.loaded.is_set() and c.epochs[part] == 2
    st.close()


async def test_writes_fenced_by_leader_epoch(tmp_path, nursery):
    """Issue 12: the coordinator's appends to __consumer_offsets carry the
    leader epoch its state was loaded at. When the partition's epoch moved on
    (another broker may have led it in between, its groups changed there), a
    write decided on the old state is refused (NOT_COORDINATOR for the
    client), nothing reaches the log, and the coordinator unloads the
    partition (reloading it at the new epoch when it still leads)."""
    from pykbroker.group import records
    from pykbroker.group.records import OFFSETS_TOPIC

    st = make_state(tmp_path)
    c = await start(nursery, st)
    st.create_topic("t", 1)
    a, = await stable_group(c, nursery, "g", 1, session=30000)
    mid = a["member_id"]
    assert set((await c.commit_offsets("g", 1, mid, None, -1, 8, [("t", 0, 42, -1, "")])).values()) == {0}
    part = c.partition_for("g")
    p = st.partition(OFFSETS_TOPIC, part)
    loaded_at = p.leader_epoch
    assert c.epochs[part] == loaded_at
    end = p.log.log_end_offset

    async def loaded() -> None:
        with trio.fail_after(10):
            while c.fetch_offsets("g", None)[0] == errors.COORDINATOR_LOAD_IN_PROGRESS:
                await trio.sleep(0.02)

    # 1. the epoch moved on before the leadership listener told the coordinator
    p.leader_epoch = loaded_at + 1
    r = await c.commit_offsets("g", 1, mid, None, -1, 8, [("t", 0, 43, -1, "")])
    assert set(r.values()) == {errors.NOT_COORDINATOR}
    assert p.log.log_end_offset == end  # nothing written
    assert c.epochs[part] == loaded_at + 1  # unloaded, loading again at the new epoch (the replica still leads)
    await loaded()
    code, topics = c.fetch_offsets("g", None)
    assert code == 0 and topics[0][1][0][1].offset == 42
    assert c.groups["g"].generation_id == 1 and mid in c.groups["g"].members
    assert set((await c.commit_offsets("g", 1, mid, None, -1, 8, [("t", 0, 44, -1, "")])).values()) == {0}
    end = p.log.log_end_offset

    # 2. a decision in flight: the lock holder decided at the loaded epoch; the
    # leadership was lost and regained at a later epoch meanwhile (the
    # listener reloaded the partition): its write is still refused
    stale = [(records.offset_commit_key("g", "t", 0),
              records.offset_commit_value(records.OffsetAndMetadata(45, -1, "", 0, -1)))]
    async with c._lock("g"):
        assert c.write_epoch("g") == loaded_at + 1
        p.leader_epoch = loaded_at + 2
        c._on_leadership(OFFSETS_TOPIC, part, False, p.leader_epoch)
        c._on_leadership(OFFSETS_TOPIC, part, True, p.leader_epoch)
        assert await c.write("g", stale) == errors.NOT_LEADER_OR_FOLLOWER
    assert p.log.log_end_offset == end
    await loaded()
    code, topics = c.fetch_offsets("g", None)
    assert code == 0 and topics[0][1][0][1].offset == 44
    # the reloaded coordinator writes at its epoch
    assert await c.write("g", stale) == errors.NONE
    assert p.log.log_end_offset == end + 1
    st.close()


async def test_requests_waiting_for_the_lock_when_the_partition_moves_get_not_coordinator(tmp_path, nursery):
    """Issue 12 (nemesis pause-long run): a heartbeat waited for the group's
    lock behind a transactional offset commit stuck on acks=all; meanwhile
    the partition was unloaded, and the heartbeat then found no group and
    answered UNKNOWN_MEMBER_ID: the consumer dropped its member id and
    rejoined as a new member. The state it waited for is gone: like Kafka's
    Dead group, it answers NOT_COORDINATOR (the client finds the new
    coordinator and keeps its member id); so do the other requests."""
    from pykbroker.group.records import OFFSETS_TOPIC

    st = make_state(tmp_path)
    c = await start(nursery, st)
    st.create_topic("t", 1)
    a, = await stable_group(c, nursery, "g", 1, session=30000)
    part = c.partition_for("g")
    res = Results()
    async with c._lock("g"):  # a slow request holds the group's lock
        res.start(nursery, "hb", c.heartbeat, hreq("g", 1, a["member_id"]))
        res.start(nursery, "commit", c.commit_offsets, "g", 1, a["member_id"], None, -1, 8, [("t", 0, 5, -1, "")])
        res.start(nursery, "join", c.join_group, jreq("g", a["member_id"]), V, "cid", "/h")
        await trio.testing.wait_all_tasks_blocked()
        c._on_leadership(OFFSETS_TOPIC, part, False, 1)  # the partition moves away meanwhile
    assert await res.get("hb") == errors.NOT_COORDINATOR
    assert await res.get("commit") == {("t", 0): errors.NOT_COORDINATOR}
    assert (await res.get("join"))["error_code"] == errors.NOT_COORDINATOR
    st.close()
