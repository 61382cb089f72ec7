"""PushTelemetry (key 72), version 0 (KIP-714).

- The metrics (OTLP ``MetricsData`` protobuf, compressed with the given
  codec) of a client instance subscribed through GetTelemetrySubscriptions
  are decoded and kept (the latest value of each series; monotonic sums
  sent as deltas are added up) for ``/metrics``
  (``pykbroker_client_metric{client_instance_id, client_id, name, ...}``).
- Errors as Kafka's ClientMetricsManager: zero instance id or a push after
  a terminating one: INVALID_REQUEST; within the push interval (and not
  right after GetTelemetrySubscriptions): THROTTLING_QUOTA_EXCEEDED, unless
  terminating; stale subscription id: UNKNOWN_SUBSCRIPTION_ID; unknown
  codec: UNSUPPORTED_COMPRESSION_TYPE; larger than ``telemetry.max.bytes``
  (or decompressing to more than 16 times that): TELEMETRY_TOO_LARGE;
  undecodable: INVALID_RECORD (the client then stops pushing).
"""

from __future__ import annotations

from ..protocol.codec import Message
from . import RequestContext, handler
from .get_telemetry_subscriptions import client_of


@handler(72, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    code, _ = ctx.state.telemetry.push(req["client_instance_id"], req["subscription_id"], bool(req["terminating"]),
                                       req["compression_type"], req["metrics"], client_of(ctx))
    return {"throttle_time_ms": 0, "error_code": code}
