"""pykbroker: a broker that speaks the Kafka protocol, on trio."""

from .config import BrokerConfig

__all__ = ["Broker", "BrokerConfig"]
__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: keep `import pykbroker` cheap
    if name == "Broker":
        from .broker import Broker

        return Broker
    raise AttributeError(name)
