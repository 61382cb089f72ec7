"""AlterConfigs (key 33), versions 0-2 (Kafka 4.x's range).

- Replaces each resource's whole config set (TOPIC overrides, BROKER
  dynamic configs; an override left out of the request is removed),
  validated as Kafka's broker (ConfigAdminManager.preprocess) and KRaft
  controller (ConfigurationControlManager.legacyAlterConfigs) do,
  persisted and applied to the live partitions.
- the same (type, name) twice: both INVALID_REQUEST "Each resource must
  appear at most once."; a config named twice: INVALID_REQUEST "Error due
  to duplicate config keys"; a null value: INVALID_REQUEST "Null value not
  supported for : a, b".
- TOPIC (2): "" → INVALID_REQUEST "Default topic resources are not
  allowed."; an illegal name → INVALID_TOPIC_EXCEPTION; the new overrides
  are validated as a whole (``topic_configs.validate_topic_configs``:
  INVALID_CONFIG "Unknown topic config name: x", "Invalid value ... for
  configuration ...", min > max compaction lag) before the existence check
  (UNKNOWN_TOPIC_OR_PARTITION "The topic 'x' does not exist."). Stored in
  Kafka's canonical form, persisted with the topic metadata and applied to
  the live partitions (retention, compaction, timestamps, compression,
  flush policy take effect at once).
- BROKER (4): "<node id>" (per broker) or "" (cluster-wide default):
  dynamic broker configs (KIP-226), persisted; only properties Kafka can
  change at runtime (else INVALID_REQUEST "Cannot update these configs
  dynamically: Set(a, b)"), values parsed and validated (INVALID_REQUEST
  with Kafka's "Invalid value ..."); another id: INVALID_REQUEST
  "Unexpected broker id, expected 0, but received 5". Log properties among
  them become the defaults of every topic without an override.
- BROKER_LOGGER (8) and any other type: INVALID_REQUEST "Unknown resource
  type 8" (legacy AlterConfigs never supported loggers); CLIENT_METRICS
  (16) and GROUP (32): INVALID_REQUEST (IncrementalAlterConfigs only).
- validate_only: every check, nothing changed.
- ACLs (authorizer.class.name): ALTER_CONFIGS on the topic (else
  TOPIC_AUTHORIZATION_FAILED), the group (GROUP_AUTHORIZATION_FAILED) or
  the cluster for broker and logger resources (CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

import logging
from collections import Counter

from ..protocol.codec import Message
from .. import topic_configs as tc
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler
from .describe_configs import config_denial

log = logging.getLogger("pykbroker.handlers.alter_configs")

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32


async def apply_topic(ctx: RequestContext, name: str, new: dict[str, str], validate_only: bool) -> None:
    """Validate ``new`` (the complete override set) and, unless validate_only,
    store and apply it. Raises tc.AlterError."""
    st = ctx.state
    tc.check_topic_resource(name)
    new = tc.finish_topic_overrides(new, st.config)
    ts = st.topics.get(name)
    if ts is None:
        raise tc.AlterError(errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    if validate_only:
        return
    assert st.logs is not None, "the broker is closed"
    try:
        await st.replicas.alter_topic_configs(name, new)
    except errors.KafkaError as e:
        log.error("storing configs of topic %s failed: %s", name, e.message)
        raise tc.AlterError(e.code, e.message) from e
    log.info("altered configs of topic %s: %s", name, new)


async def apply_broker(ctx: RequestContext, name: str, ops: list[tuple[str, int, str | None]],
                       incremental: bool, validate_only: bool) -> None:
    st = ctx.state
    current = st.replicas.dynamic_configs(name) if incremental else {}
    new = tc.alter_broker_configs(st.config, st.node_id, name, current, ops)
    if validate_only:
        return
    try:
        await st.replicas.set_dynamic_configs(name, new)
    except errors.KafkaError as e:
        raise tc.AlterError(e.code, e.message) from e
    log.info("altered dynamic configs of broker %r: %s", name, new)


async def process(ctx: RequestContext, resources: list[Message], incremental: bool,
                  validate_only: bool) -> list[Message]:
    counts = Counter((r["resource_type"], r["resource_name"]) for r in resources)
    out = []
    for r in resources:
        rtype, name = r["resource_type"], r["resource_name"]
        code, message = errors.NONE, None
        try:
            if counts[(rtype, name)] > 1:
                raise tc.AlterError(errors.INVALID_REQUEST, "Each resource must appear at most once.")
            denial = config_denial(ctx, rtype, name, acl.ALTER_CONFIGS)
            if denial is not None:
                raise tc.AlterError(*denial)
            ops = [(c["name"], c["config_operation"] if incremental else tc.SET, c["value"])
                   for c in r["configs"] or []]
            tc.check_alter_request(ops, incremental)
            if rtype == TOPIC:
                st = ctx.state
                ts = st.topics.get(name)
                current = dict(ts.configs) if ts is not None else {}
                if incremental:
                    new = tc.incremental_topic_overrides(current, ops)
                else:
                    new = {n: v for n, _, v in ops}
                await apply_topic(ctx, name, new, validate_only)
            elif rtype == BROKER:
                await apply_broker(ctx, name, ops, incremental, validate_only)
            elif rtype == BROKER_LOGGER and incremental:
                from .incremental_alter_configs import alter_loggers

                alter_loggers(ctx, name, ops, validate_only)
            elif rtype == GROUP and incremental:
                from ..share import share_coordinator_of
                from ..share.group_configs import GroupConfigError

                share = share_coordinator_of(ctx.state)
                if share is None:
                    raise tc.AlterError(errors.INVALID_REQUEST, "Altering GROUP configs is not supported")
                try:
                    share.group_configs.alter(name, ops, validate_only)
                except GroupConfigError as e:
                    raise tc.AlterError(e.code, e.message) from None
            elif rtype == CLIENT_METRICS and incremental:
                from ..telemetry.manager import ClientMetricsConfigError

                try:
                    ctx.state.telemetry.alter(name, ops, validate_only)
                except ClientMetricsConfigError as e:
                    raise tc.AlterError(errors.INVALID_CONFIG, e.message) from None
                except OSError as e:
                    raise tc.AlterError(errors.UNKNOWN_SERVER_ERROR, f"cannot persist the subscription: {e}") from None
            elif rtype in (CLIENT_METRICS, GROUP):
                raise tc.AlterError(errors.INVALID_REQUEST,
                                    f"Altering {'CLIENT_METRICS' if rtype == CLIENT_METRICS else 'GROUP'} "
                                    "configs is not supported by this broker")
            else:
                raise tc.AlterError(errors.INVALID_REQUEST, f"Unknown resource type {rtype}")
        except tc.AlterError as e:
            code, message = e.code, e.message
        out.append({"error_code": code, "error_message": message, "resource_type": rtype,
                    "resource_name": name})
    return out


@handler(33, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    return {"throttle_time_ms": 0,
            "responses": await process(ctx, req["resources"] or [], False, bool(req["validate_only"]))}
