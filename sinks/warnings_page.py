"""The national public page: consumer warnings (网络购物消费警示) and disclosure statistics (信息公开); no sign-in.

    create_app(bootstrap) -> FastAPI     what `leadbus warnings-page` serves

A background thread reads `leadbus.warnings.consumer` from the beginning (assigned, never joined; the
`warnings-page` principal reads that topic and no other) and folds each accepted `ConsumerWarning` into
the board (`agency_events.fold_warnings`: the highest revision wins, a withdrawn warning leaves). Only
what an agency wrote in the warning is shown — the bus never adds case data to it.

A second reader follows `leadbus.disclosure` (the anonymised `DisclosedCase` records of closed cases; no
personal data) and keeps the latest record of each case, from which the statistics are computed live with
the core's `statistics` — the same rows `leadbus disclosure-export` writes to statistics.json.

Routes: `/` (the page; it asks `/api/warnings` every two seconds and shows new warnings as they come),
`/api/warnings` (JSON), `/feed.atom` and `/feed.rss` (built with feedgen), `/statistics` (the chart of
closed cases, redrawn every two seconds from `/statistics/chart.svg`), `/api/statistics` (JSON), `/healthz`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from feedgen.feed import FeedGenerator

from leadbus.agencies import AGENCIES, CATEGORIES
from leadbus.avro import DecodeError, decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors.core.agency_events import CONSUMER_WARNINGS, fold_warnings, visible_warnings
from leadbus.processors.core.disclosure import STAT_FIELDS, statistics, statistics_svg, statistics_total
from leadbus.readers import FollowingReader
from leadbus.topics import DISCLOSURE
from leadbus.web import running

log = logging.getLogger("leadbus.sinks.warnings_page")
_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class _PublicBoard(FollowingReader):
    """A public topic folded in memory; a record that does not decode was written by our own stages (a defect or
    tampering): it is logged and shows nothing."""

    group_prefix = "leadbus-warnings-page-"
    schema_name = ""
    what = ""

    def __init__(self, kafka: KafkaSettings, name: str) -> None:
        super().__init__(kafka, name)
        self.catalog = packaged_catalog()
        self.schema = self.catalog.latest(self.schema_name)
        self.lock = threading.Lock()

    def handle(self, topic: str, value: bytes) -> None:
        try:
            _, record = decode(self.catalog, value, self.schema)
        except DecodeError as exc:
            log.error("undecodable %s: %s", self.what, exc)
            return
        self.fold(record)

    def fold(self, record: dict[str, Any]) -> None:
        raise NotImplementedError


class WarningBoard(_PublicBoard):
    topics = (CONSUMER_WARNINGS,)
    schema_name, what = "cn.leadbus.ConsumerWarning", "warning"

    def __init__(self, kafka: KafkaSettings) -> None:
        super().__init__(kafka, "warnings-reader")
        self.board: dict[str, dict[str, Any]] = {}

    def warnings(self) -> list[dict[str, Any]]:
        with self.lock:
            return visible_warnings(self.board)

    def fold(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.board = fold_warnings(self.board, record)


class DisclosureBoard(_PublicBoard):
    """The latest public record of every closed case on `leadbus.disclosure` (a case is counted once)."""

    topics = (DISCLOSURE,)
    schema_name, what = "cn.leadbus.DisclosedCase", "disclosed case"

    def __init__(self, kafka: KafkaSettings) -> None:
        super().__init__(kafka, "disclosure-reader")
        self.latest: dict[str, dict[str, Any]] = {}

    def statistics(self) -> list[dict[str, Any]]:
        with self.lock:
            records = list(self.latest.values())
        return statistics(records)

    def fold(self, record: dict[str, Any]) -> None:
        # only the fields the statistics count; a record lacking one is unusable (logged by the reader)
        kept = {f: str(record[f]) for f in ("disclosure_id", "closed_month", "province", "ip_right", "goods_category")}
        with self.lock:
            self.latest[kept["disclosure_id"]] = kept


def _json(warning: dict[str, Any]) -> dict[str, Any]:
    return {**warning, "published_at": warning["published_at"].astimezone(UTC).isoformat(),
            "goods_label": CATEGORIES.get(warning["goods_category"], warning["goods_category"]),
            "agency_name": AGENCIES[warning["agency"]].name_zh if warning["agency"] in AGENCIES else warning["agency"]}


def feed(warnings: list[dict[str, Any]], base: str) -> FeedGenerator:
    gen = FeedGenerator()
    gen.id(f"{base}/")
    gen.title("网络购物消费警示 — consumer warnings")
    gen.link(href=f"{base}/", rel="alternate")
    gen.description("Online-shopping consumer warnings published by China's enforcement agencies")
    gen.language("zh-CN")
    gen.updated(max((w["published_at"] for w in warnings), default=datetime(2026, 1, 1, tzinfo=UTC)))
    for warning in reversed(warnings):  # feedgen prepends: oldest first gives newest on top
        shown = _json(warning)
        entry = gen.add_entry()
        entry.id(f"urn:uuid:{warning['warning_id']}")
        entry.title(warning["title"])
        entry.link(href=f"{base}/#w-{warning['warning_id']}")
        entry.published(warning["published_at"])
        entry.updated(warning["published_at"])
        entry.author({"name": shown["agency_name"]})
        entry.category(term=warning["goods_category"], label=shown["goods_label"])
        entry.description(" ".join([warning["summary"], *warning["advice"]]))
    return gen


def create_app(bootstrap: str | KafkaSettings, public_url: str = "http://127.0.0.1:8090") -> FastAPI:
    """`public_url`: where the public reaches the page (the feeds' links and ids)."""
    kafka = settings_for(bootstrap)
    board, disclosed = WarningBoard(kafka), DisclosureBoard(kafka)
    page = resources.files("leadbus.sinks").joinpath("warnings_page.html").read_text(encoding="utf-8")
    stats_page = resources.files("leadbus.sinks").joinpath("statistics_page.html").read_text(encoding="utf-8")

    def start() -> None:
        board.start()
        disclosed.start()

    def stop() -> None:  # both at once: each waits for its reader thread
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(board.stop), pool.submit(disclosed.stop)]:
                done.result()

    app = FastAPI(title="leadbus consumer warnings", lifespan=running(start, stop), docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_HEADERS)

    @app.get("/api/warnings")
    def api() -> JSONResponse:
        return JSONResponse({"warnings": [_json(w) for w in board.warnings()]}, headers=_HEADERS)

    @app.get("/feed.atom")
    def atom() -> Response:
        return Response(feed(board.warnings(), public_url.rstrip("/")).atom_str(pretty=True),
                        media_type="application/atom+xml", headers=_HEADERS)

    @app.get("/feed.rss")
    def rss() -> Response:
        return Response(feed(board.warnings(), public_url.rstrip("/")).rss_str(pretty=True),
                        media_type="application/rss+xml", headers=_HEADERS)

    @app.get("/statistics", response_class=HTMLResponse)
    def statistics_index() -> HTMLResponse:
        return HTMLResponse(stats_page, headers=_HEADERS)

    @app.get("/api/statistics")
    def statistics_api() -> JSONResponse:
        rows = disclosed.statistics()
        return JSONResponse({"fields": list(STAT_FIELDS), "statistics": rows, "cases": statistics_total(rows),
                             "caught_up": disclosed.caught_up.is_set()}, headers=_HEADERS)

    @app.get("/statistics/chart.svg")
    def statistics_chart() -> Response:
        return Response(statistics_svg(disclosed.statistics()), media_type="image/svg+xml", headers=_HEADERS)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        alive = board.alive() and disclosed.alive()
        return JSONResponse({"ok": alive}, status_code=200 if alive else 503)

    return app


def run(bootstrap: str | KafkaSettings, host: str = "127.0.0.1", port: int = 8090,
        public_url: str | None = None) -> None:
    uvicorn.run(create_app(bootstrap, public_url or f"http://{host}:{port}"), host=host, port=port,
                timeout_graceful_shutdown=2, log_level="info")
