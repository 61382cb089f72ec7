"""``pykbroker groups``: kafka-consumer-groups.sh's flags and output.

::

    pykbroker groups --bootstrap-server HOST:PORT --list
    pykbroker groups --describe --group G [--state]      # lag per partition
    pykbroker groups --delete --group G                  # an empty group and its offsets
    pykbroker groups --reset-offsets --group G --topic T[:P,P...] | --all-topics
        --to-earliest | --to-latest | --to-datetime 2026-01-02T03:04:05.000 | --shift-by N | --to-offset N
        [--dry-run (the default) | --execute]

``--describe`` prints, per partition with a committed offset or assigned
to a member: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG
CONSUMER-ID HOST CLIENT-ID (log end offset = the high watermark, lag = log
end − committed). Offsets are reset only in an empty group (no members), as
Kafka; ``--dry-run`` prints the plan and changes nothing. ``--to-offset``
and ``--shift-by`` are clamped to [log start offset, log end offset] as
Kafka does. Consumer groups (classic, and KIP-848 ones through
ConsumerGroupDescribe) are described with their members; other groups'
offsets and lag are shown without members.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any

from . import common
from .client import ClientError, KafkaClient, TopicMeta
from ..protocol import codec

EARLIEST, LATEST = -2, -1


class Groups(common.CommandBody):
    def parser(self, prog: str) -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser(prog=prog, description="List and describe consumer groups, reset "
                                     "their offsets (kafka-consumer-groups.sh's flags).")
        common.add_connection_args(ap)
        act = ap.add_mutually_exclusive_group(required=True)
        act.add_argument("--list", action="store_true", help="list the groups")
        act.add_argument("--describe", action="store_true", help="offsets and lag per partition")
        act.add_argument("--reset-offsets", action="store_true", help="move an empty group's offsets")
        act.add_argument("--delete", action="store_true", help="delete empty groups and their offsets")
        ap.add_argument("--group", action="append", default=[], help="the group (repeatable)")
        ap.add_argument("--all-groups", action="store_true", help="describe every group")
        ap.add_argument("--state", action="store_true", help="describe: the group's state and members "
                        "count instead of offsets")
        ap.add_argument("--topic", action="append", default=[], metavar="TOPIC[:P,P...]",
                        help="reset-offsets: a topic, optionally some of its partitions (repeatable)")
        ap.add_argument("--all-topics", action="store_true", help="reset-offsets: every topic the group "
                        "has committed offsets for")
        how = ap.add_mutually_exclusive_group()
        how.add_argument("--to-earliest", action="store_true", help="to the log start offset")
        how.add_argument("--to-latest", action="store_true", help="to the log end offset")
        how.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss[+hh:mm]",
                         help="to the first offset with a timestamp at or after this time (local time "
                         "without a zone)")
        how.add_argument("--shift-by", type=int, metavar="N", help="move the committed offset by N "
                         "(negative: back)")
        how.add_argument("--to-offset", type=int, metavar="N", help="to this offset")
        run = ap.add_mutually_exclusive_group()
        run.add_argument("--dry-run", action="store_true", help="print the new offsets only (the default)")
        run.add_argument("--execute", action="store_true", help="commit the new offsets")
        return ap

    def run(self, ns: argparse.Namespace) -> int:
        with common.connect(ns) as client:
            if ns.list:
                for g in client.list_groups():
                    print(g["group_id"])
                return 0
            if ns.describe:
                groups = ns.group
                if ns.all_groups:
                    groups = [g["group_id"] for g in client.list_groups()]
                elif not groups:
                    raise common.UsageError("--describe needs --group G or --all-groups")
                for i, g in enumerate(groups):
                    if i:
                        print()
                    if ns.state:
                        describe_state(client, g)
                    else:
                        describe(client, g)
                return 0
            if ns.delete:
                if not ns.group:
                    raise common.UsageError("--delete needs --group G (repeatable)")
                for g in ns.group:
                    client.delete_group(g)
                    print(f"Deletion of requested consumer groups ('{g}') was successful.")
                return 0
            if len(ns.group) != 1:
                raise common.UsageError("--reset-offsets needs exactly one --group")
            return reset(client, ns)


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print(" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def members_assignment(group: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(topic, partition) -> the member it is assigned to, for a classic
    consumer group (``protocol_type`` consumer)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if group.get("protocol_type") != "consumer":
        return out
    schema = codec.load_data_schema("consumer_protocol_assignment")
    for m in group["members"]:
        if "assigned" in m:  # a KIP-848 group's member (KafkaClient.describe_group)
            for tp in m["assigned"]:
                out[tp] = m
            continue
        data = bytes(m["member_assignment"] or b"")
        if len(data) < 2:
            continue
        version = min(int.from_bytes(data[:2], "big", signed=True), 3)
        try:
            a, _ = schema.decode(data, version, 2)
        except Exception:  # a client's own assignment format: show no partitions
            continue
        for tp in a["assigned_partitions"]:
            for p in tp["partitions"]:
                out[(tp["topic"], p)] = m
    return out


def lag_rows(client: KafkaClient, group: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The group as DescribeGroups sees it, and per partition: topic,
    partition, committed (None), log end offset, lag (None), member."""
    g = client.describe_group(group)
    committed = client.committed(group)
    assigned = members_assignment(g)
    keys = sorted(set(committed) | set(assigned))
    topics: dict[str, TopicMeta] = {}
    ends: dict[tuple[str, int], int] = {}
    for t in sorted({t for t, _ in keys}):
        try:
            meta = topics[t] = client.topic(t)
        except ClientError:
            continue
        parts = [p for tt, p in keys if tt == t and p in meta.partitions]
        for p, off in client.list_offsets(meta, {p: LATEST for p in parts}).items():
            ends[(t, p)] = off
    rows = []
    for k in keys:
        cur = committed.get(k)
        end = ends.get(k)
        rows.append({"topic": k[0], "partition": k[1], "committed": cur, "end": end,
                     "lag": None if cur is None or end is None else max(0, end - cur),
                     "member": assigned.get(k)})
    return g, rows


