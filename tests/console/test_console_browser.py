"""The web console in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium; no browser is downloaded).

What is proved here (issue 16's acceptance):
- the topic page lists a topic created by kafka-python with its partitions
  and offsets;
- the group page shows lag equal to what the client computes (1,000
  produced, 400 consumed and committed: 600), and it drops to 0, without a
  reload (live polling), after the consumer catches up; an empty group's
  offsets are reset on the page and kafka-python sees them;
- the message browser shows a produced record's key, JSON value (pretty)
  and headers; a record produced on the page is browsed back;
- a config change made on the page is seen by kafka-python's DescribeConfigs;
- bad input on the forms and routes gets a clear message (4xx), and the
  broker keeps serving.
Screenshots of the main pages are taken on every run; they are written to
docs/screenshots/ when PYKBROKER_SCREENSHOTS=1 (their pixels differ from run
to run: ports, ids, times), else to a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = (Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("PYKBROKER_SCREENSHOTS") == "1"
         else Path(tempfile.mkdtemp(prefix="pykbroker-screenshots-")))

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="Debian's chromium and chromium-driver are not installed")


@pytest.fixture(scope="module")
def kafka():
    from pykbroker.testing import BrokerThread

    with BrokerThread({"pykbroker.console.enable": True, "pykbroker.console.sample.interval.ms": 250,
                       "num.partitions": 1}, control=True) as b:
        yield b


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pykbroker-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(drv, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / f"{name}.png"))


def css(drv, sel: str):
    from selenium.webdriver.common.by import By

    return drv.find_element(By.CSS_SELECTOR, sel)


def css_all(drv, sel: str):
    from selenium.webdriver.common.by import By

    return drv.find_elements(By.CSS_SELECTOR, sel)


def retry(fn):
    """``fn()``, again if the page's live part was swapped meanwhile (it is
    replaced every 2 s, which makes elements found before stale)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            return fn()
        except StaleElementReferenceException:
            time.sleep(0.05)
    return fn()


def text(drv, sel: str) -> str:
    return retry(lambda: css(drv, sel).text)


def texts(drv, sel: str) -> list[str]:
    return retry(lambda: [e.text for e in css_all(drv, sel)])


def attrs(drv, sel: str, name: str) -> list[str]:
    return retry(lambda: [e.get_attribute(name) for e in css_all(drv, sel)])


