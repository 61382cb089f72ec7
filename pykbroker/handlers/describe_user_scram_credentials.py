"""DescribeUserScramCredentials (key 50), version 0.

- ``users`` null or empty: every user with a SCRAM credential; otherwise the
  named ones, in request order.
- Per user: the mechanisms (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512) and their
  iteration counts; never salts or keys.
- A user named twice: DUPLICATE_RESOURCE for it; unknown: RESOURCE_NOT_FOUND
  (Kafka's messages).
- Credentials: pykbroker/security/scram.py (a file in the log directory;
  ZooKeeper's /config/users in cluster mode).
- ACLs (authorizer.class.name): DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from collections import Counter

from ..protocol import errors
from ..security import acl, scram
from ..protocol.codec import Message
from . import RequestContext, handler


@handler(50, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    store = ctx.state.security.scram
    if not ctx.allowed(acl.DESCRIBE, acl.CLUSTER):
        return {"throttle_time_ms": 0, "error_code": errors.CLUSTER_AUTHORIZATION_FAILED,
                "error_message": "Cluster authorization failed.", "results": []}
    wanted = [u["name"] for u in req["users"] or []]
    names = wanted or sorted(store.users)
    counts = Counter(wanted)
    results, seen = [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        res = {"user": name, "error_code": errors.NONE, "error_message": None, "credential_infos": []}
        if counts[name] > 1:
            res.update(error_code=errors.DUPLICATE_RESOURCE,
                       error_message="Cannot describe SCRAM credentials for the same user twice in a single request")
        elif name not in store.users:
            res.update(error_code=errors.RESOURCE_NOT_FOUND,
                       error_message="Attempt to describe a user credential that does not exist")
        else:
            res["credential_infos"] = [{"mechanism": scram.MECHANISMS[m][1], "iterations": c.iterations}
                                       for m, c in sorted(store.users[name].items())]
        results.append(res)
    return {"throttle_time_ms": 0, "error_code": errors.NONE, "error_message": None, "results": results}
