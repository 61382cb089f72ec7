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
- Fetch sessions (KIP-227, v7+; the cache is server/fetch_sessions.py):
  epoch 0 is a full request that opens a session (its id in the answer, 0
  when the cache has no slot), epoch -1 a sessionless one (closing the
  named session), epoch > 0 an incremental one: the request's partitions
  and forgotten topics update the session, every partition of the session
  is read, and the answer lists only partitions with records, a changed
  high watermark or log start offset, or an error (topics may repeat: the
  answered partitions move to the end of the session's order). Top-level
  FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH,
  FETCH_SESSION_TOPIC_ID_ERROR (a session used with and without topic ids).
- v12+ tagged fields (diverging epoch, current leader) left at defaults;
  v13+ topic ids; v16+ node endpoints.
- Cluster mode (zookeeper.connect): consumers get NOT_LEADER_OR_FOLLOWER
  from a broker that does not lead the partition (after the epoch check);
  a fetch with a replica id (v15+: replica_state) is a follower's and is
  served by ``cluster/replica.py``: from the log end offset, with the
  follower's position recorded (high watermark, ISR) and a diverging epoch
  when its last fetched epoch does not match the leader's log. A lone
  broker ignores the replica id.
- ACLs (authorizer.class.name): a consumer needs READ on each topic (else
  TOPIC_AUTHORIZATION_FAILED for its partitions, whether it exists or
  not); a follower's fetch needs CLUSTER_ACTION on the cluster (else
  TOPIC_AUTHORIZATION_FAILED for every partition, as Kafka).
- Quotas (security/quotas.py): a consumer's answered bytes count against
  its consumer_byte_rate and the handler's time so far against its
  request_percentage; over either, the answer is empty with
  throttle_time_ms (the longer of the two) and the connection is muted
  that long (Kafka's throttled fetch response; the bytes are not
  counted). An authorized follower's fetch is exempt from both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl, quotas
from ..storage.log import OffsetOutOfRange
from ..txn.producers import aborted_transactions, loaded
from . import RequestContext, handler

if TYPE_CHECKING:
    from ..server.fetch_sessions import FetchSession, PartKey
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


# (topic name, topic id, partition request entries): the requested topics, or a session's runs
Group = tuple[str, bytes, list[Message]]


def _load_producer_states(st: Any, v: int, groups: list[Group]) -> None:
    """Load the producer state (for the last stable offset) of the requested
    partitions that have not loaded it yet (after a clean restart it loads on
    first use), before any of them is read: the file regions a fetch holds
    can take every descriptor under a low fd limit."""
    for topic, topic_id, partitions in groups:
        ts = st.topics_by_id.get(topic_id) if v >= 13 else st.topics.get(topic)
        if ts is None:
            continue
        for fp in partitions:
            idx = fp["partition"]
            if 0 <= idx < len(ts.partitions):
                p = ts.partitions[idx]
                if p.producers is None and p.log is not None:
                    loaded(p)


def _collect(ctx: RequestContext, req: Message, groups: list[Group]) -> tuple[list[Message], int, list[PartitionState]]:
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
    _load_producer_states(st, v, groups)
    for topic, topic_id, partitions in groups:
        if v >= 13:
            ts = st.topics_by_id.get(topic_id)
            missing = errors.UNKNOWN_TOPIC_ID
        else:
            ts = st.topics.get(topic)
            missing = errors.UNKNOWN_TOPIC_OR_PARTITION
        parts_out = []
        name = ts.name if ts is not None else topic
        denied = bool(name) and not ctx.allowed(acl.READ, acl.TOPIC, name)
        for fp in partitions:
            idx = fp["partition"]
            if denied:
                parts_out.append(_empty(idx, errors.TOPIC_AUTHORIZATION_FAILED))
                continue
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
        out.append({"topic": topic, "topic_id": topic_id, "partitions": parts_out})
    return out, total, watched


def _session_key(v: int, topic: str, topic_id: bytes, partition: int) -> PartKey:
    return (topic_id, partition) if v >= 13 else (topic, partition)


def _session_fields(ctx: RequestContext, req: Message) -> tuple[list[tuple[PartKey, str, bytes, Message]],
                                                                 list[PartKey]]:
    """The request's partitions (key, topic name, topic id, entry) and forgotten partitions."""
    v = ctx.api_version
    by_id = ctx.state.topics_by_id
    adds = []
    for t in req["topics"]:
        topic = t["topic"]
        if v >= 13:
            ts = by_id.get(t["topic_id"])
            topic = ts.name if ts is not None else ""
        for fp in t["partitions"]:
            adds.append((_session_key(v, topic, t["topic_id"], fp["partition"]), topic, t["topic_id"], fp))
    forget = [_session_key(v, t["topic"], t["topic_id"], i)
              for t in req["forgotten_topics_data"] for i in t["partitions"]]
    return adds, forget


