"""Consumer warnings (网络购物消费警示) end to end: an agency publishes a signed-or-not ConsumerWarning on its
intake topic, intake accepts it, and the public page (no sign-in) shows it live in a real Chromium; its Atom
and RSS feeds parse; a warning carrying case data is refused and never shows; case data on the bus never does."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
import uvicorn
from confluent_kafka import Producer
from playwright.sync_api import sync_playwright

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.producers import Publisher
from leadbus.sinks.warnings_page import create_app
from leadbus.topics import CASES, LEADS_REJECTED
from tests.dashboards import CHROMIUM, CHROMIUM_ARGS, LIVE
from tests.integration.test_routing import _case
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


class PageServer:
    def __init__(self, bootstrap: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(bootstrap, self.url), log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, f"{self.url} to start", interval=0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def warning(title: str, **overrides: Any) -> dict[str, Any]:
    record = {"warning_id": str(uuid.uuid4()), "revision": 1, "title": title, "goods_category": "COSMETICS",
              "risk": "HIGH", "summary": "部分网店以明显低于市场价的价格销售知名品牌化妆品，谨防假冒。",
              "advice": ["选择品牌官方旗舰店购买", "保留购物凭证，发现问题拨打12315投诉"],
              "sources": [{"title": "国家市场监督管理总局", "url": "https://www.samr.gov.cn/"}],
              "disclosed_cases": [], "withdrawn": False,
              "publisher": {"agency": "SAMR", "province": "00", "unit": None}, "published_at": datetime.now(UTC)}
    record.update(overrides)
    return record


@pytest.fixture
def intake(bootstrap: str, tmp_path: Path) -> Iterator[None]:
    proc = start_worker(bootstrap, tmp_path / "state", "intake-warnings", tmp_path / "logs")
    try:
        yield
    finally:
        stop(proc)


def test_a_new_warning_appears_live_without_sign_in_and_without_case_data(bootstrap: str, intake: None) -> None:
    # A case with personal data is on the bus: none of it may reach the public page.
    case_id = f"CASE-2222222{uuid.uuid4().hex[:9].upper()}"
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(CASES, key=case_id.encode(), value=encode(CATALOG.latest("cn.leadbus.CaseUpdated"),
                                                                {**_case(case_id, "33"), "waybills": []}))
    assert producer.flush(30) == 0
    title = f"网购美妆谨防假冒 {uuid.uuid4().hex[:6]}"
    hostile = warning("涉案人员名单", summary="嫌疑人王小明，身份证11010519491231002X")
    with PageServer(bootstrap) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="zh-CN", timezone_id="Asia/Shanghai")
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            response = page.goto(server.url + "/")
            assert response is not None and response.status == 200 and "signin" not in page.url
            page.wait_for_selector("#status.live", timeout=LIVE)
            assert title not in page.inner_text("body")

            with Publisher("SAMR", "00", bootstrap_servers=bootstrap) as samr:
                raw = encode(CATALOG.latest("cn.leadbus.ConsumerWarning"), hostile)  # the SDK would refuse it
                samr.wait([samr.publish_encoded(hostile["warning_id"], raw)])
                samr.wait([samr.publish_event("cn.leadbus.ConsumerWarning", warning(title))])

            page.wait_for_selector(f"article:has-text('{title}')", timeout=LIVE * 6)  # no reload: it comes live
            text = page.inner_text("body")
            assert "选择品牌官方旗舰店购买" in text and "化妆品" in text
            for secret in ("王小明", "11010519491231002X", "13812345678", "6222021234567890128", case_id,
                           "涉案人员名单"):
                assert secret not in text, secret
            assert errors == []
        finally:
            browser.close()
        wait_until(lambda: any(decode(CATALOG, m.value())[1]["reason"] == "PERSONAL_DATA_IN_WARNING"
                               for m in read_all(bootstrap, LEADS_REJECTED)), 60, "the hostile warning refused")

        atom = feedparser.parse(httpx.get(f"{server.url}/feed.atom", timeout=10).content)
        rss = feedparser.parse(httpx.get(f"{server.url}/feed.rss", timeout=10).content)
        for parsed, version in ((atom, "atom10"), (rss, "rss20")):
            assert not parsed.bozo, parsed.bozo_exception
            assert parsed.version == version
            assert title in [e.title for e in parsed.entries]
            assert "王小明" not in str(parsed) and "涉案人员名单" not in str(parsed)
        shown = httpx.get(f"{server.url}/api/warnings", timeout=10).json()["warnings"]
        mine = next(w for w in shown if w["title"] == title)
        assert set(mine) == {"warning_id", "revision", "title", "goods_category", "goods_label", "risk", "summary",
                             "advice", "sources", "disclosed_cases", "agency", "agency_name", "province",
                             "published_at", "withdrawn"}
