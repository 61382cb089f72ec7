"""DeleteAcls (key 31), versions 1-3 (Kafka 4.x's range).

- Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED for every
  filter); without an authorizer SECURITY_DISABLED ("No Authorizer is
  configured.").
- Each filter as DescribeAcls' (UNKNOWN anywhere: INVALID_REQUEST for that
  filter); every binding matching a filter is deleted and listed under the
  first filter it matched, as Kafka's AclAuthorizer answers; a filter that
  matches nothing gets an empty list.
- The change reaches the broker's file, or ZooKeeper in cluster mode.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler
from .describe_acls import filter_of


@handler(31, 1, 3)
async def handle(ctx: RequestContext, req: Message) -> Message:
    security = ctx.state.security

    def each(code: int, msg: str | None) -> Message:
        return {"throttle_time_ms": 0, "filter_results": [
            {"error_code": code, "error_message": msg, "matching_acls": []} for _ in req["filters"]]}

    if security.authorizer is None:
        return each(errors.SECURITY_DISABLED, "No Authorizer is configured.")
    if not ctx.allowed(acl.ALTER, acl.CLUSTER):
        return each(errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    filters = [filter_of(f) for f in req["filters"]]
    deleted: dict[acl.AclBinding, int] = {}
    for b in security.acls.all():
        for i, flt in enumerate(filters):
            if flt.invalid() is None and flt.matches(b):
                deleted[b] = i
                break
    changed: set[tuple[int, str, int]] = set()
    for b in deleted:
        security.acls.remove(b)
        changed.add((b.resource_type, b.name, b.pattern_type))
    await security.acl_sink.save(changed)
    out = []
    for i, flt in enumerate(filters):
        why = flt.invalid()
        if why is not None:
            out.append({"error_code": errors.INVALID_REQUEST, "error_message": why, "matching_acls": []})
            continue
        out.append({"error_code": errors.NONE, "error_message": None, "matching_acls": [
            {"error_code": errors.NONE, "error_message": None, "resource_type": b.resource_type,
             "resource_name": b.name, "pattern_type": b.pattern_type, "principal": b.principal, "host": b.host,
             "operation": b.operation, "permission_type": b.permission}
            for b, j in deleted.items() if j == i]})
    return {"throttle_time_ms": 0, "filter_results": out}
