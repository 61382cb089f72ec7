"""AddPartitionsToTxn (key 24), versions 0-5.

- v0-3 (clients): one transaction; its partitions join the transaction
  (written to __transaction_state before the answer; a transaction in
  Empty/Complete* starts now and its timeout runs from here). One error
  for every partition: INVALID_PRODUCER_ID_MAPPING (unknown transactional
  id or another producer id), PRODUCER_FENCED (another epoch;
  INVALID_PRODUCER_EPOCH below v2), CONCURRENT_TRANSACTIONS (the previous
  transaction is still completing), COORDINATOR_LOAD_IN_PROGRESS,
  NOT_COORDINATOR, INVALID_REQUEST (no transactional id). Unknown topics or
  partitions: UNKNOWN_TOPIC_OR_PARTITION for those and
  OPERATION_NOT_ATTEMPTED for the others (nothing added).
- v3 flexible. v4+ (broker to broker, KIP-890): several transactions per
  request, each answered separately, and ``verify_only``: nothing is added,
  each partition answers NONE if it is in the open transaction, else
  TRANSACTION_ABORTABLE (the partition leader's verification).
- ACLs (authorizer.class.name): WRITE on the transactional id (else
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition) and on each
  topic (else TOPIC_AUTHORIZATION_FAILED there, OPERATION_NOT_ATTEMPTED
  elsewhere); v4+ (brokers' batched requests) needs CLUSTER_ACTION on the
  cluster, else CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn import coordinator_of
from ..security import acl
from . import RequestContext, handler


def _result(topics: list[Message], codes: dict[tuple[str, int], int]) -> list[Message]:
    return [{"name": t["name"], "results_by_partition": [
        {"partition_index": i, "partition_error_code": codes[(t["name"], i)]} for i in t["partitions"]]}
        for t in topics]


async def _one(ctx: RequestContext, txn_id: str | None, pid: int, epoch: int, topics: list[Message],
               verify_only: bool, v: int) -> list[Message]:
    st = ctx.state
    tps = [(t["name"], i) for t in topics for i in t["partitions"]]
    if txn_id is None or not ctx.allowed(acl.WRITE, acl.TRANSACTIONAL_ID, txn_id):
        return _result(topics, dict.fromkeys(tps, errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    denied = {t["name"] for t in topics if not ctx.allowed(acl.WRITE, acl.TOPIC, t["name"])}
    if denied:
        return _result(topics, {tp: errors.TOPIC_AUTHORIZATION_FAILED if tp[0] in denied
                                else errors.OPERATION_NOT_ATTEMPTED for tp in tps})
    unknown = {tp for tp in tps if st.partition(*tp) is None}
    if unknown:
        return _result(topics, {tp: errors.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown
                                else errors.OPERATION_NOT_ATTEMPTED for tp in tps})
    tc = coordinator_of(st)
    if tc is None:
        return _result(topics, dict.fromkeys(tps, errors.COORDINATOR_NOT_AVAILABLE))
    if verify_only:
        return _result(topics, {tp: tc.verify_partition(txn_id, pid, epoch, tp) for tp in tps})
    code = await tc.add_partitions(txn_id, pid, epoch, tps)
    if v < 2 and code == errors.PRODUCER_FENCED:
        code = errors.INVALID_PRODUCER_EPOCH
    return _result(topics, dict.fromkeys(tps, code))


@handler(24, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    if v < 4:
        res = await _one(ctx, req["v3_and_below_transactional_id"], req["v3_and_below_producer_id"],
                         req["v3_and_below_producer_epoch"], req["v3_and_below_topics"], False, v)
        return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": res}
    if not ctx.allowed(acl.CLUSTER_ACTION, acl.CLUSTER):
        return {"throttle_time_ms": 0, "error_code": errors.CLUSTER_AUTHORIZATION_FAILED,
                "results_by_transaction": []}
    out = []
    for t in req["transactions"]:
        res = await _one(ctx, t["transactional_id"], t["producer_id"], t["producer_epoch"], t["topics"],
                         t["verify_only"], v)
        out.append({"transactional_id": t["transactional_id"], "topic_results": res})
    return {"throttle_time_ms": 0, "error_code": errors.NONE, "results_by_transaction": out}
