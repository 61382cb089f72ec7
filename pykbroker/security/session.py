"""The authentication state of one connection, checked before every dispatch.

::

    TLS handshake (SSL, SASL_SSL; in the connection task, with a timeout)
        |
    HANDSHAKE --SaslHandshake v1--> AUTHENTICATE --SaslAuthenticate...--> DONE
        |   \\--SaslHandshake v0--> RAW (size-prefixed bare SASL tokens) --^
        \\-- ApiVersions is answered in any state

On a SASL listener, before DONE only ApiVersions, SaslHandshake and
SaslAuthenticate are served; anything else closes the connection (Kafka).
An unknown mechanism gets UNSUPPORTED_SASL_MECHANISM with the enabled list,
failed authentication SASL_AUTHENTICATION_FAILED with a message, an
out-of-order SASL request ILLEGAL_SASL_STATE; the connection closes after
each of these answers. KIP-368: with ``connections.max.reauth.ms`` the
session (or an OAUTHBEARER token, whichever ends first) expires; a client
re-authenticates with SaslHandshake v1 + SaslAuthenticate on the same
connection (same principal, same mechanism), and a request after expiry
closes the connection.

On PLAINTEXT and SSL listeners SaslHandshake/SaslAuthenticate get
ILLEGAL_SASL_STATE (Kafka's KafkaApis answers) and the connection stays.
The principal (``User:<name>``, ``User:ANONYMOUS`` when none) is kept for
the authorizer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from ..protocol import errors
from .listeners import ListenerSecurity
from .sasl import MechanismServer, SaslFailure

log = logging.getLogger("pykbroker.security")

ANONYMOUS = "User:ANONYMOUS"
SASL_APIS = (17, 18, 36)  # SaslHandshake, ApiVersions, SaslAuthenticate

HANDSHAKE, AUTHENTICATE, RAW, DONE = "HANDSHAKE", "AUTHENTICATE", "RAW", "DONE"


class AuthClose(Exception):
    """The connection must close now (Kafka closes it in these cases)."""


class ConnectionAuth:
    def __init__(self, ls: ListenerSecurity | None, principal: str = ANONYMOUS,
                 clock: Any = time.monotonic, wall: Any = time.time) -> None:
        self.ls = ls
        self.listener = ls.name if ls is not None else "PLAINTEXT"
        self.principal = principal
        self.clock = clock
        self.wall = wall
        self.sasl = ls is not None and ls.sasl
        self.stage = HANDSHAKE if self.sasl else DONE
        self.mechanism: str | None = None
        self.server: MechanismServer | None = None
        self.close_after_response = False
        self.reauthenticating = False
        self.expires_at: float | None = None  # clock() time the session ends
        # (name, version) from ApiVersions v3+ (client telemetry matches on them)
        self.client_software: tuple[str, str] | None = None
        self.mute_until = 0.0  # quotas: trio time until which no request is read (Kafka mutes the channel)

    @property
    def authenticated(self) -> bool:
        return self.stage == DONE

    def check(self, api_key: int) -> None:
        """Before dispatching a request: raise AuthClose if it may not run now."""
        if not self.sasl:
            return
        if self.stage == DONE:
            if self.expires_at is not None and self.clock() >= self.expires_at and api_key not in SASL_APIS:
                raise AuthClose(f"session of {self.principal} expired (connections.max.reauth.ms)")
            return
        if self.stage == HANDSHAKE and api_key in (17, 18):
            return
        if self.stage == AUTHENTICATE and api_key in (18, 36):
            return
        raise AuthClose(f"unexpected request with API key {api_key} during SASL authentication")

    # -- SaslHandshake ---------------------------------------------------------------------
    def handshake(self, version: int, mechanism: str) -> dict[str, Any]:
        ls = self.ls
        if not self.sasl or ls is None:
            return {"error_code": errors.ILLEGAL_SASL_STATE, "mechanisms": []}
        if self.stage == DONE and version >= 1:
            if mechanism != self.mechanism:
                self.close_after_response = True
                return {"error_code": errors.ILLEGAL_SASL_STATE, "mechanisms": ls.mechanisms}
            self.reauthenticating = True
        elif self.stage != HANDSHAKE:
            self.close_after_response = True
            return {"error_code": errors.ILLEGAL_SASL_STATE, "mechanisms": ls.mechanisms}
        if mechanism not in ls.mechanisms:
            self.close_after_response = True
            return {"error_code": errors.UNSUPPORTED_SASL_MECHANISM, "mechanisms": ls.mechanisms}
        self.mechanism = mechanism
        self.server = ls.mechanism_server(mechanism)
        self.stage = RAW if version == 0 else AUTHENTICATE
        return {"error_code": errors.NONE, "mechanisms": ls.mechanisms}

    # -- SaslAuthenticate --------------------------------------------------------------------
    def authenticate(self, version: int, token: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {"error_code": errors.NONE, "error_message": None, "auth_bytes": b"",
                               "session_lifetime_ms": 0}
        if not self.sasl:
            out.update(error_code=errors.ILLEGAL_SASL_STATE,
                       error_message="SaslAuthenticate request received after successful authentication")
            return out
        if self.stage != AUTHENTICATE:
            self.close_after_response = True
            out.update(error_code=errors.ILLEGAL_SASL_STATE,
                       error_message=f"Unexpected SaslAuthenticate request with {self.stage} state")
            return out
        try:
            out["auth_bytes"] = self._evaluate(token)
        except SaslFailure as e:
            self.close_after_response = True
            out.update(error_code=errors.SASL_AUTHENTICATION_FAILED, error_message=self._failure_text(e))
            return out
        if self.stage == DONE:
            out["session_lifetime_ms"] = self._lifetime_ms
        return out

    def raw_token(self, token: bytes) -> bytes:
        """SaslHandshake v0 framing: a bare token in, a bare token out; raises AuthClose on failure."""
        try:
            return self._evaluate(token)
        except SaslFailure as e:
            raise AuthClose(self._failure_text(e)) from None

    @property
    def raw(self) -> bool:
        return self.stage == RAW

    def _failure_text(self, e: SaslFailure) -> str:
        what = "re-authentication" if self.reauthenticating else "authentication"
        if e.public:
            return e.message
        return f"Authentication failed during {what} due to invalid credentials with SASL mechanism {self.mechanism}"

    def _evaluate(self, token: bytes) -> bytes:
        assert self.server is not None and self.ls is not None
        challenge = self.server.evaluate(token)
        if self.server.complete:
            principal = f"User:{self.server.username}"
            if self.reauthenticating and principal != self.principal:
                raise SaslFailure(f"Cannot change principals during re-authentication from {self.principal}: "
                                  f"{principal}")
            self.principal = principal
            self.stage = DONE
            self.reauthenticating = False
            lifetime = 0
            if self.ls.reauth_ms > 0:
                lifetime = self.ls.reauth_ms
                if self.server.expires_at is not None:
                    lifetime = min(lifetime, max(int((self.server.expires_at - self.wall()) * 1000), 1))
            self._lifetime_ms = lifetime
            self.expires_at = self.clock() + lifetime / 1000 if lifetime else None
            log.debug("authenticated %s with %s on %s", principal, self.mechanism, self.listener)
        return challenge


async def linger(stream: Any, seconds: float = 1.0) -> None:
    """After a failed authentication's answer: let the client read it and close
    first (up to ``seconds``), so our close cannot turn into a reset that
    discards the answer in the client's receive buffer."""
    with trio.move_on_after(seconds):
        try:
            while await stream.receive_some(4096):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


