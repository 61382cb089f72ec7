"""kafka-python (pure Python)."""

from __future__ import annotations

import threading
import time

from . import DEADLINE, HEARTBEAT_MS, SESSION_TIMEOUT_MS, Ack, Driver, DriverError, Rec, seen_all


def _code(e: BaseException) -> int | str:
    errno = getattr(e, "errno", None)
    return errno if isinstance(errno, int) else type(e).__name__


def _rec(m) -> Rec:  # type: ignore[no-untyped-def]
    return Rec(m.partition, m.offset, m.key, m.value, tuple((k, v) for k, v in m.headers),
               m.timestamp)


class KafkaPython(Driver):
    family = "kafka-python"
    notes = ("KafkaProducer/KafkaConsumer/KafkaAdminClient in-process; group members poll "
             "from their own threads; enable_idempotence=False except in the idempotent and "
             "transaction scenarios (its default is True, which needs InitProducerId).",)

    def versions(self) -> str:
        import kafka

        return f"kafka-python {kafka.__version__}"

    def secure_roundtrip(self, sec, topic, values):  # type: ignore[no-untyped-def]
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        conf: dict = {"bootstrap_servers": sec["bootstrap"], "security_protocol": sec["protocol"]}
        if "SSL" in sec["protocol"]:
            conf["ssl_cafile"] = sec["ca"]
            if sec.get("cert"):
                conf.update(ssl_certfile=sec["cert"], ssl_keyfile=sec["key"])
        if sec["protocol"].startswith("SASL_"):
            conf.update(sasl_mechanism=sec["mechanism"], sasl_plain_username=sec["username"],
                        sasl_plain_password=sec["password"])
        p = KafkaProducer(**conf, enable_idempotence=False)
        try:
            for v in values:
                p.send(topic, v, partition=0).get(timeout=DEADLINE)
        finally:
            p.close()
        c = KafkaConsumer(**conf, group_id=None, enable_auto_commit=False, consumer_timeout_ms=int(DEADLINE * 1000))
        got: list = []
        try:
            c.assign([TopicPartition(topic, 0)])
            c.seek(TopicPartition(topic, 0), 0)
            for m in c:
                got.append((m.offset, m.value))
                if len(got) == len(values):
                    break
        finally:
            c.close()
        return got

    def _admin(self, bs: str):  # type: ignore[no-untyped-def]
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=int(DEADLINE * 1000))

    # -- data -------------------------------------------------------------
    def metadata(self, bs, topic):  # type: ignore[no-untyped-def]
        from kafka import KafkaConsumer

        c = KafkaConsumer(bootstrap_servers=bs)
        try:
            if topic not in c.topics():
                raise DriverError(f"{topic} not in {sorted(c.topics())}")
            parts = c.partitions_for_topic(topic)
            cluster = c._client.cluster  # the consumer's metadata cache (no public accessor)
            brokers = [(b.node_id, b.host, b.port) for b in cluster.brokers()]
            leaders = {p: cluster.leader_for_partition(_tp(topic, p)) for p in parts}
        finally:
            c.close()
        return {"brokers": brokers, "partitions": leaders}

    def produce(self, bs, topic, recs, *, compression=None, idempotent=False, max_request=None):  # type: ignore[no-untyped-def]
        from kafka import KafkaProducer

        conf = dict(bootstrap_servers=bs, linger_ms=5, acks="all", compression_type=compression,
                    enable_idempotence=idempotent)
        if max_request:
            conf["max_request_size"] = max_request
        p = KafkaProducer(**conf)
        try:
            futs = [p.send(topic, value=r.value, key=r.key, partition=r.partition,
                           timestamp_ms=r.timestamp if r.timestamp >= 0 else None,
                           headers=list(r.headers)) for r in recs]
            p.flush(timeout=DEADLINE)
            acks = []
            for r, f in zip(recs, futs):
                try:
                    m = f.get(timeout=DEADLINE)
                    acks.append(Ack(m.partition, m.offset))
                except Exception as e:  # the error is the result
                    acks.append(Ack(r.partition, error=_code(e), message=repr(e)))
        finally:
            p.close(timeout=5)
        return acks

    def consume(self, bs, topic, start, want, *, read_committed=False):  # type: ignore[no-untyped-def]
        from kafka import KafkaConsumer

        c = KafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False,
                          isolation_level="read_committed" if read_committed else "read_uncommitted")
        got: dict[int, list[Rec]] = {p: [] for p in start}
        try:
            tps = [_tp(topic, p) for p in start]
            c.assign(tps)
            for tp in tps:
                c.seek(tp, start[tp.partition])
            deadline = time.monotonic() + DEADLINE
            while any(len(got[p]) < n for p, n in want.items()) and time.monotonic() < deadline:
                for msgs in c.poll(timeout_ms=200).values():
                    for m in msgs:
                        got[m.partition].append(_rec(m))
        finally:
            c.close()
        return got

    def offsets_for_times(self, bs, topic, times):  # type: ignore[no-untyped-def]
        from kafka import KafkaConsumer

        c = KafkaConsumer(bootstrap_servers=bs)
        try:
            res = c.offsets_for_times({_tp(topic, p): ts for p, ts in times.items()})
        finally:
            c.close()
        return {tp.partition: (o.offset if o is not None else -1) for tp, o in res.items()}

    # -- admin ------------------------------------------------------------
    def create_topics(self, bs, topics):  # type: ignore[no-untyped-def]
        a = self._admin(bs)
        try:
            a.create_topics({n: {"num_partitions": p, "replication_factor": 1, "configs": c}
                             for n, p, c in topics})
        finally:
            a.close()

    def delete_topics(self, bs, names):  # type: ignore[no-untyped-def]
        a = self._admin(bs)
        try:
            a.delete_topics(names)
        finally:
            a.close()

    def create_partitions(self, bs, topic, total):  # type: ignore[no-untyped-def]
        a = self._admin(bs)
        try:
            a.create_partitions({topic: total})
        finally:
            a.close()

    def describe_configs(self, bs, topic):  # type: ignore[no-untyped-def]
        from kafka.admin import ConfigResource, ConfigResourceType

        a = self._admin(bs)
        try:
            r = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                   config_filter="all")
        finally:
            a.close()
        return {k: e["value"] for k, e in r["topic"][topic].items()}

    def alter_configs(self, bs, topic, configs, advertised):  # type: ignore[no-untyped-def]
        from kafka.admin import ConfigResource, ConfigResourceType

        a = self._admin(bs)
        try:  # IncrementalAlterConfigs when advertised, else AlterConfigs (its own choice)
            a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))])
        finally:
            a.close()

    # -- groups -----------------------------------------------------------
    def _member(self, bs: str, group: str):  # type: ignore[no-untyped-def]
        # Callers load the topic's metadata before subscribing. Otherwise the
        # leader may assign before it knows the topic's partitions (an empty
        # assignment, then a rejoin), and kafka-python 3.0.12 can then hang
        # after the second SyncGroup when a poll() times out mid-rejoin (seen
        # in about 1 run in 4: no heartbeat, no fetch, session expiry). The
        # leader's own assignment makes need_rejoin() false while the join is
        # in flight, so the next poll never awaits it (tests/clientlib.py,
        # kafka_python_group_metadata, has the details).
        from kafka import KafkaConsumer

        return KafkaConsumer(bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=HEARTBEAT_MS)

    def group_rebalance(self, bs, topic, group, partitions):  # type: ignore[no-untyped-def]
        members = [self._member(bs, group) for _ in range(3)]
        stop = [threading.Event() for _ in range(3)]
        lock = threading.Lock()
        assigned: list[set[int]] = [set(), set(), set()]
        sinks = {"cur": []}
        before = sinks["cur"]
        errors: list[BaseException] = []

        def run(i: int) -> None:
            c = members[i]
            try:
                c.partitions_for_topic(topic)  # see _member
                c.subscribe([topic])
                while not stop[i].is_set():
                    batch = c.poll(timeout_ms=100)
                    with lock:
                        assigned[i] = {tp.partition for tp in c.assignment()}
                        for msgs in batch.values():
                            for m in msgs:
                                sinks["cur"].append([m.partition, m.offset, m.value.decode()])
            except BaseException as e:
                errors.append(e)
            finally:
                c.close()

        def wait(live: list[int], cond) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + DEADLINE
            while True:
                if errors:
                    raise DriverError(f"member failed: {errors[0]!r}")
                with lock:
                    if cond():
                        return
                    snap = [sorted(assigned[i]) for i in live]
                if time.monotonic() > deadline:
                    raise DriverError(f"timed out; assignments {snap}, consumed {sinks['cur']}")
                time.sleep(0.05)

        def split(live: list[int]) -> bool:
            shares = [assigned[i] for i in live]
            return all(shares) and sorted(p for s in shares for p in s) == list(range(partitions))

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(3)]
        for t in threads:
            t.start()
        try:
            wait([0, 1, 2], lambda: split([0, 1, 2]) and seen_all(before, "before-", partitions))
            with lock:
                assign3 = [sorted(assigned[i]) for i in range(3)]
            stop[2].set()
            threads[2].join(DEADLINE)
            with lock:
                assigned[2] = set()
            wait([0, 1], lambda: split([0, 1]))
            with lock:
                assign2 = [sorted(assigned[i]) for i in range(2)]
                after: list = []
                sinks["cur"] = after
            self.produce(bs, topic, [Rec(p, -1, None, f"after-{p}".encode()) for p in range(partitions)])
            wait([0, 1], lambda: seen_all(after, "after-", partitions))
        finally:
            for s in stop:
                s.set()
            for t in threads:
                t.join(DEADLINE)
        return {"assign3": assign3, "assign2": assign2, "before": before, "after": after}

    def group_consume(self, bs, topic, group, n):  # type: ignore[no-untyped-def]
        from kafka.structs import OffsetAndMetadata

        c = self._member(bs, group)
        out: list[Rec] = []
        try:
            c.partitions_for_topic(topic)  # see _member
            c.subscribe([topic])
            deadline = time.monotonic() + DEADLINE
            while len(out) < n:
                if time.monotonic() > deadline:
                    raise DriverError(f"got {len(out)} of {n} records")
                for msgs in c.poll(timeout_ms=500).values():
                    out.extend(_rec(m) for m in msgs)
            last = out[n - 1]
            c.commit({_tp(topic, last.partition): OffsetAndMetadata(last.offset + 1, "", -1)})
        finally:
            c.close()
        return out[:n]

    # -- exactly once -----------------------------------------------------
    def produce_transactions(self, bs, topic, txn_id, aborted, committed):  # type: ignore[no-untyped-def]
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=bs, transactional_id=txn_id, linger_ms=5)
        try:
            p.init_transactions()
            for recs, commit in ((aborted, False), (committed, True)):
                p.begin_transaction()
                futs = [p.send(topic, value=r.value, key=r.key, partition=r.partition) for r in recs]
                p.flush(timeout=DEADLINE)
                for f in futs:
                    f.get(timeout=DEADLINE)
                if commit:
                    p.commit_transaction()
                else:
                    p.abort_transaction()
        finally:
            p.close(timeout=5)


def _tp(topic: str, p: int):  # type: ignore[no-untyped-def]
    from kafka import TopicPartition

    return TopicPartition(topic, p)


DRIVER = KafkaPython()
