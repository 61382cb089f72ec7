"""Process statistics from /proc: RSS, peak RSS, CPU time, for a process tree."""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(b")") + 2 :].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    """Sum of VmRSS over the process tree."""
    return sum(_status_kb(p, "VmRSS") for p in tree(pid)) * 1024


def hwm_bytes(pid: int) -> int:
    """Sum of VmHWM (peak RSS) over the process tree."""
    return sum(_status_kb(p, "VmHWM") for p in tree(pid)) * 1024


def cpu_seconds(pid: int) -> float:
    """utime+stime (+ reaped children's) summed over the process tree, in seconds."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(b")") + 2 :].split()
        # fields 14..17 of stat(5): utime stime cutime cstime; rest[0] is field 3
        total += sum(int(x) for x in rest[11:15])
    return total / CLK_TCK
