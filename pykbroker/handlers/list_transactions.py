"""ListTransactions (key 66), versions 0-2.

- The transactional ids this broker coordinates (Dead ones left out),
  with producer id and state name, filtered by states (names this broker
  does not know are echoed in unknown_state_filters), producer ids,
  v1+ duration (only transactions started more than duration_filter ms
  ago) and v2 transactional id pattern (a regular expression that must
  match the whole id; INVALID_REGULAR_EXPRESSION if it does not compile).
- COORDINATOR_LOAD_IN_PROGRESS while __transaction_state is loading.
- Flexible (v0+).
- ACLs (authorizer.class.name): only the transactional ids the principal may DESCRIBE.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn import coordinator_of
from ..security import acl
from . import RequestContext, handler


@handler(66, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    v = ctx.api_version
    tc = coordinator_of(ctx.state)
    if tc is None:
        return {"throttle_time_ms": 0, "error_code": errors.COORDINATOR_NOT_AVAILABLE,
                "unknown_state_filters": [], "transaction_states": []}
    res = tc.list(list(req["state_filters"] or []), list(req["producer_id_filters"] or []),
                  req["duration_filter"] if v >= 1 else -1,
                  req["transactional_id_pattern"] if v >= 2 else None)
    res["transaction_states"] = [t for t in res["transaction_states"]
                                 if ctx.allowed(acl.DESCRIBE, acl.TRANSACTIONAL_ID, t["transactional_id"])]
    return {"throttle_time_ms": 0, **res}
