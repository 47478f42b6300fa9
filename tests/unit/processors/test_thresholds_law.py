"""The outside legal review (2026-11-28), point by point: each row of its §1/§2/§3 that changed the table or the
evaluator has a case here, at and around its figure and its dates. `assess` is the public entry point."""

from __future__ import annotations

from datetime import date

import pytest

from leadbus.processors.core.thresholds import (
    PriorPenalty,
    assess,
    assess_case,
    repeat_offence,
    should_transfer,
    transfer_grounds,
)

WAN = 1_000_000  # 1万元 in fen
I2025 = date(2025, 4, 26)
BEFORE = date(2025, 4, 25)
CLA11 = date(2021, 3, 1)


def _prior(on: date, article: str = "ART_218") -> list[PriorPenalty]:
    return [PriorPenalty(on, article, "ADMINISTRATIVE", "某市市场监督管理局")]


CASES = [
    # (id, violation, facts, conduct date, options, status, rule id, uncertain)
    # -- §2: the date of the conduct picks the rule, not the date of the report (CL Art.12, TIME2001 ¶3) --------
    ("218 2024 conduct, 6万 gains: I2004 10万", "ART_218", {"illegal_gains_fen": 6 * WAN}, date(2024, 6, 1), {},
     "NOT_MET", "ART_218/I2004-6", False),
    ("218 2025 conduct, 6万 gains: I2025 5万", "ART_218", {"illegal_gains_fen": 6 * WAN}, date(2025, 6, 1), {},
     "MET", "ART_218/I2025", False),
    ("218 gains 5万 exactly, day I2025 starts", "ART_218", {"illegal_gains_fen": 5 * WAN}, I2025, {},
     "MET", "ART_218/I2025", False),
    ("218 gains 5万 − 1 fen", "ART_218", {"illegal_gains_fen": 5 * WAN - 1}, I2025, {}, "NOT_MET", "ART_218/I2025",
     False),
    ("218 gains 5万, day before I2025", "ART_218", {"illegal_gains_fen": 5 * WAN}, BEFORE, {},
     "NOT_MET", "ART_218/I2004-6", False),
    ("218 gains 10万, day before I2025", "ART_218", {"illegal_gains_fen": 10 * WAN}, BEFORE, {},
     "MET", "ART_218/I2004-6", False),
    # -- §3 218: the four 其他严重情节 triggers; they reach back to CLA11 conduct (TIME2001 ¶2) --------------------
    ("218 sales 10万", "ART_218", {"sales_amount_fen": 10 * WAN}, I2025, {}, "MET", "ART_218/I2025-serious", False),
    ("218 sales 10万 − 1", "ART_218", {"sales_amount_fen": 10 * WAN - 1}, I2025, {}, "NOT_MET", "ART_218/I2025",
     False),
    ("218 sales 10万, 2022 conduct (¶2)", "ART_218", {"sales_amount_fen": 10 * WAN}, date(2022, 1, 1), {},
     "MET", "ART_218/I2025-serious", False),
    ("218 sales 10万, conduct the day before CLA11", "ART_218", {"sales_amount_fen": 10 * WAN}, date(2021, 2, 28), {},
     "NOT_MET", "ART_218/I2004-6", True),
    ("218 sales 10万, 2022 conduct handled before I2025", "ART_218", {"sales_amount_fen": 10 * WAN}, date(2022, 1, 1),
     {"handled_on": BEFORE}, "NOT_MET", "ART_218/I2004-6", True),
    ("218 copies sold 1000", "ART_218", {"copies": 1000}, I2025, {}, "MET", "ART_218/I2025-serious", False),
    ("218 copies sold 999", "ART_218", {"copies": 999}, I2025, {}, "NOT_MET", "ART_218/I2025", False),
    ("218 copies held 3000", "ART_218", {"copies_held": 3000}, I2025, {}, "MET", "ART_218/I2025-serious", False),
    ("218 sold 999 + held 2001", "ART_218", {"copies": 999, "copies_held": 2001}, I2025, {},
     "MET", "ART_218/I2025-serious", False),
    ("218 unsold value 30万 (also S1 Art.27)", "ART_218", {"goods_value_fen": 30 * WAN}, I2025, {},
     "MET", "ART_218/I2025-serious", False),
    ("218 sold 9万 + unsold 21万", "ART_218", {"sales_amount_fen": 9 * WAN, "goods_value_fen": 21 * WAN}, I2025, {},
     "MET", "ART_218/I2025-serious", False),
    ("218 repeat, gains 3万", "ART_218", {"illegal_gains_fen": 3 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 1, 1))}, "MET", "ART_218/I2025-serious", False),
    ("218 repeat, gains 3万 − 1", "ART_218", {"illegal_gains_fen": 3 * WAN - 1}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 1, 1))}, "NOT_MET", "ART_218/I2025", False),
    ("218 repeat, sales 5万", "ART_218", {"sales_amount_fen": 5 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 1, 1), "ART_217")}, "MET", "ART_218/I2025-serious", False),
    ("218 prior over two years before", "ART_218", {"illegal_gains_fen": 3 * WAN}, date(2025, 6, 2),
     {"prior_penalties": _prior(date(2023, 6, 1))}, "NOT_MET", "ART_218/I2025", False),
    ("218 prior exactly two years before", "ART_218", {"illegal_gains_fen": 3 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2023, 6, 1))}, "MET", "ART_218/I2025-serious", False),
    ("218 prior for another kind of conduct", "ART_218", {"illegal_gains_fen": 3 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 1, 1), "ART_213")}, "NOT_MET", "ART_218/I2025", False),
    ("218 repeat, unsold 15万", "ART_218", {"goods_value_fen": 15 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 1, 1))}, "MET", "ART_218/I2025-serious", False),
    # -- §3 219: 30万; repeat offenders 10万 (official SPC site); §1 S2 Art.73 违法所得 50万 before 2020-09-17 ----
    ("219 loss 30万, 2025", "ART_219", {"loss_fen": 30 * WAN}, I2025, {}, "MET", "ART_219/I2025", False),
    ("219 gains 30万 − 1, 2025", "ART_219", {"illegal_gains_fen": 30 * WAN - 1}, I2025, {}, "NOT_MET",
     "ART_219/I2025", False),
    ("219 repeat, loss 10万", "ART_219", {"loss_fen": 10 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 6, 1), "ART_219")}, "MET", "ART_219/I2025", False),
    ("219 repeat, gains 10万 − 1", "ART_219", {"illegal_gains_fen": 10 * WAN - 1}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2024, 6, 1), "ART_219")}, "NOT_MET", "ART_219/I2025", False),
    ("219 repeat 10万, 2022 conduct (¶2: 情节严重)", "ART_219", {"loss_fen": 10 * WAN}, date(2022, 6, 1),
     {"prior_penalties": _prior(date(2021, 6, 1), "ART_219")}, "MET", "ART_219/I2025", False),
    ("219 gains 50万, 2015 (S2 Art.73)", "ART_219", {"illegal_gains_fen": 50 * WAN}, date(2015, 1, 1), {},
     "MET", "ART_219/S2-73", False),
    ("219 gains 50万 − 1, 2015", "ART_219", {"illegal_gains_fen": 50 * WAN - 1}, date(2015, 1, 1), {},
     "NOT_MET", "ART_219/I2004-7", False),
    ("219 gains 50万, before S2 (2010-05-06)", "ART_219", {"illegal_gains_fen": 50 * WAN}, date(2010, 5, 6), {},
     "NOT_MET", "ART_219/I2004-7", True),
    ("219 gains 50万, S2 day one", "ART_219", {"illegal_gains_fen": 50 * WAN}, date(2010, 5, 7), {},
     "MET", "ART_219/S2-73", False),
    ("219 gains 30万 on 2020-09-13 (I2004 loss only, S2 50万)", "ART_219", {"illegal_gains_fen": 30 * WAN},
     date(2020, 9, 13), {}, "NOT_MET", "ART_219/I2004-7", False),
    ("219 gains 30万 on 2020-09-14 (I2020)", "ART_219", {"illegal_gains_fen": 30 * WAN}, date(2020, 9, 14), {},
     "MET", "ART_219/I2020-4", False),
    ("219 bankruptcy, 2021 (I2020 Art.4)", "ART_219", {"rights_holder_bankrupt": True}, date(2021, 1, 1), {},
     "MET", "ART_219/I2020-4", False),
    ("219 bankruptcy under I2025: not found", "ART_219", {"rights_holder_bankrupt": True, "loss_fen": WAN},
     date(2025, 6, 1), {}, "NEEDS_REVIEW", "ART_219/I2025", True),
    # -- §3 216: loss 30万, gains 10万, business 20万; two-patent and repeat figures not found ---------------------
    ("216 loss 30万, 2025", "ART_216", {"loss_fen": 30 * WAN}, I2025, {}, "MET", "ART_216/I2025", False),
    ("216 loss 30万, day before", "ART_216", {"loss_fen": 30 * WAN}, BEFORE, {}, "NOT_MET", "ART_216/I2004-4", False),
    ("216 loss 30万 − 1, 2025", "ART_216", {"loss_fen": 30 * WAN - 1}, I2025, {}, "NOT_MET", "ART_216/I2025", False),
    ("216 gains 10万", "ART_216", {"illegal_gains_fen": 10 * WAN}, I2025, {}, "MET", "ART_216/I2025", False),
    ("216 business 20万 − 1", "ART_216", {"illegal_business_amount_fen": 20 * WAN - 1}, I2025, {},
     "NOT_MET", "ART_216/I2025", False),
    ("216 two patents, business 10万, 2015 (I2004 Art.4(三))", "ART_216",
     {"patents": 2, "illegal_business_amount_fen": 10 * WAN}, date(2015, 1, 1), {}, "MET", "ART_216/I2004-4", False),
    ("216 two patents, gains 5万 − 1, 2015", "ART_216", {"patents": 2, "illegal_gains_fen": 5 * WAN - 1},
     date(2015, 1, 1), {}, "NOT_MET", "ART_216/I2004-4", False),
    ("216 two patents below, 2025: not found", "ART_216", {"patents": 2, "illegal_gains_fen": 5 * WAN}, I2025, {},
     "NEEDS_REVIEW", "ART_216/I2025", True),
    ("216 repeat offender below, 2025: not found", "ART_216", {"illegal_gains_fen": 5 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2025, 1, 1), "ART_216")}, "NEEDS_REVIEW", "ART_216/I2025", True),
    ("216 repeat offender above the known figure", "ART_216", {"illegal_gains_fen": 10 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2025, 1, 1), "ART_216")}, "MET", "ART_216/I2025", False),
    # -- §3 213: figures retained, services added; repeat figures not found --------------------------------------
    ("213 business 5万, 2025", "ART_213", {"illegal_business_amount_fen": 5 * WAN}, I2025, {},
     "MET", "ART_213/I2025", False),
    ("213 business 5万 − 1, 2025", "ART_213", {"illegal_business_amount_fen": 5 * WAN - 1}, I2025, {},
     "NOT_MET", "ART_213/I2025", False),
    ("213 two marks, gains 2万, 2025", "ART_213", {"trademark_kinds": 2, "illegal_gains_fen": 2 * WAN}, I2025, {},
     "MET", "ART_213/I2025", False),
    ("213 repeat, below, 2025: not found", "ART_213", {"illegal_gains_fen": 2 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2025, 1, 1), "ART_214")}, "NEEDS_REVIEW", "ART_213/I2025", True),
    ("213 services 2020: not an offence", "ART_213", {"illegal_gains_fen": 10 * WAN}, date(2021, 2, 28),
     {"marks": "services"}, "NO_RULE", None, False),
    ("213 services 2021-03-01 (¶2)", "ART_213", {"illegal_gains_fen": 3 * WAN}, CLA11, {"marks": "services"},
     "MET", "ART_213/I2025-services", False),
    ("213 services from the facts", "ART_213", {"illegal_gains_fen": 3 * WAN - 1, "mark_use": "SERVICES"},
     date(2023, 1, 1), {}, "NOT_MET", "ART_213/I2025-services", False),
    ("213 goods 2023: I2004", "ART_213", {"illegal_gains_fen": 3 * WAN}, date(2023, 1, 1), {},
     "MET", "ART_213/I2004-1", False),
    # -- §3 214: gains 3万 or sales 5万; unsold 15万; reaches back to CLA11 ---------------------------------------
    ("214 gains 3万, 2025", "ART_214", {"illegal_gains_fen": 3 * WAN}, I2025, {}, "MET", "ART_214/I2025", False),
    ("214 gains 3万, 2022 (¶2)", "ART_214", {"illegal_gains_fen": 3 * WAN}, date(2022, 1, 1), {},
     "MET", "ART_214/I2025", False),
    ("214 gains 3万, 2020: sales only then", "ART_214", {"illegal_gains_fen": 3 * WAN}, date(2020, 1, 1), {},
     "NOT_MET", "ART_214/I2004-2", True),
    ("214 unsold 15万 − 1", "ART_214", {"goods_value_fen": 15 * WAN - 1}, I2025, {}, "NOT_MET", "ART_214/I2025",
     False),
    ("214 sold 4万 + unsold 11万", "ART_214", {"sales_amount_fen": 4 * WAN, "goods_value_fen": 11 * WAN}, I2025, {},
     "MET", "ART_214/I2025", False),
    # -- §1 215: labels made by others and held are an attempt (O2011 Art.9); I2025 figures not found -------------
    ("215 others' labels, 25,000 held, none sold", "ART_215", {"labels_held": 25_000, "labels_made_by": "OTHERS"},
     date(2015, 1, 1), {}, "NOT_MET", "ART_215/I2004-3", False),
    ("215 others' labels, 60,000 held", "ART_215", {"labels_held": 60_000, "labels_made_by": "OTHERS"},
     date(2015, 1, 1), {}, "MET", "ART_215/O2011-9", False),
    ("215 others' labels, 59,999 held", "ART_215", {"labels_held": 59_999, "labels_made_by": "OTHERS"},
     date(2015, 1, 1), {}, "NOT_MET", "ART_215/I2004-3", False),
    ("215 others' labels, two marks, 30,000 held", "ART_215",
     {"labels_held": 30_000, "trademark_kinds": 2, "labels_made_by": "OTHERS"}, date(2015, 1, 1), {},
     "MET", "ART_215/O2011-9", False),
    ("215 others' labels, 19,999 sold + 40,001 held", "ART_215",
     {"labels_sold": 19_999, "labels_held": 40_001, "labels_made_by": "OTHERS"}, date(2015, 1, 1), {},
     "MET", "ART_215/O2011-9", False),
    ("215 others' labels, 20,000 sold", "ART_215", {"labels_sold": 20_000, "labels_made_by": "OTHERS"},
     date(2015, 1, 1), {}, "MET", "ART_215/I2004-3", False),
    ("215 own labels, 25,000 made and held", "ART_215", {"labels_held": 25_000, "labels_made_by": "SELF"},
     date(2015, 1, 1), {}, "MET", "ART_215/I2004-3", False),
    ("215 v1 labels total as before", "ART_215", {"labels": 20_000}, date(2015, 1, 1), {},
     "MET", "ART_215/I2004-3", False),
    ("215 O2011 Art.9 before O2011 (2011-01-09)", "ART_215", {"labels_held": 60_000, "labels_made_by": "OTHERS"},
     date(2011, 1, 9), {}, "NOT_MET", "ART_215/I2004-3", False),
    ("215 2025, meets the old figures", "ART_215", {"labels": 20_000}, I2025, {}, "MET", "ART_215/I2025", False),
    ("215 2025, below the old figures: not found", "ART_215", {"labels": 19_999}, I2025, {},
     "NEEDS_REVIEW", "ART_215/I2025", True),
    ("215 2025, others' labels held 60,000 (O2011 status not found)", "ART_215",
     {"labels_held": 60_000, "labels_made_by": "OTHERS"}, I2025, {}, "MET", "ART_215/O2011-9-2025", True),
    # -- §1 217: 500 copies from 2007-04-05; O2011 from 2011-01-10 (confirmed) ----------------------------------
    ("217 clicks 5万, 2011-01-10", "ART_217", {"clicks": 50_000}, date(2011, 1, 10), {},
     "MET", "ART_217/O2011-13", False),
    ("217 clicks 5万, 2011-01-09", "ART_217", {"clicks": 50_000}, date(2011, 1, 9), {},
     "NOT_MET", "ART_217/I2007-1", True),
    ("217 repeat, gains below, 2025: not found", "ART_217", {"illegal_gains_fen": 2 * WAN}, date(2025, 6, 1),
     {"prior_penalties": _prior(date(2025, 1, 1), "ART_217")}, "NEEDS_REVIEW", "ART_217/I2025-13", True),
]


