"""A Jepsen-style nemesis harness for a pykbroker cluster on loopback.

ZooKeeper + N broker processes, each broker listener and each broker's
ZooKeeper connection behind a TCP fault proxy (:mod:`.proxy`); a seeded
schedule of faults (:mod:`.faults`: ``kill -9`` with a restart later,
SIGSTOP/SIGCONT pauses, network partitions of a broker from its peers or
from ZooKeeper, ZooKeeper restarts) runs while workloads (:mod:`.workloads`:
idempotent acks=all producers, librdkafka and kafka-python) write keyed,
sequenced records; at the end :mod:`.checker` reads everything back and
reports lost acknowledged records, duplicates, reordering per key, the
longest window per partition without an acknowledgement, the time until
every partition was served again after the last fault, and whether all
brokers agree on every partition's leader and epoch.

``scripts/chaos`` is the command line; ``tests/nemesis/test_nemesis.py``
the CI-sized run. :func:`.runner.run` ties it together.
"""
