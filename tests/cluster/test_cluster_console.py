"""The web console on the brokers of a ZooKeeper cluster (3 broker
processes): every broker's cluster page lists the three brokers and the
controller, a topic page shows the replicas and the ISR, and a killed
broker shows as under-replicated partitions on the others' pages."""

from __future__ import annotations

import re
import socket
import urllib.request

from clusterlib import wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        return r.read().decode()


def _count(page: str, ident: str) -> int:
    m = re.search(rf'id="{ident}">(\d+)<', page)
    assert m, ident
    return int(m.group(1))


def _page_with(url: str, text: str) -> str | None:
    page = _page(url)
    return page if text in page else None


def test_console_on_a_cluster(cluster_factory):
    ports = [_free_port() for _ in range(3)]
    c = cluster_factory(3, per_broker={i: {"pykbroker.console.enable": "true",
                                           "pykbroker.control.listener": f"127.0.0.1:{ports[i]}"}
                                       for i in range(3)})
    urls = [f"http://127.0.0.1:{p}/console" for p in ports]
    controller = c.controller()
    for url in urls:
        # every broker's page names the controller once its ZooKeeper watch told it
        page = wait_until(lambda url=url: _page_with(f"{url}/cluster", f'id="controller">{controller}<'), 30,
                          f"{url} names controller {controller}")
        assert len(re.findall(r"<tr><td>(\d+)</td><td>127\.0\.0\.1</td>", page)) == 3
    c.create_topic("replicated", 2, rf=3)
    c.wait_full_isr("replicated", 2)
    page = _page(f"{urls[controller]}/topics/replicated")
    rows = re.findall(r'<tr data-partition="(\d)"[^>]*>\s*<td class="num">\d</td><td class="num">(\d)</td>\s*'
                      r"<td>([\d, ]+)</td><td>([\d, ]+)</td>", page)
    assert len(rows) == 2
    for _p, _leader, replicas, isr in rows:
        assert sorted(replicas.split(", ")) == ["0", "1", "2"] and sorted(isr.split(", ")) == ["0", "1", "2"]
    victim = next(i for i in range(3) if i != controller)
    c.kill(victim)
    wait_until(lambda: _count(_page(f"{urls[controller]}/cluster"), "under-count") == 2, 60,
               "the killed broker's partitions shown as under-replicated")
    assert _count(_page(f"{urls[controller]}/cluster"), "offline-count") == 0
