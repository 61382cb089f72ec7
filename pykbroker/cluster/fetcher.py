"""The replica fetcher: followers pull from leaders with Kafka's Fetch.

One :class:`Fetcher` task per leader broker (Kafka's ReplicaFetcherThread
with num.replica.fetchers=1) holds every partition this broker follows on
that leader and one connection to it:

1. **Truncation** (Kafka's KIP-101/KIP-279 protocol, as before KIP-595):
   for partitions just added, an OffsetForLeaderEpoch request (v3, with our
   replica id) asks the leader where our latest leader epoch ends in its
   log; the log is truncated there (repeating with the follower's own epoch
   when the leader only knows an older one). Without any epoch in the local
   log it truncates to the high watermark.
2. **Fetch** (v12, ``replica_id`` = our node id, ``current_leader_epoch``,
   ``last_fetched_epoch``, ``log_start_offset``): the leader answers from its
   log end offset (not its high watermark), long-polling
   ``replica.fetch.wait.max.ms``. Batches are appended as they are
   (``PartitionLog.append_as_follower``: the leader's offsets, epochs and
   bytes) and applied to the partition's producer state (Kafka's
   appendAsFollower: its open and aborted transactions are known the moment
   it leads); the follower's high watermark becomes min(leader's, own log end).
   A ``diverging_epoch`` in the answer truncates as in step 1;
   OFFSET_OUT_OF_RANGE below the leader's log start restarts the log there.
3. Errors: FENCED_LEADER_EPOCH / NOT_LEADER_OR_FOLLOWER mean our picture
   is older than the leader's: the partition waits a little (the watch
   will bring the new state); UNKNOWN_LEADER_EPOCH means the leader has not
   seen the new state yet: retried shortly. A broken connection is retried
   after ``replica.fetch.backoff.ms``.

Throttles (``cluster/throttle.py``): while the follower quota is exceeded,
partitions throttled on this follower and outside the ISR are left out of
the fetch; their bytes are recorded as they come.

Adding a partition interrupts a long-poll in flight (the connection is
dropped and reopened), so a new follower starts fetching at once instead of
after up to ``replica.fetch.wait.max.ms``: this matters for failover time.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import trio

from ..protocol.codec import Message
from ..protocol import codec, errors
from ..protocol.framing import FrameBuffer, decode_response, encode_request
from ..protocol.records import InvalidRecords

from ..security.sasl import SaslFailure
from ..txn import producers as txn_producers

if TYPE_CHECKING:
    from ..security.listeners import InterBrokerSecurity
    from ..server.state import PartitionState
    from .node import ClusterNode

log = logging.getLogger("pykbroker.cluster.fetcher")

FETCH_VERSION = 12
OFFSET_FOR_LEADER_EPOCH_VERSION = 3
THROTTLE_BACKOFF_S = 0.1  # a fetcher whose every partition is throttled looks again after this


class BrokerClient:
    """One connection to another broker: requests one at a time. With the
    inter-broker listener's security it is TLS-wrapped and SASL-authenticated
    (SaslHandshake v1 + SaslAuthenticate v2) before any other request."""

    def __init__(self, stream: trio.abc.Stream, client_id: str) -> None:
        self.stream = stream
        self.client_id = client_id
        self.fb = FrameBuffer(1 << 30)
        self.corr = 0

    @classmethod
    async def connect(cls, host: str, port: int, client_id: str, timeout: float,
                      security: "InterBrokerSecurity | None" = None) -> "BrokerClient":
        with trio.fail_after(timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            try:
                if security is not None and security.ssl_context is not None:
                    tls_stream = trio.SSLStream(stream, security.ssl_context, server_hostname=host)
                    await tls_stream.do_handshake()
                    stream = tls_stream
                client = cls(stream, client_id)
                if security is not None and security.mechanism is not None:
                    await client._authenticate(security)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                raise
        return client

    async def _authenticate(self, security: "InterBrokerSecurity") -> None:
        hs = await self.call(17, 1, {"mechanism": security.mechanism})
        if hs["error_code"] != errors.NONE:
            raise SaslFailure(f"SASL mechanism {security.mechanism} refused by the broker "
                              f"(enabled: {hs.get('mechanisms')})")
        mech = security.mechanism_client()
        token: bytes | None = mech.first()
        while token is not None:
            resp = await self.call(36, 2, {"auth_bytes": token})
            if resp["error_code"] != errors.NONE:
                raise SaslFailure(f"inter-broker authentication failed: {resp.get('error_message')}")
            token = mech.evaluate(resp["auth_bytes"] or b"")

    async def call(self, api_key: int, version: int, body: Message) -> Message:
        api = codec.api(api_key)
        self.corr += 1
        await self.stream.send_all(encode_request(api, version, self.corr, body, client_id=self.client_id))
        while True:
            frame = self.fb.next_frame()
            if frame is not None:
                break
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise trio.BrokenResourceError("connection closed by the leader")
            self.fb.feed(data if isinstance(data, bytes) else bytes(data))
        corr, resp = decode_response(api, version, frame)
        if corr != self.corr:
            raise trio.BrokenResourceError(f"correlation id {corr} != {self.corr}")
        return resp

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


class FetchState:
    __slots__ = ("p", "epoch", "truncating", "delay_until")

    def __init__(self, p: "PartitionState", epoch: int) -> None:
        self.p = p
        self.epoch = epoch
        self.truncating = True
        self.delay_until = 0.0


class Fetcher:
    def __init__(self, mgr: "FetcherManager", leader: int) -> None:
        self.mgr = mgr
        self.node = mgr.node
        self.leader = leader
        self.parts: dict[tuple[str, int], FetchState] = {}
        self.wake = trio.Event()
        self.fetch_scope: trio.CancelScope | None = None
        self.conn: BrokerClient | None = None
        self.task_scope: trio.CancelScope | None = None

    # --- membership -----------------------------------------------------------------------------
    def add(self, p: "PartitionState", epoch: int) -> None:
        self.parts[(p.topic, p.index)] = FetchState(p, epoch)
        self.wake.set()
        if self.fetch_scope is not None:
            self.fetch_scope.cancel()  # restart the long poll with the new partition

    def remove(self, p: "PartitionState") -> None:
        self.parts.pop((p.topic, p.index), None)

    # --- the task -------------------------------------------------------------------------------------
    async def run(self) -> None:
        cfg = self.node.config
        backoff = int(cfg["replica.fetch.backoff.ms"]) / 1000
        with trio.CancelScope() as self.task_scope:
            while True:
                if not self.parts:
                    self.wake = trio.Event()
                    await self.wake.wait()
                    continue
                info = self.node.view.brokers.get(self.leader)
                if info is None:
                    await self._sleep_or_wake(backoff)
                    continue
                try:
                    self.conn = await self.node.connect_to(
                        info, f"replica-fetcher-{self.node.node_id}", int(cfg["replica.socket.timeout.ms"]) / 1000)
                except SaslFailure as e:  # a configuration problem: say so, keep retrying
                    log.warning("fetcher for leader %d: %s", self.leader, e)
                    await self._sleep_or_wake(backoff)
                    continue
                except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError) as e:
                    log.debug("fetcher for leader %d: connect failed: %r", self.leader, e)
                    await self._sleep_or_wake(backoff)
                    continue
                try:
                    await self._session()
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
                        ValueError) as e:
                    log.debug("fetcher for leader %d: %r", self.leader, e)
                    await self.conn.aclose()
                    self.conn = None
                    await self._sleep_or_wake(backoff)
                    continue
                await self.conn.aclose()
                self.conn = None

    async def _sleep_or_wake(self, seconds: float) -> None:
        self.wake = trio.Event()
        with trio.move_on_after(seconds):
            await self.wake.wait()

    async def _session(self) -> None:
        """Truncate and fetch over one connection until it breaks or a fetch is interrupted."""
        assert self.conn is not None
        timeout = int(self.node.config["replica.socket.timeout.ms"]) / 1000
        while self.parts:
            now = trio.current_time()
            # a replica in a failed log directory is not fetched (Kafka removes its fetcher)
            parts = [fs for fs in self.parts.values() if fs.p.log is None or fs.p.log.offline is None]
            if not parts:
                await self._sleep_or_wake(1.0)
                continue
            ready = [fs for fs in parts if fs.delay_until <= now]
            if not ready:
                nxt = min(fs.delay_until for fs in parts)
                await self._sleep_or_wake(max(0.0, nxt - now))
                continue
            trunc = [fs for fs in ready if fs.truncating]
            if trunc:
                with trio.fail_after(timeout):
                    await self._truncate(trunc)
                continue
            if self.node.follower_quota.exceeded():
                # Kafka's shouldFollowerThrottle: throttled replicas wait for the next fetch
                ready = [fs for fs in ready if not self.node.replicas.follower_throttled(fs.p)]
                if not ready:
                    await self._sleep_or_wake(THROTTLE_BACKOFF_S)
                    continue
            interrupted = False
            with trio.CancelScope() as scope:
                self.fetch_scope = scope
                with trio.fail_after(timeout):
                    await self._fetch(ready)
            self.fetch_scope = None
            if scope.cancelled_caught:
                interrupted = True
            if interrupted:
                return  # the connection is mid-response: reconnect (at once)

    # --- truncation ------------------------------------------------------------------------------------------
    async def _truncate(self, states: list[FetchState]) -> None:
        node = self.node
        topics: dict[str, list[Message]] = {}
        asked: dict[tuple[str, int], tuple[FetchState, int]] = {}
        for fs in states:
            p = fs.p
            assert p.log is not None
            latest = p.log.leader_epoch
            if latest < 0:
                # no epoch in our log: Kafka's fallback, truncate to the high watermark
                if p.log.log_end_offset > p.log.high_watermark:
                    self._truncate_to(p, p.log.high_watermark, "no leader epoch in the log")
                fs.truncating = False
                continue
            topics.setdefault(p.topic, []).append(
                {"partition": p.index, "current_leader_epoch": fs.epoch, "leader_epoch": latest})
            asked[(p.topic, p.index)] = (fs, latest)
        if not topics:
            return
        body = {"replica_id": node.node_id,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}
        assert self.conn is not None
        resp = await self.conn.call(23, OFFSET_FOR_LEADER_EPOCH_VERSION, body)
        for t in resp["topics"]:
            for r in t["partitions"]:
                entry = asked.get((t["topic"], r["partition"]))
                if entry is None:
                    continue
                fs, asked_epoch = entry
                if self.parts.get((fs.p.topic, fs.p.index)) is not fs:
                    continue  # removed or re-added meanwhile
                code = r["error_code"]
                if code:
                    self._on_error(fs, code)
                    continue
                self._apply_epoch_end(fs, r["leader_epoch"], r["end_offset"])

    def _apply_epoch_end(self, fs: FetchState, leader_epoch: int, end_offset: int) -> None:
        """Kafka's AbstractFetcherThread.getOffsetTruncationState."""
        p = fs.p
        plog = p.log
        assert plog is not None
        leo = plog.log_end_offset
        if end_offset < 0:
            target, done = min(plog.high_watermark, leo), True
        elif leader_epoch < 0:
            target, done = min(end_offset, leo), True
        else:
            f_epoch, f_end = plog.end_offset_for_epoch(leader_epoch)
            if f_epoch < 0 or f_end < 0:
                target, done = min(end_offset, leo), True
            elif f_epoch != leader_epoch:
                target, done = min(f_end, leo), False
            else:
                target, done = min(end_offset, f_end, leo), True
        if target < leo:
            self._truncate_to(p, target, f"leader {self.leader} epoch {leader_epoch} ends at {end_offset}")
        else:
            plog.truncate_to(target)  # no data to remove: drops a conflicting epoch entry at the end
        fs.truncating = not done

    def _truncate_to(self, p: "PartitionState", offset: int, why: str) -> None:
        assert p.log is not None
        log.info("%s-%d: truncating from %d to %d (%s)", p.topic, p.index, p.log.log_end_offset, offset, why)
        if offset < p.log.high_watermark:
            log.warning("%s-%d: truncating below the high watermark %d", p.topic, p.index, p.log.high_watermark)
        p.log.truncate_to(offset)

    # --- fetching ----------------------------------------------------------------------------------------------
    async def _fetch(self, states: list[FetchState]) -> None:
        node = self.node
        cfg = node.config
        part_max = int(cfg["replica.fetch.max.bytes"])
        topics: dict[str, list[Message]] = {}
        sent: dict[tuple[str, int], tuple[FetchState, int]] = {}
        for fs in states:
            p = fs.p
            plog = p.log
            assert plog is not None
            leo = plog.log_end_offset
            topics.setdefault(p.topic, []).append({
                "partition": p.index, "current_leader_epoch": fs.epoch, "fetch_offset": leo,
                "last_fetched_epoch": plog.leader_epoch, "log_start_offset": plog.log_start_offset,
                "partition_max_bytes": part_max})
            sent[(p.topic, p.index)] = (fs, leo)
        body = {"cluster_id": None, "replica_id": node.node_id,
                "max_wait_ms": int(cfg["replica.fetch.wait.max.ms"]),
                "min_bytes": int(cfg["replica.fetch.min.bytes"]),
                "max_bytes": int(cfg["replica.fetch.response.max.bytes"]),
                "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                "topics": [{"topic": t, "topic_id": bytes(16), "partitions": ps} for t, ps in topics.items()],
                "forgotten_topics_data": [], "rack_id": ""}
        assert self.conn is not None
        resp = await self.conn.call(1, FETCH_VERSION, body)
        if resp["error_code"]:
            raise trio.BrokenResourceError(f"fetch error {resp['error_code']}")
        for t in resp["responses"]:
            for r in t["partitions"]:
                entry = sent.get((t["topic"], r["partition_index"]))
                if entry is None:
                    continue
                fs, offset = entry
                if self.parts.get((fs.p.topic, fs.p.index)) is not fs:
                    continue
                if r["records"] and node.follower_quota.enabled() and node.replicas.follower_throttled(fs.p):
                    node.follower_quota.record(len(r["records"]))
                self._on_partition(fs, offset, r)

    def _on_partition(self, fs: FetchState, offset: int, r: Message) -> None:
        p = fs.p
        plog = p.log
        assert plog is not None
        code = r["error_code"]
        if code == errors.OFFSET_OUT_OF_RANGE:
            leader_start = r["log_start_offset"]
            if 0 <= offset < leader_start:
                log.info("%s-%d: fetch offset %d below the leader's log start %d: restarting the log there",
                         p.topic, p.index, offset, leader_start)
                plog.truncate_fully_and_start_at(leader_start)
            else:
                fs.truncating = True
            return
        if code:
            self._on_error(fs, code)
            return
        div = r.get("diverging_epoch") or {}
        if div.get("epoch", -1) >= 0 or div.get("end_offset", -1) >= 0:
            self._apply_epoch_end(fs, div.get("epoch", -1), div.get("end_offset", -1))
            if fs.truncating is False and plog.log_end_offset == offset:
                fs.truncating = True  # nothing truncated: ask with OffsetForLeaderEpoch
            return
        data = r["records"]
        if data:
            if plog.log_end_offset != offset:
                return  # truncated meanwhile
            try:
                appended = plog.append_as_follower(data)
            except (InvalidRecords, ValueError) as e:
                log.warning("%s-%d: cannot append fetched data at %d: %s; truncating again", p.topic, p.index,
                            offset, e)
                fs.truncating = True
                return
            except OSError as e:
                log.error("%s-%d: storage error appending as follower: %s", p.topic, p.index, e)
                fs.delay_until = trio.current_time() + 1.0
                return
            if appended:
                self._sync_producers(p)
                p.notify()
        hw = min(r["high_watermark"], plog.log_end_offset)
        if hw >= 0 and hw != plog.high_watermark:
            plog.high_watermark = max(hw, plog.log_start_offset)
            p.notify()
        ls = r["log_start_offset"]
        if ls > plog.log_start_offset and ls <= plog.high_watermark:
            try:
                plog.advance_log_start_offset(ls)
            except Exception:  # best effort, as Kafka's maybeIncrementLogStartOffset
                log.debug("advancing the log start offset failed", exc_info=True)

    def _sync_producers(self, p: Any) -> None:
        """Apply what was just appended to the producer state (open and
        aborted transactions, producer epochs and sequences), loading it on
        first use; a failure is logged, and the next sync (or the leader's
        first append) catches up."""
        try:
            txn_producers.producer_state(self.node.state, p)
        except Exception:
            log.exception("%s-%d: applying fetched batches to the producer state failed", p.topic, p.index)

    def _on_error(self, fs: FetchState, code: int) -> None:
        now = trio.current_time()
        if code == errors.UNKNOWN_LEADER_EPOCH:
            fs.delay_until = now + 0.02  # the leader has not seen the new state yet
        elif code in (errors.FENCED_LEADER_EPOCH, errors.NOT_LEADER_OR_FOLLOWER):
            fs.delay_until = now + 0.1  # our state is old: a watch will bring the new one
        else:
            log.debug("%s-%d: fetch error %s", fs.p.topic, fs.p.index, errors.NAMES.get(code, code))
            fs.delay_until = now + int(self.node.config["replica.fetch.backoff.ms"]) / 1000


