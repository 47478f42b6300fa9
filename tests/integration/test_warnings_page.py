"""The national public page. Consumer warnings (网络购物消费警示) end to end: an agency publishes a
signed-or-not ConsumerWarning on its intake topic, intake accepts it, and the public page (no sign-in) shows
it live in a real Chromium; its Atom and RSS feeds parse; a warning carrying case data is refused and never
shows; case data on the bus never does. Disclosure statistics (信息公开): DisclosedCase records on
`leadbus.disclosure` show on /statistics as a chart with the right totals, live, and /api/statistics counts
every distinct closed case once."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from confluent_kafka import Producer
from playwright.sync_api import Page

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.processors.core.disclosure import disclosure_id
from leadbus.producers import Publisher
from leadbus.sinks.warnings_page import create_app
from leadbus.topics import CASES, DISCLOSURE, LEADS_REJECTED
from tests.dashboards import LIVE, chromium
from tests.integration.test_routing import _case
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until
from tests.servers import AppServer

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


class PageServer(AppServer):
    def __init__(self, bootstrap: str) -> None:
        super().__init__()
        self.serve(create_app(bootstrap, self.url))  # the page names its own address in its feeds


@contextmanager
def public_page(server: PageServer, path: str, errors: list[str]) -> Iterator[Page]:
    """The page at `path` in Chromium, without signing in; script errors go to `errors`."""
    with chromium() as browser:
        page = browser.new_page(locale="zh-CN", timezone_id="Asia/Shanghai")
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(server.url + path)
        assert response is not None and response.status == 200 and "signin" not in page.url
        yield page


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
    with PageServer(bootstrap) as server:
        errors: list[str] = []
        with public_page(server, "/", errors) as page:
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


def disclosed(month: str, province: str, right: str, goods: str, case_id: str | None = None) -> dict[str, Any]:
    return {"disclosure_id": disclosure_id(case_id or str(uuid.uuid4())), "closed_month": month,
            "outcome": "TRANSFERRED_TO_PUBLIC_SECURITY", "province": province, "ip_right": right,
            "goods_category": goods, "ip_rights": [right], "goods_categories": [goods], "violations": ["ART_213"],
            "subject_type": "NATURAL_PERSON", "enterprise_name": None, "agencies": ["SAMR"],
            "published_at": datetime.now(UTC)}


def publish_disclosed(bootstrap: str, records: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    schema = CATALOG.latest("cn.leadbus.DisclosedCase")
    for record in records:
        producer.produce(DISCLOSURE, key=record["disclosure_id"].encode(), value=encode(schema, record))
    producer.produce(DISCLOSURE, key=b"PUB-garbage", value=b"\x00not avro")  # never counted, never fatal
    assert producer.flush(30) == 0


def test_disclosure_statistics_show_live_as_a_chart_and_count_each_closed_case_once(bootstrap: str) -> None:
    year = random.randrange(2100, 2999)  # months no other test on the session's broker uses
    march, april = f"{year}-03", f"{year}-04"
    relisted = disclosed(march, "33", "TRADEMARK", "FOOD", case_id="CASE-A")
    publish_disclosed(bootstrap, [relisted, disclosed(march, "33", "TRADEMARK", "FOOD"),
                                  disclosed(march, "44", "PATENT", "DRUGS"),
                                  {**relisted, "outcome": "RETURNED_AND_ANSWERED"}])  # the same case again: once
    with PageServer(bootstrap) as server:
        errors: list[str] = []
        with public_page(server, "/statistics", errors) as page:
            page.wait_for_selector("#status.live", timeout=LIVE * 6)
            page.wait_for_selector(f"#chart svg text.month-total[data-month='{march}']", timeout=LIVE * 6)

            def bars() -> dict[tuple[str, str], int]:
                found = page.eval_on_selector_all(
                    "#chart svg rect.bar", "rs => rs.map(r => [r.dataset.month, r.dataset.right, r.dataset.cases])")
                return {(m, r): int(n) for m, r, n in found if m in (march, april)}

            assert bars() == {(march, "TRADEMARK"): 2, (march, "PATENT"): 1}
            assert page.text_content(f"#chart svg text.month-total[data-month='{march}']") == "3"
            before = int(page.inner_text("#total"))
            api = httpx.get(f"{server.url}/api/statistics", timeout=10).json()
            assert api["cases"] == before == sum(r["cases"] for r in api["statistics"])
            mine = [r for r in api["statistics"] if r["period"] == march]
            assert mine == [{"period": march, "province": "33", "ip_right": "TRADEMARK", "goods_category": "FOOD",
                             "cases": 2},
                            {"period": march, "province": "44", "ip_right": "PATENT", "goods_category": "DRUGS",
                             "cases": 1}]

            publish_disclosed(bootstrap, [disclosed(april, "31", "COPYRIGHT", "COSMETICS")])
            page.wait_for_selector(f"#chart svg rect.bar[data-month='{april}'][data-right='COPYRIGHT']",
                                   timeout=LIVE * 6)  # no reload: it comes live
            assert bars() == {(march, "TRADEMARK"): 2, (march, "PATENT"): 1, (april, "COPYRIGHT"): 1}
            page.wait_for_function(f"document.getElementById('total').textContent === '{before + 1}'",
                                   timeout=LIVE * 6)
            assert april in page.inner_text("#cells") and errors == []

        # The API's total is the number of distinct closed cases on the topic (decodable ones), whatever else
        # the session's broker holds.
        distinct = set()
        for message in read_all(bootstrap, DISCLOSURE):
            if message.value().startswith(b"\x00not"):
                continue
            distinct.add(decode(CATALOG, message.value())[1]["disclosure_id"])
        api = httpx.get(f"{server.url}/api/statistics", timeout=10).json()
        assert api["cases"] == len(distinct) == before + 1
        assert set(api) == {"fields", "statistics", "cases", "caught_up"}
        assert all(set(r) == {"period", "province", "ip_right", "goods_category", "cases"} for r in api["statistics"])
        assert re.fullmatch(r"<svg .*</svg>", httpx.get(f"{server.url}/statistics/chart.svg", timeout=10).text, re.S)
