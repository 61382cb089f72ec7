"""util.run_parallel: the clean shutdown's per-partition file work on
several threads (issue 17)."""

from __future__ import annotations

import threading

from pykbroker.util import run_parallel


def test_every_job_runs_once_and_failures_are_returned() -> None:
    done: list[int] = []
    names: set[str] = set()
    barrier = threading.Barrier(4, timeout=10)

    def job(i: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            if i < 4:
                barrier.wait()  # the first four run at the same time: on four threads
            names.add(threading.current_thread().name)
            if i % 10 == 3:
                raise ValueError(i)
            done.append(i)
        return run

    errors = run_parallel([job(i) for i in range(100)], threads=8)
    assert sorted(done) == [i for i in range(100) if i % 10 != 3]
    assert sorted(e.args[0] for e in errors) == [i for i in range(100) if i % 10 == 3]
    assert len(names) >= 4 and all(n.startswith("pykbroker-io-") for n in names)


def test_few_jobs_run_inline() -> None:
    names: list[str] = []
    assert run_parallel([lambda: names.append(threading.current_thread().name)] * 2) == []
    assert names == [threading.current_thread().name] * 2
