"""Provinces, regions and the address codes used by generators."""

from __future__ import annotations

import datetime

import pytest

from leadbus.geography import (
    NATIONAL,
    PROVINCES,
    REGIONS,
    capital_prefecture_code,
    county_codes,
    is_province_code,
    is_publisher_province,
    province_of_division,
    regions_of,
)
from leadbus.identifiers import check_uscc, make_resident_id, make_uscc, normalize_resident_id

# The 34 codes of reference/domain-facts.yaml, transcribed independently of the module.
EXPECTED_CODES = {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
    "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
}  # fmt: skip


def test_all_34_province_codes_and_nothing_else() -> None:
    assert set(PROVINCES) == EXPECTED_CODES
    assert len(PROVINCES) == 34
    assert all(code == province.code for code, province in PROVINCES.items())


def test_national_is_a_publisher_province_but_not_a_province() -> None:
    assert NATIONAL == "00"
    assert not is_province_code("00")
    assert is_publisher_province("00")
    assert is_publisher_province("44")
    assert is_province_code("44")


@pytest.mark.parametrize("code", ["", "0", "10", "99", "440000", "44 ", "CN-GD", None])
def test_invalid_province_codes(code: str | None) -> None:
    assert not is_province_code(code)
    assert not is_publisher_province(code)


def test_only_taiwan_hong_kong_macao_are_outside_mainland_enforcement() -> None:
    assert {code for code, province in PROVINCES.items() if not province.mainland} == {"71", "81", "82"}


def test_names_that_are_easy_to_confuse() -> None:
    assert (PROVINCES["14"].name_zh, PROVINCES["14"].name_en, PROVINCES["14"].short_zh) == ("山西省", "Shanxi", "晋")
    assert (PROVINCES["61"].name_zh, PROVINCES["61"].name_en, PROVINCES["61"].short_zh) == ("陕西省", "Shaanxi", "陕")
    assert PROVINCES["44"].short_zh == "粤"
    assert PROVINCES["15"].name_en == "Inner Mongolia"
    assert PROVINCES["82"].name_zh == "澳门特别行政区"


def test_region_memberships() -> None:
    assert set(REGIONS) == {"jjj", "yrd", "pprd"}
    assert REGIONS["jjj"].members == {"11", "12", "13"}
    assert REGIONS["yrd"].members == {"31", "32", "33", "34"}  # Anhui is in the 2019 definition
    assert REGIONS["pprd"].members == {"35", "36", "43", "44", "45", "46", "51", "52", "53", "81", "82"}
    assert "50" not in REGIONS["pprd"].members  # Chongqing is not in 9+2
    assert (REGIONS["pprd"].name_zh, REGIONS["yrd"].name_zh, REGIONS["jjj"].name_zh) == ("泛珠三角", "长三角", "京津冀")
    assert all(code == region.code for code, region in REGIONS.items())
    assert all(member in PROVINCES for region in REGIONS.values() for member in region.members)


@pytest.mark.parametrize(
    ("provinces", "expected"),
    [
        (("11",), {"jjj"}),
        (("44", "31"), {"pprd", "yrd"}),
        (("13", "34", "81"), {"jjj", "yrd", "pprd"}),
        (("50",), set()),
        (("00",), set()),
        ((None, "34"), {"yrd"}),
        ((None,), set()),
        ((), set()),
    ],
)
def test_regions_of(provinces: tuple[str | None, ...], expected: set[str]) -> None:
    assert regions_of(*provinces) == expected


def test_capital_codes() -> None:
    assert capital_prefecture_code("11") == "110105"
    assert capital_prefecture_code("44") == "440100"
    assert "440106" in county_codes("44")  # 天河区
    assert capital_prefecture_code("35") == "350100"


@pytest.mark.parametrize("province", sorted(EXPECTED_CODES))
def test_address_codes_belong_to_their_province(province: str) -> None:
    codes = (capital_prefecture_code(province), *county_codes(province))
    assert len(county_codes(province)) >= 1
    for code in codes:
        assert len(code) == 6
        assert code.isdigit()
        assert province_of_division(code) == province


@pytest.mark.parametrize("province", sorted(EXPECTED_CODES))
def test_address_codes_make_valid_identifiers(province: str) -> None:
    for region in county_codes(province):
        resident_id = make_resident_id(region, datetime.date(1985, 6, 15), 123)
        assert normalize_resident_id(resident_id) == resident_id
        assert check_uscc(make_uscc("91", region, "M000100Y4")).checksum_ok


@pytest.mark.parametrize("code", ["00", "99", "4", "CN-GD", ""])
def test_unknown_province_in_address_lookups(code: str) -> None:
    with pytest.raises(ValueError, match="not a province code"):
        county_codes(code)
    with pytest.raises(ValueError, match="not a province code"):
        capital_prefecture_code(code)


@pytest.mark.parametrize(
    ("code6", "province"),
    [
        ("110105", "11"),
        ("440524", "44"),
        ("810000", "81"),
        ("830000", "71"),  # Taiwan residents' residence permits
        ("710000", "71"),
        ("990000", None),
        ("000000", None),
        ("11010", None),
        ("11010X", None),
        ("１１０１０５", None),
    ],
)
def test_province_of_division(code6: str, province: str | None) -> None:
    assert province_of_division(code6) == province
