"""Per-listener security settings, resolved once before anything listens.

A listener's protocol comes from ``listener.security.protocol.map``; every
``ssl.*``/``sasl.*`` property may be overridden for one listener as
``listener.name.<listener lower-case>.<property>``; SASL JAAS lines as
``listener.name.<l>.<mechanism lower-case>.sasl.jaas.config`` (Kafka's
form), falling back to ``listener.name.<l>.sasl.jaas.config`` and then
``sasl.jaas.config``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import attrs

from ..config import BrokerConfig, ConfigError
from . import acl, jaas, quotas, sasl, scram, tls
from .sasl import MechanismServer
from .scram import CredentialSink, FileCredentials

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


@attrs.define
class ListenerSecurity:
    name: str
    protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    ssl_context: ssl.SSLContext | None = None
    principal_mapper: tls.PrincipalMapper | None = None
    mechanisms: list[str] = attrs.Factory(list)
    plain_users: dict[str, str] = attrs.Factory(dict)
    oauth_options: dict[str, str] = attrs.Factory(dict)
    oauth_jwks: Any = None  # kwargs of OAuthBearerJwksServer when the JWKS validator is configured
    reauth_ms: int = 0
    handshake_timeout_s: float = 10.0
    store: scram.CredentialStore | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def mechanism_server(self, mechanism: str) -> MechanismServer:
        if mechanism == "PLAIN":
            return sasl.PlainServer(self.plain_users)
        if mechanism in scram.MECHANISMS:
            assert self.store is not None
            return sasl.ScramServer(mechanism, self.store)
        if mechanism == "OAUTHBEARER":
            if self.oauth_jwks is not None:
                return sasl.OAuthBearerJwksServer(**self.oauth_jwks)
            return sasl.OAuthBearerUnsecuredServer(self.oauth_options)
        raise ValueError(mechanism)


@attrs.frozen
class InterBrokerSecurity:
    """How this broker connects to the others: the inter-broker listener's
    name (whose registered endpoint it dials), TLS when the listener's
    protocol has it, and SASL with ``sasl.mechanism.inter.broker.protocol``
    and the ``username``/``password`` of that mechanism's JAAS line on the
    listener (as Kafka's broker logs in to its peers)."""

    listener: str
    protocol: str
    ssl_context: ssl.SSLContext | None = None
    mechanism: str | None = None
    username: str = ""
    password: str = ""

    def mechanism_client(self) -> sasl.MechanismClient:
        if self.mechanism == "PLAIN":
            return sasl.PlainClient(self.username, self.password)
        assert self.mechanism in scram.MECHANISMS
        return sasl.ScramClient(self.mechanism, self.username, self.password)


class Security:
    """Every listener's security plus the broker's SCRAM credential store."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        path = None
        if config["pykbroker.storage"] == "disk":
            path = Path(config.log_dirs[0]) / scram.CredentialStore.FILE
        self.scram = scram.CredentialStore(path)
        # where altered SCRAM credentials are kept: the local file; in a
        # cluster, ZooKeeper (cluster/scram_credentials.py, set as the cluster is built)
        self.credential_sink: CredentialSink = FileCredentials(self.scram)
        # ACLs: <first log dir>/acls.json; in a cluster ZooKeeper (cluster/acls.py, set as the cluster is built)
        self.acls = acl.AclStore(Path(config.log_dirs[0]) / acl.AclStore.FILE if path is not None else None)
        self.acl_sink: acl.AclSink = acl.FileAcls(self.acls)
        self.authorizer: acl.Authorizer | None = None
        cls = (config["authorizer.class.name"] or "").strip()
        if cls:
            if cls not in acl.AUTHORIZER_CLASSES:
                raise ConfigError(f"authorizer.class.name {cls} is not supported "
                                  f"(supported: {', '.join(acl.AUTHORIZER_CLASSES)})")
            self.authorizer = acl.Authorizer(self.acls, acl.Authorizer.parse_super_users(config["super.users"]),
                                             bool(config["allow.everyone.if.no.acl.found"]))
        # client quotas: <first log dir>/client-quotas.json, enforced per matched entity
        self.quota_store = quotas.QuotaStore(Path(config.log_dirs[0]) / quotas.QuotaStore.FILE
                                             if path is not None else None)
        self.quota_sink: quotas.QuotaSink = quotas.FileQuotas(self.quota_store)  # cluster: cluster/quotas.py
        self.quotas = quotas.QuotaManager(self.quota_store, int(config["quota.window.num"]),
                                          int(config["quota.window.size.seconds"]),
                                          int(config["controller.quota.window.num"]),
                                          int(config["controller.quota.window.size.seconds"]))
        self.listeners: dict[str, ListenerSecurity] = {}
        for lst in config.listeners:
            self.listeners[lst.name] = self._resolve(lst.name, lst.protocol)
        inter = config.inter_broker_listener()
        if config["zookeeper.connect"] and inter is None:
            raise ConfigError("inter.broker.listener.name must be a listener name defined in listeners "
                              f"(or a listener named {config['security.inter.broker.protocol']} must exist): "
                              + ",".join(lst.name for lst in config.listeners))
        self.inter_broker: InterBrokerSecurity | None = (
            self._inter_broker(inter.name, inter.protocol) if inter is not None else None)
        # the HTTP control endpoint over TLS: the ssl.* stores, overridable as listener.name.control.ssl.*
        self.control_ssl_context: ssl.SSLContext | None = None
        if config["pykbroker.control.listener"] and config["pykbroker.control.ssl.enable"]:
            self.control_ssl_context = tls.server_context(lambda p: self._get("CONTROL", p), "CONTROL")

    def _get(self, listener: str, prop: str) -> Any:
        key = f"listener.name.{listener.lower()}.{prop}"
        if key in self.config.listener_props:
            return self.config.listener_props[key]
        return self.config[prop]

    def _resolve(self, name: str, protocol: str) -> ListenerSecurity:
        ls = ListenerSecurity(name, protocol, store=self.scram,
                              reauth_ms=int(self._get(name, "connections.max.reauth.ms") or 0),
                              handshake_timeout_s=int(self.config["pykbroker.ssl.handshake.timeout.ms"]) / 1000)
        if protocol in ("SSL", "SASL_SSL"):
            def get(prop: str) -> Any:
                if prop == "ssl.client.auth" and protocol == "SASL_SSL":
                    # KIP-684: on SASL_SSL only a listener-prefixed ssl.client.auth applies
                    return self.config.listener_props.get(f"listener.name.{name.lower()}.ssl.client.auth", "none")
                return self._get(name, prop)

            ls.ssl_context = tls.server_context(get, name)
            ls.principal_mapper = tls.PrincipalMapper(self._get(name, "ssl.principal.mapping.rules") or "DEFAULT")
        if protocol.startswith("SASL_"):
            mechs = [m.strip().upper() for m in (self._get(name, "sasl.enabled.mechanisms") or "").split(",")
                     if m.strip()]
            if not mechs:
                raise ConfigError(f"Listener {name}: sasl.enabled.mechanisms is empty")
            for m in mechs:
                if m not in SUPPORTED_MECHANISMS:
                    raise ConfigError(f"Listener {name}: SASL mechanism {m} is not supported "
                                      f"(supported: {', '.join(SUPPORTED_MECHANISMS)}); set sasl.enabled.mechanisms")
            ls.mechanisms = mechs
            if "PLAIN" in mechs:
                entry = self._jaas(name, "plain")
                if entry is None or entry.login_module != _PLAIN_MODULE:
                    raise ConfigError(f"Listener {name}: PLAIN needs "
                                      f"listener.name.{name.lower()}.plain.sasl.jaas.config with {_PLAIN_MODULE}")
                ls.plain_users = {k[5:]: v for k, v in entry.options.items() if k.startswith("user_")}
            if "OAUTHBEARER" in mechs:
                entry = self._jaas(name, "oauthbearer")
                if entry is not None and entry.login_module != _OAUTH_MODULE:
                    raise ConfigError(f"Listener {name}: OAUTHBEARER needs {_OAUTH_MODULE}")
                ls.oauth_options = dict(entry.options) if entry is not None else {}
                handler = (self.config.listener_props.get(
                    f"listener.name.{name.lower()}.oauthbearer.sasl.server.callback.handler.class")
                    or self._get(name, "sasl.server.callback.handler.class") or "")
                if handler.endswith("OAuthBearerValidatorCallbackHandler"):
                    ls.oauth_jwks = self._jwks(name)
                elif handler and not handler.endswith("OAuthBearerUnsecuredValidatorCallbackHandler"):
                    raise ConfigError(f"Listener {name}: server callback handler {handler} is not supported")
        return ls

    def _inter_broker(self, name: str, protocol: str) -> InterBrokerSecurity:
        ctx = None
        if protocol in ("SSL", "SASL_SSL"):
            ctx = tls.client_context(lambda p: self._get(name, p), name)
        if not protocol.startswith("SASL_"):
            return InterBrokerSecurity(name, protocol, ctx)
        mech = str(self.config["sasl.mechanism.inter.broker.protocol"] or "").upper()
        if mech not in ("PLAIN", *scram.MECHANISMS):
            raise ConfigError(f"sasl.mechanism.inter.broker.protocol {mech} is not supported between brokers "
                              "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
        if mech not in self.listeners[name].mechanisms:
            raise ConfigError("sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms "
                              f"of listener {name} when SASL is used for inter-broker communication")
        entry = self._jaas(name, mech.lower())
        user = entry.options.get("username") if entry is not None else None
        password = entry.options.get("password") if entry is not None else None
        if not user or password is None:
            raise ConfigError(f"Listener {name}: inter-broker {mech} needs username and password in "
                              f"listener.name.{name.lower()}.{mech.lower()}.sasl.jaas.config")
        return InterBrokerSecurity(name, protocol, ctx, mech, user, password)

    def _jwks(self, name: str) -> dict[str, Any]:
        from .jwks import KeySet

        def get(prop: str) -> Any:
            props = self.config.listener_props
            return (props.get(f"listener.name.{name.lower()}.oauthbearer.{prop}")
                    or props.get(f"listener.name.{name.lower()}.{prop}") or self.config[prop])

        url = get("sasl.oauthbearer.jwks.endpoint.url")
        if not url:
            raise ConfigError(f"Listener {name}: OAuthBearerValidatorCallbackHandler needs "
                              "sasl.oauthbearer.jwks.endpoint.url")
        aud = get("sasl.oauthbearer.expected.audience")
        return {"keys": KeySet(url), "sub_claim": get("sasl.oauthbearer.sub.claim.name") or "sub",
                "issuer": get("sasl.oauthbearer.expected.issuer") or None,
                "audience": [a.strip() for a in aud.split(",") if a.strip()] if aud else [],
                "skew_s": int(get("sasl.oauthbearer.clock.skew.seconds"))}

    def _jaas(self, listener: str, mech: str) -> jaas.JaasEntry | None:
        props = self.config.listener_props
        text = (props.get(f"listener.name.{listener.lower()}.{mech}.sasl.jaas.config")
                or props.get(f"listener.name.{listener.lower()}.sasl.jaas.config")
                or self.config["sasl.jaas.config"])
        if not text:
            return None
        try:
            return jaas.parse(text)
        except jaas.JaasError as e:
            raise ConfigError(f"Listener {listener}: invalid sasl.jaas.config: {e}") from None
