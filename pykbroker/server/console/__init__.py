"""The web console (``pykbroker.console.enable``; docs/console.md).

Server-rendered HTML pages on the control endpoint's ASGI app
(``server/control.py``): cluster, topics (partitions, configs; create,
delete, change a config), messages (browse by offset or timestamp, text /
JSON / hex, produce a test record), consumer groups (classic, consumer,
share: members, assignment, committed offsets, lag and its chart, reset
offsets of an empty group) and throughput per topic. Templates and the
small stylesheet and script ship in the package; nothing is fetched from
elsewhere. Pages refresh their live part by polling (``console.js`` asks
for the same URL with ``X-Console-Partial: 1`` every 2 s).

Reads go through the state's seams (``BrokerState``, ``TopicRegistry``,
``Replicas``, ``inspect``); every change goes through the Kafka handlers
(``admin.py``), so it is validated as a client's request is. Bad input
gets the page again with a message and a 4xx status.
"""

from __future__ import annotations

import datetime
import json
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .. import inspect
from ..control import HttpError, read_body
from . import admin
from .history import History, TopicMeter
from .svg import line_chart

if TYPE_CHECKING:
    from ...broker import Broker
    from ..state import BrokerState

log = logging.getLogger("pykbroker.console")

MAX_LIMIT = 500
MAX_FORM = 64 * 1024
MAX_PARTITIONS = 10_000
FORMATS = ("text", "json", "hex")


