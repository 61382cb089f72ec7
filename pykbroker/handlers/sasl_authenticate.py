"""SaslAuthenticate (key 36), versions 0-2.

- Carries one SASL token each way for the mechanism chosen by SaslHandshake v1
  (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER; pykbroker/security/sasl.py).
- Failed authentication: SASL_AUTHENTICATION_FAILED with Kafka's message,
  then the connection closes; out of order: ILLEGAL_SASL_STATE, then closes.
- On PLAINTEXT/SSL listeners: ILLEGAL_SASL_STATE, the connection stays.
- v1+: ``session_lifetime_ms`` (KIP-368, ``connections.max.reauth.ms``; 0 = none).
- v2: flexible encoding.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from . import RequestContext, handler


@handler(36, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    if ctx.auth is None:
        return {"error_code": errors.ILLEGAL_SASL_STATE, "error_message": "SASL is not enabled on this listener",
                "auth_bytes": b"", "session_lifetime_ms": 0}
    return ctx.auth.authenticate(ctx.api_version, bytes(req["auth_bytes"]))
