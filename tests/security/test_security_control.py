"""The HTTP control endpoint over TLS (pykbroker.control.ssl.enable), with
an optional client certificate (listener.name.control.ssl.client.auth)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from pykbroker.testing.security import SecureBroker


def _get(url: str, ctx: ssl.SSLContext | None) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
        return r.status, json.loads(r.read())


def test_control_endpoint_over_tls(kafka_tls_ca):
    cfg = {"pykbroker.control.listener": "127.0.0.1:0", "pykbroker.control.ssl.enable": "true"}
    with SecureBroker(kafka_tls_ca, config=cfg) as kb:
        url = kb.thread.control_url
        assert url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(kafka_tls_ca.ca_pem))
        status, body = _get(f"{url}/health", ctx)
        assert status == 200 and body["status"] == "ok"
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain http on the TLS port
            _get(url.replace("https://", "http://") + "/health", None)
        # pykbroker ctl trusts the CA through SSL_CERT_FILE
        out = subprocess.run([sys.executable, "-m", "pykbroker", "ctl", "--control", url, "faults", "list"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SSL_CERT_FILE": str(kafka_tls_ca.ca_pem)})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == []


def test_control_endpoint_requiring_a_client_certificate(kafka_tls_ca):
    cfg = {"pykbroker.control.listener": "127.0.0.1:0", "pykbroker.control.ssl.enable": "true",
           "listener.name.control.ssl.client.auth": "required"}
    with SecureBroker(kafka_tls_ca, config=cfg) as kb:
        url = kb.thread.control_url
        ctx = ssl.create_default_context(cafile=str(kafka_tls_ca.ca_pem))
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _get(f"{url}/health", ctx)
        ctx.load_cert_chain(str(kb.client.cert), str(kb.client.key))
        assert _get(f"{url}/health", ctx)[0] == 200
