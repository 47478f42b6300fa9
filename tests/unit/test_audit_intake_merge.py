"""`IntakeLeads.merge` (a split replay's other process handing back what it read): with no lead read by both processes
it takes the other's leads in at once; the leads, and the findings, are those of taking them in one by one."""

from __future__ import annotations

import random

from leadbus.audit.verification import Finding, IntakeLeads, Mark, where
from tests.audit_helpers import intake_lead_values, intake_read, leads_split


def _one_by_one(mine: IntakeLeads, other: IntakeLeads) -> tuple[dict[object, object], list[Finding]]:
    """The merge as it was: each of the other's leads in turn."""
    seen = dict(mine._seen)
    found = []
    for ident, at in other._seen.items():
        before = seen.get(ident)
        if before is None:
            seen[ident] = at
            continue
        same = before[0] == at[0]
        found.append(Mark(*at[1:]).finding(
            "REDELIVERED" if same else "REVISION_CONFLICT",
            f"lead {ident[0]} revision {ident[1]} again, {'identical to' if same else 'with other content than'} "
            f"{where(*before[1:])} (intake {'drops' if same else 'refuses'} it)", failure=False))
    return seen, found


def test_merging_gives_the_leads_and_findings_of_taking_them_in_one_by_one() -> None:
    leads = intake_lead_values()
    rng = random.Random(12)
    for shared in (0, 1, 7):  # leads both processes read: none (the usual case), one, several
        halves = leads_split(leads, 2, shared, rng)
        mine = intake_read(halves[0] + [(t, 0, v) for t, _, v in halves[1][150:150 + shared]])
        other = intake_read(halves[1])
        expected_seen, expected_found = _one_by_one(mine, other)
        found = mine.merge(other)
        assert found == expected_found and (shared == 0) == (found == [])
        assert mine._seen == expected_seen and list(mine._seen) == list(expected_seen)  # the same order too
