"""Bad input gets Kafka's behaviour and affects only its own connection.

Each case opens a victim connection and a bystander connection at the same
time; after the victim misbehaves, the bystander still gets answers.
"""

from __future__ import annotations

import socket
import struct

import pytest

from pykbroker.protocol import codec, errors
from pykbroker.protocol.framing import decode_response, encode_request
from pykbroker.protocol.records import build_batch


class Raw:
    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.corr = 0

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> bytes | None:
        head = self._recv_exact(4)
        if head is None:
            return None
        (n,) = struct.unpack(">i", head)
        return self._recv_exact(n)

    def _recv_exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def request(self, api_key: int, version: int, body: dict) -> dict:
        self.corr += 1
        api = codec.api(api_key)
        self.send_raw(encode_request(api, version, self.corr, body))
        frame = self.recv_frame()
        assert frame is not None, "connection closed"
        corr, resp = decode_response(api, version, frame)
        assert corr == self.corr
        return resp

    def is_closed(self) -> bool:
        self.sock.settimeout(10)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def assert_bystander_ok(bystander: Raw) -> None:
    resp = bystander.request(3, 12, {"topics": None, "allow_auto_topic_creation": False})
    assert [b["port"] for b in resp["brokers"]] and resp["error_code"] == 0


@pytest.fixture
def small_broker(broker_factory):
    return broker_factory({"socket.request.max.bytes": "10000"})


@pytest.fixture
def pair(small_broker):
    victim, bystander = Raw(small_broker.bootstrap), Raw(small_broker.bootstrap)
    # both connections are live before the victim misbehaves
    assert bystander.request(18, 0, {})["error_code"] == 0
    yield victim, bystander
    victim.close()
    bystander.close()


def test_frame_over_limit_closes_connection(pair):
    victim, bystander = pair
    victim.send_raw(struct.pack(">i", 10001) + b"\x00" * 100)
    assert victim.is_closed()
    assert_bystander_ok(bystander)


def test_negative_frame_size_closes_connection(pair):
    victim, bystander = pair
    victim.send_raw(struct.pack(">i", -5))
    assert victim.is_closed()
    assert_bystander_ok(bystander)


def test_truncated_request_body_closes_connection(pair):
    victim, bystander = pair
    frame = encode_request(codec.api(3), 12, 1, {"topics": [{"name": "abc"}]})
    # Claim a shorter frame: the header parses but the body is cut short.
    cut = frame[4:-6]
    victim.send_raw(struct.pack(">i", len(cut)) + cut)
    assert victim.is_closed()
    assert_bystander_ok(bystander)


def test_partial_frame_then_eof(pair):
    victim, bystander = pair
    victim.send_raw(struct.pack(">i", 500) + b"\x00\x03\x00\x0c")
    victim.sock.shutdown(socket.SHUT_WR)
    assert victim.is_closed()
    assert_bystander_ok(bystander)


def test_unknown_api_key_closes_connection(pair):
    victim, bystander = pair
    victim.send_raw(struct.pack(">ihhih", 10, 999, 0, 7, -1))
    assert victim.is_closed()
    assert_bystander_ok(bystander)


def test_unsupported_version_closes_connection(pair):
    victim, bystander = pair
    victim.send_raw(struct.pack(">ihhih", 10, 3, 99, 7, -1))
    assert victim.is_closed()
    assert_bystander_ok(bystander)


def test_api_versions_too_new_gets_v0_error_reply(pair):
    victim, bystander = pair
    victim.send_raw(struct.pack(">ihhih", 12, 18, 77, 42, -1) + b"\x00\x00")
    frame = victim.recv_frame()
    assert frame is not None
    (corr,) = struct.unpack_from(">i", frame, 0)
    assert corr == 42
    body, end = codec.api(18).response.decode(frame, 0, 4)
    assert end == len(frame)
    assert body["error_code"] == errors.UNSUPPORTED_VERSION
    assert body["api_keys"] == [{"api_key": 18, "min_version": 0, "max_version": 4}]
    # The connection stays usable: the client retries with a version we know.
    assert victim.request(18, 3, {"client_software_name": "t", "client_software_version": "1"})[
        "error_code"] == 0
    assert_bystander_ok(bystander)


def _produce(raw: Raw, topic: str, records: bytes, version: int = 9) -> dict:
    resp = raw.request(0, version, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                                    "topic_data": [{"name": topic, "partition_data": [
                                        {"index": 0, "records": records}]}]})
    return resp["responses"][0]["partition_responses"][0]


