"""Routing to jurisdictions, regions and channels; handling enforced; masking."""

from __future__ import annotations

from typing import Any

import pytest

from leadbus.processors.core.routing import (
    CHANNEL_NO_LONGER_APPLIES,
    HANDLING_CHANGED,
    MERGED,
    PROVINCES_CHANGED,
    Reached,
    Route,
    bulletin,
    mask_account,
    mask_person_name,
    mask_phone,
    mask_resident_id,
    route_change,
    routes,
    withdrawal_record,
)


def _case(**overrides: Any) -> dict[str, Any]:
    case = {
        "case_id": "CASE-0000000000000001", "version": 1, "members": ["a"], "suspect_name": "鑫盛贸易有限公司",
        "reporters": [{"agency": "SAMR", "province": "33"}], "suspect_province": "33",
        "identifiers": [{"kind": "uscc", "value": "91350100M000100Y43"}], "categories": ["FOOD"],
        "violations": ["ART_140"], "facts": {"sales_amount_fen": 100}, "handling": "OPEN", "share_with": [],
        "cross_border": False, "first_reported_at": "2026-11-01T00:00:00+00:00",
        "last_reported_at": "2026-11-01T00:00:00+00:00", "merged_into": None,
    }
    case.update(overrides)
    return case


def _topics(case: dict[str, Any]) -> set[str]:
    return {r.topic for r in routes(case)}


@pytest.mark.parametrize(("province", "region"), [
    ("11", "jjj"), ("12", "jjj"), ("13", "jjj"), ("31", "yrd"), ("32", "yrd"), ("33", "yrd"), ("34", "yrd"),
    ("35", "pprd"), ("36", "pprd"), ("43", "pprd"), ("44", "pprd"), ("45", "pprd"), ("46", "pprd"), ("51", "pprd"),
    ("52", "pprd"), ("53", "pprd"), ("81", "pprd"), ("82", "pprd"),
])
def test_every_member_province_reaches_its_region(province: str, region: str) -> None:
    topics = _topics(_case(suspect_province=province, reporters=[{"agency": "SAMR", "province": province}]))
    assert f"leadbus.region.{region}" in topics
    if province in ("81", "82"):  # a liaison channel, never a jurisdiction topic
        assert f"leadbus.liaison.{province}" in topics and f"leadbus.jurisdiction.{province}" not in topics
    else:
        assert f"leadbus.jurisdiction.{province}" in topics
    assert len([t for t in topics if t.startswith("leadbus.region.")]) == 1


def test_reporting_and_suspect_provinces_in_two_regions() -> None:
    case = _case(suspect_province="44", reporters=[{"agency": "SAMR", "province": "11"}])
    assert _topics(case) >= {"leadbus.region.jjj", "leadbus.region.pprd", "leadbus.jurisdiction.44"}
    assert "leadbus.jurisdiction.11" not in _topics(case), "jurisdiction is the suspect's province only"


def test_outside_any_region_and_national_publishers() -> None:
    case = _case(suspect_province="62", reporters=[{"agency": "CAC", "province": "00"}])
    assert _topics(case) == {"leadbus.jurisdiction.62"}
    unknown = _case(suspect_province=None, reporters=[{"agency": "CAC", "province": "00"},
                                                      {"agency": "SAMR", "province": "35"}])
    assert _topics(unknown) == {"leadbus.jurisdiction.35", "leadbus.region.pprd"}


def test_hong_kong_and_macau_are_pan_pearl_river_delta() -> None:
    for province in ("81", "82"):
        assert "leadbus.region.pprd" in _topics(_case(suspect_province=province))


@pytest.mark.parametrize("sar", ["81", "82", "71"])
def test_hong_kong_macao_and_taiwan_are_liaison_channels_not_jurisdictions(sar: str) -> None:
    """Reference facts: mainland enforcement does not extend to 71/81/82 — liaison targets, not provinces."""
    case = _case(suspect_province=sar, reporters=[{"agency": "GACC", "province": "44"}])
    topics = _topics(case)
    assert f"leadbus.liaison.{sar}" in topics
    assert not any(t.startswith("leadbus.jurisdiction.") and t != "leadbus.jurisdiction.44" for t in topics)
    assert "leadbus.jurisdiction.44" in topics  # the mainland province that reported it acts on its part
    assert _topics(_case(suspect_province=sar, reporters=[{"agency": "CAC", "province": "00"}])) >= {
        f"leadbus.liaison.{sar}"}
    # RESTRICTED and CONFIDENTIAL never reach another jurisdiction's authorities
    assert not any("liaison" in t for t in _topics({**case, "handling": "RESTRICTED", "share_with": ["pprd"]}))
    assert not any("liaison" in t for t in _topics({**case, "handling": "CONFIDENTIAL", "share_with": ["GACC"]}))


def test_channels_customs_payments_takedown() -> None:
    case = _case(cross_border=True, identifiers=[{"kind": "acct", "value": "6222021234567890128"},
                                                 {"kind": "shop", "value": "taobao:1"}])
    assert _topics(case) >= {"leadbus.channel.customs", "leadbus.channel.payments", "leadbus.takedown.notices"}


