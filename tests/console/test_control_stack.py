"""The control endpoint's HTTP stack (Starlette on Hypercorn's trio worker):
it stays out of a broker that does not use it, a login guards every route,
a non-loopback address needs TLS and a login, and the ``pykbroker`` command
opens the console by default (after its ready line) and prints its URL.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from pykbroker.config import BrokerConfig, ConfigError

HTTP_STACK = ("starlette", "hypercorn", "jinja2", "h11", "h2")


def test_a_broker_without_the_console_never_imports_the_http_stack():
    code = textwrap.dedent("""
        import sys, trio
        from pykbroker.broker import Broker
        async def main():
            async with Broker({"listeners": "PLAINTEXT://127.0.0.1:0", "pykbroker.storage": "memory"}) as b:
                assert b.control_url is None
        trio.run(main)
        print(sorted({m.split(".")[0] for m in sys.modules}))
    """)
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout.strip().replace("'", '"')))
    assert not loaded & set(HTTP_STACK), loaded & set(HTTP_STACK)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "pykbroker" in imported and not imported & set(HTTP_STACK)


def _get(url: str, auth: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_login_guards_every_route():
    from pykbroker.testing import BrokerThread

    with BrokerThread({"pykbroker.control.auth.user": "ops", "pykbroker.control.auth.password": "s3cret",
                       "pykbroker.console.enable": True}, control=True) as b:
        for path in ("/health", "/topics", "/console/cluster", "/console/static/console.css"):
            code, body = _get(b.control_url + path)
            assert code == 401 and json.loads(body) == {"error": "authentication required"}, path
            assert _get(b.control_url + path, "ops:wrong")[0] == 401
            assert _get(b.control_url + path, "ops:s3cret")[0] == 200, path


def test_non_loopback_needs_tls_and_a_login():
    base = {"pykbroker.control.listener": "0.0.0.0:0"}
    with pytest.raises(ConfigError, match="loopback addresses only"):
        BrokerConfig(overrides=base)
    with pytest.raises(ConfigError, match="loopback addresses only"):
        BrokerConfig(overrides={**base, "pykbroker.control.ssl.enable": "true"})
    with pytest.raises(ConfigError, match="loopback addresses only"):
        BrokerConfig(overrides={**base, "pykbroker.control.auth.user": "ops",
                                "pykbroker.control.auth.password": "x"})
    BrokerConfig(overrides={**base, "pykbroker.control.ssl.enable": "true", "pykbroker.control.auth.user": "ops",
                            "pykbroker.control.auth.password": "x"})


def test_the_command_opens_the_console_by_default_and_prints_its_url(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "pykbroker", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                             "--override", "pykbroker.storage=memory"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("pykbroker ready:"), ready
        line = proc.stdout.readline()  # the console comes after the ready line
        if not line.startswith("pykbroker console:"):
            pytest.skip(f"the default console address is taken here: {line!r}")
        url = line.split()[-1]
        deadline = time.monotonic() + 10
        while True:
            try:
                code, page = _get(url + "/cluster")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert code == 200 and "<h1>Cluster</h1>" in page
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_no_console_flag():
    from pykbroker.cli import build_config, parse_args

    assert build_config(parse_args([]))["pykbroker.console.enable"] is True
    assert build_config(parse_args(["--no-console"]))["pykbroker.console.enable"] is False
    zk = build_config(parse_args(["--override", "zookeeper.connect=127.0.0.1:2181"]))
    assert zk["pykbroker.console.enable"] is False  # a cluster member: only when asked


def test_cross_site_and_rebinding_requests_are_refused():
    import http.client

    from pykbroker.testing import BrokerThread

    with BrokerThread({"pykbroker.console.enable": True}, control=True) as b:
        host, port = b.control_url.removeprefix("http://").split(":")

        def req(method: str, path: str, headers: dict[str, str], body: str = "") -> tuple[int, str]:
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                c.request(method, path, body=body or None, headers=headers)
                r = c.getresponse()
                return r.status, r.read().decode()
            finally:
                c.close()

        form = {"Content-Type": "application/x-www-form-urlencoded"}
        # a form posted from another site (CSRF): refused, nothing created
        code, body = req("POST", "/console/topics", {**form, "Origin": "http://evil.example"}, "name=csrf")
        assert code == 403 and "cross-origin" in json.loads(body)["error"]
        code, body = req("POST", "/faults", {"Origin": "null", "Content-Type": "text/plain"},
                         '{"action": "fail", "api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER"}')
        assert code == 403
        assert "csrf" not in b.topics() and b.faults.list() == []
        # DNS rebinding: another site's name pointing at 127.0.0.1
        code, body = req("GET", "/topics", {"Host": f"evil.example:{port}"})
        assert code == 403 and "loopback" in json.loads(body)["error"]
        # the same form from the console's own page, and clients without Origin, pass
        code, _ = req("POST", "/console/topics", {**form, "Origin": f"http://{host}:{port}"}, "name=same-site")
        assert code == 200 and "same-site" in b.topics()
        assert req("GET", "/health", {"Host": f"localhost:{port}"})[0] == 200
        assert req("GET", "/health", {})[0] == 200
