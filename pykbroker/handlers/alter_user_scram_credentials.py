"""AlterUserScramCredentials (key 51), version 0.

- Upsertions carry the client-computed SaltedPassword (PBKDF2) and salt; the
  broker keeps only StoredKey/ServerKey/salt/iterations (never a password).
- One result per user, in request order; a user with any invalid alteration
  gets that error and none of its alterations are applied (Kafka):
  empty name UNACCEPTABLE_CREDENTIAL; unknown mechanism
  UNSUPPORTED_SASL_MECHANISM; iterations outside 4096-16384 or an empty salt
  or salted password UNACCEPTABLE_CREDENTIAL; the same user and mechanism
  twice DUPLICATE_RESOURCE; deleting what does not exist RESOURCE_NOT_FOUND.
- Takes effect for the next authentication; the store file is replaced
  atomically (pykbroker/security/scram.py); in cluster mode they are
  written to ZooKeeper (``/config/users/<user>``, Kafka's format) and every
  broker picks them up by its watch (pykbroker/cluster/scram_credentials.py).
- ACLs (authorizer.class.name): ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for every user.
"""

from __future__ import annotations

from collections import Counter

from ..protocol import errors
from ..security import acl, scram
from ..protocol.codec import Message
from . import RequestContext, handler


def _check(alt: Message, deletion: bool, store: scram.CredentialStore) -> tuple[int, str] | None:
    if not alt["name"]:
        return errors.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    mech = scram.BY_TYPE.get(alt["mechanism"])
    if mech is None:
        return errors.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if deletion:
        if store.get(alt["name"], mech) is None:
            return errors.RESOURCE_NOT_FOUND, "Attempt to delete a user credential that does not exist"
        return None
    if alt["iterations"] < scram.MIN_ITERATIONS:
        return errors.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if alt["iterations"] > scram.MAX_ITERATIONS:
        return errors.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    if not alt["salt"] or not alt["salted_password"]:
        return errors.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty"
    return None


@handler(51, 0, 0)
async def handle(ctx: RequestContext, req: Message) -> Message:
    store: scram.CredentialStore = ctx.state.security.scram
    if not ctx.allowed(acl.ALTER, acl.CLUSTER):
        names = list(dict.fromkeys(a["name"] for a in [*req["deletions"], *req["upsertions"]]))
        return {"throttle_time_ms": 0, "results": [
            {"user": n, "error_code": errors.CLUSTER_AUTHORIZATION_FAILED,
             "error_message": "Cluster authorization failed."} for n in names]}
    alts = [(a, True) for a in req["deletions"]] + [(a, False) for a in req["upsertions"]]
    pairs = Counter((a["name"], a["mechanism"]) for a, _ in alts)
    failed: dict[str, tuple[int, str]] = {}
    order: list[str] = []
    for a, deletion in alts:
        if a["name"] not in order:
            order.append(a["name"])
        if a["name"] in failed:
            continue
        if pairs[(a["name"], a["mechanism"])] > 1:
            failed[a["name"]] = (errors.DUPLICATE_RESOURCE,
                                 "A user credential cannot be altered twice in the same request")
            continue
        err = _check(a, deletion, store)
        if err is not None:
            failed[a["name"]] = err
    changed: set[str] = set()
    for a, deletion in alts:
        if a["name"] in failed:
            continue
        mech = scram.BY_TYPE[a["mechanism"]]
        if deletion:
            store.delete(a["name"], mech)
        else:
            store.put(a["name"], mech, scram.ScramCredential.from_salted_password(
                mech, bytes(a["salted_password"]), bytes(a["salt"]), a["iterations"]))
        changed.add(a["name"])
    # the broker's file, or in a cluster /config/users/<user>, seen by every broker
    await ctx.state.security.credential_sink.save(changed)
    results = []
    for name in order:
        code, msg = failed.get(name, (errors.NONE, None))
        results.append({"user": name, "error_code": code, "error_message": msg})
    return {"throttle_time_ms": 0, "results": results}