def test_restricted_goes_only_where_the_publisher_allows() -> None:
    case = _case(handling="RESTRICTED", share_with=["yrd", "PBC"], cross_border=True,
                 identifiers=[{"kind": "acct", "value": "6222021234567890128"}, {"kind": "domain", "value": "x.cn"}])
    assert _topics(case) == {"leadbus.region.yrd", "leadbus.channel.payments"}


def test_confidential_goes_nowhere_beyond_named_agencies() -> None:
    case = _case(handling="CONFIDENTIAL", share_with=["GACC", "yrd"], cross_border=True,
                 identifiers=[{"kind": "shop", "value": "taobao:1"}])
    assert _topics(case) == {"leadbus.channel.customs"}
    assert _topics(_case(handling="CONFIDENTIAL")) == set()


def test_masking_rules() -> None:
    assert mask_resident_id("11010519491231002X") == "110105********002X"
    assert mask_phone("+8613812345678") == "+86138****5678"
    assert mask_account("6222021234567890128") == "6222***********0128"
    assert mask_account("seller@example.com") == "s****************m"
    assert mask_person_name("张三丰") == "张**"
    assert mask_person_name("鑫盛贸易有限公司") == "鑫盛贸易有限公司"


def test_bulletin_never_carries_full_personal_data() -> None:
    case = _case(suspect_name="李四", identifiers=[{"kind": "rid", "value": "11010519491231002X"},
                                                  {"kind": "phone", "value": "+8613812345678"},
                                                  {"kind": "acct", "value": "6222021234567890128"}])
    text = repr(bulletin(case, "yrd"))
    for secret in ("11010519491231002X", "13812345678", "6222021234567890128", "李四"):
        assert secret not in text
    assert "李*" in text


def test_takedown_targets_are_shops_and_independent_sites() -> None:
    from leadbus.processors.core.routing import takedown_targets

    case = _case(identifiers=[{"kind": "shop", "value": "taobao:123"}, {"kind": "domain", "value": "fake.cn"},
                              {"kind": "phone", "value": "+8613812345678"}])
    assert takedown_targets(case) == [
        {"platform": "taobao", "shop_id": "123", "urls": []},
        {"platform": "fake.cn", "shop_id": None, "urls": ["https://fake.cn/"]},
    ]


# -- withdrawals: need-to-know over time ---------------------------------------------------------

def _reached(case: dict[str, Any]) -> Reached:
    return Reached(case["version"], tuple(routes(case)))


