"""Metadata's partitions are encoded by the handler itself
(``handlers/metadata.py``: ``encoded_partitions``, issue 17) rather than one
dict per partition through the generic encoder. These tests hold it to the
generic encoder byte for byte: every version's answer, decoded and encoded
again the generic way, gives back the very bytes the broker sent."""

from __future__ import annotations

import pytest

from pykbroker.handlers import load_all
from pykbroker.protocol import codec
from pykbroker.protocol.framing import decode_response, encode_response
from pykbroker.protocol.primitives import EncodedArray, Writer
from rawclient import RawClient

META = load_all()[3]


@pytest.mark.parametrize("v", range(META.min_version, META.max_version + 1))
def test_metadata_partitions_encode_as_the_generic_encoder_would(shared_broker, unique_topic, v):
    api = codec.api(3)
    with RawClient(shared_broker.bootstrap) as c:
        r = c.call(19, 4, {"topics": [{"name": unique_topic, "num_partitions": 7, "replication_factor": 1,
                                       "assignments": [], "configs": []}], "timeout_ms": 30000})
        assert r["topics"][0]["error_code"] == 0
        frame = c.roundtrip(c.encode(3, v, {"topics": [{"name": unique_topic}],
                                            "allow_auto_topic_creation": False}))
    corr, body = decode_response(api, v, frame)
    (t,) = body["topics"]
    assert [p["partition_index"] for p in t["partitions"]] == list(range(7))
    assert all((p["error_code"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) == (0, 0, [0], [0])
               for p in t["partitions"])
    again = b"".join(bytes(x) for x in encode_response(api, v, corr, body))
    assert again[4:] == frame


@pytest.mark.parametrize("v", [0, 5, 7, 9, 12])
def test_encoded_array_is_written_like_the_list_it_stands_for(v):
    """An EncodedArray holding the generic encoding of some partitions gives
    the same response bytes as the partitions themselves (the length prefix,
    plain or compact, from its count)."""
    api = codec.api(3)
    parts = [{"error_code": 0, "partition_index": i, "leader_id": i % 3, "leader_epoch": 4,
              "replica_nodes": [i % 3, (i + 1) % 3], "isr_nodes": [i % 3], "offline_replicas": [(i + 1) % 3]}
             for i in range(5)]

    def body(partitions):  # type: ignore[no-untyped-def]
        return {"brokers": [], "cluster_id": "c", "controller_id": 0,
                "topics": [{"error_code": 0, "name": "t", "topic_id": b"\1" * 16, "is_internal": False,
                            "partitions": partitions}]}

    plain = Writer()
    api.response.encode_into(plain, body(parts), v)
    whole = Writer()
    api.response.encode_into(whole, body(EncodedArray(5, _elements(api, v, parts))), v)
    assert bytes(whole.buf) == bytes(plain.buf)


def _elements(api, v, parts):  # type: ignore[no-untyped-def]
    """The partitions' encoding without the array's length prefix, taken from
    the generic encoder: encode with and without them and cut the difference."""
    def enc(partitions):  # type: ignore[no-untyped-def]
        w = Writer()
        api.response.encode_into(w, {"brokers": [], "cluster_id": "c", "controller_id": 0, "topics": [
            {"error_code": 0, "name": "t", "topic_id": b"\1" * 16, "is_internal": False,
             "partitions": partitions}]}, v)
        return bytes(w.buf)
    full, empty = enc(parts), enc([])
    # common prefix up to the partitions' length prefix, then the elements, then a common suffix
    i = 0
    while full[i] == empty[i]:
        i += 1
    # the length prefix differs at its last byte (plain int32 or one-byte uvarint here)
    start = i + 1
    suffix = len(empty) - i - 1
    return full[start:len(full) - suffix]
