"""DescribeClientQuotas (key 48), versions 0-1 (Kafka 4.x's range).

- The quotas whose entity matches every component: match type 0 (EXACT:
  that name), 1 (DEFAULT: the type's default entity, name null) or 2 (ANY:
  any name of that type); ``strict``: the entity has no other types. No
  components: every quota (unless strict).
- Entities are answered with their types and names (null for a default),
  values as float64 (Kafka's shape).
- A component with an unknown match type, an EXACT match without a name or
  an entity type given twice: INVALID_REQUEST for the whole request.
- ACLs (authorizer.class.name): DESCRIBE_CONFIGS on the cluster, else
  CLUSTER_AUTHORIZATION_FAILED.
- Quotas: pykbroker/security/quotas.py (``<first log dir>/client-quotas.json``).
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler


@handler(48, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    def error(code: int, msg: str) -> Message:
        return {"throttle_time_ms": 0, "error_code": code, "error_message": msg, "entries": None}

    if not ctx.allowed(acl.DESCRIBE_CONFIGS, acl.CLUSTER):
        return error(errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    components = []
    seen: set[str] = set()
    for c in req["components"]:
        if c["entity_type"] in seen:
            return error(errors.INVALID_REQUEST, f"Duplicate filter component entity type {c['entity_type']}")
        seen.add(c["entity_type"])
        if c["match_type"] not in (0, 1, 2):
            return error(errors.INVALID_REQUEST, f"Unexpected match type {c['match_type']}")
        if c["match_type"] == 0 and c["match"] is None:
            return error(errors.INVALID_REQUEST, "Request specified an exact match with a null name")
        components.append((c["entity_type"], c["match_type"], c["match"]))
    found = ctx.state.security.quota_store.describe(components, bool(req["strict"]))
    return {"throttle_time_ms": 0, "error_code": errors.NONE, "error_message": None, "entries": [
        {"entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
         "values": [{"key": k, "value": v} for k, v in sorted(values.items())]} for entity, values in found]}
