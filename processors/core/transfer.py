"""Whether a case must be handed over to public security (移送), and on what grounds: the rules before the clock.

Decree 310 Art.3 (as revised in 2020): an administrative agency hands a case over when the facts reach a
criminal threshold, when the conduct itself is an offence, or — ¶2 — on reasonable suspicion where police
powers are needed to establish the amount. The rules are those in force at the time of the conduct (Criminal
Law Art.12; the 2001 两高 rule on the temporal effect of interpretations), not at the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from leadbus.processors.core.handover import ECONOMIC_CRIME_ARTICLES
from leadbus.processors.core.thresholds import PriorPenalty, assess_case, transfer_grounds

#: Criminal Law Art.149 (生产、销售伪劣商品罪的法条竞合): a goods offence of Arts.141–148 that falls short of its own
#: threshold is still Art.140 (生产、销售伪劣产品罪) once sales reach 5万.
ARTICLE_149_COVERS = frozenset({"ART_141", "ART_142", "ART_142_1", "ART_143", "ART_144", "ART_145", "ART_146",
                                "ART_147", "ART_148"})


@dataclass(frozen=True)
class TransferOpening:
    """A case that must be handed over: the grounds as the assessment text the handover records."""

    assessment: str
    economic: bool  # a 经济犯罪 article: police review may take the 2017 SPP/MPS rule's longer periods


def violations_to_assess(violations: Iterable[str]) -> list[str]:
    """The reported violations, with Art.140 added where Art.149 makes it apply."""
    found = list(violations)
    if any(v in ARTICLE_149_COVERS for v in found) and "ART_140" not in found:
        found.append("ART_140")
    return found


def conduct_of(case: Mapping[str, Any], now: datetime) -> tuple[date, dict[str, Any], bool]:
    """The date of the conduct that picks the threshold rules (CL Art.12, TIME2001), the evaluator's options, and
    whether the conduct date was reported. A case of v2 leads knows its conduct period: the rules are those of its
    last act (the conduct reaches up to it), with the first act deciding the two-year repeat window. A case of v1
    leads only knows when it was first reported: that date stands in, as before. (Returned: the first act; the
    evaluator takes the last one from `conduct_to` in the options.)"""
    start, end = case.get("conduct_from"), case.get("conduct_to")
    known = start is not None or end is not None
    conduct: date = start or end or case["first_reported_at"].date()
    facts = case["facts"]
    priors = [PriorPenalty(p["decided_on"], p["violation"], p["kind"], p["decided_by"])
              for p in case.get("prior_penalties") or []]
    options: dict[str, Any] = {"handled_on": now.date(), "prior_penalties": priors,
                               "marks": str(facts.get("mark_use") or "GOODS").lower()}
    if start is not None and end is not None:
        options["conduct_to"] = end
    return conduct, options, known


def assess_transfer(case: Mapping[str, Any], now: datetime) -> TransferOpening | None:
    """The handover a case (a `CaseUpdated` as decoded) calls for at `now`, or None while it calls for none."""
    conduct, options, known = conduct_of(case, now)
    assessments = assess_case(violations_to_assess(case["violations"]), case["facts"], conduct, **options)
    grounds = transfer_grounds(assessments, police_measures_needed=bool(case.get("police_measures_needed")))
    if not grounds:
        return None
    text = "; ".join(grounds)
    if any(a.uncertain for a in assessments if a.status in ("MET", "CONDUCT")):
        text += " [uncertain: the applicable table rows are marked U; verify against the official text]"
    last = options.get("conduct_to", conduct)
    text += f" [conduct {last.isoformat()}" + ("]" if known else ": not reported (v1 lead), report date used]")
    return TransferOpening(text, any(v in ECONOMIC_CRIME_ARTICLES for v in case["violations"]))
