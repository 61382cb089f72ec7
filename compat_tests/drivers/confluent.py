"""confluent-kafka (Python binding of librdkafka)."""

from __future__ import annotations

import time

from . import DEADLINE, HEARTBEAT_MS, SESSION_TIMEOUT_MS, Ack, Driver, DriverError, Rec, seen_all


def _err(err) -> tuple[int | str, str]:  # type: ignore[no-untyped-def]
    # Broker errors have Kafka's (positive) codes; librdkafka's own are negative.
    return (err.code() if err.code() >= 0 else err.name()), err.str()


def _rec(m) -> Rec:  # type: ignore[no-untyped-def]
    return Rec(m.partition(), m.offset(), m.key(), m.value(), tuple(m.headers() or ()),
               m.timestamp()[1])


class Confluent(Driver):
    family = "confluent-kafka"
    notes = ("Producer/Consumer/AdminClient in-process; alter configs uses "
             "incremental_alter_configs when the broker advertises IncrementalAlterConfigs, "
             "else alter_configs.",)

    def versions(self) -> str:
        import confluent_kafka

        return f"confluent-kafka {confluent_kafka.__version__}, librdkafka {confluent_kafka.libversion()[0]}"

    # -- data -------------------------------------------------------------
    def metadata(self, bs, topic):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bs})
        md = admin.list_topics(topic, timeout=DEADLINE)
        t = md.topics[topic]
        if t.error is not None:
            raise DriverError(f"metadata for {topic}: {t.error}")
        return {"brokers": [(b.id, b.host, b.port) for b in md.brokers.values()],
                "partitions": {p.id: p.leader for p in t.partitions.values()}}

    def _producer(self, bs: str, **extra):  # type: ignore[no-untyped-def]
        from confluent_kafka import Producer

        conf = {"bootstrap.servers": bs, "linger.ms": 5, "acks": "all"}
        conf.update(extra)
        return Producer(conf)

    def produce(self, bs, topic, recs, *, compression=None, idempotent=False, max_request=None):  # type: ignore[no-untyped-def]
        extra: dict = {"compression.type": compression or "none", "enable.idempotence": idempotent}
        if max_request:
            extra["message.max.bytes"] = max_request
        p = self._producer(bs, **extra)
        acks: dict[int, Ack] = {}

        def cb(i: int):  # type: ignore[no-untyped-def]
            def done(err, msg):  # type: ignore[no-untyped-def]
                if err is not None:
                    code, text = _err(err)
                    acks[i] = Ack(msg.partition(), error=code, message=text)
                else:
                    acks[i] = Ack(msg.partition(), msg.offset())
            return done

        for i, r in enumerate(recs):
            kw = {"timestamp": r.timestamp} if r.timestamp >= 0 else {}
            p.produce(topic, value=r.value, key=r.key, partition=r.partition,
                      headers=list(r.headers) or None, on_delivery=cb(i), **kw)
            p.poll(0)
        left = p.flush(DEADLINE)
        if left:
            raise DriverError(f"{left} records still unacknowledged after {DEADLINE}s")
        return [acks[i] for i in range(len(recs))]

    def consume(self, bs, topic, start, want, *, read_committed=False):  # type: ignore[no-untyped-def]
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bs, "group.id": f"compat-assign-{time.time_ns()}",
                      "enable.auto.commit": False,
                      "isolation.level": "read_committed" if read_committed else "read_uncommitted"})
        got: dict[int, list[Rec]] = {p: [] for p in start}
        try:
            c.assign([TopicPartition(topic, p, o) for p, o in start.items()])
            deadline = time.monotonic() + DEADLINE
            while any(len(got[p]) < n for p, n in want.items()) and time.monotonic() < deadline:
                for m in c.consume(1000, 0.2):
                    if m.error():
                        raise DriverError(str(m.error()))
                    got[m.partition()].append(_rec(m))
        finally:
            c.close()
        return got

    def offsets_for_times(self, bs, topic, times):  # type: ignore[no-untyped-def]
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bs, "group.id": f"compat-oft-{time.time_ns()}"})
        try:
            res = c.offsets_for_times([TopicPartition(topic, p, ts) for p, ts in times.items()],
                                      timeout=DEADLINE)
        finally:
            c.close()
        for tp in res:
            if tp.error:
                raise DriverError(str(tp.error))
        return {tp.partition: tp.offset for tp in res}

    # -- admin ------------------------------------------------------------
    def secure_roundtrip(self, sec, topic, values):  # type: ignore[no-untyped-def]
        from confluent_kafka import Consumer, Producer

        conf = librdkafka_security(sec)
        p = Producer(conf)
        for v in values:
            p.produce(topic, v, partition=0)
        if p.flush(DEADLINE):
            raise DriverError("produce over TLS/SASL: not all delivered")
        c = Consumer({**conf, "group.id": f"compat-sec-{time.time_ns()}", "enable.auto.commit": False})
        from confluent_kafka import TopicPartition

        c.assign([TopicPartition(topic, 0, 0)])
        got: list = []
        deadline = time.monotonic() + DEADLINE
        try:
            while len(got) < len(values) and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    got.append((m.offset(), m.value()))
        finally:
            c.close()
        return got

    def _admin(self, bs: str):  # type: ignore[no-untyped-def]
        # Callers keep the client referenced until its futures are resolved:
        # a collected AdminClient fails them with _DESTROY.
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": bs})

    def create_topics(self, bs, topics):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import NewTopic

        admin = self._admin(bs)
        fs = admin.create_topics(
            [NewTopic(n, num_partitions=p, replication_factor=1, config=c) for n, p, c in topics],
            operation_timeout=10)
        for f in fs.values():
            f.result(timeout=DEADLINE)

    def delete_topics(self, bs, names):  # type: ignore[no-untyped-def]
        admin = self._admin(bs)
        for f in admin.delete_topics(names, operation_timeout=10).values():
            f.result(timeout=DEADLINE)

    def create_partitions(self, bs, topic, total):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import NewPartitions

        admin = self._admin(bs)
        for f in admin.create_partitions([NewPartitions(topic, total)], operation_timeout=10).values():
            f.result(timeout=DEADLINE)

    def describe_configs(self, bs, topic):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import ConfigResource, ResourceType

        admin = self._admin(bs)
        (f,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
        return {k: e.value for k, e in f.result(timeout=DEADLINE).items()}

    def alter_configs(self, bs, topic, configs, advertised):  # type: ignore[no-untyped-def]
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

        admin = self._admin(bs)
        if 44 in advertised:
            res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
            fs = admin.incremental_alter_configs([res])
        else:
            fs = admin.alter_configs([ConfigResource(ResourceType.TOPIC, topic, set_config=configs)])
        for f in fs.values():
            f.result(timeout=DEADLINE)

    # -- groups -----------------------------------------------------------
    def _member(self, bs: str, group: str, **extra):  # type: ignore[no-untyped-def]
        from confluent_kafka import Consumer

        conf = {"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS}
        conf.update(extra)
        return Consumer(conf)

    def group_rebalance(self, bs, topic, group, partitions):  # type: ignore[no-untyped-def]
        members = []
        assigned: list[set[int]] = []
        for _i in range(3):
            mine: set[int] = set()

            def on_assign(c, tps, mine=mine):  # type: ignore[no-untyped-def]
                mine.clear()
                mine.update(tp.partition for tp in tps)

            def on_revoke(c, tps, mine=mine):  # type: ignore[no-untyped-def]
                mine.clear()

            c = self._member(bs, group)
            c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
            members.append(c)
            assigned.append(mine)
        before: list = []
        after: list = []
        sink = before

        def poll_until(live: list[int], cond) -> None:  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + DEADLINE
            while not cond():
                if time.monotonic() > deadline:
                    raise DriverError(f"timed out; assignments {[sorted(assigned[i]) for i in live]}, "
                                      f"consumed {sink}")
                for i in live:
                    m = members[i].poll(0.05)
                    if m is not None:
                        if m.error():
                            raise DriverError(str(m.error()))
                        sink.append([m.partition(), m.offset(), m.value().decode()])

        def split(live: list[int]) -> bool:
            shares = [assigned[i] for i in live]
            return all(shares) and sorted(p for s in shares for p in s) == list(range(partitions))

        try:
            poll_until([0, 1, 2], lambda: split([0, 1, 2]) and seen_all(before, "before-", partitions))
            assign3 = [sorted(assigned[i]) for i in range(3)]
            members[2].close()
            poll_until([0, 1], lambda: split([0, 1]))
            assign2 = [sorted(assigned[i]) for i in range(2)]
            sink = after
            self.produce(bs, topic, [Rec(p, -1, None, f"after-{p}".encode()) for p in range(partitions)])
            poll_until([0, 1], lambda: seen_all(after, "after-", partitions))
        finally:
            for c in members[:2]:
                c.close()
        return {"assign3": assign3, "assign2": assign2, "before": before, "after": after}

    def group_consume(self, bs, topic, group, n):  # type: ignore[no-untyped-def]
        from confluent_kafka import TopicPartition

        c = self._member(bs, group)
        out: list[Rec] = []
        try:
            c.subscribe([topic])
            deadline = time.monotonic() + DEADLINE
            while len(out) < n:
                if time.monotonic() > deadline:
                    raise DriverError(f"got {len(out)} of {n} records")
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    raise DriverError(str(m.error()))
                out.append(_rec(m))
            last = out[n - 1]
            c.commit(offsets=[TopicPartition(topic, last.partition, last.offset + 1)],
                     asynchronous=False)
        finally:
            c.close()
        return out[:n]

    # -- exactly once -----------------------------------------------------
    def produce_transactions(self, bs, topic, txn_id, aborted, committed):  # type: ignore[no-untyped-def]
        p = self._producer(bs, **{"transactional.id": txn_id})
        p.init_transactions(DEADLINE)
        errors: list = []

        def cb(err, msg):  # type: ignore[no-untyped-def]
            if err is not None:
                errors.append(err)

        for recs, commit in ((aborted, False), (committed, True)):
            p.begin_transaction()
            for r in recs:
                p.produce(topic, value=r.value, key=r.key, partition=r.partition, on_delivery=cb)
            p.flush(DEADLINE)
            if commit:
                p.commit_transaction(DEADLINE)
            else:
                p.abort_transaction(DEADLINE)
        if errors:
            raise DriverError(f"delivery errors: {errors[:3]}")


DRIVER = Confluent()


def librdkafka_security(sec: dict) -> dict:
    """librdkafka properties for a TLS/SASL listener (also kcat's -X pairs)."""
    conf = {"bootstrap.servers": sec["bootstrap"], "security.protocol": sec["protocol"]}
    if "SSL" in sec["protocol"]:
        conf["ssl.ca.location"] = sec["ca"]
        if sec.get("cert"):
            conf["ssl.certificate.location"] = sec["cert"]
            conf["ssl.key.location"] = sec["key"]
    if sec["protocol"].startswith("SASL_"):
        conf.update({"sasl.mechanism": sec["mechanism"], "sasl.username": sec["username"],
                     "sasl.password": sec["password"]})
    return conf
