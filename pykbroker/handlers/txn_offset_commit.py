"""TxnOffsetCommit (key 28), versions 0-5.

- Offsets committed inside a transaction: written to the group's
  partition of __consumer_offsets as a transactional batch of the
  producer, and only committed when the transaction commits (dropped when
  it aborts); meanwhile OffsetFetch with require_stable answers
  UNSTABLE_OFFSET_COMMIT for those partitions.
- The group's partition must be in the transaction (AddOffsetsToTxn)
  before the first such commit: else INVALID_TXN_STATE (v0-3) or
  TRANSACTION_ABORTABLE (v4); v5+ adds it implicitly (KIP-890). A fenced
  epoch: INVALID_PRODUCER_EPOCH; an unknown producer id:
  INVALID_PRODUCER_ID_MAPPING; coordinator trouble: COORDINATOR_NOT_AVAILABLE.
- Group checks as Kafka's transactional validateOffsetCommit: an unknown
  group with generation -1 becomes a simple group, with a generation
  ILLEGAL_GENERATION; members and generations are checked when given
  (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION); no
  REBALANCE_IN_PROGRESS. Unknown topics or partitions:
  UNKNOWN_TOPIC_OR_PARTITION; OFFSET_METADATA_TOO_LARGE; INVALID_GROUP_ID.
- v2 leader epoch; v3 flexible, generation / member id / instance id;
  below v2 COORDINATOR_LOAD_IN_PROGRESS is answered as
  COORDINATOR_NOT_AVAILABLE (as Kafka, for 0.11-2.0 clients).
- ACLs (authorizer.class.name): WRITE on the transactional id (else
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition), READ on the
  group (else GROUP_AUTHORIZATION_FAILED) and on each topic (else
  TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of as group_coordinator_of
from ..protocol import errors
from ..txn.producers import map_verify_error, verify_in_transaction
from ..security import acl
from . import RequestContext, handler

OFFSETS_TOPIC = "__consumer_offsets"


def _operation_error(code: int) -> int:
    """Kafka's CoordinatorOperationExceptionHelper mapping."""
    if code == errors.NETWORK_EXCEPTION:
        return errors.COORDINATOR_LOAD_IN_PROGRESS
    if code in (errors.UNKNOWN_TOPIC_OR_PARTITION, errors.NOT_ENOUGH_REPLICAS, errors.REQUEST_TIMED_OUT):
        return errors.COORDINATOR_NOT_AVAILABLE
    if code in (errors.NOT_LEADER_OR_FOLLOWER, errors.KAFKA_STORAGE_ERROR):
        return errors.NOT_COORDINATOR
    if code in (errors.MESSAGE_TOO_LARGE, errors.RECORD_LIST_TOO_LARGE, errors.INVALID_FETCH_SIZE):
        return errors.UNKNOWN_SERVER_ERROR
    return code


async def _commit(ctx: RequestContext, req: Message,
                  todo: list[tuple[str, int, int, int, str | None]]) -> dict[tuple[str, int], int]:
    st = ctx.state
    v = ctx.api_version
    keys = [(t, p) for t, p, *_ in todo]
    gc = group_coordinator_of(st)
    gid = req["group_id"]
    if gc is None:
        return dict.fromkeys(keys, errors.COORDINATOR_NOT_AVAILABLE)
    if not gid:
        return dict.fromkeys(keys, errors.INVALID_GROUP_ID)
    err = gc.availability(gid)
    if err:
        return dict.fromkeys(keys, err)
    ts = gc.topic()
    p = ts.partitions[gc.partition_for(gid)]
    code = errors.NONE
    if not req["transactional_id"]:
        code = errors.INVALID_REQUEST
    else:
        code = await verify_in_transaction(st, req["transactional_id"], req["producer_id"], req["producer_epoch"],
                                           p, add_partition=v >= 5)
        if code:
            code = _operation_error(map_verify_error(code, v >= 4))
    if code:
        return dict.fromkeys(keys, code)
    generation = req["generation_id"] if v >= 3 else -1
    member_id = req["member_id"] if v >= 3 else ""
    instance_id = req["group_instance_id"] if v >= 3 else None
    return await gc.commit_txn_offsets(gid, req["producer_id"], req["producer_epoch"], generation,
                                       member_id or "", instance_id, todo)


@handler(28, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    pre: dict[tuple[int, int], int] = {}
    todo: list[tuple[str, int, int, int, str | None]] = []
    whole = errors.NONE
    if not ctx.allowed(acl.WRITE, acl.TRANSACTIONAL_ID, req["transactional_id"] or ""):
        whole = errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        whole = errors.GROUP_AUTHORIZATION_FAILED
    for ti, t in enumerate(req["topics"]):
        ts = st.topics.get(t["name"])
        denied = not ctx.allowed(acl.READ, acl.TOPIC, t["name"])
        for pi, p in enumerate(t["partitions"]):
            if whole:
                pre[(ti, pi)] = whole
            elif denied:
                pre[(ti, pi)] = errors.TOPIC_AUTHORIZATION_FAILED
            elif ts is None or not 0 <= p["partition_index"] < len(ts.partitions):
                pre[(ti, pi)] = errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                todo.append((t["name"], p["partition_index"], p["committed_offset"],
                             p["committed_leader_epoch"] if v >= 2 else -1, p["committed_metadata"]))
    results = await _commit(ctx, req, todo) if todo else {}
    topics = []
    for ti, t in enumerate(req["topics"]):
        parts = []
        for pi, p in enumerate(t["partitions"]):
            code = pre.get((ti, pi))
            if code is None:
                code = results.get((t["name"], p["partition_index"]), errors.UNKNOWN_SERVER_ERROR)
            if v < 2 and code == errors.COORDINATOR_LOAD_IN_PROGRESS:
                code = errors.COORDINATOR_NOT_AVAILABLE
            parts.append({"partition_index": p["partition_index"], "error_code": code})
        topics.append({"name": t["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
