"""Connections bounded as Kafka bounds them (issue 18): idle timeout,
receive timeout for a trickled request, queued.max.request.bytes
back-pressure, max.connections(.per.ip), parked requests released when
their client goes away."""

from __future__ import annotations

import os
import struct
import threading
import time

from rawclient import ConnectionClosed, RawClient


def metadata_ok(c: RawClient) -> None:
    assert c.call(3, 12, {"topics": None, "allow_auto_topic_creation": False})["brokers"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError


def open_sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def test_idle_connection_closed_after_connections_max_idle_ms(broker_factory):
    b = broker_factory({"connections.max.idle.ms": "1000"})
    with RawClient(b.bootstrap) as silent, RawClient(b.bootstrap) as used:
        metadata_ok(used)
        t0 = time.monotonic()
        assert silent.is_closed_by_peer(timeout=10)
        assert used.is_closed_by_peer(timeout=10)
        assert 0.8 < time.monotonic() - t0 < 6
    with RawClient(b.bootstrap) as busy:  # a connection in use stays open
        for _ in range(8):
            metadata_ok(busy)
            time.sleep(0.3)


def test_half_sent_frame_dropped_within_receive_timeout(broker_factory):
    b = broker_factory({"pykbroker.request.receive.timeout.ms": "1500"})
    with RawClient(b.bootstrap) as victim, RawClient(b.bootstrap) as bystander:
        victim.send_frame(struct.pack(">i", 100_000_000) + b"\x00\x03\x00\x0c")
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 10:  # a trickle does not extend the deadline
            try:
                victim.sock.sendall(b"\x00")
            except OSError:
                closed = True
                break
            if victim.is_closed_by_peer(timeout=0.3):
                closed = True
                break
        assert closed
        assert time.monotonic() - t0 < 6
        metadata_ok(bystander)


def _send_big(bootstrap: str, size: int, results: list) -> None:
    try:
        c = RawClient(bootstrap, timeout=120)
        head = struct.pack(">ihhih", size, 0, 9, 1, -1)
        c.sock.sendall(head)
        chunk = b"\x00" * (1 << 20)
        left = size - 10 + 4
        while left > 0:
            n = min(left, len(chunk))
            c.sock.sendall(chunk[:n])
            left -= n
        results.append(c.is_closed_by_peer(timeout=60))
        c.close()
    except OSError:
        results.append(True)  # closed under us: the request was refused


def test_concurrent_huge_frames_bounded_by_queued_max_request_bytes(broker_factory):
    bound_mb = 120
    b = broker_factory({"queued.max.request.bytes": str(bound_mb << 20)})
    base = rss_mb(b.pid)
    results: list = []
    threads = [threading.Thread(target=_send_big, args=(b.bootstrap, 100_000_000 - 1, results), daemon=True)
               for _ in range(8)]
    for t in threads:
        t.start()
    peak = 0.0
    with RawClient(b.bootstrap) as bystander:
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss_mb(b.pid))
            time.sleep(0.05)
        metadata_ok(bystander)
    assert results == [True] * 8
    # the bound, plus the copy made when a frame's chunks are joined into one
    # buffer (FrameBuffer), plus a margin for the allocator
    assert peak - base < bound_mb + 100 + 100, (base, peak)


def test_disconnected_long_polls_release_their_sockets(broker_factory):
    b = broker_factory()
    with RawClient(b.bootstrap) as c:
        c.call(19, 5, {"topics": [{"name": "quiet", "num_partitions": 1, "replication_factor": 1,
                                   "assignments": [], "configs": []}], "timeout_ms": 10000})
    base = open_sockets(b.pid)
    clients = []
    for _ in range(100):
        c = RawClient(b.bootstrap)
        c.send_frame(c.encode(1, 12, {"replica_id": -1, "max_wait_ms": 600000, "min_bytes": 1,
                                      "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0,
                                      "session_epoch": -1, "topics": [
                                          {"topic": "quiet", "partitions": [
                                              {"partition": 0, "fetch_offset": 0, "log_start_offset": -1,
                                               "partition_max_bytes": 1 << 20}]}]}))
        clients.append(c)
    deadline = time.monotonic() + 10
    while open_sockets(b.pid) < base + 99 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_sockets(b.pid) >= base + 99
    for c in clients:
        c.close()
    t0 = time.monotonic()
    while open_sockets(b.pid) > base + 1 and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    assert open_sockets(b.pid) <= base + 1
    assert time.monotonic() - t0 < 2.0


def test_max_connections_per_ip_closes_extra_connections(broker_factory):
    b = broker_factory({"max.connections.per.ip": "2"})
    with RawClient(b.bootstrap) as a, RawClient(b.bootstrap) as b2:
        metadata_ok(a)
        metadata_ok(b2)
        with RawClient(b.bootstrap) as extra:
            assert extra.is_closed_by_peer(timeout=5)
    # slots are released once the broker sees the close
    deadline = time.monotonic() + 10
    while True:
        try:
            with RawClient(b.bootstrap) as again:
                metadata_ok(again)
            break
        except (OSError, ConnectionClosed):
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_max_connections_per_ip_overrides(broker_factory):
    b = broker_factory({"max.connections.per.ip": "1", "max.connections.per.ip.overrides": "127.0.0.1:3"})
    with RawClient(b.bootstrap) as a, RawClient(b.bootstrap) as b2, RawClient(b.bootstrap) as c3:
        for c in (a, b2, c3):
            metadata_ok(c)
        with RawClient(b.bootstrap) as extra:
            assert extra.is_closed_by_peer(timeout=5)


def test_max_connections_waits_for_a_free_slot(broker_factory):
    b = broker_factory({"max.connections": "2"})
    a, b2 = RawClient(b.bootstrap), RawClient(b.bootstrap)
    metadata_ok(a)
    metadata_ok(b2)
    third = RawClient(b.bootstrap, timeout=1.0)
    third.send_frame(third.encode(18, 3, {"client_software_name": "t", "client_software_version": "1"}))
    try:
        third.read_frame()
        raise AssertionError("third connection served beyond max.connections")
    except TimeoutError:
        pass
    a.close()
    third.sock.settimeout(10)
    assert third.read_frame()  # accepted once a slot freed
    b2.close()
    third.close()


def test_malformed_fetch_closes_only_its_connection(broker_factory):
    """A Fetch that fails to parse goes through the watched dispatch: it must
    close its connection, not the broker (found by the fuzzer)."""
    b = broker_factory()
    with RawClient(b.bootstrap) as victim, RawClient(b.bootstrap) as bystander:
        frame = victim.encode(1, 4, {"replica_id": -1, "max_wait_ms": 100, "min_bytes": 1, "topics": []})
        cut = frame[4:-2]
        victim.send_frame(struct.pack(">i", len(cut)) + cut)
        assert victim.is_closed_by_peer(timeout=5)
        metadata_ok(bystander)
    assert b.is_running
    assert "Traceback" not in b.log
