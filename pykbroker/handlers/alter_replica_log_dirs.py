"""AlterReplicaLogDirs (key 34), versions 1-2 (Kafka 4.x's range).

- Moves this broker's replica of each named partition into the named log
  directory while it keeps serving, as Kafka's
  ReplicaManager.alterReplicaLogDirs: a future log
  ``<topic>-<p>.<uuid>-future`` is created there and filled in the
  background (``server/log_dirs.py``), then swapped in atomically
  (DescribeLogDirs shows it with is_future_key true meanwhile). The answer
  comes at once; the move is done when DescribeLogDirs shows the partition
  in its new directory (not future).
- Per partition: NONE when the move started, is under way to that
  directory, or the replica is there already (a move elsewhere is
  abandoned: its future log deleted); LOG_DIR_NOT_FOUND when the path is
  not the absolute path of one of ``log.dirs``; KAFKA_STORAGE_ERROR when
  that directory or the partition's own is offline;
  REPLICA_NOT_AVAILABLE when the partition exists but this broker has no
  replica of it (the directory is remembered: a replica created here
  later goes there, as Kafka's preferred log dir);
  UNKNOWN_TOPIC_OR_PARTITION when it does not exist; INVALID_TOPIC_EXCEPTION
  when the future directory's name would be longer than 255 bytes.
- Needs ALTER on the cluster: otherwise every partition gets
  CLUSTER_AUTHORIZATION_FAILED and nothing moves.
- A partition named under several paths gets one answer, for the last
  (Kafka builds a map). v2: flexible. Results are grouped by topic in
  request order.
"""

from __future__ import annotations

import logging

from ..protocol import errors
from ..protocol.codec import Message
from ..storage.api import LogOfflineError
from ..storage.loader import future_dir_name
from ..storage.manager import LogDirNotFoundError, ReplicaNotAvailableError
from ..security import acl
from . import RequestContext, handler

log = logging.getLogger("pykbroker.handlers")

MAX_DIR_NAME = 255


def _alter(ctx: RequestContext, topic: str, partition: int, path: str) -> int:
    st = ctx.state
    logs = st.logs
    if logs is None:
        return errors.KAFKA_STORAGE_ERROR
    if len(future_dir_name(topic, partition, "0" * 32).encode()) > MAX_DIR_NAME:
        return errors.INVALID_TOPIC_EXCEPTION
    try:
        fut = logs.alter_log_dir(topic, partition, path)
    except LogDirNotFoundError:
        return errors.LOG_DIR_NOT_FOUND
    except LogOfflineError as e:
        log.warning("Unable to alter log dirs for %s-%d: %s", topic, partition, e)
        return errors.KAFKA_STORAGE_ERROR
    except ReplicaNotAvailableError:
        if st.topics.partition(topic, partition) is None:
            return errors.UNKNOWN_TOPIC_OR_PARTITION
        return errors.REPLICA_NOT_AVAILABLE
    if fut is not None:
        st.log_tasks.mover.kick()
    return errors.NONE


@handler(34, 1, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    # one destination per partition: the last one named wins (Kafka builds a map)
    dest: dict[tuple[str, int], str] = {}
    for d in req["dirs"]:
        for t in d["topics"]:
            for p in t["partitions"]:
                dest[(t["name"], p)] = d["path"]
    allowed = ctx.allowed(acl.ALTER, acl.CLUSTER)
    by_topic: dict[str, list[Message]] = {}
    for (topic, p), path in dest.items():
        code = _alter(ctx, topic, p, path) if allowed else errors.CLUSTER_AUTHORIZATION_FAILED
        by_topic.setdefault(topic, []).append({"partition_index": p, "error_code": code})
    return {"throttle_time_ms": 0,
            "results": [{"topic_name": t, "partitions": ps} for t, ps in by_topic.items()]}
