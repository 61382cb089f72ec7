"""TLS server (and inter-broker client) contexts from Kafka's ``ssl.*`` properties, and principals from
client certificates.

Key stores: ``ssl.keystore.type=PEM`` (``ssl.keystore.location`` holding the
private key and the certificate chain, or ``ssl.keystore.key`` +
``ssl.keystore.certificate.chain`` inline; ``ssl.key.password`` for an
encrypted key) or ``PKCS12`` (read with the ``cryptography`` package, only
imported then). Trust stores: PEM (``ssl.truststore.location`` or
``ssl.truststore.certificates``) or PKCS12. JKS is not supported.

Principal of a client certificate (``ssl.principal.mapping.rules``): the
subject as Java's ``X500Principal.getName()`` prints it (RFC 2253: last RDN
first, e.g. ``CN=client,OU=eng,O=Acme,C=US``), then the first rule that
matches the whole name: ``RULE:pattern/replacement/[LU]`` or ``DEFAULT``.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from ..config import ConfigError

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
             "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1": ssl.TLSVersion.TLSv1}


def _load_chain_from_pem_text(ctx: ssl.SSLContext, key: str, chain: str, password: str | None) -> None:
    # ssl wants files: a private temporary file, removed right after loading
    fd, path = tempfile.mkstemp(prefix="pykbroker-key-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key.strip() + "\n" + chain.strip() + "\n")
        ctx.load_cert_chain(path, password=password)
    finally:
        os.unlink(path)


def _pkcs12(path: str, password: str | None) -> tuple[Any, Any, list[Any]]:
    try:
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:
        raise ConfigError("PKCS12 stores need the 'cryptography' package") from None
    with open(path, "rb") as f:
        data = f.read()
    return pkcs12.load_key_and_certificates(data, password.encode() if password else None)


def _pem(obj: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    pem: bytes
    if hasattr(obj, "private_bytes"):
        pem = obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    else:
        pem = obj.public_bytes(serialization.Encoding.PEM)
    return pem.decode()


def _versions(ctx: ssl.SSLContext, get: Callable[[str], Any], listener: str) -> None:
    versions = [v.strip() for v in (get("ssl.enabled.protocols") or "").split(",") if v.strip()]
    known = [_VERSIONS[v] for v in versions if v in _VERSIONS]
    if not known:
        raise ConfigError(f"Listener {listener}: ssl.enabled.protocols names no supported protocol")
    ctx.minimum_version = min(known)
    ctx.maximum_version = max(known)
    if get("ssl.cipher.suites"):
        ctx.set_ciphers(":".join(c.strip() for c in get("ssl.cipher.suites").split(",")))


def _has_keystore(get: Callable[[str], Any]) -> bool:
    return bool(get("ssl.keystore.location") or get("ssl.keystore.key") or get("ssl.keystore.certificate.chain"))


def _load_keystore(ctx: ssl.SSLContext, get: Callable[[str], Any], listener: str) -> None:
    ktype = (get("ssl.keystore.type") or "JKS").upper()
    loc = get("ssl.keystore.location")
    if get("ssl.keystore.key") or get("ssl.keystore.certificate.chain"):
        if not (get("ssl.keystore.key") and get("ssl.keystore.certificate.chain")):
            raise ConfigError(f"Listener {listener}: ssl.keystore.key and ssl.keystore.certificate.chain "
                              "go together")
        _load_chain_from_pem_text(ctx, get("ssl.keystore.key"), get("ssl.keystore.certificate.chain"),
                                  get("ssl.key.password"))
    elif not loc:
        raise ConfigError(f"Listener {listener}: ssl.keystore.location is required for TLS")
    elif ktype == "PEM":
        ctx.load_cert_chain(loc, password=get("ssl.key.password"))
    elif ktype == "PKCS12":
        key, cert, extra = _pkcs12(loc, get("ssl.keystore.password"))
        if key is None or cert is None:
            raise ConfigError(f"Listener {listener}: {loc} holds no private key and certificate")
        _load_chain_from_pem_text(ctx, _pem(key), "".join(_pem(c) for c in [cert, *extra]), None)
    else:
        raise ConfigError(f"Listener {listener}: ssl.keystore.type {ktype} is not supported (PEM, PKCS12)")


def _load_truststore(ctx: ssl.SSLContext, get: Callable[[str], Any], listener: str, purpose: ssl.Purpose) -> None:
    ttype = (get("ssl.truststore.type") or "JKS").upper()
    tloc = get("ssl.truststore.location")
    if get("ssl.truststore.certificates"):
        ctx.load_verify_locations(cadata=get("ssl.truststore.certificates"))
    elif tloc and ttype == "PEM":
        ctx.load_verify_locations(cafile=tloc)
    elif tloc and ttype == "PKCS12":
        _, cert, extra = _pkcs12(tloc, get("ssl.truststore.password"))
        ctx.load_verify_locations(cadata="".join(_pem(c) for c in [cert, *extra] if c is not None))
    elif tloc:
        raise ConfigError(f"Listener {listener}: ssl.truststore.type {ttype} is not supported (PEM, PKCS12)")
    else:
        ctx.load_default_certs(purpose)


def _loading(listener: str) -> Callable[[Exception], ConfigError]:
    def wrap(e: Exception) -> ConfigError:
        if isinstance(e, ConfigError):
            return e
        return ConfigError(f"Listener {listener}: cannot load TLS key or certificates: {e}")
    return wrap


def server_context(get: Callable[[str], Any], listener: str) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` for ``listener``; ``get(prop)`` reads a property
    with the listener's override applied."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions(ctx, get, listener)
    try:
        _load_keystore(ctx, get, listener)
        _load_truststore(ctx, get, listener, ssl.Purpose.CLIENT_AUTH)  # client certificates
    except (OSError, ssl.SSLError, ValueError) as e:
        raise _loading(listener)(e) from None
    auth = get("ssl.client.auth") or "none"
    ctx.verify_mode = {"required": ssl.CERT_REQUIRED, "requested": ssl.CERT_OPTIONAL}.get(auth, ssl.CERT_NONE)
    return ctx


def client_context(get: Callable[[str], Any], listener: str) -> ssl.SSLContext:
    """The context a broker connects to another broker's ``listener`` with
    (the inter-broker listener): the same trust store verifies the peer's
    certificate, its host name checked unless
    ``ssl.endpoint.identification.algorithm`` is empty (Kafka's default
    ``https`` checks it); the key store, when set, is the broker's client
    certificate (mTLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _versions(ctx, get, listener)
    try:
        _load_truststore(ctx, get, listener, ssl.Purpose.SERVER_AUTH)
        if _has_keystore(get):
            _load_keystore(ctx, get, listener)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise _loading(listener)(e) from None
    algorithm = get("ssl.endpoint.identification.algorithm")
    ctx.check_hostname = bool(algorithm and str(algorithm).strip())
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# -- principals ------------------------------------------------------------------------------

_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "localityName": "L", "stateOrProvinceName": "ST", "streetAddress": "STREET",
          "domainComponent": "DC", "userId": "UID"}