def test_wrong_crc_is_corrupt_message_and_log_untouched(pair):
    victim, bystander = pair
    topic = "crc-test"
    good = build_batch([(b"k", b"v1", (), 1000)])
    bad = bytearray(build_batch([(b"k", b"v2", (), 1000)]))
    bad[-1] ^= 0xFF  # flip a bit in the record payload: CRC no longer matches
    r = _produce(victim, topic, bytes(bad))
    assert r["error_code"] == errors.CORRUPT_MESSAGE
    r = _produce(victim, topic, good)
    assert r["error_code"] == 0 and r["base_offset"] == 0
    assert_bystander_ok(bystander)


def test_invalid_acks(pair):
    victim, bystander = pair
    resp = victim.request(0, 9, {"transactional_id": None, "acks": 5, "timeout_ms": 1000,
                                 "topic_data": [{"name": "acks-test", "partition_data": [
                                     {"index": 0, "records": build_batch([(None, b"x", (), 1)])}]}]})
    assert resp["responses"][0]["partition_responses"][0]["error_code"] == errors.INVALID_REQUIRED_ACKS
    assert_bystander_ok(bystander)


def test_batch_over_message_max_bytes(broker_factory):
    b = broker_factory({"message.max.bytes": "2000"})
    raw = Raw(b.bootstrap)
    big = build_batch([(None, b"x" * 3000, (), 1)])
    assert _produce(raw, "big", big)["error_code"] == errors.MESSAGE_TOO_LARGE
    small = build_batch([(None, b"x" * 100, (), 1)])
    assert _produce(raw, "big", small)["error_code"] == 0
    raw.close()


def test_unknown_partition(pair):
    victim, bystander = pair
    resp = victim.request(0, 9, {"transactional_id": None, "acks": 1, "timeout_ms": 1000,
                                 "topic_data": [{"name": "parts-test", "partition_data": [
                                     {"index": 7, "records": build_batch([(None, b"x", (), 1)])}]}]})
    assert resp["responses"][0]["partition_responses"][0]["error_code"] == errors.UNKNOWN_TOPIC_OR_PARTITION
    assert_bystander_ok(bystander)


# -- null where the spec says non-nullable: a malformed request (closes the
# connection, as Kafka does), never a handler crash -----------------------------

def test_describe_groups_null_group_id_closes_connection(small_broker, pair):
    victim, bystander = pair
    victim.send_raw(encode_request(codec.api(15), 5, 1, {"groups": ["g", None],
                                                         "include_authorized_operations": False}))
    assert victim.is_closed()
    assert_bystander_ok(bystander)
    assert "Traceback" not in small_broker.log


def test_list_groups_null_state_filter_closes_connection(small_broker, pair):
    victim, bystander = pair
    victim.send_raw(encode_request(codec.api(16), 4, 1, {"states_filter": [None]}))
    assert victim.is_closed()
    assert_bystander_ok(bystander)
    assert "Traceback" not in small_broker.log


def test_excessive_partition_counts_are_policy_violations(small_broker, pair):
    """Found by the fuzzer: CreatePartitions to 117 M partitions stalled the
    broker. Kafka's controller caps a request at 10000 partitions."""
    victim, bystander = pair
    resp = victim.request(19, 5, {"topics": [{"name": "huge", "num_partitions": 10001, "replication_factor": 1,
                                              "assignments": [], "configs": []}],
                                  "timeout_ms": 5000, "validate_only": False})
    assert resp["topics"][0]["error_code"] == errors.POLICY_VIOLATION
    resp = victim.request(19, 5, {"topics": [{"name": "grow", "num_partitions": 1, "replication_factor": 1,
                                              "assignments": [], "configs": []}],
                                  "timeout_ms": 5000, "validate_only": False})
    assert resp["topics"][0]["error_code"] == 0
    resp = victim.request(37, 1, {"topics": [{"name": "grow", "count": 117444884, "assignments": None}],
                                  "timeout_ms": 5000, "validate_only": False})
    assert resp["results"][0]["error_code"] == errors.POLICY_VIOLATION
    resp = victim.request(37, 1, {"topics": [{"name": "grow", "count": 3, "assignments": None}],
                                  "timeout_ms": 5000, "validate_only": False})
    assert resp["results"][0]["error_code"] == 0
    assert_bystander_ok(bystander)
