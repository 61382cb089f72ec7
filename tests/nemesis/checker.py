"""The checker: what was acknowledged against what the cluster holds.

:func:`read_all` reads every partition from offset 0 to its end with an
assigned (group-less) kafka-python consumer. :func:`check` compares:

- ``lost``: acknowledged (key, value) not in the log;
- ``duplicates``: a (key, value) written more than once (idempotent
  producers must not);
- ``reordered``: per key, a sequence number after a higher one in the log;
- ``offset_mismatch``: an acknowledged record found at another offset than
  the one acknowledged (the log was rewritten under an acknowledgement);
- ``lost_unclean`` / ``offset_mismatch_unclean``: the same on partitions
  that had an unclean leader election (``unclean_partitions``): expected
  (Kafka's documented price of ``unclean.leader.election.enable``), not
  counted in ``lost``; so are committed offsets gone backwards there;
- per partition, the windows without an acknowledgement longer than
  ``window_s`` (the client's view of "no serving leader"), their count,
  p50 and max.

:func:`table` renders a result as text; results are plain dicts (JSON).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Collection
from typing import Any

from .workloads import Acked, Consumed, TxnLog, parse_txn_value


def read_all(bootstrap: str, topic: str, partitions: int,
             timeout_s: float = 180) -> dict[int, list[tuple[int, bytes, bytes]]]:
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _read_all(bootstrap, topic, partitions, deadline)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _read_all(bootstrap: str, topic: str, partitions: int,
              deadline: float) -> dict[int, list[tuple[int, bytes, bytes]]]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=30000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    end = c.end_offsets(tps)
    out: dict[int, list[tuple[int, bytes, bytes]]] = {p: [] for p in range(partitions)}
    try:
        while time.monotonic() < deadline and any(c.position(tp) < end[tp] for tp in tps):
            for _tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    out[m.partition].append((m.offset, m.key, m.value))
    finally:
        c.close()
    return out


def _windows(times: list[float], start: float, end: float, window_s: float) -> list[tuple[float, float]]:
    """(start, length) of every gap between acknowledgements longer than window_s."""
    ts = [start] + sorted(t for t in times if start <= t <= end) + [end]
    return [(a, b - a) for a, b in zip(ts, ts[1:]) if b - a > window_s]


def check(workloads: list[Acked], log: dict[int, list[tuple[int, bytes, bytes]]], start: float, end: float,
          window_s: float = 1.0, consumers: list[Consumed] = (),
          unclean_partitions: Collection[int] = ()) -> dict[str, Any]:
    where: dict[tuple[bytes, bytes], list[tuple[int, int]]] = {}
    for p, recs in log.items():
        for off, k, v in recs:
            where.setdefault((k, v), []).append((p, off))
    res: dict[str, Any] = {"workloads": {}, "partitions": {}}
    ack_times: dict[int, list[float]] = {p: [] for p in log}
    for w in workloads:
        lost_all = [a for a in w.acks if (a.key, a.value) not in where]
        moved_all = [a for a in w.acks if (a.key, a.value) in where and (a.partition, a.offset) not in
                     where[(a.key, a.value)]]
        lost = [a for a in lost_all if a.partition not in unclean_partitions]
        moved = [a for a in moved_all if a.partition not in unclean_partitions]
        for a in w.acks:
            ack_times.setdefault(a.partition, []).append(a.t)
        res["workloads"][w.name] = {
            "sent": w.sent, "acked": len(w.acks), "failed": len(w.errors), "lost": len(lost),
            "offset_mismatch": len(moved),
            "lost_unclean": len(lost_all) - len(lost), "offset_mismatch_unclean": len(moved_all) - len(moved),
            "lost_examples": [f"{a.key!r}={a.value!r}@{a.partition}:{a.offset}" for a in lost[:5]],
            "error_examples": [e for _, e in w.errors[:5]],
        }
    dups = {kv: locs for kv, locs in where.items() if len(locs) > 1}
    reordered = 0
    for recs in log.values():
        last: dict[bytes, int] = {}
        seen: set[tuple[bytes, bytes]] = set()
        for _, k, v in recs:
            if (k, v) in seen:
                continue  # a duplicate, counted above
            seen.add((k, v))
            try:
                n = int(v)
            except (TypeError, ValueError):
                continue
            if k in last and n < last[k]:
                reordered += 1
            last[k] = max(n, last.get(k, -1))
    res["duplicates"] = len(dups)
    res["duplicate_examples"] = [f"{k!r}={v!r} at {locs}" for (k, v), locs in list(dups.items())[:5]]
    res["reordered"] = reordered
    res["records_in_log"] = sum(len(r) for r in log.values())
    all_windows: list[float] = []
    for p in sorted(ack_times):
        ws = _windows(ack_times[p], start, end, window_s)
        all_windows += [w for _, w in ws]
        res["partitions"][p] = {"acked": len(ack_times[p]), "windows": len(ws),
                                "longest_s": round(max((w for _, w in ws), default=0.0), 2),
                                "windows_at_s": [[round(a - start, 1), round(w, 1)] for a, w in ws]}
    res["unavailability"] = {"windows": len(all_windows),
                             "p50_s": round(statistics.median(all_windows), 2) if all_windows else 0.0,
                             "max_s": round(max(all_windows, default=0.0), 2),
                             "threshold_s": window_s}
    acked_kv = {(a.key, a.value) for w in workloads for a in w.acks}
    res["consumers"] = {}
    for c in consumers:
        top: dict[int, int] = {}
        for p, off, _ in c.commits:
            top[p] = max(top.get(p, -1), off)
        all_backwards = {p: (c.final_committed.get(p, -1), off) for p, off in top.items()
                         if c.final_committed.get(p, -1) < off}
        backwards = {p: v for p, v in all_backwards.items() if p not in unclean_partitions}
        unseen = len(acked_kv - c.seen)
        res["consumers"][c.name] = {"seen": len(c.seen), "unseen_acked": unseen, "commits": len(c.commits),
                                    "commit_errors": len(c.errors),
                                    "committed_backwards": len(backwards),
                                    "committed_backwards_unclean": len(all_backwards) - len(backwards),
                                    "backwards_examples": {str(p): v for p, v in list(backwards.items())[:5]},
                                    "error_examples": [e for _, e in c.errors[:5]]}
    res["committed_backwards"] = sum(c["committed_backwards"] for c in res["consumers"].values())
    res["unseen_by_consumers"] = sum(c["unseen_acked"] for c in res["consumers"].values())
    res["lost"] = sum(w["lost"] for w in res["workloads"].values())
    res["offset_mismatch"] = sum(w["offset_mismatch"] for w in res["workloads"].values())
    res["lost_unclean"] = sum(w["lost_unclean"] for w in res["workloads"].values())
    res["offset_mismatch_unclean"] = sum(w["offset_mismatch_unclean"] for w in res["workloads"].values())
    res["unclean_partitions"] = sorted(unclean_partitions)
    res["acked"] = sum(w["acked"] for w in res["workloads"].values())
    return res


def check_transactions(txlog: TxnLog, out: list[tuple[int, bytes, bytes]],
                       inputs: set[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The consume-transform-produce loop's output as read_committed sees it."""
    with txlog.lock:
        committed = dict(txlog.committed)
        aborted = dict(txlog.aborted)
        unknown = dict(txlog.unknown)
        errors = list(txlog.errors)
    seen_txn: dict[tuple[bytes, bytes], list[int]] = {}
    aborted_visible = 0
    for _, k, v in out:
        n, orig = parse_txn_value(v)
        if n in aborted:
            aborted_visible += 1
        seen_txn.setdefault((k, orig), []).append(n)
    committed_missing = sum(1 for n, recs in committed.items() for kv in recs if n not in seen_txn.get(kv, ()))
    processed_twice = sum(1 for ns in seen_txn.values() if len(ns) > 1)
    unprocessed = len(inputs - set(seen_txn))
    return {"committed_txns": len(committed), "aborted_txns": len(aborted), "unknown_txns": len(unknown),
            "output_records": len(out), "aborted_visible": aborted_visible,
            "committed_missing": committed_missing, "processed_twice": processed_twice,
            "inputs_unprocessed": unprocessed, "error_examples": [e for _, e in errors[:5]],
            "errors": len(errors)}


