"""Kafka release emulation (``--as-version``).

What is proved here:
- the release table agrees with facts from Kafka's message definitions and
  ../shared/kafka-protocol/CLIENT_VERSIONS.md (spot checks per release, and
  the 4.3 row against the 4.3.1 JSON when that folder exists);
- for every release, ApiVersions advertises exactly (release range ∩ what
  pykbroker serves), and the broker accepts nothing outside it (ApiVersions
  above the range gets the KIP-511 v0 reply, other APIs close the connection);
- acceptance: a broker started with ``--as-version 3.9`` makes
  confluent-kafka, kafka-python and aiokafka each use, per API, the lower of
  the version it uses against an unrestricted pykbroker and Kafka 3.9's
  maximum (read from the JSON trace on the broker's stderr).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pykbroker.handlers import REGISTRY, load_all
from pykbroker.protocol import codec, errors
from pykbroker.protocol.framing import decode_response
from pykbroker.testing.releases import RELEASES, normalize, ranges
from rawclient import ConnectionClosed, RawClient
from testing_clients import CLIENTS

SHARED_MESSAGES = Path(__file__).resolve().parents[3] / "shared" / "kafka-protocol" / "message"


def test_release_names():
    assert {"2.8", "3.0", "3.5", "3.9", "4.0", "4.1"} <= set(RELEASES)
    assert normalize("3.9.1") == normalize("v3.9") == "3.9"
    for bad in ("3.10", "9.9", "3", "latest", "3.9.x"):
        with pytest.raises(ValueError):
            normalize(bad)


@pytest.mark.parametrize("release,key,want", [
    ("2.8", 18, (0, 3)), ("2.8", 3, (0, 11)), ("2.8", 1, (0, 12)), ("2.8", 0, (0, 9)),
    ("3.0", 2, (0, 7)), ("3.7", 0, (0, 10)), ("3.8", 75, (0, 0)),
    ("3.9", 18, (0, 4)), ("3.9", 0, (0, 11)), ("3.9", 1, (0, 17)), ("3.9", 3, (0, 12)), ("3.9", 2, (0, 9)),
    ("4.0", 0, (0, 12)), ("4.0", 1, (4, 17)), ("4.0", 2, (1, 10)), ("4.0", 11, (2, 9)), ("4.0", 8, (2, 9)),
    ("4.1", 0, (0, 13)), ("4.1", 1, (4, 18)), ("4.1", 11, (0, 9)), ("4.1", 8, (2, 9)),
    ("4.2", 2, (1, 11)), ("4.2", 8, (2, 10)), ("4.3", 35, (1, 5)),
])
def test_table_facts(release, key, want):
    """Spot checks from the JSON history and CLIENT_VERSIONS.md."""
    assert ranges(release)[key] == want


def test_table_absences():
    assert 68 not in ranges("3.9") and ranges("4.0")[68] == (0, 1)  # KIP-848 GA in 4.0
    assert 75 not in ranges("3.7")  # DescribeTopicPartitions is new in 3.8
    assert 4 in ranges("3.9") and 4 not in ranges("4.0")  # ZooKeeper-era LeaderAndIsr gone in 4.0
    assert 71 not in ranges("4.1")  # telemetry: only with a ClientTelemetry reporter


@pytest.mark.skipif(not SHARED_MESSAGES.is_dir(), reason="../shared/kafka-protocol/message not present")
def test_latest_row_matches_the_4_3_json():
    """The 4.3 row's maxima equal Kafka 4.3.1's validVersions (minus an
    unstable latest version) for every API the row lists."""
    row = ranges("4.3")
    checked = 0
    for path in SHARED_MESSAGES.glob("*Request.json"):
        text = "\n".join(re.sub(r"^\s*//.*$", "", line) for line in path.read_text().splitlines())
        key = int(re.search(r'"apiKey"\s*:\s*(\d+)', text).group(1))
        valid = re.search(r'"validVersions"\s*:\s*"([^"]+)"', text).group(1)
        if key not in row or valid == "none":
            continue
        hi = int(valid.split("-")[-1])
        if re.search(r'"latestVersionUnstable"\s*:\s*true', text):
            hi -= 1
        assert row[key][1] == hi, (path.name, row[key], valid)
        checked += 1
    assert checked > 40


def _expected(release: str) -> dict[int, tuple[int, int]]:
    out = {}
    rel = ranges(release)
    for key, h in load_all().items():
        if key not in rel:
            continue
        lo, hi = max(h.advertised_min, rel[key][0]), min(h.max_version, rel[key][1])
        if lo <= hi:
            out[key] = (lo, hi)
    return out


@pytest.mark.parametrize("release", RELEASES)
def test_advertised_is_release_intersect_served(kafka_broker_factory, release):
    b = kafka_broker_factory(as_version=release)
    want = _expected(release)
    assert b.api_versions() == want
    with RawClient(b.bootstrap) as c:  # over the wire too
        got = c.call(18, 0, {})
    assert {e["api_key"]: (e["min_version"], e["max_version"]) for e in got["api_keys"]} == want


def test_versions_outside_the_release_are_refused(kafka_broker_factory):
    b = kafka_broker_factory(as_version="2.8")
    with RawClient(b.bootstrap) as c:
        c.send_frame(c.encode(18, 4, {"client_software_name": "x", "client_software_version": "1"}))
        _, resp = decode_response(codec.api(18), 0, c.read_frame())  # answered as v0
    # KIP-511: the v0 reply carries UNSUPPORTED_VERSION and our ApiVersions range
    assert resp["error_code"] == errors.UNSUPPORTED_VERSION
    assert [(e["api_key"], e["min_version"], e["max_version"]) for e in resp["api_keys"]] == [(18, 0, 3)]
    with RawClient(b.bootstrap) as c:
        assert c.call(3, 11, {"topics": []})["brokers"]  # Metadata 11: in 2.8's range
        with pytest.raises(ConnectionClosed):
            c.call(3, 12, {"topics": []})  # Metadata 12 came with 3.1
    if 11 in REGISTRY:  # JoinGroup: 4.0 raised the minimum to 2
        b40 = kafka_broker_factory(as_version="4.0")
        assert b40.api_versions()[11][0] >= 2


def _trace_versions(log_text: str) -> dict[str, dict[str, set[int]]]:
    """{client_id: {api: {versions}}} from the JSON trace lines of a broker log."""
    out: dict[str, dict[str, set[int]]] = {}
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        ev = doc.get("trace")
        if not ev or ev.get("dir") != "request" or not ev.get("client_id"):
            continue
        out.setdefault(ev["client_id"], {}).setdefault(ev["api"], set()).add(ev["version"])
    return out


def _in_process_versions(kafka_broker_factory) -> dict[str, dict[str, set[int]]]:
    b = kafka_broker_factory(trace=True)
    for name, fn in CLIENTS.items():
        assert fn(b.bootstrap, f"v-{name}", b"v", client_id=f"base-{name}") == [b"v"]
    out: dict[str, dict[str, set[int]]] = {}
    for ev in b.trace():
        if ev["dir"] == "request" and ev["client_id"]:
            out.setdefault(ev["client_id"], {}).setdefault(ev["api"], set()).add(ev["version"])
    return out


def test_as_version_3_9_clients_negotiate_against_kafka_3_9(broker_factory, kafka_broker_factory):
    """Acceptance: each client negotiates the versions it uses against Kafka 3.9."""
    baseline = _in_process_versions(kafka_broker_factory)
    b = broker_factory({"pykbroker.storage": "memory"},
                       extra_args=["--as-version", "3.9", "--trace", "--log-format", "json"])
    for name, fn in CLIENTS.items():
        assert fn(b.bootstrap, f"v-{name}", b"v", client_id=f"k39-{name}") == [b"v"]
    used = _trace_versions(b.log)
    k39 = ranges("3.9")
    by_name = {api.name: key for key, api in codec.load_apis().items()}
    lowered = 0
    for name in CLIENTS:
        base, got = baseline[f"base-{name}"], used[f"k39-{name}"]
        assert set(got) >= {"ApiVersions", "Metadata", "Produce", "Fetch"}, (name, got)
        for api, versions in got.items():
            lo, hi = k39[by_name[api]]
            assert all(lo <= v <= hi for v in versions), (name, api, versions, (lo, hi))
            if api in base:
                want = min(max(base[api]), hi)
                assert max(versions) == want, (name, api, versions, base[api], hi)
                lowered += want < max(base[api])
    # Metadata 13 (librdkafka, kafka-python) is above 3.9's 12: proves the cap bites
    assert max(used["k39-confluent-kafka"]["Metadata"]) == 12
    assert max(used["k39-kafka-python"]["Metadata"]) == 12
    assert lowered >= 2


def test_clients_against_kafka_2_8_in_process(kafka_broker_factory):
    """Kafka 2.8 (no ApiVersions v4, Metadata ≤ 11, Produce ≤ 9, Fetch ≤ 12):
    each client still works and stays inside 2.8's ranges; kafka-python's
    ApiVersions v4 gets the UNSUPPORTED_VERSION fallback and it retries with v3."""
    b = kafka_broker_factory(as_version="2.8", trace=True)
    for name, fn in CLIENTS.items():
        assert fn(b.bootstrap, f"v-{name}", b"v", client_id=f"k28-{name}") == [b"v"]
    k28 = ranges("2.8")
    by_name = {api.name: key for key, api in codec.load_apis().items()}
    used: dict[str, dict[str, set[int]]] = {}
    fallback = False
    for ev in b.trace():
        if ev["dir"] == "response" and ev["api"] == "ApiVersions" and "UNSUPPORTED_VERSION" in ev["body"]:
            fallback = True
        if ev["dir"] == "request" and (ev["client_id"] or "").startswith("k28-"):
            used.setdefault(ev["client_id"], {}).setdefault(ev["api"], set()).add(ev["version"])
    for client, apis in used.items():
        for api, versions in apis.items():
            lo, hi = k28[by_name[api]]
            assert all(lo <= v <= hi for v in versions), (client, api, versions)
    assert used["k28-kafka-python"]["ApiVersions"] == {3} and fallback
    assert used["k28-confluent-kafka"]["Metadata"] == {11} and used["k28-confluent-kafka"]["Produce"] == {9}
