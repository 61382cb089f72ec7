"""JWS signature checks against a JSON Web Key Set, for OAUTHBEARER with
Kafka's ``OAuthBearerValidatorCallbackHandler``
(``sasl.oauthbearer.jwks.endpoint.url``: ``https://``, ``http://`` or
``file:``). The key set is read once when the broker starts. RSA (RS256,
RS384, RS512) and EC (ES256, ES384, ES512) keys; the ``cryptography``
package is imported only when this validator is configured.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from ..config import ConfigError

_HASHES = {"256": "SHA256", "384": "SHA384", "512": "SHA512"}


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int(s: str) -> int:
    return int.from_bytes(b64url(s), "big")


class KeySet:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        try:
            from cryptography.hazmat.primitives.asymmetric import ec, rsa
        except ImportError:
            raise ConfigError("sasl.oauthbearer.jwks.endpoint.url needs the 'cryptography' package") from None
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:  # file:, http:, https:
                doc = json.loads(r.read())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the JWKS at {url}: {e}") from None
        self.keys: dict[str | None, tuple[str, Any]] = {}
        curves: dict[str, Any] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
        for k in doc.get("keys", []) if isinstance(doc, dict) else []:
            key: Any
            try:
                if k.get("kty") == "RSA":
                    key = rsa.RSAPublicNumbers(_int(k["e"]), _int(k["n"])).public_key()
                elif k.get("kty") == "EC" and k.get("crv") in curves:
                    key = ec.EllipticCurvePublicNumbers(_int(k["x"]), _int(k["y"]), curves[k["crv"]]()).public_key()
                else:
                    continue
            except (KeyError, ValueError, TypeError):
                continue
            if k.get("use", "sig") == "sig":
                self.keys[k.get("kid")] = (k["kty"], key)
        if not self.keys:
            raise ConfigError(f"the JWKS at {url} has no usable signing keys")

    def verify(self, alg: str, kid: str | None, signing_input: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        entry = self.keys.get(kid) if kid is not None else (next(iter(self.keys.values()))
                                                            if len(self.keys) == 1 else None)
        if entry is None or len(alg) != 5 or alg[2:] not in _HASHES:
            return False
        kty, key = entry
        h = getattr(hashes, _HASHES[alg[2:]])()
        try:
            if alg.startswith("RS") and kty == "RSA":
                key.verify(signature, signing_input, padding.PKCS1v15(), h)
            elif alg.startswith("ES") and kty == "EC":
                n = len(signature) // 2
                der = encode_dss_signature(int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big"))
                key.verify(der, signing_input, ec.ECDSA(h))
            else:
                return False
        except (InvalidSignature, ValueError):
            return False
        return True
