"""KIP-848 consumer groups in-process: epochs, server-side assignment,
revoke-before-assign reconciliation, fencing, static members, leave."""

from __future__ import annotations

import trio

from pykbroker.protocol import errors
from group_helpers import make_state, start


def hb(gid, member_id="", epoch=0, *, topics=("t",), owned=(), instance=None, assignor=None,
       rebalance=10_000, full=True, regex=None):
    return {"group_id": gid, "member_id": member_id, "member_epoch": epoch, "instance_id": instance,
            "rack_id": None, "rebalance_timeout_ms": rebalance if full else -1,
            "subscribed_topic_names": list(topics) if (full and topics is not None) else None,
            "subscribed_topic_regex": regex, "server_assignor": assignor,
            "topic_partitions": None if owned is None else [
                {"topic_id": tid, "partitions": sorted(ps)} for tid, ps in dict(owned).items()]}


def parts(resp):
    a = resp["assignment"]
    return None if a is None else {tp["topic_id"]: set(tp["partitions"]) for tp in a["topic_partitions"]}


def check_exclusive(g):
    owned = {}
    for m in g.members.values():
        for a in (m.assigned, m.pending_revocation):
            for tid, ps in a.items():
                for p in ps:
                    assert (tid, p) not in owned, f"partition {p} owned twice"
                    owned[(tid, p)] = m.member_id


