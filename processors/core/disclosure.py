"""Public disclosure of closed cases (信息公开) and their statistics, pure.

A case is closed for disclosure when its handover reaches a phase in `CLOSING_PHASES` (the agency's duty in
it is done). Its public record is built from a short list of fields that carry no personal data — the
province, the IP right and goods category, the articles, the outcome, the month — never from the case's
identifiers, names, phones, accounts, addresses or free text. The subject's name appears only when the
subject is an enterprise (it has a 统一社会信用代码) and an agency's public listing decision names it on the
blacklist (`leadbus.blacklist`, LISTED, OPEN handling): a natural person is never named.

Statistics count each closed case once, under its primary IP right × goods category × province × month
(`statistics`), in the shape both customs and market regulators publish: one row per cell, with the period
as `YYYY-MM` and the province as its GB/T 2260 code.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from leadbus.processors.core.deadlines import CST

#: Handover phases that close the agency's case, and the public outcome each stands for.
CLOSING_PHASES: Mapping[str, str] = {
    "COMPLETED": "TRANSFERRED_TO_PUBLIC_SECURITY",
    "CLOSED_NOT_FILED": "NOT_FILED_BY_PUBLIC_SECURITY",
    "RETURN_ANSWERED": "RETURNED_AND_ANSWERED",
}
#: Criminal Law articles → the IP right (or goods offence) they protect, in the order that picks the primary one.
IP_RIGHTS: Mapping[str, str] = {
    "ART_213": "TRADEMARK", "ART_214": "TRADEMARK", "ART_215": "TRADEMARK",
    "ART_216": "PATENT",
    "ART_217": "COPYRIGHT", "ART_218": "COPYRIGHT",
    "ART_219": "TRADE_SECRET", "ART_219_1": "TRADE_SECRET",
    **{a: "COUNTERFEIT_GOODS" for a in ("ART_140", "ART_141", "ART_142", "ART_142_1", "ART_143", "ART_144",
                                         "ART_145", "ART_146", "ART_147", "ART_148")},
}
_RIGHT_ORDER = ("TRADEMARK", "PATENT", "COPYRIGHT", "TRADE_SECRET", "COUNTERFEIT_GOODS", "OTHER")
STAT_FIELDS = ("period", "province", "ip_right", "goods_category", "cases")
RECORD_FIELDS = ("disclosure_id", "closed_month", "outcome", "province", "ip_right", "goods_category",
                 "ip_rights", "goods_categories", "violations", "subject_type", "enterprise_name", "agencies")


def disclosure_id(case_id: str) -> str:
    """A public reference that does not reveal the bus's case id."""
    return "PUB-" + hashlib.sha256(f"leadbus-disclosure\x00{case_id}".encode()).hexdigest()[:16]


def ip_rights(violations: Iterable[str]) -> list[str]:
    rights = {IP_RIGHTS.get(str(v), "OTHER") for v in violations} or {"OTHER"}
    return sorted(rights, key=_RIGHT_ORDER.index)


def subject_type(identifiers: Iterable[str]) -> str:
    kinds = {i.split(":", 1)[0] for i in identifiers}
    if "uscc" in kinds:
        return "ENTERPRISE"
    if "rid" in kinds:
        return "NATURAL_PERSON"
    if kinds & {"shop", "domain", "icp"}:
        return "ONLINE_SELLER"
    return "UNKNOWN"


def public_case(case: Mapping[str, Any]) -> dict[str, Any]:
    """What the disclosure stage keeps of a case: only the fields a public record may be built from."""
    identifiers = [f"{i['kind']}:{i['value']}" for i in case["identifiers"]]
    kind = subject_type(identifiers)
    return {
        "province": case.get("suspect_province") or "00",
        "violations": sorted({str(v) for v in case["violations"]}),
        "categories": sorted({str(c) for c in case["categories"]}),
        "agencies": sorted({str(r["agency"]) for r in case["reporters"]}),
        "subject_type": kind,
        "handling": str(case["handling"]),
        # a candidate name, used only if the enterprise is publicly listed; never kept for a natural person
        "enterprise_name": str(case["suspect_name"]) if kind == "ENTERPRISE" else None,
        "entity": next((i for i in sorted(identifiers) if i.startswith("uscc:")), None),
        "merged_into": case.get("merged_into"),
    }


