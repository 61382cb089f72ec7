"""SASL mechanism servers, sans-IO: ``evaluate(token) -> challenge``.

Each server is one authentication exchange. ``evaluate`` returns the bytes
to send back and raises :class:`SaslFailure` when authentication fails;
``complete`` says the exchange is over, then ``username`` (the principal is
``User:<username>``) and, for OAUTHBEARER, ``expires_at`` (wall-clock
seconds) are set.

Failure messages follow Kafka's split: a :class:`SaslFailure` with
``public=True`` carries Kafka's SaslAuthenticationException text to the
client; otherwise (Kafka's plain SaslException) the client gets the generic
"Authentication failed during authentication due to invalid credentials
with SASL mechanism <M>".

- PLAIN (RFC 4616): ``authzid NUL user NUL password`` checked against the
  ``user_<name>="<password>"`` options of the listener's PlainLoginModule.
- SCRAM-SHA-256/512 (RFC 5802/7677 with Kafka's extensions): salted
  credentials from the :class:`~pykbroker.security.scram.CredentialStore`;
  the ``tokenauth`` extension (delegation tokens) is refused.
- OAUTHBEARER (RFC 7628) with Kafka's unsecured-JWS validator (tokens with
  ``alg: none``; ``sub``, ``exp``, optional ``iat`` and scope); an invalid
  token gets ``{"status":"invalid_token"}``, and the client's ``%x01``
  reply ends the exchange with that failure (as Kafka does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from . import scram as sc


class SaslFailure(Exception):
    def __init__(self, message: str, public: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.public = public


class MechanismServer:
    mechanism = ""

    def __init__(self) -> None:
        self.complete = False
        self.username: str | None = None
        self.expires_at: float | None = None  # the credential's own expiry (OAUTHBEARER)

    def evaluate(self, token: bytes) -> bytes:
        raise NotImplementedError


class PlainServer(MechanismServer):
    mechanism = "PLAIN"

    def __init__(self, users: dict[str, str]) -> None:
        super().__init__()
        self.users = users

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslFailure("PLAIN: unexpected token after completion", public=False)
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid SASL/PLAIN response: not UTF-8", public=False) from None
        parts = text.split("\0")
        if len(parts) != 3:
            raise SaslFailure(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}", public=False)
        authzid, user, password = parts
        if not user:
            raise SaslFailure("Authentication failed: username not specified")
        if not password:
            raise SaslFailure("Authentication failed: password not specified")
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise SaslFailure("Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise SaslFailure("Authentication failed: Client requested an authorization id that is "
                              "different from username")
        self.username = user
        self.complete = True
        return b""


_SASLNAME = re.compile(r"^(?:[^=,]|=2C|=3D)+$")


def _decode_saslname(s: str) -> str:
    if not _SASLNAME.match(s):
        raise SaslFailure(f"Invalid SCRAM username: {s!r}", public=False)
    return s.replace("=2C", ",").replace("=3D", "=")


def _attrs(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=":
            raise SaslFailure(f"Invalid SCRAM message attribute {part[:20]!r}", public=False)
        out.append((part[0], part[2:]))
    return out


class ScramServer(MechanismServer):
    def __init__(self, mechanism: str, store: sc.CredentialStore) -> None:
        super().__init__()
        self.mechanism = mechanism
        self.hash = sc.MECHANISMS[mechanism][0]
        self.store = store
        self.stage = 0
        self._client_first_bare = ""
        self._server_first = ""
        self._gs2 = ""
        self._nonce = ""
        self._cred: sc.ScramCredential | None = None

    def evaluate(self, token: bytes) -> bytes:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid SCRAM message: not UTF-8", public=False) from None
        if self.stage == 0:
            return self._client_first(text)
        if self.stage == 1:
            return self._client_final(text)
        raise SaslFailure("Unexpected SCRAM message after completion", public=False)

    def _client_first(self, text: str) -> bytes:
        # gs2-header: "n," or "y," then [a=authzid] ","; "p=" (channel binding) is not supported
        m = re.match(r"^([ny]),(a=[^,]*)?,(.*)$", text, re.S)
        if not m:
            raise SaslFailure("Invalid SCRAM client first message", public=False)
        self._gs2 = text[: len(text) - len(m.group(3))]
        bare = m.group(3)
        parts = bare.split(",")
        fields = _attrs(",".join(parts[:2]))
        if len(fields) < 2 or fields[0][0] != "n" or fields[1][0] != "r" or not fields[1][1]:
            raise SaslFailure("Invalid SCRAM client first message", public=False)
        user = _decode_saslname(fields[0][1])
        extensions = {}
        for part in parts[2:]:  # Kafka's extensions, e.g. tokenauth=true
            k, _, v = part.partition("=")
            extensions[k] = v
        if extensions.get("tokenauth", "").lower() == "true":
            raise SaslFailure("Authentication failed: delegation tokens are not supported")
        if m.group(2):
            authzid = _decode_saslname(m.group(2)[2:])
            if authzid != user:
                raise SaslFailure("Authentication failed: Client requested an authorization id that is "
                                  "different from username")
        cred = self.store.get(user, self.mechanism)
        if cred is None:
            raise SaslFailure("Authentication failed: Invalid user credentials", public=False)
        self.username_candidate = user
        self._cred = cred
        self._client_first_bare = bare
        self._nonce = fields[1][1] + secrets.token_urlsafe(24)
        self._server_first = (f"r={self._nonce},s={base64.b64encode(cred.salt).decode()},"
                              f"i={cred.iterations}")
        self.stage = 1
        return self._server_first.encode()

    def _client_final(self, text: str) -> bytes:
        fields = _attrs(text)
        if len(fields) < 3 or fields[0][0] != "c" or fields[1][0] != "r" or fields[-1][0] != "p":
            raise SaslFailure("Invalid SCRAM client final message", public=False)
        # Kafka checks only that the nonce ends with the server's (librdkafka 2.0.x
        # sends the client nonce twice; Kafka accepts it, so do we)
        if not fields[1][1].endswith(self._nonce):
            raise SaslFailure("Invalid SCRAM client final message: nonce mismatch", public=False)
        try:
            binding = base64.b64decode(fields[0][1], validate=True)
            proof = base64.b64decode(fields[-1][1], validate=True)
        except (binascii.Error, ValueError):
            raise SaslFailure("Invalid SCRAM client final message: bad base64", public=False) from None
        if binding != self._gs2.encode():
            raise SaslFailure("Invalid SCRAM client final message: channel binding mismatch", public=False)
        assert self._cred is not None
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = sc.hmac_(self.hash, self._cred.stored_key, auth_message)
        if len(proof) != len(client_signature):
            raise SaslFailure("Invalid client credentials", public=False)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature))
        if not hmac.compare_digest(hashlib.new(self.hash, client_key).digest(), self._cred.stored_key):
            raise SaslFailure("Invalid client credentials", public=False)
        server_signature = sc.hmac_(self.hash, self._cred.server_key, auth_message)
        self.stage = 2
        self.complete = True
        self.username = self.username_candidate
        return b"v=" + base64.b64encode(server_signature)


def _b64url_json(part: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("not base64url-encoded JSON") from None


class OAuthBearerUnsecuredServer(MechanismServer):
    """Kafka's OAuthBearerUnsecuredValidatorCallbackHandler: options
    ``unsecuredValidatorPrincipalClaimName`` (default ``sub``),
    ``unsecuredValidatorScopeClaimName`` (``scope``),
    ``unsecuredValidatorRequiredScope`` (space/comma separated) and
    ``unsecuredValidatorAllowableClockSkewMs`` (0)."""

    mechanism = "OAUTHBEARER"

    def __init__(self, options: dict[str, str], now: Any = time.time) -> None:
        super().__init__()
        self.principal_claim = options.get("unsecuredValidatorPrincipalClaimName", "sub") or "sub"
        self.scope_claim = options.get("unsecuredValidatorScopeClaimName", "scope") or "scope"
        self.required_scope = [s for s in re.split(r"[\s,]+", options.get("unsecuredValidatorRequiredScope", ""))
                               if s]
        self.skew = int(options.get("unsecuredValidatorAllowableClockSkewMs", "0") or 0) / 1000
        self.now = now
        self._error: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self._error is not None:
            if token == b"\x01":
                raise SaslFailure(self._error)
            raise SaslFailure("Expected %x01 after an error response", public=False)
        if self.complete:
            raise SaslFailure("OAUTHBEARER: unexpected token after completion", public=False)
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("Invalid OAUTHBEARER client first message", public=False) from None
        m = re.match(r"^([ny]),(a=[^,\x01]*)?,\x01(.*)\x01\x01$", text, re.S)
        if not m:
            raise SaslFailure("Invalid OAUTHBEARER client first message", public=False)
        kv = {}
        for item in m.group(3).split("\x01"):
            k, sep, v = item.partition("=")
            if not sep:
                raise SaslFailure("Invalid OAUTHBEARER client first message", public=False)
            kv[k] = v
        auth = kv.get("auth", "")
        if not auth.lower().startswith("bearer "):
            raise SaslFailure("Invalid OAUTHBEARER client first message: no bearer token", public=False)
        problem, user, exp = self._validate(auth[7:].strip())
        if m.group(2) and user is not None and m.group(2)[2:] != user:
            problem = "authorization id differs from the token's principal"
        if problem is not None:
            self._error = json.dumps({"status": "invalid_token"}, separators=(",", ":"))
            return self._error.encode()
        self.username = user
        self.expires_at = exp
        self.complete = True
        return b""

    def _validate(self, jws: str) -> tuple[str | None, str | None, float | None]:
        parts = jws.split(".")
        if len(parts) != 3:
            return "not a JWS compact serialization", None, None
        try:
            header = _b64url_json(parts[0])
            claims = _b64url_json(parts[1])
        except ValueError as e:
            return str(e), None, None
        if not isinstance(header, dict) or header.get("alg") != "none" or parts[2]:
            return "an unsecured JWS has alg none and no signature", None, None
        if not isinstance(claims, dict):
            return "claims are not a JSON object", None, None
        now = self.now()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            return "exp claim missing or not a number", None, None
        if now - self.skew >= exp:
            return "token expired", None, None
        iat = claims.get("iat")
        if iat is not None and (not isinstance(iat, (int, float)) or iat > now + self.skew):
            return "iat claim invalid", None, None
        user = claims.get(self.principal_claim)
        if not isinstance(user, str) or not user.strip():
            return f"no {self.principal_claim} claim", None, None
        if self.required_scope:
            scope = claims.get(self.scope_claim)
            have = set(scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else [])
            if not set(self.required_scope) <= have:
                return "insufficient scope", None, None
        return None, user, float(exp)


class OAuthBearerJwksServer(OAuthBearerUnsecuredServer):
    """Kafka's OAuthBearerValidatorCallbackHandler: a signed JWT (RS*/ES*)
    checked against the key set, then ``exp``/``nbf``/``iat`` (with
    ``sasl.oauthbearer.clock.skew.seconds``), ``iss``
    (``sasl.oauthbearer.expected.issuer``), ``aud``
    (``sasl.oauthbearer.expected.audience``); the principal is the
    ``sasl.oauthbearer.sub.claim.name`` claim."""

    def __init__(self, keys: Any, *, sub_claim: str = "sub", issuer: str | None = None,
                 audience: list[str] | None = None, skew_s: float = 30, now: Any = time.time) -> None:
        super().__init__({}, now)
        self.keys = keys
        self.principal_claim = sub_claim or "sub"
        self.issuer = issuer
        self.audience = audience or []
        self.skew = skew_s

    def _validate(self, jws: str) -> tuple[str | None, str | None, float | None]:
        from .jwks import b64url

        parts = jws.split(".")
        if len(parts) != 3:
            return "not a JWS compact serialization", None, None
        try:
            header = _b64url_json(parts[0])
            claims = _b64url_json(parts[1])
            signature = b64url(parts[2])
        except (ValueError, binascii.Error):
            return "malformed JWS", None, None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "malformed JWS", None, None
        if not self.keys.verify(str(header.get("alg")), header.get("kid"), f"{parts[0]}.{parts[1]}".encode(),
                                signature):
            return "invalid signature", None, None
        now = self.now()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or now - self.skew >= exp:
            return "token expired or without exp", None, None
        for claim in ("nbf", "iat"):
            v = claims.get(claim)
            if v is not None and (not isinstance(v, (int, float)) or v > now + self.skew):
                return f"{claim} in the future", None, None
        if self.issuer and claims.get("iss") != self.issuer:
            return "unexpected issuer", None, None
        if self.audience:
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if not set(self.audience) & set(a for a in auds if isinstance(a, str)):
                return "unexpected audience", None, None
        user = claims.get(self.principal_claim)
        if not isinstance(user, str) or not user.strip():
            return f"no {self.principal_claim} claim", None, None
        return None, user, float(exp)


# -- the client side (a broker authenticating to another broker) ------------------------------

class MechanismClient:
    """A client's side of one exchange: :meth:`first` is the first token;
    :meth:`evaluate` answers a server challenge (None when nothing more is
    sent); raises :class:`SaslFailure` when the server cannot be trusted."""

    mechanism = ""

    def first(self) -> bytes:
        raise NotImplementedError

    def evaluate(self, challenge: bytes) -> bytes | None:
        raise NotImplementedError


class PlainClient(MechanismClient):
    mechanism = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def first(self) -> bytes:
        return b"\0" + self.username.encode() + b"\0" + self.password.encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        return None


def _encode_saslname(s: str) -> str:
    return s.replace("=", "=3D").replace(",", "=2C")


class ScramClient(MechanismClient):
    """RFC 5802's client: client-first, then the proof; the server's final
    signature is checked, so a server without the credential is not trusted."""

    def __init__(self, mechanism: str, username: str, password: str) -> None:
        self.mechanism = mechanism
        self.hash = sc.MECHANISMS[mechanism][0]
        self.username, self.password = username, password
        self._nonce = secrets.token_urlsafe(24)
        self._bare = f"n={_encode_saslname(username)},r={self._nonce}"
        self._server_signature = b""
        self.stage = 0

    def first(self) -> bytes:
        return ("n,," + self._bare).encode()

    def evaluate(self, challenge: bytes) -> bytes | None:
        text = challenge.decode("utf-8", "replace")
        if self.stage == 0:
            fields = dict(_attrs(text))
            nonce, salt_b64, iters = fields.get("r", ""), fields.get("s", ""), fields.get("i", "")
            if not nonce.startswith(self._nonce) or not iters.isdigit():
                raise SaslFailure("Invalid SCRAM server first message")
            try:
                salt = base64.b64decode(salt_b64, validate=True)
            except (binascii.Error, ValueError):
                raise SaslFailure("Invalid SCRAM server first message: bad salt") from None
            salted = sc.salted_password(self.mechanism, self.password, salt, int(iters))
            client_key = sc.hmac_(self.hash, salted, b"Client Key")
            stored_key = hashlib.new(self.hash, client_key).digest()
            without_proof = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
            auth_message = f"{self._bare},{text},{without_proof}".encode()
            signature = sc.hmac_(self.hash, stored_key, auth_message)
            proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
            server_key = sc.hmac_(self.hash, salted, b"Server Key")
            self._server_signature = sc.hmac_(self.hash, server_key, auth_message)
            self.stage = 1
            return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        if self.stage == 1:
            fields = dict(_attrs(text))
            if "e" in fields:
                raise SaslFailure(f"SCRAM authentication failed: {fields['e']}")
            try:
                got = base64.b64decode(fields.get("v", ""), validate=True)
            except (binascii.Error, ValueError):
                got = b""
            if not hmac.compare_digest(got, self._server_signature):
                raise SaslFailure("SCRAM server signature does not match")
            self.stage = 2
            return None
        raise SaslFailure("Unexpected SCRAM message after completion")
