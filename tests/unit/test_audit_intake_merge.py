"""`IntakeLeads.merge` (a split replay's other process handing back what it read): with no lead read by both processes
it takes the other's leads in at once; the leads, and the findings, are those of taking them in one by one."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from leadbus.audit.verification import Finding, IntakeLeads, Mark, ReplayRecord, where
from leadbus.avro import encode_object, packaged_catalog
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import intake_topic

CATALOG = packaged_catalog()
START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _read(values: list[tuple[str, int, bytes]]) -> IntakeLeads:
    intake = IntakeLeads()
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, value in values:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        list(intake.check(ReplayRecord(topic, partition, offset, 0, b"k", value, (), CATALOG)))
    return intake


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
    entry = CATALOG.latest("cn.leadbus.CaseLead")
    leads = [(intake_topic(lead.publisher.agency), encode_object(entry, lead))
             for lead in TrafficGenerator(seed=3).leads(300, START, timedelta(seconds=5))]
    rng = random.Random(12)
    for shared in (0, 1, 7):  # leads both processes read: none (the usual case), one, several
        halves: list[list[tuple[str, int, bytes]]] = [[], []]
        for i, (topic, value) in enumerate(leads):
            halves[i % 2].append((topic, i % 2, value))
        for topic, value in rng.sample(leads, shared):
            halves[1].append((topic, 1, value if rng.random() < 0.5 else value[:-1] + b"x"))
        mine, other = _read(halves[0] + [(t, 0, v) for t, _, v in halves[1][150:150 + shared]]), _read(halves[1])
        expected_seen, expected_found = _one_by_one(mine, other)
        found = mine.merge(other)
        assert found == expected_found and (shared == 0) == (found == [])
        assert mine._seen == expected_seen and list(mine._seen) == list(expected_seen)  # the same order too
