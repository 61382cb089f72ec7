"""AddOffsetsToTxn (key 25), versions 0-4.

- Adds the group's partition of ``__consumer_offsets`` (created if needed)
  to the transaction, so TxnOffsetCommit may write there and the
  transaction's marker lands there; errors as AddPartitionsToTxn
  (PRODUCER_FENCED is INVALID_PRODUCER_EPOCH below v2).
- v3 flexible; v4: KIP-890 clients (no wire change).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of as group_coordinator_of
from ..protocol import errors
from ..txn import coordinator_of
from . import RequestContext, handler

OFFSETS_TOPIC = "__consumer_offsets"


@handler(25, 0, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    st = ctx.state
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
