"""IncrementalAlterConfigs (key 44), versions 0-1 (Kafka 4.x's range).

- Changes single configs (KIP-339) of TOPIC, BROKER (dynamic) and
  BROKER_LOGGER resources with Kafka's semantics; checks, messages and
  effects otherwise as AlterConfigs (``alter_configs.py``).
- SET (0) sets; DELETE (1) removes the override (value ignored, may be
  null); APPEND (2) / SUBTRACT (3) add/remove items of a LIST config
  (``cleanup.policy``, the throttled replica lists), starting from the
  default when unset; on another type: INVALID_CONFIG "Can't APPEND to key
  x because its type is not LIST." (BROKER: "Config value append is not
  allowed for config key: x"). Another operation id: INVALID_REQUEST
  "Unknown operations type 7".
- TOPIC: the resulting override set is validated as a whole, then applied
  to the live partitions and persisted.
- BROKER: the per-broker ("<node id>") or cluster-wide ("") dynamic
  configs change incrementally.
- BROKER_LOGGER (8), name = our node id: SET a Python logger's level
  (log4j names DEBUG, ERROR, FATAL, INFO, TRACE, WARN), DELETE resets it to
  inherit; an unknown logger: INVALID_CONFIG "Logger x does not exist!";
  another level: INVALID_CONFIG "Cannot set the log level of x to y as it
  is not a supported log level. Valid log levels are DEBUG, ERROR, FATAL,
  INFO, TRACE, WARN"; DELETE on root: INVALID_REQUEST; APPEND/SUBTRACT:
  INVALID_REQUEST "APPEND operation is not allowed for the BROKER_LOGGER
  resource". Not persisted (as in Kafka).
- GROUP (32): SET/DELETE of the share-group configs
  (pykbroker/share/group_configs.py: share.auto.offset.reset, ...); an
  unknown name: INVALID_CONFIG "Unknown group config name: x".
- CLIENT_METRICS (16): a client-metrics subscription (KIP-714,
  pykbroker/telemetry/manager.py): ``metrics``, ``interval.ms``, ``match``;
  SET/DELETE, APPEND/SUBTRACT on the lists; deleting every config removes
  the subscription; a bad name or value: INVALID_CONFIG with Kafka's message.
- validate_only: every check, nothing changed.
- ACLs (authorizer.class.name): ALTER_CONFIGS on the topic, the group or
  the cluster (broker and logger resources), as AlterConfigs.
"""

from __future__ import annotations

import logging

from ..protocol.codec import Message
from .. import topic_configs as tc
from ..protocol import errors
from . import RequestContext, handler
from .alter_configs import process

log = logging.getLogger("pykbroker.handlers.incremental_alter_configs")

TRACE = 5
logging.addLevelName(TRACE, "TRACE")
LOG4J_TO_PYTHON = {"FATAL": logging.CRITICAL, "ERROR": logging.ERROR, "WARN": logging.WARNING,
                   "INFO": logging.INFO, "DEBUG": logging.DEBUG, "TRACE": TRACE}
VALID_LOG_LEVELS = ", ".join(sorted(LOG4J_TO_PYTHON))


def _logger_exists(name: str) -> bool:
    return name == "root" or isinstance(logging.Logger.manager.loggerDict.get(name), logging.Logger)


def alter_loggers(ctx: RequestContext, name: str, ops: list[tuple[str, int, str | None]],
                  validate_only: bool) -> None:
    """Kafka's RuntimeLoggerManager, on Python's loggers."""
    node = ctx.state.node_id
    try:
        requested = int(name)
    except ValueError:
        raise tc.AlterError(errors.INVALID_REQUEST, f"Node id must be an integer, but it is: {name}") from None
    if requested != node:
        # Kafka's message names its own id twice
        raise tc.AlterError(errors.INVALID_REQUEST,
                            f"Unexpected node id. Expected {node}, but received {node}")
    for logger_name, op, value in ops:
        if op == tc.SET:
            if not _logger_exists(logger_name):
                raise tc.AlterError(errors.INVALID_CONFIG, f"Logger {logger_name} does not exist!")
            if value not in LOG4J_TO_PYTHON:
                raise tc.AlterError(errors.INVALID_CONFIG,
                                    f"Cannot set the log level of {logger_name} to {value} as it is not a "
                                    f"supported log level. Valid log levels are {VALID_LOG_LEVELS}")
        elif op == tc.DELETE:
            if not _logger_exists(logger_name):
                raise tc.AlterError(errors.INVALID_CONFIG, f"Logger {logger_name} does not exist!")
            if logger_name == "root":
                raise tc.AlterError(errors.INVALID_REQUEST,
                                    "Removing the log level of the root logger is not allowed")
        else:
            raise tc.AlterError(errors.INVALID_REQUEST,
                                f"{tc.OP_NAMES[op]} operation is not allowed for the BROKER_LOGGER resource")
    if validate_only:
        return
    for logger_name, op, value in ops:
        lg = logging.getLogger() if logger_name == "root" else logging.getLogger(logger_name)
        if op == tc.SET:
            assert value is not None  # validated above: one of LOG4J_TO_PYTHON
            lg.setLevel(LOG4J_TO_PYTHON[value])
            log.warning("Updated the log level of %s to %s", logger_name, value)
        else:
            lg.setLevel(logging.NOTSET)
            log.warning("Unset the log level of %s", logger_name)


@handler(44, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    return {"throttle_time_ms": 0,
            "responses": await process(ctx, req["resources"] or [], True, bool(req["validate_only"]))}
