"""Fuzzed SASL tokens and TLS handshakes never crash the broker.

Sans-IO: every mechanism server, fed arbitrary tokens (and mutations of valid
ones), answers with bytes or a SaslFailure, nothing else. Over the wire:
garbage and mutated ClientHellos on the TLS ports and garbage tokens on the
SASL ports close only their own connection; a bystander keeps being served.
"""

from __future__ import annotations

import socket
import ssl
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykbroker.security import sasl, scram, session
from pykbroker.security.listeners import ListenerSecurity
from rawclient import RawClient

STORE = scram.CredentialStore()
STORE.put("alice", "SCRAM-SHA-256", scram.ScramCredential.from_password("SCRAM-SHA-256", "pw"))
STORE.put("alice", "SCRAM-SHA-512", scram.ScramCredential.from_password("SCRAM-SHA-512", "pw"))

SEEDS = [b"\0alice\0pw", b"n,,n=alice,r=abcdef", b"c=biws,r=abcdef,p=AAAA",
         b"n,,\x01auth=Bearer e30.e30.\x01\x01", b"\x01", b""]


def _servers():
    return [sasl.PlainServer({"alice": "pw"}), sasl.ScramServer("SCRAM-SHA-256", STORE),
            sasl.ScramServer("SCRAM-SHA-512", STORE), sasl.OAuthBearerUnsecuredServer({})]


def _mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, val in flips:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


tokens = st.one_of(st.binary(max_size=300),
                   st.builds(_mutate, st.sampled_from(SEEDS),
                             st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)), max_size=4)),
                   st.text(max_size=100).map(str.encode))


@settings(max_examples=400, deadline=None)
@given(st.lists(tokens, min_size=1, max_size=3))
def test_mechanism_servers_only_answer_or_fail(seq):
    for server in _servers():
        for token in seq:
            try:
                out = server.evaluate(token)
            except sasl.SaslFailure:
                break
            assert isinstance(out, bytes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["hs0", "hs1", "auth", "check"]),
                          st.sampled_from(["PLAIN", "SCRAM-SHA-512", "OAUTHBEARER", "X", ""]), tokens),
                max_size=6))
def test_connection_state_machine_never_raises_unexpectedly(ops):
    ls = ListenerSecurity("S", "SASL_SSL", mechanisms=["PLAIN", "SCRAM-SHA-512", "OAUTHBEARER"],
                          plain_users={"alice": "pw"}, store=STORE, reauth_ms=10)
    a = session.ConnectionAuth(ls)
    for op, mech, token in ops:
        try:
            if op == "check":
                a.check(token[0] if token else 3)
            elif op == "auth":
                if a.raw:
                    a.raw_token(token)
                else:
                    assert a.authenticate(2, token)["error_code"] in (0, 34, 58)
            else:
                assert a.handshake(0 if op == "hs0" else 1, mech)["error_code"] in (0, 33, 34)
        except session.AuthClose:
            return
        if a.close_after_response:
            return


def _client_hello() -> bytes:
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


HELLO = _client_hello()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(min_size=1, max_size=600),
                 st.builds(_mutate, st.just(HELLO),
                           st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=6)),
                 st.builds(lambda n: HELLO[:n], st.integers(1, len(HELLO) - 1))))
def test_fuzzed_tls_handshakes(kafka_secure_broker, data):
    kb = kafka_secure_broker
    for listener in ("SSL", "SASL_SSL"):
        host, port = kb.bootstrap_for(listener).rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=5)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # a truncated hello then ends: the broker must not wait for more
            t0 = time.monotonic()
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
            assert time.monotonic() - t0 < 5
        finally:
            s.close()
    _bystander(kb)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]), st.lists(tokens, min_size=1,
                                                                                              max_size=3))
def test_fuzzed_sasl_tokens_on_the_wire(kafka_secure_broker, mechanism, seq):
    kb = kafka_secure_broker
    with RawClient(kb.bootstrap_for("SASL_PLAINTEXT"), timeout=5) as c:
        assert c.call(17, 1, {"mechanism": mechanism})["error_code"] == 0
        for token in seq:
            try:
                r = c.call(36, 2, {"auth_bytes": token})
            except (ConnectionError, OSError, Exception) as e:  # closed after a failure: expected
                assert type(e).__name__ in ("ConnectionClosed", "ConnectionResetError", "BrokenPipeError"), e
                break
            assert r["error_code"] in (0, 58)
            if r["error_code"]:
                break
    _bystander(kb)


def _bystander(kb) -> None:
    with RawClient(kb.bootstrap_for("PLAINTEXT"), timeout=5) as c:
        assert c.call(3, 12, {"topics": None})["brokers"]
