"""Side-by-side table (plain text or Markdown) from the per-broker results."""

from __future__ import annotations

import math

MIB = 1024 * 1024


def _num(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}"


def _flags(r: dict) -> str:
    out = []
    if r.get("errors") or r.get("producer_errors") or r.get("consumer_errors"):
        n = (r.get("errors") or 0) + (r.get("producer_errors") or 0) + (r.get("consumer_errors") or 0)
        out.append(f"{n} errors")
    if r.get("timed_out"):
        out.append("TIMEOUT")
    if "expected" in r and r.get("received", 0) < r["expected"]:
        out.append(f"{r['expected'] - r['received']} lost")
    return f" [{', '.join(out)}]" if out else ""


def _rate(r: dict | None) -> str:
    if not r:
        return "—"
    return f"{_num(r['msg_per_s'])} ({_num(r['mb_per_s'], 1)}){_flags(r)}"


def rows(results: dict[str, dict], cfg: dict) -> list[tuple[str, list[str]]]:
    names = list(results)
    out: list[tuple[str, list[str]]] = []

    def add(label, fn):
        cells = []
        for n in names:
            r = results[n]
            try:
                cells.append(fn(r))
            except (KeyError, TypeError, ValueError):
                cells.append("—")
        out.append((label, cells))

    add(f"start → ready, ms (median of {cfg['start_runs']})",
        lambda r: _num(r["start_ready_ms_median"], 0))
    add("idle RSS, MiB", lambda r: _num(r["idle_rss"] / MIB, 1))
    for key in r_keys_produce(cfg):
        add(f"produce {key}, msg/s (MB/s)", lambda r, k=key: _rate(r["produce"][k]))
    for key in r_keys_consume(cfg):
        add(f"consume {key}, msg/s (MB/s)", lambda r, k=key: _rate(r["consume"][k]))
    lat = f"e2e latency @ {cfg['latency_rate']} msg/s"
    add(f"{lat} p50, ms", lambda r: _num(r["latency"]["p50_ms"], 1) + _flags(r["latency"]))
    add(f"{lat} p99, ms", lambda r: _num(r["latency"]["p99_ms"], 1))
    if any("latency_linger0" in r for r in results.values()):
        add(f"{lat}, producer linger.ms=0, p50, ms",
            lambda r: _num(r["latency_linger0"]["p50_ms"], 2) + _flags(r["latency_linger0"]))
        add(f"{lat}, producer linger.ms=0, p99, ms", lambda r: _num(r["latency_linger0"]["p99_ms"], 2))
    add("peak RSS (VmHWM), MiB", lambda r: _num(r["peak_rss"] / MIB, 1))
    add("broker CPU-seconds per GB produced", lambda r: _num(r["cpu_s_per_gb"], 1))
    add("exit code on SIGTERM", lambda r: str(r["stop_rc"]))
    return out


def r_keys_produce(cfg: dict) -> list[str]:
    return [f"{_size(s)}, acks={a}" for s in cfg["sizes"] for a in cfg["acks"]]


def r_keys_consume(cfg: dict) -> list[str]:
    return [_size(s) for s in cfg["sizes"]]


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def text_table(results: dict[str, dict], cfg: dict) -> str:
    rs = rows(results, cfg)
    head = ["metric", *results]
    widths = [max(len(head[0]), *(len(label) for label, _ in rs))]
    for i, n in enumerate(results):
        widths.append(max(len(n), *(len(c[i]) for _, c in rs)))

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), "  ".join("-" * w for w in widths)]
    out += [line([label, *c]) for label, c in rs]
    return "\n".join(out)


def markdown_table(results: dict[str, dict], cfg: dict) -> str:
    rs = rows(results, cfg)
    out = ["| metric | " + " | ".join(results) + " |",
           "|---|" + "---:|" * len(results)]
    out += [f"| {label} | " + " | ".join(c) + " |" for label, c in rs]
    return "\n".join(out)


def header(env: dict, results: dict[str, dict], markdown: bool) -> str:
    lines = [f"date: {env['date']}", f"machine: {env['machine']}",
             f"clients: {env['clients']}", f"parameters: {env['parameters']}"]
    for n, r in results.items():
        lines.append(f"{n}: {r.get('version', '?')}; {r.get('notes', '')}")
        if r.get("error"):
            lines.append(f"{n}: FAILED: {r['error'].splitlines()[0]}")
    if markdown:
        return "\n".join(f"- {ln}" for ln in lines)
    return "\n".join(lines)