def _session_groups(session: FetchSession) -> tuple[list[Group], list[PartKey]]:
    """A session's partitions as runs of one topic, in the session's order."""
    groups: list[Group] = []
    keys = list(session.partitions)
    last: object = None  # the key's topic (id from v13, else name): the session's keys are of one kind
    for key, cp in session.partitions.items():
        if key[0] == last:
            groups[-1][2].append(cp.request())
        else:
            last = key[0]
            groups.append((cp.topic, cp.topic_id, [cp.request()]))
    return groups, keys


def _incremental_answer(session: FetchSession, keys: list[PartKey], responses: list[Message]) -> list[Message]:
    """Only the partitions that changed, regrouped; the answered ones move to the end."""
    out: list[Message] = []
    answered: list[PartKey] = []
    flat = ((t, p) for t in responses for p in t["partitions"])
    for key, (t, p) in zip(keys, flat):
        cp = session.partitions.get(key)
        if cp is None or not cp.must_respond(p, bool(p["records"])):
            continue  # unchanged (or forgotten meanwhile)
        answered.append(key)
        if out and out[-1]["topic"] == t["topic"] and out[-1]["topic_id"] == t["topic_id"]:
            out[-1]["partitions"].append(p)
        else:
            out.append({"topic": t["topic"], "topic_id": t["topic_id"], "partitions": [p]})
    session.rotate(answered)
    return out


@handler(1, 4, 18)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    replica_id = req["replica_state"]["replica_id"] if v >= 15 else req["replica_id"]
    if replica_id >= 0 and not ctx.allowed(acl.CLUSTER_ACTION, acl.CLUSTER):
        return {"throttle_time_ms": 0, "error_code": errors.NONE, "session_id": 0, "responses": [
            {"topic": t["topic"], "topic_id": t["topic_id"],
             "partitions": [_empty(fp["partition"], errors.TOPIC_AUTHORIZATION_FAILED) for fp in t["partitions"]]}
            for t in req["topics"]], **({"node_endpoints": []} if v >= 16 else {})}
    if replica_id >= 0:  # a follower's fetch (None: no followers here, served as a consumer's)
        ctx.quota_exempt = True  # an authorized follower is exempt from request_percentage (Kafka)
        answer = await ctx.state.replicas.replica_fetch(req, v, replica_id)
        if answer is not None:
            return answer
    sessions = ctx.state.fetch_sessions
    kind = "sessionless"
    session: FetchSession | None = None
    keys: list[PartKey] = []
    adds: list[tuple[PartKey, str, bytes, Message]] = []
    if v >= 7:
        adds, forget = _session_fields(ctx, req)
        fctx = sessions.new_context(req["session_id"], req["session_epoch"], v >= 13, adds, forget)
        if fctx.kind == "error":
            return {"throttle_time_ms": 0, "error_code": fctx.error, "session_id": 0, "responses": []}
        kind, session = fctx.kind, fctx.session
    if session is not None:
        groups, keys = _session_groups(session)
    else:
        groups = [(t["topic"], t["topic_id"], t["partitions"]) for t in req["topics"]]
    deadline = trio.current_time() + max(req["max_wait_ms"], 0) / 1000
    min_bytes = req["min_bytes"]
    while True:
        responses, total, watched = _collect(ctx, req, groups)
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
    throttle = 0
    if replica_id < 0:
        # consumer_byte_rate and request_percentage (security/quotas.py): over either, the answer
        # carries no data (Kafka's throttled response), says for how long in throttle_time_ms (the
        # longer of the two), and the connection is muted; the bytes are not counted then
        byte_throttle = ctx.record_quota(quotas.FETCH, total) if total else 0
        throttle = max(byte_throttle, ctx.record_request_quota())
        if throttle and total:
            ctx.unrecord_quota(quotas.FETCH, total)
    session_id = 0
    if throttle:
        # a throttled answer is empty; a session stays as it was (Kafka's getThrottledResponse)
        responses = []
        session_id = session.id if session is not None else 0
    elif session is not None:
        responses = _incremental_answer(session, keys, responses)
        session_id = session.id
    elif kind == "full":
        flat = (p for t in responses for p in t["partitions"])
        session_id = sessions.maybe_create(replica_id >= 0, v >= 13,
                                           ((key, topic, tid, fp, p) for (key, topic, tid, fp), p in zip(adds, flat)))
    body = {"throttle_time_ms": throttle, "error_code": errors.NONE, "session_id": session_id,
            "responses": responses}
    if v >= 16:
        body["node_endpoints"] = []
    return body
