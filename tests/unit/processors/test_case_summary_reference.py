"""The one-pass `case_summary` (issue #16) equals the comprehension-per-field one it replaced, ties included."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from leadbus.processors.core.linking import _HANDLING_ORDER, MAX_CASE_WAYBILLS, Case, aggregate_facts, case_summary


def reference_summary(case: Case) -> dict[str, Any]:
    """`case_summary` as it was before issue #16's one-pass rewrite."""
    members = [case.members[k] for k in sorted(case.members, key=lambda m: case.members[m]["reported_at"])]
    provinces = Counter(m["suspect_province"] for m in members if m["suspect_province"])
    handling = max((m["handling"] for m in members), key=lambda h: _HANDLING_ORDER.get(h, 2))
    reporters = list(dict.fromkeys((m["agency"], m["province"]) for m in members))
    return {
        "case_id": case.case_id,
        "version": case.version,
        "members": sorted(case.members),
        "reporters": [{"agency": a, "province": p} for a, p in reporters],
        "identifiers": [{"kind": k.split(":", 1)[0], "value": k.split(":", 1)[1]} for k in case.identifiers],
        "suspect_name": members[0]["name"],
        "suspect_province": provinces.most_common(1)[0][0] if provinces else None,
        "categories": sorted({m["category"] for m in members}),
        "violations": sorted({m["violation"] for m in members}),
        "facts": aggregate_facts(members),
        "first_reported_at": members[0]["reported_at"],
        "last_reported_at": members[-1]["reported_at"],
        "handling": handling,
        "share_with": sorted({s for m in members for s in m["share_with"]}),
        "cross_border": any(m["cross_border"] for m in members),
        "countries": sorted({c for m in members for c in m["countries"]}),
        "merged_from": list(case.merged_from),
        "conduct_from": min((m["conduct_from"] for m in members if m.get("conduct_from")), default=None),
        "conduct_to": max((m["conduct_to"] for m in members if m.get("conduct_to")), default=None),
        "prior_penalties": [dict(p) for p in sorted({tuple(sorted(p.items())) for m in members
                                                     for p in m.get("prior_penalties", [])})],
        "police_measures_needed": any(m.get("police_measures_needed") for m in members),
        "waybills": list(dict.fromkeys(w for m in members for w in m.get("waybills", ())))[:MAX_CASE_WAYBILLS],
    }


def _member(rng: random.Random) -> dict[str, Any]:
    """A member record with few distinct values, so that ties (same time, same province count) are common."""
    member: dict[str, Any] = {
        "agency": rng.choice(["SAMR-110000", "SAMR-310000", "CNIPA"]),
        "province": rng.choice(["110000", "310000"]),
        "reported_at": f"2026-05-0{rng.randint(1, 3)}T08:00:00+00:00",
        "name": rng.choice(["某某贸易", "张三", ""]),
        "suspect_province": rng.choice([None, "", "440000", "330000"]),
        "handling": rng.choice(["OPEN", "RESTRICTED", "CONFIDENTIAL", "SOMETHING_NEW"]),
        "category": rng.choice(["TRADEMARK", "COPYRIGHT"]),
        "violation": rng.choice(["COUNTERFEIT", "PIRACY"]),
        "share_with": rng.sample(["POLICE", "CUSTOMS", "SAMR"], rng.randint(0, 2)),
        "countries": rng.sample(["US", "VN", "DE"], rng.randint(0, 2)),
        "cross_border": rng.choice([False, True, 0, 1]),
        "facts": {"sales_amount_fen": rng.randint(0, 9)} if rng.random() < 0.5 else {},
    }
    if rng.random() < 0.8:  # older member records lack the later fields
        member["conduct_from"] = rng.choice([None, "", "2025-01-01", "2025-03-01"])
        member["conduct_to"] = rng.choice([None, "2025-02-01", "2025-06-01"])
        member["prior_penalties"] = [{"kind": "FINE", "decided_on": rng.choice(["2024-01-01", "2023-01-01"]),
                                      "decided_by": "SAMR", "violation": "COUNTERFEIT"}
                                     for _ in range(rng.randint(0, 2))]
        member["police_measures_needed"] = rng.choice([None, False, True])
        member["waybills"] = [f"SF{rng.randint(1, 4)}" for _ in range(rng.randint(0, 3))]
    return member


def test_one_pass_summary_equals_the_reference_on_random_cases_with_ties() -> None:
    rng = random.Random(16)
    for n in range(600):
        members = {f"L{rng.randint(0, 10**6):07d}": _member(rng) for _ in range(rng.randint(1, 7))}
        case = Case(f"CASE-{n}", n, members=members, identifiers=sorted({f"phone:+86138{n:08d}", "uscc:9:1"}),
                    merged_from=[f"CASE-{n - 1}"] if n % 3 == 0 else [], version=n % 5 + 1)
        assert case_summary(case) == reference_summary(case)
        assert list(case_summary(case)) == list(reference_summary(case))  # same field order too


def test_more_waybills_than_a_case_carries_are_cut_as_before() -> None:
    members = {f"L{i}": {**_member(random.Random(i)), "waybills": [f"W{i}-{j}" for j in range(300)]}
               for i in range(5)}
    case = Case("CASE-W", 1, members=members, identifiers=["domain:example.cn"])
    assert case_summary(case)["waybills"] == reference_summary(case)["waybills"]
    assert len(case_summary(case)["waybills"]) == MAX_CASE_WAYBILLS
