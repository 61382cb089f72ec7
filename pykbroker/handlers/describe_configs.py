"""DescribeConfigs (key 32), versions 1-4 (Kafka 4.x's range; v0 was removed).

Read-only view of the configuration, following Kafka's ConfigHelper:

- TOPIC (2): every topic config (``topic_configs``) with its effective value,
  source (1 topic override, 2 dynamic per-broker config, 3 dynamic cluster
  default, 4 static broker property, 5 default), synonyms
  when include_synonyms, read_only false, is_sensitive false. An illegal name
  gets INVALID_TOPIC_EXCEPTION ("Topic name is invalid: ..."), an unknown
  topic UNKNOWN_TOPIC_OR_PARTITION (no message).
- BROKER (4): name = our node id: every broker property (``config.PROPS``)
  with its value, source (4 set in server.properties/--override, else 5),
  synonyms (the property at each level where it is set, plus its ms/hours
  variants, as Kafka lists them: dynamic per-broker 2, dynamic cluster
  default 3, static 4, default 5), read_only as Kafka reports it (false only
  for properties Kafka can change dynamically). Empty name = the cluster-wide
  dynamic defaults set with AlterConfigs (source 3). Another id:
  INVALID_REQUEST "Unexpected broker id, expected 0 or empty string, but
  received 5"; not a number: INVALID_REQUEST "Broker id must be an integer,
  but it is: x".
- BROKER_LOGGER (8): our node id lists the Python loggers ("root" first)
  with their effective level in log4j names (source 6); empty name or
  another id: INVALID_REQUEST as Kafka.
- CLIENT_METRICS (16): a client-metrics subscription's ``metrics``,
  ``interval.ms`` and ``match`` (source 7 when set, 5 default; an unknown
  name: the defaults; empty name: INVALID_REQUEST). GROUP (32): the share-group configs
  (pykbroker/share/group_configs.py), default or dynamic (source 8).
  Any other type fails the whole request: INVALID_REQUEST for every
  resource with Kafka's default message.
- configuration_keys null or empty = all; otherwise only those names
  (unknown ones ignored). Entries are sorted by name.
- v3+: config_type, and documentation when include_documentation.
- ACLs (authorizer.class.name): DESCRIBE_CONFIGS on the topic (else
  TOPIC_AUTHORIZATION_FAILED), the group (GROUP_AUTHORIZATION_FAILED) or,
  for broker, logger and client-metrics resources, the cluster
  (CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

import logging
import re

from ..protocol.codec import Message
from .. import topic_configs as tc
from ..config import PROPS, BrokerConfig
from ..protocol import errors
from ..security import acl
from . import RequestContext, handler

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
CLIENT_METRICS_CONFIG = 7  # ConfigSource of a client-metrics subscription's set value
KNOWN_TYPES = {TOPIC: "TOPIC", BROKER: "BROKER", BROKER_LOGGER: "BROKER_LOGGER",
               CLIENT_METRICS: "CLIENT_METRICS", GROUP: "GROUP"}

INVALID_REQUEST_MESSAGE = (
    "This most likely occurs because of a request being malformed by the client library or the "
    "message was sent to an incompatible broker. See the broker logs for more details.")

_LOG4J_LEVELS = {"CRITICAL": "FATAL", "WARNING": "WARN", "NOTSET": "OFF"}
_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")


def config_denial(ctx: RequestContext, rtype: int, name: str, op: int) -> tuple[int, str] | None:
    """Kafka's check of DESCRIBE_CONFIGS / ALTER_CONFIGS on a config resource:
    the topic, the group, or the cluster for broker, logger and client-metrics
    resources; the error and message when refused."""
    if rtype == TOPIC:
        if not ctx.allowed(op, acl.TOPIC, name):
            return errors.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed."
    elif rtype == GROUP:
        if not ctx.allowed(op, acl.GROUP, name):
            return errors.GROUP_AUTHORIZATION_FAILED, "Group authorization failed."
    elif not ctx.allowed(op, acl.CLUSTER):
        return errors.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."
    return None


class ResourceError(Exception):
    def __init__(self, code: int, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _broker_id(name: str) -> int:
    if not _JAVA_INT.match(name) or not -(2**31) <= int(name) < 2**31:
        raise ResourceError(errors.INVALID_REQUEST,
                            f"Broker id must be an integer, but it is: {name}")
    return int(name)


def broker_entry(cfg: BrokerConfig, name: str, include_synonyms: bool, include_documentation: bool) -> Message:
    """Kafka's createBrokerConfigEntry for one of our broker properties."""
    prop = PROPS[name]
    sensitive = prop.type == "password"
    syns = tc.broker_synonyms(cfg, name)
    doc = None
    if include_documentation:
        doc = prop.doc or None
        if doc is None and prop.topic_name in tc.TOPIC_CONFIGS:
            doc = tc.TOPIC_CONFIGS[prop.topic_name].doc
    return {"name": name,
            "value": None if sensitive else tc.java_str(cfg.values.get(name)),
            "read_only": name not in tc.DYNAMIC_BROKER_CONFIGS,
            "config_source": syns[0]["source"] if syns else tc.DEFAULT_CONFIG,
            "is_sensitive": sensitive,
            "synonyms": syns if include_synonyms else [],
            "config_type": tc.CONFIG_TYPE_IDS.get(prop.type, 0),
            "documentation": doc}


