"""Cluster mode: several brokers coordinated through ZooKeeper (Kafka's
ZooKeeper-era design), leader/follower replication with an ISR.

Turned on by ``zookeeper.connect``; without it nothing here is imported and
a broker runs alone. See ``docs/cluster.md``.

- :mod:`.zk` kazoo bridged into trio, the session lease
- :mod:`.zkdata` znode paths and contents (Kafka's JSON)
- :mod:`.view` the watched picture of the cluster every broker keeps
- :mod:`.node` one broker's membership: registration, roles, lifecycle
- :mod:`.replica` leader side: roles, high watermark, ISR, acks=all, replica fetches
- :mod:`.fetcher` follower side: truncation and fetching from leaders
- :mod:`.controller` the elected controller: leader election, placement, shutdowns
- :mod:`.assignment` replica placement (rack-aware)
- :mod:`.zkserver` a local ZooKeeper for tests and ``scripts/cluster``
"""
