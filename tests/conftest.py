"""Shared fixtures: real broker processes and unique topic names.

Fixtures
--------
broker          function scope: a fresh broker (own tmp log dir, free port).
broker_factory  function scope: ``broker_factory(overrides=None, *, log_dir=None,
                name=None, **kwargs) -> BrokerProcess``; every broker it made is
                stopped at test teardown.
shared_broker   session scope: one broker for tests that only need *a* broker
                (use ``unique_topic`` so tests don't see each other's data).
unique_topic    a topic name unique to this test (and run).

A failed test's report gets the tail of the logs of the brokers it used.
Every broker process is killed at session end, whatever happened.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brokerproc import BrokerError, BrokerProcess, kill_all

_USED = pytest.StashKey[list]()


def _note_used(request: pytest.FixtureRequest, b: BrokerProcess) -> None:
    node = request.node
    node.stash.setdefault(_USED, []).append(b)


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    made: list[BrokerProcess] = []

    def start(overrides=None, *, log_dir=None, name=None, **kwargs) -> BrokerProcess:
        n = len(made)
        name = name or f"broker{n}"
        if log_dir is None:
            log_dir = tmp_path_factory.mktemp(f"{name}-data", numbered=True)
        b = BrokerProcess(name=name, **kwargs)
        made.append(b)
        _note_used(request, b)
        b.start(overrides, log_dir=log_dir)
        return b

    yield start
    errors = []
    for b in made:
        try:
            b.stop()
        except Exception as e:  # keep stopping the others
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def broker(broker_factory) -> BrokerProcess:
    return broker_factory(name="broker")


_shared: list[BrokerProcess] = []


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory):
    b = BrokerProcess(name="shared_broker")
    _shared.append(b)
    b.start(None, log_dir=tmp_path_factory.mktemp("shared-broker-data"))
    yield b
    b.stop()


@pytest.fixture
def unique_topic(request) -> str:
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-.")[:80] or "t"
    return f"{base}-{uuid.uuid4().hex[:10]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    # a BrokerError (failed start) already carries the log in its message
    if rep.failed and not (call.excinfo and call.excinfo.errisinstance(BrokerError)):
        used = list(item.stash.get(_USED, []))
        if _shared and "shared_broker" in getattr(item, "fixturenames", ()):
            used += _shared
        for b in used:
            rep.sections.append((f"broker log: {b.describe()} (last 200 lines)", b.log_tail(200)))
    return rep


@pytest.hookimpl(trylast=True)  # after session-scoped fixtures were torn down
def pytest_sessionfinish(session, exitstatus):
    leftover = kill_all()
    if leftover:
        names = ", ".join(b.describe() for b in leftover)
        sys.stderr.write(f"\nconftest: killed broker processes left running: {names}\n")
