"""Produce and consume with real clients over real sockets (issue 2 acceptance).

For kafka-python, confluent-kafka (librdkafka) and aiokafka: create a
3-partition topic, produce 10,000 records with keys, headers and explicit
timestamps, read them back from the beginning and from a mid offset, and
check value, key, headers, timestamp, partition and offset of every record
and the order within each partition. Every compression codec round-trips.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from clientlib import (Rec, create_topic, expected_records, produce_confluent, produce_kafka_python,
                       produce_aiokafka, consume_confluent, consume_kafka_python, consume_aiokafka)

N = 10_000
PARTITIONS = 3
MID = 1234  # a mid offset inside every partition (each gets N/3 records)


def check_partition(got: list[Rec], want: list[Rec], start: int = 0) -> None:
    assert len(got) == len(want) - start, (len(got), len(want), start)
    for rec, exp in zip(got, want[start:]):
        assert rec == exp, (rec, exp)


PRODUCERS = {"kafka-python": produce_kafka_python, "confluent-kafka": produce_confluent,
             "aiokafka": produce_aiokafka}
CONSUMERS = {"kafka-python": consume_kafka_python, "confluent-kafka": consume_confluent,
             "aiokafka": consume_aiokafka}


@pytest.mark.parametrize("client", list(PRODUCERS))
def test_produce_consume_10k(broker, unique_topic, client):
    create_topic(broker.bootstrap, unique_topic, PARTITIONS)
    base_ts = int(time.time() * 1000) - 3_600_000
    recs = expected_records(unique_topic, N, PARTITIONS, base_ts)
    offsets = PRODUCERS[client](broker.bootstrap, unique_topic, recs)
    # The producer was told the offset of every record, in order per partition.
    for p in range(PARTITIONS):
        want = [r.offset for r in recs if r.partition == p]
        assert [o for (pp, o) in offsets if pp == p] == want
    by_part = {p: [r for r in recs if r.partition == p] for p in range(PARTITIONS)}
    # From the beginning.
    got = CONSUMERS[client](broker.bootstrap, unique_topic, {p: 0 for p in range(PARTITIONS)},
                            {p: len(by_part[p]) for p in range(PARTITIONS)})
    for p in range(PARTITIONS):
        check_partition(got[p], by_part[p])
    # From a mid offset.
    got = CONSUMERS[client](broker.bootstrap, unique_topic, {p: MID for p in range(PARTITIONS)},
                            {p: len(by_part[p]) - MID for p in range(PARTITIONS)})
    for p in range(PARTITIONS):
        check_partition(got[p], by_part[p], MID)


COMPRESSION = [("confluent-kafka", c) for c in ("gzip", "snappy", "lz4", "zstd")] + \
              [("kafka-python", c) for c in ("gzip", "snappy", "lz4", "zstd")] + \
              [("aiokafka", c) for c in ("gzip", "lz4", "zstd")]


@pytest.mark.parametrize("client,codec", COMPRESSION)
def test_compression_roundtrip(shared_broker, unique_topic, client, codec):
    create_topic(shared_broker.bootstrap, unique_topic, 1)
    base_ts = int(time.time() * 1000)
    recs = expected_records(unique_topic, 500, 1, base_ts)
    PRODUCERS[client](shared_broker.bootstrap, unique_topic, recs, compression=codec)
    # Read back with a different client than the producer, too.
    for reader in ("confluent-kafka", "kafka-python"):
        got = CONSUMERS[reader](shared_broker.bootstrap, unique_topic, {0: 0}, {0: len(recs)})
        check_partition(got[0], recs)


def test_cross_client(topology, unique_topic):
    """What one client writes, the others read identically (on one broker
    and on a cluster)."""
    bs = topology.bootstrap
    create_topic(bs, unique_topic, 2, replication_factor=topology.replication_factor)
    recs = expected_records(unique_topic, 300, 2, int(time.time() * 1000))
    produce_aiokafka(bs, unique_topic, recs)
    want = {p: [r for r in recs if r.partition == p] for p in range(2)}
    for _name, consume in CONSUMERS.items():
        got = consume(bs, unique_topic, {0: 0, 1: 0},
                      {p: len(want[p]) for p in range(2)})
        for p in range(2):
            check_partition(got[p], want[p])


_ = asyncio  # aiokafka helpers run their own loops
