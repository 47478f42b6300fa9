"""Public disclosure (信息公开), pure: what a public record holds, who is named, how statistics count."""

from __future__ import annotations

from datetime import UTC, datetime

from leadbus.processors.core.disclosure import (
    STAT_FIELDS,
    csv_rows,
    disclosed_record,
    disclosure_id,
    ip_rights,
    public_case,
    statistics,
    statistics_chart,
    statistics_svg,
    statistics_total,
    subject_type,
)

AT = datetime(2026, 3, 31, 20, 0, tzinfo=UTC)  # 1 April in China Standard Time


def _case(identifiers: list[tuple[str, str]], name: str, handling: str = "OPEN", **extra: object) -> dict:
    return {"case_id": "CASE-0000000000000001", "identifiers": [{"kind": k, "value": v} for k, v in identifiers],
            "suspect_name": name, "suspect_province": "33", "violations": ["ART_214", "ART_140"],
            "categories": ["FOOD", "APPAREL_FOOTWEAR"], "reporters": [{"agency": "SAMR", "province": "33"}],
            "handling": handling, "merged_into": None, **extra}


def test_a_natural_persons_record_holds_no_personal_data() -> None:
    case = public_case(_case([("rid", "330106198001010128"), ("phone", "+8613800138000"),
                              ("acct", "6222020200112233445")], "王某某"))
    record = disclosed_record("CASE-0000000000000001", case, "COMPLETED", AT, publicly_listed=True)
    assert record is not None
    text = repr(record)
    for secret in ("330106198001010128", "+8613800138000", "6222020200112233445", "王某某", "CASE-"):
        assert secret not in text
    assert record["subject_type"] == "NATURAL_PERSON" and record["enterprise_name"] is None
    assert record["closed_month"] == "2026-04" and record["outcome"] == "TRANSFERRED_TO_PUBLIC_SECURITY"
    assert record["ip_right"] == "TRADEMARK" and record["ip_rights"] == ["TRADEMARK", "COUNTERFEIT_GOODS"]
    assert record["goods_category"] == "APPAREL_FOOTWEAR"
    assert record["disclosure_id"] == disclosure_id("CASE-0000000000000001")


def test_an_enterprise_is_named_only_when_publicly_listed_and_its_case_is_open_handling() -> None:
    ids = [("uscc", "91330100M000100Y4T"), ("shop", "taobao:1")]
    case = public_case(_case(ids, "杭州某某有限公司"))
    assert disclosed_record("C", case, "CLOSED_NOT_FILED", AT, publicly_listed=False)["enterprise_name"] is None
    assert disclosed_record("C", case, "CLOSED_NOT_FILED", AT, publicly_listed=True)["enterprise_name"] == \
        "杭州某某有限公司"
    restricted = public_case(_case(ids, "杭州某某有限公司", handling="RESTRICTED"))
    assert disclosed_record("C", restricted, "COMPLETED", AT, publicly_listed=True)["enterprise_name"] is None


def test_only_closing_phases_disclose() -> None:
    case = public_case(_case([("uscc", "91330100M000100Y4T")], "某公司"))
    for phase in ("ASSESSED", "FILED", "TRANSFERRED", "NOT_FILED", "RETURNED"):
        assert disclosed_record("C", case, phase, AT, publicly_listed=False) is None


def test_subject_types_and_ip_rights() -> None:
    assert subject_type(["uscc:1", "rid:2"]) == "ENTERPRISE"
    assert subject_type(["rid:2", "phone:3"]) == "NATURAL_PERSON"
    assert subject_type(["shop:jd:1"]) == "ONLINE_SELLER"
    assert subject_type(["phone:3"]) == "UNKNOWN"
    assert ip_rights([]) == ["OTHER"]
    assert ip_rights(["ART_219_1", "ART_217", "OTHER"]) == ["COPYRIGHT", "TRADE_SECRET", "OTHER"]


def test_statistics_count_each_case_once_and_add_up() -> None:
    records = [{"closed_month": m, "province": p, "ip_right": r, "goods_category": c}
               for m, p, r, c in [("2026-03", "33", "TRADEMARK", "FOOD"), ("2026-03", "33", "TRADEMARK", "FOOD"),
                                  ("2026-03", "44", "PATENT", "DRUGS"), ("2026-04", "33", "TRADEMARK", "FOOD")]]
    stats = statistics(records)
    assert sum(row["cases"] for row in stats) == len(records)
    assert stats[0] == {"period": "2026-03", "province": "33", "ip_right": "TRADEMARK", "goods_category": "FOOD",
                        "cases": 2}
    rows = csv_rows(stats, STAT_FIELDS)
    assert rows[0] == list(STAT_FIELDS) and len(rows) == 4


def test_the_chart_draws_every_case_once() -> None:
    import re

    stats = [{"period": "2026-03", "province": "33", "ip_right": "TRADEMARK", "goods_category": "FOOD", "cases": 2},
             {"period": "2026-03", "province": "44", "ip_right": "TRADEMARK", "goods_category": "DRUGS", "cases": 1},
             {"period": "2026-04", "province": "33", "ip_right": "PATENT", "goods_category": "FOOD", "cases": 4}]
    page = statistics_chart(stats, title="<script>x</script>")
    bars = re.findall(r'data-month="([^"]+)" data-right="([^"]+)" data-cases="(\d+)"', page)
    assert sorted(bars) == [("2026-03", "TRADEMARK", "3"), ("2026-04", "PATENT", "4")]
    assert "<script>" not in page and "7 closed cases" in page


def test_the_chart_never_turns_a_hostile_month_into_markup() -> None:
    stats = [{"period": '2026-03"><script>alert(1)</script>', "province": "33", "ip_right": "NOT_A_RIGHT",
              "goods_category": "FOOD", "cases": 2},
             {"period": "2026-04", "province": "33", "ip_right": "PATENT", "goods_category": "FOOD", "cases": 1}]
    svg = statistics_svg(stats)
    assert "<script>" not in svg and svg.startswith("<svg") and svg.endswith("</svg>")
    assert statistics_total(stats) == 3
