"""Signed-in dashboards in a real headless Chromium (issue 13, "What it must show", second bullet).

Three regional dashboards share one users file (argon2 hashes) and one session secret, as behind one host:
a cookie issued by one region's dashboard reaches the others (cookies ignore ports), which must refuse it
with 403 on every page, API and event stream, and leak nothing of their cases into the network traffic.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Page, Response

from leadbus.access_log import read_access_log
from leadbus.geography import REGIONS
from leadbus.sinks.dashboard_auth import COOKIE, SignIn, add_user
from tests.dashboards import Bus, Server, chromium, make_case, row, serving
from tests.processes import wait_until

pytestmark = pytest.mark.integration

PASSWORDS = {"yrd.viewer": "长三角-viewer-pw", "yrd.supervisor": "yrd-supervisor-pw", "jjj.viewer": "jjj-viewer-pw"}
SIGNED_IN = 60_000  # ms: waits on the page's own events; generous for a machine shared with other brokers


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dash-users") / "users.yaml"
    add_user(path, "yrd.viewer", PASSWORDS["yrd.viewer"], "yrd", "viewer", ["SAMR", "MPS"])
    add_user(path, "yrd.supervisor", PASSWORDS["yrd.supervisor"], "yrd", "supervisor")
    add_user(path, "jjj.viewer", PASSWORDS["jjj.viewer"], "jjj", "viewer")
    return path


@pytest.fixture
def dashboards(bootstrap: str, users: Path, tmp_path: Path) -> Iterator[dict[str, Server]]:
    secret = secrets.token_bytes(32)
    with serving({region: Server(bootstrap, region, SignIn(users, region, tmp_path / region / "access.jsonl", secret))
                  for region in REGIONS}) as servers:
        yield servers


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def sign_in(context: BrowserContext, server: Server, username: str, password: str) -> Page:
    page = context.new_page()
    page.goto(server.url + "/")
    assert page.url.endswith("/signin"), page.url  # sent to sign in first
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#submit")
    return page


def _log(server: Server) -> list[dict[str, Any]]:
    assert server.sign_in is not None
    path = server.sign_in.access_path
    assert path is not None
    return read_access_log(path)


def test_sign_in_is_required_and_a_wrong_password_refused(dashboards: dict[str, Server], browser: Browser) -> None:
    yrd = dashboards["yrd"]
    for path in ("/api/state", "/api/search?q=CASE", "/events", "/api/cases/CASE-0000000000000000"):
        resp = httpx.get(yrd.url + path, timeout=30)
        assert resp.status_code == 401 and resp.json()["error"] == "UNAUTHENTICATED", path
    assert httpx.get(yrd.url + "/", timeout=30).status_code == 303

    context = browser.new_context(locale="zh-CN")
    page = sign_in(context, yrd, "yrd.viewer", "not-the-password")
    page.wait_for_selector("#error", timeout=SIGNED_IN)
    assert "用户名或密码错误" in page.inner_text("#error")
    assert page.url.endswith("/signin") and context.cookies() == []
    page = sign_in(context, yrd, "nobody", "whatever-pw")
    page.wait_for_selector("#error", timeout=SIGNED_IN)
    assert context.cookies() == []

    page = sign_in(context, yrd, "yrd.viewer", PASSWORDS["yrd.viewer"])
    page.wait_for_selector("#status.live", timeout=SIGNED_IN)  # the page, and its SSE stream, signed in
    (cookie,) = context.cookies()
    assert cookie["name"] == COOKIE and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert PASSWORDS["yrd.viewer"] not in cookie["value"]
    assert yrd.sign_in is not None
    assert PASSWORDS["yrd.viewer"] not in yrd.sign_in.users.path.read_text()  # argon2 hashes only
    attempts = [e for e in _log(yrd) if e.get("action") == "signin"]
    assert [e["result"] for e in attempts] == ["wrong_password", "wrong_password", "ok"]
    context.close()


def test_another_regions_user_sees_nothing_of_this_region(dashboards: dict[str, Server], bootstrap: str,
                                                          browser: Browser) -> None:
    yrd, jjj = dashboards["yrd"], dashboards["jjj"]
    case = make_case("31", category="FOOD")
    Bus(bootstrap).bulletin(case, "yrd")
    watcher = browser.new_context()
    own = sign_in(watcher, yrd, "yrd.viewer", PASSWORDS["yrd.viewer"])
    own.wait_for_selector(row("cases", case.case_id), timeout=SIGNED_IN)  # the yrd user sees it

    context = browser.new_context()
    seen: list[tuple[str, int, str | None]] = []  # every response of this region's dashboard, as it arrives

    def record(resp: Response) -> None:
        if not resp.url.startswith(yrd.url):
            return
        try:
            body: str | None = "" if 300 <= resp.status < 400 else resp.text()
        except Error:  # the page closed the request first (an EventSource it gave up on): no body to see
            body = None
        seen.append((resp.url, resp.status, body))

    context.on("response", record)
    # Valid credentials of another region, at this region's sign-in: refused, no session.
    page = sign_in(context, yrd, "jjj.viewer", PASSWORDS["jjj.viewer"])
    page.wait_for_selector("#error", timeout=SIGNED_IN)
    assert context.cookies() == []
    # Signed in at its own dashboard; the session cookie also reaches this one (same host): 403 everywhere.
    home = sign_in(context, jjj, "jjj.viewer", PASSWORDS["jjj.viewer"])
    home.wait_for_selector("#status.live", timeout=SIGNED_IN)
    page = context.new_page()
    first = page.goto(yrd.url + "/")
    assert first is not None and first.status == 403
    probes = page.evaluate("""async (id) => {
        const out = {};
        for (const path of ["/api/state", "/api/search?q=" + id, "/api/cases/" + id, "/events", "/api/access-log"]) {
            const resp = await fetch(path, { cache: "no-store" });
            out[path.split("?")[0]] = [resp.status, await resp.text()];
        }
        out.sse = await new Promise((done) => {
            const es = new EventSource("/events");
            es.onerror = () => { es.close(); done("error"); };
            es.addEventListener("snapshot", () => { es.close(); done("snapshot"); });
        });
        return out;
    }""", case.case_id)
    assert probes.pop("sse") == "error"
    for path, (status, text) in probes.items():
        assert status == 403, (path, status)
        assert case.case_id not in text, path
    cookie = {COOKIE: next(c["value"] for c in context.cookies() if c["name"] == COOKIE)}
    for path in ("/", "/api/state", f"/api/search?q={case.case_id}", f"/api/cases/{case.case_id}", "/events"):
        resp = httpx.get(yrd.url + path, cookies=cookie, timeout=30)
        assert resp.status_code == 403 and case.case_id not in resp.text, path
    # Response events reach the test asynchronously: pump them until every request made above has shown up.
    expected = {"/", "/signin", "/api/state", "/api/search", f"/api/cases/{case.case_id}", "/events",
                "/api/access-log"}
    deadline = time.monotonic() + SIGNED_IN / 1000
    while not expected <= {urlsplit(url).path for url, _, _ in seen} and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert expected <= {urlsplit(url).path for url, _, _ in seen}, seen
    assert {status for _, status, _ in seen} <= {200, 303, 403}  # 200: the sign-in form
    for url, status, text in seen:
        assert text is not None or status == 403, url  # a body missed only where it was a refusal
        assert case.case_id not in (text or "") and "王**" not in (text or ""), url
    assert case.case_id not in page.content()
    denied = [e for e in _log(yrd) if e.get("user") == "jjj.viewer" and e.get("status") == 403]
    assert {e["view"] for e in denied} >= {"page", "state", "search", "case", "stream"}
    watcher.close()
    context.close()


def test_the_access_log_records_views_searches_and_cases(dashboards: dict[str, Server], bootstrap: str,
                                                          browser: Browser) -> None:
    yrd = dashboards["yrd"]
    case = make_case("32", category="ELECTRONICS")
    Bus(bootstrap).bulletin(case, "yrd")
    context = browser.new_context()
    page = sign_in(context, yrd, "yrd.viewer", PASSWORDS["yrd.viewer"])
    page.wait_for_selector(row("cases", case.case_id), timeout=SIGNED_IN)
    page.fill("#q", case.masked_phone)
    page.wait_for_selector(row("results", case.case_id), timeout=SIGNED_IN)
    viewed = page.evaluate("async (id) => (await fetch('/api/cases/' + id)).json()", case.case_id)
    assert viewed["case_id"] == case.case_id and case.secrets[0] not in json.dumps(viewed, ensure_ascii=False)
    assert page.evaluate("async () => (await fetch('/api/access-log')).status") == 403  # viewers do not read it

    def viewers_entries() -> list[dict[str, Any]]:
        return [e for e in _log(yrd) if e.get("user") == "yrd.viewer" and e.get("status") == 200]

    wait_until(lambda: {"page", "stream", "search", "case"} <= {e["view"] for e in viewers_entries()},
               SIGNED_IN / 1000, "the access log to record the page, its stream, the search and the case view",
               interval=0.2)
    mine = viewers_entries()
    assert any(e["view"] == "search" and e["q"] == case.masked_phone for e in mine)
    assert any(e["view"] == "case" and e["case_id"] == case.case_id for e in mine)
    assert all(e["ts"] and e["session"] and e["role"] == "viewer" and e["region"] == "yrd" for e in mine)

    supervisor = sign_in(browser.new_context(), yrd, "yrd.supervisor", PASSWORDS["yrd.supervisor"])
    supervisor.wait_for_selector("#status.live", timeout=SIGNED_IN)
    entries = supervisor.evaluate("async () => (await fetch('/api/access-log')).json()")["entries"]
    assert any(e.get("user") == "yrd.viewer" and e.get("view") == "case" for e in entries)
    context.close()