@pytest.mark.parametrize(("name", "violation", "facts", "day", "options", "status", "rule_id", "uncertain"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_law_as_reviewed(name: str, violation: str, facts: dict, day: date, options: dict, status: str,
                             rule_id: str | None, uncertain: bool) -> None:  # fmt: skip
    a = assess(violation, facts, day, **options)
    assert (a.status, a.rule_id, a.uncertain) == (status, rule_id, uncertain), a.explanation
    assert a.conduct_date == day


def test_a_later_interpretation_reaching_back_is_named() -> None:
    a = assess("ART_214", {"illegal_gains_fen": 3 * WAN}, date(2022, 1, 1))
    assert "TIME2001 ¶2" in a.temporal and "ART_214/I2025" in a.temporal


def test_the_lighter_later_law_applies() -> None:
    """TIME2001 ¶3 / CL Art.12: met by the rule of the time, clearly not met by the law when handled → NOT_MET.
    The 2025 changes all lower figures, so this is shown with the 2007 lowering read backwards: 2005 conduct with
    1,000 copies met I2004 Art.5; a table in which the later rule asks more must let the suspect benefit.
    (A quantity the later law does not use leaves it unclear, so the old answer stands: uncertain is not lighter.)"""
    from leadbus.processors.core.thresholds import Condition, Term, load_table

    table = load_table()
    more = Condition((Term((("copies", 1),), 2000),))
    tightened = type(table)(tuple(
        r if r.id != "ART_217/I2007-1" else type(r)(**{**r.__dict__, "any_of": (*r.any_of[:2], more)})
        for r in table.rules if r.article == "217" and r.family == "IP"))  # fmt: skip
    a = assess("ART_217", {"copies": 1000}, date(2005, 1, 1), tightened, handled_on=date(2010, 1, 1))
    assert (a.status, a.rule_id) == ("NOT_MET", "ART_217/I2007-1") and "TIME2001 ¶3" in a.temporal
    same = assess("ART_217", {"copies": 1000}, date(2005, 1, 1), tightened, handled_on=date(2006, 1, 1))
    assert (same.status, same.rule_id) == ("MET", "ART_217/I2004-5")


def test_repeat_offence_window() -> None:
    p = _prior(date(2024, 2, 29), "ART_219")
    assert repeat_offence("ART_219", p, date(2026, 2, 28))
    assert not repeat_offence("ART_219", p, date(2026, 3, 1))
    assert not repeat_offence("ART_219", p, date(2024, 2, 29))  # not after the penalty
    assert repeat_offence("ART_219", p, date(2024, 1, 1), date(2024, 3, 1))  # conduct continues past it
    assert repeat_offence("219", p, date(2025, 1, 1))


def test_should_transfer_on_reasonable_suspicion_in_ip_cases() -> None:
    """R310 (2020) Art.3 ¶2: IP case, reasonable suspicion, police measures needed to establish the amount."""
    below = assess_case(["ART_214"], {"sales_amount_fen": 1 * WAN}, date(2026, 1, 1))
    assert not should_transfer(below)
    assert should_transfer(below, police_measures_needed=True)
    assert "R310 Art.3 ¶2" in transfer_grounds(below, police_measures_needed=True)[0]
    goods = assess_case(["ART_140"], {"sales_amount_fen": 1 * WAN}, date(2026, 1, 1))
    assert not should_transfer(goods, police_measures_needed=True)  # Art.3 ¶2 is for IP cases only
    met = assess_case(["ART_218"], {"illegal_gains_fen": 5 * WAN}, date(2026, 1, 1))
    assert should_transfer(met) and "R310 Art.3 ¶1" in transfer_grounds(met)[0]


def test_statute_numbers_are_accepted() -> None:
    assert assess("219-1", {}, date(2022, 1, 1)).status == "CONDUCT"
    with pytest.raises(ValueError):
        assess("ART_150", {}, date(2022, 1, 1))
