"""pykbroker as Kafka for tests (docs/testing.md).

- :class:`BrokerThread`: a broker in a background thread for synchronous and
  asyncio code (``with BrokerThread() as kafka: kafka.bootstrap``); under
  trio use :class:`pykbroker.Broker` directly.
- The pytest plugin (``pykbroker.testing.plugin``, registered in the
  ``pytest11`` entry point group): fixtures ``kafka_broker``,
  ``kafka_bootstrap``, ``kafka_topic``, ``kafka_topic_factory``,
  ``kafka_faults``, ``kafka_broker_factory``.
- Fault rules (``pykbroker.testing.faults``), read-only views of topics and
  groups (``pykbroker.testing.inspect``), Kafka release emulation
  (``pykbroker.testing.releases``), the ``pykbroker ctl`` client
  (``pykbroker.testing.ctl``).

Importing this package is cheap: the broker (and trio) load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BrokerThread", "FAST_DEFAULTS", "unique_topic_name"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import embedded

        return getattr(embedded, name)
    raise AttributeError(name)
