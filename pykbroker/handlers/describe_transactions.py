"""DescribeTransactions (key 65), version 0.

- Per transactional id (at its coordinator): state name (Empty, Ongoing,
  PrepareCommit, ...), timeout, start time (-1 when none), producer id and
  epoch, partitions of the open transaction.
- Errors per id: TRANSACTIONAL_ID_NOT_FOUND, NOT_COORDINATOR,
  COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE (no
  __transaction_state yet), INVALID_REQUEST (empty id).
- Flexible (v0).
- ACLs (authorizer.class.name): DESCRIBE on each transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn import coordinator_of
from ..security import acl
from . import RequestContext, handler


@handler(65, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    tc = coordinator_of(ctx.state)
    out = []
    for tid in req["transactional_ids"]:
        if tc is None or not ctx.allowed(acl.DESCRIBE, acl.TRANSACTIONAL_ID, tid):
            code = errors.COORDINATOR_NOT_AVAILABLE if tc is None else errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            out.append({"error_code": code, "transactional_id": tid,
                        "transaction_state": "", "transaction_timeout_ms": 0, "transaction_start_time_ms": -1,
                        "producer_id": -1, "producer_epoch": -1, "topics": []})
        else:
            out.append(tc.describe(tid))
    return {"throttle_time_ms": 0, "transaction_states": out}
