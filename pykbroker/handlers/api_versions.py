"""ApiVersions (key 18), versions 0-4.

- Lists every registered handler's range (generated from the registry).
- v3+: client software name and version must match Kafka's pattern, else
  INVALID_REQUEST (Kafka's check).
- A request above v4 never reaches this handler: the server answers it with
  a v0 body, UNSUPPORTED_VERSION and our ranges (see server.connection).
- v3+: supported/finalized features are left empty (no feature flags yet).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..protocol.codec import Message
from ..protocol import errors
from . import RequestContext, handler

if TYPE_CHECKING:
    from ..server.state import BrokerState

_SOFTWARE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")


@handler(18, 0, 4)
async def handle(ctx: RequestContext, req: Message) -> Message:
    error = errors.NONE
    if ctx.api_version >= 3:
        for v in (req["client_software_name"], req["client_software_version"]):
            if not _SOFTWARE.match(v or ""):
                error = errors.INVALID_REQUEST
        if not error and ctx.auth is not None:  # kept for KIP-714's client matching
            ctx.auth.client_software = (req["client_software_name"], req["client_software_version"])
    return {"error_code": error, "api_keys": ctx.state.api_versions(), "throttle_time_ms": 0}


def unsupported_version_body(ctx_state: BrokerState) -> Message:
    """The v0 reply to an ApiVersions request of a version we do not know."""
    return {"error_code": errors.UNSUPPORTED_VERSION,
            "api_keys": [k for k in ctx_state.api_versions() if k["api_key"] == 18]}
