"""Broker configuration with Kafka's property names, types, defaults and checks.

Sources, lowest priority first: built-in defaults, a server.properties file,
``--override key=value`` flags. Unknown or invalid properties are errors
(raised as :class:`ConfigError`) before anything listens.

Defaults follow Kafka's, except where a single local broker needs something
else to be instant (noted per property).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import attrs


class ConfigError(ValueError):
    pass


@attrs.frozen
class Prop:
    name: str
    type: str  # int, long, bool, string, list, double, password
    default: Any
    doc: str = ""
    validator: Callable[[Any], str | None] | None = None
    topic_name: str | None = None  # the topic-level config this broker property defaults
    read_only: bool = True


def _at_least(n: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= n else f"Value must be at least {n}"


def _one_of(*opts: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in opts else f"String must be one of: {', '.join(opts)}"


LONG_MAX = 9223372036854775807
INT_MAX = 2147483647

PROPS: dict[str, Prop] = {}
ALIASES = {"broker.id": "node.id", "log.dir": "log.dirs"}


def _p(*args: Any, **kw: Any) -> None:
    p = Prop(*args, **kw)
    PROPS[p.name] = p


# server
_p("listeners", "list", "PLAINTEXT://127.0.0.1:9092", "Listener URIs NAME://host:port; a name's "
   "security protocol comes from listener.security.protocol.map.")
_p("advertised.listeners", "list", None, "Listeners given to clients; default: listeners.")
_p("listener.security.protocol.map", "string", "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL")
_p("inter.broker.listener.name", "string", None)
_p("node.id", "int", 0, "This broker's id (alias broker.id). Kafka's default -1 is replaced by 0 for a lone broker.", _at_least(0))
_p("broker.rack", "string", None)
_p("process.roles", "list", "broker")
_p("log.dirs", "list", "./pykbroker-data", "Where partition logs live (alias log.dir). Kafka's is /tmp/kafka-logs.")
_p("num.network.threads", "int", 3, validator=_at_least(1))
_p("num.io.threads", "int", 8, validator=_at_least(1))
_p("socket.send.buffer.bytes", "int", 102400)
_p("socket.receive.buffer.bytes", "int", 102400)
_p("socket.request.max.bytes", "int", 104857600, "Largest request frame; larger closes the connection.", _at_least(1))
_p("connections.max.idle.ms", "long", 600000)
_p("cluster.id", "string", None)
# security (pykbroker/security/, docs/security.md); each may be given per listener as
# listener.name.<listener>.<property> (SASL JAAS: listener.name.<l>.<mechanism>.sasl.jaas.config)
_p("ssl.keystore.type", "string", "JKS", "PEM or PKCS12 (JKS is not supported).")
_p("ssl.keystore.location", "string", None)
_p("ssl.keystore.password", "password", None)
_p("ssl.keystore.key", "password", None, "PEM private key (ssl.keystore.type=PEM) given inline.")
_p("ssl.keystore.certificate.chain", "password", None, "PEM certificate chain given inline.")
_p("ssl.key.password", "password", None)
_p("ssl.truststore.type", "string", "JKS", "PEM or PKCS12 (JKS is not supported).")
_p("ssl.truststore.location", "string", None)
_p("ssl.truststore.password", "password", None)
_p("ssl.truststore.certificates", "password", None, "PEM trusted certificates given inline.")
_p("ssl.client.auth", "string", "none", validator=_one_of("required", "requested", "none"))
_p("ssl.principal.mapping.rules", "string", "DEFAULT")
_p("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3")
_p("ssl.cipher.suites", "list", None)
_p("ssl.protocol", "string", "TLSv1.3")
_p("ssl.endpoint.identification.algorithm", "string", "https")
_p("sasl.enabled.mechanisms", "list", "GSSAPI",
   "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (GSSAPI is not supported).")
_p("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI")
_p("sasl.jaas.config", "password", None, "JAAS login module line (PLAIN users: user_<name>=\"<password>\").")
_p("sasl.server.callback.handler.class", "string", None)
_p("sasl.oauthbearer.jwks.endpoint.url", "string", None, "JWKS (https:, http: or file:) for "
   "OAuthBearerValidatorCallbackHandler; read once at start.")
_p("sasl.oauthbearer.expected.audience", "list", None)
_p("sasl.oauthbearer.expected.issuer", "string", None)
_p("sasl.oauthbearer.sub.claim.name", "string", "sub")
_p("sasl.oauthbearer.scope.claim.name", "string", "scope")
_p("sasl.oauthbearer.clock.skew.seconds", "int", 30, validator=_at_least(0))
_p("sasl.oauthbearer.jwks.endpoint.refresh.ms", "long", 3600000, "Not used: the key set is read at start.")
_p("connections.max.reauth.ms", "long", 0, "KIP-368: sessions expire after this; 0: never.", _at_least(0))
_p("pykbroker.ssl.handshake.timeout.ms", "long", 10000, "A TLS handshake not done by then closes the connection.",
   _at_least(1))
# topics / logs
_p("num.partitions", "int", 1, validator=_at_least(1))
_p("default.replication.factor", "int", 1, validator=_at_least(1))
_p("auto.create.topics.enable", "bool", True)
_p("delete.topic.enable", "bool", True)
_p("message.max.bytes", "int", 1048588, validator=_at_least(0), topic_name="max.message.bytes")
_p("log.segment.bytes", "int", 1073741824, validator=_at_least(14), topic_name="segment.bytes")
_p("log.roll.ms", "long", None, topic_name="segment.ms")
_p("log.roll.hours", "int", 168, validator=_at_least(1))
_p("log.roll.jitter.ms", "long", None, topic_name="segment.jitter.ms")
_p("log.roll.jitter.hours", "int", 0, validator=_at_least(0))
_p("log.segment.delete.delay.ms", "long", 60000, validator=_at_least(0), topic_name="file.delete.delay.ms")
_p("log.index.interval.bytes", "int", 4096, validator=_at_least(0), topic_name="index.interval.bytes")
_p("log.index.size.max.bytes", "int", 10485760, validator=_at_least(4), topic_name="segment.index.bytes")
_p("log.flush.interval.messages", "long", LONG_MAX, validator=_at_least(1), topic_name="flush.messages")
_p("log.flush.interval.ms", "long", None, topic_name="flush.ms")
_p("log.flush.scheduler.interval.ms", "long", LONG_MAX)
_p("log.retention.hours", "int", 168)
_p("log.retention.minutes", "int", None)
_p("log.retention.ms", "long", None, topic_name="retention.ms")
_p("log.retention.bytes", "long", -1, topic_name="retention.bytes")
_p("log.retention.check.interval.ms", "long", 300000, validator=_at_least(1))
_p("log.cleanup.policy", "list", "delete", topic_name="cleanup.policy")
_p("log.cleaner.enable", "bool", True)
_p("log.cleaner.threads", "int", 1, validator=_at_least(0))
_p("log.cleaner.backoff.ms", "long", 15000, validator=_at_least(0))
_p("log.cleaner.dedupe.buffer.size", "long", 134217728)
_p("log.cleaner.io.buffer.load.factor", "double", 0.9)
_p("log.cleaner.io.buffer.size", "int", 524288, validator=_at_least(0))
_p("log.cleaner.io.max.bytes.per.second", "double", 1.7976931348623157e308)
_p("log.cleaner.delete.retention.ms", "long", 86400000, topic_name="delete.retention.ms")
_p("log.cleaner.min.cleanable.ratio", "double", 0.5, topic_name="min.cleanable.dirty.ratio")
_p("log.cleaner.min.compaction.lag.ms", "long", 0, topic_name="min.compaction.lag.ms")
_p("log.cleaner.max.compaction.lag.ms", "long", LONG_MAX, topic_name="max.compaction.lag.ms")
_p("log.message.timestamp.type", "string", "CreateTime", validator=_one_of("CreateTime", "LogAppendTime"),
   topic_name="message.timestamp.type")
_p("log.message.timestamp.before.max.ms", "long", LONG_MAX, topic_name="message.timestamp.before.max.ms")
_p("log.message.timestamp.after.max.ms", "long", 3600000, topic_name="message.timestamp.after.max.ms")
_p("compression.type", "string", "producer",
   validator=_one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"), topic_name="compression.type")
_p("min.insync.replicas", "int", 1, validator=_at_least(1), topic_name="min.insync.replicas")
_p("unclean.leader.election.enable", "bool", False, topic_name="unclean.leader.election.enable")
_p("log.preallocate", "bool", False, topic_name="preallocate")
_p("compression.gzip.level", "int", -1, topic_name="compression.gzip.level")
_p("compression.lz4.level", "int", 9, topic_name="compression.lz4.level")
_p("compression.zstd.level", "int", 3, topic_name="compression.zstd.level")
_p("log.flush.offset.checkpoint.interval.ms", "int", 60000, validator=_at_least(0))
# replication / cluster (pykbroker/cluster/, docs/cluster.md): on with zookeeper.connect
_p("zookeeper.connect", "string", None, "host:port[,host:port...][/chroot] of ZooKeeper; unset: a lone broker.")
_p("zookeeper.session.timeout.ms", "int", 18000, validator=_at_least(1))
_p("zookeeper.connection.timeout.ms", "int", None)
_p("replica.lag.time.max.ms", "long", 30000, validator=_at_least(1))
_p("replica.fetch.max.bytes", "int", 1048576, validator=_at_least(0))
_p("replica.fetch.min.bytes", "int", 1, validator=_at_least(0))
_p("replica.fetch.response.max.bytes", "int", 10485760, validator=_at_least(0))
_p("replica.fetch.wait.max.ms", "int", 500, validator=_at_least(0))
_p("replica.fetch.backoff.ms", "int", 1000, validator=_at_least(0))
_p("replica.socket.timeout.ms", "int", 30000, validator=_at_least(1))
_p("replica.high.watermark.checkpoint.interval.ms", "long", 5000, validator=_at_least(1))
_p("controlled.shutdown.enable", "bool", True)
_p("controlled.shutdown.max.retries", "int", 3, validator=_at_least(1))
_p("controlled.shutdown.retry.backoff.ms", "long", 5000, validator=_at_least(0))
_p("auto.leader.rebalance.enable", "bool", True)
_p("leader.imbalance.check.interval.seconds", "long", 300, validator=_at_least(1))
_p("leader.imbalance.per.broker.percentage", "int", 10, validator=_at_least(0))
# groups
_p("offsets.topic.replication.factor", "short", 1, "Kafka's default is 3; 1 so a lone broker never hangs.", _at_least(1))
_p("offsets.topic.num.partitions", "int", 50, validator=_at_least(1))
_p("offsets.retention.minutes", "int", 10080, validator=_at_least(1))
_p("offsets.retention.check.interval.ms", "long", 600000)
_p("group.initial.rebalance.delay.ms", "int", 0, "Kafka's default is 3000; 0 so tests are fast.")
_p("group.min.session.timeout.ms", "int", 6000)
_p("group.max.session.timeout.ms", "int", 1800000)
_p("group.max.size", "int", INT_MAX, validator=_at_least(1))
_p("group.coordinator.rebalance.protocols", "list", "classic,consumer")
_p("group.consumer.heartbeat.interval.ms", "int", 5000)
_p("group.consumer.session.timeout.ms", "int", 45000)
_p("group.consumer.max.size", "int", INT_MAX, validator=_at_least(1))
_p("group.consumer.assignors", "list", "uniform,range", "Server-side assignors of KIP-848 groups; the first is the default.")
_p("offset.metadata.max.bytes", "int", 4096, validator=_at_least(0))
# transactions
_p("transaction.state.log.replication.factor", "short", 1, "Kafka's default is 3; 1 for a lone broker.")
_p("transaction.state.log.min.isr", "int", 1)
_p("transaction.state.log.num.partitions", "int", 50)
_p("transaction.max.timeout.ms", "int", 900000)
_p("transactional.id.expiration.ms", "int", 604800000)
_p("producer.id.expiration.ms", "int", 86400000)
_p("producer.id.expiration.check.interval.ms", "int", 600000, validator=_at_least(1))
_p("transaction.state.log.segment.bytes", "int", 104857600, validator=_at_least(1))
# pykbroker-specific (no Kafka equivalent)
_p("pykbroker.fetch.sendfile", "bool", True, "Serve fetch data with os.sendfile where possible.")
_p("pykbroker.log.cleaner.isolation", "string", "process", "Where the log cleaner's record work runs: "
   "process (worker processes, never holding the broker's GIL) or thread.", _one_of("process", "thread"))
# pykbroker-specific: testing and observability (docs/testing.md)
_p("pykbroker.storage", "string", "disk", "Log storage engine: disk (Kafka's layout under log.dirs) or "
   "memory (nothing on disk, nothing survives a restart; for tests).", _one_of("disk", "memory"))
_p("pykbroker.control.listener", "string", None, "host:port of the HTTP control endpoint (/metrics, "
   "fault rules, records, groups); off when unset; loopback addresses only.",
   lambda v: _check_loopback(v))
_p("pykbroker.control.ssl.enable", "bool", False, "Serve the control endpoint over TLS (https) with the "
   "ssl.* stores, overridable as listener.name.control.ssl.*.")
_p("pykbroker.as.version", "string", None, "Emulate this Kafka release's API version ranges "
   "(2.8, 3.0 ... 3.9, 4.0 ... 4.3).", lambda v: _check_release(v))
_p("pykbroker.trace", "bool", False, "Log every request and response, decoded (logger pykbroker.trace).")
_p("pykbroker.trace.max.chars", "int", 2000, "Longest request/response text in a trace line.", _at_least(80))
_p("pykbroker.metrics.enable", "bool", True, "Count requests, errors, latency and bytes per API "
   "(served on the control endpoint's /metrics).")


def _check_loopback(v: str) -> str | None:
    host, sep, port = v.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit():
        return "expected host:port"
    if host not in ("localhost", "::1") and not host.startswith("127."):
        return "the control endpoint has no authentication: only loopback addresses are allowed"
    return None


def _check_release(v: str) -> str | None:
    from .testing.releases import check_release

    return check_release(v)


def _parse(prop: Prop, raw: Any) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, str):
        return raw
    s = raw.strip()
    t = prop.type
    try:
        if t in ("int", "long", "short"):
            v = int(s)
            lim = {"int": INT_MAX, "short": 32767, "long": LONG_MAX}[t]
            if not -lim - 1 <= v <= lim:
                raise ValueError
            return v
        if t == "double":
            return float(s)
        if t == "bool":
            if s.lower() not in ("true", "false"):
                raise ValueError
            return s.lower() == "true"
        if t == "list":
            return s
        return s
    except ValueError:
        raise ConfigError(f"Invalid value {raw!r} for configuration {prop.name}: expected a {t}") from None


def read_properties(path: Path) -> dict[str, str]:
    """Java .properties subset: key=value or key: value, # and ! comments, \\ continuation."""
    props: dict[str, str] = {}
    text = path.read_text()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if not m:
            props[line] = ""
            continue
        props[m.group(1)] = m.group(2)
    return props


