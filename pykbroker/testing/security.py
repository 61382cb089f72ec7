"""Throw-away PKI and credentials for tests of TLS and SASL clients.

::

    from pykbroker.testing.security import TestCA, secure_broker

    ca = TestCA(tmp_path)                       # a CA (EC P-256, 1 day)
    server = ca.issue("localhost", server=True)  # cert for 127.0.0.1/localhost
    client = ca.issue("client", ou="test")       # principal User:CN=client,OU=test
    with secure_broker(ca, users={"alice": "alice-secret"}) as kafka:
        kafka.bootstrap_for("SASL_SSL")
        kafka.librdkafka_config("SASL_SSL", "alice", mechanism="SCRAM-SHA-512")

Needs the ``cryptography`` package (in pykbroker's ``test`` extra); the
broker itself only uses the standard library's ``ssl`` for PEM files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class CertFiles:
    cert: Path  # PEM certificate
    key: Path  # PEM private key (unencrypted unless key_password was given)
    keystore: Path  # PEM key + certificate chain in one file (Kafka's ssl.keystore.type=PEM)
    subject: str  # RFC 2253 DN, as the broker's principal builder prints it


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TestCA:
    """A certificate authority in ``directory`` (``ca.pem``, ``ca-key.pem``)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str | Path, name: str = "pykbroker test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._name = subject
        self._cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(_now() - dt.timedelta(minutes=5))
                      .not_valid_after(_now() + dt.timedelta(days=1))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                   content_commitment=False, key_encipherment=False,
                                                   data_encipherment=False, key_agreement=False,
                                                   encipher_only=False, decipher_only=False), critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.ca_pem = self.dir / "ca.pem"
        self.ca_pem.write_bytes(self._pem(self._cert))

    @staticmethod
    def _pem(obj: Any, password: str | None = None) -> bytes:
        from cryptography.hazmat.primitives import serialization

        if hasattr(obj, "private_bytes"):
            enc = (serialization.BestAvailableEncryption(password.encode()) if password
                   else serialization.NoEncryption())
            return bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
        return bytes(obj.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool = False, ou: str | None = None, org: str | None = None,
              hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), expired: bool = False,
              key_password: str | None = None, filename: str | None = None) -> CertFiles:
        """A certificate signed by this CA: ``server`` for a broker (SANs from
        ``hosts``), else a client certificate; ``expired`` for one that ended
        yesterday."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        attrs_ = []
        if org:
            attrs_.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        if ou:
            attrs_.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
        attrs_.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        start = _now() - (dt.timedelta(days=3) if expired else dt.timedelta(minutes=5))
        end = _now() - dt.timedelta(days=1) if expired else _now() + dt.timedelta(days=1)
        b = (x509.CertificateBuilder().subject_name(x509.Name(attrs_)).issuer_name(self._name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                   else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            sans: list[Any] = []
            for h in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    sans.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self._key, hashes.SHA256())
        stem = filename or cn.replace("/", "_")
        cert_path, key_path, ks_path = (self.dir / f"{stem}.pem", self.dir / f"{stem}-key.pem",
                                        self.dir / f"{stem}-keystore.pem")
        cert_path.write_bytes(self._pem(cert))
        key_path.write_bytes(self._pem(key, key_password))
        ks_path.write_bytes(self._pem(key, key_password) + self._pem(cert))
        dn = ",".join(p for p in (f"CN={cn}", f"OU={ou}" if ou else "", f"O={org}" if org else "") if p)
        return CertFiles(cert_path, key_path, ks_path, dn)

    def pkcs12(self, files: CertFiles, password: str, filename: str | None = None) -> Path:
        """``files`` as a PKCS12 key store (``ssl.keystore.type=PKCS12``)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        key = serialization.load_pem_private_key(files.key.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        data = pkcs12.serialize_key_and_certificates(b"pykbroker", key, cert, [self._cert],  # type: ignore[arg-type]
                                                     serialization.BestAvailableEncryption(password.encode()))
        path = self.dir / (filename or files.cert.stem + ".p12")
        path.write_bytes(data)
        return path


JAAS_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule required"
JAAS_OAUTH = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required"


def secure_properties(ca: TestCA, server: CertFiles, users: dict[str, str], *,
                      host: str = "127.0.0.1", mechanisms: str = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
                      client_auth: str = "required") -> dict[str, str]:
    """Broker properties with four listeners on free ports: PLAINTEXT, SSL
    (client certificates ``client_auth``), SASL_PLAINTEXT and SASL_SSL
    (``mechanisms``; PLAIN users = ``users``)."""
    plain_users = " ".join(f'user_{u}="{p}"' for u, p in users.items())
    props = {
        "listeners": f"PLAINTEXT://{host}:0,SSL://{host}:0,SASL_PLAINTEXT://{host}:0,SASL_SSL://{host}:0",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(server.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca.ca_pem),
        "listener.name.ssl.ssl.client.auth": client_auth,
        "sasl.enabled.mechanisms": mechanisms,
    }
    for lst in ("sasl_plaintext", "sasl_ssl"):
        props[f"listener.name.{lst}.plain.sasl.jaas.config"] = f"{JAAS_PLAIN} {plain_users};"
        props[f"listener.name.{lst}.oauthbearer.sasl.jaas.config"] = f"{JAAS_OAUTH} ;"
    return props


class SecureBroker:
    """A :class:`~pykbroker.testing.BrokerThread` with TLS and SASL listeners,
    its CA, a client certificate and SCRAM/PLAIN users (same passwords)."""

    def __init__(self, ca: TestCA, users: dict[str, str] | None = None,
                 config: dict[str, Any] | None = None, client_auth: str = "required") -> None:
        from .embedded import BrokerThread

        self.ca = ca
        self.users = dict(users or {"alice": "alice-secret", "admin": "admin-secret"})
        self.server = ca.issue("localhost", server=True, filename="broker")
        self.client = ca.issue("client", ou="test", filename="client")
        props = secure_properties(ca, self.server, self.users, client_auth=client_auth)
        props.update(config or {})
        self.thread = BrokerThread(props)

    def start(self) -> "SecureBroker":
        self.thread.start()
        for user, password in self.users.items():
            self.add_scram_user(user, password)
        return self

    def stop(self) -> None:
        self.thread.stop()

    def __enter__(self) -> "SecureBroker":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add_scram_user(self, user: str, password: str,
                       mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512")) -> None:
        store = self.thread.broker.state.security.scram
        for m in mechanisms:
            self.thread.call(lambda m=m: store.add_user(user, password, m))

    def bootstrap_for(self, listener: str) -> str:
        return str(self.thread.broker.bootstrap_for(listener))

    # -- client configurations (the ones docs/security.md shows, tested in tests/security) --
    def librdkafka_config(self, listener: str, user: str | None = None, *, mechanism: str = "SCRAM-SHA-512",
                          password: str | None = None, cert: CertFiles | None = None) -> dict[str, str]:
        """confluent-kafka / librdkafka properties for ``listener``."""
        conf = {"bootstrap.servers": self.bootstrap_for(listener), "security.protocol": listener}
        if "SSL" in listener:
            conf["ssl.ca.location"] = str(self.ca.ca_pem)
            cert = cert or (self.client if listener == "SSL" else None)
            if cert is not None:
                conf["ssl.certificate.location"] = str(cert.cert)
                conf["ssl.key.location"] = str(cert.key)
        if listener.startswith("SASL_"):
            conf["sasl.mechanism"] = mechanism
            if mechanism == "OAUTHBEARER":
                conf["enable.sasl.oauthbearer.unsecure.jwt"] = "true"
                conf["sasl.oauthbearer.config"] = f"principal={user or 'alice'}"
            else:
                conf["sasl.username"] = user or "alice"
                conf["sasl.password"] = password if password is not None else self.users[user or "alice"]
        return conf

    def kafka_python_config(self, listener: str, user: str | None = None, *, mechanism: str = "SCRAM-SHA-512",
                            password: str | None = None, cert: CertFiles | None = None) -> dict[str, Any]:
        """kafka-python (and, minus the ssl_* keys, aiokafka) keyword arguments."""
        conf: dict[str, Any] = {"bootstrap_servers": self.bootstrap_for(listener), "security_protocol": listener}
        if "SSL" in listener:
            conf["ssl_cafile"] = str(self.ca.ca_pem)
            cert = cert or (self.client if listener == "SSL" else None)
            if cert is not None:
                conf["ssl_certfile"] = str(cert.cert)
                conf["ssl_keyfile"] = str(cert.key)
        if listener.startswith("SASL_"):
            conf["sasl_mechanism"] = mechanism
            conf["sasl_plain_username"] = user or "alice"
            conf["sasl_plain_password"] = password if password is not None else self.users[user or "alice"]
        return conf

    def ssl_context(self, cert: CertFiles | None = None) -> Any:
        """An ``ssl.SSLContext`` trusting the CA (aiokafka's ``ssl_context``)."""
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca.ca_pem))
        if cert is not None:
            ctx.load_cert_chain(str(cert.cert), str(cert.key))
        return ctx
