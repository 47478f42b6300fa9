"""Need-to-know over time, on a real broker: a case is withdrawn from every place a newer version no
longer reaches, and the dashboards (API, event stream, DOM in a real Chromium) drop it at once.

Leads go in through the publisher SDK and real intake, linking and routing workers (OS processes);
the split, which the linker never makes by itself, is written to `leadbus.cases` as linking would.
The cluster is this module's own, so every topic holds only what these tests wrote, and a dashboard
replaying a region's topic from the start can be compared with the live one.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.geography import REGIONS
from leadbus.identifiers import USCC_CHARSET, make_uscc
from leadbus.localbroker import KafkaCluster
from leadbus.models import CaseLead
from leadbus.processors.core.handover import open_handover
from leadbus.producers import Publisher
from leadbus.sinks.archive import ArchiveError, read_events, verify
from leadbus.sinks.archive_sink import run_archive
from leadbus.sinks.registry import case_withdrawals, counts, registry_engine
from leadbus.topics import CASES, HANDOVER, WITHDRAWALS
from tests.dashboards import LIVE, Server, SseReader, chromium, open_page, row, serving
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until
from tests.registry_helpers import registry_caught_up

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
WITHDRAWN, BULLETIN = "cn.leadbus.CaseWithdrawn", "cn.leadbus.RegionalBulletin"
ROUTED = 120  # s: publish → intake → linking → routing on a loaded 2-core machine
_rng = random.Random()


# -- the bus ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bus(cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Intake, linking and routing workers on the module's cluster; yields its bootstrap servers."""
    bootstrap = cluster.bootstrap_servers
    root = tmp_path_factory.mktemp("withdrawals-workers")
    workers = [start_worker(bootstrap, root / "state", f"{stage}-1", root / "logs", stage=stage)
               for stage in ("intake", "linking", "routing")]
    try:
        yield bootstrap
        for worker in workers:
            assert worker.poll() is None, f"a worker died; see {root / 'logs'}"
    finally:
        for worker in workers:
            stop(worker)


@pytest.fixture(scope="module")
def pages(bus: str) -> Iterator[dict[str, Server]]:
    with serving({region: Server(bus, region) for region in REGIONS}) as servers:
        yield servers


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# -- leads and what became of them ---------------------------------------------------------------------

def _uscc(region6: str) -> str:
    return make_uscc("91", region6, "".join(_rng.choice(USCC_CHARSET[:10]) for _ in range(9)))


def _mobile() -> str:
    return f"+86139{_rng.randrange(10**8):08d}"


def lead(make_lead: Any, agency: str, province: str, suspect: str, *, name: str, uscc: str | None = None,
         **fields: Any) -> dict[str, Any]:
    """A lead about a suspect in `suspect`, reported from `province`, linking only by what `fields` give."""
    raw: dict[str, Any] = make_lead(**{
        "publisher.agency": agency, "publisher.province": province,
        "reported_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "subject.name": name, "subject.uscc": uscc, "subject.id_number": None, "subject.phones": [],
        "subject.address": {"province": suspect, "city": None, "detail": None},
        "payment_accounts": [], "waybills": [], "online": {"platform": None, "shop_id": None, "urls": [], "ips": []},
        "facts": {"sales_amount_fen": 8_800_000},
    })
    for key, value in fields.items():
        raw[key] = value
    return raw


