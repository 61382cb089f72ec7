"""Produce (key 0), versions 3-13 served, 0-13 advertised.

- Advertised from v0 as Kafka 4.x does (KAFKA-18659: older librdkafka stops
  compressing unless v0 is in range); v0-2 requests close the connection.
- Record batches stay bytes: header and CRC-32C validated, offsets assigned
  by patching the header, appended as received. Legacy message sets (magic
  0/1) are rejected with INVALID_RECORD, as Kafka 4.x does (Produce v3+
  carries only magic-2 batches); nothing is converted.
- acks 0 (no response), 1 and -1/all (all goes through the same path that
  replication will extend: with one replica the ISR is this broker); any
  other value: INVALID_REQUIRED_ACKS for every partition.
- Per-partition errors: UNKNOWN_TOPIC_OR_PARTITION (or UNKNOWN_TOPIC_ID, v13),
  MESSAGE_TOO_LARGE, CORRUPT_MESSAGE, INVALID_RECORD, ...; an unknown topic is
  auto-created when auto.create.topics.enable is on.
- v8+: error_message per partition. v13: topics by id.
"""

from __future__ import annotations

import time

from ..protocol import errors
from ..protocol.records import InvalidRecords
from . import CloseConnection, RequestContext, handler


def _part(index: int, code: int, base_offset: int = -1, append_time: int = -1,
          log_start: int = -1, message: str | None = None) -> dict:
    return {"index": index, "error_code": code, "base_offset": base_offset,
            "log_append_time_ms": append_time, "log_start_offset": log_start,
            "record_errors": [], "error_message": message}


@handler(0, 3, 13, advertised_min=0)
async def handle(ctx: RequestContext, req: dict) -> dict | None:
    st = ctx.state
    v = ctx.api_version
    acks = req["acks"]
    now = int(time.time() * 1000)
    responses = []
    for t in req["topic_data"]:
        if v >= 13:
            ts = st.topics_by_id.get(t["topic_id"])
            missing = errors.UNKNOWN_TOPIC_ID
        else:
            ts = st.topics.get(t["name"]) or st.maybe_auto_create(t["name"])
            missing = errors.UNKNOWN_TOPIC_OR_PARTITION
        parts = []
        for pd in t["partition_data"]:
            idx = pd["index"]
            if acks not in (0, 1, -1):
                parts.append(_part(idx, errors.INVALID_REQUIRED_ACKS))
                continue
            if ts is None or not 0 <= idx < len(ts.partitions):
                parts.append(_part(idx, missing if ts is None else errors.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            p = ts.partitions[idx]
            data = pd["records"]
            try:
                if not data:
                    raise InvalidRecords(errors.INVALID_RECORD, "produce request with no records")
                headers = p.log.validate(data, now_ms=now)
                if v < 7 and any(h.compression == 4 for h in headers):
                    raise InvalidRecords(errors.UNSUPPORTED_COMPRESSION_TYPE,
                                         "zstd compression needs Produce v7 or later")
                res = await st.append(p, bytearray(data), headers, acks=acks, now=now)
            except InvalidRecords as e:
                parts.append(_part(idx, e.error_code, message=str(e)))
                continue
            except errors.KafkaError as e:
                parts.append(_part(idx, e.code, message=e.message))
                continue
            parts.append(_part(idx, errors.NONE, res.base_offset, res.log_append_time,
                               p.log_start_offset))
        responses.append({"name": t["name"], "topic_id": t["topic_id"], "partition_responses": parts})
    if acks == 0:
        # Kafka closes the connection of an acks=0 producer whose request
        # failed, the only way such a producer learns of the error.
        if any(pr["error_code"] for r in responses for pr in r["partition_responses"]):
            raise CloseConnection("acks=0 produce failed")
        return None
    return {"responses": responses, "throttle_time_ms": 0}
