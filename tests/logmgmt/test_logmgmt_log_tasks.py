"""The background tasks (server/log_tasks.py) in an in-process broker:
flush.ms by timer, retention on schedule, compaction swapped in on the
event loop while appends continue."""

from __future__ import annotations

import time

import trio

from pykbroker.protocol.records import build_batch
from pykbroker.broker import Broker


def overrides(tmp_path, **kw) -> dict:  # type: ignore[no-untyped-def]
    base = {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path),
            "log.retention.check.interval.ms": "100", "log.cleaner.backoff.ms": "50",
            "log.segment.delete.delay.ms": "100", "pykbroker.log.cleaner.isolation": "thread"}
    base.update({k.replace("_", "."): str(v) for k, v in kw.items()})
    return base


async def append(st, p, key: bytes | None, value: bytes | None, ts: int | None = None):  # type: ignore[no-untyped-def]
    data = bytearray(build_batch([(key, value, [], int(time.time() * 1000) if ts is None else ts)]))
    headers = p.log.validate(bytes(data))
    return await st.append(p, data, headers, acks=1)


async def wait_for(fn, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not fn():
            await trio.sleep(0.02)


async def test_flush_ms_timer(tmp_path):
    async with Broker(overrides(tmp_path)) as b:
        st = b.state
        ts = st.create_topic("f", 1, {"flush.ms": "100"})
        plain = st.create_topic("g", 1)
        p, q = ts.partitions[0], plain.partitions[0]
        for i in range(5):
            await append(st, p, b"k", b"v%d" % i)
            await append(st, q, b"k", b"v%d" % i)
        assert p.log.recovery_point < p.log.log_end_offset
        await wait_for(lambda: p.log.recovery_point == p.log.log_end_offset, 3)
        assert q.log.recovery_point < q.log.log_end_offset  # default flush.ms: never by time


async def test_retention_runs_on_schedule_and_files_go_after_the_delay(tmp_path):
    async with Broker(overrides(tmp_path)) as b:
        st = b.state
        ts = st.create_topic("r", 1, {"retention.ms": "1000", "internal.segment.bytes": "500"})
        p = ts.partitions[0]
        old = int(time.time() * 1000) - 60_000
        for _i in range(30):
            await append(st, p, None, b"x" * 100, ts=old)
        assert len(p.log.segments) > 3
        await wait_for(lambda: p.log.log_start_offset == 30, 5)
        await wait_for(lambda: not any(f.name.endswith(".deleted") for f in p.log.dir.iterdir()), 5)


async def test_compaction_in_the_background_while_appending(tmp_path):
    async with Broker(overrides(tmp_path)) as b:
        st = b.state
        ts = st.create_topic("c", 1, {"cleanup.policy": "compact", "internal.segment.bytes": "600",
                                      "min.cleanable.dirty.ratio": "0.01"})
        p = ts.partitions[0]
        last: dict[bytes, int] = {}
        for i in range(400):
            res = await append(st, p, b"k%d" % (i % 8), b"v%d" % i)
            last[b"k%d" % (i % 8)] = res.base_offset
            if i % 50 == 0:
                await trio.sleep(0.05)  # let the cleaner run between bursts
        tasks = st.log_tasks
        await wait_for(lambda: tasks.cleaner.cleanings > 0, 10)
        await wait_for(lambda: tasks.cleaner.checkpoints.get(("c", 0), 0) >= p.log.segments[-1].base_offset - 60, 10)
        from pykbroker.protocol.records import decode_records, iter_batches

        res = p.log.read(0, 10**7)
        data = res.read_bytes()
        recs = [r for h in iter_batches(data) for r in decode_records(data, h.position)]
        assert len(recs) < 400
        got = {}
        for r in recs:
            got[r.key] = r.offset
        assert got == last
        # the checkpoint file is Kafka's
        assert (tmp_path / "cleaner-offset-checkpoint").read_text().startswith("0\n")