class FetcherManager:
    def __init__(self, node: "ClusterNode") -> None:
        self.node = node
        self.fetchers: dict[int, Fetcher] = {}
        self.where: dict[tuple[str, int], int] = {}
        self.nursery: trio.Nursery | None = None

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as n:
            self.nursery = n
            task_status.started()
            await trio.sleep(math.inf)

    def add(self, p: "PartitionState", leader: int, epoch: int) -> None:
        key = (p.topic, p.index)
        old = self.where.get(key)
        if old is not None and old != leader and old in self.fetchers:
            self.fetchers[old].remove(p)
        f = self.fetchers.get(leader)
        if f is None:
            f = Fetcher(self, leader)
            self.fetchers[leader] = f
            assert self.nursery is not None
            self.nursery.start_soon(f.run)
        self.where[key] = leader
        f.add(p, epoch)

    def remove(self, p: "PartitionState") -> None:
        key = (p.topic, p.index)
        old = self.where.pop(key, None)
        if old is not None and old in self.fetchers:
            self.fetchers[old].remove(p)

    def stop_all(self) -> None:
        for f in self.fetchers.values():
            f.parts.clear()
            if f.task_scope is not None:
                f.task_scope.cancel()
        self.fetchers.clear()
        self.where.clear()

    def leaders_followed(self) -> dict[int, int]:
        return {lid: len(f.parts) for lid, f in self.fetchers.items()}
