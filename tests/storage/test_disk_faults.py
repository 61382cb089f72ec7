"""The slow-disk fault hook (storage/disk_faults.py): log writes and fsyncs
sleep as long as the fault file says, nothing without it."""

from __future__ import annotations

import time

from storage_helpers import open_log

from pykbroker.protocol.records import build_batch, validate_batches
from pykbroker.storage import disk_faults


def test_slow_disk_delays_log_writes(tmp_path, monkeypatch):
    fault = tmp_path / "slow-disk"
    monkeypatch.setattr(disk_faults, "_PATH", str(fault))
    monkeypatch.setattr(disk_faults, "_state", {"checked": 0.0, "delay_s": 0.0})
    log = open_log(tmp_path)

    def append() -> float:
        data = bytearray(build_batch([(b"k", b"v", (), 1000)]))
        t0 = time.monotonic()
        log.append(data, validate_batches(data, max_batch_bytes=None), leader_epoch=0, now_ms=1000)
        return time.monotonic() - t0

    assert append() < 0.15  # no file: no delay
    fault.write_text("200")
    disk_faults._state["checked"] = 0.0  # do not wait for the next look at the file
    assert append() >= 0.2
    t0 = time.monotonic()
    log.flush()
    assert time.monotonic() - t0 >= 0.2
    fault.unlink()
    disk_faults._state["checked"] = 0.0
    assert append() < 0.15
    assert log.log_end_offset == 3
    log.close()
