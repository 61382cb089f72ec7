"""pytest plugin: a Kafka broker for your tests, no Docker, no JVM.

Installed with pykbroker (entry point ``pykbroker`` in the ``pytest11``
group), so the fixtures are there as soon as the package is installed;
``-p no:pykbroker`` turns the plugin off.

Fixtures:

``kafka_broker`` (session)
    A :class:`~pykbroker.testing.BrokerThread` started on first use (in
    memory, free port on 127.0.0.1) and stopped at the end of the session.
``kafka_bootstrap`` (session)
    Its address, ``"127.0.0.1:PORT"``, for ``bootstrap.servers``.
``kafka_topic`` (function)
    A new topic with a unique name (1 partition), created before the test.
``kafka_topic_factory`` (function)
    ``kafka_topic_factory(partitions=1, config=None, prefix=None) -> name``.
``kafka_faults`` (function)
    The session broker's fault rules; every rule is removed after the test.
``kafka_broker_factory`` (function)
    ``kafka_broker_factory(config=None, **kw) -> BrokerThread``: extra,
    isolated brokers (own settings, e.g. ``as_version="3.9"``), stopped
    after the test.
``kafka_tls_ca`` (session)
    A throw-away :class:`~pykbroker.testing.security.TestCA` (needs the
    ``cryptography`` package): ``.issue(cn, server=..., expired=...)``.
``kafka_secure_broker`` (session)
    A :class:`~pykbroker.testing.security.SecureBroker`: listeners
    PLAINTEXT, SSL (client certificates required), SASL_PLAINTEXT and
    SASL_SSL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER unsecured) with users
    ``alice``/``alice-secret`` and ``admin``/``admin-secret``;
    ``.bootstrap_for("SASL_SSL")``, ``.librdkafka_config(...)``,
    ``.kafka_python_config(...)``, ``.client`` (a client certificate).

Settings (ini file, ``[pytest]`` / ``[tool.pytest.ini_options]``):

``pykbroker_properties``
    Broker properties for ``kafka_broker``, one ``key=value`` per line.
``pykbroker_control``
    ``true`` to open the HTTP control endpoint of ``kafka_broker``
    (``kafka_broker.control_url``).
"""

from __future__ import annotations

import re
from typing import Any
from collections.abc import Iterator

import pytest

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("pykbroker_properties", type="linelist", default=[],
                  help="pykbroker: broker properties (key=value per line) for the kafka_broker fixture")
    parser.addini("pykbroker_control", type="bool", default=False,
                  help="pykbroker: open the HTTP control endpoint of the kafka_broker fixture")


def _properties(config: pytest.Config) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in config.getini("pykbroker_properties"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, sep, v = line.partition("=")
        if not sep:
            raise pytest.UsageError(f"pykbroker_properties: expected key=value, got {line!r}")
        props[k.strip()] = v.strip()
    return props


@pytest.fixture(scope="session")
def kafka_broker(pytestconfig: pytest.Config) -> Iterator[Any]:
    from .embedded import BrokerThread, preload

    preload()
    b = BrokerThread(_properties(pytestconfig), control=bool(pytestconfig.getini("pykbroker_control")))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Any) -> str:
    bootstrap: str = kafka_broker.bootstrap
    return bootstrap


def _prefix_for(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-.")
    return name[:80] or "test"


@pytest.fixture
def kafka_topic_factory(kafka_broker: Any, request: pytest.FixtureRequest) -> Any:
    from .embedded import unique_topic_name

    def make(partitions: int = 1, config: dict[str, str] | None = None, prefix: str | None = None) -> str:
        name = unique_topic_name(prefix or _prefix_for(request))
        created: str = kafka_broker.create_topic(name, partitions, config)
        return created

    return make


@pytest.fixture
def kafka_topic(kafka_topic_factory: Any) -> str:
    topic: str = kafka_topic_factory()
    return topic


@pytest.fixture
def kafka_faults(kafka_broker: Any) -> Iterator[Any]:
    faults = kafka_broker.faults
    try:
        yield faults
    finally:
        faults.clear()


@pytest.fixture
def kafka_broker_factory() -> Iterator[Any]:
    from .embedded import BrokerThread, preload

    made: list[Any] = []

    def start(config: dict[str, Any] | None = None, **kw: Any) -> Any:
        preload()
        b = BrokerThread(config, **kw)
        made.append(b)
        return b.start()

    try:
        yield start
    finally:
        for b in made:
            b.stop()


@pytest.fixture(scope="session")
def kafka_tls_ca(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from .security import TestCA

    return TestCA(tmp_path_factory.mktemp("pykbroker-ca"))


@pytest.fixture(scope="session")
def kafka_secure_broker(kafka_tls_ca: Any) -> Iterator[Any]:
    from .embedded import preload
    from .security import SecureBroker

    preload()
    b = SecureBroker(kafka_tls_ca).start()
    try:
        yield b
    finally:
        b.stop()
