"""DeleteTopics (key 20), versions 1-6 (Kafka 4.x's range).

Follows Kafka's KRaft controller (ControllerApis.deleteTopics):

- delete.topic.enable=false: every topic gets TOPIC_DELETION_DISABLED
  (INVALID_REQUEST below v3), no message, nothing deleted.
- v0-5 name topics (``topic_names``); v6 ``topics`` entries carry a name or
  a topic id: neither → INVALID_REQUEST "Neither topic name nor id were
  specified."; both → INVALID_REQUEST "You may not specify both topic name
  and topic id.".
- A name or id given twice: one INVALID_REQUEST result, "Duplicate topic
  name." / "Duplicate topic id."; a name resolving to an id also given:
  INVALID_REQUEST "The provided topic name maps to an ID that was already
  supplied.".
- Unknown name: UNKNOWN_TOPIC_OR_PARTITION; unknown id: UNKNOWN_TOPIC_ID
  (with Kafka's default messages in v5+). Names are not validated (an
  illegal name is simply unknown).
- Internal topics (``__consumer_offsets``, ``__transaction_state``) are not
  protected: Kafka 4.x's broker deletes them too (only kafka-topics.sh
  refuses, client-side).
- Results come in Kafka's construction order (errors first, then deletions)
  without Kafka's shuffle; v6 results carry both name and id.
- timeout_ms is ignored: deletion is immediate.
- Cluster mode (zookeeper.connect): only the controller serves it (others:
  NOT_CONTROLLER); it removes the topic's znodes and waits up to
  timeout_ms for the topic to leave its metadata; each broker deletes its
  replicas' logs when its watch sees the topic go.
- ACLs (authorizer.class.name): DELETE on each topic, else
  TOPIC_AUTHORIZATION_FAILED "Authorization failed." (existing or not).
- controller_mutation_rate (KIP-599; security/quotas.py): each topic's
  partitions are taken from the client's token bucket before it is
  deleted. v5+ is strict: while the bucket is below zero a topic gets
  THROTTLING_QUOTA_EXCEEDED "The throttling quota has been exceeded." and
  stays; v1-4 are permissive. throttle_time_ms is the time the bucket needs
  to refill to zero and the connection is muted that long.
"""

from __future__ import annotations

import logging

from ..protocol.codec import Message
from ..protocol import errors
from ..protocol.primitives import ZERO_UUID
from ..security import acl
from . import RequestContext, handler
from .create_topics import THROTTLED_MESSAGE, AdminError, answer_throttle, throttled

log = logging.getLogger("pykbroker.handlers.delete_topics")

UNKNOWN_TOPIC_MESSAGE = "This server does not host this topic-partition."
UNKNOWN_TOPIC_ID_MESSAGE = "This server does not host this topic ID."


def _result(name: str | None, topic_id: bytes, code: int, message: str | None) -> Message:
    return {"name": name, "topic_id": topic_id, "error_code": code, "error_message": message}


def _requested(ctx: RequestContext, req: Message) -> list[tuple[str | None, bytes]]:
    if ctx.api_version >= 6:
        return [(t["name"], t["topic_id"]) for t in req["topics"] or []]
    return [(n, ZERO_UUID) for n in req["topic_names"] or []]


@handler(20, 1, 6)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    requested = _requested(ctx, req)
    if not st.replicas.is_controller():
        # only the controller deletes topics (a lone broker is its own)
        return {"throttle_time_ms": 0,
                "responses": [_result(n if n is not None or v >= 6 else "", tid, errors.NOT_CONTROLLER, None)
                              for n, tid in requested]}
    if not st.config["delete.topic.enable"]:
        code = errors.INVALID_REQUEST if v < 3 else errors.TOPIC_DELETION_DISABLED
        return {"throttle_time_ms": 0,
                "responses": [_result(n if n is not None or v >= 6 else "", tid, code, None)
                              for n, tid in requested]}

    out: list[Message] = []
    names: dict[str, None] = {}  # ordered sets
    dup_names: dict[str, None] = {}
    ids: dict[bytes, None] = {}
    dup_ids: dict[bytes, None] = {}

    def add_name(n: str) -> None:
        if n in dup_names or n in names:
            dup_names[n] = None
            names.pop(n, None)
        else:
            names[n] = None

    for name, tid in requested:
        if name is None:
            if tid == ZERO_UUID:
                out.append(_result(None, ZERO_UUID, errors.INVALID_REQUEST,
                                   "Neither topic name nor id were specified."))
            elif tid in dup_ids or tid in ids:
                dup_ids[tid] = None
                ids.pop(tid, None)
            else:
                ids[tid] = None
        elif tid == ZERO_UUID:
            add_name(name)
        else:
            out.append(_result(name, tid, errors.INVALID_REQUEST,
                               "You may not specify both topic name and topic id."))
    for n in dup_names:
        out.append(_result(n, ZERO_UUID, errors.INVALID_REQUEST, "Duplicate topic name."))
    for tid in dup_ids:
        out.append(_result(None, tid, errors.INVALID_REQUEST, "Duplicate topic id."))

    to_delete: dict[bytes, str] = {}
    for tid in ids:
        ts = st.topics_by_id.get(tid)
        if ts is None:
            out.append(_result(None, tid, errors.UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_ID_MESSAGE))
        elif not ctx.allowed(acl.DELETE, acl.TOPIC, ts.name):
            out.append(_result(None, tid, errors.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."))
        else:
            to_delete[tid] = ts.name
    for n in names:
        ts = st.topics.get(n)
        if not ctx.allowed(acl.DELETE, acl.TOPIC, n):
            out.append(_result(n, ZERO_UUID, errors.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."))
        elif ts is None:
            out.append(_result(n, ZERO_UUID, errors.UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_MESSAGE))
        elif ts.topic_id in dup_ids or ts.topic_id in to_delete:
            to_delete.pop(ts.topic_id, None)
            dup_ids[ts.topic_id] = None
            out.append(_result(n, ts.topic_id, errors.INVALID_REQUEST,
                               "The provided topic name maps to an ID that was already supplied."))
        else:
            to_delete[ts.topic_id] = n

    quota = ctx.mutation_quota(strict_since=5)
    for tid, n in to_delete.items():
        try:
            throttled(quota, len(st.topics[n].partitions) if n in st.topics else 0)
        except AdminError:
            out.append(_result(n, tid, errors.THROTTLING_QUOTA_EXCEEDED, THROTTLED_MESSAGE))
            continue
        try:
            await st.replicas.delete_topic(n, req["timeout_ms"])
        except errors.KafkaError as e:  # NOT_CONTROLLER: resigned meanwhile
            out.append(_result(n, tid, e.code, e.message))
            continue
        except Exception:
            log.exception("deleting topic %s failed", n)
            out.append(_result(n, tid, errors.UNKNOWN_SERVER_ERROR, None))
            continue
        out.append(_result(n, tid, errors.NONE, None))
    return {"throttle_time_ms": answer_throttle(ctx, quota), "responses": out}
