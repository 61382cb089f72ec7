"""``pykbroker reassign``: Kafka's ``kafka-reassign-partitions`` on the admin APIs.

::

    pykbroker reassign --bootstrap-server HOST:PORT --generate --broker-list 0,1,2,3 \\
        (--topics t1,t2 | --topics-to-move-json-file topics.json) [--disable-rack-aware]
    pykbroker reassign --bootstrap-server HOST:PORT --execute --reassignment-json-file plan.json \\
        [--throttle BYTES_PER_S] [--wait]
    pykbroker reassign --bootstrap-server HOST:PORT --verify --reassignment-json-file plan.json [--wait]
    pykbroker reassign --bootstrap-server HOST:PORT --cancel --reassignment-json-file plan.json
    pykbroker reassign --bootstrap-server HOST:PORT --list

Kafka's file formats: topics to move ``{"version":1,"topics":[{"topic":"t"}]}``,
a plan ``{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],
"log_dirs":["any","any"]}]}``.

- ``--generate`` prints the current assignment and a proposed one (both as
  plans). Unlike Kafka's (a fresh round-robin placement of every replica),
  the proposal moves as few replicas as it can: per topic, replicas on
  brokers outside the list move, then replicas move from the broker holding
  the most to the one holding the fewest until every broker holds its fair
  share (within one); with racks set (and not ``--disable-rack-aware``) a
  replica leaving a broker goes preferably to a rack the partition does not
  use yet, and a balancing move never leaves a partition on fewer racks
  (racks win over an even spread, as in Kafka's rack-aware placement). Then
  preferred leaders (first replicas) are balanced by swapping the order
  within partitions, without moving data.
- ``--execute`` sends AlterPartitionReassignments to the controller for
  every partition whose replicas differ. ``--throttle`` first sets, as
  Kafka's tool does, ``leader.replication.throttled.replicas`` (the current
  replicas) and ``follower.replication.throttled.replicas`` (the added ones)
  on the topics and the two ``*.replication.throttled.rate`` on every broker
  involved (IncrementalAlterConfigs). ``--wait`` shows progress until done.
- ``--verify`` reports each partition (complete, in progress, or not
  matching the plan); once every partition is done it removes the throttles.
- ``--cancel`` cancels the plan's partitions still moving; ``--list`` shows
  every move in progress (ListPartitionReassignments).

The tool speaks the Kafka protocol through the CLI's client
(``pykbroker/admin/client.py``, pykbroker's own codec over a plain socket;
reassignments go to the controller Metadata names, again while the answer
is NOT_CONTROLLER), so it works against any Kafka-protocol broker that
serves these APIs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from .admin.client import BROKER_RESOURCE, TOPIC_RESOURCE, ClientError, KafkaClient
from .protocol import errors

Assignment = dict[tuple[str, int], list[int]]

LEADER_RATE, FOLLOWER_RATE = "leader.replication.throttled.rate", "follower.replication.throttled.rate"
LEADER_REPLICAS, FOLLOWER_REPLICAS = "leader.replication.throttled.replicas", "follower.replication.throttled.replicas"


class ReassignError(Exception):
    pass


# --- planning (pure) ------------------------------------------------------------------------------

def plan(current: Assignment, brokers: dict[int, str | None], rack_aware: bool = True) -> Assignment:
    """A balanced assignment of ``current``'s partitions over ``brokers``
    (id -> rack) that moves as few replicas as it can (see the module doc)."""
    if not brokers:
        raise ReassignError("the broker list is empty")
    out: Assignment = {}
    for topic in sorted({t for t, _ in current}):
        parts = {p: list(r) for (t, p), r in current.items() if t == topic}
        rf = max(len(r) for r in parts.values())
        if rf > len(brokers):
            raise ReassignError(f"topic {topic}: replication factor {rf} is larger than the {len(brokers)} brokers")
        _balance_replicas(parts, brokers, rack_aware)
        _balance_leaders(parts, brokers)
        out.update({(topic, p): r for p, r in parts.items()})
    return out


def _racks_of(replicas: Iterable[int], brokers: dict[int, str | None]) -> set[str]:
    return {rack for b in replicas if (rack := brokers.get(b)) is not None}


def _candidates(parts: dict[int, list[int]], p: int, leaving: int, brokers: dict[int, str | None],
                counts: Counter[int], rack_aware: bool) -> list[int]:
    """Brokers that could take ``leaving``'s replica of ``p``, best first:
    a rack the partition does not use yet (rack-aware), then the fewest replicas."""
    others = [b for b in parts[p] if b != leaving]
    used = _racks_of(others, brokers)
    free = [b for b in brokers if b not in parts[p]]

    def key(b: int) -> tuple[int, int, int]:
        rack_penalty = 1 if rack_aware and brokers[b] is not None and brokers[b] in used else 0
        return rack_penalty, counts[b], b

    return sorted(free, key=key)


def _balance_replicas(parts: dict[int, list[int]], brokers: dict[int, str | None], rack_aware: bool) -> None:
    counts: Counter[int] = Counter({b: 0 for b in brokers})
    for reps in parts.values():
        counts.update(b for b in reps if b in brokers)
    # replicas on brokers that are not in the list move first
    for p in sorted(parts):
        for i, b in enumerate(parts[p]):
            if b not in brokers:
                dest = _candidates(parts, p, b, brokers, counts, rack_aware)[0]
                parts[p][i] = dest
                counts[dest] += 1
    # then from fuller to emptier brokers, one replica at a time; with racks a
    # move may not leave a partition on fewer racks (racks win over balance)
    for _ in range(sum(len(r) for r in parts.values()) * len(brokers)):
        move = _best_move(parts, brokers, counts, rack_aware)
        if move is None:
            return
        p, hi, lo = move
        parts[p][parts[p].index(hi)] = lo
        counts[hi] -= 1
        counts[lo] += 1


def _best_move(parts: dict[int, list[int]], brokers: dict[int, str | None], counts: Counter[int],
               rack_aware: bool) -> tuple[int, int, int] | None:
    """(partition, from, to): the first allowed move between the pair of
    brokers whose counts differ most (by more than one)."""
    pairs = sorted(((hi, lo) for hi in brokers for lo in brokers if counts[hi] - counts[lo] > 1),
                   key=lambda hl: (counts[hl[1]] - counts[hl[0]], hl[0], hl[1]))
    for hi, lo in pairs:
        for p in sorted(parts):
            reps = parts[p]
            if hi not in reps or lo in reps:
                continue
            after = [lo if b == hi else b for b in reps]
            if rack_aware and len(_racks_of(after, brokers)) < len(_racks_of(reps, brokers)):
                continue
            return p, hi, lo
    return None


def _balance_leaders(parts: dict[int, list[int]], brokers: dict[int, str | None]) -> None:
    """Swap replicas within partitions so every broker is the preferred
    leader of its fair share (no data moves)."""
    leaders: Counter[int] = Counter({b: 0 for b in brokers})
    leaders.update(r[0] for r in parts.values() if r)
    for _ in range(len(parts) * len(brokers)):
        hi = max(brokers, key=lambda b: (leaders[b], -b))
        lo = min(brokers, key=lambda b: (leaders[b], b))
        if leaders[hi] - leaders[lo] <= 1:
            return
        p = next((p for p in sorted(parts) if parts[p] and parts[p][0] == hi and lo in parts[p]), None)
        if p is None:
            # lo follows no partition hi leads: give hi's leadership to the follower with the fewest
            p = next((p for p in sorted(parts) if parts[p] and parts[p][0] == hi and len(parts[p]) > 1), None)
            if p is None:
                return
            lo = min(parts[p][1:], key=lambda b: (leaders[b], b))
            if leaders[hi] - leaders[lo] <= 1:
                return
        reps = parts[p]
        i = reps.index(lo)
        reps[0], reps[i] = reps[i], reps[0]
        leaders[hi] -= 1
        leaders[lo] += 1


# --- Kafka's JSON formats ----------------------------------------------------------------------------

def plan_json(assignment: Assignment) -> dict[str, Any]:
    return {"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for (t, p), r in sorted(assignment.items())]}


def parse_plan(js: Any) -> Assignment:
    try:
        return {(str(e["topic"]), int(e["partition"])): [int(b) for b in e["replicas"]] for e in js["partitions"]}
    except (KeyError, TypeError, ValueError) as e:
        raise ReassignError(f"not a reassignment plan: {e!r}") from e


def parse_topics_to_move(js: Any) -> list[str]:
    try:
        return [str(e["topic"]) for e in js["topics"]]
    except (KeyError, TypeError) as e:
        raise ReassignError(f"not a topics-to-move file: {e!r}") from e


# --- the cluster's picture (pykbroker/admin/client.py speaks the protocol) ------------------------------

def current_assignment(client: KafkaClient, topics: list[str] | None) -> Assignment:
    """(topic, partition) -> replicas as Metadata shows them (``topics`` None: all)."""
    out: Assignment = {}
    for t in client.metadata(topics).topics.values():
        if t.error_code:
            raise ReassignError(f"topic {t.name}: {errors.NAMES.get(t.error_code, t.error_code)}")
        for p in t.partitions.values():
            out[(t.name, p.partition)] = list(p.replicas)
    return out


def live_brokers(client: KafkaClient) -> dict[int, str | None]:
    """Live broker id -> rack."""
    return {b: rack for b, (_host, _port, rack) in client.metadata([]).brokers.items()}


# --- the commands --------------------------------------------------------------------------------

def generate(client: KafkaClient, topics: list[str], broker_list: list[int], rack_aware: bool
             ) -> tuple[Assignment, Assignment]:
    current = current_assignment(client, topics)
    live = live_brokers(client)
    unknown = [b for b in broker_list if b not in live]
    if unknown:
        raise ReassignError(f"brokers {unknown} are not live")
    racks = {b: live[b] for b in broker_list}
    if rack_aware and any(r is None for r in racks.values()) and any(r is not None for r in racks.values()):
        raise ReassignError("not all brokers have rack information; use --disable-rack-aware")
    return current, plan(current, racks, rack_aware)


def throttle(client: KafkaClient, current: Assignment, proposed: Assignment, rate: int) -> None:
    """Kafka's tool: leader throttles on the current replicas, follower
    throttles on the added ones, the rates on every broker involved."""
    leader: dict[str, list[str]] = {}
    follower: dict[str, list[str]] = {}
    involved: set[int] = set()
    for (t, p), target in proposed.items():
        cur = current.get((t, p), [])
        if target == cur:
            continue
        leader.setdefault(t, []).extend(f"{p}:{b}" for b in cur)
        follower.setdefault(t, []).extend(f"{p}:{b}" for b in target if b not in cur)
        involved |= set(cur) | set(target)
    for t in sorted(set(leader) | set(follower)):
        client.alter_configs(TOPIC_RESOURCE, t, {LEADER_REPLICAS: ",".join(leader.get(t, [])) or None,
                                                 FOLLOWER_REPLICAS: ",".join(follower.get(t, [])) or None})
    for b in sorted(involved):
        client.alter_configs(BROKER_RESOURCE, str(b), {LEADER_RATE: str(rate), FOLLOWER_RATE: str(rate)})


def clear_throttles(client: KafkaClient, proposed: Assignment, out: TextIO) -> None:
    brokers = sorted(live_brokers(client))
    for b in brokers:
        client.alter_configs(BROKER_RESOURCE, str(b), {LEADER_RATE: None, FOLLOWER_RATE: None})
    print(f"Clearing broker-level throttles on brokers {','.join(map(str, brokers))}", file=out)
    for t in sorted({t for t, _ in proposed}):
        client.alter_configs(TOPIC_RESOURCE, t, {LEADER_REPLICAS: None, FOLLOWER_REPLICAS: None})
        print(f"Clearing topic-level throttles on topic {t}", file=out)


def execute(client: KafkaClient, proposed: Assignment, rate: int | None, out: TextIO) -> Assignment:
    current = current_assignment(client, sorted({t for t, _ in proposed}))
    missing = [tp for tp in proposed if tp not in current]
    if missing:
        raise ReassignError(f"partitions do not exist: {', '.join(f'{t}-{p}' for t, p in sorted(missing))}")
    print("Current partition replica assignment\n", file=out)
    print(json.dumps(plan_json({tp: current[tp] for tp in proposed})), file=out)
    print("\nSave this to use as the --reassignment-json-file option during rollback", file=out)
    todo: dict[tuple[str, int], list[int] | None] = {tp: r for tp, r in proposed.items() if current[tp] != r}
    if rate is not None:
        throttle(client, current, proposed, rate)
        print(f"Warning: You must run --verify periodically, until the reassignment completes, to ensure the "
              f"throttle is removed.\nThe inter-broker throttle limit was set to {rate} B/s", file=out)
    results = client.alter_partition_reassignments(todo) if todo else {}
    failed = {tp: r for tp, r in results.items() if r[0]}
    for (t, p), (code, msg) in sorted(failed.items()):
        print(f"Error reassigning {t}-{p}: {errors.NAMES.get(code, code)}: {msg}", file=out)
    if failed:
        raise ReassignError(f"{len(failed)} partition(s) could not be reassigned")
    print(f"Successfully started partition reassignment{'s' if len(todo) != 1 else ''} for "
          f"{', '.join(f'{t}-{p}' for t, p in sorted(todo)) or 'no partition (nothing to move)'}", file=out)
    return current


def verify(client: KafkaClient, proposed: Assignment, out: TextIO) -> bool:
    """Print each partition's status; True once all are done (throttles removed then)."""
    moving = client.list_partition_reassignments(proposed)
    current = current_assignment(client, sorted({t for t, _ in proposed}))
    print("Status of partition reassignment:", file=out)
    done = True
    for (t, p), target in sorted(proposed.items()):
        if (t, p) in moving:
            print(f"Reassignment of partition {t}-{p} is still in progress.", file=out)
            done = False
        elif current.get((t, p)) == target:
            print(f"Reassignment of partition {t}-{p} is completed.", file=out)
        else:
            print(f"There is no active reassignment of partition {t}-{p}, but replica set is "
                  f"{current.get((t, p))} rather than {target}.", file=out)
            done = False
    if done:
        clear_throttles(client, proposed, out)
    return done


