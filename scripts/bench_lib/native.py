"""The native load generator (rdk_bench.c, our own code) built against the
librdkafka that ships inside the confluent-kafka wheel.

With Python clients on a 2-core machine the client, not the broker, is the
bottleneck; the C client leaves the broker as the thing measured. Building it
needs gcc and librdkafka's headers (Debian: `apt-get install librdkafka-dev`;
the headers of any 2.x work, the library is the wheel's 2.16).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import resource
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "rdk_bench.c"


def _wheel_lib() -> str:
    import confluent_kafka

    base = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    libs = sorted(glob.glob(str(base / "librdkafka*.so*")))
    if not libs:
        raise RuntimeError(f"no librdkafka in {base}")
    return libs[0]


def build(cache: Path | None = None) -> str:
    """Compile rdk_bench once per source version; return the binary's path."""
    lib = _wheel_lib()
    digest = hashlib.sha256(SRC.read_bytes() + lib.encode()).hexdigest()[:12]
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pykbroker-bench"
    cache.mkdir(parents=True, exist_ok=True)
    exe = cache / f"rdk_bench-{digest}"
    if not exe.exists():
        if not Path("/usr/include/librdkafka/rdkafka.h").exists():
            raise RuntimeError("librdkafka headers missing: apt-get install librdkafka-dev")
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["gcc", "-O2", "-o", str(tmp), str(SRC), lib, "-lpthread",
                        f"-Wl,-rpath,{Path(lib).parent}"], check=True)
        tmp.rename(exe)
    return str(exe)


def _run(exe: str, args: list[str], timeout: float) -> tuple[dict, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"rdk_bench {args[0]} failed ({out.returncode}): {out.stderr[-500:]}")
    return json.loads(lines[-1]), cpu


def produce(exe: str, bootstrap: str, topic: str, count: int, size: int, acks: str,
            timeout: float, keyed: bool = False) -> dict:
    """``keyed``: each value gets its sequence number as key and librdkafka's
    partitioner spreads them over the topic's partitions (else partition 0)."""
    r, cpu = _run(exe, ["produce_keyed" if keyed else "produce", bootstrap, topic, str(count), str(size), acks],
                  timeout + 30)
    r.update(count=count, size=size, acks=acks, capped=r["sent"] < count,
             timed_out=r["delivered"] < r["sent"], client_cpu_s=cpu)
    return r


def consume(exe: str, bootstrap: str, topic: str, count: int, timeout: float) -> dict:
    r, cpu = _run(exe, ["consume", bootstrap, topic, str(count)], timeout + 30)
    r.update(count=count, timed_span_s=r["elapsed_s"], timed_out=r["received"] < count,
             client_cpu_s=cpu)
    return r


def latency(exe: str, bootstrap: str, topic: str, rate: int, seconds: float, warmup: float,
            linger_ms: int | None = None) -> dict:
    args = ["latency", bootstrap, topic, str(rate), str(seconds), str(warmup)]
    if linger_ms is not None:
        args.append(str(linger_ms))
    r, _ = _run(exe, args, seconds + warmup + 60)
    r.update(rate=rate, seconds=seconds, achieved_rate=float(rate), linger_ms=linger_ms)
    return r
