"""The matrix: which client families, which scenarios, what a result is, and
how ``docs/compat.md`` is written from the results.

A cell (topology × family × scenario) ends in one of four states:

pass     the scenario ran against a real broker and every check held;
fail     it ran and a check failed (a broker or driver bug: fix it);
n/a      the client has no such feature (the driver says why);
pending  the broker does not advertise an API the scenario needs yet
         (decided from the broker's ApiVersions response, so the cell runs
         by itself as soon as the handler is registered).

The document is only ever written by :func:`render_doc`; it embeds the
results as JSON and a checksum of its own text so a test can tell a
hand-edited or stale file from a generated, current one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "compat.md"
COMMAND = ".venv/bin/python -m compat_tests"

PASS, FAIL, NA, PENDING = "pass", "fail", "n/a", "pending"


@dataclass(frozen=True)
class Family:
    id: str
    title: str


FAMILIES = [
    Family("kafka-python", "kafka-python"),
    Family("confluent-kafka", "confluent-kafka (librdkafka)"),
    Family("aiokafka", "aiokafka"),
    Family("kafkajs", "kafkajs (Node)"),
    Family("kcat", "kcat (librdkafka)"),
]
FAMILY_IDS = [f.id for f in FAMILIES]


@dataclass(frozen=True)
class Topology:
    id: str
    title: str


# Every scenario runs on both: one broker process, and a ZooKeeper cluster
# of three brokers (replication factor 3, min.insync.replicas=2), as
# ``scripts/cluster`` starts it.
TOPOLOGIES = [
    Topology("single", "1 broker"),
    Topology("cluster", "3-broker cluster"),
]
TOPOLOGY_IDS = [t.id for t in TOPOLOGIES]

GROUPS_REASON = "consumer groups + committed offsets: issue 4"
EOS_REASON = "idempotent producer / transactions: issue 6"
ALTER_REASON = "alter configs: issue 5"
SECURITY_REASON = "SASL: issue 14"


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    # Broker APIs the scenario needs: each inner tuple is "any one of these
    # API keys"; every tuple must be satisfied. Missing → pending(reason).
    needs: tuple[tuple[int, ...], ...] = ()
    pending_reason: str = ""
    # topology id -> why the scenario makes no sense there (n/a)
    not_on: tuple[tuple[str, str], ...] = ()


GROUP_APIS = ((10,), (11,), (12,), (13,), (14,))
SCENARIOS = [
    Scenario("metadata", "connect and read metadata"),
    Scenario("produce_consume", "produce + consume: keys, headers, timestamps, null values"),
    Scenario("gzip", "compression: gzip"),
    Scenario("snappy", "compression: snappy"),
    Scenario("lz4", "compression: lz4"),
    Scenario("zstd", "compression: zstd"),
    Scenario("seek_timestamp", "seek to a timestamp (offsets for times)"),
    Scenario("max_message_bytes", "batch of exactly message.max.bytes accepted, one byte more: MESSAGE_TOO_LARGE"),
    Scenario("admin_topics", "admin: create + delete topics, add partitions", ((19,), (20,), (37,))),
    Scenario("describe_configs", "admin: describe configs", ((32,),)),
    Scenario("alter_configs", "admin: alter configs", ((33, 44),), ALTER_REASON),
    Scenario("group_rebalance", "3-member consumer group, rebalance when one leaves", GROUP_APIS,
             GROUPS_REASON),
    Scenario("commit_resume", "commit, broker restart, resume from the committed offset",
             GROUP_APIS + ((8,), (9,)), GROUPS_REASON),
    Scenario("idempotent", "idempotent producer", ((22,),), EOS_REASON),
    Scenario("transactions", "transactions (commit + abort) read with read_committed",
             ((10,), (22,), (24,), (26,)), EOS_REASON),
    Scenario("sasl_ssl_scram", "SASL_SSL + SCRAM-SHA-512: produce + consume", ((17,), (36,)), SECURITY_REASON),
    Scenario("sasl_plaintext_plain", "SASL_PLAINTEXT + PLAIN: produce + consume", ((17,), (36,)), SECURITY_REASON),
    Scenario("ssl_client_cert", "SSL with a client certificate (mTLS): produce + consume"),
]
SCENARIO_IDS = [s.id for s in SCENARIOS]
SCENARIO_BY_ID = {s.id: s for s in SCENARIOS}


def cells() -> list[tuple[str, str, str]]:
    """Every cell, topology-major then family-major (one broker per family,
    one cluster for the whole cluster column, serve a run)."""
    return [(t, f, s) for t in TOPOLOGY_IDS for f in FAMILY_IDS for s in SCENARIO_IDS]


def missing_apis(scenario: Scenario, advertised: set[int]) -> list[tuple[int, ...]]:
    return [alts for alts in scenario.needs if not any(k in advertised for k in alts)]


@dataclass
class Result:
    status: str
    reason: str = ""  # n/a and pending: why; fail: first line of the error
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    detail: str = ""  # fail: traceback and broker log (not written to the doc)


# --------------------------------------------------------------------- doc ---

_HASH_RE = re.compile(r"<!-- compat-matrix sha256=([0-9a-f]{64}) -->\n?")
_RESULTS_RE = re.compile(r"<!-- compat-results\n(.*?)\n-->", re.S)

_SYMBOL = {PASS: "pass", FAIL: "**FAIL**", NA: "n/a", PENDING: "pending"}


def _digest(text: str) -> str:
    return hashlib.sha256(_HASH_RE.sub("", text).encode()).hexdigest()


def render_doc(results: dict[tuple[str, str, str], Result], versions: dict[str, str],
               family_notes: dict[str, list[str]]) -> str:
    """docs/compat.md from a complete set of results."""
    notes: list[str] = []  # footnotes, numbered in order of appearance
    note_ids: dict[str, int] = {}

    def ref(text: str) -> str:
        if text not in note_ids:
            notes.append(text)
            note_ids[text] = len(notes)
        return f"<sup>[{note_ids[text]}]</sup>"

    out = [
        "# Client compatibility matrix",
        "",
        f"Generated by `{COMMAND}` (the same cells also run in `bash scripts/test`);",
        "do not edit by hand. Every scenario runs on two topologies: *1 broker* (a",
        "broker process started for that client family) and *cluster* (ZooKeeper and",
        "three broker processes, replication factor 3, `min.insync.replicas=2`, one",
        "cluster shared by every family; the client bootstraps from all three).",
        "**pass**: every check held; **FAIL**: a check failed;",
        "**n/a**: the client has no such feature; **pending**: the broker does not",
        "advertise (ApiVersions) an API the scenario needs yet, so the cell turns into",
        "a real test by itself when the feature lands. What each scenario checks:",
        "`compat_tests/scenarios.py`; how each client does it: `compat_tests/drivers/`.",
        "",
        "## Clients",
        "",
        "| family | exact versions |",
        "| --- | --- |",
    ]
    for f in FAMILIES:
        out.append(f"| {f.title} | {versions.get(f.id, '?')} |")
    out += ["", "## Matrix", ""]
    cols = [(t, f) for f in FAMILIES for t in TOPOLOGIES]
    out.append("| scenario | " + " | ".join(f"{f.id}<br>{t.title}" for t, f in cols) + " |")
    out.append("| --- |" + " --- |" * len(cols))
    for s in SCENARIOS:
        row = [s.title]
        for t, f in cols:
            r = results[(t.id, f.id, s.id)]
            cell = _SYMBOL[r.status]
            if r.status in (NA, PENDING, FAIL) and r.reason:
                cell += " " + ref(r.reason)
            for n in r.notes:
                cell += " " + ref(n)
            row.append(cell)
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    for t in TOPOLOGIES:
        rs = [r for (tid, _, _), r in results.items() if tid == t.id]
        counts = {st: sum(1 for r in rs if r.status == st) for st in (PASS, FAIL, NA, PENDING)}
        out.append(f"{t.title}: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[NA]} n/a, "
                   f"{counts[PENDING]} pending.")
    out.append("")
    if notes:
        out += ["## Notes", ""]
        out += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
        out.append("")
    fam_lines = [(f, n) for f in FAMILIES for n in family_notes.get(f.id, [])]
    if fam_lines:
        out += ["## How each client is driven", ""]
        out += [f"- **{f.id}**: {n}" for f, n in fam_lines]
        out.append("")
    machine = {f"{top}/{fam}/{sc}": results[(top, fam, sc)].status for top, fam, sc in cells()}
    out += ["<!-- compat-results", json.dumps(machine, indent=0, sort_keys=False), "-->", ""]
    text = "\n".join(out)
    return text + f"<!-- compat-matrix sha256={_digest(text)} -->\n"


def parse_doc(text: str) -> dict[str, str] | None:
    """The results embedded in a generated doc, or None if there are none."""
    m = _RESULTS_RE.search(text)
    if not m:
        return None
    try:
        return json.loads(m.group(1))
    except ValueError:
        return None


def doc_problems(text: str) -> list[str]:
    """Why ``text`` is not an untouched output of render_doc for today's cells."""
    problems = []
    m = _HASH_RE.search(text)
    if not m:
        problems.append("no generator checksum line")
    elif m.group(1) != _digest(text):
        problems.append("checksum mismatch: the file was edited by hand")
    res = parse_doc(text)
    if res is None:
        problems.append("no embedded results")
    else:
        want = [f"{t}/{f}/{s}" for t, f, s in cells()]
        if list(res) != want:
            problems.append("its cells differ from compat_tests.matrix (topologies/families/scenarios changed)")
        bad = {k: v for k, v in res.items() if v not in (PASS, FAIL, NA, PENDING)}
        if bad:
            problems.append(f"unknown states: {bad}")
    return problems
