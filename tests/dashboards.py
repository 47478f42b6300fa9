"""The regional dashboards in tests: cases with real identifiers published as routing would, real uvicorn servers
on free loopback ports, a real headless Chromium, and an SSE reader (shared by the dashboard, sign-in and
withdrawal tests)."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from confluent_kafka import Producer
from playwright.sync_api import Browser, Page, sync_playwright

from leadbus.avro import encode, packaged_catalog
from leadbus.geography import county_codes, regions_of
from leadbus.identifiers import make_bank_card, make_resident_id
from leadbus.processors.core.handover import open_handover, scan
from leadbus.processors.core.routing import bulletin, mask_phone, regional_step
from leadbus.sinks.dashboard import create_app
from leadbus.sinks.dashboard_auth import SignIn
from leadbus.sinks.link_desk import LinkDesk
from leadbus.topics import region_topic
from tests.servers import AppServer

CATALOG = packaged_catalog()
BULLETIN_SCHEMA = CATALOG.latest("cn.leadbus.RegionalBulletin")
STEP_SCHEMA = CATALOG.latest("cn.leadbus.HandoverStep")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LIVE = 30_000  # ms: "within seconds", with room for a loaded CI machine (load 20+ seen)


# -- the world: cases with real identifiers, published as the routing stage would ------------

@dataclass
class Case:
    case_id: str
    province: str
    secrets: list[str] = field(default_factory=list)
    masked_phone: str = ""
    record: dict[str, Any] = field(default_factory=dict)


_serial = iter(range(1, 10**6))


def make_case(province: str, *, category: str = "COSMETICS", sales_fen: int = 6_000_000, name: str = "王小明",
              version: int = 1, merged_into: str | None = None, case_id: str | None = None) -> Case:
    """A CaseUpdated-like dict of an individual with a full resident ID, mobile phone and bank card of its own.

    The session's broker is shared, and test_routing.py reads the region topics whole and expects
    every suspect there to show as "王**": so every case here is an individual 王 with a two-character
    given name (company-name search is covered in tests/unit/test_dashboard_board.py).
    """
    assert name.startswith("王") and len(name) == 3
    n = next(_serial) + int(uuid.uuid4().int % 10_000) * 100
    rid = make_resident_id(county_codes(province)[0], date(1985, 3, 14), n % 1000)
    phone = f"+86139{n % 10**8:08d}"
    card = make_bank_card("622202", 19, f"{n % 10**12:012d}")
    identifiers = [{"kind": "rid", "value": rid}, {"kind": "phone", "value": phone}, {"kind": "acct", "value": card}]
    now = datetime.now(UTC)
    case: dict[str, Any] = {
        "case_id": case_id or f"CASE-{uuid.uuid4().hex[:16].upper()}", "version": version,
        "members": ["lead-1", "lead-2"], "suspect_name": name, "suspect_province": province,
        "reporters": [{"agency": "SAMR", "province": province}, {"agency": "MPS", "province": "00"}],
        "identifiers": identifiers, "categories": [category], "violations": ["ART_214"],
        "facts": {"sales_amount_fen": sales_fen, "illegal_business_amount_fen": None},
        "first_reported_at": now - timedelta(days=2), "last_reported_at": now, "handling": "OPEN",
        "share_with": [], "cross_border": False, "countries": [], "merged_from": [], "merged_into": merged_into,
        "updated_at": now,
    }
    secrets = [rid, rid[:17], phone, phone[3:], card, name]
    return Case(case["case_id"], province, secrets, mask_phone(phone), case)


class Bus:
    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "logger": logging.getLogger("tests.kafka")})

    def bulletin(self, case: Case, region: str) -> None:
        record = {**bulletin(case.record, region), "published_at": datetime.now(UTC)}
        self.producer.produce(region_topic(region), key=case.case_id.encode(), value=encode(BULLETIN_SCHEMA, record))
        assert self.producer.flush(30) == 0

    def handover(self, case: Case, *, overdue: bool, assessment: str = "", regions: list[str] | None = None) -> None:
        """OPENED (head must decide within 3 days) and, when `overdue`, the breach found by a scan.

        Written as the routing stage forwards them: without free text, to the regional topics of the
        case (`regions` overrides that). The session's test_routing.py reads region topics whole and
        checks that no secret is in any record.
        """
        opened = datetime.now(UTC) - (timedelta(days=5) if overdue else timedelta(hours=2))
        state, steps = open_handover(case.case_id, "SAMR", case.province, at=opened, assessment=assessment)
        if overdue:
            steps += scan(state, datetime.now(UTC))[1]
            assert steps[-1].event == "DEADLINE_BREACHED"
        for step in steps:
            record = regional_step({**step.__dict__, "recorded_at": datetime.now(UTC)})
            for region in regions if regions is not None else sorted(regions_of(case.province)):
                self.producer.produce(region_topic(region), key=case.case_id.encode(),
                                      value=encode(STEP_SCHEMA, record))
        assert self.producer.flush(30) == 0


# -- servers and browser ----------------------------------------------------------------------------

class Server(AppServer):
    """A dashboard on a free loopback port, in a thread."""

    def __init__(self, bootstrap: str, region: str, sign_in: SignIn | None = None,
                 desk: LinkDesk | None = None) -> None:
        super().__init__(create_app(bootstrap, region, sign_in, desk))
        self.sign_in = sign_in

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)}\{{[^}}]*\}} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0


@contextmanager
def serving(servers: dict[str, Server]) -> Iterator[dict[str, Server]]:
    """Start every server; stop them all afterwards, whatever happened."""
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, server: Server, query: str = "", errors: list[str] | None = None) -> Page:
    """The page of a region, once live; script errors and console errors (CSP violations too) go to `errors`."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN", timezone_id="Asia/Shanghai")
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{server.url}/{query}")
    page.wait_for_selector("#status.live", timeout=LIVE)  # the SSE snapshot has arrived
    return page


def row(table: str, case_id: str) -> str:
    return f'#{table} tbody tr[data-case-id="{case_id}"]'


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked into {where}"


class SseReader(threading.Thread):
    """Reads /events as a plain HTTP client until every `until` string has been seen (or the time is up)."""

    def __init__(self, url: str, until: Callable[[str], bool], seconds: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.url, self.until, self.seconds, self.text = url, until, seconds, ""
        self.connected = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.stream("GET", self.url, timeout=httpx.Timeout(10, read=20)) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for chunk in resp.iter_text():
                self.text += chunk
                self.connected.set()
                if self.until(self.text) or time.monotonic() > deadline:
                    return
