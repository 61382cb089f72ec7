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
from typing import Any
from collections.abc import Callable

import attrs

from .storage.log_config import (
    TOPIC_CONFIGS,
    ConfigValue,
    InvalidConfigError,
    Validator,
    broker_synonym_defs,
    parse_typed,
)
from .util import INT_MAX
from .protocol.releases import check_release


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


def _between(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"Value must be between {lo} and {hi}"


def _one_of(*opts: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in opts else f"String must be one of: {', '.join(opts)}"


PROPS: dict[str, Prop] = {}
ALIASES = {"broker.id": "node.id", "log.dir": "log.dirs"}


def _p(*args: Any, **kw: Any) -> None:
    p = Prop(*args, **kw)
    PROPS[p.name] = p


def _schema_check(name: str, check: Validator) -> Callable[[Any], str | None]:
    """A topic-config schema validator as a broker property's validator
    (Kafka applies the same bounds to log.segment.bytes as to segment.bytes)."""
    def run(value: Any) -> str | None:
        try:
            check(name, value)
        except InvalidConfigError as e:
            return e.reason
        return None

    return run


def _register_topic_synonyms() -> None:
    """One broker property per topic-config synonym (``log.segment.bytes``,
    ``log.retention.hours`` ...), as the schema in storage/log_config.py
    defines it; ``topic_name`` marks Kafka's primary synonym."""
    for syn in broker_synonym_defs():
        if not syn.served:
            continue
        _p(syn.name, syn.type, syn.default,
           validator=None if syn.validator is None else _schema_check(syn.name, syn.validator),
           topic_name=syn.topic_name if syn.primary else None)


# server
_p("listeners", "list", "PLAINTEXT://127.0.0.1:9092", "Listener URIs NAME://host:port; a name's "
   "security protocol comes from listener.security.protocol.map.")
_p("advertised.listeners", "list", None, "Listeners given to clients; default: listeners.")
_p("listener.security.protocol.map", "string",
   "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL")
_p("telemetry.max.bytes", "int", 1048576, "Largest PushTelemetry metrics payload accepted (KIP-714).",
   validator=_at_least(1))
_p("inter.broker.listener.name", "string", None, "The listener brokers connect to each other on "
   "(replication, coordinator and controller requests); or set security.inter.broker.protocol.")
_p("security.inter.broker.protocol", "string", "PLAINTEXT", "Security protocol between brokers: the listener of "
   "that name is used (when inter.broker.listener.name is not set).",
   validator=_one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
_p("node.id", "int", 0, "This broker's id (alias broker.id). Kafka's default -1 is replaced by 0 for a lone broker.",
   _at_least(0))
_p("broker.rack", "string", None)
_p("process.roles", "list", "broker")
_p("log.dirs", "list", "./pykbroker-data", "Where partition logs live (alias log.dir). Kafka's is /tmp/kafka-logs.")
_p("num.network.threads", "int", 3, validator=_at_least(1))
_p("num.io.threads", "int", 8, validator=_at_least(1))
_p("socket.send.buffer.bytes", "int", 102400)
_p("socket.receive.buffer.bytes", "int", 102400)
_p("socket.request.max.bytes", "int", 104857600, "Largest request frame; larger closes the connection.", _at_least(1))
_p("connections.max.idle.ms", "long", 600000,
   "A connection with no request for this long is closed (between requests only).")
_p("queued.max.request.bytes", "long", 268435456,
   "Request bytes buffered over all connections before sockets stop being read (back-pressure). "
   "Kafka's default -1 is unbounded; ours is 256 MiB (-1 restores unbounded).")
_p("max.connections", "int", INT_MAX,
   "Connections over all listeners; at the limit new connections wait to be accepted.", _at_least(0))
_p("max.connections.per.ip", "int", INT_MAX,
   "Connections from one address; over the limit a new connection is closed at once.", _at_least(0))
_p("max.connections.per.ip.overrides", "string", "",
   "Per-address limits, 'host:count,host:count'.")
_p("pykbroker.request.receive.timeout.ms", "long", 30000,
   "A request must arrive in full this long after its first byte, else the connection is closed "
   "(Kafka has no such setting; a trickled frame would be held forever).", _at_least(1))
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
# ACLs (pykbroker/security/acl.py): Kafka's authorizer class names turn the authorizer on
_p("authorizer.class.name", "string", "",
   "kafka.security.authorizer.AclAuthorizer or org.apache.kafka.metadata.authorizer.StandardAuthorizer "
   "enables ACLs; empty: every operation is allowed.")
_p("super.users", "string", None, "Principals allowed everything, 'User:a;User:b'.")
_p("allow.everyone.if.no.acl.found", "bool", False, "A resource without any ACL is open to everyone.")
# client quotas (pykbroker/security/quotas.py)
_p("quota.window.num", "int", 11, "Samples a quota's rate is measured over.", _at_least(1))
_p("quota.window.size.seconds", "int", 1, "Length of one quota sample.", _at_least(1))
_p("controller.quota.window.num", "int", 11,
   "controller_mutation_rate: the token bucket holds num x size x quota tokens.", _at_least(1))
_p("controller.quota.window.size.seconds", "int", 1, "controller_mutation_rate: see controller.quota.window.num.",
   _at_least(1))
_p("pykbroker.ssl.handshake.timeout.ms", "long", 10000, "A TLS handshake not done by then closes the connection.",
   _at_least(1))
# topics / logs
_p("num.partitions", "int", 1, validator=_at_least(1))
_p("max.request.partition.size.limit", "int", 2000,
   "Most partitions one DescribeTopicPartitions answer lists (then a cursor).", _at_least(1))
_p("max.incremental.fetch.session.cache.slots", "int", 1000,
   "Incremental fetch sessions (KIP-227) the broker keeps; 0 answers every fetch sessionless.", _at_least(0))
_p("default.replication.factor", "int", 1, validator=_at_least(1))
_p("auto.create.topics.enable", "bool", True)
_p("delete.topic.enable", "bool", True)
# the broker synonyms of topic configs (log.segment.bytes, log.retention.hours, ...):
# names, types, defaults and bounds come from the topic-config schema
_register_topic_synonyms()
_p("log.retention.check.interval.ms", "long", 300000, validator=_at_least(1))
_p("log.cleaner.enable", "bool", True)
_p("log.cleaner.threads", "int", 1, validator=_at_least(0))
_p("log.cleaner.backoff.ms", "long", 15000, validator=_at_least(0))
_p("log.cleaner.dedupe.buffer.size", "long", 134217728)
_p("log.cleaner.io.buffer.load.factor", "double", 0.9)
_p("log.cleaner.io.buffer.size", "int", 524288, validator=_at_least(0))
_p("log.cleaner.io.max.bytes.per.second", "double", 1.7976931348623157e308)
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
_p("leader.replication.throttled.rate", "long", 9223372036854775807, validator=_at_least(0))
_p("follower.replication.throttled.rate", "long", 9223372036854775807, validator=_at_least(0))
_p("replication.quota.window.num", "int", 11, validator=_at_least(1))
_p("replication.quota.window.size.seconds", "int", 1, validator=_at_least(1))
_p("controlled.shutdown.enable", "bool", True)
_p("controlled.shutdown.max.retries", "int", 3, validator=_at_least(1))
_p("controlled.shutdown.retry.backoff.ms", "long", 5000, validator=_at_least(0))
_p("auto.leader.rebalance.enable", "bool", True)
_p("leader.imbalance.check.interval.seconds", "long", 300, validator=_at_least(1))
_p("leader.imbalance.per.broker.percentage", "int", 10, validator=_at_least(0))
# groups
_p("offsets.topic.replication.factor", "short", 1, "Kafka's default is 3; 1 so a lone broker never hangs.",
   _at_least(1))
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
_p("group.consumer.assignors", "list", "uniform,range",
   "Server-side assignors of KIP-848 groups; the first is the default.")
_p("offset.metadata.max.bytes", "int", 4096, validator=_at_least(0))
# share groups (KIP-932, pykbroker/share/)
_p("group.share.heartbeat.interval.ms", "int", 5000, validator=_between(1000, 15000))
_p("group.share.session.timeout.ms", "int", 45000, validator=_between(1000, 60000))
_p("group.share.max.size", "int", 200, validator=_between(1, 1000))
_p("group.share.record.lock.duration.ms", "int", 30000, validator=_between(1000, 3600000))
_p("group.share.min.record.lock.duration.ms", "int", 15000, validator=_between(1000, 30000))
_p("group.share.max.record.lock.duration.ms", "int", 60000, validator=_between(30000, 3600000))
_p("group.share.min.session.timeout.ms", "int", 45000, validator=_at_least(1))
_p("group.share.max.session.timeout.ms", "int", 60000, validator=_at_least(1))
_p("group.share.min.heartbeat.interval.ms", "int", 5000, validator=_at_least(1))
_p("group.share.max.heartbeat.interval.ms", "int", 15000, validator=_at_least(1))
_p("group.share.delivery.count.limit", "int", 5, validator=_between(2, 10))
_p("group.share.partition.max.record.locks", "int", 2000, validator=_between(100, 10000))
_p("share.coordinator.state.topic.num.partitions", "int", 50, validator=_at_least(1))
_p("share.coordinator.state.topic.replication.factor", "short", 1,
   "Kafka's default is 3; 1 so a lone broker never hangs.", _at_least(1))
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
_p("pykbroker.log.max.open.segments", "int", 0, "Segment log files kept open at once (least recently "
   "used closed first, reopened on use; written, unflushed ones too): 0 = half the process's file "
   "descriptor limit (RLIMIT_NOFILE).", _at_least(0))
_p("pykbroker.log.cleaner.isolation", "string", "process", "Where the log cleaner's record work runs: "
   "process (worker processes, never holding the broker's GIL) or thread.", _one_of("process", "thread"))
# pykbroker-specific: testing and observability (docs/testing.md)
_p("pykbroker.storage", "string", "disk", "Log storage engine: disk (Kafka's layout under log.dirs) or "
   "memory (nothing on disk, nothing survives a restart; for tests).", _one_of("disk", "memory"))
_p("pykbroker.client.telemetry.enable", "boolean", False, "Advertise and serve client telemetry (KIP-714: "
   "GetTelemetrySubscriptions, PushTelemetry); pushed metrics go to /metrics. Kafka advertises these APIs only "
   "when a metrics reporter implementing ClientTelemetry is configured; this is that switch.")
_p("pykbroker.control.listener", "string", None, "host:port of the HTTP control endpoint (/metrics, "
   "fault rules, records, groups, the web console); off when unset; loopback addresses only, unless "
   "pykbroker.control.ssl.enable and a login (pykbroker.control.auth.*) are configured.",
   lambda v: _check_host_port(v))
_p("pykbroker.control.ssl.enable", "bool", False, "Serve the control endpoint over TLS (https) with the "
   "ssl.* stores, overridable as listener.name.control.ssl.*.")
_p("pykbroker.control.auth.user", "string", None, "A login for the control endpoint and the console "
   "(HTTP Basic, asked on every route); with TLS it allows a non-loopback control listener.")
_p("pykbroker.control.auth.password", "password", None, "The password of pykbroker.control.auth.user.")
_p("pykbroker.console.enable", "bool", False, "Serve the web console (/console) on the control "
   "endpoint; the pykbroker command turns it on (and the endpoint, on 127.0.0.1:9644) for a single node.")
_p("pykbroker.console.sample.interval.ms", "int", 1000, "How often the console samples offsets, "
   "sizes and group lag for its charts (kept in memory, the last 600 samples).", _at_least(100))
_p("pykbroker.as.version", "string", None, "Emulate this Kafka release's API version ranges "
   "(2.8, 3.0 ... 3.9, 4.0 ... 4.3).", check_release)
_p("pykbroker.trace", "bool", False, "Log every request and response, decoded (logger pykbroker.trace).")
_p("pykbroker.trace.max.chars", "int", 2000, "Longest request/response text in a trace line.", _at_least(80))
_p("pykbroker.metrics.enable", "bool", True, "Count requests, errors, latency and bytes per API "
   "(served on the control endpoint's /metrics).")


def _check_host_port(v: str) -> str | None:
    _host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit():
        return "expected host:port"
    return None


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _check(prop: Prop, raw: object, value: Any) -> None:
    if prop.validator is not None and value is not None:
        err = prop.validator(value)
        if err:
            raise ConfigError(f"Invalid value {raw} for configuration {prop.name}: {err}")


def parse_value(prop: Prop, raw: str) -> Any:
    """A broker property's string as its typed, validated value (Kafka's
    ConfigDef parse, the same as for topic configs); raises ConfigError
    with Kafka's message ("Invalid value x for configuration
    log.segment.bytes: Not a number of type INT"). Lists stay strings."""
    value: Any = raw.strip()
    if prop.type in ("int", "long", "short", "double", "bool"):
        try:
            value = parse_typed(prop.name, prop.type, raw)
        except InvalidConfigError as e:
            raise ConfigError(str(e)) from None
    _check(prop, raw, value)
    return value


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
        # dynamic broker configs (topic_configs.apply_dynamic_broker_configs):
        # the static layer they were applied over, and the stored layers
        self.static_values: dict[str, Any] | None = None
        self.static_sources: dict[str, str] | None = None
        self.dynamic_default: dict[str, str] = {}
        self.dynamic_broker: dict[str, str] = {}
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
        if isinstance(raw, str):
            value = parse_value(prop, raw)
        else:  # already typed (embedding code passes ints and bools)
            value = raw
            _check(prop, raw, value)
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
        control = self.values["pykbroker.control.listener"]
        if control and not is_loopback(control.rpartition(":")[0]) and not (
                self.values["pykbroker.control.ssl.enable"] and self.values["pykbroker.control.auth.user"]
                and self.values["pykbroker.control.auth.password"]):
            raise ConfigError(
                f"Invalid value {control} for configuration pykbroker.control.listener: without TLS and a "
                "login the control endpoint is for loopback addresses only (127.0.0.1, ::1, localhost); to "
                "listen on another address set pykbroker.control.ssl.enable=true and "
                "pykbroker.control.auth.user/pykbroker.control.auth.password")

    def inter_broker_listener(self) -> Listener | None:
        """The listener other brokers reach this one at: ``inter.broker.listener.name``,
        else the listener named after ``security.inter.broker.protocol``; None if
        no listener has that name (Kafka refuses to start; a lone broker does not
        need one). Both set explicitly is an error, as in Kafka."""
        name = self.values["inter.broker.listener.name"]
        if name and self.sources.get("security.inter.broker.protocol") != "DEFAULT_CONFIG":
            raise ConfigError("Only one of inter.broker.listener.name and security.inter.broker.protocol "
                              "should be set.")
        name = name or self.values["security.inter.broker.protocol"]
        return next((lst for lst in self.listeners if lst.name == name), None)

    def _proto_of(self, name: str) -> str | None:
        for pair in str(self.values["listener.security.protocol.map"]).split(","):
            k, _, v = pair.partition(":")
            if k.strip() == name:
                return v.strip()
        return None

    def __getitem__(self, key: str) -> Any:
        return self.values[ALIASES.get(key, key)]

    @property
    def node_id(self) -> int:
        return int(self.values["node.id"])

    def topic_default(self, name: str) -> ConfigValue | None:
        """The typed default of topic config ``name`` this broker gives a topic
        without an override (its first broker synonym with a value, in the
        topic config's unit; the schema's synonyms, topic_configs.py)."""
        from .topic_configs import broker_effective

        return broker_effective(self, TOPIC_CONFIGS[name])

    def _topic_ms(self, name: str) -> int:
        v = self.topic_default(name)
        assert isinstance(v, int)
        return v

    def segment_ms(self) -> int:
        return self._topic_ms("segment.ms")

    def retention_ms(self) -> int:
        return self._topic_ms("retention.ms")

    def flush_ms(self) -> int:
        return self._topic_ms("flush.ms")

    def topic_defaults(self) -> dict[str, str]:
        """Broker properties as topic-level config defaults (Kafka's synonyms,
        with unit conversion and dynamic broker configs; topic_configs.py)."""
        from .topic_configs import broker_topic_defaults

        return broker_topic_defaults(self)