async def test_join_rebalance_revoke_before_assign(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    tid = c.state.create_topic("t", 6).topic_id
    r1 = await c.consumer_group_heartbeat(hb("g"), 1, "c1", "/h")
    assert r1["error_code"] == 0 and r1["member_epoch"] == 1 and r1["heartbeat_interval_ms"] == 5000
    m1 = r1["member_id"]
    assert parts(r1) == {tid: set(range(6))}
    g = c.groups["g"]
    assert g.state == "Stable"
    # a second member joins: epoch 2; it gets nothing yet (all six still owned by m1)
    r2 = await c.consumer_group_heartbeat(hb("g", "m2-id"), 1, "c2", "/h")
    assert r2["member_id"] == "m2-id" and r2["member_epoch"] == 2 and parts(r2) == {}
    assert g.state == "Reconciling" and g.group_epoch == 2
    check_exclusive(g)
    # m1's next heartbeat (owned partitions not sent) asks it to revoke three; its epoch stays 1
    r = await c.consumer_group_heartbeat(hb("g", m1, 1, full=False, owned=None), 1, "c1", "/h")
    keep = parts(r)[tid]
    assert r["member_epoch"] == 1 and len(keep) == 3
    # m2 still waits: the three are not released yet
    r = await c.consumer_group_heartbeat(hb("g", "m2-id", 2, full=False, owned=None), 1, "c2", "/h")
    assert r["assignment"] is None and g.members["m2-id"].state == "UNRELEASED_PARTITIONS"
    check_exclusive(g)
    # m1 acknowledges the revocation: moves to epoch 2
    r = await c.consumer_group_heartbeat(hb("g", m1, 1, full=False, owned={tid: keep}), 1, "c1", "/h")
    assert r["member_epoch"] == 2
    r = await c.consumer_group_heartbeat(hb("g", "m2-id", 2, full=False, owned=None), 1, "c2", "/h")
    assert parts(r) == {tid: set(range(6)) - keep}
    assert g.state == "Stable"
    check_exclusive(g)


async def test_epoch_validation_and_fencing(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    tid = c.state.create_topic("t", 2).topic_id
    r = await c.consumer_group_heartbeat(hb("g"), 1, "c", "/h")
    m = r["member_id"]
    bad = await c.consumer_group_heartbeat(hb("g", m, 5, full=False, owned=None), 1, "c", "/h")
    assert bad["error_code"] == errors.FENCED_MEMBER_EPOCH and bad["error_message"]
    bad = await c.consumer_group_heartbeat(hb("g", "ghost", 1, full=False, owned=None), 1, "c", "/h")
    assert bad["error_code"] == errors.UNKNOWN_MEMBER_ID
    # the previous epoch with a subset of the assignment is accepted (lost response)
    await c.consumer_group_heartbeat(hb("g", "m2"), 1, "c", "/h")
    r = await c.consumer_group_heartbeat(hb("g", m, 1, full=False, owned={tid: {0}}), 1, "c", "/h")
    assert r["error_code"] == 0
    # invalid requests
    for req, code in [(hb("g", topics=None), errors.INVALID_REQUEST),
                      (hb("g", owned=None), errors.INVALID_REQUEST),
                      (hb(""), errors.INVALID_REQUEST),
                      (hb("g", "x", -3), errors.INVALID_REQUEST),
                      (hb("g", "", 3), errors.INVALID_REQUEST),
                      (hb("g", assignor="nope"), errors.UNSUPPORTED_ASSIGNOR),
                      (hb("g", regex="(["), errors.INVALID_REGULAR_EXPRESSION)]:
        r = await c.consumer_group_heartbeat(req, 1, "c", "/h")
        assert r["error_code"] == code, (req, r)


async def test_session_timeout_fences_and_leave_reassigns(tmp_path, nursery, autojump_clock):
    c = await start(nursery, make_state(tmp_path, group_consumer_session_timeout_ms=3000))
    tid = c.state.create_topic("t", 4).topic_id
    members = []
    for i in range(2):
        r = await c.consumer_group_heartbeat(hb("g", f"m{i}"), 1, "c", "/h")
        members.append(r)
    g = c.groups["g"]
    # converge
    for _ in range(3):
        for i in range(2):
            m = g.members[f"m{i}"]
            owned = {t: set(p) for t, p in m.assigned.items()}
            await c.consumer_group_heartbeat(hb("g", f"m{i}", m.member_epoch, full=False, owned=owned), 1, "c", "/h")
    assert g.state == "Stable" and {len(m.assigned[tid]) for m in g.members.values()} == {2}
    # m1 goes silent; m0 keeps heartbeating
    t0 = trio.current_time()
    while "m1" in g.members:
        m = g.members["m0"]
        await c.consumer_group_heartbeat(hb("g", "m0", m.member_epoch, full=False,
                                            owned={tid: m.assigned.get(tid, set())}), 1, "c", "/h")
        await trio.sleep(0.25)
    assert 2.9 <= trio.current_time() - t0 <= 3.5
    m = g.members["m0"]
    r = await c.consumer_group_heartbeat(hb("g", "m0", m.member_epoch, full=False, owned={tid: m.assigned[tid]}),
                                         1, "c", "/h")
    assert parts(r) == {tid: {0, 1, 2, 3}}
    # leave (epoch -1)
    r = await c.consumer_group_heartbeat(hb("g", "m0", -1, full=False, owned=None), 1, "c", "/h")
    assert r["error_code"] == 0 and r["member_epoch"] == -1
    assert g.state == "Empty"


async def test_static_member_temporary_leave_keeps_partitions(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    tid = c.state.create_topic("t", 4).topic_id
    for i in range(2):
        await c.consumer_group_heartbeat(hb("g", f"a{i}", instance=f"i{i}"), 1, "c", "/h")
    g = c.groups["g"]
    for _ in range(3):
        for mid in list(g.members):
            m = g.members[mid]
            await c.consumer_group_heartbeat(hb("g", mid, m.member_epoch, full=False, instance=m.instance_id,
                                                owned={t: set(p) for t, p in m.assigned.items()}), 1, "c", "/h")
    before = {m.instance_id: m.assigned[tid] for m in g.members.values()}
    epoch = g.group_epoch
    r = await c.consumer_group_heartbeat(hb("g", "a1", -2, instance="i1", full=False, owned=None), 1, "c", "/h")
    assert r["member_epoch"] == -2
    # a new incarnation with another member id comes back: same partitions, no new group epoch
    r = await c.consumer_group_heartbeat(hb("g", "b1", instance="i1"), 1, "c", "/h")
    assert r["error_code"] == 0 and parts(r) == {tid: before["i1"]}
    assert g.group_epoch == epoch and "a1" not in g.members
    # while i1 is held by b1, another member id with instance i1 is refused
    r = await c.consumer_group_heartbeat(hb("g", "c1", instance="i1"), 1, "c", "/h")
    assert r["error_code"] == errors.UNRELEASED_INSTANCE_ID
    r = await c.consumer_group_heartbeat(hb("g", "a1", 3, instance="i1", full=False, owned=None), 1, "c", "/h")
    assert r["error_code"] == errors.FENCED_INSTANCE_ID


async def test_range_assignor_and_offsets(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    tid = c.state.create_topic("t", 5).topic_id
    r0 = await c.consumer_group_heartbeat(hb("g", "a", assignor="range"), 1, "c", "/h")
    r1 = await c.consumer_group_heartbeat(hb("g", "b", assignor="range"), 1, "c", "/h")
    g = c.groups["g"]
    assert g.target == {"a": {tid: {0, 1, 2}}, "b": {tid: {3, 4}}}
    d = c.describe_consumer_group("g", False, 0)
    assert d["assignor_name"] == "range" and d["group_epoch"] == 2 and len(d["members"]) == 2
    # offsets: v9+ with the member epoch; stale epochs refused
    ok = await c.commit_offsets("g", r1["member_epoch"], "b", None, -1, 9, [("t", 3, 10, -1, "")])
    assert ok == {("t", 3): 0}
    assert await c.commit_offsets("g", 1, "b", None, -1, 9, [("t", 3, 10, -1, "")]) == \
        {("t", 3): errors.STALE_MEMBER_EPOCH}
    assert await c.commit_offsets("g", 2, "b", None, -1, 8, [("t", 3, 10, -1, "")]) == \
        {("t", 3): errors.UNSUPPORTED_VERSION}
    assert await c.commit_offsets("g", -1, "", None, -1, 9, [("t", 3, 10, -1, "")]) == \
        {("t", 3): errors.UNKNOWN_MEMBER_ID}
    assert c.fetch_offsets("g", [("t", [3])], "b", 1)[0] == errors.STALE_MEMBER_EPOCH
    assert c.fetch_offsets("g", [("t", [3])], "b", 2)[1][0][1][0][1].offset == 10
    # a classic JoinGroup cannot take over a non-empty consumer group
    from group_helpers import jreq
    assert (await c.join_group(jreq("g"), 5, "c", "/h"))["error_code"] == errors.INCONSISTENT_GROUP_PROTOCOL
    code, groups = c.list_groups([], ["consumer"])
    assert [x["group_id"] for x in groups] == ["g"] and groups[0]["protocol_type"] == "consumer"
    assert r0["error_code"] == 0


async def test_new_topic_matching_regex_triggers_assignment(tmp_path, nursery):
    c = await start(nursery, make_state(tmp_path))
    t1 = c.state.create_topic("logs-a", 2).topic_id
    r = await c.consumer_group_heartbeat(hb("g", "m", topics=(), regex="logs-.*"), 1, "c", "/h")
    assert parts(r) == {t1: {0, 1}}
    t2 = c.state.create_topic("logs-b", 1).topic_id
    r = await c.consumer_group_heartbeat(hb("g", "m", r["member_epoch"], full=False, owned={t1: {0, 1}}), 1, "c", "/h")
    assert parts(r) == {t1: {0, 1}, t2: {0}}


# -- durable consumer groups (Kafka's ConsumerGroup* records in __consumer_offsets) --------------

async def _reconciled_two_members(c, tid):
    r1 = await c.consumer_group_heartbeat(hb("g"), 1, "c1", "/h")
    m1 = r1["member_id"]
    await c.consumer_group_heartbeat(hb("g", "m2-id", regex="^t$", topics=()), 1, "c2", "/h")
    r = await c.consumer_group_heartbeat(hb("g", m1, 1, full=False, owned=None), 1, "c1", "/h")
    keep = parts(r)[tid]
    await c.consumer_group_heartbeat(hb("g", m1, 1, full=False, owned={tid: keep}), 1, "c1", "/h")
    await c.consumer_group_heartbeat(hb("g", "m2-id", 2, full=False, owned=None), 1, "c2", "/h")
    assert c.groups["g"].state == "Stable"
    return m1, keep, set(range(6)) - keep


async def test_consumer_group_survives_a_restart_with_epochs_and_assignments(tmp_path, nursery):
    st = make_state(tmp_path)
    async with trio.open_nursery() as first:
        c = await start(first, st)
        tid = st.create_topic("t", 6).topic_id
        m1, keep1, keep2 = await _reconciled_two_members(c, tid)
        before = c.groups["g"]
        first.cancel_scope.cancel()
    st.close()
    st2 = make_state(tmp_path, group_consumer_session_timeout_ms=3000)
    c2 = st2.group_coordinator
    nursery.start_soon(c2.run)
    await c2.loaded.wait()
    g = c2.groups["g"]
    assert (g.group_epoch, g.assignment_epoch, g.state) == (before.group_epoch, before.assignment_epoch, "Stable")
    assert g.subscription_metadata == {"t": (tid, 6)}
    assert {m: (x.member_epoch, x.assigned, x.subscribed_topic_names, x.subscribed_topic_regex, x.client_id)
            for m, x in g.members.items()} == {
        m1: (2, {tid: keep1}, ["t"], None, "c1"), "m2-id": (2, {tid: keep2}, [], "^t$", "c2")}
    assert g.target == before.target
    check_exclusive(g)
    # the members carry on at their epoch: no rejoin, no new assignment
    r = await c2.consumer_group_heartbeat(hb("g", m1, 2, full=False, owned={tid: keep1}), 1, "c1", "/h")
    assert r["error_code"] == 0 and r["member_epoch"] == 2 and r["assignment"] is None
    r = await c2.consumer_group_heartbeat(hb("g", "m2-id", 2, full=False, owned={tid: keep2}), 1, "c2", "/h")
    assert r["error_code"] == 0 and r["member_epoch"] == 2 and r["assignment"] is None
    assert g.group_epoch == before.group_epoch
    # a member that does not come back is fenced after its session timeout (timers restart on load)
    with trio.fail_after(10):
        while "m2-id" in g.members:
            await c2.consumer_group_heartbeat(hb("g", m1, g.members[m1].member_epoch, full=False,
                                                 owned={tid: g.members[m1].assigned.get(tid, set())}), 1, "c1", "/h")
            await trio.sleep(0.3)
    st2.close()


async def test_consumer_group_leave_and_delete_written_as_tombstones(tmp_path, nursery):
    st = make_state(tmp_path)
    async with trio.open_nursery() as first:
        c = await start(first, st)
        tid = st.create_topic("t", 6).topic_id
        m1, _, _ = await _reconciled_two_members(c, tid)
        r = await c.consumer_group_heartbeat(hb("g", "m2-id", -1, full=False, owned=None), 1, "c2", "/h")
        assert r["error_code"] == 0
        r = await c.consumer_group_heartbeat(hb("g", m1, -1, full=False, owned=None), 1, "c1", "/h")
        assert r["error_code"] == 0 and c.groups["g"].state == "Empty"
        epoch = c.groups["g"].group_epoch
        first.cancel_scope.cancel()
    st.close()
    st2 = make_state(tmp_path)
    c2 = st2.group_coordinator
    nursery.start_soon(c2.run)
    await c2.loaded.wait()
    g = c2.groups["g"]
    assert g.state == "Empty" and not g.members and g.group_epoch == epoch and not g.target
    assert await c2.delete_groups(["g"]) == [("g", 0)]
    st2.close()
    st3 = make_state(tmp_path)
    c3 = st3.group_coordinator
    nursery.start_soon(c3.run)
    await c3.loaded.wait()
    assert "g" not in c3.groups
    st3.close()
