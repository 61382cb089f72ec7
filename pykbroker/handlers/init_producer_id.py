"""InitProducerId (key 22), versions 0-5.

- No transactional id: an idempotent producer; always a fresh producer id
  with epoch 0 (as Kafka, also for v3+ requests carrying an old id/epoch:
  the client bumps idempotent epochs itself).
- A transactional id (to its coordinator, see FindCoordinator key type 1):
  a new id gets a producer id and epoch 0; a known one gets its epoch
  bumped, which fences any older producer with the same id. An open
  transaction is aborted first (with a bumped epoch) and the answer is
  CONCURRENT_TRANSACTIONS: the client retries. An exhausted epoch
  (32766) moves to a new producer id.
- Errors: INVALID_REQUEST (empty transactional id; only one of producer
  id/epoch given, v3+), INVALID_TRANSACTION_TIMEOUT (not in
  (0, transaction.max.timeout.ms]), COORDINATOR_LOAD_IN_PROGRESS,
  NOT_COORDINATOR, CONCURRENT_TRANSACTIONS, PRODUCER_FENCED (v3+ with a
  producer id/epoch that is not the current or previous one;
  INVALID_PRODUCER_EPOCH below v4, as Kafka).
- v2 flexible; v3+: producer id and epoch of the caller (KIP-360: an epoch
  bump after a failed transaction, or a retry of one: the same epoch comes
  back). v5: KIP-890 clients (no wire change). v6 (KIP-939 two-phase
  commit) is not served.
- ACLs (authorizer.class.name): WRITE on the transactional id (else
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs
  IDEMPOTENT_WRITE on the cluster or WRITE on some topic (else
  CLUSTER_AUTHORIZATION_FAILED), as Kafka.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn import coordinator_of
from ..security import acl
from . import RequestContext, handler


@handler(22, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    out = {"throttle_time_ms": 0, "error_code": errors.NONE, "producer_id": -1, "producer_epoch": -1}
    pid, epoch = (req["producer_id"], req["producer_epoch"]) if v >= 3 else (-1, -1)
    if pid == -1 and epoch == -1:
        expected = None
    elif pid == -1 or epoch == -1:
        out["error_code"] = errors.INVALID_REQUEST
        return out
    else:
        expected = (pid, epoch)
    txn_id = req["transactional_id"]
    if txn_id is not None and not ctx.allowed(acl.WRITE, acl.TRANSACTIONAL_ID, txn_id):
        out["error_code"] = errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        return out
    if txn_id is None and not ctx.allowed(acl.IDEMPOTENT_WRITE, acl.CLUSTER) \
            and not ctx.allowed_any(acl.WRITE, acl.TOPIC):
        out["error_code"] = errors.CLUSTER_AUTHORIZATION_FAILED
        return out
    tc = coordinator_of(ctx.state)
    if tc is None:
        out["error_code"] = errors.COORDINATOR_NOT_AVAILABLE
        return out
    code, new_pid, new_epoch = await tc.init_producer_id(req["transactional_id"], req["transaction_timeout_ms"],
                                                         expected)
    if v < 4 and code == errors.PRODUCER_FENCED:
        code = errors.INVALID_PRODUCER_EPOCH
    out.update(error_code=code, producer_id=new_pid, producer_epoch=new_epoch)
    return out