def wait_text(drv, sel: str, want: str, timeout: float = 20) -> None:
    """Until the element's text is ``want`` (the page updating itself)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def ok(d):
        try:
            return css(d, sel).text.strip() == want
        except Exception:
            return False

    WebDriverWait(drv, timeout, poll_frequency=0.2).until(ok, f"{sel} never showed {want!r}")


def submit(drv, form_id: str, fields: dict[str, str]) -> None:
    from selenium.webdriver.support.ui import Select

    form = css(drv, f"#{form_id}")
    for name, value in fields.items():
        el = form.find_element("name", name)
        if el.tag_name == "select":
            Select(el).select_by_visible_text(value)
        elif el.get_attribute("type") == "checkbox":
            if (value == "1") != el.is_selected():
                el.click()
        else:
            el.clear()
            el.send_keys(value)
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # Mark the current document; the answer is a new document without the mark.
    # (Selenium's staleness_of can raise a plain WebDriverException, "node does
    # not belong to the document", when the check races the navigation.)
    drv.execute_script("window.__pkOldPage = true;")
    form.find_element("css selector", "button[type=submit]").click()

    def loaded(d) -> bool:
        try:
            return bool(d.execute_script(
                "return window.__pkOldPage === undefined && document.readyState === 'complete';"))
        except WebDriverException:
            return False  # mid-navigation

    WebDriverWait(drv, 30, poll_frequency=0.1).until(loaded, "the form's answer never loaded")


def admin(kafka):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=10000)


def test_topic_page_lists_a_client_topic_with_partitions_and_offsets(kafka, browser):
    from kafka import KafkaProducer
    from kafka.admin import NewTopic

    a = admin(kafka)
    try:
        a.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])
    finally:
        a.close()
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    counts = {0: 5, 1: 7, 2: 2}
    for part, n in counts.items():
        for i in range(n):
            p.send("orders", key=b"customer-%d" % i, value=json.dumps({"order": i}).encode(), partition=part)
    p.flush(30)
    p.close()
    browser.get(f"{kafka.control_url}/console/topics")
    assert texts(browser, 'tr[data-topic="orders"] td')[1:3] == ["3", "14"]
    shot(browser, "topics")
    browser.get(f"{kafka.control_url}/console/topics/orders")
    assert text(browser, "#topic-name") == "orders"
    assert attrs(browser, "#partitions tr[data-partition]", "data-partition") == ["0", "1", "2"]
    for part, n in counts.items():
        row = f'#partitions tr[data-partition="{part}"]'
        assert text(browser, f"{row} .log-start") == "0"
        assert [text(browser, f"{row} {c}") for c in (".hw", ".lso", ".leo")] == [str(n)] * 3
    assert text(browser, 'tr[data-config="cleanup.policy"] .value') == "delete"
    shot(browser, "topic")
    browser.get(f"{kafka.control_url}/console/cluster")
    assert text(browser, "#controller") == str(kafka.broker.config.node_id)
    assert text(browser, "#under-count") == "0" and text(browser, "#offline-count") == "0"
    shot(browser, "cluster")


def test_group_lag_matches_the_client_and_drops_live(kafka, browser):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = kafka.create_topic("lagging", 1)
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5)
    for i in range(1000):
        p.send(topic, value=b"v%d" % i, partition=0)
    p.flush(30)
    p.close()
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id="invoices", enable_auto_commit=False,
                      auto_offset_reset="earliest", max_poll_records=100)
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 60
        while got < 400 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500, max_records=400 - got).values():
                got += len(msgs)
        assert got == 400
        c.commit({tp: OffsetAndMetadata(400, "", -1)})
        client_lag = c.end_offsets([tp])[tp] - c.committed(tp)
        assert client_lag == 600
        browser.get(f"{kafka.control_url}/console/groups/invoices")
        assert text(browser, "#total-lag") == str(client_lag)
        row = f'#offsets tr[data-topic="{topic}"][data-partition="0"]'
        assert text(browser, f"{row} .committed") == "400"
        assert text(browser, f"{row} .lag") == "600"
        assert text(browser, "#group-state") == "Stable"
        members = texts(browser, "#members tr td:nth-child(4)")
        assert members and f"{topic}: 0" in members[0]
        # a few lag samples for the chart: wait for the page's own refresh
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 20).until(lambda d: css(d, "#live").get_attribute("data-refreshed"))
        assert text(browser, "#total-lag") == "600"
        shot(browser, "group")
        # catch up: the open page follows without a reload
        while got < 1000 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got += len(msgs)
        assert got == 1000
        c.commit({tp: OffsetAndMetadata(1000, "", -1)})
        assert c.end_offsets([tp])[tp] - c.committed(tp) == 0
        wait_text(browser, "#total-lag", "0")
        assert css(browser, "#lag-chart polyline") is not None
        shot(browser, "group-caught-up")
    finally:
        c.close()
    browser.get(f"{kafka.control_url}/console/groups")
    wait_text(browser, 'tr[data-group="invoices"] .lag', "0")
    shot(browser, "groups")
    # the group is empty now: reset its offsets to the earliest on the page
    browser.get(f"{kafka.control_url}/console/groups/invoices")
    wait_text(browser, "#group-state", "Empty")
    submit(browser, "reset-offsets", {"topic": topic, "partition": "0", "to": "earliest"})
    assert "reset" in text(browser, "#message")
    assert text(browser, "#total-lag") == "1000"
    c2 = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id="invoices", enable_auto_commit=False)
    try:
        assert c2.committed(tp) == 0
    finally:
        c2.close()
    # an offset out of range: a clear message, nothing changed
    submit(browser, "reset-offsets", {"topic": topic, "partition": "0", "to": "offset", "offset": "5000"})
    assert "out of range" in text(browser, "#error")


def test_message_browser_shows_key_json_value_and_headers(kafka, browser):
    from kafka import KafkaProducer

    topic = kafka.create_topic("invoices-out", 1)
    value = {"invoice": 17, "customer": "c-42", "lines": [{"sku": "A", "qty": 2}]}
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    p.send(topic, key=b"c-42", value=json.dumps(value).encode(), partition=0,
           headers=[("trace-id", b"abc123"), ("source", b"billing")])
    p.flush(30)
    p.close()
    browser.get(f"{kafka.control_url}/console/topics/{topic}/messages?partition=0&offset=0&format=json")
    row = '#records tr[data-offset="0"]'
    assert text(browser, f"{row} .key pre") == "c-42"
    shown = text(browser, f"{row} .value pre")
    assert json.loads(shown) == value and "\n" in shown  # pretty-printed
    headers = text(browser, f"{row} .headers")
    assert "trace-id: abc123" in headers and "source: billing" in headers
    shot(browser, "messages")
    browser.get(f"{kafka.control_url}/console/topics/{topic}/messages?partition=0&offset=0&format=hex")
    assert text(browser, '#records tr[data-offset="0"] .key pre') == b"c-42".hex(" ")
    # produce a test record on the page, then browse it
    browser.get(f"{kafka.control_url}/console/topics/{topic}/messages")
    submit(browser, "produce", {"key": "page-key", "value": '{"from": "the page"}', "headers": "h1=v1"})
    assert "at offset 1" in text(browser, "#message")
    browser.get(f"{kafka.control_url}/console/topics/{topic}/messages?offset=1&format=json")
    row = '#records tr[data-offset="1"]'
    assert text(browser, f"{row} .key pre") == "page-key"
    assert json.loads(text(browser, f"{row} .value pre")) == {"from": "the page"}
    assert "h1: v1" in text(browser, f"{row} .headers")
    # browse from a timestamp: the first record at or after it
    browser.get(f"{kafka.control_url}/console/topics/{topic}/messages?timestamp=0&format=text")
    assert attrs(browser, "#records tr[data-offset]", "data-offset")[0] == "0"


def test_config_change_on_the_page_is_seen_by_describe_configs(kafka, browser):
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = kafka.create_topic("configurable", 1)
    browser.get(f"{kafka.control_url}/console/topics/{topic}")
    submit(browser, "alter-config", {"config": "retention.ms", "value": "3600000"})
    assert text(browser, "#message") == "retention.ms set to 3600000"
    assert text(browser, 'tr[data-config="retention.ms"] td:nth-child(3)') == "DYNAMIC_TOPIC_CONFIG"
    a = admin(kafka)
    try:
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entry = res["topic"][topic]["retention.ms"]
    finally:
        a.close()
    assert (entry["value"], entry["config_source"]) == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    # an invalid value: Kafka's message on the page, the old value kept
    submit(browser, "alter-config", {"config": "retention.ms", "value": "soon"})
    assert "INVALID_CONFIG" in text(browser, "#error")
    assert text(browser, 'tr[data-config="retention.ms"] .value') == "3600000"


def test_create_and_delete_a_topic_on_the_page(kafka, browser):
    browser.get(f"{kafka.control_url}/console/topics")
    submit(browser, "create-topic", {"name": "made-on-page", "partitions": "4", "configs": "cleanup.policy=compact"})
    assert text(browser, "#message") == "created topic made-on-page"
    assert kafka.call(lambda: kafka.broker.state.topics["made-on-page"].configs) == {"cleanup.policy": "compact"}
    assert kafka.topics()["made-on-page"] == 4
    submit(browser, "create-topic", {"name": "made-on-page", "partitions": "1"})
    assert "TOPIC_ALREADY_EXISTS" in text(browser, "#error")
    submit(browser, "create-topic", {"name": "bad name!", "partitions": "1"})
    assert "INVALID_TOPIC_EXCEPTION" in text(browser, "#error")
    browser.get(f"{kafka.control_url}/console/topics/made-on-page")
    submit(browser, "delete-topic", {"confirm": "wrong"})
    assert "confirm" in text(browser, "#error")
    submit(browser, "delete-topic", {"confirm": "made-on-page"})
    assert browser.current_url.endswith("/console/topics")
    assert "made-on-page" not in kafka.topics()


def test_throughput_page(kafka, browser):
    from kafka import KafkaConsumer, KafkaProducer

    topic = kafka.create_topic("busy", 1)
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=2)
    c = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest")
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            for _i in range(50):
                p.send(topic, value=b"x" * 100)
            p.flush(10)
            c.poll(timeout_ms=50)
        browser.get(f"{kafka.control_url}/console/throughput")
        cells = texts(browser, f'#throughput tr[data-topic="{topic}"] td')
        assert float(cells[1]) > 0, cells  # records/s in
        assert not cells[4].startswith("0 B"), cells  # bytes/s out
        shot(browser, "throughput")
    finally:
        p.close()
        c.close()


def test_bad_input_gets_a_clear_message_and_the_broker_keeps_serving(kafka, browser):
    import urllib.error
    import urllib.request

    url = kafka.control_url
    browser.get(f"{url}/console/topics/no-such-topic")
    assert text(browser, "#error") == "unknown topic 'no-such-topic'"
    browser.get(f"{url}/console/groups/no-such-group")
    assert "unknown group" in text(browser, "#error")
    topic = kafka.create_topic("small", 1)
    for query, words in (("offset=999999", "out of range"), ("limit=100000000", "limit must be between"),
                         ("partition=7", "has partitions 0 to 0"), ("offset=abc", "must be an integer"),
                         ("format=xml", "format must be one of"), ("timestamp=yesterday", "timestamp must be")):
        browser.get(f"{url}/console/topics/{topic}/messages?{query}")
        assert words in text(browser, "#error"), query

    def status(path: str, data: bytes | None = None, ctype: str | None = None) -> tuple[int, str]:
        req = urllib.request.Request(url + path, data=data)
        if ctype:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    assert status(f"/console/topics/{topic}/messages?limit=999999999999")[0] == 400
    assert status("/console/topics/nope/messages")[0] == 404
    assert status("/console/topics", b"x" * (200 * 1024), "application/x-www-form-urlencoded")[0] == 413
    assert status("/console/topics", b"{}", "application/json")[0] == 415
    form = "application/x-www-form-urlencoded"
    for path, data, code, words in (
            (f"/console/topics/{topic}/messages", b"partition=99&value=x", 400, "partition must be between 0 and 0"),
            (f"/console/topics/{topic}/config", b"config=no.such.config&value=1", 400, "INVALID_CONFIG"),
            (f"/console/topics/{topic}/config", b"config=segment.bytes&value=-5", 400, "INVALID_CONFIG"),
            ("/console/topics/nope/delete", b"confirm=nope", 404, "unknown topic"),
            ("/console/topics/nope/config", b"config=retention.ms&value=1", 404, "unknown topic"),
            ("/console/topics", b"name=x&partitions=-3", 400, "partitions must be between"),
            ("/console/groups/nobody", b"topic=small&to=earliest", 404, "unknown group")):
        got, page = status(path, data, form)
        assert got == code and words in page, (path, got, page[-600:])
    code, body = status(f"/topics/{topic}/records?limit=99999999")
    assert code == 400 and "limit" in json.loads(body)["error"]
    code, body = status("/topics/nope/records")
    assert code == 404 and "unknown topic" in json.loads(body)["error"]
    # still serving: Kafka clients and the pages
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    assert p.send(topic, b"still here").get(timeout=10).offset >= 0
    p.close()
    assert json.loads(status("/health")[1])["status"] == "ok"
    browser.get(f"{url}/console/topics")
    assert css(browser, f'tr[data-topic="{topic}"]') is not None


def test_consumer_protocol_group_page(kafka, browser):
    """A KIP-848 group (confluent-kafka, group.protocol=consumer): its type,
    the member's assignment, committed offset and lag."""
    ck = pytest.importorskip("confluent_kafka")
    from kafka import KafkaProducer

    topic = kafka.create_topic("kip848", 2)
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for i in range(20):
        p.send(topic, value=b"r%d" % i, partition=i % 2)
    p.flush(30)
    p.close()
    c = ck.Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "kip848-group", "group.protocol": "consumer",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 20 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m)
        assert len(got) == 20
        c.commit(offsets=[ck.TopicPartition(topic, 0, 4), ck.TopicPartition(topic, 1, 7)], asynchronous=False)
        browser.get(f"{kafka.control_url}/console/groups/kip848-group")
        assert text(browser, "#group-state") == "Stable"
        assert "type consumer" in text(browser, "#live p")
        assert text(browser, "#total-lag") == str((10 - 4) + (10 - 7))
        lags = dict(zip(attrs(browser, "#offsets tr[data-topic]", "data-partition"),
                        texts(browser, "#offsets tr[data-topic] .lag")))
        assert lags == {"0": "6", "1": "3"}
        assert f"{topic}: 0, 1" in text(browser, "#members tr td:nth-child(4)")
    finally:
        c.close()


