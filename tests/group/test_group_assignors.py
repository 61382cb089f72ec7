"""Server-side assignors (uniform, range): every subscribed partition goes
to exactly one subscribed member, balance, stickiness; property-based."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pykbroker.group.assignors import MemberSpec, range_, uniform

T1, T2, T3 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16

topics_st = st.dictionaries(st.sampled_from([T1, T2, T3]), st.integers(0, 12), min_size=1)


@st.composite
def groups(draw):
    topics = draw(topics_st)
    n = draw(st.integers(1, 8))
    homogeneous = draw(st.booleans())
    members = {}
    for i in range(n):
        subs = frozenset(topics) if homogeneous else frozenset(
            draw(st.sets(st.sampled_from(sorted(topics)), min_size=1)))
        members[f"m{i:02d}"] = MemberSpec(subs)
    return members, topics


def check_complete_and_exclusive(members, topics, result):
    seen = {}
    for m, a in result.items():
        for tid, parts in a.items():
            assert tid in members[m].topics, "assigned a topic the member does not subscribe to"
            for p in parts:
                assert 0 <= p < topics[tid]
                assert (tid, p) not in seen
                seen[(tid, p)] = m
    want = {(tid, p) for tid, n in topics.items() for p in range(n)
            if any(tid in s.topics for s in members.values())}
    assert set(seen) == want


def load(a):
    return sum(len(p) for p in a.values())


@settings(max_examples=300, deadline=None)
@given(groups())
def test_uniform_complete_exclusive_balanced(g):
    members, topics = g
    result = uniform(members, topics, {})
    check_complete_and_exclusive(members, topics, result)
    # no member could take a partition from one with two or more partitions more
    for a in result:
        for b in result:
            if load(result[a]) >= load(result[b]) + 2:
                movable = [t for t in result[a] if t in members[b].topics]
                assert not movable, (a, b, result)


@settings(max_examples=200, deadline=None)
@given(groups(), st.integers(0, 3))
def test_uniform_is_sticky_when_a_member_joins(g, extra):
    members, topics = g
    first = uniform(members, topics, {})
    all_topics = frozenset(topics)
    grown = dict(members)
    for i in range(extra + 1):
        grown[f"new{i}"] = MemberSpec(all_topics)
    second = uniform(grown, topics, first)
    check_complete_and_exclusive(grown, topics, second)
    if all(s.topics == all_topics for s in members.values()):
        # homogeneous: only what new members need moves, and only from old members
        moved = sum(len(first[m].get(t, set()) - second[m].get(t, set())) for m in members for t in topics)
        assert moved == sum(load(second[f"new{i}"]) for i in range(extra + 1))
        for m in members:
            for t, ps in second[m].items():
                assert ps <= first[m].get(t, set())


def test_uniform_six_partitions_three_members_and_a_seventh_idle():
    members = {f"m{i}": MemberSpec(frozenset([T1])) for i in range(3)}
    r = uniform(members, {T1: 6}, {})
    assert sorted(load(a) for a in r.values()) == [2, 2, 2]
    members7 = {f"m{i}": MemberSpec(frozenset([T1])) for i in range(7)}
    r7 = uniform(members7, {T1: 6}, {})
    assert sorted(load(a) for a in r7.values()) == [0, 1, 1, 1, 1, 1, 1]


@settings(max_examples=300, deadline=None)
@given(groups())
def test_range_contiguous_per_topic(g):
    members, topics = g
    result = range_(members, topics, {})
    check_complete_and_exclusive(members, topics, result)
    for tid, n in topics.items():
        subs = sorted(m for m in members if tid in members[m].topics)
        start = 0
        for i, m in enumerate(subs):
            want = n // len(subs) + (1 if i < n % len(subs) else 0)
            assert result[m].get(tid, set()) == set(range(start, start + want))
            start += want


def test_range_co_partitions():
    members = {m: MemberSpec(frozenset([T1, T2])) for m in ("a", "b")}
    r = range_(members, {T1: 3, T2: 3}, {})
    assert r == {"a": {T1: {0, 1}, T2: {0, 1}}, "b": {T1: {2}, T2: {2}}}