class BadInput(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _fmt_bytes(n: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def _fmt_ts(ms: int) -> str:
    if ms < 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def render_bytes(b: bytes | None, fmt: str, *, note_json: bool = True) -> tuple[str, str]:
    """(shown text, note) of a key, value or header value in ``fmt``
    (json: pretty-printed when it parses, else text, noted if ``note_json``)."""
    if b is None:
        return "null", ""
    if fmt == "hex":
        return b.hex(" "), ""
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return b.hex(" "), "not UTF-8: shown as hex"
    if fmt == "json":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False), ""
        except ValueError:
            return text, "not JSON: shown as text" if note_json else ""
    return text, ""


def _int(value: str | None, name: str, *, lo: int | None = None, hi: int | None = None,
         default: int | None = None) -> int | None:
    if value is None or value.strip() == "":
        return default
    try:
        v = int(value.strip())
    except ValueError:
        raise BadInput(f"{name} must be an integer, not {value!r}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise BadInput(f"{name} must be between {lo} and {hi}, not {v}")
    return v


def parse_timestamp(value: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 time (UTC unless it says)."""
    v = value.strip()
    if v.lstrip("-").isdigit():
        return int(v)
    try:
        d = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"timestamp must be milliseconds or an ISO 8601 time like 2026-01-31T12:00:00, "
                       f"not {value!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.UTC)
    return int(d.timestamp() * 1000)


class Console:
    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.state: "BrokerState" = broker.state
        self.meter = TopicMeter(self.state)
        broker.instrumentation.topic_meter = self.meter
        self.history = History(self.state, self.meter)
        self.interval = int(broker.config["pykbroker.console.sample.interval.ms"]) / 1000
        here = resources.files(__name__)
        self.static = {f.name: f.read_bytes() for f in here.joinpath("static").iterdir() if f.is_file()}
        self.env = jinja2.Environment(
            loader=jinja2.DictLoader({f.name: f.read_text("utf-8")
                                      for f in here.joinpath("templates").iterdir() if f.name.endswith(".html")}),
            autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters.update(bytes=_fmt_bytes, ts=_fmt_ts, q=lambda s: quote(str(s), safe=""))

    async def run(self) -> None:
        await self.history.run(self.interval, self._share_lag)

    async def _share_lag(self) -> dict[str, int]:
        """Total lag of every share group (for the history)."""
        out = {}
        for gid, kind in (await admin.list_groups(self.state)).items():
            if kind["type"] == "share":
                out[gid] = sum(o["lag"] or 0 for o in await admin.share_offsets(self.state, gid))
        return out

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/console", lambda r: RedirectResponse("/console/cluster", 302)),
            Route("/console/", lambda r: RedirectResponse("/console/cluster", 302)),
            Route("/console/static/{file}", self.static_file),
            Route("/console/cluster", self._page(self.cluster)),
            Route("/console/topics", self._page(self.topics), methods=["GET", "POST"]),
            Route("/console/topics/{name}", self._page(self.topic), methods=["GET"]),
            Route("/console/topics/{name}/config", self._page(self.topic_config), methods=["POST"]),
            Route("/console/topics/{name}/delete", self._page(self.topic_delete), methods=["POST"]),
            Route("/console/topics/{name}/messages", self._page(self.messages), methods=["GET", "POST"]),
            Route("/console/groups", self._page(self.groups)),
            Route("/console/groups/{gid}", self._page(self.group), methods=["GET", "POST"]),
            Route("/console/throughput", self._page(self.throughput)),
        ]

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["file"]
        data = self.static.get(name)
        if data is None:
            return Response("not found", 404, media_type="text/plain")
        ctype = "text/css" if name.endswith(".css") else "text/javascript"
        return Response(data, media_type=ctype, headers={"Cache-Control": "max-age=60"})

    # -- plumbing ----------------------------------------------------------------------------

    def _page(self, fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            partial = request.headers.get("x-console-partial") == "1"
            form: dict[str, str] = {}
            try:
                if request.method == "POST":
                    form = await self._form(request)
                result = await fn(request, form)
            except BadInput as e:
                result = {"template": "error.html", "status": e.status, "error": str(e)}
            except HttpError as e:
                result = {"template": "error.html", "status": e.status, "error": str(e)}
            except Exception as e:  # a bug: logged, the broker keeps serving
                log.exception("console page failed")
                result = {"template": "error.html", "status": 500, "error": f"internal error: {e!r}"}
            if isinstance(result, Response):
                return result
            status = int(result.pop("status", 200))
            for k in ("message", "error"):
                result.setdefault(k, None)
            result.setdefault("form", {})
            tpl = self.env.get_template(result.pop("template"))
            html = tpl.render(partial=partial, path=request.url.path, url=str(request.url.path)
                              + (f"?{request.url.query}" if request.url.query else ""),
                              broker=self._broker_info(), **result)
            return HTMLResponse(html, status)
        return endpoint

    async def _form(self, request: Request) -> dict[str, str]:
        ctype = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in ctype:
            raise BadInput("send the form as application/x-www-form-urlencoded", 415)
        body = await read_body(request, MAX_FORM)
        try:
            q = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise BadInput("the form is not UTF-8") from None
        return {k: v[-1] for k, v in q.items()}

    def _broker_info(self) -> dict[str, Any]:
        b = self.broker
        return {"bootstrap": b.bootstrap, "cluster_id": self.state.cluster_id, "node_id": self.state.config.node_id}

    def _topic(self, name: str) -> Any:
        ts = self.state.topics.get(name)
        if ts is None:
            raise BadInput(f"unknown topic {name!r}", 404)
        return ts

    def _partitions(self, ts: Any) -> list[dict[str, Any]]:
        out = []
        replicas = self.state.replicas
        for p in ts.partitions:
            info = replicas.partition_info(ts, p)
            row: dict[str, Any] = {"partition": p.index, "leader": info.leader, "leader_epoch": info.leader_epoch,
                                   "replicas": info.replicas, "isr": info.isr, "offline": info.offline,
                                   "under_replicated": len(info.isr) < len(info.replicas),
                                   "local": True}
            try:
                row.update(log_start_offset=p.log_start_offset, high_watermark=p.high_watermark,
                           last_stable_offset=p.last_stable_offset, log_end_offset=p.log_end_offset,
                           size=p.log.size)
            except Exception:  # no replica here (a cluster)
                row.update(local=False, log_start_offset=None, high_watermark=None, last_stable_offset=None,
                           log_end_offset=None, size=None)
            out.append(row)
        return out

    # -- pages -------------------------------------------------------------------------------

    async def cluster(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        st = self.state
        brokers = sorted(st.replicas.live_brokers(), key=lambda b: b.node_id)
        under: list[tuple[str, int]] = []
        offline: list[tuple[str, int]] = []
        partitions = 0
        for name in sorted(st.topics):
            ts = st.topics[name]
            for p in ts.partitions:
                partitions += 1
                info = st.replicas.partition_info(ts, p)
                if info.leader < 0:
                    offline.append((name, p.index))
                elif len(info.isr) < len(info.replicas):
                    under.append((name, p.index))
        return {"template": "cluster.html", "brokers": brokers, "controller": st.replicas.controller_id(),
                "topics": len(st.topics), "partitions": partitions, "under": under, "offline": offline,
                "mode": "ZooKeeper cluster" if st.config["zookeeper.connect"] else "single node"}

    async def topics(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        message = error = None
        status = 200
        if request.method == "POST":
            name = form.get("name", "").strip()
            try:
                n = _int(form.get("partitions"), "partitions", lo=1, hi=MAX_PARTITIONS, default=-1)
                rf = _int(form.get("replication_factor"), "replication factor", lo=1, hi=100, default=-1)
                configs: dict[str, str] = {}
                for line in form.get("configs", "").splitlines():
                    if line.strip():
                        k, sep, v = line.partition("=")
                        if not sep:
                            raise BadInput(f"configs: expected name=value per line, got {line.strip()!r}")
                        configs[k.strip()] = v.strip()
                if not name:
                    raise BadInput("give the topic a name")
                await admin.create_topic(self.state, name, n or -1, rf or -1, configs)
                message = f"created topic {name}"
            except (BadInput, admin.AdminError) as e:
                error, status = str(e), 400
        rows = []
        for name in sorted(self.state.topics):
            ts = self.state.topics[name]
            parts = self._partitions(ts)
            rows.append({"name": name, "internal": ts.internal, "partitions": len(parts),
                         "records": sum((p["high_watermark"] or 0) - (p["log_start_offset"] or 0) for p in parts),
                         "size": sum(p["size"] or 0 for p in parts),
                         "under": sum(1 for p in parts if p["under_replicated"]),
                         "rates": self.history.rates(name)})
        return {"template": "topics.html", "rows": rows, "message": message, "error": error, "status": status,
                "form": form}

    async def topic(self, request: Request, form: dict[str, str], *, message: str | None = None,
                    error: str | None = None, status: int = 200) -> dict[str, Any]:
        ts = self._topic(request.path_params["name"])
        configs = await admin.topic_configs(self.state, ts.name)
        return {"template": "topic.html", "topic": ts, "topic_id": ts.topic_id.hex(),
                "partitions": self._partitions(ts), "configs": configs, "message": message, "error": error,
                "status": status}

    async def topic_config(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        ts = self._topic(request.path_params["name"])
        name = form.get("config", "").strip()
        delete = form.get("delete") == "1"
        value = None if delete else form.get("value", "")
        if not name:
            return await self.topic(request, form, error="choose a config", status=400)
        try:
            await admin.alter_topic_config(self.state, ts.name, name, value)
        except admin.AdminError as e:
            return await self.topic(request, form, error=str(e), status=400)
        done = f"{name} reset to its default" if delete else f"{name} set to {value}"
        return await self.topic(request, form, message=done)

    async def topic_delete(self, request: Request, form: dict[str, str]) -> Any:
        ts = self._topic(request.path_params["name"])
        if form.get("confirm", "") != ts.name:
            return await self.topic(request, form, error="type the topic's name to confirm the deletion",
                                    status=400)
        try:
            await admin.delete_topic(self.state, ts.name)
        except admin.AdminError as e:
            return await self.topic(request, form, error=str(e), status=400)
        return RedirectResponse("/console/topics", 303)

    async def messages(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        ts = self._topic(request.path_params["name"])
        q = request.query_params
        message = error = None
        status = 200
        if request.method == "POST":  # produce a test record
            try:
                part = _int(form.get("partition"), "partition", lo=0, hi=len(ts.partitions) - 1, default=0)
                key = form.get("key", "")
                value = form.get("value", "")
                headers: list[tuple[str, bytes | None]] = []
                for line in form.get("headers", "").splitlines():
                    if line.strip():
                        k, sep, v = line.partition("=")
                        if not sep:
                            raise BadInput(f"headers: expected name=value per line, got {line.strip()!r}")
                        headers.append((k.strip(), v.encode("utf-8")))
                off = await admin.produce(self.state, ts.name, part or 0, key.encode("utf-8") if key else None,
                                          value.encode("utf-8"), headers)
                message = f"produced to partition {part} at offset {off}"
            except (BadInput, admin.AdminError) as e:
                error, status = str(e), 400
        fmt = q.get("format", "text")
        if fmt not in FORMATS:
            raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        partition = _int(q.get("partition"), "partition", default=0)
        if not 0 <= (partition or 0) < len(ts.partitions):
            raise BadInput(f"topic {ts.name} has partitions 0 to {len(ts.partitions) - 1}, not {partition}")
        p = ts.partitions[partition or 0]
        limit = _int(q.get("limit"), "limit", lo=1, hi=MAX_LIMIT, default=20) or 20
        start, hw = p.log_start_offset, p.high_watermark
        offset = _int(q.get("offset"), "offset")
        timestamp = q.get("timestamp", "").strip()
        if timestamp:
            try:
                offset = await admin.offset_for(self.state, ts.name, p.index, parse_timestamp(timestamp))
            except admin.AdminError as e:
                raise BadInput(str(e)) from None
        if offset is None:
            offset = max(start, hw - limit)
        elif not start <= offset <= hw:
            raise BadInput(f"offset {offset} is out of range: partition {p.index} has offsets {start} to {hw} "
                           f"(the high watermark)")
        rows = []
        for r in inspect.records(self.state, ts.name, p.index, offset=offset, limit=limit):
            key_text, key_note = render_bytes(r["key"], fmt, note_json=False)
            value_text, value_note = render_bytes(r["value"], fmt)
            rows.append({"offset": r["offset"], "timestamp": r["timestamp"], "key": key_text, "key_note": key_note,
                         "value": value_text, "value_note": value_note,
                         "headers": [(k, *render_bytes(v, fmt, note_json=False)) for k, v in r["headers"]]})
        return {"template": "messages.html", "topic": ts, "partition": p.index, "offset": offset, "limit": limit,
                "fmt": fmt, "formats": FORMATS, "timestamp": timestamp, "rows": rows, "start": start, "hw": hw,
                "message": message, "error": error, "status": status, "form": form}

    async def _group_rows(self) -> list[dict[str, Any]]:
        listed = await admin.list_groups(self.state)
        names = set(listed) | set(inspect.list_groups(self.state))
        rows = []
        for gid in sorted(names):
            kind = listed.get(gid, {})
            g = await self._group_view(gid, kind.get("type", "classic"))
            rows.append({"group_id": gid, "type": kind.get("type", "classic"),
                         "state": kind.get("state") or g["state"], "members": len(g["members"]),
                         "total_lag": g["total_lag"], "partitions": len(g["offsets"])})
        return rows

    async def _group_view(self, gid: str, gtype: str) -> dict[str, Any]:
        """``inspect.group``, with a share group's start offsets and lag."""
        g = inspect.group(self.state, gid)
        if gtype == "share":
            g["offsets"] = await admin.share_offsets(self.state, gid)
            g["total_lag"] = sum(o["lag"] or 0 for o in g["offsets"])
            g["members"] = await admin.group_members(self.state, gid, gtype)
        return g

    async def groups(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        return {"template": "groups.html", "rows": await self._group_rows()}

    async def group(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        gid = request.path_params["gid"]
        listed = await admin.list_groups(self.state)
        kind = listed.get(gid)
        gtype = (kind or {}).get("type", "classic")
        g = await self._group_view(gid, gtype)
        if kind is None and g["state"] == "Dead":
            raise BadInput(f"unknown group {gid!r}", 404)
        state = (kind or {}).get("state") or g["state"]
        message = error = None
        status = 200
        if request.method == "POST":
            try:
                message = await self._reset(gid, gtype, state, form)
                g = await self._group_view(gid, gtype)
                self.history.sample_group(gid, g["total_lag"])
            except (BadInput, admin.AdminError) as e:
                error, status = str(e), 400
        members = await admin.group_members(self.state, gid, gtype)
        lag = list(self.history.lag.get(gid) or ())
        chart = line_chart([("total lag", [(t, float(v)) for t, v in lag])], title=f"lag of {gid}",
                           chart_id="lag-chart")
        topics = sorted({o["topic"] for o in g["offsets"]})
        return {"template": "group.html", "gid": gid, "gtype": gtype, "state": state, "g": g, "members": members,
                "chart": chart, "message": message, "error": error, "status": status, "topics": topics,
                "empty": state in ("Empty", "Dead"), "form": form}

    async def _reset(self, gid: str, gtype: str, state: str, form: dict[str, str]) -> str:
        if state not in ("Empty", "Dead"):
            raise BadInput(f"group {gid} is {state}: offsets can be reset only when it has no members "
                           "(stop its consumers first)")
        topic = form.get("topic", "")
        ts = self._topic(topic) if topic else None
        if ts is None:
            raise BadInput("choose a topic")
        part_text = form.get("partition", "").strip()
        parts = [p.index for p in ts.partitions] if part_text in ("", "all") else \
            [_int(part_text, "partition", lo=0, hi=len(ts.partitions) - 1) or 0]
        to = form.get("to", "")
        offsets: dict[tuple[str, int], int] = {}
        for i in parts:
            p = ts.partitions[i]
            if to == "earliest":
                off = p.log_start_offset
            elif to == "latest":
                off = p.high_watermark
            elif to == "offset":
                off = _int(form.get("offset"), "offset") or 0
                if not p.log_start_offset <= off <= p.high_watermark:
                    raise BadInput(f"offset {off} is out of range for {ts.name}-{i}: "
                                   f"{p.log_start_offset} to {p.high_watermark}")
            elif to == "timestamp":
                off = await admin.offset_for(self.state, ts.name, i, parse_timestamp(form.get("timestamp", "")))
            else:
                raise BadInput("choose where to reset to: earliest, latest, offset or timestamp")
            offsets[(ts.name, i)] = off
        if gtype == "share":
            await admin.alter_share_offsets(self.state, gid, offsets)
        else:
            await admin.commit_offsets(self.state, gid, offsets)
        return "reset " + ", ".join(f"{t}-{p} to {o}" for (t, p), o in sorted(offsets.items()))

    async def throughput(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        rows = []
        for name in sorted(self.history.topics):
            series = self.history.series(name)
            rows.append({"name": name, "rates": self.history.rates(name), "chart": line_chart(
                [("records/s in", [(t, r.records_in) for t, r in series]),
                 ("records/s out (est.)", [(t, r.records_out) for t, r in series])],
                title=f"{name}: records/s", chart_id=f"chart-{name}"), "bytes_chart": line_chart(
                [("bytes/s in", [(t, r.bytes_in) for t, r in series]),
                 ("bytes/s out", [(t, r.bytes_out) for t, r in series])],
                title=f"{name}: bytes/s")})
        return {"template": "throughput.html", "rows": rows, "interval": self.interval}
