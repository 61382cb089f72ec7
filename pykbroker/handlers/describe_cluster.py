"""DescribeCluster (key 60), versions 0-2 (Kafka 4.x's range).

- Lists the brokers, the cluster id and a controller id. A lone broker:
  itself as both (a KRaft broker reports one of the live brokers as
  controller, the real one is not reachable by clients). Cluster mode
  (zookeeper.connect): every live broker and the controller elected in
  ZooKeeper, as Kafka's ZooKeeper mode.
- v1+ endpoint_type: 1 (brokers) is what a broker serves; 2 (controllers)
  gets MISMATCHED_ENDPOINT_TYPE "The request was sent to an endpoint of type
  BROKER, but we wanted an endpoint of type CONTROLLER"; any other value
  UNSUPPORTED_ENDPOINT_TYPE "Unsupported endpoint type 7" (both
  INVALID_REQUEST in v0, which cannot carry the field anyway). The response
  echoes endpoint_type 1.
- v2 include_fenced_brokers: we are never fenced, so it changes nothing;
  is_fenced is false.
- include_cluster_authorized_operations: the operations on the cluster
  resource the principal may do; without an authorizer every one Kafka
  supports there: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
  ALTER_CONFIGS, IDEMPOTENT_WRITE = 8096; otherwise -2147483648.
- ACLs (authorizer.class.name): needs DESCRIBE on the cluster, else
  CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from ..protocol.codec import Message
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler
from .metadata import NOT_REQUESTED


ENDPOINT_TYPES = {1: "BROKER", 2: "CONTROLLER"}
BROKER_ENDPOINT = 1


def _error(code: int, message: str) -> Message:
    return {"throttle_time_ms": 0, "error_code": code, "error_message": message,
            "endpoint_type": BROKER_ENDPOINT, "cluster_id": "", "controller_id": -1,
            "brokers": [], "cluster_authorized_operations": NOT_REQUESTED}


@handler(60, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    wanted = req["endpoint_type"] if v >= 1 else BROKER_ENDPOINT
    if wanted not in ENDPOINT_TYPES:
        return _error(errors.INVALID_REQUEST if v == 0 else errors.UNSUPPORTED_ENDPOINT_TYPE,
                      f"Unsupported endpoint type {wanted}")
    if wanted != BROKER_ENDPOINT:
        return _error(errors.INVALID_REQUEST if v == 0 else errors.MISMATCHED_ENDPOINT_TYPE,
                      "The request was sent to an endpoint of type BROKER, but we wanted an "
                      f"endpoint of type {ENDPOINT_TYPES[wanted]}")
    if not ctx.allowed(acl.DESCRIBE, acl.CLUSTER):
        return _error(errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.")
    # every live broker (this one alone, or a cluster's), the controller; this
    # broker's own address is the one of the listener the client is on
    brokers = [{"broker_id": b.node_id, "host": ep[0], "port": ep[1], "rack": b.rack, "is_fenced": False}
               for b in st.replicas.live_brokers() for ep in [st.endpoint_for(b, ctx.listener)] if ep is not None]
    controller_id = st.replicas.controller_id()
    return {
        "throttle_time_ms": 0,
        "error_code": errors.NONE,
        "error_message": None,
        "endpoint_type": BROKER_ENDPOINT,
        "cluster_id": st.cluster_id,
        "controller_id": controller_id,
        "brokers": brokers,
        "cluster_authorized_operations":
            ctx.authorized_ops(acl.CLUSTER) if req["include_cluster_authorized_operations"] else NOT_REQUESTED,
    }
