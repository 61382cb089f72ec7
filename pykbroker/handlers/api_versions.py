"""ApiVersions (key 18), versions 0-4.

- Lists every registered handler's range (generated from the registry).
- v3+: client software name and version must match Kafka's pattern, else
  INVALID_REQUEST (Kafka's check).
- A request above v4 never reaches this handler: the server answers it with
  a v0 body, UNSUPPORTED_VERSION and our ranges (see server.connection).
- v3+: features (KIP-584), as a Kafka 4.x broker lists them, each finalized
  at the level the advertised API versions serve (derived, so release
  emulation narrows them too; level 0 is not listed as finalized):
  ``transaction.version`` 0-2, finalized 2 when EndTxn v5, Produce v12 and
  TxnOffsetCommit v5 are advertised (KIP-890 part 2: Java 4.x producers then
  skip AddPartitionsToTxn/AddOffsetsToTxn and take the bumped epoch from
  EndTxn), else 0; ``group.version`` 0-1, finalized 1 with
  ConsumerGroupHeartbeat (KIP-848); ``share.version`` 0-1, finalized 1 with
  ShareGroupHeartbeat (KIP-932) (``protocol/features.py``). UpdateFeatures
  (``update_features.py``) changes the finalized levels cluster-wide; a
  stored level is still capped at what the advertised versions serve. The
  finalized epoch grows whenever the advertised versions or the finalized
  levels change (``Replicas.finalized_features_epoch``): a lone broker's own
  counter; in a cluster the ``/feature`` znode's version (-1 before it
  exists), as Kafka's ZooKeeper mode, so every broker reports the same
  epoch for the same levels. Admin clients'
  DescribeFeatures is this request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..protocol.codec import Message
from ..protocol import errors, features
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
    api_keys = ctx.state.api_versions()
    body: Message = {"error_code": error, "api_keys": api_keys, "throttle_time_ms": 0}
    if ctx.api_version >= 3:
        body["supported_features"] = features.supported()
        body["finalized_features"] = features.finalized(api_keys, ctx.state.replicas.finalized_features())
        body["finalized_features_epoch"] = ctx.state.replicas.finalized_features_epoch()
    return body


def unsupported_version_body(ctx_state: BrokerState) -> Message:
    """The v0 reply to an ApiVersions request of a version we do not know."""
    return {"error_code": errors.UNSUPPORTED_VERSION,
            "api_keys": [k for k in ctx_state.api_versions() if k["api_key"] == 18]}
