"""Background log management on the event loop (Kafka's LogManager scheduler
tasks and LogCleaner threads), started by Broker.start.

- retention: every ``log.retention.check.interval.ms`` (first run after
  min(30 s, the interval), as Kafka's initial task delay) each disk log
  gets ``storage.retention.delete_old_segments``. Cheap bookkeeping on the
  event loop: segment timestamps come from the time index's last entry,
  deletion is a rename.
- file deletion: retired segment files (``*.deleted``) and deleted topics'
  directories (``*-delete``) are removed after ``file.delete.delay.ms``
  / ``log.segment.delete.delay.ms``, in a worker thread.
- flush by time: every partition whose ``flush.ms`` (topic) /
  ``log.flush.interval.ms`` (broker) has passed with unflushed messages is
  fsynced in a worker thread. The check runs every
  min(``log.flush.scheduler.interval.ms``, the smallest finite flush.ms)
  (at least 10 ms); Kafka checks only every
  log.flush.scheduler.interval.ms (default: never), so a topic's flush.ms
  alone has no effect there — here it does. flush.messages is enforced in
  the append path (state.flush_if_due).
- moves between log directories (AlterReplicaLogDirs): ``log_dirs.py``
  ``LogDirMover`` copies each future log and swaps it in.
- compaction: ``log.cleaner.threads`` loops pick the filthiest compacted
  log (storage/cleaner.py), run the record work in a worker process (or
  thread, ``pykbroker.log.cleaner.isolation``), swap the cleaned segments
  in on the event loop and write ``cleaner-offset-checkpoint``; when
  nothing is cleanable they sleep ``log.cleaner.backoff.ms``. Disabled by
  ``log.cleaner.enable=false``. A log whose cleaning fails is marked
  uncleanable (logged) until restart.

All of this works on the logs kept in segment files
(``LogStore.segment_logs``); the in-memory engine has none, so only the
flush check (which it answers with "nothing to flush") touches its logs.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import trio

from ..storage import retention
from ..storage.cleaner import LogCleaner, LogToClean, discard_cleaned, open_cleaned
from ..storage.api import PartitionStore
from ..storage.log import PartitionLog
from ..util import LONG_MAX, now_ms
from .log_dirs import LogDirMover

log = logging.getLogger("pykbroker.log_tasks")

INITIAL_TASK_DELAY_S = 30.0


def prepare(state: Any) -> None:
    """Before any request: let deleted topics' files go in the background
    (the stored dynamic broker configs are applied as the state is built)."""
    logs = state.logs
    if logs is None:
        return
    logs.async_delete = True


def disk_logs(state: Any) -> dict[tuple[str, int], PartitionLog]:
    """The partition logs kept in segment files (none with the memory engine)."""
    logs = state.logs
    if logs is None:
        return {}
    segment_logs: dict[tuple[str, int], PartitionLog] = logs.segment_logs()
    return segment_logs


class LogTasks:
    def __init__(self, state: Any) -> None:
        self.state = state
        cfg = state.config
        self.cleaner: LogCleaner | None = None
        if state.logs is not None:
            self.cleaner = LogCleaner(
                list(state.logs.log_dirs),
                threads=int(cfg["log.cleaner.threads"]),
                dedupe_buffer_size=int(cfg["log.cleaner.dedupe.buffer.size"]),
                load_factor=float(cfg["log.cleaner.io.buffer.load.factor"]),
                io_max_bytes_per_second=float(cfg["log.cleaner.io.max.bytes.per.second"]),
                isolation=cfg["pykbroker.log.cleaner.isolation"],
            )
        self._flushing: set[int] = set()
        self.mover = LogDirMover(state)

    def cfg(self, name: str) -> Any:
        return self.state.config[name]

    # -- retention ----------------------------------------------------------------
    async def retention_loop(self) -> None:
        interval = int(self.cfg("log.retention.check.interval.ms")) / 1000
        await trio.sleep(min(INITIAL_TASK_DELAY_S, interval))
        while True:
            self.run_retention()
            await trio.sleep(int(self.cfg("log.retention.check.interval.ms")) / 1000)

    def run_retention(self, now: int | None = None) -> int:
        now = now_ms() if now is None else now
        total = 0
        for key, plog in disk_logs(self.state).items():
            if plog.closed or plog.offline is not None:
                continue
            try:
                total += retention.delete_old_segments(plog, now)
            except (OSError, ValueError) as e:
                log.warning("retention of %s-%d failed: %s", key[0], key[1], e)
        return total

    # -- delayed file deletion ------------------------------------------------------------
    async def deleter_loop(self) -> None:
        while True:
            await trio.sleep(0.5)
            now = now_ms()
            files: list[Path] = []
            for plog in disk_logs(self.state).values():
                if plog.pending_deletes:
                    files += plog.due_deletes(now)
            logs = self.state.logs
            dirs = logs.due_dir_deletes(now) if logs is not None else []
            if files or dirs:
                await trio.to_thread.run_sync(_remove, files, dirs)

    # -- flush by time ----------------------------------------------------------------------
    def _flush_tick(self) -> float:
        tick = int(self.cfg("log.flush.scheduler.interval.ms"))
        for ts in list(self.state.topics.values()):
            f = ts.log_config.flush_ms
            if f < tick:
                tick = f
        if tick >= LONG_MAX:
            return 1.0  # nothing to do by time; look again for config changes
        return min(max(tick / 1000, 0.01), 1.0)

    async def flusher_loop(self) -> None:
        while True:
            await trio.sleep(self._flush_tick())
            now = now_ms()
            due: list[PartitionStore] = []
            for ts in list(self.state.topics.values()):
                if ts.log_config.flush_ms >= LONG_MAX:
                    continue  # no flush by time (the default): not a look at each partition every tick
                for p in ts.partitions:
                    plog = p.log
                    if plog is not None and not plog.closed and id(plog) not in self._flushing \
                            and plog.config.flush_ms < LONG_MAX and plog.needs_flush(now):
                        due.append(plog)
            for plog in due:
                self._flushing.add(id(plog))
                try:
                    await trio.to_thread.run_sync(plog.flush)
                except OSError as e:
                    log.error("scheduled flush of %s failed: %s", plog.name, e)
                finally:
                    self._flushing.discard(id(plog))

    # -- compaction -----------------------------------------------------------------------------
    async def cleaner_loop(self) -> None:
        if self.cleaner is None or not self.cfg("log.cleaner.enable"):
            return
        threads = max(int(self.cfg("log.cleaner.threads")), 0)
        if threads == 0:
            return
        async with trio.open_nursery() as n:
            for i in range(threads):
                n.start_soon(self._cleaner_thread, i)

    async def _cleaner_thread(self, i: int) -> None:
        assert self.cleaner is not None
        await trio.sleep(0.1 * i)
        while True:
            ltc = self.cleaner.grab_filthiest(disk_logs(self.state), now_ms(), self._lso_of)
            if ltc is None:
                await trio.sleep(int(self.cfg("log.cleaner.backoff.ms")) / 1000)
                continue
            await self.clean(ltc)
            await trio.sleep(0)

    def _lso_of(self, key: tuple[str, int]) -> int | None:
        """The partition's last stable offset (open transactions bound cleaning)."""
        p = self.state.partition(*key)
        if p is None or p.log is None:
            return None
        try:
            return int(p.last_stable_offset)
        except Exception:  # producer state unknown: clean nothing rather than open transactions
            log.exception("last stable offset of %s-%d", key[0], key[1])
            start: int = p.log.log_start_offset
            return start

    async def clean(self, ltc: LogToClean) -> bool:
        """Clean one log (already chosen); True if every cleaned group was
        swapped in and the checkpoint moved."""
        cleaner = self.cleaner
        assert cleaner is not None
        key, plog = ltc.key, ltc.log
        cleaner.in_progress.add(key)
        try:
            job, objs = cleaner.make_job(ltc, now_ms())
            fut = cleaner.pool.submit(job)
            try:
                result = await trio.to_thread.run_sync(fut.result, abandon_on_cancel=True)
            except trio.Cancelled:
                fut.cancel()
                raise
            except Exception as e:
                if plog.closed or isinstance(e, FileNotFoundError):
                    # deleted, or retention/DeleteRecords retired a segment meanwhile
                    log.info("cleaning %s abandoned: %s", plog.name, e)
                    for f in plog.dir.glob("*.cleaned"):
                        f.unlink(missing_ok=True)
                    return False
                log.error("cleaning %s failed, marking it uncleanable: %r", plog.name, e)
                cleaner.uncleanable.add(key)
                return False
            ok = True
            for g in result.groups:
                if not ok:
                    discard_cleaned(job.dir, g.base)
                    continue
                old = [objs[b] for b in g.sources if b in objs]
                try:
                    new = await trio.to_thread.run_sync(
                        functools.partial(open_cleaned, job.dir, g, index_interval_bytes=job.index_interval_bytes,
                                          segment_index_bytes=job.segment_index_bytes))
                except OSError as e:
                    log.warning("opening the cleaned segment %d of %s failed: %s", g.base, plog.name, e)
                    discard_cleaned(job.dir, g.base)
                    ok = False
                    continue
                try:
                    # a source the job did not cover: the log changed, nothing is swapped
                    swapped = len(old) == len(g.sources) and plog.replace_segments(new, old)
                except OSError as e:
                    log.warning("swapping in the cleaned segment %d of %s failed: %s", g.base, plog.name, e)
                    swapped = False
                if not swapped:
                    new.close()
                    discard_cleaned(job.dir, g.base)
                    ok = False
            if not ok:
                log.info("cleaning of %s abandoned: its segments changed meanwhile", plog.name)
                return False
            cleaner.checkpoints[key] = result.end_offset
            cleaner.cleanings += 1
            cleaner.last_stats = result.stats
            st = result.stats
            log.info("cleaned %s [%d, %d): %d -> %d bytes, %d -> %d records in %.2f s", plog.name,
                     job.first_dirty, result.end_offset, st.bytes_read, st.bytes_written,
                     st.records_read, st.records_written, st.seconds)
            await self._write_checkpoint(plog)
            return True
        finally:
            cleaner.in_progress.discard(key)

    async def _write_checkpoint(self, plog: PartitionLog) -> None:
        cleaner = self.cleaner
        logs = self.state.logs
        if cleaner is None or logs is None:
            return
        d = logs.log_dir_of(plog.topic, plog.partition)
        if d is None:
            return
        live = {key: logs.log_dir_of(*key) for key, _ in logs.log_items()}
        try:
            await trio.to_thread.run_sync(cleaner.write_checkpoint, d, live)
        except OSError as e:
            log.warning("writing %s failed: %s", d, e)

    def shutdown(self) -> None:
        if self.cleaner is not None:
            self.cleaner.shutdown()


def _remove(files: list[Path], dirs: list[Path]) -> None:
    for f in files:
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("removing %s failed: %s", f, e)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


async def run(state: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run every background log task (``state.log_tasks``) until cancelled."""
    tasks: LogTasks = state.log_tasks
    task_status.started(tasks)
    try:
        async with trio.open_nursery() as n:
            n.start_soon(tasks.retention_loop)
            n.start_soon(tasks.deleter_loop)
            n.start_soon(tasks.flusher_loop)
            n.start_soon(tasks.cleaner_loop)
            n.start_soon(tasks.mover.run)
    finally:
        tasks.shutdown()
