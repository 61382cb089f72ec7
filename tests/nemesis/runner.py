"""One nemesis run: cluster up, workloads on, faults, heal, check, report.

    res = run(RunConfig(seed=7, kinds=CI_KINDS, faults=5, session_ms=6000), root=tmp_path)

``res`` is a dict (also written to ``RunConfig.json_path``): the checker's
result plus the seed, the settings, every fault with its timing, and
``recovery_s``: after the last fault healed, how long until every partition
had a leader in ZooKeeper that every broker's Metadata names (same epoch)
and that answers ListOffsets.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from . import checker, faults, workloads
from .cluster import NemesisCluster


@dataclass
class RunConfig:
    seed: int = 1
    kinds: tuple[str, ...] = faults.CI_KINDS
    faults: int = 5
    brokers: int = 3
    session_ms: int = 18000
    partitions: int = 6
    min_insync: int = 2
    topic: str = "nemesis"
    gap: tuple[float, float] = (2.0, 5.0)
    warmup_s: float = 3.0
    confluent_rate: float = 500.0
    kafka_python_rate: float = 100.0
    kafka_python: bool = True
    group_consumer: bool = True
    transactions: bool = True
    txn_catch_up_s: float = 60.0
    consumer_catch_up_s: float = 60.0
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the workload topic's unclean.leader.election.enable (the isr-wipe fault's records lost are then expected)
    unclean: bool = False
    #: > 0: start a fault every this many seconds, healed or not (overlapping faults)
    overlap_s: float = 0.0
    recovery_timeout_s: float = 120.0
    #: > 0: start no fault later than this many seconds after the first (a run of a set length; plan enough faults)
    fault_window_s: float = 0.0
    json_path: Path | None = None
    logs_path: Path | None = None


def run(cfg: RunConfig, root: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    cl = NemesisCluster(root, cfg.brokers, cfg.session_ms, cfg.overrides)
    res: dict[str, Any] = {}
    try:
        cl.start()
        topic_cfg = {"min.insync.replicas": str(cfg.min_insync)}
        if cfg.unclean:
            topic_cfg["unclean.leader.election.enable"] = "true"
        cl.create_topic(cfg.topic, cfg.partitions, min(3, cfg.brokers), topic_cfg)
        out_topic = f"{cfg.topic}-out"
        if cfg.transactions:
            cl.create_topic(out_topic, cfg.partitions, min(3, cfg.brokers),
                            {"min.insync.replicas": str(cfg.min_insync)})
        log(f"cluster up: bootstrap {cl.bootstrap}, controller {cl.controller()}")
        stop = threading.Event()  # producers
        ws = [workloads.Acked("librdkafka")]
        threads = [threading.Thread(target=workloads.confluent_producer,
                                    args=(cl.bootstrap, cfg.topic, ws[0], stop),
                                    kwargs={"rate": cfg.confluent_rate}, name="librdkafka", daemon=True)]
        if cfg.kafka_python:
            ws.append(workloads.Acked("kafka-python"))
            threads.append(threading.Thread(target=workloads.kafka_python_producer,
                                            args=(cl.bootstrap, cfg.topic, ws[1], stop),
                                            kwargs={"rate": cfg.kafka_python_rate}, name="kafka-python",
                                            daemon=True))
        group = f"{cfg.topic}-group"
        consumed = workloads.Consumed("group-consumer")
        stop_consumer = threading.Event()
        consumer_thread = None
        if cfg.group_consumer:
            consumer_thread = threading.Thread(target=workloads.group_consumer,
                                               args=(cl.bootstrap, cfg.topic, group, consumed, stop_consumer),
                                               name="group-consumer", daemon=True)
            threads.append(consumer_thread)
        txlog = workloads.TxnLog("transactions")
        stop_txn = threading.Event()
        txn_thread = None
        if cfg.transactions:
            txn_thread = threading.Thread(target=workloads.transactional_loop,
                                          args=(cl.bootstrap, cfg.topic, out_topic, f"{cfg.topic}-txn", txlog,
                                                stop_txn), name="transactions", daemon=True)
            threads.append(txn_thread)
        t_start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(cfg.warmup_s)
        nem = faults.Nemesis(cl, cfg.topic, cfg.partitions, cfg.seed, log)
        nem.t0 = t_start
        nem.unclean = cfg.unclean
        plan = faults.schedule(cfg.seed, cfg.kinds, cfg.faults, cfg.session_ms / 1000, cfg.gap)
        if cfg.fault_window_s > 0:
            t_faults = time.monotonic()
            plan = [f for i, f in enumerate(plan)
                    if cfg.overlap_s <= 0 or i * cfg.overlap_s < cfg.fault_window_s]
        if cfg.overlap_s > 0:
            nem.run_overlapping(plan, cfg.overlap_s)
        else:
            for f in plan:
                if cfg.fault_window_s > 0 and time.monotonic() - t_faults >= cfg.fault_window_s:
                    break
                nem.run(f)
        unclean = sorted({p for e in nem.events for p in e.extra.get("unclean_partitions", ())})
        last_heal = max((e.healed for e in nem.events), default=time.monotonic())

        # recovery: every partition served, every broker agreeing
        deadline = last_heal + cfg.recovery_timeout_s
        ok, why = False, ""
        while time.monotonic() < deadline:
            ok, why = cl.agreement(cfg.topic, cfg.partitions)
            if ok:
                break
            time.sleep(0.2)
        recovery = time.monotonic() - last_heal
        log(f"recovery after the last heal: {recovery:.1f}s ({'ok' if ok else why})")
        # let the producers run on a little after recovery, then stop them
        time.sleep(2.0)
        t_stop = time.monotonic()
        stop.set()
        for t in threads:
            if t is not consumer_thread and t is not txn_thread:
                t.join(timeout=660)
        acked_kv = {(a.key, a.value) for w in ws for a in w.acks}
        if consumer_thread is not None:
            deadline = time.monotonic() + cfg.consumer_catch_up_s
            while time.monotonic() < deadline:
                with consumed.lock:
                    if acked_kv <= consumed.seen:
                        break
                time.sleep(0.5)
            time.sleep(1.5)  # one more commit round
            stop_consumer.set()
            consumer_thread.join(timeout=120)
            consumed.final_committed = workloads.committed_offsets(cl.bootstrap, cfg.topic, group,
                                                                   cfg.partitions)
        txn_out: list = []
        if txn_thread is not None:
            deadline = time.monotonic() + cfg.txn_catch_up_s
            while time.monotonic() < deadline and not acked_kv <= txlog.processed():
                time.sleep(0.5)
            with txlog.lock:
                stall = {"phase": txlog.phase, "in_phase_s": round(time.monotonic() - txlog.phase_at, 1),
                         "empty_polls": txlog.empty_polls, "positions": dict(txlog.positions)}
            stop_txn.set()
            txn_thread.join(timeout=30)  # a daemon thread: left behind if stuck in a client call
            if txn_thread.is_alive():
                frame = sys._current_frames().get(txn_thread.ident or -1)
                stall["stack"] = "".join(traceback.format_stack(frame)) if frame is not None else ""
            txn_out = workloads.read_committed(cl.bootstrap, out_topic, cfg.partitions)
        log_records = checker.read_all(cl.bootstrap, cfg.topic, cfg.partitions)
        res = checker.check(ws, log_records, t_start + cfg.warmup_s, t_stop,
                            consumers=[consumed] if consumer_thread is not None else [],
                            unclean_partitions=unclean if cfg.unclean else ())
        if txn_thread is not None:
            res["transactions"] = checker.check_transactions(txlog, txn_out, acked_kv)
            res["transactions"]["at_stop"] = stall
            res["transactions"]["last_commit_at_s"] = (round(txlog.last_commit - t_start - cfg.warmup_s, 1)
                                                       if txlog.last_commit else None)
        res.update({
            "seed": cfg.seed, "session_ms": cfg.session_ms, "kinds": list(cfg.kinds), "brokers": cfg.brokers,
            "partitions_count": cfg.partitions, "min_insync": cfg.min_insync, "run_s": t_stop - t_start,
            "unclean": cfg.unclean, "unclean_partitions": unclean, "overlap_s": cfg.overlap_s,
            "faults_run": len(nem.events),
            "recovery_s": round(recovery, 2), "recovered": ok, "recovery_note": "ok" if ok else why,
            "agreement_at_end": cl.agreement(cfg.topic, cfg.partitions)[0],
            "events": [{"kind": e.kind, "broker": e.broker, "note": e.note,
                        "at_s": round(e.start - t_start - cfg.warmup_s, 1), "lasted_s": round(e.healed - e.start, 1),
                        "registered_s": round(e.extra.get("all_registered", -1), 1),
                        "problems": e.extra.get("not_registered", ""),
                        "details": {k: v for k, v in e.extra.items()
                                    if k in ("delay_ms", "unclean_partitions", "offline_partitions",
                                             "out_of_isr_s")}} for e in nem.events],
        })
    finally:
        if cfg.logs_path is not None:
            try:
                cl.save_logs(cfg.logs_path)
            except Exception:
                pass
        cl.close()
    if cfg.json_path is not None:
        cfg.json_path.parent.mkdir(parents=True, exist_ok=True)
        cfg.json_path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return res
