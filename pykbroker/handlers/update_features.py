"""UpdateFeatures (key 57), versions 0-2 (Kafka 4.x's range; all flexible).

- Changes the finalized levels of the features ApiVersions v3+ lists
  (``transaction.version`` 0-2, ``group.version`` 0-1, ``share.version``
  0-1; ``protocol/features.py``) with Kafka 4.x's controller checks and
  messages (FeatureControlManager), cluster-wide: every broker's
  ApiVersions then lists them, with a grown finalized epoch.
- Needs ALTER on the cluster, else top-level CLUSTER_AUTHORIZATION_FAILED
  and no results.
- Upgrade type per update: v0 ``allow_downgrade`` true is SAFE_DOWNGRADE,
  false UPGRADE (Kafka's UpdateFeaturesRequest); v1+ ``upgrade_type`` 1
  UPGRADE, 2 SAFE_DOWNGRADE, 3 UNSAFE_DOWNGRADE (the same as safe for these
  features).
- Each update is checked against the current finalized level (0 when not
  finalized), in request order; the first failure fails the whole request
  (nothing changes) with top-level INVALID_UPDATE_VERSION and "The update
  failed for all features since the following feature had an error:
  Invalid update version <v> for feature <f>. <reason>", reasons as Kafka's:
  another upgrade type: "The controller does not support the given upgrade
  type."; below 0: "A feature version cannot be less than 0."; an unknown
  feature above 0: "Local controller <id> does not support this
  feature."; above what this broker serves: "Local controller <id> only
  supports versions 0-<max>" (the max is what the advertised API versions
  serve, so ``--as-version`` lowers it); below the current level with
  UPGRADE: "Can't downgrade the version of this feature without setting the
  upgrade type to either safe or unsafe downgrade."; above it with a
  downgrade type: "Can't downgrade to a newer version.".
- Level 0 (with a downgrade type) removes the finalized feature: ApiVersions
  no longer lists it (``transaction.version`` 0: 4.x producers use
  AddPartitionsToTxn and EndTxn below v5 again; ``group.version`` 0 turns
  the consumer protocol off: ConsumerGroupHeartbeat and
  ConsumerGroupDescribe answer UNSUPPORTED_VERSION, as Kafka 4.x;
  ``share.version`` 0 turns share groups off: the seven share-group APIs
  answer UNSUPPORTED_VERSION, their state kept for level 1). Asking for the current level
  is a no-op. An unknown feature at level 0 is accepted and changes nothing.
- ``validate_only`` (v1+): everything checked, nothing changed.
- Success: top-level NONE (message null); v0-1 list each update with NONE
  and the message "NONE" (Kafka's ``Errors.NONE.message()``); v2 lists no
  results.
- The levels are kept cluster-wide (``Replicas.update_features``): a lone
  broker in its topics metadata file (``__pykbroker_topics.json``, key
  ``finalized_features``), a cluster in ZooKeeper's ``/feature`` znode as
  Kafka's ZooKeeper mode (cluster/features.py), written by whichever broker
  was asked (Kafka 4.x brokers forward to the controller) and watched by
  every broker. Before answering, this broker's ApiVersions lists the new
  levels and its finalized epoch has grown. A failed write (or a concurrent
  change through another broker) answers top-level FEATURE_UPDATE_FAILED
  with the reason. ``timeoutMs`` is not used: the write is done before the
  answer.
"""

from __future__ import annotations

from ..protocol import errors, features
from ..protocol.codec import Message
from ..security import acl
from . import RequestContext, handler

UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3

ALL_FAILED = "The update failed for all features since the following feature had an error: "


def _response(v: int, code: int, message: str | None, names: list[str]) -> Message:
    out: Message = {"throttle_time_ms": 0, "error_code": code, "error_message": message}
    if v <= 1:
        out["results"] = [{"feature": n, "error_code": errors.NONE, "error_message": "NONE"} for n in names]
    return out


def _reason(name: str, level: int, upgrade_type: int, current: int, servable: int | None, node_id: int) -> str | None:
    """Why Kafka's controller refuses this update, or None."""
    if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
        return "The controller does not support the given upgrade type."
    if level < 0:
        return "A feature version cannot be less than 0."
    top = servable if servable is not None else 0  # an unknown feature: supported at 0 only
    if level > top:
        if top == 0:
            return f"Local controller {node_id} does not support this feature."
        return f"Local controller {node_id} only supports versions 0-{top}"
    if level < current and upgrade_type == UPGRADE:
        return ("Can't downgrade the version of this feature without setting the upgrade type to "
                "either safe or unsafe downgrade.")
    if level > current and upgrade_type != UPGRADE:
        return "Can't downgrade to a newer version."
    return None


@handler(57, 0, 2)
async def handle(ctx: RequestContext, req: Message) -> Message:
    st = ctx.state
    v = ctx.api_version
    if not ctx.allowed(acl.ALTER, acl.CLUSTER):
        return _response(v, errors.CLUSTER_AUTHORIZATION_FAILED, None, [])
    api_keys = st.api_versions()
    servable = features.servable_levels(api_keys)
    current = features.finalized_levels(api_keys, st.replicas.finalized_features())
    target = dict(current)
    names = []
    for u in req["feature_updates"]:
        name, level = u["feature"], u["max_version_level"]
        if v == 0:
            upgrade_type = SAFE_DOWNGRADE if u["allow_downgrade"] else UPGRADE
        else:
            upgrade_type = u["upgrade_type"]
        reason = _reason(name, level, upgrade_type, current.get(name, 0), servable.get(name), st.node_id)
        if reason is not None:
            return _response(v, errors.INVALID_UPDATE_VERSION,
                             f"{ALL_FAILED}Invalid update version {level} for feature {name}. {reason}", [])
        if name in target:
            target[name] = level
        names.append(name)
    if v >= 1 and req["validate_only"]:
        return _response(v, errors.NONE, None, names)
    if target != current:
        try:
            await st.replicas.update_features({k: lv for k, lv in target.items() if lv > 0})
        except errors.KafkaError as e:
            return _response(v, errors.FEATURE_UPDATE_FAILED, e.message, [])
    return _response(v, errors.NONE, None, names)