def _filter(names: list[str], keys: list[str] | None) -> list[str]:
    if not keys:
        return names
    wanted = set(keys)
    return [n for n in names if n in wanted]


def _loggers() -> dict[str, str]:
    out = {"root": logging.getLevelName(logging.getLogger().getEffectiveLevel())}
    for name, lg in sorted(logging.Logger.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):
            out[name] = logging.getLevelName(lg.getEffectiveLevel())
    return {k: _LOG4J_LEVELS.get(v, v) for k, v in out.items()}


def _describe(ctx: RequestContext, res: Message, include_synonyms: bool,
              include_documentation: bool) -> list[Message]:
    st = ctx.state
    rtype = res["resource_type"]
    name = res["resource_name"]
    keys = res["configuration_keys"]
    denial = config_denial(ctx, rtype, name, acl.DESCRIBE_CONFIGS)
    if denial is not None:
        raise ResourceError(*denial)
    if rtype == TOPIC:
        bad = tc.topic_name_error(name)
        if bad is not None:
            raise ResourceError(errors.INVALID_TOPIC_EXCEPTION, bad)
        ts = st.topics.get(name)
        if ts is None:
            raise ResourceError(errors.UNKNOWN_TOPIC_OR_PARTITION, None)
        return tc.describe_topic_configs(st.config, dict(ts.configs), keys,
                                         include_synonyms=include_synonyms,
                                         include_documentation=include_documentation)
    if rtype == BROKER:
        if not name:  # the cluster-wide dynamic defaults (AlterConfigs on BROKER "")
            return tc.describe_dynamic_default(st.config, keys, include_synonyms, include_documentation)
        if _broker_id(name) != st.node_id:
            raise ResourceError(errors.INVALID_REQUEST, f"Unexpected broker id, expected "
                                f"{st.node_id} or empty string, but received {name}")
        return [broker_entry(st.config, n, include_synonyms, include_documentation)
                for n in _filter(sorted(PROPS), keys)]
    if rtype == BROKER_LOGGER:
        if not name:
            raise ResourceError(errors.INVALID_REQUEST, "Broker id must not be empty")
        if _broker_id(name) != st.node_id:
            raise ResourceError(errors.INVALID_REQUEST,
                                f"Unexpected broker id, expected {st.node_id} but received {name}")
        loggers = _loggers()
        return [{"name": n, "value": loggers[n], "read_only": False,
                 "config_source": tc.DYNAMIC_BROKER_LOGGER_CONFIG, "is_sensitive": False,
                 "synonyms": [], "config_type": 0, "documentation": None}
                for n in _filter(list(loggers), keys)]
    if rtype == GROUP:
        from ..share import share_coordinator_of
        from ..share.group_configs import GroupConfigError

        share = share_coordinator_of(st)
        if share is None:
            raise ResourceError(errors.INVALID_REQUEST, f"Unsupported resource type: {KNOWN_TYPES[rtype]}")
        try:
            return share.group_configs.describe(name, keys, include_documentation)
        except GroupConfigError as e:
            raise ResourceError(e.code, e.message) from None
    if rtype == CLIENT_METRICS:
        if not name:
            raise ResourceError(errors.INVALID_REQUEST,
                                "Client metrics subscription name must not be empty")
        return [{"name": k, "value": v, "read_only": False,
                 "config_source": tc.DEFAULT_CONFIG if default else CLIENT_METRICS_CONFIG, "is_sensitive": False,
                 "synonyms": [], "config_type": 3 if k == "interval.ms" else 7,
                 "documentation": None}
                for k, v, default in st.telemetry.describe(name) if not keys or k in keys]
    raise ResourceError(errors.INVALID_REQUEST, f"Unsupported resource type: {KNOWN_TYPES[rtype]}")


@handler(32, 1, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    resources = req["resources"] or []
    if any(r["resource_type"] not in KNOWN_TYPES for r in resources):
        # Kafka throws for the whole request: every resource gets the error.
        return {"throttle_time_ms": 0, "results": [
            {"error_code": errors.INVALID_REQUEST, "error_message": INVALID_REQUEST_MESSAGE,
             "resource_type": r["resource_type"], "resource_name": r["resource_name"],
             "configs": []} for r in resources]}
    include_synonyms = bool(req["include_synonyms"])
    include_doc = bool(req["include_documentation"]) and ctx.api_version >= 3
    results = []
    for r in resources:
        try:
            configs = _describe(ctx, r, include_synonyms, include_doc)
            code, message = errors.NONE, None
        except ResourceError as e:
            configs, code, message = [], e.code, e.message
        results.append({"error_code": code, "error_message": message,
                        "resource_type": r["resource_type"], "resource_name": r["resource_name"],
                        "configs": configs})
    return {"throttle_time_ms": 0, "results": results}