def test_share_group_page(kafka, browser):
    """A share group (confluent-kafka's ShareConsumer): type, member and
    assignment, start offset and lag; reset on the page once it is empty."""
    ck = pytest.importorskip("confluent_kafka")
    if not hasattr(ck, "ShareConsumer"):
        pytest.skip("confluent-kafka without ShareConsumer")
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
    from kafka import KafkaProducer

    topic, group = kafka.create_topic("jobs", 1), "job-workers"
    p = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for i in range(10):
        p.send(topic, value=b"job-%d" % i, partition=0)
    p.flush(30)
    p.close()
    a = AdminClient({"bootstrap.servers": kafka.bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result()
    c = ck.ShareConsumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 60
        while got < 10 and time.monotonic() < deadline:
            got += sum(1 for m in c.poll(0.5) if m.error() is None)
        assert got == 10
        c.commit_sync()  # acknowledges what was delivered: the start offset moves to 10
        browser.get(f"{kafka.control_url}/console/groups/{group}")
        assert "type share" in text(browser, "#live p")
        assert f"{topic}: 0" in text(browser, "#members tr td:nth-child(4)")
        wait_text(browser, "#offsets .committed", "10")
        assert text(browser, "#total-lag") == "0"
        time.sleep(1)  # lag samples for the chart
        browser.refresh()
        shot(browser, "share-group")
    finally:
        c.close()
    browser.get(f"{kafka.control_url}/console/groups/{group}")
    wait_text(browser, "#group-state", "Empty", timeout=30)
    submit(browser, "reset-offsets", {"topic": topic, "to": "earliest"})
    assert "reset" in text(browser, "#message")
    assert text(browser, "#offsets .committed") == "0" and text(browser, "#total-lag") == "10"
