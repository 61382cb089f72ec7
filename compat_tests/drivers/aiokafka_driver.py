"""aiokafka (asyncio). Every operation runs its own event loop (asyncio.run)."""

from __future__ import annotations

import asyncio
import time

from . import DEADLINE, HEARTBEAT_MS, SESSION_TIMEOUT_MS, Ack, Driver, DriverError, Rec, seen_all


def _code(e: BaseException) -> int | str:
    errno = getattr(e, "errno", None)
    return errno if isinstance(errno, int) else type(e).__name__


def _rec(m) -> Rec:  # type: ignore[no-untyped-def]
    return Rec(m.partition, m.offset, m.key, m.value, tuple((k, v) for k, v in m.headers),
               m.timestamp)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, DEADLINE * 2))


class Aiokafka(Driver):
    family = "aiokafka"
    notes = ("AIOKafkaProducer/AIOKafkaConsumer/AIOKafkaAdminClient, each operation in its own "
             "asyncio loop; the three group members share one loop.",)

    def versions(self) -> str:
        import aiokafka

        return f"aiokafka {aiokafka.__version__}"

    def secure_roundtrip(self, sec, topic, values):  # type: ignore[no-untyped-def]
        import ssl

        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        conf: dict = {"bootstrap_servers": sec["bootstrap"], "security_protocol": sec["protocol"]}
        if "SSL" in sec["protocol"]:
            ctx = ssl.create_default_context(cafile=sec["ca"])
            if sec.get("cert"):
                ctx.load_cert_chain(sec["cert"], sec["key"])
            conf["ssl_context"] = ctx
        if sec["protocol"].startswith("SASL_"):
            conf.update(sasl_mechanism=sec["mechanism"], sasl_plain_username=sec["username"],
                        sasl_plain_password=sec["password"])

        async def go():  # type: ignore[no-untyped-def]
            p = AIOKafkaProducer(**conf)
            await p.start()
            try:
                for v in values:
                    await p.send_and_wait(topic, v, partition=0)
            finally:
                await p.stop()
            c = AIOKafkaConsumer(**conf, group_id=None, enable_auto_commit=False)
            await c.start()
            got: list = []
            try:
                tp = TopicPartition(topic, 0)
                c.assign([tp])
                c.seek(tp, 0)
                while len(got) < len(values):
                    m = await c.getone()
                    got.append((m.offset, m.value))
            finally:
                await c.stop()
            return got

        return _run(go())

    # -- data -------------------------------------------------------------
    def metadata(self, bs, topic):  # type: ignore[no-untyped-def]
        async def go(a):  # type: ignore[no-untyped-def]
            return await a.describe_cluster(), await a.describe_topics([topic])

        cluster, topics = self._admin_call(bs, go)
        (t,) = [t for t in topics if t["topic"] == topic]
        if t["error_code"]:
            raise DriverError(f"metadata for {topic}: error {t['error_code']}")
        return {"brokers": [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]],
                "partitions": {p["partition"]: p["leader"] for p in t["partitions"]}}

    def produce(self, bs, topic, recs, *, compression=None, idempotent=False, max_request=None):  # type: ignore[no-untyped-def]
        from aiokafka import AIOKafkaProducer

        async def go():  # type: ignore[no-untyped-def]
            conf = dict(bootstrap_servers=bs, linger_ms=5, acks="all", compression_type=compression,
                        enable_idempotence=idempotent)
            if max_request:
                conf["max_request_size"] = max_request
            p = AIOKafkaProducer(**conf)
            await p.start()
            try:
                futs = []
                for r in recs:
                    futs.append(await p.send(topic, value=r.value, key=r.key, partition=r.partition,
                                             timestamp_ms=r.timestamp if r.timestamp >= 0 else None,
                                             headers=list(r.headers)))
                acks = []
                for r, f in zip(recs, futs):
                    try:
                        m = await f
                        acks.append(Ack(m.partition, m.offset))
                    except Exception as e:  # the error is the result
                        acks.append(Ack(r.partition, error=_code(e), message=repr(e)))
                return acks
            finally:
                await p.stop()

        return _run(go())

    def consume(self, bs, topic, start, want, *, read_committed=False):  # type: ignore[no-untyped-def]
        from aiokafka import AIOKafkaConsumer, TopicPartition

        async def go():  # type: ignore[no-untyped-def]
            c = AIOKafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False,
                                 isolation_level="read_committed" if read_committed else "read_uncommitted")
            await c.start()
            got: dict[int, list[Rec]] = {p: [] for p in start}
            try:
                tps = [TopicPartition(topic, p) for p in start]
                c.assign(tps)
                for tp in tps:
                    c.seek(tp, start[tp.partition])
                deadline = time.monotonic() + DEADLINE
                while any(len(got[p]) < n for p, n in want.items()) and time.monotonic() < deadline:
                    for msgs in (await c.getmany(timeout_ms=200)).values():
                        for m in msgs:
                            got[m.partition].append(_rec(m))
            finally:
                await c.stop()
            return got

        return _run(go())

    def offsets_for_times(self, bs, topic, times):  # type: ignore[no-untyped-def]
        from aiokafka import AIOKafkaConsumer, TopicPartition

        async def go():  # type: ignore[no-untyped-def]
            c = AIOKafkaConsumer(bootstrap_servers=bs)
            await c.start()
            try:
                res = await c.offsets_for_times({TopicPartition(topic, p): ts for p, ts in times.items()})
            finally:
                await c.stop()
            return {tp.partition: (o.offset if o is not None else -1) for tp, o in res.items()}

        return _run(go())

    # -- admin ------------------------------------------------------------
    def _admin_call(self, bs: str, fn):  # type: ignore[no-untyped-def]
        from aiokafka.admin import AIOKafkaAdminClient

        async def go():  # type: ignore[no-untyped-def]
            a = AIOKafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=int(DEADLINE * 1000))
            await a.start()
            try:
                return await fn(a)
            finally:
                await a.close()

        return _run(go())

    def create_topics(self, bs, topics):  # type: ignore[no-untyped-def]
        from aiokafka.admin import NewTopic

        r = self._admin_call(bs, lambda a: a.create_topics(
            [NewTopic(n, p, 1, topic_configs=c) for n, p, c in topics]))
        bad = [e for e in r.topic_errors if e[1]]
        if bad:
            raise DriverError(f"create_topics: {bad}")

    def delete_topics(self, bs, names):  # type: ignore[no-untyped-def]
        r = self._admin_call(bs, lambda a: a.delete_topics(names))
        bad = [e for e in r.topic_error_codes if e[1]]
        if bad:
            raise DriverError(f"delete_topics: {bad}")

    def create_partitions(self, bs, topic, total):  # type: ignore[no-untyped-def]
        from aiokafka.admin import NewPartitions

        r = self._admin_call(bs, lambda a: a.create_partitions({topic: NewPartitions(total)}))
        bad = [e for e in r.topic_errors if e[1]]
        if bad:
            raise DriverError(f"create_partitions: {bad}")

    def describe_configs(self, bs, topic):  # type: ignore[no-untyped-def]
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        (r,) = self._admin_call(bs, lambda a: a.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]))
        ((code, msg, _rtype, _name, entries),) = r.resources
        if code:
            raise DriverError(f"describe_configs: {code} {msg}")
        return {e[0]: e[1] for e in entries}

    def alter_configs(self, bs, topic, configs, advertised):  # type: ignore[no-untyped-def]
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        rs = self._admin_call(bs, lambda a: a.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))]))
        for r in rs:
            bad = [x for x in r.resources if x[0]]
            if bad:
                raise DriverError(f"alter_configs: {bad}")

    # -- groups -----------------------------------------------------------
    def _member(self, bs: str, group: str):  # type: ignore[no-untyped-def]
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False, session_timeout_ms=SESSION_TIMEOUT_MS,
                                heartbeat_interval_ms=HEARTBEAT_MS)

    def group_rebalance(self, bs, topic, group, partitions):  # type: ignore[no-untyped-def]
        async def go():  # type: ignore[no-untyped-def]
            members = [self._member(bs, group) for _ in range(3)]
            for c in members:
                await c.start()
                c.subscribe([topic])
            sinks = {"cur": []}
            before = sinks["cur"]
            live = [0, 1, 2]

            async def pump(i: int) -> None:
                while True:
                    for msgs in (await members[i].getmany(timeout_ms=50)).values():
                        for m in msgs:
                            sinks["cur"].append([m.partition, m.offset, m.value.decode()])

            def shares() -> list[set[int]]:
                return [{tp.partition for tp in members[i].assignment()} for i in live]

            def split() -> bool:
                s = shares()
                return all(s) and sorted(p for x in s for p in x) == list(range(partitions))

            async def wait(cond) -> None:  # type: ignore[no-untyped-def]
                deadline = time.monotonic() + DEADLINE
                while not cond():
                    if time.monotonic() > deadline:
                        raise DriverError(f"timed out; assignments {[sorted(s) for s in shares()]}, "
                                          f"consumed {sinks['cur']}")
                    await asyncio.sleep(0.05)

            tasks = {i: asyncio.create_task(pump(i)) for i in range(3)}
            try:
                await wait(lambda: split() and seen_all(before, "before-", partitions))
                assign3 = [sorted(s) for s in shares()]
                tasks.pop(2).cancel()
                await members[2].stop()
                live.remove(2)
                await wait(split)
                assign2 = [sorted(s) for s in shares()]
                after: list = []
                sinks["cur"] = after
                p = __import__("aiokafka").AIOKafkaProducer(bootstrap_servers=bs)
                await p.start()
                try:
                    for part in range(partitions):
                        await p.send_and_wait(topic, f"after-{part}".encode(), partition=part)
                finally:
                    await p.stop()
                await wait(lambda: seen_all(after, "after-", partitions))
            finally:
                for t in tasks.values():
                    t.cancel()
                for i in live:
                    await members[i].stop()
            return {"assign3": assign3, "assign2": assign2, "before": before, "after": after}

        return _run(go())

    def group_consume(self, bs, topic, group, n):  # type: ignore[no-untyped-def]
        from aiokafka import TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        async def go():  # type: ignore[no-untyped-def]
            c = self._member(bs, group)
            await c.start()
            out: list[Rec] = []
            try:
                c.subscribe([topic])
                deadline = time.monotonic() + DEADLINE
                while len(out) < n:
                    if time.monotonic() > deadline:
                        raise DriverError(f"got {len(out)} of {n} records")
                    for msgs in (await c.getmany(timeout_ms=200)).values():
                        out.extend(_rec(m) for m in msgs)
                last = out[n - 1]
                await c.commit({TopicPartition(topic, last.partition): OffsetAndMetadata(last.offset + 1, "")})
            finally:
                await c.stop()
            return out[:n]

        return _run(go())

    # -- exactly once -----------------------------------------------------
    def produce_transactions(self, bs, topic, txn_id, aborted, committed):  # type: ignore[no-untyped-def]
        from aiokafka import AIOKafkaProducer

        async def go():  # type: ignore[no-untyped-def]
            p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id=txn_id, linger_ms=5)
            await p.start()
            try:
                for recs, commit in ((aborted, False), (committed, True)):
                    await p.begin_transaction()
                    futs = [await p.send(topic, value=r.value, key=r.key, partition=r.partition)
                            for r in recs]
                    await asyncio.gather(*futs)
                    if commit:
                        await p.commit_transaction()
                    else:
                        await p.abort_transaction()
            finally:
                await p.stop()

        _run(go())


DRIVER = Aiokafka()
