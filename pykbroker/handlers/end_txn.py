"""EndTxn (key 26), versions 0-5.

- Commits or aborts the producer's open transaction: PrepareCommit/Abort
  is written to __transaction_state, then a COMMIT/ABORT marker to every
  partition of the transaction (its offsets in __consumer_offsets become
  committed or are dropped), then CompleteCommit/Abort, before the answer:
  when a commit returns, read_committed consumers see the transaction.
- A retry after success answers NONE; the other outcome of a finished
  transaction, or ending an Empty one, is INVALID_TXN_STATE; a transaction
  still completing, CONCURRENT_TRANSACTIONS. INVALID_PRODUCER_ID_MAPPING,
  PRODUCER_FENCED (INVALID_PRODUCER_EPOCH below v2), NOT_COORDINATOR,
  COORDINATOR_LOAD_IN_PROGRESS, INVALID_REQUEST as Kafka.
- v3 flexible. v5 (KIP-890 transaction version 2): every commit/abort bumps
  the producer epoch, and the answer carries the producer id and epoch to
  use next; a retry is recognised by its epoch being one below.
- ACLs (authorizer.class.name): WRITE on the transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn import coordinator_of
from ..txn.metadata import TV_0, TV_2
from ..security import acl
from . import RequestContext, handler


@handler(26, 0, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    if not ctx.allowed(acl.WRITE, acl.TRANSACTIONAL_ID, req["transactional_id"]):
        return {"throttle_time_ms": 0, "error_code": errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "producer_id": -1, "producer_epoch": -1}
    tc = coordinator_of(ctx.state)
    if tc is None:
        return {"throttle_time_ms": 0, "error_code": errors.COORDINATOR_NOT_AVAILABLE,
                "producer_id": -1, "producer_epoch": -1}
    code, pid, epoch = await tc.end_txn(req["transactional_id"], req["producer_id"], req["producer_epoch"],
                                        req["committed"], TV_2 if v > 4 else TV_0)
    if v < 2 and code == errors.PRODUCER_FENCED:
        code = errors.INVALID_PRODUCER_EPOCH
    return {"throttle_time_ms": 0, "error_code": code, "producer_id": pid, "producer_epoch": epoch}