def table(res: dict[str, Any]) -> str:
    lines = []
    lines.append(f"seed {res.get('seed')}  session {res.get('session_ms')} ms  "
                 f"faults {len(res.get('events', []))}  run {res.get('run_s', 0):.0f} s")
    lines.append("")
    lines.append("| workload | sent | acked | failed | lost | offset moved |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, w in res["workloads"].items():
        lines.append(f"| {name} | {w['sent']} | {w['acked']} | {w['failed']} | {w['lost']} | "
                     f"{w['offset_mismatch']} |")
    if res.get("consumers"):
        lines.append("")
        lines.append("| consumer group member | records seen | acked records not seen | commits acked | "
                     "commit errors | committed offsets gone backwards |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for name, c in res["consumers"].items():
            lines.append(f"| {name} | {c['seen']} | {c['unseen_acked']} | {c['commits']} | "
                         f"{c['commit_errors']} | {c['committed_backwards']} |")
    if res.get("transactions"):
        t = res["transactions"]
        lines.append("")
        lines.append("| transactions | committed | aborted | outcome unknown | output records | aborted visible "
                     "(read_committed) | committed missing | input processed twice | acked inputs unprocessed |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        lines.append(f"| consume-transform-produce | {t['committed_txns']} | {t['aborted_txns']} | "
                     f"{t['unknown_txns']} | {t['output_records']} | {t['aborted_visible']} | "
                     f"{t['committed_missing']} | {t['processed_twice']} | {t['inputs_unprocessed']} |")
        lines.append(f"(last transaction committed at +{t.get('last_commit_at_s')} s; "
                     f"{t['errors']} client errors, e.g. {t['error_examples'][:2]})")
        if t.get("at_stop"):
            a = t["at_stop"]
            stuck = "; stuck: " + a["stack"] if a.get("stack") else ""
            lines.append(f"(at the stop the loop was in {a['phase']} for {a['in_phase_s']} s, "
                         f"{a['empty_polls']} empty polls in a row, positions {a.get('positions')}{stuck})")
    lines.append("")
    lines.append(f"duplicates {res['duplicates']}, reordered within key {res['reordered']}, "
                 f"records in log {res['records_in_log']}")
    if res.get("unclean_partitions"):
        lines.append(f"unclean leader elections on partitions {res['unclean_partitions']}: "
                     f"{res.get('lost_unclean', 0)} acknowledged records lost there (expected), "
                     f"{res.get('offset_mismatch_unclean', 0)} moved")
    u = res["unavailability"]
    lines.append(f"windows without an ack > {u['threshold_s']} s: {u['windows']}, p50 {u['p50_s']} s, "
                 f"max {u['max_s']} s")
    lines.append("")
    lines.append("| partition | acked | windows | longest (s) |")
    lines.append("|---:|---:|---:|---:|")
    for p, d in res["partitions"].items():
        lines.append(f"| {p} | {d['acked']} | {d['windows']} | {d['longest_s']} |")
    if res.get("events"):
        lines.append("")
        lines.append("| fault | at (s) | broker | target | lasted (s) | all registered after heal (s) | details |")
        lines.append("|---|---:|---:|---|---:|---:|---|")
        for e in res["events"]:
            lines.append(f"| {e['kind']} | {e.get('at_s', '')} | {e['broker']} | {e['note']} | {e['lasted_s']} | "
                         f"{e['registered_s']} | {e.get('details') or ''} |")
    if "recovery_s" in res:
        lines.append("")
        lines.append(f"after the last fault healed: every partition served and all brokers agreeing "
                     f"after {res['recovery_s']} s ({res.get('recovery_note', '')})")
    return "\n".join(lines)