@attrs.define
class Listener:
    name: str
    host: str
    port: int
    protocol: str = "PLAINTEXT"  # from listener.security.protocol.map


def parse_listener(uri: str) -> Listener:
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)://(\[[^\]]*\]|[^:]*):(\d+)$", uri.strip())
    if not m:
        raise ConfigError(f"Invalid listener {uri!r}: expected NAME://host:port")
    host = m.group(2).strip("[]") or "0.0.0.0"
    return Listener(m.group(1), host, int(m.group(3)))


class BrokerConfig:
    """Resolved broker configuration; ``values`` maps property → typed value."""

    def __init__(self, overrides: dict[str, Any] | None = None,
                 file_props: dict[str, str] | None = None) -> None:
        self.values: dict[str, Any] = {n: p.default for n, p in PROPS.items()}
        self.sources: dict[str, str] = {n: "DEFAULT_CONFIG" for n in PROPS}
        self.listener_props: dict[str, str] = {}  # listener.name.<l>.<property>
        for src, props in (("STATIC_BROKER_CONFIG", file_props or {}),
                           ("STATIC_BROKER_CONFIG", overrides or {})):
            for key, raw in props.items():
                self.set(key, raw, src)
        self._validate()

    def set(self, key: str, raw: Any, source: str = "STATIC_BROKER_CONFIG") -> None:
        name = ALIASES.get(key, key)
        prop = PROPS.get(name)
        if prop is None and name.startswith("listener.name."):
            # per-listener security settings, resolved by pykbroker.security.listeners
            self.listener_props[name] = "" if raw is None else str(raw).strip()
            return
        if prop is None:
            raise ConfigError(f"Unknown configuration {key!r}")
        value = _parse(prop, raw)
        if prop.validator is not None and value is not None:
            err = prop.validator(value)
            if err:
                raise ConfigError(f"Invalid value {raw!r} for configuration {name}: {err}")
        self.values[name] = value
        self.sources[name] = source

    def _validate(self) -> None:
        self.listeners = [parse_listener(u) for u in self.values["listeners"].split(",") if u.strip()]
        if not self.listeners:
            raise ConfigError("listeners must name at least one listener")
        names = [lst.name for lst in self.listeners]
        if len(set(names)) != len(names):
            raise ConfigError("Each listener must have a different name, listeners: "
                              + self.values["listeners"])
        for lst in self.listeners:
            proto = self._proto_of(lst.name)
            if proto is None:
                raise ConfigError(f"No security protocol defined for listener {lst.name}")
            if proto not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
                raise ConfigError(f"Listener {lst.name}: unknown security protocol {proto}")
            lst.protocol = proto
        adv = self.values["advertised.listeners"]
        self.advertised = [parse_listener(u) for u in adv.split(",")] if adv else None
        self.log_dirs = [Path(d.strip()) for d in self.values["log.dirs"].split(",") if d.strip()]
        if not self.log_dirs:
            raise ConfigError("log.dirs must name at least one directory")

    def _proto_of(self, name: str) -> str | None:
        for pair in self.values["listener.security.protocol.map"].split(","):
            k, _, v = pair.partition(":")
            if k.strip() == name:
                return v.strip()
        return None

    def __getitem__(self, key: str) -> Any:
        return self.values[ALIASES.get(key, key)]

    @property
    def node_id(self) -> int:
        return int(self.values["node.id"])

    def segment_ms(self) -> int:
        v = self.values["log.roll.ms"]
        return v if v is not None else self.values["log.roll.hours"] * 3600 * 1000

    def retention_ms(self) -> int:
        if self.values["log.retention.ms"] is not None:
            return self.values["log.retention.ms"]
        if self.values["log.retention.minutes"] is not None:
            return self.values["log.retention.minutes"] * 60000
        return self.values["log.retention.hours"] * 3600000

    def flush_ms(self) -> int:
        v = self.values["log.flush.interval.ms"]
        return v if v is not None else self.values["log.flush.scheduler.interval.ms"]

    def topic_defaults(self) -> dict[str, str]:
        """Broker properties as topic-level config defaults (Kafka's synonyms,
        with unit conversion and dynamic broker configs; topic_configs.py)."""
        from .topic_configs import broker_topic_defaults

        return broker_topic_defaults(self)