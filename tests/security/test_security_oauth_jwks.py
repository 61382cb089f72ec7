"""OAUTHBEARER with Kafka's OAuthBearerValidatorCallbackHandler: signed JWTs
checked against a JWKS (file: URL here), with confluent-kafka's oauth_cb
supplying the token, and raw negatives (bad signature, expired, audience)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from pykbroker.protocol import errors
from rawclient import RawClient


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _n(i: int) -> str:
    return _b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rn, en = rsa_key.public_key().public_numbers(), ec_key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "r1", "use": "sig", "n": _n(rn.n), "e": _n(rn.e)},
                     {"kty": "EC", "kid": "e1", "crv": "P-256", "x": _b64(en.x.to_bytes(32, "big")),
                      "y": _b64(en.y.to_bytes(32, "big"))}]}
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(jwks))
    return {"RS256": rsa_key, "ES256": ec_key, "other": other, "url": path.as_uri()}


def jwt(keys, alg: str = "RS256", kid: str = "r1", key=None, **claims) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    now = int(time.time())
    body = {"sub": "svc-orders", "iss": "https://issuer.test", "aud": "kafka", "iat": now, "exp": now + 300,
            **claims}
    head = _b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    signing_input = f"{head}.{_b64(json.dumps(body).encode())}".encode()
    key = key or keys[alg]
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{_b64(sig)}"


@pytest.fixture(scope="module")
def jwks_broker(kafka_tls_ca, keys):
    from pykbroker.testing.security import SecureBroker

    cfg = {"listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class":
           "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
           "sasl.oauthbearer.jwks.endpoint.url": keys["url"],
           "sasl.oauthbearer.expected.audience": "kafka",
           "sasl.oauthbearer.expected.issuer": "https://issuer.test"}
    with SecureBroker(kafka_tls_ca, config=cfg) as kb:
        yield kb


def test_confluent_kafka_with_a_signed_token(jwks_broker, keys):
    from confluent_kafka import Consumer, Producer

    kb = jwks_broker
    conf = {"bootstrap.servers": kb.bootstrap_for("SASL_SSL"), "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(kb.ca.ca_pem), "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _cfg: (jwt(keys), time.time() + 300)}
    topic = f"jwks-{uuid.uuid4().hex[:8]}"
    p = Producer(conf)
    for v in (b"a", b"b"):
        p.produce(topic, v)
    assert p.flush(15) == 0
    c = Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    for _ in range(30):
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append((m.offset(), m.value()))
            if len(got) == 2:
                break
    c.close()
    assert got == [(0, b"a"), (1, b"b")]


def _auth(kb, token: str) -> tuple[dict, dict | None]:
    import ssl

    c = RawClient(kb.bootstrap_for("SASL_SSL"), timeout=5)
    c.sock = ssl.create_default_context(cafile=str(kb.ca.ca_pem)).wrap_socket(c.sock, server_hostname="localhost")
    with c:
        assert c.call(17, 1, {"mechanism": "OAUTHBEARER"})["error_code"] == 0
        first = c.call(36, 2, {"auth_bytes": f"n,,\x01auth=Bearer {token}\x01\x01".encode()})
        if first["error_code"] or not first["auth_bytes"]:
            return first, None
        return first, c.call(36, 2, {"auth_bytes": b"\x01"})


def test_valid_tokens_rsa_and_ec(jwks_broker, keys):
    for token in (jwt(keys), jwt(keys, alg="ES256", kid="e1")):
        first, final = _auth(jwks_broker, token)
        assert first["error_code"] == 0 and first["auth_bytes"] == b"" and final is None


@pytest.mark.parametrize("case", ["bad-signature", "expired", "audience", "issuer", "unknown-kid", "unsigned"])
def test_rejected_tokens(jwks_broker, keys, case):
    now = int(time.time())
    token = {"bad-signature": lambda: jwt(keys, key=keys["other"]),
             "expired": lambda: jwt(keys, exp=now - 120, iat=now - 600),
             "audience": lambda: jwt(keys, aud="someone-else"),
             "issuer": lambda: jwt(keys, iss="https://evil.test"),
             "unknown-kid": lambda: jwt(keys, kid="nope"),
             "unsigned": lambda: jwt(keys).rsplit(".", 1)[0] + "."}[case]()
    first, final = _auth(jwks_broker, token)
    assert json.loads(first["auth_bytes"]) == {"status": "invalid_token"}
    assert final["error_code"] == errors.SASL_AUTHENTICATION_FAILED
    assert final["error_message"] == '{"status":"invalid_token"}'
