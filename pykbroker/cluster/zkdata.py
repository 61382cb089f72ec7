"""ZooKeeper paths and znode contents, in Kafka's ZooKeeper-era layout.

Every znode pykbroker writes has the JSON Kafka 2.x/3.x writes there, so a
ZooKeeper browser (or ``zkCli.sh``) shows a familiar tree::

    /cluster/id                                   {"version":"1","id":"<22-char id>"}
    /controller          (ephemeral)              {"version":2,"brokerid":1,"timestamp":"...","kraftControllerEpoch":-1}
    /controller_epoch                             "3"
    /brokers/ids/<id>    (ephemeral)              {"version":5,"host":..,"port":..,"endpoints":["PLAINTEXT://h:p",..],
                                                   "listener_security_protocol_map":{..},"jmx_port":-1,
                                                   "rack":..,"timestamp":"..."}
    /brokers/topics/<t>                           {"version":3,"topic_id":..,"partitions":{"0":[1,2,3]},
                                                   "adding_replicas":{},"removing_replicas":{}}
    /brokers/topics/<t>/partitions/<p>/state      {"version":1,"leader":1,"leader_epoch":4,
                                                   "controller_epoch":3,"isr":[1,2,3]}
    /config/topics/<t>                            {"version":1,"config":{"min.insync.replicas":"2"}}
    /config/brokers/<id>, /config/brokers/<default>  {"version":1,"config":{"log.retention.ms":"1000"}}
    /config/changes/config_change_<seq>  (sequential)  {"version":2,"entity_path":"topics/<t>"}
    /admin/reassign_partitions                    {"version":1,"partitions":[{"topic":"t","partition":0,
                                                   "replicas":[1,2]}]}  (Kafka's legacy way in)

One path is pykbroker's own (Kafka sends a ControlledShutdown request to the
controller instead, an API Kafka 4 no longer defines):

    /pykbroker/controlled_shutdown/<id> (ephemeral)  request {"broker_epoch":..};
                                                  the controller answers by
                                                  setting {"broker_epoch":..,"remaining":[["t",0],..]}

A broker's epoch is the czxid of its /brokers/ids/<id> znode, as in Kafka.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..storage.checkpoints import kafka_uuid_from_str, kafka_uuid_str

CLUSTER_ID = "/cluster/id"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
CONFIG_TOPICS = "/config/topics"
CONFIG_BROKERS = "/config/brokers"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
DEFAULT_BROKER_ENTITY = "<default>"  # Kafka's ZooKeeper name of the cluster-wide dynamic broker configs
SHUTDOWNS = "/pykbroker/controlled_shutdown"
REASSIGN_PARTITIONS = "/admin/reassign_partitions"  # Kafka's ZooKeeper-era reassignment request

# Persistent paths every cluster has (created by the first broker, as Kafka does).
PERSISTENT_PATHS = (BROKER_IDS, TOPICS, CONFIG_TOPICS, CONFIG_BROKERS, CONFIG_CHANGES, "/admin/delete_topics",
                    "/isr_change_notification", SHUTDOWNS)

NO_LEADER = -1


def broker_path(node_id: int) -> str:
    return f"{BROKER_IDS}/{node_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}"


def state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def broker_config_path(entity: str) -> str:
    """``entity``: a broker id or ``<default>``."""
    return f"{CONFIG_BROKERS}/{entity}"


def broker_config_entity(resource_name: str) -> str:
    """A BROKER resource name of the admin APIs ("" = cluster-wide default,
    else a broker id) as Kafka names its znode."""
    return resource_name or DEFAULT_BROKER_ENTITY


def shutdown_path(node_id: int) -> str:
    return f"{SHUTDOWNS}/{node_id}"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _loads(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


# --- /cluster/id -------------------------------------------------------------------------

def encode_cluster_id(cluster_id: str) -> bytes:
    return _dumps({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes | None) -> str | None:
    js = _loads(data)
    return js.get("id") if isinstance(js, dict) else None


# --- /controller, /controller_epoch -------------------------------------------------------

def encode_controller(broker_id: int) -> bytes:
    return _dumps({"version": 2, "brokerid": broker_id, "timestamp": str(int(time.time() * 1000)),
                   "kraftControllerEpoch": -1})


def decode_controller(data: bytes | None) -> int:
    js = _loads(data)
    if isinstance(js, dict) and isinstance(broker := js.get("brokerid"), int):
        return broker
    return -1


def encode_controller_epoch(epoch: int) -> bytes:
    return str(epoch).encode()


def decode_controller_epoch(data: bytes | None) -> int:
    try:
        return int((data or b"0").decode())
    except ValueError:
        return 0


# --- /brokers/ids/<id> ----------------------------------------------------------------------

@attrs.frozen
class RegisteredEndpoint:
    """One listener a broker registered: ``NAME://host:port`` plus its security protocol."""

    listener: str
    protocol: str
    host: str
    port: int


