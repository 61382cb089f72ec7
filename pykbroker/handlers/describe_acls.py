"""DescribeAcls (key 29), versions 1-3 (Kafka 4.x's range).

- Needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED); without
  an authorizer SECURITY_DISABLED ("No Authorizer is configured.").
- The filter: resource type (ANY or one), name (null: any), pattern type
  ANY (both kinds, name compared as given), LITERAL, PREFIXED, or MATCH
  (every binding that applies to a resource of that name: the literal
  name, the ``*`` wildcard, prefixes of it); principal and host (null:
  any); operation and permission (ANY or one). UNKNOWN anywhere:
  INVALID_REQUEST.
- The answer groups the matching bindings per resource pattern, sorted by
  type, name and pattern type.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler


def filter_of(f: Message) -> acl.AclFilter:
    return acl.AclFilter(f["resource_type_filter"], f["resource_name_filter"], f["pattern_type_filter"],
                         f["principal_filter"], f["host_filter"], f["operation"], f["permission_type"])


@handler(29, 1, 3)
async def handle(ctx: RequestContext, req: Message) -> Message:
    security = ctx.state.security

    def error(code: int, msg: str) -> Message:
        return {"throttle_time_ms": 0, "error_code": code, "error_message": msg, "resources": []}

    if security.authorizer is None:
        return error(errors.SECURITY_DISABLED, "No Authorizer is configured.")
    if not ctx.allowed(acl.DESCRIBE, acl.CLUSTER):
        return error(errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    flt = filter_of(req)
    why = flt.invalid()
    if why is not None:
        return error(errors.INVALID_REQUEST, why)
    grouped: dict[tuple[int, str, int], list[Message]] = {}
    for b in security.acls.matching(flt):
        grouped.setdefault((b.resource_type, b.name, b.pattern_type), []).append(
            {"principal": b.principal, "host": b.host, "operation": b.operation, "permission_type": b.permission})
    resources = [{"resource_type": rt, "resource_name": name, "pattern_type": pt, "acls": acls}
                 for (rt, name, pt), acls in sorted(grouped.items())]
    return {"throttle_time_ms": 0, "error_code": errors.NONE, "error_message": None, "resources": resources}