async def open_stream(ls: ListenerSecurity | None, stream: trio.SocketStream, peer: str) \
        -> tuple[Any, ConnectionAuth] | None:
    """TLS handshake (inside the connection's own task, bounded by
    ``pykbroker.ssl.handshake.timeout.ms``) and the principal of a client
    certificate; None when the connection must close."""
    if ls is None or ls.ssl_context is None:
        return stream, ConnectionAuth(ls)
    tls = trio.SSLStream(stream, ls.ssl_context, server_side=True)
    with trio.move_on_after(ls.handshake_timeout_s) as scope:
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.info("TLS handshake with %s on %s failed: %s", peer, ls.name, e.__cause__ or e)
            await trio.aclose_forcefully(stream)
            return None
    if scope.cancelled_caught:
        log.info("TLS handshake with %s on %s timed out", peer, ls.name)
        await trio.aclose_forcefully(stream)
        return None
    principal = ANONYMOUS
    cert = tls.getpeercert()
    if cert and not ls.sasl and ls.principal_mapper is not None:
        from .tls import subject_dn

        try:
            principal = "User:" + ls.principal_mapper.name(subject_dn(cert))
        except ValueError as e:
            log.info("closing TLS connection from %s: %s", peer, e)
            await trio.aclose_forcefully(tls)
            return None
    return tls, ConnectionAuth(ls, principal)