def describe(client: KafkaClient, group: str) -> None:
    g, rows = lag_rows(client, group)
    if g["group_state"] == "Dead" and not rows:
        raise ClientError(f"consumer group {group!r} does not exist")
    if not g["members"]:
        print(f"Consumer group '{group}' has no active members.")
    elif g["group_state"] in ("PreparingRebalance", "CompletingRebalance"):
        print(f"Consumer group '{group}' is rebalancing.")
    table = [["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
              "HOST", "CLIENT-ID"]]
    for r in rows:
        m = r["member"]
        table.append([group, r["topic"], str(r["partition"]), _dash(r["committed"]), _dash(r["end"]),
                      _dash(r["lag"]), m["member_id"] if m else "-", m["client_host"] if m else "-",
                      m["client_id"] if m else "-"])
    print()
    _table(table)


def describe_state(client: KafkaClient, group: str) -> None:
    g = client.describe_group(group)
    coord = client.coordinator(group)
    print()
    _table([["GROUP", "COORDINATOR", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
            [group, f"{coord.address[0]}:{coord.address[1]}", g["protocol_data"] or "-", g["group_state"],
             str(len(g["members"]))]])


def _dash(v: int | None) -> str:
    return "-" if v is None else str(v)


def parse_datetime(text: str) -> int:
    """Kafka's --to-datetime (``YYYY-MM-DDTHH:mm:SS.sss``, an optional zone
    such as ``Z`` or ``+02:00``; local time without one) in ms."""
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise common.UsageError(f"--to-datetime {text!r}: expected YYYY-MM-DDTHH:mm:SS.sss "
                                "(optionally with a zone such as Z or +02:00)") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time, as Kafka's tool
    return int(dt.timestamp() * 1000)


def _targets(client: KafkaClient, ns: argparse.Namespace,
             committed: dict[tuple[str, int], int]) -> dict[str, tuple[TopicMeta, list[int]]]:
    if bool(ns.topic) == bool(ns.all_topics):
        raise common.UsageError("--reset-offsets needs --topic T[:P,...] (repeatable) or --all-topics")
    wanted: dict[str, list[int] | None] = {}
    if ns.all_topics:
        for t, _p in committed:
            wanted[t] = None
    for item in ns.topic:
        name, sep, parts = item.partition(":")
        if not name:
            raise common.UsageError(f"--topic {item!r}: no topic name")
        if sep:
            try:
                wanted[name] = sorted({int(p) for p in parts.split(",") if p.strip()})
            except ValueError:
                raise common.UsageError(f"--topic {item!r}: partitions must be numbers, e.g. orders:0,2") \
                    from None
        else:
            wanted[name] = None
    out = {}
    for name, parts in wanted.items():
        meta = client.topic(name)
        if parts is None:
            parts = list(meta.partitions)
        missing = [p for p in parts if p not in meta.partitions]
        if missing:
            raise ClientError(f"topic {name!r} has no partition {missing[0]} (it has {len(meta.partitions)})")
        out[name] = (meta, parts)
    return out


def reset(client: KafkaClient, ns: argparse.Namespace) -> int:
    group = ns.group[0]
    scenario = [ns.to_earliest, ns.to_latest, ns.to_datetime is not None, ns.shift_by is not None,
                ns.to_offset is not None]
    if not any(scenario):
        raise common.UsageError("--reset-offsets needs one of --to-earliest, --to-latest, --to-datetime, "
                                "--shift-by, --to-offset")
    ts = parse_datetime(ns.to_datetime) if ns.to_datetime is not None else None
    g = client.describe_group(group)
    if g["group_state"] not in ("Empty", "Dead"):
        raise ClientError(f"assignments can only be reset if the group '{group}' is inactive, "
                          f"but the current state is {g['group_state']}")
    committed = client.committed(group)
    plan: dict[tuple[str, int], int] = {}
    for name, (meta, parts) in _targets(client, ns, committed).items():
        if not parts:
            continue
        lo = client.list_offsets(meta, {p: EARLIEST for p in parts})
        hi = client.list_offsets(meta, {p: LATEST for p in parts})
        if ns.to_earliest:
            new = dict(lo)
        elif ns.to_latest:
            new = dict(hi)
        elif ts is not None:
            at = client.list_offsets(meta, {p: ts for p in parts})
            new = {p: (at[p] if at[p] >= 0 else hi[p]) for p in parts}
        elif ns.shift_by is not None:
            new = {}
            for p in parts:
                if (name, p) not in committed:
                    raise ClientError(f"cannot shift the offset of {name}-{p}: the group has no committed "
                                      "offset there")
                new[p] = committed[(name, p)] + ns.shift_by
        else:
            new = {p: ns.to_offset for p in parts}
        for p in parts:
            target = new[p]
            clamped = min(max(target, lo[p]), hi[p])
            if clamped != target:
                print(f"New offset ({target}) is {'lower' if target < lo[p] else 'higher'} than the "
                      f"{'earliest' if target < lo[p] else 'latest'} offset of {name}-{p}: {clamped} "
                      "is used instead.", file=sys.stderr)
            plan[(name, p)] = clamped
    if ns.execute:
        client.commit(group, plan)
    elif not ns.dry_run:
        print("WARN: No action will be performed as the --execute option is missing. "
              "Add --execute to reset the offsets.", file=sys.stderr)
    table = [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]]
    table += [[group, t, str(p), str(o)] for (t, p), o in sorted(plan.items())]
    print()
    _table(table)
    return 0
