"""Read-only views of a running broker: moved to :mod:`pykbroker.server.inspect`
(the control endpoint serves them); this module keeps the documented import path."""

from ..server.inspect import (
    OFFSETS_TOPIC,
    GroupInspector,
    group,
    groups,
    iter_partition_records,
    list_groups,
    records,
    register_group_inspector,
)

__all__ = [
    "OFFSETS_TOPIC", "GroupInspector", "group", "groups", "iter_partition_records", "list_groups",
    "records", "register_group_inspector",
]
