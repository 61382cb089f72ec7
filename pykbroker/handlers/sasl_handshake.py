"""SaslHandshake (key 17), versions 0-1.

- On a SASL listener before authentication: picks the mechanism for this
  connection and lists the enabled ones (``sasl.enabled.mechanisms``); an
  unknown one gets UNSUPPORTED_SASL_MECHANISM and the connection closes.
- v0: the SASL tokens that follow are bare size-prefixed frames (no Kafka
  header); v1: they travel in SaslAuthenticate requests.
- v1 after authentication starts a KIP-368 re-authentication (same mechanism).
- Anywhere else (PLAINTEXT/SSL listeners, out of order): ILLEGAL_SASL_STATE.
The state machine is pykbroker/security/session.py.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from . import RequestContext, handler


@handler(17, 0, 1)
async def handle(ctx: RequestContext, req: Message) -> Message:
    if ctx.auth is None:
        return {"error_code": errors.ILLEGAL_SASL_STATE, "mechanisms": []}
    return ctx.auth.handshake(ctx.api_version, req["mechanism"])