def _withdrawn(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    change = route_change(_reached(before), after)
    return {w.route.topic: w.reason for w in change.withdraw}


def test_a_first_version_withdraws_nothing_and_an_unchanged_one_neither() -> None:
    case = _case(suspect_province="44", reporters=[{"agency": "SAMR", "province": "44"}])
    first = route_change(None, case)
    assert first.withdraw == [] and {r.topic for r in first.send} == {"leadbus.jurisdiction.44", "leadbus.region.pprd"}
    assert _withdrawn(case, {**case, "version": 2}) == {}


def test_open_revised_to_confidential_is_withdrawn_everywhere_it_went() -> None:
    v1 = _case(suspect_province="44", reporters=[{"agency": "SAMR", "province": "44"}],
               identifiers=[{"kind": "shop", "value": "taobao:1"}])
    v2 = {**v1, "version": 2, "handling": "CONFIDENTIAL", "share_with": ["MPS"]}
    assert route_change(_reached(v1), v2).send == []
    assert _withdrawn(v1, v2) == {"leadbus.jurisdiction.44": HANDLING_CHANGED, "leadbus.region.pprd": HANDLING_CHANGED,
                                  "leadbus.takedown.notices": HANDLING_CHANGED}


def test_a_restricted_lead_joining_withdraws_the_regions_not_listed() -> None:
    v1 = _case(suspect_province="13", reporters=[{"agency": "SAMR", "province": "13"},
                                                 {"agency": "SAMR", "province": "44"}])
    assert {"leadbus.region.jjj", "leadbus.region.pprd", "leadbus.jurisdiction.13"} <= _topics(v1)
    v2 = {**v1, "version": 2, "handling": "RESTRICTED", "share_with": ["jjj"],
          "reporters": [*v1["reporters"], {"agency": "MPS", "province": "13"}]}
    assert {r.topic for r in route_change(_reached(v1), v2).send} == {"leadbus.region.jjj"}
    assert _withdrawn(v1, v2) == {"leadbus.region.pprd": HANDLING_CHANGED,
                                  "leadbus.jurisdiction.13": HANDLING_CHANGED}


def test_a_corrected_province_withdraws_the_old_jurisdiction_and_region() -> None:
    v1 = _case(suspect_province="44", reporters=[{"agency": "SAMR", "province": "33"}])
    v2 = {**v1, "version": 2, "suspect_province": "13"}
    assert {r.topic for r in route_change(_reached(v1), v2).send} == {
        "leadbus.jurisdiction.13", "leadbus.region.jjj", "leadbus.region.yrd"}
    assert _withdrawn(v1, v2) == {"leadbus.jurisdiction.44": PROVINCES_CHANGED,
                                  "leadbus.region.pprd": PROVINCES_CHANGED}


def test_a_merged_case_is_withdrawn_from_everywhere_naming_its_survivor() -> None:
    v1 = _case(cross_border=True)
    closing = {**v1, "merged_into": "CASE-00000000000000KEEP"}  # an absorbed case's last event keeps its version
    change = route_change(_reached(v1), closing)
    assert change.send == [] and not change.stale
    assert set(_withdrawn(v1, closing).values()) == {MERGED}
    assert set(_withdrawn(v1, closing)) == _topics(v1)
    unknown = route_change(None, closing)  # routed before routing remembered anything
    assert {w.route.topic for w in unknown.withdraw} == _topics(v1) and unknown.send == []
    record = withdrawal_record(closing, change.withdraw[0])
    assert record["merged_into"] == "CASE-00000000000000KEEP" and record["version"] == 1


def test_a_split_and_a_channel_that_no_longer_applies() -> None:
    v1 = _case(suspect_province="33", reporters=[{"agency": "SAMR", "province": "33"},
                                                 {"agency": "SAMR", "province": "44"}], cross_border=True,
               identifiers=[{"kind": "acct", "value": "6222021234567890128"}])
    v2 = {**v1, "version": 2, "reporters": [{"agency": "SAMR", "province": "33"}], "cross_border": False,
          "identifiers": []}
    assert _withdrawn(v1, v2) == {"leadbus.region.pprd": PROVINCES_CHANGED,
                                  "leadbus.channel.customs": CHANNEL_NO_LONGER_APPLIES,
                                  "leadbus.channel.payments": CHANNEL_NO_LONGER_APPLIES}


def test_a_case_that_comes_back_is_sent_again_and_stale_versions_change_nothing() -> None:
    v1 = _case(suspect_province="44", reporters=[{"agency": "SAMR", "province": "44"}])
    v2 = {**v1, "version": 2, "handling": "CONFIDENTIAL"}
    v3 = {**v1, "version": 3}  # the confidential lead was revised back to OPEN
    after_v2 = Reached(2, tuple(route_change(_reached(v1), v2).send))
    assert after_v2.routes == ()
    back = route_change(after_v2, v3)
    assert back.withdraw == [] and {r.topic for r in back.send} == {"leadbus.jurisdiction.44", "leadbus.region.pprd"}
    stale = route_change(after_v2, v1)
    assert stale.stale and stale.send == [] and stale.withdraw == []


def test_what_routing_remembers_reads_back_equal() -> None:
    reached = Reached(7, (Route("region", "leadbus.region.yrd", "yrd"), Route("liaison", "leadbus.liaison.81", "81")))
    assert Reached.from_json(reached.to_json()) == reached
    assert "CASE" not in reached.to_json()  # where it went, not what it says


def test_a_withdrawal_carries_no_case_data() -> None:
    case = _case(suspect_name="王小明", identifiers=[{"kind": "rid", "value": "11010519491231002X"}],
                 facts={"sales_amount_fen": 123456789})
    change = route_change(_reached(case), {**case, "version": 2, "handling": "CONFIDENTIAL"})
    for w in change.withdraw:
        record = withdrawal_record({**case, "version": 2}, w)
        assert set(record) == {"case_id", "version", "reason", "channel", "recipient", "topic", "merged_into"}
        text = repr(record)
        for secret in ("王小明", "11010519491231002X", "123456789", "FOOD", "ART_140"):
            assert secret not in text


# -- masking: personal data vs public enterprise identifiers ----------------------------------------

def test_enterprise_identifiers_are_shown_personal_data_masked() -> None:
    case = _case(suspect_name="杭州美丽日化有限公司",
                 identifiers=[{"kind": "uscc", "value": "91330106MA2H000001"},
                              {"kind": "icp", "value": "浙ICP备12345678号-1"},
                              {"kind": "shop", "value": "taobao:525465088"},
                              {"kind": "rid", "value": "11010519491231002X"},
                              {"kind": "phone", "value": "+8613812345678"},
                              {"kind": "acct", "value": "6222021234567890128"}])
    shown = {i["kind"]: i["value"] for i in bulletin(case, "yrd")["identifiers"]}
    assert shown == {"uscc": "91330106MA2H000001", "icp": "浙ICP备12345678号-1", "shop": "taobao:525465088",
                     "rid": "110105********002X", "phone": "+86138****5678", "acct": "6222***********0128"}
    assert bulletin(case, "yrd")["suspect_name"] == "杭州美丽日化有限公司"  # a company's name is public


def test_a_natural_persons_name_is_masked_even_without_an_id_number() -> None:
    phone_only = _case(suspect_name="李四", identifiers=[{"kind": "phone", "value": "+8613812345678"}])
    assert bulletin(phone_only, "yrd")["suspect_name"] == "李*"
    shop = _case(suspect_name="美丽日化旗舰店有限公司", identifiers=[{"kind": "shop", "value": "taobao:1"}])
    assert bulletin(shop, "yrd")["suspect_name"] == "美丽日化旗舰店有限公司"
