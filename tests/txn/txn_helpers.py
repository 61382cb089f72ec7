"""In-process helpers for the transaction tests (no sockets): batches,
a producer state over a real partition log, a BrokerState with both
coordinators running in the test's nursery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from pykbroker.config import BrokerConfig
from pykbroker.protocol.records import build_batch, validate_batches
from pykbroker.server.state import BrokerState, build_state
from pykbroker.storage.producer_state import marker_record

BASE = {"offsets.topic.num.partitions": "2", "transaction.state.log.num.partitions": "2",
        "group.min.session.timeout.ms": "100"}


def batch(pid: int = -1, epoch: int = 0, seq: int = 0, n: int = 1, *, txn: bool = False, ts: int | None = None,
          value: bytes = b"v") -> bytes:
    """A batch as a producer sends it (timestamps now: producer state expires
    by the last batch's timestamp, as Kafka's)."""
    if ts is None:
        ts = int(time.time() * 1000)
    return build_batch([(None, value + b"-%d" % i, (), ts) for i in range(n)], producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq if pid >= 0 else -1, transactional=txn)


def marker(pid: int, epoch: int, commit: bool, coord_epoch: int = 0, ts: int = 1000) -> bytes:
    k, v = marker_record(commit, coord_epoch)
    return build_batch([(k, v, (), ts)], producer_id=pid, producer_epoch=epoch, base_sequence=-1,
                       transactional=True, control=True)


def headers(data: bytes) -> list:
    return validate_batches(data, max_batch_bytes=None, client=False)


def make_state(log_dir: Path | None, **overrides: Any) -> BrokerState:
    props = dict(BASE)
    if log_dir is None:
        props["pykbroker.storage"] = "memory"
    else:
        props["log.dirs"] = str(log_dir)
    props.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
    return build_state(BrokerConfig(overrides=props))


async def start(nursery: trio.Nursery, st: BrokerState) -> Any:
    """Group and transaction coordinators of ``st`` running in ``nursery``."""
    st.nursery = nursery
    await nursery.start(st.group_coordinator.run)
    await nursery.start(st.txn_coordinator.run)
    await st.txn_coordinator.loaded.wait()
    return st.txn_coordinator


async def append(st: BrokerState, topic: str, partition: int, data: bytes, origin: str = "client") -> Any:
    p = st.partition(topic, partition)
    return await st.append(p, bytearray(data), headers(data), acks=-1, origin=origin)


def read_all(st: BrokerState, topic: str, partition: int) -> list:
    """(offset, value, is_control, is_transactional) of every record."""
    from pykbroker.protocol.records import decode_records, iter_batches

    p = st.partition(topic, partition)
    data = p.log.read(p.log.log_start_offset, 1 << 30).read_bytes()
    out = []
    for h in iter_batches(data):
        for r in decode_records(data, h.position):
            out.append((r.offset, r.value, h.is_control, h.is_transactional))
    return out