@attrs.frozen
class BrokerInfo:
    node_id: int
    host: str  # the endpoint other brokers reach it at (the inter-broker listener's)
    port: int
    rack: str | None
    epoch: int = -1  # czxid of the registration znode
    endpoints: tuple[RegisteredEndpoint, ...] = ()  # every listener, in registration order

    def endpoint(self, listener: str) -> tuple[str, int] | None:
        """(host, port) of the named listener; None if the broker has no such listener."""
        for ep in self.endpoints:
            if ep.listener == listener:
                return ep.host, ep.port
        return None


def encode_broker(node_id: int, endpoints: Sequence[RegisteredEndpoint], rack: str | None) -> bytes:
    """Kafka's version-5 registration: every listener in ``endpoints`` and
    the listener → security protocol map; the legacy ``host``/``port`` are
    the PLAINTEXT endpoint's (null/-1 when there is none), as Kafka writes them."""
    if not endpoints:
        raise ValueError("a broker registers at least one endpoint")
    plain = next((e for e in endpoints if e.protocol == "PLAINTEXT"), None)
    js: dict[str, Any] = {
        "listener_security_protocol_map": {e.listener: e.protocol for e in endpoints},
        "endpoints": [f"{e.listener}://{_host_text(e.host)}:{e.port}" for e in endpoints],
        "jmx_port": -1,
        "host": plain.host if plain is not None else None,
        "port": plain.port if plain is not None else -1,
        "timestamp": str(int(time.time() * 1000)),
        "version": 5,
    }
    if rack is not None:
        js["rack"] = rack
    return _dumps(js)


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def decode_broker(node_id: int, data: bytes | None, epoch: int, listener: str | None = None) -> BrokerInfo | None:
    """A registration; ``host``/``port`` of the result are ``listener``'s
    endpoint (the inter-broker listener), else the first endpoint's, else the
    legacy fields. None when the znode names no usable endpoint."""
    js = _loads(data)
    if not isinstance(js, dict):
        return None
    protocols = js.get("listener_security_protocol_map")
    protocols = protocols if isinstance(protocols, dict) else {}
    endpoints: list[RegisteredEndpoint] = []
    for ep in js.get("endpoints") or []:
        name, _, rest = str(ep).partition("://")
        h, _, p = rest.rpartition(":")
        if name and h and p.isdigit():
            endpoints.append(RegisteredEndpoint(name, str(protocols.get(name, name)), h.strip("[]"), int(p)))
    host, port = js.get("host"), js.get("port")
    chosen = next((e for e in endpoints if e.listener == listener), None) if listener else None
    if chosen is None and endpoints:
        chosen = endpoints[0]
    if chosen is not None:
        host, port = chosen.host, chosen.port
    if not host or not isinstance(port, int) or port < 0:
        return None
    if not endpoints:
        endpoints.append(RegisteredEndpoint("PLAINTEXT", "PLAINTEXT", host, port))
    return BrokerInfo(node_id, host, port, js.get("rack"), epoch, tuple(endpoints))


# --- /brokers/topics/<t> ----------------------------------------------------------------------

@attrs.frozen
class TopicAssignment:
    """A topic znode. During a reassignment (Kafka 2.4+, KIP-455) a
    partition's replicas are the full set RS = (target + origin, distinct),
    ``adding`` lists target - origin and ``removing`` origin - target."""

    name: str
    topic_id: bytes
    partitions: dict[int, tuple[int, ...]]  # partition -> replicas (preferred leader first)
    version: int = -1  # znode version
    adding: dict[int, tuple[int, ...]] = attrs.field(factory=dict)
    removing: dict[int, tuple[int, ...]] = attrs.field(factory=dict)

    def reassigning(self, p: int) -> bool:
        return bool(self.adding.get(p) or self.removing.get(p))

    def origin(self, p: int) -> tuple[int, ...]:
        """The replicas before the reassignment in progress (RS - adding)."""
        adding = self.adding.get(p, ())
        return tuple(r for r in self.partitions.get(p, ()) if r not in adding)

    def target(self, p: int) -> tuple[int, ...]:
        """The replicas after it (RS - removing)."""
        removing = self.removing.get(p, ())
        return tuple(r for r in self.partitions.get(p, ()) if r not in removing)


def encode_topic(topic_id: bytes, partitions: Mapping[int, Sequence[int]],
                 adding: Mapping[int, Sequence[int]] | None = None,
                 removing: Mapping[int, Sequence[int]] | None = None) -> bytes:
    def _map(m: Mapping[int, Sequence[int]] | None) -> dict[str, list[int]]:
        return {str(p): list(r) for p, r in sorted((m or {}).items()) if r}

    return _dumps({"version": 3, "topic_id": kafka_uuid_str(topic_id),
                   "partitions": {str(p): list(r) for p, r in sorted(partitions.items())},
                   "adding_replicas": _map(adding), "removing_replicas": _map(removing)})


