"""What fails fails with Kafka's error, on that connection only, and quickly.

Raw requests (our codec, over plain or TLS sockets) check the exact error codes
and that the connection closes; real clients check that they give up fast
instead of hanging until their timeouts; after each failure a bystander
connection on the same listener still gets answers.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from pykbroker.protocol import errors
from rawclient import ConnectionClosed, RawClient

METADATA = (3, 12, {"topics": None, "allow_auto_topic_creation": False})


def client_ctx(kb, cert=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(kb.ca.ca_pem))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def raw(kb, listener: str, cert=None, timeout: float = 5.0) -> RawClient:
    c = RawClient(kb.bootstrap_for(listener), timeout=timeout)
    if "SSL" in listener:
        c.sock = client_ctx(kb, cert if cert is not None or listener != "SSL" else kb.client).wrap_socket(
            c.sock, server_hostname="localhost")
    return c


def closed(c: RawClient, timeout: float = 3.0) -> bool:
    c.sock.settimeout(timeout)
    try:
        return c.sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def authenticated(kb, listener: str, user: str = "alice", password: str = "alice-secret") -> RawClient:
    c = raw(kb, listener)
    assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == 0
    r = c.call(36, 2, {"auth_bytes": f"\0{user}\0{password}".encode()})
    assert r["error_code"] == 0, r
    return c


def bystander_ok(kb, listener: str) -> None:
    with (authenticated(kb, listener) if listener.startswith("SASL_") else raw(kb, listener)) as c:
        assert c.call(*METADATA)["brokers"][0]["port"] == int(kb.bootstrap_for(listener).rsplit(":", 1)[1])


# -- SASL, raw -------------------------------------------------------------------------------

@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_plain_wrong_password_and_unknown_user(kafka_secure_broker, listener):
    kb = kafka_secure_broker
    for token in (b"\0alice\0wrong", b"\0nobody\0secret"):
        with raw(kb, listener) as c:
            hs = c.call(17, 1, {"mechanism": "PLAIN"})
            assert hs["error_code"] == 0 and "PLAIN" in hs["mechanisms"]
            r = c.call(36, 2, {"auth_bytes": token})
            assert r["error_code"] == errors.SASL_AUTHENTICATION_FAILED
            assert r["error_message"] == "Authentication failed: Invalid username or password"
            assert closed(c)
        bystander_ok(kb, listener)


def _scram_client_first(user: str) -> tuple[bytes, str]:
    nonce = "fyko+d2lbbFgONRv9qkxdawL"
    return f"n,,n={user},r={nonce}".encode(), nonce


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_wrong_password_and_unknown_user(kafka_secure_broker, mechanism):
    import base64

    from pykbroker.security import scram

    kb = kafka_secure_broker
    # unknown user: fails at the first message
    with raw(kb, "SASL_SSL") as c:
        assert c.call(17, 1, {"mechanism": mechanism})["error_code"] == 0
        r = c.call(36, 2, {"auth_bytes": _scram_client_first("nobody")[0]})
        assert r["error_code"] == errors.SASL_AUTHENTICATION_FAILED
        assert r["error_message"] == ("Authentication failed during authentication due to invalid credentials "
                                      f"with SASL mechanism {mechanism}")
        assert closed(c)
    # wrong password: fails at the final message
    with raw(kb, "SASL_SSL") as c:
        assert c.call(17, 1, {"mechanism": mechanism})["error_code"] == 0
        first, _ = _scram_client_first("alice")
        r = c.call(36, 2, {"auth_bytes": first})
        assert r["error_code"] == 0
        server_first = r["auth_bytes"].decode()
        kv = dict(p.split("=", 1) for p in server_first.split(","))
        salted = scram.salted_password(mechanism, "wrong", base64.b64decode(kv["s"]), int(kv["i"]))
        h = scram.MECHANISMS[mechanism][0]
        import hashlib
        client_key = scram.hmac_(h, salted, b"Client Key")
        final_wo = f"c=biws,r={kv['r']}"
        auth_msg = f"{first.decode()[3:]},{server_first},{final_wo}".encode()
        sig = scram.hmac_(h, hashlib.new(h, client_key).digest(), auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        r = c.call(36, 2, {"auth_bytes": f"{final_wo},p={base64.b64encode(proof).decode()}".encode()})
        assert r["error_code"] == errors.SASL_AUTHENTICATION_FAILED
        assert closed(c)
    bystander_ok(kb, "SASL_SSL")


def test_unknown_mechanism(kafka_secure_broker):
    kb = kafka_secure_broker
    with raw(kb, "SASL_SSL") as c:
        r = c.call(17, 1, {"mechanism": "GSSAPI"})
        assert r["error_code"] == errors.UNSUPPORTED_SASL_MECHANISM
        assert r["mechanisms"] == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
        assert closed(c)
    bystander_ok(kb, "SASL_SSL")


def test_requests_before_authentication_close_the_connection(kafka_secure_broker):
    kb = kafka_secure_broker
    with raw(kb, "SASL_PLAINTEXT") as c:  # ApiVersions is answered, Metadata closes
        assert c.call(18, 3, {"client_software_name": "raw", "client_software_version": "1"})["error_code"] == 0
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            c.call(*METADATA)
    with raw(kb, "SASL_PLAINTEXT") as c:  # SaslAuthenticate before SaslHandshake
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            c.call(36, 2, {"auth_bytes": b"\0alice\0alice-secret"})
    with raw(kb, "SASL_PLAINTEXT") as c:  # handshake, then something else
        assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == 0
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            c.call(*METADATA)
    bystander_ok(kb, "SASL_PLAINTEXT")


def test_sasl_requests_on_plaintext_listener_get_illegal_state(kafka_secure_broker):
    kb = kafka_secure_broker
    with raw(kb, "PLAINTEXT") as c:
        assert c.call(17, 1, {"mechanism": "PLAIN"})["error_code"] == errors.ILLEGAL_SASL_STATE
        assert c.call(36, 1, {"auth_bytes": b"x"})["error_code"] == errors.ILLEGAL_SASL_STATE
        assert c.call(*METADATA)["brokers"]  # still open


def test_handshake_v0_raw_tokens(kafka_secure_broker):
    """SaslHandshake v0: the token follows as a bare size-prefixed frame."""
    kb = kafka_secure_broker
    with raw(kb, "SASL_PLAINTEXT") as c:
        assert c.call(17, 0, {"mechanism": "PLAIN"})["error_code"] == 0
        token = b"\0alice\0alice-secret"
        c.send_frame(len(token).to_bytes(4, "big") + token)
        assert c.read_frame() == b""
        assert c.call(*METADATA)["brokers"]
    with raw(kb, "SASL_PLAINTEXT") as c:
        assert c.call(17, 0, {"mechanism": "PLAIN"})["error_code"] == 0
        token = b"\0alice\0bad"
        c.send_frame(len(token).to_bytes(4, "big") + token)
        assert closed(c)


# -- SASL, real clients ------------------------------------------------------------------------

def _fails_fast_librdkafka(conf: dict) -> tuple[float, list]:
    from confluent_kafka import Producer

    errs: list = []
    p = Producer({**conf, "error_cb": errs.append})
    t0 = time.monotonic()
    while not errs and time.monotonic() - t0 < 10:
        p.poll(0.1)
    return time.monotonic() - t0, errs


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("nobody", "whatever")])
def test_librdkafka_wrong_credentials(kafka_secure_broker, user, password):
    kb = kafka_secure_broker
    elapsed, errs = _fails_fast_librdkafka(kb.librdkafka_config("SASL_SSL", user, password=password))
    assert errs and elapsed < 5, (elapsed, errs)
    assert "Authentication failed" in errs[0].str()
    bystander_ok(kb, "SASL_SSL")


def test_aiokafka_wrong_password_fails_fast(kafka_secure_broker):
    """(kafka-python 3.0 retries its bootstrap after SASL_AUTHENTICATION_FAILED
    until its own timeout, so it is not a fail-fast client; aiokafka is.)"""
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    kb = kafka_secure_broker

    async def run() -> float:
        p = AIOKafkaProducer(bootstrap_servers=kb.bootstrap_for("SASL_SSL"), security_protocol="SASL_SSL",
                             ssl_context=kb.ssl_context(), sasl_mechanism="SCRAM-SHA-512",
                             sasl_plain_username="alice", sasl_plain_password="wrong")
        t0 = time.monotonic()
        try:
            with pytest.raises(KafkaConnectionError):
                await p.start()
        finally:
            await p.stop()
        return time.monotonic() - t0

    assert asyncio.run(run()) < 3
    bystander_ok(kb, "SASL_SSL")


# -- TLS -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_certs(kafka_tls_ca, tmp_path_factory):
    from pykbroker.testing.security import TestCA

    other = TestCA(tmp_path_factory.mktemp("other-ca"), name="some other CA")
    return {"untrusted": other.issue("intruder", filename="intruder"),
            "expired": kafka_tls_ca.issue("old-client", expired=True, filename="expired")}


@pytest.mark.parametrize("which", ["untrusted", "expired"])
def test_bad_client_certificate_is_refused(kafka_secure_broker, bad_certs, which):
    kb = kafka_secure_broker
    t0 = time.monotonic()
    with pytest.raises((ssl.SSLError, ConnectionClosed, ConnectionResetError, BrokenPipeError)):
        with raw(kb, "SSL", cert=bad_certs[which]) as c:  # TLS 1.3: the refusal arrives on the first read
            c.call(*METADATA)
    assert time.monotonic() - t0 < 3
    # librdkafka gives up quickly too
    conf = {**kb.librdkafka_config("SSL"), "ssl.certificate.location": str(bad_certs[which].cert),
            "ssl.key.location": str(bad_certs[which].key)}
    elapsed, errs = _fails_fast_librdkafka(conf)
    assert errs and elapsed < 5, (elapsed, errs)
    bystander_ok(kb, "SSL")


def test_no_client_certificate_when_required(kafka_secure_broker):
    kb = kafka_secure_broker
    with pytest.raises((ssl.SSLError, ConnectionClosed, ConnectionResetError, BrokenPipeError)):
        c = RawClient(kb.bootstrap_for("SSL"), timeout=5)
        c.sock = client_ctx(kb).wrap_socket(c.sock, server_hostname="localhost")
        c.call(*METADATA)
    bystander_ok(kb, "SSL")


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_plaintext_client_on_tls_port(kafka_secure_broker, listener):
    kb = kafka_secure_broker
    t0 = time.monotonic()
    with RawClient(kb.bootstrap_for(listener), timeout=5) as c:
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            c.call(18, 3, {"client_software_name": "raw", "client_software_version": "1"})
    assert time.monotonic() - t0 < 3
    conf = {"bootstrap.servers": kb.bootstrap_for(listener)}
    elapsed, errs = _fails_fast_librdkafka(conf)
    assert errs and elapsed < 5, (elapsed, errs)
    bystander_ok(kb, listener)


@pytest.mark.parametrize("listener", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_tls_client_on_plaintext_port(kafka_secure_broker, listener):
    kb = kafka_secure_broker
    t0 = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", int(kb.bootstrap_for(listener).rsplit(":", 1)[1])), timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        client_ctx(kb).wrap_socket(sock, server_hostname="localhost")
    sock.close()
    assert time.monotonic() - t0 < 3
    bystander_ok(kb, listener)


def test_silent_tls_client_does_not_block_others(kafka_tls_ca):
    """A connection that never starts its handshake is closed after
    pykbroker.ssl.handshake.timeout.ms; meanwhile everyone else is served."""
    from pykbroker.testing.security import SecureBroker

    with SecureBroker(kafka_tls_ca, config={"pykbroker.ssl.handshake.timeout.ms": "700"}) as kb:
        host, port = kb.bootstrap_for("SSL").rsplit(":", 1)
        silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(5)]
        t0 = time.monotonic()
        bystander_ok(kb, "SSL")
        assert time.monotonic() - t0 < 2
        for s in silent:
            assert s.recv(1) == b""  # closed by the broker
            s.close()
        assert time.monotonic() - t0 < 4
