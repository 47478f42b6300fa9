"""Current agency codes, abolished ones, and the lead categories."""

from __future__ import annotations

import pytest

from leadbus.agencies import (
    ABOLISHED,
    AGENCIES,
    ALIASES,
    CATEGORIES,
    agency_code_problem,
    is_agency_code,
    is_category_code,
)

CURRENT = {
    "SAMR", "MPS", "GACC", "NCAC", "CNIPA", "NMPA", "CAC", "SPB", "MIIT", "MARA", "MCT", "PBC", "SAT",
    "NFGA", "SPC", "SPP", "MOFCOM", "NDRC", "NHC", "NRTA", "NPPA", "CFA", "CCPIT", "CPLAC", "NLGIPR_O",
}  # fmt: skip
GONE = {"SAIC", "AQSIQ", "CFDA", "SAPPRFT", "SIPO", "MOA", "MOC", "SFA", "NHFPC", "CCMPS_O"}


def test_exactly_the_current_agencies() -> None:
    assert set(AGENCIES) == CURRENT
    assert all(code == agency.code for code, agency in AGENCIES.items())
    assert all(agency.name_zh and agency.name_en for agency in AGENCIES.values())


def test_no_abolished_code_is_current() -> None:
    assert set(ABOLISHED) == GONE
    assert not GONE & set(AGENCIES)
    assert not any(is_agency_code(code) for code in GONE)


def test_every_successor_is_a_current_agency() -> None:
    assert all(successor in AGENCIES for successors in ABOLISHED.values() for successor in successors)
    assert all(target in AGENCIES for target in ALIASES.values())


def test_successors_from_the_2018_reform() -> None:
    assert ABOLISHED["SAIC"] == ("SAMR", "CNIPA")
    assert set(ABOLISHED["AQSIQ"]) == {"SAMR", "GACC", "CNIPA"}
    assert set(ABOLISHED["CFDA"]) == {"SAMR", "NMPA"}
    assert set(ABOLISHED["SAPPRFT"]) == {"NRTA", "NPPA", "NCAC", "CFA"}
    assert ABOLISHED["SIPO"] == ("CNIPA",)


def test_names() -> None:
    assert AGENCIES["SAMR"].name_zh == "国家市场监督管理总局"
    assert AGENCIES["NCAC"].name_zh == "国家版权局"
    assert AGENCIES["CNIPA"].name_en == "China National Intellectual Property Administration"
    assert AGENCIES["NLGIPR_O"].name_zh == "全国打击侵权假冒工作领导小组办公室"


@pytest.mark.parametrize("code", ["SAMR", "MPS", "NLGIPR_O", "CPLAC"])
def test_current_codes_are_accepted(code: str) -> None:
    assert is_agency_code(code)
    assert agency_code_problem(code) is None


@pytest.mark.parametrize("code", ["samr", "PBOC", "STA", "NLGIPR-O", "", "SAIC", None])
def test_other_codes_are_refused(code: str | None) -> None:
    assert not is_agency_code(code)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("SAIC", "SAIC was abolished in 2018; use SAMR or CNIPA"),
        ("CFDA", "CFDA was abolished in 2018; use SAMR or NMPA"),
        ("MOA", "MOA was abolished in 2018; use MARA"),
        ("SIPO", "SIPO was reorganised in 2018; use CNIPA"),
        ("PBOC", "PBOC is not the bus's code; use PBC"),
        ("samr", "agency codes are upper case; use SAMR"),
        ("ACME", "unknown agency code 'ACME'"),
    ],
)
def test_agency_code_problem_messages(code: str, message: str) -> None:
    assert agency_code_problem(code) == message


def test_twenty_categories_with_labels() -> None:
    assert len(CATEGORIES) == 20
    assert list(CATEGORIES)[:3] == ["AGRI_INPUTS", "FOOD", "DRUGS"]
    assert CATEGORIES["HAZARDOUS_CHEMICALS"] == "易制爆危险化学品"
    assert CATEGORIES["FILM_TV"] == "影视"
    assert CATEGORIES["LITERATURE"] == "网络文学"
    assert CATEGORIES["OTHER"] == "其他"
    assert is_category_code("PATENTED_PRODUCTS")
    assert not is_category_code("食品")
    assert not is_category_code("food")
    assert not is_category_code(None)