def revise(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    revised = {**raw, "revision": raw["revision"] + 1, **changes}
    revised["reported_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return revised


def publish(bootstrap: str, *raws: dict[str, Any]) -> None:
    for raw in raws:
        item = CaseLead.model_validate(raw)
        pub = Publisher(item.publisher.agency, item.publisher.province, bootstrap_servers=bootstrap)
        try:
            pub.wait([pub.publish(item)])
        finally:
            pub.close()


def cases(bootstrap: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for msg in read_all(bootstrap, CASES):
        record = decode(CATALOG, msg.value())[1]
        if record["version"] >= latest.get(record["case_id"], {}).get("version", -1):
            latest[record["case_id"]] = record
    return latest


def case_of(bootstrap: str, lead_id: str, version: int = 1) -> str:
    """The live case holding `lead_id`, once it has reached `version`."""
    found: list[str] = []

    def ready() -> bool:
        live = [c for c in cases(bootstrap).values()
                if c["merged_into"] is None and lead_id in c["members"] and c["version"] >= version]
        found[:] = [c["case_id"] for c in live]
        return len(live) == 1

    wait_until(ready, ROUTED, f"the case of lead {lead_id} at version {version}", interval=0.5)
    return found[0]


def words(bootstrap: str, topic: str, case_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every record about `case_id` on `topic`, in order, as (writer schema name, record)."""
    out = []
    for msg in read_all(bootstrap, topic):
        if msg.key() == case_id.encode():
            writer, record = decode(CATALOG, msg.value())
            out.append((writer.name, record))
    return out


def wait_last_word(bootstrap: str, topic: str, case_id: str, name: str, version: int) -> dict[str, Any]:
    """Wait until the last record about `case_id` on `topic` is a `name` of `version`; return it."""
    last: list[dict[str, Any]] = []

    def said() -> bool:
        # handover steps routing forwards to a region follow the case's versions there: they are not its word
        found = [w for w in words(bootstrap, topic, case_id) if w[0] != "cn.leadbus.HandoverStep"]
        if found and found[-1][0] == name and found[-1][1]["version"] == version:
            last[:] = [found[-1][1]]
            return True
        return False

    wait_until(said, ROUTED, f"{name} v{version} of {case_id} on {topic}", interval=0.5)
    return last[0]


def assert_withdrawn(bootstrap: str, topic: str, case_id: str, version: int, reason: str,
                     merged_into: str | None = None) -> None:
    record = wait_last_word(bootstrap, topic, case_id, WITHDRAWN, version)
    assert (record["reason"], record["topic"], record["merged_into"]) == (reason, topic, merged_into)
    assert set(record) == {"case_id", "version", "reason", "channel", "recipient", "topic", "merged_into",
                           "withdrawn_at"}, "a withdrawal carries no case data"
    copies = [r for n, r in words(bootstrap, WITHDRAWALS, case_id) if r["topic"] == topic and r["version"] == version]
    assert len(copies) == 1, f"one copy on {WITHDRAWALS} for the registry and the archive"


def assert_off_the_dashboard(server: Server, page: Page, case_id: str, *texts: str) -> None:
    """The page (DOM), its API (state, search) and a fresh event stream no longer hold the case."""
    page.wait_for_selector(row("cases", case_id), state="detached", timeout=LIVE)
    assert page.locator(row("board", case_id)).count() == 0
    state = httpx.get(f"{server.url}/api/state").text
    snapshot = SseReader(f"{server.url}/events", lambda text: "event: snapshot" in text and text.endswith("\n\n"))
    snapshot.start()
    snapshot.join(20)
    assert "event: snapshot" in snapshot.text
    for text in (case_id, *texts):
        assert text not in page.content(), f"{text} still on the page"
        assert text not in state, f"{text} still in /api/state"
        assert text not in snapshot.text, f"{text} still in a new event stream's snapshot"
    assert httpx.get(f"{server.url}/api/search", params={"q": case_id}).json()["count"] == 0


def on_page(page: Page, case_id: str) -> None:
    page.wait_for_selector(row("cases", case_id), timeout=LIVE)


def shown(server: Server, case_id: str) -> dict[str, Any] | None:
    found = [c for c in httpx.get(f"{server.url}/api/state").json()["cases"] if c["case_id"] == case_id]
    return found[0] if found else None


# -- the three sequences of the issue ------------------------------------------------------------------

def test_open_case_revised_to_confidential_is_withdrawn_and_comes_back_whole(
        bus: str, pages: dict[str, Server], browser: Browser, make_lead: Any) -> None:
    uscc = _uscc("440100")
    name = f"广州{uuid.uuid4().hex[:4]}日化有限公司"
    first = lead(make_lead, "SAMR", "44", "44", name=name, uscc=uscc,
                 online={"platform": "淘宝", "shop_id": "TB5254650881", "urls": ["https://shop5254650881.taobao.com/"],
                         "ips": []})
    pprd = pages["pprd"]
    page = open_page(browser, pprd)
    publish(bus, first)
    case_id = case_of(bus, first["lead_id"])
    wait_last_word(bus, "leadbus.region.pprd", case_id, BULLETIN, 1)
    on_page(page, case_id)
    chips = page.locator(row("cases", case_id) + " td").last.inner_text()
    assert f"信用代码 {uscc}" in chips, "an enterprise's 统一社会信用代码 is public and shown"
    assert chips.count("网店") == 1 and "taobao:5254650881" in chips, "one canonical shop id"
    _steps(bus, case_id, "44")  # on leadbus.handover: routing forwards them to leadbus.region.pprd
    page.wait_for_selector(row("board", case_id), timeout=ROUTED * 1000)

    sse = SseReader(f"{pprd.url}/events", lambda text: f'"case_id":"{case_id}"' in text.split("event: removed")[-1]
                    and "event: removed" in text, seconds=ROUTED)
    sse.start()
    assert sse.connected.wait(15)
    publish(bus, revise(first, handling="CONFIDENTIAL", share_with=["MPS"]))
    for topic in ("leadbus.region.pprd", "leadbus.jurisdiction.44", "leadbus.takedown.notices"):
        assert_withdrawn(bus, topic, case_id, 2, "HANDLING_CHANGED")
    assert_off_the_dashboard(pprd, page, case_id, name, uscc)
    sse.join(ROUTED)
    assert "event: removed" in sse.text and case_id in sse.text.split("event: removed")[-1]

    publish(bus, revise(revise(first), handling="OPEN"))  # revision 2: open again
    wait_last_word(bus, "leadbus.region.pprd", case_id, BULLETIN, 3)
    back = [r for n, r in words(bus, "leadbus.jurisdiction.44", case_id) if n == "cn.leadbus.CaseUpdated"][-1]
    assert back["version"] == 3 and back["suspect_name"] == name and back["members"] == [first["lead_id"]]
    on_page(page, case_id)
    assert f"信用代码 {uscc}" in page.locator(row("cases", case_id)).inner_text()
    page.wait_for_selector(row("board", case_id), timeout=LIVE)  # its handover row comes back with it
    assert shown(pprd, case_id)["version"] == 3  # type: ignore[index]


def test_a_restricted_lead_joining_withdraws_the_case_from_the_regions_it_does_not_list(
        bus: str, pages: dict[str, Server], browser: Browser, make_lead: Any) -> None:
    uscc = _uscc("130100")
    name = f"石家庄{uuid.uuid4().hex[:4]}商贸有限公司"
    hebei = lead(make_lead, "SAMR", "44", "13", name=name, uscc=uscc)  # a Hebei suspect reported from Guangdong
    pprd_page, jjj_page = open_page(browser, pages["pprd"]), open_page(browser, pages["jjj"])
    publish(bus, hebei)
    case_id = case_of(bus, hebei["lead_id"])
    on_page(pprd_page, case_id)
    on_page(jjj_page, case_id)

    police = lead(make_lead, "MPS", "13", "13", name=name, uscc=uscc, handling="RESTRICTED", share_with=["jjj"])
    publish(bus, police)
    assert case_of(bus, police["lead_id"], version=2) == case_id
    assert_withdrawn(bus, "leadbus.region.pprd", case_id, 2, "HANDLING_CHANGED")
    assert_withdrawn(bus, "leadbus.jurisdiction.13", case_id, 2, "HANDLING_CHANGED")  # a province-wide feed
    jjj = wait_last_word(bus, "leadbus.region.jjj", case_id, BULLETIN, 2)
    assert jjj["handling"] == "RESTRICTED"
    assert_off_the_dashboard(pages["pprd"], pprd_page, case_id, name)
    wait_until(lambda: (shown(pages["jjj"], case_id) or {}).get("version") == 2, 30, "jjj to show version 2", 0.2)
    assert jjj_page.locator(row("cases", case_id)).count() == 1


def test_a_corrected_province_withdraws_the_old_jurisdiction_and_region(
        bus: str, pages: dict[str, Server], browser: Browser, make_lead: Any) -> None:
    uscc = _uscc("440300")
    name = f"深圳{uuid.uuid4().hex[:4]}电子有限公司"
    first = lead(make_lead, "SAMR", "33", "44", name=name, uscc=uscc)  # reported in Zhejiang, suspect said to be in 44
    pprd_page, jjj_page = open_page(browser, pages["pprd"]), open_page(browser, pages["jjj"])
    publish(bus, first)
    case_id = case_of(bus, first["lead_id"])
    on_page(pprd_page, case_id)
    wait_last_word(bus, "leadbus.jurisdiction.44", case_id, "cn.leadbus.CaseUpdated", 1)

    publish(bus, revise(first, subject={**first["subject"], "address": {"province": "13", "city": None,
                                                                        "detail": None}}))
    for topic in ("leadbus.region.pprd", "leadbus.jurisdiction.44"):
        assert_withdrawn(bus, topic, case_id, 2, "PROVINCES_CHANGED")
    wait_last_word(bus, "leadbus.jurisdiction.13", case_id, "cn.leadbus.CaseUpdated", 2)
    wait_last_word(bus, "leadbus.region.yrd", case_id, BULLETIN, 2)
    wait_last_word(bus, "leadbus.region.jjj", case_id, BULLETIN, 2)
    assert_off_the_dashboard(pages["pprd"], pprd_page, case_id, name)
    on_page(jjj_page, case_id)


# -- a merge and a split -------------------------------------------------------------------------------

def test_a_merged_case_is_withdrawn_naming_its_survivor(
        bus: str, pages: dict[str, Server], browser: Browser, make_lead: Any) -> None:
    phone_a, phone_b = _mobile(), _mobile()
    older = lead(make_lead, "SAMR", "44", "44", name="-",
                 **{"subject": {"name": "佛山五金经营部", "kind": "ENTERPRISE", "uscc": None, "id_number": None,
                                "phones": [phone_a], "address": {"province": "44", "city": None, "detail": None}}})
    younger = lead(make_lead, "SAMR", "33", "33", name="-",
                   **{"subject": {"name": "义乌五金商行", "kind": "ENTERPRISE", "uscc": None, "id_number": None,
                                  "phones": [phone_b], "address": {"province": "33", "city": None, "detail": None}}})
    yrd_page = open_page(browser, pages["yrd"])
    publish(bus, older)
    survivor = case_of(bus, older["lead_id"])
    publish(bus, younger)
    absorbed = case_of(bus, younger["lead_id"])
    on_page(yrd_page, absorbed)
    both = lead(make_lead, "SAMR", "33", "33", name="-",
                **{"subject": {"name": "义乌五金商行", "kind": "ENTERPRISE", "uscc": None, "id_number": None,
                               "phones": [phone_a, phone_b], "address": {"province": "33", "city": None,
                                                                         "detail": None}}})
    publish(bus, both)
    assert case_of(bus, both["lead_id"], version=2) == survivor
    for topic in ("leadbus.region.yrd", "leadbus.jurisdiction.33"):
        assert_withdrawn(bus, topic, absorbed, 1, "MERGED", merged_into=survivor)
    assert_off_the_dashboard(pages["yrd"], yrd_page, absorbed)
    on_page(yrd_page, survivor)  # the survivor now reaches 长三角 through the Zhejiang reports


def test_a_split_withdraws_the_case_from_the_region_only_the_split_off_part_concerned(
        bus: str, pages: dict[str, Server], browser: Browser) -> None:
    """The linker never splits a case by itself; an operator's correction arrives as linking would write it."""
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    now = datetime.now(UTC)
    case_id, split_off = f"CASE-{uuid.uuid4().hex[:16].upper()}", f"CASE-{uuid.uuid4().hex[:16].upper()}"
    whole = {
        "case_id": case_id, "version": 1, "members": ["l-33", "l-44"], "suspect_name": "温州鞋业有限公司",
        "reporters": [{"agency": "SAMR", "province": "33"}, {"agency": "SAMR", "province": "44"}],
        "identifiers": [{"kind": "uscc", "value": _uscc("330300")}], "suspect_province": "33",
        "categories": ["APPAREL_FOOTWEAR"], "violations": ["ART_213"],
        "facts": {"sales_amount_fen": 5_000_000}, "first_reported_at": now, "last_reported_at": now,
        "handling": "OPEN", "share_with": [], "cross_border": False, "countries": [], "merged_from": [],
        "merged_into": None, "updated_at": now,
    }
    part = {**whole, "version": 2, "members": ["l-33"], "reporters": [{"agency": "SAMR", "province": "33"}]}
    other = {**whole, "case_id": split_off, "members": ["l-44"], "suspect_name": "东莞鞋业有限公司",
             "reporters": [{"agency": "SAMR", "province": "44"}], "suspect_province": "44",
             "identifiers": [{"kind": "uscc", "value": _uscc("441900")}]}
    producer = Producer({"bootstrap.servers": bus, "acks": "all", "partitioner": "murmur2_random"})  # as linking
    pprd_page = open_page(browser, pages["pprd"])
    producer.produce(CASES, key=case_id.encode(), value=encode(schema, whole))
    assert producer.flush(30) == 0
    on_page(pprd_page, case_id)
    producer.produce(CASES, key=case_id.encode(), value=encode(schema, part))
    producer.produce(CASES, key=split_off.encode(), value=encode(schema, other))
    assert producer.flush(30) == 0
    assert_withdrawn(bus, "leadbus.region.pprd", case_id, 2, "PROVINCES_CHANGED")
    assert_off_the_dashboard(pages["pprd"], pprd_page, case_id, "温州鞋业有限公司")
    on_page(pprd_page, split_off)
    wait_last_word(bus, "leadbus.region.yrd", case_id, BULLETIN, 2)


def test_a_hong_kong_company_goes_to_liaison_not_a_jurisdiction(bus: str, make_lead: Any) -> None:
    hk = lead(make_lead, "GACC", "44", "81", name="-",
              **{"subject": {"name": "香港环球贸易有限公司", "kind": "ENTERPRISE", "uscc": None, "id_number": None,
                             "phones": [_mobile()], "address": {"province": "81", "city": None, "detail": None}},
                 "cross_border": True, "countries": ["HK"]})
    publish(bus, hk)
    case_id = case_of(bus, hk["lead_id"])
    wait_last_word(bus, "leadbus.liaison.81", case_id, "cn.leadbus.CaseUpdated", 1)
    wait_last_word(bus, "leadbus.jurisdiction.44", case_id, "cn.leadbus.CaseUpdated", 1)  # where it was reported
    wait_last_word(bus, "leadbus.region.pprd", case_id, BULLETIN, 1)  # 9+2 cooperation
    assert words(bus, WITHDRAWALS, case_id) == []


# -- the registry and the archive record every withdrawal --------------------------------------------

def test_the_registry_and_the_archive_record_every_withdrawal(bus: str, tmp_path: Any) -> None:
    """Runs after the sequences above: `leadbus.withdrawals` holds a copy of each withdrawal routing emitted."""
    expected = {(r["case_id"], r["topic"], r["version"], r["reason"])
                for r in (decode(CATALOG, m.value())[1] for m in read_all(bus, WITHDRAWALS))}
    assert {reason for *_, reason in expected} >= {"HANDLING_CHANGED", "PROVINCES_CHANGED", "MERGED"}

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_caught_up(bus, url)
    engine = registry_engine(url)
    try:
        with engine.connect() as conn:
            rows = {(r.case_id, r.topic, r.version, r.reason) for r in conn.execute(select(case_withdrawals))}
        assert rows == expected
        assert counts(engine)["case_withdrawals"] == len(expected)
    finally:
        engine.dispose()

    root, stop_archive = tmp_path / "archive", threading.Event()
    thread = threading.Thread(target=run_archive, args=(bus, [WITHDRAWALS], root),
                              kwargs={"group": f"test-{uuid.uuid4()}", "seal_after_seconds": 1.0, "stop": stop_archive})
    thread.start()

    def archived() -> set[tuple[str, str, int, str]]:
        try:
            return {(e["case_id"], e["topic"], e["version"], e["reason"])
                    for _, r in read_events(root) if isinstance(e := r["event"], dict)}
        except (ArchiveError, OSError):
            return set()  # a file being sealed right now

    try:
        wait_until(lambda: archived() == expected, 60, "every withdrawal in a sealed archive file", 0.5)
    finally:
        stop_archive.set()
        thread.join(60)
    assert verify(root) == []


# -- replay: the same page from the topic's start ---------------------------------------------------

def test_a_fresh_dashboard_replaying_each_region_shows_the_same_page_as_the_live_one(
        bus: str, pages: dict[str, Server], browser: Browser) -> None:
    """Runs after the sequences above: every region's topic holds bulletins, withdrawals and returns."""
    for region, live in pages.items():
        fresh = Server(bus, region)
        fresh.start()
        try:
            for server in (live, fresh):
                wait_until(lambda s=server: httpx.get(f"{s.url}/healthz").json()["caught_up"], 60, "caught up", 0.2)
            wait_until(lambda a=live, b=fresh: _page_state(a) == _page_state(b), 30, f"{region}: the same state", 0.5)
            assert _page_state(live)["cases"], f"{region} shows nothing: the comparison would be empty"
            doms = []
            for server in (live, fresh):
                page = open_page(browser, server)
                page.wait_for_function(f"document.querySelectorAll('#cases tbody tr').length == "
                                       f"{len(_page_state(live)['cases'])}", timeout=LIVE)
                dom = {table: page.locator(f"#{table} tbody tr").all_inner_texts() for table in ("cases", "board")}
                doms.append({**dom, "counts": page.locator("#chart-province").inner_text()})
                page.close()
            assert doms[0] == doms[1]
            assert live.metric("leadbus_dashboard_withheld_values_total") == 0, "only true leaks are counted"
        finally:
            fresh.stop()


def _page_state(server: Server) -> dict[str, Any]:
    state = httpx.get(f"{server.url}/api/state").json()
    return {k: v for k, v in state.items() if k not in ("seq", "caught_up")}


def _steps(bootstrap: str, case_id: str, province: str) -> None:
    """A handover opened for the case (as the handover stage would write it), so its row is on the board."""
    schema = CATALOG.latest("cn.leadbus.HandoverStep")
    _, steps = open_handover(case_id, "SAMR", province, at=datetime.now(UTC) - timedelta(hours=1),
                             assessment="")
    # murmur2 like the bus's stages: leadbus.handover is co-partitioned with leadbus.cases (routing's state)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random"})
    for step in steps:
        producer.produce(HANDOVER, key=case_id.encode(),
                         value=encode(schema, {**step.__dict__, "recorded_at": datetime.now(UTC)}))
    assert producer.flush(30) == 0
