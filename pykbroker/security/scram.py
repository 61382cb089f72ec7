"""SCRAM (RFC 5802, RFC 7677) credentials and their store.

Only salted credentials are kept: salt, StoredKey = H(HMAC(SaltedPassword,
"Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key") and the
iteration count, per user and mechanism, in Kafka's text form
``salt=<b64>,stored_key=<b64>,server_key=<b64>,iterations=<n>``. A broker
with a log directory keeps them in ``<log dir>/scram-credentials.json``
(replaced atomically on every change); the in-memory engine keeps them in
memory; in cluster mode ZooKeeper holds them (``cluster/scram_credentials.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

# mechanism name -> (hash name, AlterUserScramCredentials mechanism byte)
MECHANISMS: dict[str, tuple[str, int]] = {"SCRAM-SHA-256": ("sha256", 1), "SCRAM-SHA-512": ("sha512", 2)}
BY_TYPE = {code: name for name, (_, code) in MECHANISMS.items()}
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def hmac_(hash_name: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hash_name).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(Normalize(password), salt, i) = PBKDF2 with HMAC-H."""
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism][0], password.encode(), salt, iterations)


@attrs.frozen
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @classmethod
    def from_salted_password(cls, mechanism: str, salted: bytes, salt: bytes, iterations: int) -> "ScramCredential":
        h = MECHANISMS[mechanism][0]
        client_key = hmac_(h, salted, b"Client Key")
        return cls(salt, hashlib.new(h, client_key).digest(), hmac_(h, salted, b"Server Key"), iterations)

    @classmethod
    def from_password(cls, mechanism: str, password: str, iterations: int = MIN_ITERATIONS,
                      salt: bytes | None = None) -> "ScramCredential":
        salt = os.urandom(32) if salt is None else salt
        return cls.from_salted_password(mechanism, salted_password(mechanism, password, salt, iterations),
                                        salt, iterations)

    def to_text(self) -> str:
        return (f"salt={_b64(self.salt)},stored_key={_b64(self.stored_key)},"
                f"server_key={_b64(self.server_key)},iterations={self.iterations}")

    @classmethod
    def from_text(cls, text: str) -> "ScramCredential":
        kv = dict(p.split("=", 1) for p in text.split(","))
        return cls(base64.b64decode(kv["salt"]), base64.b64decode(kv["stored_key"]),
                   base64.b64decode(kv["server_key"]), int(kv["iterations"]))


class CredentialStore:
    """user -> mechanism -> ScramCredential; persisted when ``path`` is given."""

    FILE = "scram-credentials.json"

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.users: dict[str, dict[str, ScramCredential]] = {}
        self._save_lock = threading.Lock()  # saves may run in worker threads
        self._taken = 0  # snapshots taken / the newest one written: an older one is never written over it
        self._written = 0
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            for user, mechs in data.get("users", {}).items():
                self.users[user] = {m: ScramCredential.from_text(t) for m, t in mechs.items()}

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.users.get(user, {}).get(mechanism)

    def put(self, user: str, mechanism: str, cred: ScramCredential) -> None:
        self.users.setdefault(user, {})[mechanism] = cred

    def delete(self, user: str, mechanism: str) -> bool:
        mechs = self.users.get(user)
        if not mechs or mechanism not in mechs:
            return False
        del mechs[mechanism]
        if not mechs:
            del self.users[user]
        return True

    def add_user(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512",
                 iterations: int = MIN_ITERATIONS) -> None:
        """Add (or replace) a user's credential from a password (the password is not kept)."""
        self.put(user, mechanism, ScramCredential.from_password(mechanism, password, iterations))
        self.save()

    def save(self) -> None:
        self.write(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The file's content now (take it on the thread that changes the store)."""
        self._taken += 1
        return {"version": 1, "seq": self._taken,
                "users": {u: {m: c.to_text() for m, c in ms.items()} for u, ms in sorted(self.users.items())}}

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data`` atomically (safe from worker threads)."""
        if self.path is None:
            return
        with self._save_lock:
            if data["seq"] > self._written:
                self._write(self.path, {k: v for k, v in data.items() if k != "seq"})
                self._written = data["seq"]

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def add_user(log_dir: str | Path, user: str, password: str, mechanism: str = "SCRAM-SHA-512",
             iterations: int = MIN_ITERATIONS) -> None:
    """Add a SCRAM user to a broker's log directory before it starts (like
    ``kafka-storage format --add-scram``)."""
    d = Path(log_dir)
    d.mkdir(parents=True, exist_ok=True)
    CredentialStore(d / CredentialStore.FILE).add_user(user, password, mechanism, iterations)


class CredentialSink(Protocol):
    """Where altered credentials are kept (AlterUserScramCredentials): the
    broker's file, or ZooKeeper in a cluster (``cluster/scram_credentials.py``)."""

    async def save(self, users: set[str]) -> None:
        """Persist ``users``' credentials as they are now in the store."""


class FileCredentials:
    """A lone broker: the whole store written to its file in a worker thread."""

    def __init__(self, store: CredentialStore) -> None:
        self.store = store

    async def save(self, users: set[str]) -> None:
        if users:
            await trio.to_thread.run_sync(self.store.write, self.store.snapshot())