def _escape(v: str) -> str:
    out = re.sub(r'([,+"\\<>;=])', r"\\\1", v)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def subject_dn(cert: dict[str, Any]) -> str:
    """RFC 2253 distinguished name of ``ssl.SSLSocket.getpeercert()``'s subject."""
    rdns = []
    for rdn in reversed(cert.get("subject", ())):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


_RULE = re.compile(r"\s*(?:(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?))\s*(?:,|$)")


class PrincipalMapper:
    """``ssl.principal.mapping.rules``: the first rule whose pattern matches the
    whole DN gives the name; none matching is an authentication failure."""

    def __init__(self, rules: str) -> None:
        self.rules: list[tuple[re.Pattern[str] | None, str, str]] = []
        pos = 0
        text = rules.strip() or "DEFAULT"
        while pos < len(text):
            m = _RULE.match(text, pos)
            if not m or m.end() == pos:
                raise ConfigError(f"Invalid rule in ssl.principal.mapping.rules: {text[pos:]!r}")
            if m.group(1):
                self.rules.append((None, "", ""))
            else:
                try:
                    pat = re.compile(m.group(2))
                except re.error as e:
                    raise ConfigError(f"Invalid pattern in ssl.principal.mapping.rules: {e}") from None
                repl = re.sub(r"\$(\d+)", r"\\g<\1>", m.group(3).replace("\\/", "/"))
                self.rules.append((pat, repl, m.group(4)))
            pos = m.end()

    def name(self, dn: str) -> str:
        for pat, repl, case in self.rules:
            if pat is None:
                return dn
            if pat.fullmatch(dn):
                out = pat.sub(repl, dn)
                return out.lower() if case == "L" else out.upper() if case == "U" else out
        raise ValueError(f"No rules apply to {dn}")
