"""The regional dashboards on a real broker, served by real uvicorn servers, seen by a real headless Chromium.

Bulletins are built by the routing core from CaseUpdated-like cases carrying full resident IDs,
phones and bank cards, so masking is exercised end to end; handover steps come from the handover
core (`open_handover` then `scan` past the deadline, a real breach).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Response, expect

from leadbus.geography import REGIONS
from tests.dashboards import (
    LIVE,
    Bus,
    Server,
    SseReader,
    assert_clean,
    chromium,
    make_case,
    open_page,
    row,
    serving,
)
from tests.processes import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
RED = "rgb(198, 40, 40)"  # --red in dashboard_page.html


@pytest.fixture
def dashboards(bootstrap: str) -> Iterator[dict[str, Server]]:
    with serving({region: Server(bootstrap, region) for region in REGIONS}) as servers:
        yield servers


@pytest.fixture
def bus(bootstrap: str) -> Bus:
    return Bus(bootstrap)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# -- tests --------------------------------------------------------------------------------------

def test_a_new_case_appears_live_and_only_on_its_regions_page(
        dashboards: dict[str, Server], bus: Bus, browser: Browser) -> None:
    errors: list[str] = []
    yrd_page = open_page(browser, dashboards["yrd"], errors=errors)
    pprd_page = open_page(browser, dashboards["pprd"], errors=errors)
    navigations: list[str] = []
    yrd_page.on("framenavigated", lambda frame: navigations.append(frame.url))
    yrd_page.evaluate("window.__probe = 'no reload'")

    shanghai, guangdong = make_case("31", category="FOOD"), make_case("44", category="DRUGS")
    # a case of CaseLead v2 leads (issue #15): conduct period, prior penalty, ICP filing, labels, service marks
    labels = make_case("31", category="AUTO_PARTS")
    icp = "沪ICP备12345678号-1"
    labels.record["identifiers"].append({"kind": "icp", "value": icp})
    labels.record.update({"violations": ["ART_215", "ART_213"], "conduct_from": date(2024, 3, 1),
                          "conduct_to": date(2024, 12, 31), "prior_penalties": [
                              {"kind": "ADMINISTRATIVE", "decided_on": date(2023, 6, 1),
                               "decided_by": "上海市市场监督管理局", "violation": "ART_215"}]})  # fmt: skip
    labels.record["facts"] |= {"labels_sold": 12_000, "labels_held": 30_000, "labels_made_by": "OTHERS",
                               "mark_use": "SERVICES"}
    bus.bulletin(shanghai, "yrd")
    bus.bulletin(guangdong, "pprd")
    bus.bulletin(labels, "yrd")

    yrd_page.wait_for_selector(row("cases", shanghai.case_id), timeout=LIVE)
    assert yrd_page.evaluate("window.__probe") == "no reload" and navigations == []
    cells = yrd_page.locator(row("cases", shanghai.case_id) + " td").all_inner_texts()
    assert cells[1:] == [shanghai.case_id, "王**", "上海市", "食品", "60,000.00", "—", cells[-1]]  # v1: no v2 data
    assert "身份证 310101********" in cells[-1] and "手机 " + shanghai.masked_phone in cells[-1]
    yrd_page.wait_for_selector(row("cases", labels.case_id), timeout=LIVE)
    law = row("cases", labels.case_id) + " td.law"
    chips = {k: yrd_page.locator(f'{law} [data-law="{k}"]').inner_text()
             for k in ("conduct", "prior", "labels", "mark_use")}
    assert chips == {"conduct": "行为 2024-03-01至2024-12-31",
                     "prior": "2023-06-01 受上海市市场监督管理局行政处罚 · ART_215",
                     "labels": "标识 已售12,000/未售30,000 · 他人制造", "mark_use": "服务商标"}
    assert "ICP备案 " + icp in yrd_page.locator(row("cases", labels.case_id) + " td").last.inner_text()
    assert yrd_page.locator('#cases th:has-text("行为与情节")').count() == 1
    assert yrd_page.locator('#chart-province .lab[data-key="31"]').count() == 1
    assert yrd_page.locator('#chart-category .lab[data-key="FOOD"]').count() == 1

    pprd_page.wait_for_selector(row("cases", guangdong.case_id), timeout=LIVE)  # pprd is live too …
    time.sleep(1.0)
    assert shanghai.case_id not in pprd_page.content()  # … and never shows the yrd case
    assert guangdong.case_id not in yrd_page.content()
    pprd = dashboards["pprd"].url
    assert shanghai.case_id not in httpx.get(f"{pprd}/api/state").text
    assert httpx.get(f"{pprd}/api/search", params={"q": shanghai.case_id}).json()["count"] == 0
    assert httpx.get(f"{dashboards['yrd'].url}/api/search", params={"q": shanghai.case_id}).json()["count"] == 1
    assert errors == []


def test_overdue_handover_steps_are_red_and_the_board_keeps_to_its_region(
        dashboards: dict[str, Server], bus: Bus, browser: Browser) -> None:
    late, on_time, early_steps = make_case("33"), make_case("32", category="ELECTRONICS"), make_case("34")
    elsewhere, unrouted = make_case("44"), make_case("11")
    yrd, pprd = dashboards["yrd"], dashboards["pprd"]
    page = open_page(browser, yrd)
    before = {r: dashboards[r].metric("leadbus_dashboard_handover_steps_total") for r in ("yrd", "pprd")}

    for case in (late, on_time):
        bus.bulletin(case, "yrd")
    bus.bulletin(elsewhere, "pprd")
    bus.handover(late, overdue=True, assessment=f"王小明 {late.secrets[0]} 销售金额六万元")
    bus.handover(on_time, overdue=False)
    bus.handover(elsewhere, overdue=True)
    bus.handover(unrouted, overdue=True, regions=["yrd", "pprd"])  # a case no region's bulletin names
    bus.handover(early_steps, overdue=True)  # its steps come before its bulletin …
    # yrd's topic: late 2 + on_time 1 + unrouted 2 + early 2; pprd's: elsewhere 2 + unrouted 2
    for r, server, count in (("yrd", yrd, 7), ("pprd", pprd, 4)):
        def read_all(server: Server = server, r: str = r, count: int = count) -> bool:
            return server.metric("leadbus_dashboard_handover_steps_total") >= before[r] + count

        wait_until(read_all, 90, f"{r} to read the steps", interval=0.2)
    bus.bulletin(early_steps, "yrd")  # … and show once it is

    for case in (late, early_steps):
        page.wait_for_selector(row("board", case.case_id) + ".overdue", timeout=LIVE)
        # The board is drawn again as steps arrive: a cell found a moment ago may be gone (its computed colour then
        # reads ''), so the colour is awaited on whatever cell is there, as the other checks await their rows.
        expect(page.locator(row("board", case.case_id) + " td").first).to_have_css("color", RED, timeout=LIVE)
        assert page.locator(row("board", case.case_id) + " .chip.breach").count() == 1
    cells = page.locator(row("board", late.case_id) + " td").all_inner_texts()
    assert cells[1:4] == ["待负责人审批", "负责人决定是否批准移送", "SAMR 负责人"]
    assert "逾期" in cells[5] and "SPP/33" in cells[5]
    page.wait_for_selector(row("board", on_time.case_id), timeout=LIVE)
    assert "overdue" not in (page.locator(row("board", on_time.case_id)).get_attribute("class") or "")
    assert int(page.locator("#n-overdue").inner_text()) >= 2

    html = page.content()
    assert elsewhere.case_id not in html and unrouted.case_id not in html
    assert_clean(html, late.secrets, "the yrd page")  # the step's free-text assessment is never forwarded
    pprd_board = {r["case_id"] for r in httpx.get(f"{pprd.url}/api/state").json()["handover"]}
    assert elsewhere.case_id in pprd_board
    assert not pprd_board & {late.case_id, on_time.case_id, early_steps.case_id, unrouted.case_id}
    for server in dashboards.values():
        assert unrouted.case_id not in httpx.get(f"{server.url}/api/state").text


def test_no_personal_data_reaches_the_browser(dashboards: dict[str, Server], bus: Bus, browser: Browser) -> None:
    yrd = dashboards["yrd"]
    before, other, live = make_case("33"), make_case("33", name="王建国"), make_case("31")
    bus.bulletin(before, "yrd")  # reaches the page in the snapshot …
    bus.handover(before, overdue=True, assessment=f"王小明 {before.secrets[0]}")
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    responses: list[Response] = []
    page.on("response", lambda resp: responses.append(resp))
    sse = SseReader(f"{yrd.url}/events", lambda text: live.case_id in text and other.case_id in text)
    sse.start()
    page.goto(yrd.url)
    page.wait_for_selector("#status.live", timeout=LIVE)
    assert sse.connected.wait(15)
    bus.bulletin(other, "yrd")  # … these two live, over SSE
    bus.bulletin(live, "yrd")
    for case in (before, other, live):
        page.wait_for_selector(row("cases", case.case_id), timeout=LIVE)

    page.fill("#q", live.masked_phone)  # a masked identifier, as shown on the page
    page.wait_for_selector(row("results", live.case_id), timeout=LIVE)
    assert page.locator("#results tbody tr").count() == 1
    assert page.locator(row("results", live.case_id) + " td.subject").inner_text() == "王**"
    page.fill("#q", before.case_id.lower())  # a case id
    page.wait_for_selector(row("results", before.case_id), timeout=LIVE)
    assert page.locator("#results tbody tr").count() == 1

    sse.join(30)
    assert live.case_id in sse.text and "event: bulletin" in sse.text and "event: snapshot" in sse.text
    secrets = before.secrets + other.secrets + live.secrets
    assert_clean(page.content(), secrets, "the DOM")
    assert_clean(sse.text, secrets, "the SSE stream")
    bodies = 0
    for resp in responses:
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            continue  # endless; read above by a client of its own
        assert_clean(resp.body().decode("utf-8", "replace"), secrets, resp.url)
        bodies += 1
    assert bodies >= 3  # the page and two searches
    for path in ("/api/state", "/metrics", "/healthz"):
        assert_clean(httpx.get(yrd.url + path).text, secrets, path)
    for secret in (live.secrets[0], live.secrets[2], live.secrets[4]):  # the full value finds nothing, says nothing
        found = httpx.get(f"{yrd.url}/api/search", params={"q": secret})
        assert found.json()["count"] == 0 and secret not in found.text


def test_a_merged_case_leaves_the_page(dashboards: dict[str, Server], bus: Bus, browser: Browser) -> None:
    keeper, merged = make_case("32"), make_case("32", category="GAMES")
    page = open_page(browser, dashboards["yrd"])
    bus.bulletin(keeper, "yrd")
    bus.bulletin(merged, "yrd")
    page.wait_for_selector(row("cases", merged.case_id), timeout=LIVE)
    gone = make_case("32", case_id=merged.case_id, version=2, merged_into=keeper.case_id)
    bus.bulletin(gone, "yrd")
    page.wait_for_selector(row("cases", merged.case_id), state="detached", timeout=LIVE)
    assert page.locator(row("cases", keeper.case_id)).count() == 1
    assert httpx.get(f"{dashboards['yrd'].url}/api/search", params={"q": merged.case_id}).json()["count"] == 0


def test_language_metrics_and_health(dashboards: dict[str, Server], bus: Bus, browser: Browser) -> None:
    yrd = dashboards["yrd"]
    case = make_case("34", category="AUTO_PARTS")
    bus.bulletin(case, "yrd")
    errors: list[str] = []
    page = open_page(browser, yrd, "?lang=en", errors)
    page.wait_for_selector(row("cases", case.case_id), timeout=LIVE)
    assert page.locator("#title").inner_text().startswith("Yangtze River Delta")
    assert "Anhui" in page.locator(row("cases", case.case_id)).inner_text()
    assert "Auto parts" in page.locator("#chart-category").inner_text()
    page.click("#lang")
    assert page.locator("#title").inner_text().startswith("长三角")
    assert "安徽省" in page.locator(row("cases", case.case_id)).inner_text()
    assert "lang=en" not in page.url
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert errors == []

    health = httpx.get(f"{yrd.url}/healthz").json()
    assert health["status"] == "ok" and health["region"] == "yrd"
    wait_until(lambda: httpx.get(f"{yrd.url}/healthz").json()["caught_up"], 30, "caught up", interval=0.2)
    assert yrd.metric("leadbus_dashboard_bulletins_total") >= 1
    assert yrd.metric("leadbus_dashboard_sse_clients") >= 1
    assert yrd.metric("leadbus_dashboard_cases") >= 1
    page.close()
    wait_until(lambda: yrd.metric("leadbus_dashboard_sse_clients") == 0, 15, "the SSE client to go", interval=0.2)
    assert "leadbus_dashboard_withheld_values_total" in httpx.get(f"{yrd.url}/metrics").text


def test_screenshots_of_the_three_regions(dashboards: dict[str, Server], bus: Bus, browser: Browser) -> None:
    """artifacts/screenshots/<region>.png (and yrd-en.png); LEADBUS_REFRESH_DOCS=1 refreshes docs/dashboard-yrd.png."""
    world = {
        "yrd": [make_case("31", category="APPAREL_FOOTWEAR", sales_fen=18_250_000, name="王秀英"),
                make_case("32", category="ELECTRONICS", sales_fen=5_230_050, name="王建国"),
                make_case("33", category="COSMETICS", sales_fen=12_000_000, name="王晓红"),
                make_case("33", category="FOOD", sales_fen=2_300_000, name="王志明"),
                make_case("34", category="AUTO_PARTS", sales_fen=7_800_000, name="王海涛")],
        "jjj": [make_case("11", category="FILM_TV", sales_fen=3_400_000, name="王丽华"),
                make_case("13", category="AGRI_INPUTS", sales_fen=9_100_000, name="王国庆"),
                make_case("12", category="DRUGS", sales_fen=25_000_000, name="王春梅")],
        "pprd": [make_case("44", category="ELECTRONICS", sales_fen=15_500_000, name="王永军"),
                 make_case("35", category="CHILDREN_PRODUCTS", sales_fen=1_200_000, name="王桂兰"),
                 make_case("43", category="GAMES", sales_fen=4_000_000, name="王德胜"),
                 make_case("51", category="SOFTWARE", sales_fen=6_600_000, name="王小明")],
    }
    for region, cases in world.items():
        for case in cases:
            bus.bulletin(case, region)
    bus.handover(world["yrd"][2], overdue=True)
    bus.handover(world["yrd"][0], overdue=False)
    bus.handover(world["pprd"][0], overdue=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for region, cases in world.items():
        page = open_page(browser, dashboards[region])
        for case in cases:
            page.wait_for_selector(row("cases", case.case_id), timeout=LIVE)
        if region == "yrd":
            page.wait_for_selector(row("board", world["yrd"][2].case_id) + ".overdue", timeout=LIVE)
        page.wait_for_timeout(3000)  # let the arrival highlight fade
        assert_clean(page.content(), [s for case in cases for s in case.secrets], f"the {region} page")
        page.screenshot(path=str(SCREENSHOTS / f"{region}.png"), full_page=True)
        if region == "yrd":
            page.click("#lang")
            page.screenshot(path=str(SCREENSHOTS / "yrd-en.png"), full_page=True)
        page.close()
    assert (SCREENSHOTS / "yrd.png").stat().st_size > 10_000
    if os.environ.get("LEADBUS_REFRESH_DOCS"):  # only on request: a test run leaves the work tree clean
        shutil.copyfile(SCREENSHOTS / "yrd.png", ROOT / "docs" / "dashboard-yrd.png")