def decode_topic(name: str, data: bytes | None, version: int) -> TopicAssignment | None:
    js = _loads(data)
    if not isinstance(js, dict) or not isinstance(js.get("partitions"), dict):
        return None
    try:
        topic_id = kafka_uuid_from_str(js["topic_id"]) if js.get("topic_id") else bytes(16)
        parts = {int(p): tuple(int(b) for b in r) for p, r in js["partitions"].items()}
        adding, removing = ({int(p): tuple(int(b) for b in r) for p, r in (js.get(k) or {}).items() if r}
                            for k in ("adding_replicas", "removing_replicas"))
    except (ValueError, TypeError, AttributeError):
        return None
    return TopicAssignment(name, topic_id, parts, version, adding, removing)


# --- /brokers/topics/<t>/partitions/<p>/state ----------------------------------------------------

@attrs.frozen
class LeaderIsr:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    version: int = -1  # znode version (Kafka's partition epoch in ZK mode)
    mzxid: int = -1  # zxid of the write that produced this state


def encode_state(leader: int, leader_epoch: int, isr: list[int] | tuple[int, ...], controller_epoch: int) -> bytes:
    return _dumps({"controller_epoch": controller_epoch, "leader": leader, "version": 1,
                   "leader_epoch": leader_epoch, "isr": list(isr)})


def decode_state(data: bytes | None, version: int = -1, mzxid: int = -1) -> LeaderIsr | None:
    js = _loads(data)
    if not isinstance(js, dict):
        return None
    try:
        return LeaderIsr(int(js["leader"]), int(js["leader_epoch"]), tuple(int(b) for b in js["isr"]),
                         int(js.get("controller_epoch", 0)), version, mzxid)
    except (KeyError, ValueError, TypeError):
        return None


# --- /config/topics/<t> ---------------------------------------------------------------------------

def encode_config(configs: dict[str, str]) -> bytes:
    return _dumps({"version": 1, "config": dict(configs)})


def decode_config(data: bytes | None) -> dict[str, str]:
    js = _loads(data)
    if isinstance(js, dict) and isinstance(js.get("config"), dict):
        return {str(k): str(v) for k, v in js["config"].items()}
    return {}


# --- /config/changes/config_change_<seq> ------------------------------------------------------------

def encode_config_change(entity_path: str) -> bytes:
    """Kafka's version-2 change notification: ``entity_path`` is
    ``topics/<t>`` or ``brokers/<id>`` / ``brokers/<default>``."""
    return _dumps({"version": 2, "entity_path": entity_path})


def decode_config_change(data: bytes | None) -> tuple[str, str] | None:
    """(entity type, entity name) of a notification, e.g. ("topics", "t")."""
    js = _loads(data)
    if not isinstance(js, dict) or not isinstance(js.get("entity_path"), str):
        return None
    kind, sep, name = js["entity_path"].partition("/")
    return (kind, name) if sep and name else None


# --- /admin/reassign_partitions --------------------------------------------------------------------

def encode_reassignment(partitions: Mapping[tuple[str, int], Sequence[int]]) -> bytes:
    """Kafka's ReassignPartitionsZNode: ``{"version":1,"partitions":[{"topic":..,
    "partition":..,"replicas":[..]}]}``."""
    return _dumps({"version": 1, "partitions": [{"topic": t, "partition": p, "replicas": list(r)}
                                                for (t, p), r in partitions.items()]})


def decode_reassignment(data: bytes | None) -> dict[tuple[str, int], list[int]] | None:
    """(topic, partition) -> target replicas, in the znode's order (a later
    entry for the same partition wins); None when it is not such JSON (Kafka
    then ignores the znode: "Ignoring partition reassignment due to invalid
    json"). A ``log_dirs`` field is accepted and ignored."""
    js = _loads(data)
    if not isinstance(js, dict) or not isinstance(js.get("partitions"), list):
        return None
    out: dict[tuple[str, int], list[int]] = {}
    try:
        for e in js["partitions"]:
            t, p, reps = e["topic"], e["partition"], e["replicas"]
            if not isinstance(t, str) or not isinstance(p, int) or isinstance(p, bool) or \
                    not isinstance(reps, list) or not all(isinstance(r, int) and not isinstance(r, bool)
                                                          for r in reps):
                return None
            out[(t, p)] = list(reps)
    except (KeyError, TypeError):
        return None
    return out


# --- /pykbroker/controlled_shutdown/<id> ------------------------------------------------------------

def encode_shutdown(broker_epoch: int, remaining: list[tuple[str, int]] | None = None) -> bytes:
    js: dict[str, Any] = {"version": 1, "broker_epoch": broker_epoch}
    if remaining is not None:
        js["remaining"] = [[t, p] for t, p in remaining]
    return _dumps(js)


def decode_shutdown(data: bytes | None) -> tuple[int, list[tuple[str, int]] | None]:
    js = _loads(data)
    if not isinstance(js, dict):
        return -1, None
    rem = js.get("remaining")
    return int(js.get("broker_epoch", -1)), (None if rem is None else [(str(t), int(p)) for t, p in rem])
