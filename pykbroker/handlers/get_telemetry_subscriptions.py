"""GetTelemetrySubscriptions (key 71), version 0 (KIP-714).

- A zero ClientInstanceId gets a new one; the answer carries the client's
  subscription: SubscriptionId, the requested metric prefixes (``[""]`` =
  all, ``[]`` = none: the client pushes nothing), the push interval (the
  lowest of the matching client-metrics subscriptions, else 300000 ms),
  accepted compression types (zstd, lz4, gzip, snappy),
  ``telemetry.max.bytes`` and delta temporality.
- Asked again within the push interval: THROTTLING_QUOTA_EXCEEDED (unless
  its last push failed with UNKNOWN_SUBSCRIPTION_ID or
  UNSUPPORTED_COMPRESSION_TYPE, or the subscriptions changed meanwhile).
- Matching and state: pykbroker/telemetry/manager.py.
- Advertised (with PushTelemetry) only when ``pykbroker.client.telemetry.enable``
  is true, as Kafka advertises them only with a ClientTelemetry reporter.
"""

from __future__ import annotations

from ..protocol.codec import Message
from . import RequestContext, handler


def client_of(ctx: RequestContext) -> dict[str, str]:
    """The KIP-714 selectors this connection offers (ApiVersions' software name/version)."""
    host, _, port = ctx.peer.rpartition(":")
    software = ctx.auth.client_software if ctx.auth is not None else None
    return {"client_id": ctx.client_id or "", "client_software_name": software[0] if software else "",
            "client_software_version": software[1] if software else "",
            "client_source_address": host.strip("[]"), "client_source_port": port}


@handler(71, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    return ctx.state.telemetry.get_subscriptions(req["client_instance_id"], client_of(ctx))
