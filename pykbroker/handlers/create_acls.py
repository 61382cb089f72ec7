"""CreateAcls (key 30), versions 1-3 (Kafka 4.x's range; librdkafka sends 2,
kafka-python 3, aiokafka/kafkajs 1).

- Needs ALTER on the cluster: otherwise every creation gets
  CLUSTER_AUTHORIZATION_FAILED. Without an authorizer (authorizer.class.name
  unset) every creation gets SECURITY_DISABLED ("No Authorizer is
  configured."), as Kafka.
- Each creation is checked alone (INVALID_REQUEST with the reason: unknown
  resource, pattern (only LITERAL and PREFIXED), operation or permission;
  an empty name; CLUSTER other than kafka-cluster; a principal that is not
  ``Type:name``; an operation the resource type does not support); the valid
  ones are added, one result per creation in request order. Creating an
  ACL that exists already succeeds and changes nothing.
- ACLs are stored in ``<first log dir>/acls.json`` (replaced atomically), in
  memory with pykbroker.storage=memory, and in ZooKeeper in cluster mode
  (``/kafka-acl/...``, ``/kafka-acl-extended/prefixed/...`` with Kafka's
  change notifications; pykbroker/cluster/acls.py), which every broker
  watches.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler


@handler(30, 1, 3)
async def handle(ctx: RequestContext, req: Message) -> Message:
    security = ctx.state.security

    def each(code: int, msg: str | None) -> Message:
        return {"throttle_time_ms": 0,
                "results": [{"error_code": code, "error_message": msg} for _ in req["creations"]]}

    if security.authorizer is None:
        return each(errors.SECURITY_DISABLED, "No Authorizer is configured.")
    if not ctx.allowed(acl.ALTER, acl.CLUSTER):
        return each(errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    results: list[Message] = []
    changed: set[tuple[int, str, int]] = set()
    for c in req["creations"]:
        b = acl.AclBinding(c["resource_type"], c["resource_name"], c["resource_pattern_type"], c["principal"],
                           c["host"], c["operation"], c["permission_type"])
        why = acl.binding_error(b)
        if why is not None:
            results.append({"error_code": errors.INVALID_REQUEST, "error_message": why})
            continue
        if security.acls.add(b):
            changed.add((b.resource_type, b.name, b.pattern_type))
        results.append({"error_code": errors.NONE, "error_message": None})
    await security.acl_sink.save(changed)
    return {"throttle_time_ms": 0, "results": results}
