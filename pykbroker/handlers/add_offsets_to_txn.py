"""AddOffsetsToTxn (key 25), versions 0-4.

- Adds the group's partition of ``__consumer_offsets`` (created if needed)
  to the transaction, so TxnOffsetCommit may write there and the
  transaction's marker lands there; errors as AddPartitionsToTxn
  (PRODUCER_FENCED is INVALID_PRODUCER_EPOCH below v2).
- v3 flexible; v4: KIP-890 clients (no wire change).
- ACLs (authorizer.class.name): WRITE on the transactional id (else
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group (else
  GROUP_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of as group_coordinator_of
from ..protocol import errors
from ..txn import coordinator_of
from ..security import acl
from . import RequestContext, handler

OFFSETS_TOPIC = "__consumer_offsets"


@handler(25, 0, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    st = ctx.state
    if not ctx.allowed(acl.WRITE, acl.TRANSACTIONAL_ID, req["transactional_id"]):
        return {"throttle_time_ms": 0, "error_code": errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    if not ctx.allowed(acl.READ, acl.GROUP, req["group_id"]):
        return {"throttle_time_ms": 0, "error_code": errors.GROUP_AUTHORIZATION_FAILED}
    tc = coordinator_of(st)
    gc = group_coordinator_of(st)
    if tc is None or gc is None:
        return {"throttle_time_ms": 0, "error_code": errors.COORDINATOR_NOT_AVAILABLE}
    try:
        ts = gc.ensure_topic()
    except Exception:
        ts = None
    if ts is None:
        return {"throttle_time_ms": 0, "error_code": errors.COORDINATOR_NOT_AVAILABLE}
    part = gc.partition_for(req["group_id"] or "")
    code = await tc.add_partitions(req["transactional_id"], req["producer_id"], req["producer_epoch"],
                                   [(OFFSETS_TOPIC, part)])
    if v < 2 and code == errors.PRODUCER_FENCED:
        code = errors.INVALID_PRODUCER_EPOCH
    return {"throttle_time_ms": 0, "error_code": code}
