"""The scenario interface every client family implements.

A driver turns the scenario operations below into calls of one real client
(in-process for the Python clients, a subprocess for kafkajs and kcat). An
operation the client cannot do raises :class:`NoSuchFeature` with the reason,
which the matrix shows as "n/a". Everything returns plain data (``Rec``,
``Ack``, dicts) so scenarios compare the same way whatever the client.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

DEADLINE = 45.0  # seconds any single operation may take

# Settings every consumer group member gets (small so rebalances are quick).
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 250


def seen_all(consumed: list, prefix: str, n: int) -> bool:
    """``consumed`` ([partition, offset, value] rows) holds n distinct values
    starting with ``prefix`` (re-deliveries after a rebalance count once)."""
    return len({v for _, _, v in consumed if v.startswith(prefix)}) >= n


class NoSuchFeature(Exception):
    """The client has no such feature (the message says what is missing)."""


class DriverError(AssertionError):
    """The client failed in a way the scenario did not expect."""


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int  # -1 when producing (the broker assigns it)
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = -1  # -1: let the client pick (CreateTime = now)


@dataclass(frozen=True)
class Ack:
    """What the producer was told for one record: an offset or an error."""

    partition: int
    offset: int = -1  # -1: the client does not report offsets (kcat)
    error: int | str | None = None  # Kafka error code, or the client's text when it has none
    message: str = ""


class Driver:
    family = ""
    # What the client can put in a record when producing.
    explicit_timestamps = True
    binary_data = True
    codecs: tuple[str, ...] = ("gzip", "snappy", "lz4", "zstd")
    # Scenarios the client cannot do at all: scenario id -> reason ("n/a").
    unsupported: dict[str, str] = {}
    # Broker APIs this client needs to read records at all (kafkajs: a group).
    consume_needs: tuple[tuple[int, ...], ...] = ()
    # Shown under "How each client is driven" in docs/compat.md.
    notes: tuple[str, ...] = ()

    def versions(self) -> str:
        raise NotImplementedError

    def no_codec_reason(self, codec: str) -> str:
        return f"{self.family} cannot compress with {codec}"

    # -- data -------------------------------------------------------------
    def metadata(self, bs: str, topic: str) -> dict:
        """{"brokers": [(node_id, host, port)], "partitions": {partition: leader}}"""
        raise NotImplementedError

    def produce(self, bs: str, topic: str, recs: list[Rec], *, compression: str | None = None,
                idempotent: bool = False, max_request: int | None = None) -> list[Ack]:
        """Produce ``recs`` (to their partitions, in order) and wait for every ack.

        ``max_request``: raise the client's own request / message size limits
        to at least this, so the broker (not the client) enforces its limit.
        """
        raise NotImplementedError

    def consume(self, bs: str, topic: str, start: dict[int, int], want: dict[int, int], *,
                read_committed: bool = False) -> dict[int, list[Rec]]:
        """Assign partitions (no group), read from ``start`` until ``want`` records each."""
        raise NotImplementedError

    def offsets_for_times(self, bs: str, topic: str, times: dict[int, int]) -> dict[int, int]:
        raise NoSuchFeature(f"{self.family} has no offsets-for-times lookup")

    def secure_roundtrip(self, sec: dict, topic: str, values: list[bytes]) -> list[tuple[int, bytes]]:
        """Over a TLS/SASL listener: produce ``values`` to partition 0 of
        ``topic``, read them back, return [(offset, value)]. ``sec``:
        bootstrap, protocol (SSL, SASL_SSL, SASL_PLAINTEXT), mechanism,
        username, password, ca (PEM file), cert + key (client certificate or None)."""
        raise NoSuchFeature(f"{self.family}: no security settings in this driver")

    def consume_from_time(self, bs: str, topic: str, partitions: list[int], ts: int,
                          want: dict[int, int]) -> dict[int, list[Rec]]:
        """Seek every partition to the first record with timestamp >= ts and read."""
        offsets = self.offsets_for_times(bs, topic, {p: ts for p in partitions})
        return self.consume(bs, topic, offsets, want)

    # -- admin ------------------------------------------------------------
    def create_topics(self, bs: str, topics: list[tuple[str, int, dict[str, str]]]) -> None:
        raise NoSuchFeature(f"{self.family} has no admin API")

    def delete_topics(self, bs: str, names: list[str]) -> None:
        raise NoSuchFeature(f"{self.family} has no admin API")

    def create_partitions(self, bs: str, topic: str, total: int) -> None:
        raise NoSuchFeature(f"{self.family} has no admin API")

    def describe_configs(self, bs: str, topic: str) -> dict[str, str | None]:
        raise NoSuchFeature(f"{self.family} has no admin API")

    def alter_configs(self, bs: str, topic: str, configs: dict[str, str],
                      advertised: set[int]) -> None:
        """Set ``configs`` on the topic (``advertised``: the broker's API keys,
        for clients that choose between AlterConfigs and IncrementalAlterConfigs)."""
        raise NoSuchFeature(f"{self.family} has no admin API")

    # -- groups -----------------------------------------------------------
    def group_rebalance(self, bs: str, topic: str, group: str, partitions: int) -> dict:
        """Three members subscribe to ``topic``; once each has a share, member 3
        leaves (closes) and the other two take over its partitions.

        Records: before starting, the topic holds one record per partition
        (values ``b"before-<p>"``); after the rebalance the driver produces one
        more per partition (``b"after-<p>"``). Returns::

            {"assign3": [[p, ...] x3], "assign2": [[p, ...] x2],
             "before": [[partition, offset, value] consumed by any member ...],
             "after": [[partition, offset, value] consumed by the 2 survivors]}
        """
        raise NoSuchFeature(f"{self.family} has no consumer groups")

    def group_consume(self, bs: str, topic: str, group: str, n: int) -> list[Rec]:
        """Join ``group`` (subscribe, auto.offset.reset=earliest, no auto commit),
        take the first ``n`` records of the single-partition ``topic``, commit
        the offset after them synchronously, leave."""
        raise NoSuchFeature(f"{self.family} has no consumer groups")

    # -- exactly once -----------------------------------------------------
    def produce_transactions(self, bs: str, topic: str, txn_id: str, aborted: list[Rec],
                             committed: list[Rec]) -> None:
        """One transaction with ``aborted`` that is aborted, then one with
        ``committed`` that is committed, from the same transactional.id."""
        raise NoSuchFeature(f"{self.family} has no transactional producer")


_MODULES = {
    "kafka-python": "kafka_python",
    "confluent-kafka": "confluent",
    "aiokafka": "aiokafka_driver",
    "kafkajs": "kafkajs",
    "kcat": "kcat",
}


def get_driver(family: str) -> Driver:
    mod = importlib.import_module(f"{__name__}.{_MODULES[family]}")
    return mod.DRIVER
