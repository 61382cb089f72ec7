"""The package works when installed from its wheel, outside the source tree.

One module-scoped build and install, then checks as a new user would meet the
project:

- ``python -m build`` makes the sdist, then the wheel *from that sdist* (so a
  file missing from the sdist breaks the wheel too); ``twine check --strict``
  passes; the wheel carries every message definition
  (``pykbroker/protocol_specs/*.json``, ``data/*.json``) and the license, and
  its metadata has the version, classifiers, URLs and the README.
- A fresh virtualenv (no system site-packages) gets only the wheel plus
  ``confluent-kafka`` and ``pytest``. Every command runs from a temporary
  directory with ``PYTHON*``/``PYTEST*`` variables removed, so the checkout
  cannot be imported by accident; ``pykbroker.__file__`` is asserted to be in
  the new virtualenv.
- From there: ``python -m pykbroker --help``, ``pykbroker --version``, the
  ``pykbroker`` script started on a free port with its data in a temporary
  directory round-trips 1,000 records with librdkafka (content, order,
  offsets), and a throw-away pytest project that uses the ``kafka_bootstrap``
  fixture passes.

Needs PyPI (or a warm pip cache) for the build backend and the wheel's
dependencies, as ``scripts/test`` does.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "protocol_specs"

# Nothing in the checkout that a build must not see or that is only heavy.
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", "*.pyc", "*.egg-info", "build", "dist",
    ".pytest_cache", ".hypothesis", "pykbroker-data",
)


def _clean_env(venv: Path | None = None) -> dict[str, str]:
    """The caller's environment minus anything that could point Python or
    pytest at the checkout (PYTHONPATH, PYTEST_ADDOPTS, VIRTUAL_ENV, ...)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV", "__PYVENV"))}
    if venv is not None:
        env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 300,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {r.returncode}\n"
                    f"--- stdout ---\n{r.stdout[-4000:]}\n--- stderr ---\n{r.stderr[-4000:]}")
    return r


class Installed:
    def __init__(self, dist: Path, venv: Path, cwd: Path):
        self.dist = dist
        self.venv = venv
        self.cwd = cwd  # a directory outside the checkout, for every command
        self.env = _clean_env(venv)
        self.python = venv / "bin" / "python"
        self.script = venv / "bin" / "pykbroker"

    @property
    def wheel(self) -> Path:
        (w,) = self.dist.glob("pykbroker-*.whl")
        return w

    @property
    def sdist(self) -> Path:
        (s,) = self.dist.glob("pykbroker-*.tar.gz")
        return s

    def run(self, *argv: str | Path, **kw) -> subprocess.CompletedProcess[str]:
        kw.setdefault("cwd", self.cwd)
        return _run(list(argv), env=self.env, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv, cwd = base / "src", base / "dist", base / "venv", base / "cwd"
    cwd.mkdir()
    # Build from a copy, so the build leaves nothing (egg-info) in the checkout.
    shutil.copytree(ROOT, src, ignore=_IGNORE, symlinks=True)
    env = _clean_env()
    _run([sys.executable, "-m", "build", "--outdir", dist, src], cwd=cwd, env=env, timeout=600)
    _run([sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir())],
         cwd=cwd, env=env)
    _run([sys.executable, "-m", "venv", venv], cwd=cwd, env=env)
    inst = Installed(dist, venv, cwd)
    inst.run(inst.python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
             "-q", inst.wheel, "confluent-kafka", "pytest", timeout=600)
    return inst


def _spec_files() -> set[str]:
    return {p.relative_to(SPECS).as_posix() for p in SPECS.rglob("*.json")}


