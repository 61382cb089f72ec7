"""``pykbroker ctl``: a command-line client of the HTTP control endpoint.

::

    pykbroker ctl --control http://127.0.0.1:9644 faults add fail --api Produce \\
        --error NOT_LEADER_OR_FOLLOWER --count 2
    pykbroker ctl faults add delay --api Fetch --delay-ms 300
    pykbroker ctl faults add drop --api Produce --count 1
    pykbroker ctl faults add pause-fetch --topic orders --partition 0
    pykbroker ctl faults add --json '{"action": "fail", "api": "Metadata", "error": 5}'
    pykbroker ctl faults list | remove ID | clear
    pykbroker ctl records TOPIC [--partition P] [--offset O] [--limit N]
    pykbroker ctl group GROUP_ID | groups | topics | versions | metrics | health | trace

``--control`` defaults to ``$PYKBROKER_CONTROL``. Output is the endpoint's
JSON (or text for ``metrics``); exit status 0 on success, 1 on an HTTP error
(its message on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def request(base: str, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, str]:
    url = base.rstrip("/") + path
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pykbroker ctl", description="Talk to a broker's control endpoint "
                                 "(pykbroker.control.listener).")
    ap.add_argument("--control", default=os.environ.get("PYKBROKER_CONTROL"),
                    help="control endpoint URL, e.g. http://127.0.0.1:9644 (default: $PYKBROKER_CONTROL)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("faults", help="fault rules").add_subparsers(dest="fcmd", required=True)
    f.add_parser("list", help="list rules with their hits")
    f.add_parser("clear", help="remove every rule")
    rm = f.add_parser("remove", help="remove one rule")
    rm.add_argument("id", type=int)
    add = f.add_parser("add", help="add a rule")
    add.add_argument("action", nargs="?", choices=["fail", "delay", "drop", "pause-fetch", "pause_fetch"])
    add.add_argument("--json", help="the whole rule as JSON (other options override its fields)")
    add.add_argument("--api", help="API name or key (Produce, Fetch, 0 ...); default: every API")
    add.add_argument("--error", help="Kafka error name or code (fail)")
    add.add_argument("--count", type=int, help="fire at most this many times")
    add.add_argument("--probability", type=float, help="chance of firing per matching request")
    add.add_argument("--seed", type=int, help="seed for the probability draws")
    add.add_argument("--topic", help="only requests naming this topic (pattern)")
    add.add_argument("--partition", type=int, help="pause-fetch: only this partition")
    add.add_argument("--client-id", help="only requests from this client id (pattern)")
    add.add_argument("--delay-ms", type=int, help="delay: milliseconds")
    add.add_argument("--message", help="error message to put in responses that carry one")

    rec = sub.add_parser("records", help="records of a topic")
    rec.add_argument("topic")
    rec.add_argument("--partition", type=int)
    rec.add_argument("--offset", type=int)
    rec.add_argument("--limit", type=int)
    g = sub.add_parser("group", help="a consumer group's state, offsets and lag")
    g.add_argument("group_id")
    tr = sub.add_parser("trace", help="the last trace events")
    tr.add_argument("--limit", type=int)
    for name, help_ in (("groups", "every group"), ("topics", "topics and offsets"),
                        ("versions", "advertised API versions"), ("metrics", "Prometheus metrics"),
                        ("health", "is the broker up")):
        sub.add_parser(name, help=help_)
    return ap


def _rule(ns: argparse.Namespace) -> dict[str, Any]:
    rule: dict[str, Any] = json.loads(ns.json) if ns.json else {}
    if ns.action:
        rule["action"] = ns.action.replace("-", "_")
    for field in ("api", "error", "count", "probability", "seed", "topic", "partition", "client_id",
                  "delay_ms", "message"):
        v = getattr(ns, field)
        if v is not None:
            rule[field] = v
    return rule


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    ns = ap.parse_args(argv)
    if not ns.control:
        ap.error("--control URL (or $PYKBROKER_CONTROL) is needed")
    base = ns.control if "://" in ns.control else f"http://{ns.control}"
    cmd = ns.cmd
    q = urllib.parse.urlencode
    if cmd == "faults":
        if ns.fcmd == "list":
            status, text = request(base, "GET", "/faults")
        elif ns.fcmd == "clear":
            status, text = request(base, "DELETE", "/faults")
        elif ns.fcmd == "remove":
            status, text = request(base, "DELETE", f"/faults/{ns.id}")
        else:
            try:
                rule = _rule(ns)
            except ValueError as e:
                ap.error(f"--json: {e}")
            if "action" not in rule:
                ap.error("faults add: give an action (fail, delay, drop, pause-fetch) or --json")
            status, text = request(base, "POST", "/faults", rule)
    elif cmd == "records":
        params = {k: v for k, v in (("partition", ns.partition), ("offset", ns.offset), ("limit", ns.limit))
                  if v is not None}
        path = f"/topics/{urllib.parse.quote(ns.topic, safe='')}/records"
        status, text = request(base, "GET", path + (f"?{q(params)}" if params else ""))
    elif cmd == "group":
        status, text = request(base, "GET", f"/groups/{urllib.parse.quote(ns.group_id, safe='')}")
    elif cmd == "trace":
        status, text = request(base, "GET", "/trace" + (f"?limit={ns.limit}" if ns.limit is not None else ""))
    else:
        status, text = request(base, "GET", f"/{cmd}")
    if status >= 400:
        try:
            msg = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            msg = text
        print(f"pykbroker ctl: HTTP {status}: {msg}", file=sys.stderr)
        return 1
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
