"""Supervisors decide suggested links on their region's dashboard (issue #19), in a real headless Chromium on a real
broker with intake, linking and routing running as workers.

The yrd dashboard holds the signing key of SAMR's Shanghai office (`leadbus keys register`), as that agency's gateway
would. What must show: a yrd supervisor sees the weak pair's suggestion, confirms it with a reason in the page and
then sees the merged case (one row, both leads on its case page); the decision on the bus names that supervisor
and is signed with SAMR.31's key (intake accepted it); a viewer, another region's supervisor, a supervisor of
another agency and a request without sign-in get 403 / 401 on the decision endpoints and publish nothing; every
attempt is in the access log. Then the supervisor splits a Beijing-reported lead off the case on its case page:
the case leaves the 京津冀 dashboard (routing withdraws it, like a withdrawal) while the new case arrives there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from leadbus.access_log import read_access_log
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.sinks.dashboard_auth import COOKIE, SignIn, add_user
from leadbus.sinks.link_desk import LinkDesk
from leadbus.topics import CASES, LEADS_REJECTED, LINK_DECISIONS, LINKS_SUGGESTED
from tests.dashboards import Server, chromium, row, serving
from tests.kafka_helpers import decoded, latest_cases, live_case_of
from tests.link_bus import link_bus
from tests.processes import wait_until

pytestmark = pytest.mark.integration

START = datetime.now(UTC) - timedelta(hours=2)
PAGE = 90_000  # ms: waits on the page's own events; generous for a machine shared with other brokers
PASSWORD = "desk-password-1"
USERS = (("yrd.supervisor", "yrd", "supervisor", ["SAMR"]), ("yrd.viewer", "yrd", "viewer", ["SAMR"]),
         ("yrd.mps", "yrd", "supervisor", ["MPS"]), ("jjj.supervisor", "jjj", "supervisor", ["*"]),
         ("jjj.viewer", "jjj", "viewer", ["*"]))


@pytest.fixture(scope="module")
def bus(tmp_path_factory) -> Iterator[dict[str, Any]]:
    with link_bus(tmp_path_factory.mktemp("link-desk"), "desk", ("intake", "linking", "suggesting", "routing")) as lb:
        bootstrap = lb.bootstrap
        shanghai = Publisher("NCAC", "31", bootstrap_servers=bootstrap)
        beijing = Publisher("NCAC", "11", bootstrap_servers=bootstrap)
        try:
            background = _background()
            shanghai.wait([shanghai.publish(lead) for lead in background])
            wait_until(lambda: {m for c in decoded(bootstrap, CASES) for m in c["members"]}
                       >= {lead.lead_id for lead in background}, 240, "the background cases")
            yield {"bootstrap": bootstrap, "key": lb.key, "work": lb.work, "shanghai": shanghai, "beijing": beijing}
        finally:
            shanghai.close()
            beijing.close()


def _background(n: int = 60) -> list[CaseLead]:
    out = []
    for lead in TrafficGenerator(seed=91).leads(n, START, timedelta(seconds=1)):
        doc = lead.model_dump(mode="json")
        doc["publisher"] = {"agency": "NCAC", "province": "31", "unit": None}
        out.append(CaseLead.model_validate(doc))
    return out


def _weak(name: str, detail: str, ips: list[str], phones: tuple[str, ...] = (), province: str = "31") -> CaseLead:
    """A lead about a trader in Shanghai, reported from ``province``, with no strong identifier but ``phones``."""
    doc = _background(1)[0].model_dump(mode="json")
    doc.update(lead_id=str(uuid.uuid4()), payment_accounts=[], waybills=[], rights_holder=None,
               publisher={"agency": "NCAC", "province": province, "unit": None},
               subject={"name": name, "kind": "ENTERPRISE", "uscc": None, "id_number": None, "phones": list(phones),
                        "address": {"province": "31", "city": "上海市", "detail": detail}},
               online={"platform": None, "shop_id": None, "urls": [], "ips": ips, "icp_filings": []})
    return CaseLead.model_validate(doc)


def _publish(bus: dict[str, Any], publisher: Publisher, *leads: CaseLead) -> list[str]:
    publisher.wait([publisher.publish(lead) for lead in leads])
    wait_until(lambda: all(live_case_of(bus["bootstrap"], lead.lead_id) for lead in leads), 180, "the leads' cases")
    return [str(live_case_of(bus["bootstrap"], lead.lead_id)) for lead in leads]


def _suggested(bootstrap: str, a: str, b: str) -> list[dict[str, Any]]:
    pair = tuple(sorted((a, b)))
    return [s for s in decoded(bootstrap, LINKS_SUGGESTED) if (s["case_a"], s["case_b"]) == pair]


def _sign_in(browser: Browser, server: Server, username: str) -> Page:
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN").new_page()
    page.goto(server.url + "/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_selector("#status.live", timeout=PAGE)
    return page


def test_supervisors_confirm_and_split_on_the_dashboard_others_get_403(bus, tmp_path: Path) -> None:
    bootstrap = bus["bootstrap"]
    a1 = _weak("上海鼎盛日化有限公司", "松江区九亭镇涞寅路88号6幢", ["61.152.80.11"], phones=("13912340001",))
    a2 = _weak("上海鼎盛日化商行", "松江区九亭镇涞寅路88号6幢", ["61.152.80.12"])
    b1 = _weak("上海恒通五金有限公司", "奉贤区南桥镇江海路66号", ["61.152.90.21"])
    b2 = _weak("上海恒通五金商行", "奉贤区南桥镇江海路66号", ["61.152.90.22"])
    case1, case2, other1, other2 = _publish(bus, bus["shanghai"], a1, a2, b1, b2)
    assert case1 != case2 and other1 != other2
    wait_until(lambda: _suggested(bootstrap, case1, case2) and _suggested(bootstrap, other1, other2), 90,
               "the weak pairs' suggestions")
    suggestion_id = _suggested(bootstrap, case1, case2)[0]["suggestion_id"]
    other_id = _suggested(bootstrap, other1, other2)[0]["suggestion_id"]

    users = tmp_path / "users.yaml"
    for name, region, role, agencies in USERS:
        add_user(users, name, PASSWORD, region, role, agencies)
    secret = b"one host, one session secret: a cookie reaches every region's dashboard"
    logs = {region: tmp_path / region / "access.jsonl" for region in ("yrd", "jjj")}
    desk = LinkDesk.open("SAMR", "31", bootstrap, key=bus["key"], state_dir=tmp_path / "desk")
    servers = {"yrd": Server(bootstrap, "yrd", SignIn(users, "yrd", logs["yrd"], secret), desk),
               "jjj": Server(bootstrap, "jjj", SignIn(users, "jjj", logs["jjj"], secret))}
    with serving(servers), chromium() as browser:
        yrd, jjj = servers["yrd"], servers["jjj"]

        def cookie(user: str) -> dict[str, str]:
            region = user.split(".")[0]
            sign_in = servers[region].sign_in
            assert sign_in is not None
            found = sign_in.users.get(user)
            assert found is not None
            return {COOKIE: sign_in.issue(found)}

        def post(user: str | None, path: str, body: dict[str, Any]) -> httpx.Response:
            return httpx.post(yrd.url + path, json=body, cookies=cookie(user) if user else None, timeout=30)

        # Nobody but a supervisor of the region, working for the key's agency, may decide.
        decide = f"/api/suggestions/{suggestion_id}/decision"
        body = {"action": "CONFIRM", "reason": "不该被接受"}
        wait_until(lambda: httpx.get(yrd.url + "/api/suggestions", cookies=cookie("yrd.supervisor"),
                                     timeout=10).json()["count"] > 0, 90, "the dashboard to read the suggestion")
        for user, status in (("yrd.viewer", 403), ("jjj.supervisor", 403), ("yrd.mps", 403), (None, 401)):
            assert post(user, decide, body).status_code == status, user
            split = post(user, f"/api/cases/{case1}/split", {"lead_ids": [a1.lead_id], "reason": "不该被接受"})
            assert split.status_code == status, user
        # Hostile and messy requests by the supervisor: refused with a reason, nothing published.
        wait_until(lambda: httpx.get(f"{yrd.url}/api/cases/{case1}", cookies=cookie("yrd.supervisor"),
                                     timeout=10).json().get("lead_ids") == [a1.lead_id], 90, "case1 on the dashboard")
        hostile: list[tuple[str, Any, int]] = [
            (decide, {"action": "MERGE_ALL", "reason": "x"}, 400), (decide, ["CONFIRM"], 400),
            (decide, {"action": "CONFIRM", "reason": "   "}, 400),
            (decide, {"action": "CONFIRM", "reason": "长" * 4001}, 400),  # the model's limit
            (decide, {"action": "CONFIRM", "reason": None}, 400),
            ("/api/suggestions/SUG-0000000000000000/decision", {"action": "CONFIRM", "reason": "x"}, 404),
            (f"/api/cases/{case1}/split", {"lead_ids": [a1.lead_id], "reason": "全部"}, 400),  # every lead of case1
            (f"/api/cases/{case1}/split", {"lead_ids": [str(uuid.uuid4())], "reason": "不是它的"}, 400),
            (f"/api/cases/{case1}/split", {"lead_ids": "a1", "reason": "x"}, 400),
            (f"/api/cases/{case1}/split", {"lead_ids": [{"$ne": 1}], "reason": "x"}, 400),
            ("/api/cases/CASE-0000000000000000/split", {"lead_ids": [a1.lead_id], "reason": "x"}, 404),
            ("/api/cases/%3Cscript%3E/split", {"lead_ids": [a1.lead_id], "reason": "x"}, 404),
        ]
        for path, doc, status in hostile:
            assert post("yrd.supervisor", path, doc).status_code == status, (path, doc)
        as_form = httpx.post(yrd.url + decide, data={"action": "CONFIRM", "reason": "x"}, timeout=30,
                             cookies=cookie("yrd.supervisor"))  # what a cross-site form could send
        assert as_form.status_code == 400
        huge = httpx.post(yrd.url + decide, content=b'{"action": "CONFIRM", "reason": "' + b"x" * 300_000 + b'"}',
                          headers={"Content-Type": "application/json"}, cookies=cookie("yrd.supervisor"), timeout=30)
        assert huge.status_code == 400

        # Six supervisors' clicks at once on one suggestion publish one decision.
        from concurrent.futures import ThreadPoolExecutor

        reject = {"action": "REJECT", "reason": "同一商场的两家店，经营者不同"}
        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(lambda _: post("yrd.supervisor", f"/api/suggestions/{other_id}/decision",
                                                      reject).status_code, range(6)))
        assert statuses == [202, 404, 404, 404, 404, 404]

        viewer = _sign_in(browser, yrd, "yrd.viewer")
        viewer.wait_for_selector(row("cases", case1), timeout=PAGE)
        assert viewer.locator("#review").is_hidden(), "viewers see no suggestions"
        viewer.close()

        # The supervisor confirms in the page, with a reason, and sees the merged case.
        page = _sign_in(browser, yrd, "yrd.supervisor")
        suggestion = f'#suggestions tr[data-suggestion-id="{suggestion_id}"]'
        page.wait_for_selector(suggestion, timeout=PAGE)
        page.click(f'{suggestion} button[data-action="CONFIRM"]')  # without a reason: refused, nothing published
        page.wait_for_selector(f"{suggestion} .outcome.bad", timeout=PAGE)
        page.fill(f"{suggestion} input.reason", "同一厂房同一字号，IP 同一网段")
        page.click(f'{suggestion} button[data-action="CONFIRM"]')
        page.wait_for_selector(f"{suggestion} .outcome:not(.bad)", timeout=PAGE)
        wait_until(lambda: {latest_cases(bootstrap)[c]["merged_into"] for c in (case1, case2)} - {None}, 120,
                   "linking to merge the pair")
        survivor, absorbed = (case1, case2) if latest_cases(bootstrap)[case2]["merged_into"] else (case2, case1)
        page.wait_for_selector(row("cases", absorbed), state="detached", timeout=PAGE)
        page.wait_for_selector(suggestion, state="detached", timeout=PAGE)
        page.goto(f"{yrd.url}/#case={survivor}")
        page.wait_for_selector(f'#case-panel[data-case-id="{survivor}"]', timeout=PAGE)
        wait_until(lambda: page.locator("#case-leads input").count() == 2, 90, "both leads on the case page",
                   interval=0.5)
        merged = latest_cases(bootstrap)[survivor]
        entry = merged["link_history"][-1]
        assert (entry["action"], entry["user"], entry["role"], entry["agency"], entry["province"]) == (
            "CONFIRM", "yrd.supervisor", "SUPERVISOR", "SAMR", "31")
        assert entry["reason"] == "同一厂房同一字号，IP 同一网段" and entry["suggestion_id"] == suggestion_id
        decisions = decoded(bootstrap, LINK_DECISIONS)  # forwarded by intake: signed and checked
        assert [(d["analyst"]["user"], d["action"]) for d in decisions] == [
            ("yrd.supervisor", "REJECT"), ("yrd.supervisor", "CONFIRM")], "the refused attempts published nothing"

        # A Beijing report about the same trader (its phone) joins the case: the case is on 京津冀's page too.
        b3 = _weak("上海鼎盛日化有限公司", "松江区九亭镇涞寅路88号6幢", ["61.152.80.13"], phones=("13912340001",),
                   province="11")
        assert _publish(bus, bus["beijing"], b3) == [survivor]

        def on_jjj() -> set[str]:
            resp = httpx.get(jjj.url + "/api/state", cookies=cookie("jjj.viewer"), timeout=10)
            return {c["case_id"] for c in resp.json()["cases"]}

        wait_until(lambda: survivor in on_jjj(), 120, "the case on the 京津冀 dashboard")

        # The supervisor splits the Beijing lead off on the case page: the case leaves 京津冀's page, the new one comes.
        wait_until(lambda: page.locator("#case-leads input").count() == 3, 90, "three leads on the case page",
                   interval=0.5)
        page.check(f'#case-leads input[value="{b3.lead_id}"]')
        page.fill("#split-reason", "北京报送的是同名的另一家店")
        page.click("#split")
        page.wait_for_selector("#split-outcome:not(.bad):not(:empty)", timeout=PAGE)
        wait_until(lambda: live_case_of(bootstrap, b3.lead_id) not in (None, survivor), 120, "the split")
        new = str(live_case_of(bootstrap, b3.lead_id))
        wait_until(lambda: page.locator("#case-leads input").count() == 2, 90, "the case page after the split",
                   interval=0.5)
        wait_until(lambda: survivor not in on_jjj() and new in on_jjj(), 120,
                   "the case to leave 京津冀's page and the new case to arrive")
        split = latest_cases(bootstrap)[new]["link_history"][0]
        assert (split["action"], split["user"], split["leads"], split["split_from"]) == (
            "SPLIT", "yrd.supervisor", [b3.lead_id], survivor)
        page.close()

    assert not [x for x in decoded(bootstrap, LEADS_REJECTED) if b"yrd.supervisor" in bytes(x["original"])], \
        "intake and linking accepted the supervisor's decisions"
    log = read_access_log(logs["yrd"])
    entries = [e for e in log if e.get("action") == "link_decision"]
    outcomes = {(e["user"], e["what"], e["result"]) for e in entries}
    for user in ("yrd.viewer", "yrd.mps"):
        assert {(user, "suggestion", "FORBIDDEN"), (user, "split", "FORBIDDEN")} <= outcomes, user
    for user in ("jjj.supervisor", None):  # refused by the sign-in before the endpoint: logged there
        assert {e.get("view") for e in log if e.get("user") == user and e.get("status") in (401, 403)} >= {
            "link_decision", "split"}, user
    assert ("yrd.supervisor", "suggestion", "REASON_MISSING") in outcomes
    published = [e for e in entries if e["result"] == "published"]
    assert [(e["what"], e["decision"]) for e in published] == [("suggestion", "REJECT"), ("suggestion", "CONFIRM"),
                                                                ("split", "SPLIT")]
    assert all(e["user"] == "yrd.supervisor" and e["ts"] and e["reason"] and e["decision_id"] for e in published)
    assert published[2]["lead_ids"] == [b3.lead_id]
