"""FindCoordinator (key 10), versions 0-6.

- Key type 0 (group): the leader of the group's partition of
  ``__consumer_offsets`` (this broker when alone); the topic is created on
  the first lookup (Kafka answers COORDINATOR_NOT_AVAILABLE while it
  creates the topic; a lone broker creates it synchronously, so the first
  answer already names the coordinator; in cluster mode the creation goes
  through ZooKeeper and COORDINATOR_NOT_AVAILABLE is answered meanwhile, or
  while the partition has no leader). Loading never delays this answer:
  group operations on a partition still being loaded get
  COORDINATOR_LOAD_IN_PROGRESS instead.
- Key type 1 (transaction): the leader of the transactional id's
  partition of ``__transaction_state`` (this broker when alone), created
  on the first lookup as for groups; COORDINATOR_NOT_AVAILABLE while it
  has no leader. Loading never delays this answer either.
- Key type 2 (share) and unknown key types: INVALID_REQUEST (no share
  coordinator; Kafka also rejects share keys before v6).
- v0: group key only. v1+: key type, throttle time, error message.
  v4+: batched keys, one result (with its own error) per key.
- ACLs (authorizer.class.name): DESCRIBE on the group (else
  GROUP_AUTHORIZATION_FAILED) or the transactional id (else
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..group import coordinator_of
from ..protocol import errors
from ..txn import coordinator_of as txn_coordinator_of
from ..security import acl
from . import RequestContext, handler

GROUP, TRANSACTION, SHARE = 0, 1, 2


def _lookup(ctx: RequestContext, key_type: int, key: str) -> tuple[int, str | None, int | None]:
    """(error, error message, coordinator node id; None = this broker)."""
    st = ctx.state
    if key_type in (GROUP, SHARE) and not ctx.allowed(acl.DESCRIBE, acl.GROUP, key):
        return errors.GROUP_AUTHORIZATION_FAILED, None, None
    if key_type == TRANSACTION and not ctx.allowed(acl.DESCRIBE, acl.TRANSACTIONAL_ID, key):
        return errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None, None
    if key_type == GROUP:
        coord = coordinator_of(st)
        if coord is None:
            return errors.COORDINATOR_NOT_AVAILABLE, None, None
        code, node_id = coord.find(key)
        return code, None, node_id
    if key_type == TRANSACTION:
        tc = txn_coordinator_of(st)
        if tc is None:
            return errors.COORDINATOR_NOT_AVAILABLE, None, None
        code, node_id = tc.find(key)
        return code, None, node_id
    return errors.INVALID_REQUEST, ("share coordinator is not available" if key_type == SHARE
                                    else f"unknown coordinator key type {key_type}"), None


@handler(10, 0, 6)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    key_type = req["key_type"] if v >= 1 else GROUP
    no_node = {"node_id": -1, "host": "", "port": -1}

    def node(node_id: int | None) -> Message:
        if node_id is None or node_id == st.node_id:
            host, port = st.advertised_by_listener.get(ctx.listener, (st.advertised_host, st.advertised_port))
            return {"node_id": st.node_id, "host": host, "port": port}
        b = st.replicas.broker(node_id)
        ep = None if b is None else st.endpoint_for(b, ctx.listener)
        return no_node if ep is None else {"node_id": node_id, "host": ep[0], "port": ep[1]}

    if v >= 4:
        out = []
        for key in req["coordinator_keys"]:
            code, msg, nid = _lookup(ctx, key_type, key)
            out.append({"key": key, **(no_node if code else node(nid)), "error_code": code,
                        "error_message": msg if code else None})
        return {"throttle_time_ms": 0, "coordinators": out}
    code, msg, nid = _lookup(ctx, key_type, req["key"])
    # Kafka's v1-3 answer carries Errors.message(), which is "NONE" on success
    return {"throttle_time_ms": 0, "error_code": code, "error_message": msg or errors.NAMES.get(code),
            **(no_node if code else node(nid))}
