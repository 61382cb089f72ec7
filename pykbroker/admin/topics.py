"""``pykbroker topics``: kafka-topics.sh's flags and output.

::

    pykbroker topics --bootstrap-server HOST:PORT --list
    pykbroker topics --describe [--topic REGEX] [--offsets] [--under-replicated-partitions]
        [--unavailable-partitions]
    pykbroker topics --create --topic T [--partitions N] [--replication-factor R] [--config k=v ...]
    pykbroker topics --alter --topic REGEX [--partitions N] [--config k=v ...] [--delete-config k ...]
    pykbroker topics --delete --topic REGEX [--if-exists]

``--topic`` is a regular expression (matched whole) except with
``--create``, as in Kafka. ``--alter --config`` changes configs with
IncrementalAlterConfigs (kafka-configs.sh's job in Kafka). ``--describe``
lists the configs set on the topic (not the defaults), and with
``--offsets`` each partition's log start offset and high watermark.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from . import common
from .client import ClientError, KafkaClient, PartitionMeta, TopicMeta, check

TOPIC_RESOURCE = 2
DYNAMIC_TOPIC_CONFIG = 1


class Topics(common.CommandBody):
    def parser(self, prog: str) -> argparse.ArgumentParser:
        ap = argparse.ArgumentParser(prog=prog, description="Create, delete, describe or change topics "
                                     "(kafka-topics.sh's flags).")
        common.add_connection_args(ap)
        act = ap.add_mutually_exclusive_group(required=True)
        for name, help_ in (("list", "list topic names"), ("describe", "partitions, leaders, replicas, ISR, "
                            "configs"), ("create", "create a topic"), ("alter", "add partitions or change "
                            "configs"), ("delete", "delete topics")):
            act.add_argument(f"--{name}", action="store_true", help=help_)
        ap.add_argument("--topic", help="the topic (a regular expression except with --create)")
        ap.add_argument("--partitions", type=int, help="partition count (create: default the broker's "
                        "num.partitions; alter: the new, larger count)")
        ap.add_argument("--replication-factor", type=int, help="create: default the broker's "
                        "default.replication.factor")
        ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a topic config (repeatable)")
        ap.add_argument("--delete-config", action="append", default=[], metavar="KEY",
                        help="alter: remove a topic config override (repeatable)")
        ap.add_argument("--if-exists", action="store_true", help="alter/delete/describe: no error when "
                        "no topic matches")
        ap.add_argument("--if-not-exists", action="store_true", help="create: no error when it exists")
        ap.add_argument("--exclude-internal", action="store_true", help="leave out internal topics")
        ap.add_argument("--offsets", action="store_true", help="describe: log start offset and high "
                        "watermark of each partition")
        ap.add_argument("--under-replicated-partitions", action="store_true",
                        help="describe: only partitions whose ISR is smaller than their replica set")
        ap.add_argument("--unavailable-partitions", action="store_true",
                        help="describe: only partitions without a leader")
        return ap

    def run(self, ns: argparse.Namespace) -> int:
        if ns.partitions is not None and ns.partitions < 1:
            raise common.UsageError("--partitions must be at least 1")
        if ns.replication_factor is not None and ns.replication_factor < 1:
            raise common.UsageError("--replication-factor must be at least 1")
        configs = common.parse_kv(ns.config, "--config")
        if ns.create or ns.alter or ns.delete:
            if not ns.topic:
                raise common.UsageError("--topic is needed with --create, --alter and --delete")
        if not ns.create and ns.topic:
            try:
                re.compile(ns.topic)
            except re.error as e:
                raise common.UsageError(f"--topic {ns.topic!r} is not a regular expression: {e}") from None
        if ns.alter and ns.partitions is None and not configs and not ns.delete_config:
            raise common.UsageError("--alter needs --partitions, --config or --delete-config")
        with common.connect(ns) as client:
            if ns.create:
                return create(client, ns.topic, ns.partitions, ns.replication_factor, configs,
                              ns.if_not_exists)
            names = matching(client, ns.topic, ns.exclude_internal)
            if ns.list:
                for n in names:
                    print(n)
                return 0
            if not names and ns.topic and not ns.if_exists:
                raise ClientError(f"topic {ns.topic!r} does not exist")
            if ns.describe:
                only = None
                if ns.under_replicated_partitions or ns.unavailable_partitions:
                    def only(p: PartitionMeta) -> bool:
                        return bool((ns.under_replicated_partitions and len(p.isr) < len(p.replicas))
                                    or (ns.unavailable_partitions and p.leader < 0))
                describe(client, names, ns.offsets, only)
            elif ns.alter:
                for n in names:
                    alter(client, n, ns.partitions, configs, ns.delete_config)
            else:
                delete(client, names)
        return 0


def matching(client: KafkaClient, pattern: str | None, exclude_internal: bool) -> list[str]:
    meta = client.metadata(None)
    rx = re.compile(pattern) if pattern else None
    return sorted(t.name for t in meta.topics.values()
                  if t.error_code == 0 and (rx is None or rx.fullmatch(t.name))
                  and not (exclude_internal and (t.internal or t.name.startswith("__"))))


def create(client: KafkaClient, topic: str, partitions: int | None, rf: int | None,
           configs: dict[str, str], if_not_exists: bool) -> int:
    body = {"topics": [{"name": topic, "num_partitions": -1 if partitions is None else partitions,
                        "replication_factor": -1 if rf is None else rf, "assignments": [],
                        "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
            "timeout_ms": int(client.timeout * 1000), "validate_only": False}
    resp = client.controller_call(19, body, results="topics")
    r = resp["topics"][0]
    if r["error_code"] == 36 and if_not_exists:  # TOPIC_ALREADY_EXISTS
        return 0
    check(r["error_code"], f"cannot create topic {topic!r}", r.get("error_message"))
    print(f"Created topic {topic}.")
    return 0


def describe(client: KafkaClient, names: list[str], offsets: bool,
             only: Callable[[PartitionMeta], bool] | None = None) -> None:
    """Kafka's layout; with ``only`` (the --under-replicated/--unavailable
    filters) just the matching partition lines, without the topic lines."""
    if not names:
        return
    meta = client.metadata(names)
    overrides = topic_overrides(client, names)
    for name in names:
        t = meta.topics[name]
        check(t.error_code, f"topic {name!r}")
        rf = len(next(iter(t.partitions.values())).replicas) if t.partitions else 0
        cfg = ",".join(f"{k}={v}" for k, v in overrides.get(name, {}).items())
        if only is not None:
            for p in t.partitions.values():
                if only(p):
                    print(_partition_line(name, p))
            continue
        print(f"Topic: {name}\tTopicId: {t.topic_id}\tPartitionCount: {len(t.partitions)}\t"
              f"ReplicationFactor: {rf}\tConfigs: {cfg}")
        starts, ends = (_offsets(client, t) if offsets else ({}, {}))
        for p in t.partitions.values():
            line = _partition_line(name, p)
            if offsets:
                line += f"\tLogStartOffset: {starts.get(p.partition, '-')}\t" \
                        f"HighWatermark: {ends.get(p.partition, '-')}"
            print(line)


def _partition_line(name: str, p: PartitionMeta) -> str:
    line = (f"\tTopic: {name}\tPartition: {p.partition}\tLeader: {p.leader if p.leader >= 0 else 'none'}\t"
            f"Replicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}")
    if p.offline:
        line += f"\tOffline: {_ids(p.offline)}"
    return line


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def _offsets(client: KafkaClient, t: TopicMeta) -> tuple[dict[int, int], dict[int, int]]:
    live = [p for p, m in t.partitions.items() if m.leader >= 0]
    return (client.list_offsets(t, {p: -2 for p in live}), client.list_offsets(t, {p: -1 for p in live}))


def topic_overrides(client: KafkaClient, names: list[str]) -> dict[str, dict[str, str]]:
    body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": n, "configuration_keys": None}
                          for n in names], "include_synonyms": False, "include_documentation": False}
    resp = client.any.call(32, body)
    out: dict[str, dict[str, str]] = {}
    for r in resp["results"]:
        check(r["error_code"], f"DescribeConfigs {r['resource_name']!r}", r.get("error_message"))
        out[r["resource_name"]] = {c["name"]: ("<sensitive>" if c["is_sensitive"] else str(c["value"]))
                                   for c in sorted(r["configs"], key=lambda c: c["name"])
                                   if c["config_source"] == DYNAMIC_TOPIC_CONFIG}
    return out


def alter(client: KafkaClient, topic: str, partitions: int | None, configs: dict[str, str],
          delete_configs: list[str]) -> None:
    if configs or delete_configs:
        ops = [{"name": k, "config_operation": 0, "value": v} for k, v in configs.items()]
        ops += [{"name": k, "config_operation": 1, "value": None} for k in delete_configs]
        resp = client.any.call(44, {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": topic,
                                                   "configs": ops}], "validate_only": False})
        for r in resp["responses"]:
            check(r["error_code"], f"cannot change the configs of {topic!r}", r.get("error_message"))
        print(f"Updated configs of topic {topic}.")
    if partitions is not None:
        body = {"topics": [{"name": topic, "count": partitions, "assignments": None}],
                "timeout_ms": int(client.timeout * 1000), "validate_only": False}
        resp = client.controller_call(37, body, results="results")
        for r in resp["results"]:
            check(r["error_code"], f"cannot add partitions to {topic!r}", r.get("error_message"))
        print(f"Topic {topic} now has {partitions} partitions.")


def delete(client: KafkaClient, names: list[str]) -> None:
    if not names:
        return
    resp = client.controller_call(20, {"topic_names": names, "topics": [{"name": n, "topic_id": None}
                                                                         for n in names],
                                       "timeout_ms": int(client.timeout * 1000)}, results="responses")
    failed = []
    for r in resp["responses"]:
        if r["error_code"]:
            failed.append(r)
        else:
            print(f"Deleted topic {r['name']}.")
    for r in failed:
        check(r["error_code"], f"cannot delete topic {r['name']!r}", r.get("error_message"))
