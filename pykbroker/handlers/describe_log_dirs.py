"""DescribeLogDirs (key 35), versions 1-5 (Kafka 4.3's range).

- Answers for this broker's own log directories (``log.dirs``), each under
  its absolute path, as Kafka's ReplicaManager.describeLogDirs; an admin
  client sends it to every broker it wants to know about, so it works the
  same alone and in a cluster.
- An online directory: error NONE, its topics and partitions (only those
  asked for; ``topics`` null = all), each with the log's size in bytes,
  offset_lag and is_future_key. A current log's offset_lag is
  max(high watermark - log end offset, 0); a future log's (one being filled
  by AlterReplicaLogDirs, is_future_key true) is the current log's end
  minus its own. Topics with no partition left are left out.
- A failed directory: KAFKA_STORAGE_ERROR with no topics (total and usable
  bytes -1). Each directory is checked as it is described (gone, or no
  longer a directory: it goes offline here).
- Needs DESCRIBE on the cluster: otherwise no directories, and v3+
  top-level CLUSTER_AUTHORIZATION_FAILED.
- v3+: top-level error_code. v4+: total_bytes and
  usable_bytes of the directory's volume (statvfs: blocks and blocks
  available to unprivileged users). v5: is_cordoned, always false (we have
  no cordoning). The in-memory engine reports its notional directories
  (``log.dirs``, never created), with -1 bytes when the path does not exist.
"""

from __future__ import annotations

from ..protocol import errors
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler


@handler(35, 1, 5)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    if not ctx.allowed(acl.DESCRIBE, acl.CLUSTER):
        # v3+ says so at the top; older versions just get no directories (as Kafka)
        return {"throttle_time_ms": 0, "error_code": errors.CLUSTER_AUTHORIZATION_FAILED, "results": []}
    logs = st.logs
    requested = req["topics"]
    wanted = None if requested is None else {(t["topic"], p) for t in requested for p in t["partitions"]}
    results: list[Message] = []
    for info in (logs.describe_log_dirs() if logs is not None else []):
        if info.error is not None:
            results.append({"error_code": errors.KAFKA_STORAGE_ERROR, "log_dir": info.path, "topics": [],
                            "total_bytes": -1, "usable_bytes": -1, "is_cordoned": False})
            continue
        by_topic: dict[str, list[Message]] = {}
        for r in info.replicas:
            if wanted is not None and (r.topic, r.partition) not in wanted:
                continue
            cur = logs.get(r.topic, r.partition) if logs is not None else None
            if cur is None:
                lag = -1
            elif r.is_future:
                lag = cur.log_end_offset - r.log_end_offset
            else:
                lag = max(cur.high_watermark - r.log_end_offset, 0)
            by_topic.setdefault(r.topic, []).append({
                "partition_index": r.partition, "partition_size": r.size,
                "offset_lag": lag, "is_future_key": r.is_future})
        results.append({"error_code": errors.NONE, "log_dir": info.path,
                        "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()],
                        "total_bytes": info.total_bytes, "usable_bytes": info.usable_bytes,
                        "is_cordoned": False})
    return {"throttle_time_ms": 0, "error_code": errors.NONE, "results": results}
