"""ListConfigResources (key 74), versions 0-1 (v0 was ListClientMetricsResources).

- Needs DESCRIBE_CONFIGS on the cluster (else CLUSTER_AUTHORIZATION_FAILED).
- v0: every client-metrics subscription (CLIENT_METRICS resources, KIP-714).
- v1: ``resource_types`` filters: CLIENT_METRICS (16), TOPIC (2), GROUP (32)
  and BROKER (4) / BROKER_LOGGER (8) are listed (every topic by name, the
  groups known to this broker's coordinator, this broker's id); an empty
  list means every type; a type outside these: UNSUPPORTED_VERSION and no
  resources, as Kafka.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
LISTABLE = (TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP)


@handler(74, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    if not ctx.allowed(acl.DESCRIBE_CONFIGS, acl.CLUSTER):
        return {"throttle_time_ms": 0, "error_code": errors.CLUSTER_AUTHORIZATION_FAILED, "config_resources": []}
    if ctx.api_version == 0:
        return {"throttle_time_ms": 0, "error_code": errors.NONE,
                "config_resources": [{"resource_name": n, "resource_type": CLIENT_METRICS}
                                     for n in st.telemetry.resources()]}
    types = list(req["resource_types"] or []) or list(LISTABLE)
    if any(t not in LISTABLE for t in types):
        return {"throttle_time_ms": 0, "error_code": errors.UNSUPPORTED_VERSION, "config_resources": []}
    out: list[Message] = []
    for t in dict.fromkeys(types):
        if t == CLIENT_METRICS:
            names = st.telemetry.resources()
        elif t == TOPIC:
            names = sorted(st.topics)
        elif t == GROUP:
            names = sorted(st.group_coordinator.groups)
        else:
            names = [str(st.node_id)]
        out += [{"resource_name": n, "resource_type": t} for n in names]
    return {"throttle_time_ms": 0, "error_code": errors.NONE, "config_resources": out}
