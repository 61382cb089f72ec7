"""pykbroker: a broker that speaks the Kafka protocol, on trio."""

from typing import TYPE_CHECKING

from .config import BrokerConfig

if TYPE_CHECKING:
    from .broker import Broker

__all__ = ["Broker", "BrokerConfig"]
__version__ = "0.1.0"


def __getattr__(name: str) -> "type[Broker]":  # lazy: keep `import pykbroker` cheap
    if name == "Broker":
        from .broker import Broker

        return Broker
    raise AttributeError(name)
