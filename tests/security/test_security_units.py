"""Sans-IO pieces: JAAS lines, SCRAM (RFC 7677's example), PLAIN, OAUTHBEARER's
unsecured validator, principal mapping, the per-connection state machine and
configuration errors; plus a real TLS handshake over a socket pair for the
principal of a client certificate."""

from __future__ import annotations

import base64
import json
import time

import pytest
import trio

from pykbroker.config import BrokerConfig, ConfigError
from pykbroker.protocol import errors
from pykbroker.security import jaas, sasl, scram, session, tls
from pykbroker.security.listeners import ListenerSecurity, Security


# -- JAAS ---------------------------------------------------------------------------------------

def test_jaas_parse():
    e = jaas.parse('org.apache.kafka.common.security.plain.PlainLoginModule required '
                   'username="admin" password="a b;c" user_alice="alice-secret" debug=true ;')
    assert e.login_module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert e.flag == "required"
    assert e.options == {"username": "admin", "password": "a b;c", "user_alice": "alice-secret", "debug": "true"}
    for bad in ("", "Module", "Module required a=1", "Module required a=1; Other required;"):
        with pytest.raises(jaas.JaasError):
            jaas.parse(bad)


# -- SCRAM ---------------------------------------------------------------------------------------

def test_scram_sha256_rfc7677_example(monkeypatch):
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    store = scram.CredentialStore()
    store.put("user", "SCRAM-SHA-256", scram.ScramCredential.from_password("SCRAM-SHA-256", "pencil", 4096, salt))
    monkeypatch.setattr(sasl.secrets, "token_urlsafe", lambda n: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    s = sasl.ScramServer("SCRAM-SHA-256", store)
    first = s.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = s.evaluate(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                       b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert s.complete and s.username == "user"


def test_scram_failures():
    store = scram.CredentialStore()
    store.put("alice", "SCRAM-SHA-512", scram.ScramCredential.from_password("SCRAM-SHA-512", "pw"))
    with pytest.raises(sasl.SaslFailure) as e:
        sasl.ScramServer("SCRAM-SHA-512", store).evaluate(b"n,,n=bob,r=abc")
    assert not e.value.public
    with pytest.raises(sasl.SaslFailure) as e:
        sasl.ScramServer("SCRAM-SHA-512", store).evaluate(b"n,,n=alice,r=abc,tokenauth=true")
    assert "delegation tokens" in e.value.message
    with pytest.raises(sasl.SaslFailure):
        sasl.ScramServer("SCRAM-SHA-512", store).evaluate(b"n,a=bob,n=alice,r=abc")
    with pytest.raises(sasl.SaslFailure):  # channel binding is not supported
        sasl.ScramServer("SCRAM-SHA-512", store).evaluate(b"p=tls-unique,,n=alice,r=abc")
    s = sasl.ScramServer("SCRAM-SHA-512", store)
    s.evaluate(b"n,,n=alice,r=abc")
    with pytest.raises(sasl.SaslFailure):  # wrong nonce
        s.evaluate(b"c=biws,r=xyz,p=" + base64.b64encode(b"x" * 64))


def test_credential_store_file_keeps_no_password(tmp_path):
    scram.add_user(tmp_path, "alice", "very-secret-pw", "SCRAM-SHA-256", 5000)
    text = (tmp_path / "scram-credentials.json").read_text()
    assert "very-secret-pw" not in text
    st = scram.CredentialStore(tmp_path / "scram-credentials.json")
    cred = st.get("alice", "SCRAM-SHA-256")
    assert cred is not None and cred.iterations == 5000
    assert json.loads(text)["users"]["alice"]["SCRAM-SHA-256"] == cred.to_text()
    assert cred.to_text().startswith("salt=") and ",stored_key=" in cred.to_text()


# -- PLAIN ----------------------------------------------------------------------------------------

def test_plain():
    users = {"alice": "pw"}
    s = sasl.PlainServer(users)
    assert s.evaluate(b"\0alice\0pw") == b"" and s.complete and s.username == "alice"
    assert sasl.PlainServer(users).evaluate(b"alice\0alice\0pw") == b""
    cases = {b"\0alice\0bad": "Authentication failed: Invalid username or password",
             b"\0\0pw": "Authentication failed: username not specified",
             b"\0alice\0": "Authentication failed: password not specified",
             b"bob\0alice\0pw": "Authentication failed: Client requested an authorization id that is "
                                "different from username"}
    for token, msg in cases.items():
        with pytest.raises(sasl.SaslFailure) as e:
            sasl.PlainServer(users).evaluate(token)
        assert e.value.message == msg and e.value.public
    with pytest.raises(sasl.SaslFailure) as e:
        sasl.PlainServer(users).evaluate(b"no-separators")
    assert not e.value.public


# -- OAUTHBEARER -----------------------------------------------------------------------------------

def _jws(claims: dict, alg: str = "none") -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': alg})}.{enc(claims)}."


def _first(token: str, ext: str = "") -> bytes:
    return f"n,,\x01auth=Bearer {token}\x01{ext}\x01".encode()


def test_oauthbearer_unsecured():
    now = time.time()
    s = sasl.OAuthBearerUnsecuredServer({})
    assert s.evaluate(_first(_jws({"sub": "svc", "exp": now + 60, "iat": now}), "traceId=1\x01")) == b""
    assert s.complete and s.username == "svc" and s.expires_at == pytest.approx(now + 60)
    bad = [_jws({"sub": "svc", "exp": now - 1}),  # expired
           _jws({"exp": now + 60}),  # no subject
           _jws({"sub": "svc", "exp": now + 60}, alg="RS256"),  # signed: not for this validator
           "garbage"]
    for token in bad:
        s = sasl.OAuthBearerUnsecuredServer({})
        assert json.loads(s.evaluate(_first(token))) == {"status": "invalid_token"}
        with pytest.raises(sasl.SaslFailure) as e:
            s.evaluate(b"\x01")
        assert e.value.message == '{"status":"invalid_token"}'
    s = sasl.OAuthBearerUnsecuredServer({"unsecuredValidatorRequiredScope": "write",
                                         "unsecuredValidatorPrincipalClaimName": "client"})
    assert s.evaluate(_first(_jws({"client": "c1", "exp": now + 60, "scope": "read write"}))) == b""
    assert s.username == "c1"


# -- TLS principals -----------------------------------------------------------------------------

def test_subject_dn_and_mapping_rules():
    cert = {"subject": ((("countryName", "US"),), (("organizationName", "Acme, Inc"),),
                        (("organizationalUnitName", "eng"),), (("commonName", "client-1"),))}
    dn = tls.subject_dn(cert)
    assert dn == "CN=client-1,OU=eng,O=Acme\\, Inc,C=US"
    assert tls.PrincipalMapper("DEFAULT").name(dn) == dn
    m = tls.PrincipalMapper("RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/U, DEFAULT")
    assert m.name(dn) == "CLIENT-1@ENG"
    assert m.name("CN=x") == "CN=x"
    m = tls.PrincipalMapper("RULE:^CN=([a-z0-9-]+),.*$/$1/L")
    assert m.name(dn) == "client-1"
    with pytest.raises(ValueError):
        m.name("O=nobody")
    with pytest.raises(ConfigError):
        tls.PrincipalMapper("RULE:broken")


# -- the connection's state machine ----------------------------------------------------------------

def _ls(**kw) -> ListenerSecurity:
    store = scram.CredentialStore()
    return ListenerSecurity("SASL_PLAINTEXT", "SASL_PLAINTEXT", mechanisms=["PLAIN", "SCRAM-SHA-256"],
                            plain_users={"alice": "pw", "bob": "pw2"}, store=store, **kw)


def test_connection_auth_flow_and_reauthentication():
    now = [100.0]
    a = session.ConnectionAuth(_ls(reauth_ms=1000), clock=lambda: now[0])
    a.check(18)
    with pytest.raises(session.AuthClose):
        a.check(3)
    assert a.handshake(1, "PLAIN") == {"error_code": 0, "mechanisms": ["PLAIN", "SCRAM-SHA-256"]}
    with pytest.raises(session.AuthClose):
        a.check(17)  # a second handshake before authenticating
    r = a.authenticate(2, b"\0alice\0pw")
    assert r["error_code"] == 0 and r["session_lifetime_ms"] == 1000
    assert a.principal == "User:alice" and a.authenticated
    a.check(3)
    now[0] += 0.5  # re-authenticate before expiry
    assert a.handshake(1, "PLAIN")["error_code"] == 0
    assert a.authenticate(2, b"\0alice\0pw")["error_code"] == 0
    now[0] += 0.9
    a.check(3)  # the new session runs from the re-authentication
    now[0] += 0.2
    with pytest.raises(session.AuthClose):
        a.check(3)  # expired
    # a different principal on re-authentication fails
    b = session.ConnectionAuth(_ls(reauth_ms=1000), clock=lambda: now[0])
    b.handshake(1, "PLAIN")
    b.authenticate(2, b"\0alice\0pw")
    b.handshake(1, "PLAIN")
    r = b.authenticate(2, b"\0bob\0pw2")
    assert r["error_code"] == errors.SASL_AUTHENTICATION_FAILED
    assert "Cannot change principals" in r["error_message"] and b.close_after_response


def test_connection_auth_errors():
    a = session.ConnectionAuth(_ls())
    r = a.handshake(1, "GSSAPI")
    assert r["error_code"] == errors.UNSUPPORTED_SASL_MECHANISM and a.close_after_response
    a = session.ConnectionAuth(_ls())
    r = a.authenticate(1, b"x")
    assert r["error_code"] == errors.ILLEGAL_SASL_STATE and a.close_after_response
    plain = session.ConnectionAuth(None)
    assert plain.handshake(1, "PLAIN")["error_code"] == errors.ILLEGAL_SASL_STATE
    assert plain.authenticate(1, b"")["error_code"] == errors.ILLEGAL_SASL_STATE
    assert not plain.close_after_response
    plain.check(3)


# -- configuration --------------------------------------------------------------------------------

def test_config_errors(tmp_path):
    def sec(**props):
        return Security(BrokerConfig(overrides={"pykbroker.storage": "memory", **props}))

    with pytest.raises(ConfigError, match="No security protocol"):
        sec(listeners="FOO://127.0.0.1:0")
    with pytest.raises(ConfigError, match="GSSAPI is not supported"):
        sec(listeners="SASL_PLAINTEXT://127.0.0.1:0")
    with pytest.raises(ConfigError, match="PLAIN needs"):
        sec(listeners="SASL_PLAINTEXT://127.0.0.1:0", **{"sasl.enabled.mechanisms": "PLAIN"})
    with pytest.raises(ConfigError, match="keystore"):
        sec(listeners="SSL://127.0.0.1:0")
    with pytest.raises(ConfigError, match="JKS is not supported|not supported"):
        sec(listeners="SSL://127.0.0.1:0", **{"ssl.keystore.location": str(tmp_path / "x.jks")})
    # named listeners and per-listener settings
    s = sec(listeners="INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
            **{"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT",
               "listener.name.external.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
               "listener.name.external.plain.sasl.jaas.config":
                   'org.apache.kafka.common.security.plain.PlainLoginModule required user_u="p";',
               "listener.name.external.connections.max.reauth.ms": "60000"})
    ext = s.listeners["EXTERNAL"]
    assert (ext.protocol, ext.mechanisms, ext.plain_users, ext.reauth_ms) == \
        ("SASL_PLAINTEXT", ["PLAIN", "SCRAM-SHA-512"], {"u": "p"}, 60000)
    assert s.listeners["INTERNAL"].protocol == "PLAINTEXT"


def test_pkcs12_and_inline_pem_keystores(kafka_tls_ca):
    server = kafka_tls_ca.issue("localhost", server=True, filename="p12-broker")
    p12 = kafka_tls_ca.pkcs12(server, "changeit")
    base = {"pykbroker.storage": "memory", "listeners": "SSL://127.0.0.1:0"}
    for props in ({"ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(p12),
                   "ssl.keystore.password": "changeit"},
                  {"ssl.keystore.type": "PEM", "ssl.keystore.key": server.key.read_text(),
                   "ssl.keystore.certificate.chain": server.cert.read_text(),
                   "ssl.truststore.type": "PEM", "ssl.truststore.certificates": kafka_tls_ca.ca_pem.read_text()}):
        s = Security(BrokerConfig(overrides={**base, **props}))
        assert s.listeners["SSL"].ssl_context is not None
    with pytest.raises(ConfigError):
        Security(BrokerConfig(overrides={**base, "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(p12),
                                         "ssl.keystore.password": "wrong"}))


async def test_client_certificate_principal_over_a_real_handshake(kafka_tls_ca):
    """SSL listener, ssl.client.auth=required: the principal is the mapped subject."""
    import ssl

    server = kafka_tls_ca.issue("localhost", server=True, filename="pp-broker")
    client = kafka_tls_ca.issue("app-1", ou="payments", org="Acme", filename="pp-client")
    for rules, want in (("DEFAULT", "User:CN=app-1,OU=payments,O=Acme"),
                        ("RULE:^CN=(.*?),OU=(.*?),.*$/$2.$1/", "User:payments.app-1")):
        cfg = BrokerConfig(overrides={
            "pykbroker.storage": "memory", "listeners": "SSL://127.0.0.1:0", "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(server.keystore), "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(kafka_tls_ca.ca_pem), "ssl.client.auth": "required",
            "ssl.principal.mapping.rules": rules})
        ls = Security(cfg).listeners["SSL"]
        a, b = _socket_pair()
        cctx = ssl.create_default_context(cafile=str(kafka_tls_ca.ca_pem))
        cctx.load_cert_chain(str(client.cert), str(client.key))
        got = {}
        async with trio.open_nursery() as n:
            async def srv(ls=ls, a=a, got=got):
                got["r"] = await session.open_stream(ls, a, "test")

            n.start_soon(srv)
            cs = trio.SSLStream(b, cctx, server_hostname="localhost")
            await cs.do_handshake()
            await cs.send_all(b"\0\0\0\0")  # TLS 1.3: let the server finish reading the client's certificate
        _, auth = got["r"]
        assert auth.principal == want


def _socket_pair():
    import socket

    s1, s2 = socket.socketpair()
    return trio.SocketStream(trio.socket.from_stdlib_socket(s1)), trio.SocketStream(trio.socket.from_stdlib_socket(s2))


def test_ssl_client_auth_on_sasl_ssl_only_with_listener_prefix(kafka_tls_ca):
    import ssl

    server = kafka_tls_ca.issue("localhost", server=True, filename="ca-broker")
    base = {"pykbroker.storage": "memory", "listeners": "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(server.keystore),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(kafka_tls_ca.ca_pem),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512", "ssl.client.auth": "required"}
    s = Security(BrokerConfig(overrides=base))
    assert s.listeners["SSL"].ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert s.listeners["SASL_SSL"].ssl_context.verify_mode == ssl.CERT_NONE
    s = Security(BrokerConfig(overrides={**base, "listener.name.sasl_ssl.ssl.client.auth": "requested"}))
    assert s.listeners["SASL_SSL"].ssl_context.verify_mode == ssl.CERT_OPTIONAL


def test_jwks_validator_needs_a_key_set():
    base = {"pykbroker.storage": "memory", "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"}
    with pytest.raises(ConfigError, match="jwks.endpoint.url"):
        Security(BrokerConfig(overrides=base))
    with pytest.raises(ConfigError, match="cannot read the JWKS"):
        Security(BrokerConfig(overrides={**base, "sasl.oauthbearer.jwks.endpoint.url": "file:///nonexistent.json"}))
    with pytest.raises(ConfigError, match="not supported"):
        Security(BrokerConfig(overrides={
            **base, "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": "com.Foo"}))
