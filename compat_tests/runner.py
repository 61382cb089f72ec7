"""Runs cells: one broker process per client family, shared by its scenarios.

Cells run family-major; when the family changes the previous broker is
stopped and a fresh one (own log dir) is started. A cell that finds its
broker dead gets a fresh one, so one crash fails one cell, not the rest.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from collections.abc import Callable

from . import raw, scenarios
from .drivers import DriverError, NoSuchFeature, get_driver
from .matrix import FAIL, NA, PASS, PENDING, SCENARIO_BY_ID, Result, missing_apis

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from brokerproc import BrokerProcess  # noqa: E402

BROKER_OVERRIDES = {
    "message.max.bytes": scenarios.MESSAGE_MAX_BYTES,
    "num.partitions": 1,
    "group.initial.rebalance.delay.ms": 0,
}

_API_NAMES = {8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
              12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup", 19: "CreateTopics",
              20: "DeleteTopics", 22: "InitProducerId", 24: "AddPartitionsToTxn", 26: "EndTxn",
              32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions",
              44: "IncrementalAlterConfigs", 17: "SaslHandshake", 36: "SaslAuthenticate"}


def _apis(alts: list[tuple[int, ...]]) -> str:
    return ", ".join(" or ".join(f"{_API_NAMES.get(k, k)} ({k})" for k in a) for a in alts)


class CompatRun:
    def __init__(self, make_dir: Callable[[str], Path]) -> None:
        self.make_dir = make_dir
        self.results: dict[tuple[str, str], Result] = {}
        self.versions: dict[str, str] = {}
        self.family: str | None = None
        self.broker: BrokerProcess | None = None
        self.advertised: set[int] = set()

    # ------------------------------------------------------------ brokers
    def _start(self, family: str) -> None:
        self.close()
        b = BrokerProcess(name=f"compat-{family}")
        b.start(BROKER_OVERRIDES, log_dir=self.make_dir(f"compat-{family}"))
        self.broker, self.family = b, family
        self.advertised = set(raw.api_versions(b.bootstrap))

    def broker_for(self, family: str) -> BrokerProcess:
        if self.family != family or self.broker is None or not self.broker.is_running():
            self._start(family)
        assert self.broker is not None
        return self.broker

    def restart(self) -> None:
        assert self.broker is not None
        self.broker.restart()

    def close(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        self.broker, self.family = None, None

    # -------------------------------------------------------------- cells
    def version_of(self, family: str) -> str:
        if family not in self.versions:
            try:
                self.versions[family] = get_driver(family).versions()
            except Exception as e:  # shown in the doc, the cells fail on their own
                self.versions[family] = f"? ({e})".splitlines()[0]
        return self.versions[family]

    def run_cell(self, family: str, scenario_id: str) -> Result:
        r = self._run_cell(family, scenario_id)
        self.results[(family, scenario_id)] = r
        return r

    def _run_cell(self, family: str, scenario_id: str) -> Result:
        d = get_driver(family)
        sc = SCENARIO_BY_ID[scenario_id]
        self.version_of(family)
        if scenario_id in d.unsupported:
            return Result(NA, d.unsupported[scenario_id])
        codec = scenario_id if scenario_id in scenarios.CODEC_IDS else None
        if codec and codec not in d.codecs:
            return Result(NA, d.no_codec_reason(codec))
        t0 = time.monotonic()
        try:
            b = self.broker_for(family)
        except Exception as e:
            return Result(FAIL, f"broker did not start: {e}".splitlines()[0], detail=traceback.format_exc())
        missing = missing_apis(sc, self.advertised)
        if missing:
            return Result(PENDING, f"{sc.pending_reason} (broker lacks {_apis(missing)})")
        if scenario_id in scenarios.READS_RECORDS and d.consume_needs:
            missing = [a for a in d.consume_needs if not any(k in self.advertised for k in a)]
            if missing:
                return Result(PENDING, f"{family} reads records only as a consumer-group member: "
                                       f"consumer groups + committed offsets: issue 4 "
                                       f"(broker lacks {_apis(missing)})")
        ctx = scenarios.Ctx(d, b.bootstrap, self.advertised, self.restart, family, scenario_id)
        try:
            notes = scenarios.SCENARIO_FUNCS[scenario_id](ctx) or []
        except NoSuchFeature as e:
            return Result(NA, str(e), seconds=time.monotonic() - t0)
        except BaseException as e:  # a failed cell, whatever the cause
            if isinstance(e, KeyboardInterrupt):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            kind = "" if isinstance(e, (AssertionError, DriverError)) else f"{type(e).__name__}: "
            detail = traceback.format_exc()
            if self.broker is not None:
                detail += f"\n--- broker log ({self.broker.describe()}), last 80 lines ---\n"
                detail += self.broker.log_tail(80)
            return Result(FAIL, (kind + first)[:200], seconds=time.monotonic() - t0, detail=detail)
        return Result(PASS, seconds=time.monotonic() - t0, notes=list(notes))
