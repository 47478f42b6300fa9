"""Analysts in the linking loop on a real broker (issue #19): suggestions, confirm, reject, split.

Intake, linking, suggesting and routing run as workers (`leadbus process --stage …`). Leads about suspects that share no
strong identifier, only an address, a company-name core and an IP range, are published unsigned by an agency;
an analyst's agency registers a key and publishes signed `LinkDecision` events through the SDK. What must show:
a suggestion for the weak pair (on the record and on the review topic of the region involved), none for a
rejected pair however much new evidence arrives (while a pair not rejected comes back with it), a confirm that
merges (history, routing withdraws the absorbed case), a split that makes a new case (routed), and decisions
by an unauthenticated or non-analyst publisher dead-lettered with their reasons.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.sinks.dashboard import Dashboard
from leadbus.sinks.dashboard_auth import COOKIE, SignIn, add_user
from leadbus.topics import (
    CASES,
    LEADS_REJECTED,
    LINK_DECISIONS,
    LINKS_SUGGESTED,
    WITHDRAWALS,
    intake_topic,
    jurisdiction_topic,
    review_topic,
)
from tests.dashboards import Server
from tests.kafka_helpers import decoded, latest_cases, live_case_of, read_all
from tests.link_bus import link_bus
from tests.processes import wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
START = datetime.now(UTC) - timedelta(hours=2)
LEADS_FROM = ("NCAC", "31")  # publishes leads unsigned
ANALYSTS = ("SAMR", "31")  # signs its link decisions


@pytest.fixture(scope="module")
def bus(tmp_path_factory) -> Iterator[dict[str, Any]]:
    stages = ("intake", "linking", "suggesting", "routing")
    with link_bus(tmp_path_factory.mktemp("link-review"), "review", stages) as lb:
        bootstrap = lb.bootstrap
        analysts = lb.analysts()  # SAMR.31 (ANALYSTS) signs its link decisions
        leads = Publisher(*LEADS_FROM, bootstrap_servers=bootstrap)
        try:
            background = _background()
            leads.wait([leads.publish(lead) for lead in background])
            wait_until(lambda: {m for c in decoded(bootstrap, CASES) for m in c["members"]}
                       >= {lead.lead_id for lead in background}, 180, "the background cases")
            yield {"bootstrap": bootstrap, "analysts": analysts, "leads": leads, "work": lb.work}
        finally:
            analysts.close()
            leads.close()


def _background(n: int = 60) -> list[CaseLead]:
    """Unrelated cases, so that the weights of shared values mean something (u = df / N)."""
    out = []
    for lead in TrafficGenerator(seed=77).leads(n, START, timedelta(seconds=1)):
        doc = lead.model_dump(mode="json")
        doc["publisher"] = {"agency": LEADS_FROM[0], "province": LEADS_FROM[1], "unit": None}
        out.append(CaseLead.model_validate(doc))
    return out


def _weak(name: str, detail: str, ips: list[str], phones: tuple[str, ...] = (), brand: str | None = None) -> CaseLead:
    """A lead about a trader in Shanghai with no strong identifier unless ``phones`` gives one."""
    doc = _background(1)[0].model_dump(mode="json")
    doc.update(lead_id=str(uuid.uuid4()), payment_accounts=[], waybills=[],
               rights_holder={"name": brand} if brand else None,
               subject={"name": name, "kind": "ENTERPRISE", "uscc": None, "id_number": None, "phones": list(phones),
                        "address": {"province": "31", "city": "上海市", "detail": detail}},
               online={"platform": None, "shop_id": None, "urls": [], "ips": ips, "icp_filings": []})
    return CaseLead.model_validate(doc)


def _publish(bus: dict[str, Any], *leads: CaseLead) -> list[str]:
    bus["leads"].wait([bus["leads"].publish(lead) for lead in leads])
    wait_until(lambda: all(live_case_of(bus["bootstrap"], lead.lead_id) for lead in leads), 120, "the leads' cases")
    return [str(live_case_of(bus["bootstrap"], lead.lead_id)) for lead in leads]


def _suggested(bootstrap: str, a: str, b: str) -> list[dict[str, Any]]:
    pair = tuple(sorted((a, b)))
    return [s for s in decoded(bootstrap, LINKS_SUGGESTED) if (s["case_a"], s["case_b"]) == pair]


def _decision(action: str, a: str, b: str | None = None, leads: list[str] | None = None, role: str = "ANALYST",
              reason: str = "the same flat and the same upstream IP range on three reports") -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "action": action, "case_a": a, "case_b": b, "lead_ids": leads or [],
            "analyst": {"agency": ANALYSTS[0], "province": ANALYSTS[1], "user": "zhang.wei", "role": role},
            "reason": reason, "decided_at": datetime.now(UTC) - timedelta(seconds=5), "suggestion_id": None}


def _decide(bus: dict[str, Any], decision: dict[str, Any]) -> None:
    bus["analysts"].wait([bus["analysts"].publish_link_decision(decision)])


def _decide_and_wait_applied(bus: dict[str, Any], decision: dict[str, Any]) -> None:
    """A decision and leads reach linking on two topics: wait until linking has taken the decision in before
    publishing leads whose outcome depends on it."""
    _decide(bus, decision)
    bootstrap = bus["bootstrap"]

    def forwarded() -> int | None:
        for m in read_all(bootstrap, LINK_DECISIONS):
            if str(decode(CATALOG, m.value())[1]["decision_id"]) == decision["decision_id"]:
                return int(m.offset())
        return None

    wait_until(lambda: forwarded() is not None, 90, "intake to forward the decision")
    offset = forwarded()
    assert offset is not None

    for stage in ("linking", "suggesting"):  # the suggesting stage reads a reject from the same topic
        wait_until(lambda g=f"leadbus-{stage}": _committed(bootstrap, g, LINK_DECISIONS, 0) > offset, 90,
                   f"{stage} to commit the decision (applied in that transaction)")


def _committed(bootstrap: str, group: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return int(consumer.committed([TopicPartition(topic, partition)], timeout=20)[0].offset)
    finally:
        consumer.close()


def _wait_suggesting_caught_up(bootstrap: str) -> None:
    """Until the suggesting stage has committed every `CaseUpdated` published so far (its suggestions made from
    them are out: same transaction)."""
    ends: dict[int, int] = {}  # one past each partition's last record (linking's commit markers come after it)
    for m in read_all(bootstrap, CASES):
        ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
    for p, end in ends.items():
        wait_until(lambda p=p, end=end: _committed(bootstrap, "leadbus-suggesting", CASES, p) >= end, 90,
                   f"the suggesting stage to take in {CASES}[{p}]")


def test_weak_pair_suggested_to_its_region_then_confirmed_and_split(bus) -> None:
    bootstrap = bus["bootstrap"]
    a1 = _weak("上海锐丰贸易有限公司", "浦东新区张杨路1188号3栋502室", ["61.152.1.17"])
    a2 = _weak("上海锐丰贸易有限公司", "浦东新区张杨路1188号3栋502室", ["61.152.1.18"])
    case1, case2 = _publish(bus, a1, a2)
    assert case1 != case2, "weak signals never link by themselves"
    wait_until(lambda: _suggested(bootstrap, case1, case2), 60, "the weak pair's suggestion")
    suggestion = _suggested(bootstrap, case1, case2)[0]
    assert 0.5 <= suggestion["score"] <= 1 and suggestion["regions"] == ["yrd"] and "31" in suggestion["provinces"]
    assert {e["signal"] for e in suggestion["evidence"]} & {"addr", "bldg"}
    review = decoded(bootstrap, review_topic("yrd"))
    assert suggestion["suggestion_id"] in {s["suggestion_id"] for s in review}
    assert suggestion["suggestion_id"] not in {s["suggestion_id"] for s in decoded(bootstrap, review_topic("jjj"))}

    # Confirm: the older case absorbs the other, with who and why in its history; routing withdraws the absorbed.
    decision = _decision("CONFIRM", case2, case1)
    decision["suggestion_id"] = suggestion["suggestion_id"]
    _decide(bus, decision)
    wait_until(lambda: {latest_cases(bootstrap)[c]["merged_into"] for c in (case1, case2)} - {None}, 90,
               "the confirmed merge")
    if latest_cases(bootstrap)[case1]["merged_into"]:  # the older stays
        case1, case2 = case2, case1
    assert latest_cases(bootstrap)[case2]["merged_into"] == case1
    merged = latest_cases(bootstrap)[case1]
    assert set(merged["members"]) == {a1.lead_id, a2.lead_id}
    entry = merged["link_history"][-1]
    assert (entry["action"], entry["merged"], entry["user"], entry["agency"]) == ("CONFIRM", case2, "zhang.wei", "SAMR")
    assert entry["reason"] == decision["reason"] and entry["suggestion_id"] == suggestion["suggestion_id"]
    wait_until(lambda: any(w["case_id"] == case2 and w.get("merged_into") == case1
                           for w in decoded(bootstrap, WITHDRAWALS)), 90, "routing to withdraw the absorbed case")

    # The same decision again (a redelivery) changes nothing.
    versions = latest_cases(bootstrap)[case1]["version"]
    _decide(bus, decision)

    # Split: a2 leaves for a new case, recorded on both sides and routed to the suspect's province.
    _decide(bus, _decision("SPLIT", case1, leads=[a2.lead_id], reason="a2 is the landlord's other tenant"))
    wait_until(lambda: live_case_of(bootstrap, a2.lead_id) not in (None, case1), 90, "the split")
    new = str(live_case_of(bootstrap, a2.lead_id))
    cases = latest_cases(bootstrap)
    assert new not in (case1, case2)
    assert cases[case1]["members"] == [a1.lead_id] and cases[case1]["version"] == versions + 1, \
        "the redelivered confirm did nothing; the split made one new version"
    assert cases[new]["link_history"][0]["action"] == "SPLIT"
    assert cases[new]["link_history"][0]["split_from"] == case1 and cases[case1]["link_history"][-1]["split_to"] == new
    wait_until(lambda: any(c["case_id"] == new for c in decoded(bootstrap, jurisdiction_topic("31"))), 90,
               "routing to send the new case to Shanghai")


def test_rejected_pair_never_comes_back_while_another_does(bus) -> None:
    bootstrap = bus["bootstrap"]
    pairs = {}
    for label, name in (("rejected", "上海宏泰电子"), ("kept", "上海瑞祥电子")):
        street = "闵行区七莘路300号12室" if label == "rejected" else "嘉定区曹安公路900号8室"
        ip = "61.152.9.9" if label == "rejected" else "61.152.33.9"
        phone = "13912345678" if label == "rejected" else "13912345679"
        first = _weak(f"{name}有限公司", street, [ip], phones=(phone,))
        brand = "耐克（中国）有限公司" if label == "rejected" else "阿迪达斯（中国）有限公司"  # one a pair
        second = _weak(f"{name}商行", street, [ip], brand=brand)
        cases = _publish(bus, first, second)
        wait_until(lambda c=cases: _suggested(bootstrap, *c), 60, f"the {label} pair's suggestion")
        pairs[label] = (first, second, cases)
    first, _, (ra, rb) = pairs["rejected"]
    _decide_and_wait_applied(bus, _decision("REJECT", ra, rb, reason="two tenants of one building, different owners"))

    # New evidence for both pairs: a lead joins each first case (same phone) with the second's brand (+2.9 bits).
    thirds = []
    for label in ("kept", "rejected"):
        first, second, _ = pairs[label]
        name = first.subject.name.replace("有限公司", "商行")
        thirds.append(_weak(name, first.subject.address.detail, list(first.online.ips),  # type: ignore[union-attr]
                            phones=tuple(first.subject.phones), brand=second.rights_holder.name))  # type: ignore[union-attr]
    _publish(bus, *thirds)
    ka, kb = pairs["kept"][2]
    wait_until(lambda: len(_suggested(bootstrap, ka, kb)) == 2, 90, "the kept pair to come back, stronger")
    again = _suggested(bootstrap, ka, kb)
    assert again[1]["weight_bits"] >= again[0]["weight_bits"] + 2
    # Both thirds went through linking, and their CaseUpdated through the suggesting stage.
    _wait_suggesting_caught_up(bootstrap)
    assert len(_suggested(bootstrap, ra, rb)) == 1, "a rejected pair is never suggested again"


def test_decisions_by_unauthenticated_or_non_analyst_publishers_are_dead_lettered(bus) -> None:
    bootstrap = bus["bootstrap"]
    a, b = _publish(bus, _weak("上海金鼎五金有限公司", "宝山区长江西路100号", ["61.152.50.1"]),
                    _weak("上海金鼎五金商行", "宝山区长江西路100号", ["61.152.50.2"]))
    # Unsigned, though on the analysts' own topic and well formed: not authenticated.
    unsigned = _decision("CONFIRM", a, b)
    entry = CATALOG.latest("cn.leadbus.LinkDecision")
    value = encode(entry, unsigned)
    raw = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3})
    raw.produce(intake_topic(ANALYSTS[0]), key=a.encode(), value=value)
    raw.flush(30)
    # Signed by the agency's key, but by a viewer: not an analyst.
    viewer = _decision("CONFIRM", a, b, role="VIEWER")
    _decide(bus, viewer)

    def reasons() -> dict[str, str]:
        out = {}
        for letter in decoded(bootstrap, LEADS_REJECTED):
            original = bytes(letter["original"])
            for name, value_ in (("unsigned", value), ("viewer", None)):
                if original == value_ or (value_ is None and viewer["decision_id"].encode() in original):
                    out[name] = letter["reason"]
        return out

    wait_until(lambda: len(reasons()) == 2, 90, "both decisions to be dead-lettered")
    assert reasons() == {"unsigned": "UNSIGNED", "viewer": "WRONG_ROLE"}
    cases = latest_cases(bootstrap)
    assert not cases[a]["merged_into"] and not cases[b]["merged_into"], "neither merged anything"


def test_decisions_on_cases_that_do_not_fit_are_dead_lettered_by_linking(bus) -> None:
    bootstrap = bus["bootstrap"]
    (a,) = _publish(bus, _weak("上海永盛商贸有限公司", "徐汇区漕溪北路1号", ["61.152.60.1"]))
    gone = "CASE-0000000000000001"
    decision = _decision("CONFIRM", a, gone)
    _decide(bus, decision)

    def found() -> list[dict[str, Any]]:
        mine = decision["decision_id"].encode()
        return [x for x in decoded(bootstrap, LEADS_REJECTED) if mine in bytes(x["original"])]

    wait_until(found, 90, "the decision on a case that does not exist to be dead-lettered")
    assert found()[0]["reason"] == "LINK_UNKNOWN_CASE" and gone in found()[0]["message"]


def test_dashboards_show_suggestions_to_supervisors_of_the_regions_involved_only(bus, tmp_path) -> None:
    bootstrap = bus["bootstrap"]
    a, b = _publish(bus, _weak("上海华晟纺织有限公司", "青浦区华新镇华志路500号2幢", ["61.152.70.1"]),
                    _weak("上海华晟纺织商行", "青浦区华新镇华志路500号2幢", ["61.152.70.2"]))
    wait_until(lambda: _suggested(bootstrap, a, b), 60, "the pair's suggestion")
    suggestion_id = _suggested(bootstrap, a, b)[0]["suggestion_id"]
    users = tmp_path / "users.yaml"
    for name, region, role in (("yrd.supervisor", "yrd", "supervisor"), ("yrd.viewer", "yrd", "viewer"),
                               ("jjj.supervisor", "jjj", "supervisor")):
        add_user(users, name, f"{name}-password", region, role)
    secret = b"one host, one session secret: a cookie reaches every region's dashboard"
    servers = {region: Server(bootstrap, region, SignIn(users, region, tmp_path / f"{region}.jsonl", secret))
               for region in ("yrd", "jjj")}
    for server in servers.values():
        server.start()
    try:
        def get(region: str, user: str, path: str) -> httpx.Response:
            sign_in = servers[region].sign_in
            found = sign_in.users.get(user)
            assert found is not None
            token = servers[user.split(".")[0]].sign_in.issue(found)
            return httpx.get(servers[region].url + path, cookies={COOKIE: token}, timeout=10)

        def shown() -> list[dict[str, Any]]:
            resp = get("yrd", "yrd.supervisor", "/api/suggestions")
            assert resp.status_code == 200, resp.text
            return [s for s in resp.json()["suggestions"] if s["suggestion_id"] == suggestion_id]

        wait_until(shown, 90, "the yrd supervisor to see the suggestion")
        row = shown()[0]
        assert (row["case_a"], row["case_b"]) == tuple(sorted((a, b))) and row["evidence"]
        assert get("yrd", "yrd.viewer", "/api/suggestions").status_code == 403
        assert suggestion_id not in get("yrd", "yrd.viewer", "/api/state").text
        assert get("yrd", "jjj.supervisor", "/api/suggestions").status_code == 403, "another region's supervisor"
        jjj = get("jjj", "jjj.supervisor", "/api/suggestions")
        assert jjj.status_code == 200 and suggestion_id not in jjj.text
        assert httpx.get(servers["yrd"].url + "/api/suggestions", timeout=10).status_code == 401
        views = [e.get("view") for e in _access(tmp_path / "yrd.jsonl") if e.get("user") == "yrd.supervisor"]
        assert "suggestions" in views, "a supervisor's look at suggestions is in the access log"
    finally:
        for server in servers.values():
            server.stop()


def test_a_decided_pair_stays_off_a_rebuilt_review_board(bus) -> None:
    """Linking writes `LinkDecided` onto the review topic once a decision on a pair is carried out: a dashboard that
    was running drops the pair, and one started afterwards (rebuilding its board from the topic) never shows it,
    while an undecided pair stays on both."""
    bootstrap = bus["bootstrap"]
    a, b = _publish(bus, _weak("上海德隆包装有限公司", "金山区朱泾镇金龙新街200号", ["61.152.80.1"]),
                    _weak("上海德隆包装商行", "金山区朱泾镇金龙新街200号", ["61.152.80.2"]))
    c, d = _publish(bus, _weak("上海富源塑料有限公司", "崇明区城桥镇八一路300号", ["61.152.81.1"]),
                    _weak("上海富源塑料商行", "崇明区城桥镇八一路300号", ["61.152.81.2"]))
    decided, kept = tuple(sorted((a, b))), tuple(sorted((c, d)))
    wait_until(lambda: _suggested(bootstrap, a, b) and _suggested(bootstrap, c, d), 90, "both pairs' suggestions")

    def pairs(dashboard: Dashboard) -> set[tuple[str, str]]:
        return {(s["case_a"], s["case_b"]) for s in dashboard.suggested()}

    running = Dashboard(bootstrap, "yrd")
    running.start()
    try:
        wait_until(lambda: {decided, kept} <= pairs(running), 90, "the running dashboard to show both pairs")
        decision = _decision("REJECT", a, b, reason="同一园区的两家厂，法人不同")
        _decide_and_wait_applied(bus, decision)

        def decided_records() -> list[dict[str, Any]]:
            return [r for r in decoded(bootstrap, review_topic("yrd"))
                    if r.get("decision_id") == decision["decision_id"]]

        wait_until(decided_records, 90, "the LinkDecided record on the review topic")
        record = decided_records()[0]
        assert ((record["case_a"], record["case_b"]), record["action"], record["regions"]) == (
            decided, "REJECT", ["yrd"])
        wait_until(lambda: decided not in pairs(running), 90, "the running dashboard to drop the decided pair")
        assert kept in pairs(running)
    finally:
        running.stop()

    restarted = Dashboard(bootstrap, "yrd")  # a restart: the board is rebuilt from the review topic
    restarted.start()
    try:
        wait_until(restarted.caught_up.is_set, 90, "the restarted dashboard to catch up")
        wait_until(lambda: kept in pairs(restarted), 90, "the undecided pair on the rebuilt board")
        assert decided not in pairs(restarted), "a decided pair never comes back"
    finally:
        restarted.stop()


def _access(path: Any) -> list[dict[str, Any]]:
    from leadbus.access_log import read_access_log

    return read_access_log(path)