def wait(client: KafkaClient, proposed: Assignment, out: TextIO, interval: float = 1.0,
         timeout: float | None = None) -> None:
    """Show progress until no partition of the plan is moving."""
    t0 = time.monotonic()
    total = len(proposed)
    while True:
        moving = client.list_partition_reassignments(proposed)
        elapsed = time.monotonic() - t0
        shown = ", ".join(f"{t}-{p} (+{a} -{r})" for (t, p), (_, a, r) in sorted(moving.items())[:6])
        more = f" and {len(moving) - 6} more" if len(moving) > 6 else ""
        print(f"[{elapsed:6.1f}s] {total - len(moving)}/{total} partitions in place"
              + (f"; moving: {shown}{more}" if moving else ""), file=out, flush=True)
        if not moving:
            return
        if timeout is not None and elapsed > timeout:
            raise ReassignError(f"still moving after {timeout:.0f} s")
        time.sleep(interval)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="pykbroker reassign",
                                 description="Move partitions between brokers (Kafka's kafka-reassign-partitions).")
    ap.add_argument("--bootstrap-server", required=True, help="HOST:PORT[,HOST:PORT...]")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--generate", action="store_true", help="propose a balanced plan")
    mode.add_argument("--execute", action="store_true", help="start the moves of a plan")
    mode.add_argument("--verify", action="store_true", help="check a plan's moves (and clear throttles when done)")
    mode.add_argument("--cancel", action="store_true", help="cancel a plan's moves in progress")
    mode.add_argument("--list", action="store_true", help="list every move in progress")
    ap.add_argument("--topics-to-move-json-file", type=Path)
    ap.add_argument("--topics", help="comma-separated topics (instead of --topics-to-move-json-file)")
    ap.add_argument("--broker-list", help="comma-separated broker ids to place replicas on")
    ap.add_argument("--disable-rack-aware", action="store_true")
    ap.add_argument("--reassignment-json-file", type=Path)
    ap.add_argument("--throttle", type=int, metavar="BYTES_PER_S", help="replication throttle while moving")
    ap.add_argument("--wait", action="store_true", help="show progress until the moves are done")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    return ap.parse_args(argv)


