#!/usr/bin/env python3
"""Orders and invoices: a broker, an order service and an invoice service.

One command starts everything::

    python examples/orders_invoices.py            # Ctrl-C stops it all

- a pykbroker broker (in memory; ``--log-dir DIR`` keeps the data on disk)
  with its control endpoint, whose console URL is printed;
- the order service: ~500 orders a minute (``--rate``), keyed by customer,
  to the 6-partition topic ``orders`` (an idempotent producer);
- the invoice service: two workers (``--workers``) in the consumer group
  ``invoicing``. Each reads orders and writes one invoice per order to
  ``invoices`` in a transaction that also commits its consumer offsets
  (read-process-write, exactly once): a worker killed mid-batch leaves an
  aborted transaction, and whoever takes its partitions starts from the
  last committed offset, so every order is invoiced exactly once.

Start more workers from another terminal and watch the partitions spread
(and a killed worker's partitions move) in the status lines or the console::

    python examples/orders_invoices.py worker --bootstrap-server 127.0.0.1:9092 --name worker-3

The clients are confluent-kafka (librdkafka), a real Kafka client, installed
with ``pip install confluent-kafka``; the status lines come from pykbroker's
own admin client (what ``pykbroker groups --describe`` prints). Nothing here
is specific to pykbroker but the broker it starts: ``--bootstrap-server``
with ``orders``/``worker`` runs the services against any Kafka.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

ORDERS, INVOICES, GROUP = "orders", "invoices", "invoicing"
PARTITIONS = 6
CUSTOMERS = 40

_stop = False


def _on_stop(signum: int, frame: Any) -> None:
    global _stop
    _stop = True


def _service_signals() -> None:
    """Services stop on SIGTERM from the supervisor; a terminal's Ctrl-C
    reaches the whole process group, and the supervisor decides the order."""
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def say(who: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {who:<9} {text}", flush=True)


# --------------------------------------------------------------------- orders
def run_orders(bootstrap: str, rate_per_min: float) -> int:
    from confluent_kafka import Producer

    _service_signals()
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "client.id": "order-service"})
    run = uuid.uuid4().hex[:6]
    interval = 60.0 / rate_per_min
    n = 0
    next_at = time.monotonic()
    last_report = time.monotonic()
    rng = random.Random()
    while not _stop:
        customer = f"customer-{rng.randrange(CUSTOMERS):02d}"
        order = {"order_id": f"{run}-{n}", "customer": customer, "items": rng.randint(1, 5),
                 "amount": round(rng.uniform(5, 500), 2), "ts": int(time.time() * 1000)}
        p.produce(ORDERS, key=customer, value=json.dumps(order))
        n += 1
        p.poll(0)
        if time.monotonic() - last_report >= 10:
            say("orders", f"{n} orders sent")
            last_report = time.monotonic()
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    left = p.flush(10)
    say("orders", f"stopped after {n} orders" + (f" ({left} unsent)" if left else ""))
    return 0


# -------------------------------------------------------------------- invoices
def run_worker(bootstrap: str, name: str) -> int:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    _service_signals()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "client.id": name,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 1000})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"invoicer-{name}",
                         "transaction.timeout.ms": 6000, "client.id": name, "linger.ms": 5})
    producer.init_transactions(30)

    def assigned(c: Any, parts: list[Any]) -> None:
        say(name, f"assigned {ORDERS} partitions {sorted(p.partition for p in parts)}")

    def revoked(c: Any, parts: list[Any]) -> None:
        say(name, f"revoked {sorted(p.partition for p in parts)}")

    consumer.subscribe([ORDERS], on_assign=assigned, on_revoke=revoked)
    done = 0
    last_report = time.monotonic()
    try:
        while not _stop:
            msgs = [m for m in consumer.consume(200, 0.5) if m.error() is None]
            if not msgs:
                continue
            producer.begin_transaction()
            try:
                nxt: dict[int, int] = {}
                for m in msgs:
                    order = json.loads(m.value())
                    invoice = {"invoice_id": f"inv-{order['order_id']}", "order_id": order["order_id"],
                               "customer": order["customer"], "total": round(order["amount"] * 1.2, 2),
                               "worker": name}
                    producer.produce(INVOICES, key=m.key(), value=json.dumps(invoice))
                    nxt[m.partition()] = m.offset() + 1
                producer.send_offsets_to_transaction(
                    [TopicPartition(ORDERS, p, o) for p, o in nxt.items()],
                    consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(30)
                done += len(msgs)
            except KafkaException as e:
                # e.g. a rebalance fenced the offsets: abort and read again from the committed ones
                say(name, f"transaction aborted: {e.args[0]}")
                producer.abort_transaction(30)
                for tp in consumer.assignment():
                    committed = consumer.committed([tp], 10)[0]
                    consumer.seek(TopicPartition(ORDERS, tp.partition,
                                                 committed.offset if committed.offset >= 0 else 0))
            if time.monotonic() - last_report >= 10:
                say(name, f"{done} orders invoiced")
                last_report = time.monotonic()
    finally:
        consumer.close()
        say(name, f"stopped after {done} invoices")
    return 0


# ------------------------------------------------------------------ supervisor
def _stop_with_parent() -> None:
    """In a child (broker, service), before exec: SIGTERM when the demo dies (even
    by SIGKILL, which gives it no chance to stop them itself; Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _start_broker(ns: argparse.Namespace) -> tuple[subprocess.Popen[str], str, str | None]:
    cmd = [sys.executable, "-m", "pykbroker",
           "--override", f"listeners=PLAINTEXT://127.0.0.1:{ns.port}",
           "--override", "group.initial.rebalance.delay.ms=0",
           "--override", "offsets.topic.num.partitions=1",
           "--override", "transaction.state.log.num.partitions=1",
           "--control", f"127.0.0.1:{ns.control_port}", "--log-level", "WARNING"]
    if ns.log_dir:
        cmd += ["--override", f"log.dirs={ns.log_dir}"]
    else:
        cmd += ["--override", "pykbroker.storage=memory"]
    # its own session: a terminal's Ctrl-C reaches the services, the broker stops last
    broker = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=_stop_with_parent)
    assert broker.stdout is not None
    line = broker.stdout.readline()
    m = re.search(r"listening on (\S+):(\d+)", line)
    if not m:
        broker.kill()
        raise SystemExit(f"the broker did not start: {line or broker.wait()}")
    c = re.search(r"control=(http://[^,\s]+)", line)
    return broker, f"{m.group(1)}:{m.group(2)}", c.group(1) if c else None