def disclosed_record(case_id: str, case: Mapping[str, Any], phase: str, closed_at: datetime,
                     publicly_listed: bool) -> dict[str, Any] | None:
    """The public record of a closed case (None when `phase` does not close it)."""
    outcome = CLOSING_PHASES.get(phase)
    if outcome is None:
        return None
    rights = ip_rights(case["violations"])
    categories = list(case["categories"]) or ["OTHER"]
    named = publicly_listed and case["subject_type"] == "ENTERPRISE" and case["handling"] == "OPEN"
    return {
        "disclosure_id": disclosure_id(case_id),
        "closed_month": closed_at.astimezone(CST).strftime("%Y-%m"),
        "outcome": outcome,
        "province": case["province"],
        "ip_right": rights[0],
        "goods_category": categories[0],
        "ip_rights": rights,
        "goods_categories": categories,
        "violations": list(case["violations"]),
        "subject_type": case["subject_type"],
        "enterprise_name": case["enterprise_name"] if named else None,
        "agencies": list(case["agencies"]),
    }


def statistics(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Closed cases by month × province × primary IP right × primary goods category; each case counted once."""
    counts = Counter((r["closed_month"], r["province"], r["ip_right"], r["goods_category"]) for r in records)
    return [{"period": p, "province": prov, "ip_right": right, "goods_category": cat, "cases": n}
            for (p, prov, right, cat), n in sorted(counts.items())]


def csv_rows(records: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[list[str]]:
    """Rows for a CSV file (lists joined with `;`), header first."""
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return ";".join(str(v) for v in value)
        return str(value)

    return [list(fields), *([cell(r.get(f)) for f in fields] for r in records)]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


CHART_TITLE = "知识产权侵权和假冒伪劣案件 — closed cases"


def statistics_total(stats: Sequence[Mapping[str, Any]]) -> int:
    """The closed cases the statistics count (each case is in exactly one cell)."""
    return sum(int(r["cases"]) for r in stats)


def statistics_svg(stats: Sequence[Mapping[str, Any]]) -> str:
    """The SVG bar chart of closed cases per month, stacked by IP right: the export's page and the live page."""
    colours = {"TRADEMARK": "#1f77b4", "PATENT": "#ff7f0e", "COPYRIGHT": "#2ca02c", "TRADE_SECRET": "#9467bd",
               "COUNTERFEIT_GOODS": "#d62728", "OTHER": "#7f7f7f"}
    by_month: dict[str, Counter[str]] = {}
    for row in stats:
        by_month.setdefault(str(row["period"]), Counter())[str(row["ip_right"])] += int(row["cases"])
    months = sorted(by_month)
    top = max((sum(c.values()) for c in by_month.values()), default=1) or 1
    width, height, bar = 120 + 70 * max(len(months), 1), 320, 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 140}" role="img" '
             f'aria-label="closed cases per month by IP right">']
    for i, month in enumerate(months):
        x, y, label = 60 + 70 * i, float(height), _escape(month)  # the month comes off the bus: never markup
        for right in _RIGHT_ORDER:
            n = by_month[month].get(right, 0)
            if not n:
                continue
            h = n / top * (height - 40)
            y -= h
            parts.append(f'<rect class="bar" data-month="{label}" data-right="{right}" data-cases="{n}" x="{x}" '
                         f'y="{y:.1f}" width="{bar}" height="{h:.1f}" fill="{colours[right]}"><title>{label} {right}: '
                         f'{n}</title></rect>')
        parts.append(f'<text x="{x + bar / 2}" y="{height + 16}" text-anchor="middle" font-size="12">{label}</text>')
        parts.append(f'<text class="month-total" data-month="{label}" x="{x + bar / 2}" y="{y - 4:.1f}" '
                     f'text-anchor="middle" font-size="11">{sum(by_month[month].values())}</text>')
    for j, right in enumerate(_RIGHT_ORDER):
        parts.append(f'<rect x="60" y="{height + 34 + 16 * j}" width="10" height="10" fill="{colours[right]}"/>'
                     f'<text x="76" y="{height + 43 + 16 * j}" font-size="11">{right}</text>')
    parts.append("</svg>")
    return "".join(parts)


def statistics_chart(stats: Sequence[Mapping[str, Any]], title: str = CHART_TITLE) -> str:
    """A static page with the SVG bar chart (`statistics_svg`; no script, no fetch)."""
    return ('<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>leadbus 信息公开 statistics</title>'
            "</head><body><h1>" + _escape(title) + f"</h1><p>{statistics_total(stats)} closed cases; statistics.csv "
            "has every month × province × IP right × goods category cell.</p>" + statistics_svg(stats)
            + "</body></html>\n")
