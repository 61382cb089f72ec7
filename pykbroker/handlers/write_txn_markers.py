"""WriteTxnMarkers (key 27), versions 1-2 (broker to broker).

- For each marker (producer id, epoch, commit/abort, coordinator epoch),
  a COMMIT/ABORT control batch is appended to each named partition this
  broker leads (origin coordinator: the producer epoch and coordinator
  epoch are checked, INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED);
  a ``__consumer_offsets`` partition also completes the transaction's
  offsets. Partitions that do not exist: UNKNOWN_TOPIC_OR_PARTITION; not
  led here (cluster mode): NOT_LEADER_OR_FOLLOWER.
- Sent by the transaction coordinator of another broker; a lone broker
  writes its markers directly. v0 is gone in Kafka 4 (KIP-896); v1 flexible;
  v2: transaction version (TV2 markers pass the same checks here).
- ACLs (authorizer.class.name): CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
- Quotas: an authorized request is exempt from request_percentage (Kafka's
  sendResponseExemptThrottle); a denied one is counted.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..txn import coordinator_of
from ..security import acl
from . import RequestContext, handler


@handler(27, 1, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    tc = coordinator_of(st)
    denied = not ctx.allowed(acl.CLUSTER_ACTION, acl.CLUSTER)
    ctx.quota_exempt = not denied  # an authorized cluster action: no request_percentage (Kafka)
    out = []
    for m in req["markers"]:
        topics = []
        for t in m["topics"]:
            parts = []
            for i in t["partition_indexes"]:
                p = st.partition(t["name"], i)
                if denied:
                    code = errors.CLUSTER_AUTHORIZATION_FAILED
                elif p is None or p.log is None:
                    code = errors.UNKNOWN_TOPIC_OR_PARTITION
                elif not st.replicas.is_leader(p):
                    code = errors.NOT_LEADER_OR_FOLLOWER
                elif tc is None:
                    code = errors.COORDINATOR_NOT_AVAILABLE
                else:
                    code = await tc.write_marker(p, m["producer_id"], m["producer_epoch"],
                                                 m["transaction_result"], m["coordinator_epoch"])
                parts.append({"partition_index": i, "error_code": code})
            topics.append({"name": t["name"], "partitions": parts})
        out.append({"producer_id": m["producer_id"], "topics": topics})
    return {"markers": out}
