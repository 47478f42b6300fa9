"""Routing to jurisdictions, regions and channels; handling enforced; masking."""

from __future__ import annotations

from typing import Any

import pytest

from leadbus.processors.core.routing import (
    bulletin,
    mask_account,
    mask_person_name,
    mask_phone,
    mask_resident_id,
    routes,
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
