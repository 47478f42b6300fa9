"""The outside legal review (2026-11-28), point by point, through the public evaluator `assess` only.

Every figure of the review is checked just below, at and just above it; every effective date on the day before and
the day of; the temporal rules with conduct dates and handling dates on each side. Each case's id starts with the
review point it checks (`§1 ART_214/I2025`, `§2 conduct date`, `§3 218` …): `docs/legal-review-trace.md` maps each
point of the review to these ids. Where the review says "not found", the answer must be uncertain — and only there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from leadbus.processors.core.thresholds import PriorPenalty, assess, assess_case, should_transfer, transfer_grounds

WAN = 1_000_000  # 1万元 in fen
DAY = timedelta(days=1)
I2001 = date(2001, 4, 10)
I2004 = date(2004, 12, 22)
I2007 = date(2007, 4, 5)
S1 = date(2008, 6, 25)
S2 = date(2010, 5, 7)
O2011 = date(2011, 1, 10)
CLA8 = date(2011, 5, 1)
I2020 = date(2020, 9, 14)
CLA11 = date(2021, 3, 1)
I2025 = date(2025, 4, 26)
MID = date(2015, 6, 1)  # a day well inside the 2004–2025 interpretations, after S1, S2 and O2011
NOW = date(2026, 1, 1)  # after every rule took effect

Case = tuple[str, str, dict[str, Any], date, dict[str, Any], str, str | None, bool]


def _prior(on: date, article: str) -> dict[str, Any]:
    return {"prior_penalties": [PriorPenalty(on, article, "ADMINISTRATIVE", "某市市场监督管理局")]}


def edge(point: str, violation: str, facts: dict[str, Any], quantity: str, figure: int, day: date,
         met_rule: str, below_rule: str | None, options: dict[str, Any] | None = None,
         below: tuple[str, bool] = ("NOT_MET", False), met_uncertain: bool = False) -> Iterator[Case]:  # fmt: skip
    """Just below, at and just above one figure (以上 includes the figure: CL Art.99)."""
    opts = options or {}
    status, uncertain = below
    yield (f"{point} {quantity} {figure:,} − 1", violation, {**facts, quantity: figure - 1}, day, opts,
           status, below_rule, uncertain)  # fmt: skip
    yield (f"{point} {quantity} {figure:,}", violation, {**facts, quantity: figure}, day, opts, "MET", met_rule,
           met_uncertain)  # fmt: skip
    yield (f"{point} {quantity} {figure:,} + 1", violation, {**facts, quantity: figure + 1}, day, opts, "MET",
           met_rule, met_uncertain)  # fmt: skip


def switch(point: str, violation: str, facts: dict[str, Any], starts: date, before: tuple[str, str | None, bool],
           after: tuple[str, str | None, bool], options: dict[str, Any] | None = None) -> Iterator[Case]:  # fmt: skip
    """The day before and the day a rule takes effect (for the conduct)."""
    opts = options or {}
    yield (f"{point} day before {starts}", violation, facts, starts - DAY, opts, *before)
    yield (f"{point} from {starts}", violation, facts, starts, opts, *after)


def cases() -> Iterator[Case]:
    # -- §1 ART_140/I2001-2: 销售 5万; 未售 15万; 3×销售 + 未售 15万; from 1997-10-01 -----------------------------
    yield from edge("§1 ART_140/I2001-2", "ART_140", {}, "sales_amount_fen", 5 * WAN, MID, "ART_140/I2001-2",
                    "ART_140/I2001-2")
    yield from edge("§1 ART_140/I2001-2 unsold", "ART_140", {}, "goods_value_fen", 15 * WAN, MID, "ART_140/I2001-2",
                    "ART_140/I2001-2")
    yield from edge("§1 ART_140/I2001-2 3×sold+unsold", "ART_140", {"sales_amount_fen": 4 * WAN}, "goods_value_fen",
                    3 * WAN, MID, "ART_140/I2001-2", "ART_140/I2001-2")
    yield from switch("§1 ART_140/I2001-2", "ART_140", {"sales_amount_fen": 5 * WAN}, date(1997, 10, 1),
                      ("NO_RULE", None, True), ("MET", "ART_140/I2001-2", False))
    # -- §1 141 danger → conduct (CLA8 2011-05-01); 142 result; 142-1 new with CLA11 ------------------------------
    yield from switch("§1 ART_141/CLA8", "ART_141", {}, CLA8, ("NEEDS_REVIEW", "ART_141/CL-141", True),
                      ("CONDUCT", "ART_141/CLA8", False))
    yield ("§1 ART_142/CL-142 result offence", "ART_142", {"sales_amount_fen": 100 * WAN}, MID, {}, "NEEDS_REVIEW",
           "ART_142/CL-142", True)
    yield from switch("§1 ART_142_1/CLA11", "ART_142_1", {}, CLA11, ("NO_RULE", None, False),
                      ("NEEDS_REVIEW", "ART_142_1/CLA11", True))
    yield from switch("§1 ART_143/IF2021-1", "ART_143", {}, date(2022, 1, 1),
                      ("NEEDS_REVIEW", "ART_143/CL-143", True), ("NEEDS_REVIEW", "ART_143/IF2021-1", True))
    yield ("§1 ART_144/CL-144 conduct", "ART_144", {}, date(1997, 10, 1), {}, "CONDUCT", "ART_144/CL-144", False)
    yield from switch("§1 ART_145/CLA4", "ART_145", {}, date(2002, 12, 28), ("NEEDS_REVIEW", "ART_145/CL-145", True),
                      ("NEEDS_REVIEW", "ART_145/CLA4", True))
    # -- §1 ART_146/S1-22: the 10万 figure was not found → uncertain even when met -------------------------------
    yield from edge("§1 ART_146/S1-22 (not found)", "ART_146", {}, "loss_fen", 10 * WAN, MID, "ART_146/S1-22",
                    "ART_146/S1-22", below=("NEEDS_REVIEW", True), met_uncertain=True)
    yield from switch("§1 ART_146/S1-22", "ART_146", {"loss_fen": 10 * WAN}, S1,
                      ("NEEDS_REVIEW", "ART_146/CL-146", True), ("MET", "ART_146/S1-22", True))
    # -- §1 ART_147/I2001-7: loss 2万 from 2001-04-10 ---------------------------------------------------------------
    yield from edge("§1 ART_147/I2001-7", "ART_147", {}, "loss_fen", 2 * WAN, MID, "ART_147/I2001-7",
                    "ART_147/I2001-7")
    yield from switch("§1 ART_147/I2001-7", "ART_147", {"loss_fen": 2 * WAN}, I2001, ("NO_RULE", None, True),
                      ("MET", "ART_147/I2001-7", False))
    yield ("§1 ART_148/CL-148 result offence", "ART_148", {}, MID, {}, "NEEDS_REVIEW", "ART_148/CL-148", True)

    # -- §1 ART_213/I2004-1: 5万 / 3万; two+ marks 3万 / 2万; goods; 2004-12-22 … 2025-04-25 ---------------------
    for day, rule in ((MID, "ART_213/I2004-1"), (I2025 - DAY, "ART_213/I2004-1"), (I2025, "ART_213/I2025")):
        point = f"§1 {rule}" if rule.endswith("I2004-1") else "§3 213 (retained figures)"
        yield from edge(f"{point} {day}", "ART_213", {}, "illegal_business_amount_fen", 5 * WAN, day, rule, rule)
        yield from edge(f"{point} {day}", "ART_213", {}, "illegal_gains_fen", 3 * WAN, day, rule, rule)
        yield from edge(f"{point} two marks {day}", "ART_213", {"trademark_kinds": 2},
                        "illegal_business_amount_fen", 3 * WAN, day, rule, rule)
        yield from edge(f"{point} two marks {day}", "ART_213", {"trademark_kinds": 2}, "illegal_gains_fen",
                        2 * WAN, day, rule, rule)
        yield (f"{point} one mark, business 3万 {day}", "ART_213",
               {"trademark_kinds": 1, "illegal_business_amount_fen": 3 * WAN}, day, {}, "NOT_MET", rule, False)
    yield from switch("§1 ART_213/I2004-1", "ART_213", {"illegal_gains_fen": 3 * WAN}, I2004,
                      ("NO_RULE", None, True), ("MET", "ART_213/I2004-1", False))
    # §3 213: repeat-offender figures not found → below the ordinary figures a person decides; above, MET
    yield ("§3 213 repeat offender below (not found)", "ART_213", {"illegal_gains_fen": 2 * WAN}, date(2025, 6, 1),
           _prior(date(2025, 1, 1), "ART_213"), "NEEDS_REVIEW", "ART_213/I2025", True)
    yield ("§3 213 repeat offender at the ordinary figure", "ART_213", {"illegal_gains_fen": 3 * WAN},
           date(2025, 6, 1), _prior(date(2025, 1, 1), "ART_213"), "MET", "ART_213/I2025", False)
    yield ("§3 213 no repeat offender below", "ART_213", {"illegal_gains_fen": 2 * WAN}, date(2025, 6, 1),
           _prior(date(2022, 1, 1), "ART_213"), "NOT_MET", "ART_213/I2025", False)
    # §1/§2 213 services: an offence from CLA11, no interpretation until I2025 (TIME2001 ¶2)
    services = {"marks": "services"}
    yield from switch("§2 213 services (TIME2001 ¶2)", "ART_213", {"illegal_gains_fen": 3 * WAN}, CLA11,
                      ("NO_RULE", None, False), ("MET", "ART_213/I2025-services", False), services)
    yield from edge("§2 213 services 2023", "ART_213", {"mark_use": "SERVICES"}, "illegal_business_amount_fen",
                    5 * WAN, date(2023, 1, 1), "ART_213/I2025-services", "ART_213/I2025-services")
    yield ("§2 213 services 2023 handled before I2025", "ART_213", {"illegal_gains_fen": 3 * WAN}, date(2023, 1, 1),
           {**services, "handled_on": I2025 - DAY}, "NEEDS_REVIEW", None, True)

    # -- §1 ART_214/I2004-2: 销售 5万 to 2021-02-28; S2-70 unsold 15万 from 2010-05-07 ------------------------------
    yield from edge("§1 ART_214/I2004-2", "ART_214", {}, "sales_amount_fen", 5 * WAN, date(2009, 1, 1),
                    "ART_214/I2004-2", "ART_214/I2004-2")
    yield from edge("§1 ART_214/S2-70 unsold", "ART_214", {}, "goods_value_fen", 15 * WAN, MID, "ART_214/S2-70",
                    "ART_214/I2004-2")
    yield from edge("§1 ART_214/S2-70 sold+unsold", "ART_214", {"sales_amount_fen": 4 * WAN}, "goods_value_fen",
                    11 * WAN, MID, "ART_214/S2-70", "ART_214/I2004-2")
    yield from switch("§1 ART_214/S2-70", "ART_214", {"goods_value_fen": 15 * WAN}, S2,
                      ("NOT_MET", "ART_214/I2004-2", True), ("MET", "ART_214/S2-70", False))
    # §1 214 I2025 Art.5: gains 3万 or sales 5万; unsold 15万 / sold + unsold 15万 (attempt)
    yield from edge("§3 214", "ART_214", {}, "illegal_gains_fen", 3 * WAN, NOW, "ART_214/I2025", "ART_214/I2025")
    yield from edge("§3 214", "ART_214", {}, "sales_amount_fen", 5 * WAN, NOW, "ART_214/I2025", "ART_214/I2025")
    yield from edge("§3 214 unsold", "ART_214", {}, "goods_value_fen", 15 * WAN, NOW, "ART_214/I2025",
                    "ART_214/I2025")
    yield from edge("§3 214 sold+unsold", "ART_214", {"sales_amount_fen": 4 * WAN}, "goods_value_fen", 11 * WAN,
                    NOW, "ART_214/I2025", "ART_214/I2025")
    # §2 TIME2001 ¶2: 214's 违法所得 (CLA11) had no interpretation before I2025: I2025 reaches back to 2021-03-01
    yield from switch("§2 214 gains (TIME2001 ¶2)", "ART_214", {"illegal_gains_fen": 3 * WAN}, CLA11,
                      ("NOT_MET", "ART_214/I2004-2", True), ("MET", "ART_214/I2025", False))
    yield ("§2 214 gains 2022 handled the day before I2025", "ART_214", {"illegal_gains_fen": 3 * WAN},
           date(2022, 1, 1), {"handled_on": I2025 - DAY}, "NOT_MET", "ART_214/S2-70", True)
    yield ("§2 214 gains 2022 handled the day I2025 starts", "ART_214", {"illegal_gains_fen": 3 * WAN},
           date(2022, 1, 1), {"handled_on": I2025}, "MET", "ART_214/I2025", False)
    yield ("§3 214 repeat offender below (not found)", "ART_214", {"sales_amount_fen": 1 * WAN}, date(2025, 6, 1),
           _prior(date(2025, 1, 1), "ART_214"), "NEEDS_REVIEW", "ART_214/I2025", True)

    # -- §1 ART_215/I2004-3: 2万件 / 5万 / 3万; two+ marks 1万件 / 3万 / 2万 -----------------------------------------
    for q, figure in (("labels", 20_000), ("illegal_business_amount_fen", 5 * WAN), ("illegal_gains_fen", 3 * WAN)):
        yield from edge("§1 ART_215/I2004-3", "ART_215", {}, q, figure, MID, "ART_215/I2004-3", "ART_215/I2004-3")
    for q, figure in (("labels", 10_000), ("illegal_business_amount_fen", 3 * WAN), ("illegal_gains_fen", 2 * WAN)):
        yield from edge("§1 ART_215/I2004-3 two marks", "ART_215", {"trademark_kinds": 2}, q, figure, MID,
                        "ART_215/I2004-3", "ART_215/I2004-3")
    # §1 215 labels made by others: sold count; held are an attempt at 6万 (two+ marks 3万) (O2011 Art.9)
    others = {"labels_made_by": "OTHERS"}
    yield ("§1 ART_215 others' labels: 25,000 held, none sold (the review's example)", "ART_215",
           {**others, "labels_held": 25_000}, MID, {}, "NOT_MET", "ART_215/I2004-3", False)
    yield ("§1 ART_215 own labels: 25,000 made and held", "ART_215", {"labels_made_by": "SELF", "labels_held": 25_000},
           MID, {}, "MET", "ART_215/I2004-3", False)
    yield from edge("§1 ART_215/O2011-9 held", "ART_215", others, "labels_held", 60_000, MID, "ART_215/O2011-9",
                    "ART_215/I2004-3")
    yield from edge("§1 ART_215/O2011-9 held two marks", "ART_215", {**others, "trademark_kinds": 2}, "labels_held",
                    30_000, MID, "ART_215/O2011-9", "ART_215/I2004-3")
    yield from edge("§1 ART_215/O2011-9 sold+held", "ART_215", {**others, "labels_sold": 19_999}, "labels_held",
                    40_001, MID, "ART_215/O2011-9", "ART_215/I2004-3")
    yield from edge("§1 ART_215 others' labels sold", "ART_215", others, "labels_sold", 20_000, MID,
                    "ART_215/I2004-3", "ART_215/I2004-3")
    yield from switch("§1 ART_215/O2011-9", "ART_215", {**others, "labels_held": 60_000}, O2011,
                      ("NOT_MET", "ART_215/I2004-3", False), ("MET", "ART_215/O2011-9", False))
    # §3 215 I2025 Art.6: lowered label figures not found → whatever met the old figures meets; below, a person
    yield from edge("§3 215 (lowered figures not found)", "ART_215", {}, "labels", 20_000, NOW, "ART_215/I2025",
                    "ART_215/I2025", below=("NEEDS_REVIEW", True))
    yield from edge("§3 215 (lowered figures not found)", "ART_215", {}, "illegal_gains_fen", 3 * WAN, NOW,
                    "ART_215/I2025", "ART_215/I2025", below=("NEEDS_REVIEW", True))
    yield from switch("§3 215 labels 19,999", "ART_215", {"labels": 19_999}, I2025,
                      ("NOT_MET", "ART_215/I2004-3", False), ("NEEDS_REVIEW", "ART_215/I2025", True))
    yield ("§3 215 others' labels held after I2025 (O2011 status not found)", "ART_215",
           {**others, "labels_held": 60_000}, NOW, {}, "MET", "ART_215/O2011-9-2025", True)

    # -- §1 ART_216/I2004-4: 20万 / 10万 / loss 50万; two+ patents 10万 / 5万 ------------------------------------
    for q, figure in (("illegal_business_amount_fen", 20 * WAN), ("illegal_gains_fen", 10 * WAN),
                      ("loss_fen", 50 * WAN)):  # fmt: skip
        yield from edge("§1 ART_216/I2004-4", "ART_216", {}, q, figure, I2025 - DAY, "ART_216/I2004-4",
                        "ART_216/I2004-4")
    for q, figure in (("illegal_business_amount_fen", 10 * WAN), ("illegal_gains_fen", 5 * WAN)):
        yield from edge("§1 ART_216/I2004-4 two patents", "ART_216", {"patents": 2}, q, figure, MID,
                        "ART_216/I2004-4", "ART_216/I2004-4")
    # §3 216 I2025: loss 30万, gains 10万, business 20万; two-patent and repeat figures not found
    for q, figure in (("illegal_business_amount_fen", 20 * WAN), ("illegal_gains_fen", 10 * WAN),
                      ("loss_fen", 30 * WAN)):  # fmt: skip
        yield from edge("§3 216", "ART_216", {}, q, figure, I2025, "ART_216/I2025", "ART_216/I2025")
    yield from switch("§3 216 loss 30万", "ART_216", {"loss_fen": 30 * WAN}, I2025,
                      ("NOT_MET", "ART_216/I2004-4", False), ("MET", "ART_216/I2025", False))
    yield ("§3 216 two patents below (not found)", "ART_216", {"patents": 2, "illegal_business_amount_fen": 10 * WAN},
           NOW, {}, "NEEDS_REVIEW", "ART_216/I2025", True)
    yield ("§3 216 repeat offender below (not found)", "ART_216", {"illegal_gains_fen": 5 * WAN}, date(2025, 6, 1),
           _prior(date(2025, 1, 1), "ART_216"), "NEEDS_REVIEW", "ART_216/I2025", True)

    # -- §1 ART_217: 1000 copies (I2004) → 500 (I2007 2007-04-05); 3万 / 5万; O2011 network from 2011-01-10 ------
    yield from edge("§1 ART_217/I2004-5", "ART_217", {}, "copies", 1000, I2007 - DAY, "ART_217/I2004-5",
                    "ART_217/I2004-5")
    yield from edge("§1 ART_217/I2007-1", "ART_217", {}, "copies", 500, I2007, "ART_217/I2007-1", "ART_217/I2007-1")
    yield from switch("§1 ART_217/I2007-1 600 copies", "ART_217", {"copies": 600}, I2007,
                      ("NOT_MET", "ART_217/I2004-5", False), ("MET", "ART_217/I2007-1", False))
    yield from edge("§1 ART_217/I2007-1", "ART_217", {}, "illegal_gains_fen", 3 * WAN, MID, "ART_217/I2007-1",
                    "ART_217/I2007-1")
    yield from edge("§1 ART_217/I2007-1", "ART_217", {}, "illegal_business_amount_fen", 5 * WAN, MID,
                    "ART_217/I2007-1", "ART_217/I2007-1")
    for q, figure in (("works", 500), ("clicks", 50_000), ("members", 1000)):
        yield from edge("§1 ART_217/O2011-13", "ART_217", {}, q, figure, MID, "ART_217/O2011-13", "ART_217/I2007-1")
    yield from edge("§1 ART_217/O2011-13 half rule", "ART_217", {"works": 250}, "clicks", 25_000, MID,
                    "ART_217/O2011-13", "ART_217/I2007-1")
    yield from edge("§1 ART_217/O2011-13 half rule", "ART_217", {"members": 500}, "illegal_business_amount_fen",
                    25 * WAN // 10, MID, "ART_217/O2011-13", "ART_217/I2007-1")
    yield from switch("§1 ART_217/O2011-13 (date confirmed)", "ART_217", {"clicks": 50_000}, O2011,
                      ("NOT_MET", "ART_217/I2007-1", True), ("MET", "ART_217/O2011-13", False))
    yield ("§1 ART_217/O2011-13-2025 network after I2025 (not found)", "ART_217", {"clicks": 50_000}, NOW, {},
           "MET", "ART_217/O2011-13-2025", True)
    yield from edge("§1 ART_217/I2025-13", "ART_217", {}, "illegal_gains_fen", 3 * WAN, NOW, "ART_217/I2025-13",
                    "ART_217/I2025-13")
    yield from edge("§1 ART_217/S1-26 after I2025", "ART_217", {}, "copies", 500, NOW, "ART_217/S1-26",
                    "ART_217/I2025-13")
    yield ("§3 217 repeat offender below (not found)", "ART_217", {"illegal_gains_fen": 2 * WAN}, date(2025, 6, 1),
           _prior(date(2025, 1, 1), "ART_218"), "NEEDS_REVIEW", "ART_217/I2025-13", True)

    # -- §1 ART_218: 10万 (I2004, S1), unsold 30万 (S1 from 2008-06-25); §3 I2025 5万 and the five triggers -------
    yield from edge("§1 ART_218/I2004-6", "ART_218", {}, "illegal_gains_fen", 10 * WAN, I2025 - DAY,
                    "ART_218/I2004-6", "ART_218/I2004-6")
    yield from edge("§1 ART_218/S1-27", "ART_218", {}, "goods_value_fen", 30 * WAN, MID, "ART_218/S1-27",
                    "ART_218/I2004-6")
    yield from switch("§1 ART_218/S1-27", "ART_218", {"goods_value_fen": 30 * WAN}, S1,
                      ("NOT_MET", "ART_218/I2004-6", True), ("MET", "ART_218/S1-27", False))
    yield from edge("§3 218 (1) gains 5万", "ART_218", {}, "illegal_gains_fen", 5 * WAN, I2025, "ART_218/I2025",
                    "ART_218/I2025")
    yield from switch("§3 218 gains 6万: conduct date, not report date", "ART_218", {"illegal_gains_fen": 6 * WAN},
                      I2025, ("NOT_MET", "ART_218/I2004-6", False), ("MET", "ART_218/I2025", False))
    yield from edge("§3 218 (2) sales 10万", "ART_218", {}, "sales_amount_fen", 10 * WAN, NOW,
                    "ART_218/I2025-serious", "ART_218/I2025")
    repeat = _prior(date(2025, 1, 1), "ART_217")
    yield from edge("§3 218 (3) repeat gains 3万", "ART_218", {}, "illegal_gains_fen", 3 * WAN, date(2025, 6, 1),
                    "ART_218/I2025-serious", "ART_218/I2025", repeat)
    yield from edge("§3 218 (3) repeat sales 5万", "ART_218", {}, "sales_amount_fen", 5 * WAN, date(2025, 6, 1),
                    "ART_218/I2025-serious", "ART_218/I2025", repeat)
    yield from edge("§3 218 (4) copies 1000", "ART_218", {}, "copies", 1000, NOW, "ART_218/I2025-serious",
                    "ART_218/I2025")
    yield from edge("§3 218 (5) unsold value 3×10万", "ART_218", {}, "goods_value_fen", 30 * WAN, NOW,
                    "ART_218/I2025-serious", "ART_218/I2025")
    yield from edge("§3 218 (5) unsold copies 3×1000", "ART_218", {}, "copies_held", 3000, NOW,
                    "ART_218/I2025-serious", "ART_218/I2025")
    yield from edge("§3 218 (5) sold+unsold copies", "ART_218", {"copies": 999}, "copies_held", 2001, NOW,
                    "ART_218/I2025-serious", "ART_218/I2025")
    yield from edge("§3 218 (5) sold+unsold value", "ART_218", {"sales_amount_fen": 9 * WAN}, "goods_value_fen",
                    21 * WAN, NOW, "ART_218/I2025-serious", "ART_218/I2025")
    yield from edge("§3 218 (5) repeat unsold value 3×5万", "ART_218", {}, "goods_value_fen", 15 * WAN,
                    date(2025, 6, 1), "ART_218/I2025-serious", "ART_218/I2025", repeat)
    # §2 TIME2001 ¶2: 其他严重情节 (CLA11) had no interpretation before I2025 — reaches back to 2021-03-01 only
    yield from switch("§2 218 sales 10万 (TIME2001 ¶2)", "ART_218", {"sales_amount_fen": 10 * WAN}, CLA11,
                      ("NOT_MET", "ART_218/I2004-6", True), ("MET", "ART_218/I2025-serious", False))
    yield ("§2 218 gains 6万, 2024 conduct reported 2025 (¶3: I2004 stays)", "ART_218", {"illegal_gains_fen": 6 * WAN},
           date(2024, 12, 1), {"handled_on": date(2025, 12, 1)}, "NOT_MET", "ART_218/I2004-6", False)

    # -- §1 ART_219: I2004 loss 50万 (to 2020-09-13); S2 Art.73 违法所得 50万 / bankruptcy (2010-05-07 …) --------
    yield from edge("§1 ART_219/I2004-7", "ART_219", {}, "loss_fen", 50 * WAN, date(2008, 1, 1), "ART_219/I2004-7",
                    "ART_219/I2004-7")
    yield from edge("§1 ART_219/S2-73 gains", "ART_219", {}, "illegal_gains_fen", 50 * WAN, MID, "ART_219/S2-73",
                    "ART_219/I2004-7")
    yield from switch("§1 ART_219/S2-73 gains 50万", "ART_219", {"illegal_gains_fen": 50 * WAN}, S2,
                      ("NOT_MET", "ART_219/I2004-7", True), ("MET", "ART_219/S2-73", False))
    yield ("§1 ART_219/S2-73 bankruptcy", "ART_219", {"rights_holder_bankrupt": True}, MID, {}, "MET",
           "ART_219/S2-73", False)
    yield from switch("§1 ART_219/I2020-4 loss 30万", "ART_219", {"loss_fen": 30 * WAN}, I2020,
                      ("NOT_MET", "ART_219/I2004-7", False), ("MET", "ART_219/I2020-4", False))
    yield from edge("§1 ART_219/I2020-4", "ART_219", {}, "illegal_gains_fen", 30 * WAN, date(2020, 10, 1),
                    "ART_219/I2020-4", "ART_219/I2020-4")
    # §3 219 I2025: 30万; repeat offender (trade secrets, within two years) 10万; reaches back to CLA11
    for q in ("loss_fen", "illegal_gains_fen"):
        yield from edge("§3 219", "ART_219", {}, q, 30 * WAN, NOW, "ART_219/I2025", "ART_219/I2025")
        yield from edge("§3 219 repeat", "ART_219", {}, q, 10 * WAN, date(2025, 6, 1), "ART_219/I2025",
                        "ART_219/I2025", _prior(date(2024, 6, 1), "ART_219"))
    yield from switch("§2 219 repeat 10万 (TIME2001 ¶2: 情节严重)", "ART_219", {"loss_fen": 10 * WAN}, CLA11,
                      ("NOT_MET", "ART_219/I2020-4", False), ("MET", "ART_219/I2025", False),
                      _prior(date(2020, 6, 1), "ART_219"))
    yield ("§3 219 bankruptcy under I2025 (not found)", "ART_219", {"rights_holder_bankrupt": True, "loss_fen": WAN},
           NOW, {}, "NEEDS_REVIEW", "ART_219/I2025", True)
    yield from switch("§1 ART_219_1/CLA11", "ART_219_1", {}, CLA11, ("NO_RULE", None, False),
                      ("CONDUCT", "ART_219_1/CLA11", False))

    # -- §2/§3 repeat-offender tiers: a prior penalty for the same kind of conduct within two years ---------------
    gains = {"illegal_gains_fen": 3 * WAN}
    for prior, status, rule, what in (
        (date(2023, 6, 1), "MET", "ART_218/I2025-serious", "exactly two years before"),
        (date(2023, 5, 31), "NOT_MET", "ART_218/I2025", "two years and a day before"),
        (date(2025, 6, 1), "NOT_MET", "ART_218/I2025", "decided the day of the conduct"),
        (date(2025, 5, 31), "MET", "ART_218/I2025-serious", "decided the day before"),
    ):
        yield (f"§2 repeat offender window: {what}", "ART_218", gains, date(2025, 6, 1), _prior(prior, "ART_218"),
               status, rule, False)
    yield ("§2 repeat offender: a criminal penalty counts too", "ART_219", {"loss_fen": 10 * WAN}, date(2025, 6, 1),
           {"prior_penalties": [PriorPenalty(date(2024, 6, 1), "ART_219", "CRIMINAL", "某区人民法院")]},
           "MET", "ART_219/I2025", False)
    yield ("§2 repeat offender: another kind of conduct does not count", "ART_219", {"loss_fen": 10 * WAN},
           date(2025, 6, 1), _prior(date(2024, 6, 1), "ART_218"), "NOT_MET", "ART_219/I2025", False)
    yield ("§2 repeat offender: conduct period reaching into the window", "ART_219", {"loss_fen": 10 * WAN},
           date(2024, 1, 1), {**_prior(date(2024, 3, 1), "ART_219"), "conduct_to": date(2025, 6, 1)},
           "MET", "ART_219/I2025", False)


CASES = list(cases())


@pytest.mark.parametrize(("name", "violation", "facts", "day", "options", "status", "rule_id", "uncertain"), CASES,
                         ids=[c[0] for c in CASES])
def test_review_point(name: str, violation: str, facts: dict[str, Any], day: date, options: dict[str, Any],
                      status: str, rule_id: str | None, uncertain: bool) -> None:  # fmt: skip
    a = assess(violation, facts, day, **options)
    assert (a.status, a.rule_id, a.uncertain) == (status, rule_id, uncertain), a.explanation


def test_case_ids_are_unique_and_cover_every_review_row() -> None:
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
    rows = ["ART_140/I2001-2", "ART_141/CLA8", "ART_142/CL-142", "ART_142_1/CLA11", "ART_143/IF2021-1",
            "ART_144/CL-144", "ART_145/CLA4", "ART_146/S1-22", "ART_147/I2001-7", "ART_148/CL-148", "ART_213/I2004-1",
            "ART_214/I2004-2", "ART_214/S2-70", "ART_215/I2004-3", "ART_215/O2011-9", "ART_216/I2004-4",
            "ART_217/I2004-5", "ART_217/I2007-1", "ART_217/S1-26", "ART_217/O2011-13", "ART_217/O2011-13-2025",
            "ART_217/I2025-13", "ART_218/I2004-6", "ART_218/S1-27", "ART_219/I2004-7", "ART_219/S2-73",
            "ART_219/I2020-4", "ART_219_1/CLA11", "§3 213", "§3 214", "§3 215", "§3 216", "§3 218", "§3 219",
            "§2 213 services", "§2 214", "§2 218", "§2 219", "§2 repeat offender"]  # fmt: skip
    for row in rows:
        assert any(row in n for n in names), row


# -- §2: the date of the conduct, not of the report, picks the rule (the handover stage's reading of a case) ---------


def _case(**extra: Any) -> dict[str, Any]:
    return {"facts": {"illegal_gains_fen": 6 * WAN}, "first_reported_at": datetime(2025, 6, 1, 9, 0),
            "prior_penalties": None, **extra}  # fmt: skip


def test_the_handover_stage_reads_the_conduct_date_not_the_report_date() -> None:
    from leadbus.processors.handover import conduct_of

    now = datetime(2025, 6, 2, 9, 0)
    conduct, options, known = conduct_of(_case(conduct_from=date(2024, 3, 1), conduct_to=date(2024, 12, 1)), now)
    assert known and conduct == date(2024, 3, 1) and options["conduct_to"] == date(2024, 12, 1)
    a = assess("ART_218", {"illegal_gains_fen": 6 * WAN}, conduct, **options)
    assert (a.status, a.rule_id, a.conduct_date) == ("NOT_MET", "ART_218/I2004-6", date(2024, 12, 1))
    # a v1 lead knows only its report date: it stands in, and the stage says so
    conduct, options, known = conduct_of(_case(), now)
    assert not known and conduct == date(2025, 6, 1)
    assert assess("ART_218", {"illegal_gains_fen": 6 * WAN}, conduct, **options).status == "MET"


def test_the_conduct_period_takes_the_rules_of_its_last_act() -> None:
    a = assess("ART_218", {"illegal_gains_fen": 6 * WAN}, date(2024, 6, 1), conduct_to=date(2025, 5, 1))
    assert (a.status, a.rule_id) == ("MET", "ART_218/I2025")
    with pytest.raises(ValueError, match="conduct_to"):
        assess("ART_218", {}, date(2024, 6, 1), conduct_to=date(2024, 5, 1))


# -- §2 R310 Art.3 ¶2 and Art.149 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("violation", "facts", "measures", "expected"), [
    ("ART_214", {"sales_amount_fen": 1 * WAN}, False, False),
    ("ART_214", {"sales_amount_fen": 1 * WAN}, True, True),     # IP, reasonable suspicion, police measures needed
    ("ART_215", {"labels": 100}, True, True),                   # NEEDS_REVIEW (2025 label figures) also hands over
    ("ART_219", {}, True, True),                                 # nothing established yet: the police establish it
    ("ART_140", {"sales_amount_fen": 1 * WAN}, True, False),    # Art.3 ¶2 is for IP cases only
    ("ART_142", {}, True, False),
    ("ART_218", {"illegal_gains_fen": 5 * WAN}, False, True),   # Art.3 ¶1: met
    ("ART_219_1", {}, False, True),                             # Art.3 ¶1: conduct offence
])  # fmt: skip
def test_r310_art3_transfer(violation: str, facts: dict[str, Any], measures: bool, expected: bool) -> None:
    assessments = assess_case([violation], facts, NOW)
    assert should_transfer(assessments, police_measures_needed=measures) is expected
    grounds = transfer_grounds(assessments, police_measures_needed=measures)
    assert bool(grounds) is expected
    if expected and measures and assessments[0].status not in ("MET", "CONDUCT"):
        assert "R310 Art.3 ¶2" in grounds[0]


def test_article_149_assesses_art_140_beside_141_to_148() -> None:
    from leadbus.processors.handover import ARTICLE_149_COVERS

    covered = {f"ART_{a}" for a in ("141", "142", "142_1", "143", "144", "145", "146", "147", "148")}
    assert covered == ARTICLE_149_COVERS
    a = assess_case(["ART_142", "ART_140"], {"sales_amount_fen": 5 * WAN}, NOW)
    assert [x.status for x in a] == ["NEEDS_REVIEW", "MET"] and should_transfer(a)


# -- how an outsider calls it: any reasonable spelling works, bad input is a clear error ------------------------------


def test_an_outsider_can_call_it_in_any_reasonable_spelling() -> None:
    base = assess("ART_219_1", {}, date(2022, 1, 1))
    for spelling in ("219-1", "219_1", "art_219_1", "ART_219-1", " 219-1 "):
        assert assess(spelling, {}, date(2022, 1, 1)).rule_id == base.rule_id
    assert assess(218, {"illegal_gains_fen": 5 * WAN}, NOW).status == "MET"  # type: ignore[arg-type]
    for day in ("2025-06-01", datetime(2025, 6, 1, 23, 59), date(2025, 6, 1)):
        assert assess("ART_218", {"illegal_gains_fen": 5 * WAN}, day).status == "MET"  # type: ignore[arg-type]
    assert assess("ART_218", {"illegal_gains_yuan": 50_000}, NOW).status == "MET"
    assert assess("ART_218", {"illegal_gains_yuan": 49_999.99}, NOW).status == "NOT_MET"
    assert assess("ART_218", {"illegal_gains_fen": "5,000,000"}, NOW).status == "MET"
    assert assess("ART_215", {"labels_held": 60_000, "labels_made_by": "others"}, MID).rule_id == "ART_215/O2011-9"
    as_record = {"decided_on": "2024-06-01", "violation": "ART_219", "kind": "criminal", "decided_by": "某区人民法院"}
    assert assess("ART_219", {"loss_fen": 10 * WAN}, "2025-06-01", prior_penalties=[as_record]).status == "MET"


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("ART_150", {}, NOW), {}, "unknown violation"),
    (("ART_218", {"illegal_gains_fen": -1}, NOW), {}, "negative"),
    (("ART_218", {"illegal_gains_fen": "lots"}, NOW), {}, "not a number"),
    (("ART_218", {"illegal_gains_fen": float("nan")}, NOW), {}, "not a number"),
    (("ART_218", {"illegal_gains_fen": [1]}, NOW), {}, "not a number"),
    (("ART_218", {}, "yesterday"), {}, "not a date"),
    (("ART_218", [("illegal_gains_fen", 1)], NOW), {}, "mapping"),
    (("ART_219", {}, NOW), {"prior_penalties": [{"violation": "ART_219"}]}, "decided_on"),
])  # fmt: skip
def test_bad_input_is_a_clear_error(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        assess(*args, **kwargs)


def test_the_trace_in_docs_names_only_cases_and_tests_that_exist() -> None:
    """docs/legal-review-trace.md maps each point of the review to tests: every case and test it cites exists."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    text = (root / "docs" / "legal-review-trace.md").read_text(encoding="utf-8")
    names = [c[0] for c in CASES]
    cited = {m.strip().removesuffix("…").strip() for m in re.findall(r"`(§[^`]+)`", text)}
    cited |= {m.split("[")[0] for m in re.findall(r"`(test_[a-z0-9_]+(?:\[[^`]*)?)`", text)}
    sources = "".join(p.read_text(encoding="utf-8") for p in (root / "tests").rglob("test_*.py"))
    for item in sorted(cited):
        if item.startswith("test_"):
            assert f"def {item}(" in sources, item
        else:
            assert any(n.startswith(item) for n in names), item