def test_wheel_carries_specs_license_and_metadata(installed):
    specs = _spec_files()
    assert "api_versions.json" in specs and "headers.json" in specs
    assert any(s.startswith("data/") for s in specs)

    with zipfile.ZipFile(installed.wheel) as zf:
        names = set(zf.namelist())
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(meta_name).decode())
        (ep_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_name).decode()
    in_wheel = {n.removeprefix("pykbroker/protocol_specs/") for n in names
                if n.startswith("pykbroker/protocol_specs/") and n.endswith(".json")}
    assert in_wheel == specs, f"missing from the wheel: {sorted(specs - in_wheel)}"
    assert "pykbroker/protocol_specs/__init__.py" in names
    # the web console's templates and static files (server/console/)
    for f in ("templates/base.html", "templates/topic.html", "static/console.css", "static/console.js"):
        assert f"pykbroker/server/console/{f}" in names, f
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "compat_tests/", "protocol_specs/")) for n in names)

    with tarfile.open(installed.sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        sdist_names = {n.removeprefix(top + "/") for n in tf.getnames()}
    assert {f"protocol_specs/{s}" for s in specs} <= sdist_names
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py"} <= sdist_names

    from pykbroker import __version__  # the checkout's (editable install)

    assert meta["Name"] == "pykbroker"
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().lstrip().startswith("# pykbroker")
    classifiers = meta.get_all("Classifier")
    for c in ("Framework :: Pytest", "Topic :: System :: Networking",
              "Programming Language :: Python :: 3.11"):
        assert c in classifiers
    assert meta.get_all("Project-URL")
    assert "pykbroker = pykbroker.cli:main" in entry_points
    assert re.search(r"\[pytest11\]\s*\npykbroker = pykbroker.testing.plugin", entry_points)


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    r = installed.run(installed.python, "-c", textwrap.dedent("""
        import importlib.resources, pykbroker
        print(pykbroker.__file__)
        print(importlib.resources.files("pykbroker.protocol_specs") / "api_versions.json")
        print(pykbroker.__version__)
    """))
    mod_file, spec_file, version = r.stdout.split()
    venv = installed.venv.resolve()
    assert Path(mod_file).resolve().is_relative_to(venv)
    assert Path(spec_file).resolve().is_relative_to(venv)
    assert Path(spec_file).is_file()

    r = installed.run(installed.python, "-m", "pykbroker", "--help")
    assert r.stdout.startswith("usage: pykbroker")
    assert "--override" in r.stdout
    r = installed.run(installed.script, "--version")
    assert r.stdout.strip() == f"pykbroker {version}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"pykbroker exited {proc.returncode}\n{out}\n{err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.01)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"pykbroker did not listen within {timeout}s\n{out}\n{err}")


def test_installed_broker_round_trips_1000_records_with_librdkafka(installed, tmp_path):
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    port = _free_port()
    console_port = _free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [str(installed.script), "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
         "--override", f"log.dirs={data}", "--control", f"127.0.0.1:{console_port}"],
        cwd=installed.cwd, env=installed.env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        took = _wait_for_port(port, proc, timeout=30)
        print(f"installed pykbroker accepted connections {took * 1000:.0f} ms after spawn")
        bootstrap = f"127.0.0.1:{port}"
        topic = "wheel-roundtrip"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        fut = admin.create_topics([NewTopic(topic, 1, 1)])[topic]
        fut.result(timeout=30)

        n = 1000
        delivered: list[int] = []

        def on_delivery(err, msg):
            assert err is None, err
            delivered.append(msg.offset())

        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for i in range(n):
            producer.produce(topic, key=f"k{i}".encode(), value=f"record-{i:04d}".encode(),
                             on_delivery=on_delivery)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert delivered == list(range(n))

        consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap, "group.id": "wheel-check",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        try:
            consumer.subscribe([topic])
            got = []
            deadline = time.monotonic() + 60
            while len(got) < n and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=500, timeout=1.0):
                    assert m.error() is None, m.error()
                    got.append((m.partition(), m.offset(), m.key(), m.value()))
        finally:
            consumer.close()
        assert got == [(0, i, f"k{i}".encode(), f"record-{i:04d}".encode()) for i in range(n)]
        assert (data / f"{topic}-0" / "00000000000000000000.log").is_file()
        # the web console, served from the wheel's own templates and static files
        console = f"http://127.0.0.1:{console_port}/console"
        with urllib.request.urlopen(f"{console}/topics/{topic}", timeout=10) as r:
            page = r.read().decode()
        assert r.status == 200 and f'<span id="topic-name">{topic}</span>' in page
        with urllib.request.urlopen(f"{console}/static/console.css", timeout=10) as r:
            assert r.status == 200 and r.read()
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert "pykbroker ready: listening on 127.0.0.1:" in out, err


PROJECT_TEST = '''
import confluent_kafka


def test_round_trip(kafka_bootstrap, kafka_topic):
    p = confluent_kafka.Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):
        p.produce(kafka_topic, value=b"v%d" % i)
    assert p.flush(30) == 0
    c = confluent_kafka.Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "g",
                                  "auto.offset.reset": "earliest"})
    c.subscribe([kafka_topic])
    got = []
    for _ in range(60):
        for m in c.consume(num_messages=10, timeout=0.5):
            assert m.error() is None
            got.append((m.offset(), m.value()))
        if len(got) == 10:
            break
    c.close()
    assert got == [(i, b"v%d" % i) for i in range(10)]
'''


def test_throwaway_project_uses_the_pytest_fixtures(installed, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "test_it.py").write_text(PROJECT_TEST)
    r = installed.run(installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      cwd=proj, timeout=180, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
