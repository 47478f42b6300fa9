"""The pure linker: strong identifiers link, weak ones never do, merges keep the older case."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from leadbus.models import CaseLead
from leadbus.processors.core.linking import (
    DictStore,
    Linker,
    aggregate_facts,
    canonical_shop_id,
    case_summary,
    link_offline,
    shop_from_url,
    strong_identifiers,
)
from leadbus.processors.core.normalize import canonical_url, normalise


def _lead(make_lead, **overrides: Any) -> CaseLead:
    base = {
        "subject.uscc": None, "subject.id_number": None, "subject.phones": [], "payment_accounts": [],
        "online": {"platform": None, "shop_id": None, "urls": [], "ips": []}, "waybills": [],
    }
    return CaseLead.model_validate(make_lead(**{**base, **overrides}))


def _cases(leads: list[CaseLead]) -> list[set[str]]:
    result = link_offline(leads)
    groups: dict[str, set[str]] = {}
    for lead_id, case_id in result.items():
        groups.setdefault(case_id, set()).add(lead_id)
    return sorted(groups.values(), key=lambda g: sorted(g))


def test_each_strong_identifier_links(make_lead) -> None:
    pairs = [
        ({"subject.uscc": "91350100M000100Y43"}, {"subject.uscc": "91350100m000100y43"}),
        ({"subject.id_number": "11010519491231002X"}, {"subject.id_number": "110105491231002"}),
        ({"online.platform": "淘宝", "online.shop_id": "123456"},
         {"online.urls": ["http://shop123456.taobao.com/?spm=a1z10"]}),
        ({"online.urls": ["https://www.meili-shop.cn/item/1"]}, {"online.urls": ["http://m.meili-shop.cn/goods/9/"]}),
        ({"payment_accounts": ["6222 0212 3456 7890 128"]}, {"payment_accounts": ["6222021234567890128"]}),
        ({"subject.phones": ["+86 138-1234-5678"]}, {"subject.phones": ["0086 13812345678"]}),
        # 网站备案号 (v2): two sites of one filing subject
        ({"online.icp_filings": ["京ICP备05070286号-1"]}, {"online.icp_filings": ["京 icp 备０５０７０２８６号-3"]}),
    ]
    for first, second in pairs:
        a, b = _lead(make_lead, **first), _lead(make_lead, **second)
        assert len(_cases([a, b])) == 1, (first, second)


def test_weak_signals_never_link_alone(make_lead) -> None:
    shared = {"online.ips": ["1.2.3.4"], "waybills": ["SF1234567890123"], "subject.name": "鑫盛贸易有限公司",
              "subject.address": {"province": "33", "city": "杭州市", "detail": "文三路1号"},
              "subject.phones": ["0571-88881234"]}
    a = _lead(make_lead, **shared, **{"subject.uscc": "91350100M000100Y43"})
    b = _lead(make_lead, **shared, **{"online.urls": ["https://shop99.taobao.com/", "https://item.jd.com/5.html"]})
    assert len(_cases([a, b])) == 2


def test_marketplace_domains_link_nothing(make_lead) -> None:
    a = _lead(make_lead, **{"online.urls": ["https://shop111.taobao.com/"]})
    b = _lead(make_lead, **{"online.urls": ["https://shop222.taobao.com/"]})
    assert len(_cases([a, b])) == 2
    assert "domain:taobao.com" not in strong_identifiers(normalise(a).lead, normalise(a).domains)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_order_ends_in_one_case_with_the_oldest_id(make_lead, order: tuple[int, ...]) -> None:
    leads = [
        _lead(make_lead, **{"subject.uscc": "91350100M000100Y43", "subject.phones": ["13800000001"],
                            "publisher.agency": "SAMR", "publisher.province": "33"}),
        _lead(make_lead, **{"subject.phones": ["13900000002"], "publisher.agency": "GACC",
                            "publisher.province": "44"}),
        _lead(make_lead, **{"subject.uscc": "91350100M000100Y43", "subject.phones": ["13900000002"],
                            "publisher.agency": "CAC", "publisher.province": "11"}),
    ]
    ordered = [leads[i] for i in order]
    store = DictStore()
    linker = Linker(store)
    first_case = None
    for lead in ordered:
        n = normalise(lead)
        outcome = linker.link(n.lead, n.domains)
        first_case = first_case or outcome.case.case_id
    case_ids = {linker.case_of(lead.lead_id) for lead in leads}
    assert case_ids == {first_case}, "the case created first survives every merge"
    summary = case_summary(outcome.case)
    assert {(r["agency"], r["province"]) for r in summary["reporters"]} == {("SAMR", "33"), ("GACC", "44"),
                                                                            ("CAC", "11")}


def test_merge_records_merged_from(make_lead) -> None:
    a = _lead(make_lead, **{"subject.phones": ["13800000001"]})
    b = _lead(make_lead, **{"subject.phones": ["13900000002"]})
    c = _lead(make_lead, **{"subject.phones": ["13800000001", "13900000002"]})
    linker = Linker(DictStore())
    ids = [linker.link(normalise(x).lead, normalise(x).domains) for x in (a, b, c)]
    assert ids[2].case.case_id == ids[0].case.case_id
    assert [c.case_id for c in ids[2].absorbed] == [ids[1].case.case_id]
    assert ids[2].case.merged_from == [ids[1].case.case_id]


def test_same_order_same_case_ids(make_lead) -> None:
    leads = [_lead(make_lead, **{"subject.phones": [f"1380000{i:04d}"]}) for i in range(20)]
    assert link_offline(leads) == link_offline(leads)


def test_revision_replaces_facts_and_kinds_are_maxed(make_lead) -> None:
    members = [{"facts": {"sales_amount_fen": 100, "trademark_kinds": 2}},
               {"facts": {"sales_amount_fen": 50, "trademark_kinds": 3, "copies": 7}}]
    facts = aggregate_facts(members)
    got = (facts["sales_amount_fen"], facts["trademark_kinds"], facts["copies"], facts["loss_fen"])
    assert got == (150, 3, 7, None)
    first = _lead(make_lead, **{"subject.phones": ["13800000001"], "facts": {"sales_amount_fen": 100}})
    revised = first.model_copy(update={"revision": 1, "facts": first.facts.model_copy(update={"sales_amount_fen": 40})})
    linker = Linker(DictStore())
    linker.link(normalise(first).lead, [])
    outcome = linker.link(normalise(revised).lead, [])
    assert case_summary(outcome.case)["facts"]["sales_amount_fen"] == 40


def test_shop_pages_of_marketplaces_name_their_shop() -> None:
    assert shop_from_url(canonical_url("https://mall.jd.com/index-1000123.html")) == ("jd", "1000123")
    assert shop_from_url(canonical_url("https://mobile.yangkeduo.com/mall_page.html?mall_id=55")) == ("pinduoduo", "55")
    assert shop_from_url(canonical_url("https://item.taobao.com/item.htm?id=3")) is None


def test_one_canonical_form_per_platform_shop(make_lead) -> None:
    """`taobao:TB525465088` and `taobao:525465088` are one shop: one identifier, one case, one chip on the page."""
    assert canonical_shop_id("taobao", "TB525465088") == "525465088"
    assert canonical_shop_id("taobao", "tb-525465088") == canonical_shop_id("taobao", "shop525465088") == "525465088"
    assert canonical_shop_id("jd", "JD1000123") == "1000123" and canonical_shop_id("pinduoduo", "PDD55") == "55"
    assert canonical_shop_id("douyin", "GceCTPIk") == "GceCTPIk"  # not numeric: kept as written, case and all
    assert canonical_shop_id("taobao", "TB52x") == "TB52x"  # not a prefixed number: kept
    a = _lead(make_lead, **{"online.platform": "淘宝", "online.shop_id": "TB525465088",
                            "online.urls": ["https://shop525465088.taobao.com/"]})
    assert [k for k in strong_identifiers(normalise(a).lead, normalise(a).domains) if k.startswith("shop:")] == [
        "shop:taobao:525465088"]
    b = _lead(make_lead, **{"online.platform": "Taobao", "online.shop_id": "525465088"})
    assert len(_cases([a, b])) == 1


def test_icp_filing_is_a_strong_identifier_of_its_filing_subject(make_lead) -> None:
    a = _lead(make_lead, **{"online.icp_filings": ["浙ICP备2023012345号-2"]})
    assert "icp:浙ICP备2023012345号" in strong_identifiers(normalise(a).lead, normalise(a).domains)
    assert normalise(a).lead.online.icp_filings == ["浙ICP备2023012345号-2"]
    b = _lead(make_lead, **{"online.icp_filings": ["浙ICP备2023012346号-2"]})
    assert len(_cases([a, b])) == 2


def test_v2_facts_and_conduct_aggregate(make_lead) -> None:
    a = _lead(make_lead, **{"facts": {"labels_held": 10, "labels_made_by": "OTHERS", "patents": 2,
                                      "mark_use": "GOODS"},
                            "conduct_from": "2024-01-01", "conduct_to": "2024-02-01", "police_measures_needed": True,
                            "prior_penalties": [{"decided_on": "2023-01-01", "decided_by": "某局",
                                                 "violation": "ART_213"}]})
    b = _lead(make_lead, **{"facts": {"labels_held": 5, "patents": 1, "mark_use": "SERVICES",
                                      "rights_holder_bankrupt": True}, "conduct_from": "2023-06-01"})
    facts = aggregate_facts([{"facts": x.facts.model_dump(exclude_none=True)} for x in (a, b)])
    assert (facts["labels_held"], facts["patents"], facts["labels_made_by"]) == (15, 2, "OTHERS")
    assert (facts["mark_use"], facts["rights_holder_bankrupt"]) == ("ANY", True)
    shared = {"uscc": "91350100M000100Y43"}
    one = Linker(DictStore())
    one.link(normalise(a.model_copy(update={"subject": a.subject.model_copy(update=shared)})).lead, [])
    summary = case_summary(one.link(
        normalise(b.model_copy(update={"subject": b.subject.model_copy(update=shared)})).lead, []).case)
    assert (summary["conduct_from"], summary["conduct_to"]) == ("2023-06-01", "2024-02-01")
    assert summary["police_measures_needed"] is True
    assert summary["prior_penalties"] == [{"decided_by": "某局", "decided_on": "2023-01-01", "kind": "ADMINISTRATIVE",
                                           "violation": "ART_213"}]
