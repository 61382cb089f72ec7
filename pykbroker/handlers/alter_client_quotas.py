"""AlterClientQuotas (key 49), versions 0-1 (Kafka 4.x's range).

- Each entry: an entity (types ``user``, ``client-id``, or ``ip`` alone;
  a null name is the type's default) and operations setting a key to a
  value or removing it (``producer_byte_rate``, ``consumer_byte_rate``,
  ``request_percentage``, ``controller_mutation_rate``; for ip
  ``connection_creation_rate``). An entry with an unknown or repeated
  entity type, ip combined with another type, an unknown key or a value
  not above 0 gets INVALID_REQUEST with the reason and changes nothing; the
  others are applied (not with validate_only). One result per entry.
- Takes effect at once for new requests (security/quotas.py); stored in
  ``<first log dir>/client-quotas.json``, in cluster mode in ZooKeeper as
  Kafka keeps them (``/config/users/<user>[/clients/<client-id>]``,
  ``/config/clients/<client-id>``, ``<default>`` for a default, with a
  ``/config/changes`` notification; cluster/quotas.py), so every broker
  enforces them.
- ACLs (authorizer.class.name): ALTER_CONFIGS on the cluster, else
  CLUSTER_AUTHORIZATION_FAILED for every entry.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl, quotas
from . import RequestContext, handler


@handler(49, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    security = ctx.state.security
    denied = not ctx.allowed(acl.ALTER_CONFIGS, acl.CLUSTER)
    out = []
    changed: set[quotas.Entity] = set()
    for e in req["entries"]:
        entity_out = [{"entity_type": x["entity_type"], "entity_name": x["entity_name"]} for x in e["entity"]]
        code, msg = errors.NONE, None
        if denied:
            code, msg = errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."
        else:
            entity = quotas.entity_of((x["entity_type"], x["entity_name"]) for x in e["entity"])
            ops = [(o["key"], o["value"], bool(o["remove"])) for o in e["ops"]]
            try:
                quotas.validate(entity, ops)
            except quotas.QuotaError as err:
                code, msg = errors.INVALID_REQUEST, str(err)
            else:
                if not req["validate_only"]:
                    security.quota_store.alter(entity, ops)
                    changed.add(entity)
        out.append({"error_code": code, "error_message": msg, "entity": entity_out})
    # the broker's file, or in a cluster ZooKeeper's /config/users, /config/clients (every broker reads them)
    await security.quota_sink.save(changed)
    return {"throttle_time_ms": 0, "entries": out}
