"""Intake's derivations (`strong_identifiers` and `weak_signals` with `link_memo.REMEMBERED`, `intake_member_json`)
give what linking's give (the same with the computed sources, `dumps(_member(...))`), part by part: on simulated and odd
leads, and on the parts simulated traffic lacks — prior penalties, conduct periods, CaseLead v3 parts, times in
another zone than UTC (which validation never lets through, but a lead built without it may hold)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from typing import Any

from leadbus.models import CaseLead
from leadbus.processors.core import link_memo
from leadbus.processors.core.linking import _member, dumps, strong_identifiers
from leadbus.processors.core.normalize import _replaced, normalise
from leadbus.processors.core.suggest import weak_signals
from tests.unit.processors.test_link_memo import NOW, V3, _leads

PENALTIES: list[list[dict[str, Any]]] = [
    [], [{"decided_on": "2025-03-01", "decided_by": "杭州市市场监督管理局", "violation": "ART_213"}],
    [{"kind": "CRIMINAL", "decided_on": "2024-12-31", "decided_by": "x", "violation": "ART_217", "reference": "r"},
     {"decided_on": "2025-01-02", "decided_by": "y", "violation": "ART_213"}],
]
CONDUCT: list[tuple[str | None, str | None]] = [(None, None), ("2025-01-01", None), ("2025-01-01", "2025-06-30"),
                                                (None, "2025-02-03")]


def _varied(rng: random.Random, lead: CaseLead) -> CaseLead | None:
    record = lead.to_avro()
    record["prior_penalties"] = rng.choice(PENALTIES)
    record["conduct_from"], record["conduct_to"] = rng.choice(CONDUCT)
    if rng.random() < 0.3:
        record.update(rng.sample(sorted(V3.items()), rng.randint(1, len(V3))))
    try:
        return normalise(CaseLead.model_validate(record, context={"now": NOW})).lead
    except ValueError:
        return None  # a combination the contract refuses (a conduct period the report cannot have)


def _check(lead: CaseLead, domains: tuple[str, ...]) -> None:
    keys = strong_identifiers(lead, domains)
    weak = weak_signals(lead)
    assert strong_identifiers(lead, domains, link_memo.REMEMBERED.keys) == keys
    assert weak_signals(lead, link_memo.REMEMBERED.signals) == weak
    assert link_memo.intake_member_json(lead, keys, weak) == dumps(_member(lead, domains, keys, weak))


def test_intake_s_derivations_are_linking_s_part_by_part() -> None:
    rng = random.Random(5)
    checked = varied = penalised = dated = v3 = 0
    for normalised in _leads():
        _check(normalised.lead, normalised.domains)
        checked += 1
        lead = _varied(rng, normalised.lead)
        if lead is not None:
            _check(lead, normalised.domains)
            varied += 1
            penalised += bool(lead.prior_penalties)
            dated += lead.conduct_from is not None or lead.conduct_to is not None
            v3 += bool(lead.products or lead.senders or lead.return_addresses or lead.operator)
    assert checked > 1500 and varied > 600 and min(penalised, dated, v3) > 100


def test_a_time_outside_utc_is_written_as_isoformat_writes_it() -> None:
    normalised = next(iter(_leads()))
    reported = normalised.lead.reported_at
    for zone in (timezone(timedelta(hours=8)), timezone(timedelta(hours=5, minutes=30, seconds=15)),
                 timezone(timedelta(0))):
        for at in (reported.astimezone(zone), reported.astimezone(zone).replace(microsecond=7)):
            lead = _replaced(normalised.lead, {"reported_at": at, "conduct_from": date(5, 1, 2)})
            assert isinstance(lead.reported_at, datetime)
            _check(lead, normalised.domains)