def _create_topics(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(ORDERS, PARTITIONS, 1), NewTopic(INVOICES, PARTITIONS, 1)])
    for f in futures.values():
        try:
            f.result(30)
        except Exception as e:  # TOPIC_ALREADY_EXISTS on a kept --log-dir is fine
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise


def _status(bootstrap: str) -> tuple[dict[str, list[int]], int, int]:
    """worker -> its partitions of orders, total lag, orders produced."""
    from pykbroker.admin.client import KafkaClient
    from pykbroker.admin.groups import lag_rows

    with KafkaClient(bootstrap, client_id="demo-status", timeout=10) as client:
        group, rows = lag_rows(client, GROUP)
        owners: dict[str, list[int]] = {m["client_id"]: [] for m in group["members"]}
        for r in rows:
            if r["member"] is not None:
                owners.setdefault(r["member"]["client_id"], []).append(r["partition"])
        orders = client.topic(ORDERS)
        ends = client.list_offsets(orders, {p: -1 for p in orders.partitions})
        lag = sum((r["lag"] if r["lag"] is not None else ends.get(r["partition"], 0)) for r in rows)
        return owners, lag, sum(ends.values())


def supervise(ns: argparse.Namespace) -> int:
    started = time.monotonic()
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    broker: subprocess.Popen[str] | None = None
    try:
        broker, bootstrap, control = _start_broker(ns)
        say("demo", f"broker on {bootstrap}")
        _create_topics(bootstrap)
        me = [sys.executable, os.path.abspath(__file__)]

        def start(name: str, *args: str) -> None:
            proc = subprocess.Popen(me + list(args) + ["--bootstrap-server", bootstrap],
                                    preexec_fn=_stop_with_parent)
            children.append((name, proc))
            say("demo", f"started {name} (pid {proc.pid})")

        start("orders", "orders", "--rate", str(ns.rate))
        for i in range(1, ns.workers + 1):
            start(f"worker-{i}", "worker", "--name", f"worker-{i}")
        console = f"{control}/console" if control else "(no control endpoint)"
        say("demo", f"console: {console}")
        say("demo", f"more workers: {' '.join(me[1:])} worker --bootstrap-server {bootstrap} --name worker-N")
        steady = False
        exited: set[str] = set()
        next_status = time.monotonic()
        while True:
            time.sleep(0.2)
            for name, proc in children:
                if proc.poll() is not None and name not in exited:
                    say("demo", f"{name} exited with status {proc.returncode}")
                    exited.add(name)
            if time.monotonic() < next_status:
                continue
            next_status = time.monotonic() + (ns.status_interval if steady else 0.3)
            try:
                owners, lag, produced = _status(bootstrap)
            except Exception as e:  # the group may not exist yet
                if steady:
                    say("demo", f"status: {e}")
                continue
            assigned = sum(len(v) for v in owners.values())
            if not steady and len(owners) >= ns.workers and assigned == PARTITIONS and produced:
                steady = True
                say("demo", f"steady state after {time.monotonic() - started:.1f} s: {len(owners)} workers "
                            f"own {assigned} partitions; console {console}")
            if steady:
                spread = ", ".join(f"{w} {sorted(ps)}" for w, ps in sorted(owners.items()))
                say("demo", f"orders {produced}, lag {lag}; {spread}")
    except KeyboardInterrupt:
        say("demo", "stopping")
    finally:
        _stop_all(children, broker)
    return 0


