"""Group configs of share groups (Kafka's ``GroupConfig``, KIP-932/KIP-848):
DescribeConfigs and IncrementalAlterConfigs on GROUP (32) resources.

Served names (defaults are the broker's ``group.share.*`` settings):

- ``share.auto.offset.reset``: where a share-partition starts when the
  group first gets it: ``latest`` (default), ``earliest`` or
  ``by_duration:<ISO-8601 duration>`` (the first record not older than
  that, else the end);
- ``share.record.lock.duration.ms``, within
  ``group.share.min/max.record.lock.duration.ms``;
- ``share.session.timeout.ms``, within ``group.share.min/max.session.timeout.ms``;
- ``share.heartbeat.interval.ms``, within ``group.share.min/max.heartbeat.interval.ms``.

Another name: INVALID_CONFIG "Unknown group config name: x". Deviation:
Kafka keeps group configs in the cluster metadata; here they are kept in
``group-configs.json`` in the first log directory (written atomically; in
memory with the in-memory engine).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any
from collections.abc import Callable

import attrs

from ..protocol import errors
from ..storage.checkpoints import atomic_write

log = logging.getLogger("pykbroker.share")

FILE_NAME = "group-configs.json"
DYNAMIC_GROUP_CONFIG = 8  # DescribeConfigs ConfigSource
DEFAULT_CONFIG = 5
CONFIG_TYPE_STRING, CONFIG_TYPE_INT = 2, 3

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


class GroupConfigError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_duration_ms(text: str) -> int | None:
    """An ISO-8601 duration (``PnDTnHnMn.nS``, as Java's ``Duration.parse``) in ms; None if invalid."""
    m = _DURATION.match(text.strip())
    if m is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        return None
    d, h, mi, s = m.groups()
    return int(((int(d or 0) * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60_000 + float(s or 0) * 1000)


def _check_reset(value: str) -> str | None:
    v = value.strip().lower()
    if v in ("latest", "earliest"):
        return None
    if v.startswith("by_duration:") and parse_duration_ms(value.strip()[len("by_duration:"):]) is not None:
        return None
    return f"Invalid value {value} for configuration share.auto.offset.reset: " \
           "String must be one of: latest, earliest, by_duration:<PnDTnHnMn.nS.>"


@attrs.frozen
class GroupConfigDef:
    name: str
    type: str  # "int" | "string"
    broker_default: str  # the broker property giving the default
    bounds: tuple[str, str] | None = None  # broker properties bounding an int
    check: Callable[[str], str | None] | None = None
    doc: str = ""


DEFS: dict[str, GroupConfigDef] = {d.name: d for d in (
    GroupConfigDef("share.auto.offset.reset", "string", "", check=_check_reset,
                   doc="Where a share-partition starts when the group first gets it."),
    GroupConfigDef("share.record.lock.duration.ms", "int", "group.share.record.lock.duration.ms",
                   ("group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms"),
                   doc="How long records acquired by a share fetch are locked."),
    GroupConfigDef("share.session.timeout.ms", "int", "group.share.session.timeout.ms",
                   ("group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms"),
                   doc="How long a share-group member may stay silent."),
    GroupConfigDef("share.heartbeat.interval.ms", "int", "group.share.heartbeat.interval.ms",
                   ("group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms"),
                   doc="How often share-group members heartbeat."),
)}

SET, DELETE = 0, 1


class GroupConfigs:
    """Per-group overrides, persisted in ``group-configs.json``."""

    def __init__(self, broker_config: Any) -> None:
        self.broker_config = broker_config
        self.overrides: dict[str, dict[str, str]] = {}
        self.path: Path | None = None
        if broker_config["pykbroker.storage"] != "memory" and broker_config.log_dirs:
            self.path = Path(broker_config.log_dirs[0]) / FILE_NAME
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                self.overrides = {str(g): {str(k): str(v) for k, v in c.items()} for g, c in doc.items()}
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError) as e:
                log.error("cannot read %s: %s", self.path, e)

    def default(self, name: str) -> str:
        d = DEFS[name]
        if name == "share.auto.offset.reset":
            return "latest"
        return str(self.broker_config[d.broker_default])

    def get(self, group: str, name: str) -> str:
        return self.overrides.get(group, {}).get(name, self.default(name))

    def get_int(self, group: str, name: str) -> int:
        return int(self.get(group, name))

    def describe(self, group: str, keys: list[str] | None, include_doc: bool) -> list[dict[str, Any]]:
        if not group:
            raise GroupConfigError(errors.INVALID_REQUEST, "Group name must not be empty")
        over = self.overrides.get(group, {})
        out = []
        for name in sorted(DEFS):
            if keys and name not in keys:
                continue
            d = DEFS[name]
            out.append({"name": name, "value": over.get(name, self.default(name)), "read_only": False,
                        "config_source": DYNAMIC_GROUP_CONFIG if name in over else DEFAULT_CONFIG,
                        "is_sensitive": False, "synonyms": [],
                        "config_type": CONFIG_TYPE_INT if d.type == "int" else CONFIG_TYPE_STRING,
                        "documentation": d.doc if include_doc else None})
        return out

    def _validate(self, name: str, value: str) -> None:
        d = DEFS.get(name)
        if d is None:
            raise GroupConfigError(errors.INVALID_CONFIG, f"Unknown group config name: {name}")
        if d.check is not None:
            msg = d.check(value)
            if msg is not None:
                raise GroupConfigError(errors.INVALID_CONFIG, msg)
        if d.type == "int":
            try:
                v = int(value.strip())
            except ValueError:
                raise GroupConfigError(errors.INVALID_CONFIG, f"Invalid value {value} for configuration "
                                       f"{name}: Not a number of type INT") from None
            if d.bounds is not None:
                lo, hi = (int(self.broker_config[b]) for b in d.bounds)
                if v < lo:
                    raise GroupConfigError(errors.INVALID_CONFIG, f"{name} must be greater than or equal to "
                                           f"{d.bounds[0]} {lo}")
                if v > hi:
                    raise GroupConfigError(errors.INVALID_CONFIG, f"{name} must be less than or equal to "
                                           f"{d.bounds[1]} {hi}")

    def alter(self, group: str, ops: list[tuple[str, int, str | None]], validate_only: bool) -> None:
        """IncrementalAlterConfigs on GROUP ``group``: SET / DELETE."""
        if not group:
            raise GroupConfigError(errors.INVALID_REQUEST, "Group name must not be empty")
        new = dict(self.overrides.get(group, {}))
        for name, op, value in ops:
            if op == SET:
                assert value is not None
                self._validate(name, value)
                new[name] = value.strip()
            elif op == DELETE:
                if name not in DEFS:
                    raise GroupConfigError(errors.INVALID_CONFIG, f"Unknown group config name: {name}")
                new.pop(name, None)
            else:
                raise GroupConfigError(errors.INVALID_CONFIG,
                                       f"Can't {'APPEND' if op == 2 else 'SUBTRACT'} to key {name} because its "
                                       "type is not LIST.")
        if validate_only:
            return
        old = self.overrides.get(group)
        if new:
            self.overrides[group] = new
        else:
            self.overrides.pop(group, None)
        try:
            self._save()
        except OSError as e:
            if old is None:
                self.overrides.pop(group, None)
            else:
                self.overrides[group] = old
            raise GroupConfigError(errors.UNKNOWN_SERVER_ERROR, f"cannot persist group configs: {e}") from e

    def _save(self) -> None:
        if self.path is None:
            return
        atomic_write(self.path, json.dumps(self.overrides, sort_keys=True).encode())