def main(argv: list[str], out: TextIO = sys.stdout) -> int:
    ns = parse_args(argv)
    try:
        client = KafkaClient(ns.bootstrap_server, client_id="pykbroker-reassign", timeout=ns.timeout)
        try:
            return _run(ns, client, out)
        finally:
            client.close()
    except (ReassignError, ClientError, OSError, ValueError) as e:
        print(f"pykbroker reassign: {e}", file=sys.stderr)
        return 1


def _load(path: Path | None, what: str) -> Any:
    if path is None:
        raise ReassignError(f"{what} is required")
    return json.loads(path.read_text())


def _run(ns: argparse.Namespace, client: KafkaClient, out: TextIO) -> int:
    if ns.list:
        for (t, p), (reps, adding, removing) in sorted(client.list_partition_reassignments().items()):
            print(f"{t}-{p}: replicas {reps}, adding {adding}, removing {removing}", file=out)
        return 0
    if ns.generate:
        if ns.topics:
            topics = [t.strip() for t in ns.topics.split(",") if t.strip()]
        else:
            topics = parse_topics_to_move(_load(ns.topics_to_move_json_file, "--topics-to-move-json-file"))
        if not ns.broker_list:
            raise ReassignError("--broker-list is required with --generate")
        brokers = [int(b) for b in ns.broker_list.split(",") if b.strip()]
        current, proposed = generate(client, topics, brokers, not ns.disable_rack_aware)
        print("Current partition replica assignment", file=out)
        print(json.dumps(plan_json(current)), file=out)
        print("\nProposed partition reassignment configuration", file=out)
        print(json.dumps(plan_json(proposed)), file=out)
        return 0
    proposed = parse_plan(_load(ns.reassignment_json_file, "--reassignment-json-file"))
    if ns.execute:
        execute(client, proposed, ns.throttle, out)
        if ns.wait:
            wait(client, proposed, out)
            verify(client, proposed, out)
        return 0
    if ns.cancel:
        moving = client.list_partition_reassignments(proposed)
        results = client.alter_partition_reassignments({tp: None for tp in moving}) if moving else {}
        for (t, p), (code, msg) in sorted(results.items()):
            print(f"{t}-{p}: " + ("cancelled" if not code else f"{errors.NAMES.get(code, code)}: {msg}"), file=out)
        print(f"Successfully cancelled {sum(1 for c, _ in results.values() if not c)} partition reassignment(s)",
              file=out)
        return 0 if all(not c for c, _ in results.values()) else 1
    # --verify
    if ns.wait:
        wait(client, proposed, out)
    return 0 if verify(client, proposed, out) else 1
