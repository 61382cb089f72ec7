"""Fetch (key 1), versions 4-18.

- Reads whole record batches from the log as file regions (sent with
  os.sendfile when large), never past the high watermark (read_uncommitted)
  or the last stable offset (read_committed: the first offset of the
  earliest open transaction, else the high watermark). read_committed
  answers carry the aborted transactions (producer id, first offset) that
  overlap [fetch offset, LSO), from the per-segment aborted-transaction
  index (pykbroker/txn/producers.py); read_uncommitted answers carry null.
- max_bytes and partition_max_bytes are honoured, except that the first
  batch of the first partition with data is returned whole even if larger
  (KIP-74), so a consumer can always make progress.
- Long-poll: if fewer than min_bytes are available, the request waits on the
  requested partitions' events (set by every append) until min_bytes is
  reached or max_wait_ms passes. No polling loop.
- Errors per partition: OFFSET_OUT_OF_RANGE (below the log start offset
  after retention/DeleteRecords, or past the end), KAFKA_STORAGE_ERROR (a
  log offline after an I/O failure), UNKNOWN_TOPIC_OR_PARTITION,
  UNKNOWN_TOPIC_ID (v13+), FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH (v9+,
  current_leader_epoch check).
- Fetch sessions (KIP-227): answered sessionless (session_id 0), which every
  client handles by sending full fetch requests; a request naming a session
  id we never gave out gets FETCH_SESSION_ID_NOT_FOUND.
- v12+ tagged fields (diverging epoch, current leader) left at defaults;
  v13+ topic ids; v16+ node endpoints.
- Cluster mode (zookeeper.connect): consumers get NOT_LEADER_OR_FOLLOWER
  from a broker that does not lead the partition (after the epoch check);
  a fetch with a replica id (v15+: replica_state) is a follower's and is
  served by ``cluster/replica.py``: from the log end offset, with the
  follower's position recorded (high watermark, ISR) and a diverging epoch
  when its last fetched epoch does not match the leader's log. A lone
  broker ignores the replica id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ..protocol.codec import Message
from ..protocol import errors
from ..storage.log import OffsetOutOfRange
from ..txn.producers import aborted_transactions
from . import RequestContext, handler

if TYPE_CHECKING:
    from ..server.topics import PartitionState


def _empty(index: int, code: int, hw: int = -1, lso: int = -1, log_start: int = -1) -> Message:
    return {"partition_index": index, "error_code": code, "high_watermark": hw,
            "last_stable_offset": lso, "log_start_offset": log_start,
            "aborted_transactions": None if code else [], "preferred_read_replica": -1,
            "records": b""}  # never null: librdkafka rejects a null record set ("invalid MessageSetSize -1")


def _check_epoch(requested: int, current: int) -> int:
    if requested < 0 or requested == current:
        return errors.NONE
    return errors.FENCED_LEADER_EPOCH if requested < current else errors.UNKNOWN_LEADER_EPOCH


def _collect(ctx: RequestContext, req: Message) -> tuple[list[Message], int, list[PartitionState]]:
    """One pass over the requested partitions: (responses, bytes, partitions)."""
    st = ctx.state
    v = ctx.api_version
    read_committed = req["isolation_level"] == 1
    remaining = req["max_bytes"] if v >= 3 else 2**31 - 1
    if remaining <= 0:
        remaining = 2**31 - 1
    min_one = True
    total = 0
    watched: list[PartitionState] = []
    out = []
    for t in req["topics"]:
        if v >= 13:
            ts = st.topics_by_id.get(t["topic_id"])
            missing = errors.UNKNOWN_TOPIC_ID
        else:
            ts = st.topics.get(t["topic"])
            missing = errors.UNKNOWN_TOPIC_OR_PARTITION
        parts_out = []
        for fp in t["partitions"]:
            idx = fp["partition"]
            if ts is None or not 0 <= idx < len(ts.partitions):
                parts_out.append(_empty(idx, missing if ts is None else errors.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            p = ts.partitions[idx]
            code = _check_epoch(fp["current_leader_epoch"], p.leader_epoch)
            if not code and not st.replicas.is_leader(p):
                code = errors.NOT_LEADER_OR_FOLLOWER  # consumers read from leaders
            if code and p.log is None:
                parts_out.append(_empty(idx, code))
                continue
            hw = p.high_watermark
            lso = p.last_stable_offset
            if code:
                parts_out.append(_empty(idx, code, hw, lso, p.log_start_offset))
                continue
            watched.append(p)
            limit = min(fp["partition_max_bytes"], remaining)
            try:
                res = p.log.read(fp["fetch_offset"], max(limit, 0),
                                 max_offset=lso if read_committed else hw,
                                 min_one_message=min_one)
            except OffsetOutOfRange:
                parts_out.append(_empty(idx, errors.OFFSET_OUT_OF_RANGE, hw, lso, p.log_start_offset))
                continue
            except OSError:  # a log that failed on I/O (storage/log.py LogOfflineError)
                if st.logs is not None:
                    st.logs.check_partition_dir(p.topic, p.index)  # a failed log directory goes offline
                parts_out.append(_empty(idx, errors.KAFKA_STORAGE_ERROR, hw, lso, p.log_start_offset))
                continue
            size = res.size
            if size:
                min_one = False
                remaining -= size
                total += size
            parts_out.append({"partition_index": idx, "error_code": errors.NONE,
                              "high_watermark": hw, "last_stable_offset": lso,
                              "log_start_offset": p.log_start_offset,
                              "aborted_transactions": (aborted_transactions(p, fp["fetch_offset"], lso)
                                                       if read_committed and size else
                                                       [] if read_committed else None),
                              "preferred_read_replica": -1,
                              "records": res.chunks if size else b""})
        out.append({"topic": t["topic"], "topic_id": t["topic_id"], "partitions": parts_out})
    return out, total, watched


@handler(1, 4, 18)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    if v >= 7 and req["session_id"] != 0:
        return {"throttle_time_ms": 0, "error_code": errors.FETCH_SESSION_ID_NOT_FOUND,
                "session_id": 0, "responses": []}
    replica_id = req["replica_state"]["replica_id"] if v >= 15 else req["replica_id"]
    if replica_id >= 0:  # a follower's fetch (None: no followers here, served as a consumer's)
        answer = await ctx.state.replicas.replica_fetch(req, v, replica_id)
        if answer is not None:
            return answer
    deadline = trio.current_time() + max(req["max_wait_ms"], 0) / 1000
    min_bytes = req["min_bytes"]
    while True:
        responses, total, watched = _collect(ctx, req)
        has_error = any(p["error_code"] for t in responses for p in t["partitions"])
        if total >= min_bytes or has_error or not watched or trio.current_time() >= deadline:
            break
        ev = trio.Event()
        for p in watched:
            p.waiters.add(ev)
        with trio.move_on_at(deadline):
            await ev.wait()
        for p in watched:
            p.waiters.discard(ev)
    body = {"throttle_time_ms": 0, "error_code": errors.NONE, "session_id": 0,
            "responses": responses}
    if v >= 16:
        body["node_endpoints"] = []
    return body