def _stop_all(children: list[tuple[str, subprocess.Popen[bytes]]],
              broker: subprocess.Popen[str] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave orphans behind
    for _name, proc in children:
        if proc.poll() is None:
            proc.terminate()
    t0 = time.monotonic()
    deadline = t0 + 8
    for name, proc in children:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say("demo", f"{name} did not stop within 8 s: killed")
            proc.kill()
            proc.wait()
    if broker is None:
        return
    t1 = time.monotonic()
    broker.terminate()
    try:
        broker.wait(10)
    except subprocess.TimeoutExpired:
        say("demo", "the broker did not stop within 10 s: killed")
        broker.kill()
        broker.wait()
    say("demo", f"services stopped in {t1 - t0:.1f} s, the broker in {time.monotonic() - t1:.1f} s")
    say("demo", "stopped")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd")
    ap.add_argument("--rate", type=float, default=500, help="orders per minute (default 500)")
    ap.add_argument("--workers", type=int, default=2, help="invoice workers to start (default 2)")
    ap.add_argument("--port", type=int, default=9092, help="the broker's port (0: any free one)")
    ap.add_argument("--control-port", type=int, default=9644, help="the control endpoint's port "
                    "(console at /console; 0: any free one)")
    ap.add_argument("--log-dir", help="keep the broker's data here (default: in memory)")
    ap.add_argument("--status-interval", type=float, default=5.0, help="seconds between status lines")
    o = sub.add_parser("orders", help="the order service alone")
    o.add_argument("--bootstrap-server", required=True)
    o.add_argument("--rate", type=float, default=500, help="orders per minute")
    w = sub.add_parser("worker", help="one more invoice worker")
    w.add_argument("--bootstrap-server", required=True)
    w.add_argument("--name", default=f"worker-{os.getpid()}")
    ns = ap.parse_args(argv)
    if ns.rate <= 0:
        ap.error("--rate must be positive")
    if ns.cmd == "orders":
        return run_orders(ns.bootstrap_server, ns.rate)
    if ns.cmd == "worker":
        return run_worker(ns.bootstrap_server, ns.name)
    if ns.workers < 1:
        ap.error("--workers must be at least 1")
    return supervise(ns)


if __name__ == "__main__":
    sys.exit(main())
