"""When a case must be handed over and what the handover records (processors/core/transfer.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from leadbus.processors.core.transfer import ARTICLE_149_COVERS, assess_transfer, conduct_of, violations_to_assess

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _case(violations: list[str], **facts: Any) -> dict[str, Any]:
    return {"violations": violations, "facts": facts, "first_reported_at": datetime(2026, 3, 1, tzinfo=UTC),
            "conduct_from": None, "conduct_to": None, "prior_penalties": [], "police_measures_needed": False}


def test_article_149_adds_article_140_to_the_goods_offences_it_covers_once() -> None:
    assert violations_to_assess(["ART_146"]) == ["ART_146", "ART_140"]
    assert violations_to_assess(["ART_146", "ART_140"]) == ["ART_146", "ART_140"]
    assert violations_to_assess(["ART_213"]) == ["ART_213"]
    assert "ART_140" not in ARTICLE_149_COVERS


def test_a_goods_offence_short_of_its_own_threshold_is_handed_over_as_article_140_at_5万_sales() -> None:
    below = assess_transfer(_case(["ART_146"], sales_amount_fen=4_999_999), NOW)
    at = assess_transfer(_case(["ART_146"], sales_amount_fen=5_000_000), NOW)
    assert below is None
    assert at is not None and "140" in at.assessment
    assert at.economic is False


def test_a_v1_case_says_the_report_date_stood_in_for_the_conduct() -> None:
    opening = assess_transfer(_case(["ART_140"], sales_amount_fen=6_000_000), NOW)
    assert opening is not None
    assert opening.assessment.endswith("[conduct 2026-03-01: not reported (v1 lead), report date used]")


def test_a_v2_case_is_judged_by_its_conduct_period() -> None:
    case = _case(["ART_213"]) | {"conduct_from": date(2024, 6, 1), "conduct_to": date(2024, 9, 30)}
    conduct, options, known = conduct_of(case, NOW)
    assert (conduct, options["conduct_to"], known) == (date(2024, 6, 1), date(2024, 9, 30), True)
    assert options["handled_on"] == NOW.date()


def test_an_ip_crime_is_an_economic_crime_for_the_police_review_periods() -> None:
    opening = assess_transfer(_case(["ART_213"], illegal_business_amount_fen=100_000_000), NOW)
    assert opening is not None and opening.economic
