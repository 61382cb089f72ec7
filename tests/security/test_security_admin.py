"""DescribeUserScramCredentials / AlterUserScramCredentials: Kafka's validation
and error codes (raw requests), and KIP-368 re-authentication with librdkafka."""

from __future__ import annotations

import os
import time
import uuid

from pykbroker.protocol import errors
from pykbroker.security import scram
from rawclient import RawClient


def _up(name: str, mech: int = 2, iterations: int = 4096, salt: bytes = b"s" * 16, pw: bytes = b"p" * 64) -> dict:
    return {"name": name, "mechanism": mech, "iterations": iterations, "salt": salt, "salted_password": pw}


def test_alter_and_describe_validation(kafka_secure_broker):
    kb = kafka_secure_broker
    u = f"u{uuid.uuid4().hex[:6]}"
    with RawClient(kb.bootstrap_for("PLAINTEXT")) as c:
        r = c.call(51, 0, {"deletions": [{"name": f"{u}-gone", "mechanism": 1}],
                           "upsertions": [_up(u), _up(u, mech=1, iterations=8000), _up(""),
                                          _up(f"{u}-few", iterations=100), _up(f"{u}-many", iterations=20000),
                                          _up(f"{u}-mech", mech=7), _up(f"{u}-dup"), _up(f"{u}-dup")]})
        got = {x["user"]: (x["error_code"], x["error_message"]) for x in r["results"]}
        assert [x["user"] for x in r["results"]] == [f"{u}-gone", u, "", f"{u}-few", f"{u}-many", f"{u}-mech",
                                                     f"{u}-dup"]
        assert got == {
            f"{u}-gone": (errors.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"),
            u: (errors.NONE, None),
            "": (errors.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
            f"{u}-few": (errors.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
            f"{u}-many": (errors.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
            f"{u}-mech": (errors.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
            f"{u}-dup": (errors.DUPLICATE_RESOURCE, "A user credential cannot be altered twice in the same request"),
        }
        d = c.call(50, 0, {"users": [{"name": u}, {"name": f"{u}-few"}, {"name": "alice"}, {"name": "alice"}]})
        res = {x["user"]: x for x in d["results"]}
        assert d["error_code"] == 0
        assert res[u]["credential_infos"] == [{"mechanism": 1, "iterations": 8000},
                                              {"mechanism": 2, "iterations": 4096}]
        assert res[f"{u}-few"]["error_code"] == errors.RESOURCE_NOT_FOUND
        assert res["alice"]["error_code"] == errors.DUPLICATE_RESOURCE
        everyone = c.call(50, 0, {"users": None})
        assert {"alice", "admin", u} <= {x["user"] for x in everyone["results"]}
        # deleting one mechanism keeps the other
        r = c.call(51, 0, {"deletions": [{"name": u, "mechanism": 1}], "upsertions": []})
        assert r["results"] == [{"user": u, "error_code": 0, "error_message": None}]
        d = c.call(50, 0, {"users": [{"name": u}]})
        assert d["results"][0]["credential_infos"] == [{"mechanism": 2, "iterations": 4096}]


def test_credentials_survive_a_restart(kafka_tls_ca, tmp_path):
    """On disk the credentials live in <log dir>/scram-credentials.json (salted only)."""
    from confluent_kafka import Producer

    from pykbroker.testing.security import SecureBroker

    cfg = {"pykbroker.storage": "disk", "log.dirs": str(tmp_path)}
    salt = os.urandom(16)
    salted = scram.salted_password("SCRAM-SHA-512", "carol-pw", salt, 4096)
    with SecureBroker(kafka_tls_ca, users={}, config=cfg) as kb:
        with RawClient(kb.bootstrap_for("PLAINTEXT")) as c:
            r = c.call(51, 0, {"deletions": [], "upsertions": [_up("carol", salt=salt, pw=salted)]})
            assert r["results"][0]["error_code"] == 0
    assert "carol-pw" not in (tmp_path / "scram-credentials.json").read_text()
    with SecureBroker(kafka_tls_ca, users={}, config=cfg) as kb:
        p = Producer(kb.librdkafka_config("SASL_SSL", "carol", password="carol-pw"))
        p.produce("carol-topic", b"hi")
        assert p.flush(15) == 0


def test_librdkafka_reauthenticates(kafka_tls_ca):
    """connections.max.reauth.ms=2000: librdkafka re-authenticates on its
    connections (KIP-368) and keeps producing across several session lifetimes."""
    from confluent_kafka import Producer

    from pykbroker.testing.security import SecureBroker

    with SecureBroker(kafka_tls_ca, config={"listener.name.sasl_ssl.connections.max.reauth.ms": "2000"}) as kb:
        errs: list = []
        p = Producer({**kb.librdkafka_config("SASL_SSL", "alice"), "error_cb": errs.append})
        topic = f"reauth-{uuid.uuid4().hex[:6]}"
        offsets = []
        for i in range(6):
            p.produce(topic, f"v{i}".encode(), on_delivery=lambda e, m: offsets.append((e, m.offset())))
            assert p.flush(10) == 0
            time.sleep(1.0)
        assert offsets == [(None, i) for i in range(6)]
        assert not errs, errs
        assert kb.thread.values(topic) == [f"v{i}".encode() for i in range(6)]
        # two connections (bootstrap, broker) authenticated at least once more each
        assert kb.thread.metrics()["apis"]["SaslHandshake"]["requests"] >= 3


def test_expired_session_closes_the_connection(kafka_tls_ca):
    from pykbroker.testing.security import SecureBroker

    with SecureBroker(kafka_tls_ca, config={"listener.name.sasl_plaintext.connections.max.reauth.ms": "500"}) as kb:
        with RawClient(kb.bootstrap_for("SASL_PLAINTEXT"), timeout=5) as c:
            assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == 0
            r = c.call(36, 1, {"auth_bytes": b"\0alice\0alice-secret"})
            assert r["error_code"] == 0 and r["session_lifetime_ms"] == 500
            assert c.call(3, 12, {"topics": None})["brokers"]
            time.sleep(0.7)
            assert c.is_closed_by_peer(0.01) is False  # nothing happens until the next request
            c.send_frame(c.encode(3, 12, {"topics": None}))
            assert c.is_closed_by_peer(3)
