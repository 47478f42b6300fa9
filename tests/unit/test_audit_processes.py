"""`leadbus.audit.processes`: how many processes a verified replay reads with (a pure rule of cores, load and records,
a number given taken as it is), and the intake leads a split replay's other processes hand back as hashes: merged,
the same findings, coordinates and ranges as merging all they read."""

from __future__ import annotations

import pickle
import random

import pytest

from leadbus.audit.processes import SPARE_CORE, hashes_of, picked, replay_workers, sent_intake, wanted
from leadbus.audit.verification import Finding, IntakeLeads
from tests.audit_helpers import intake_lead_values, intake_read, leads_split


@pytest.mark.parametrize(("records", "cpus", "load", "requested", "expected"), [
    (100_000, 2, 0.2, None, 2),  # a quiet machine of two cores: a core for the second process
    (100_000, 2, 1.0, None, 2),  # one core's worth of other work: the other core is free
    (100_000, 2, 1.01, None, 1),  # more than that: the second process would share a core
    (100_000, 2, 3.0, None, 1),  # helpers' benches on the machine
    (100_000, 4, 2.5, None, 2),  # four cores, one and a half free
    (100_000, 4, 3.5, None, 1),
    (100_000, 1, 0.0, None, 1),  # one core
    (100_000, None, 0.0, None, 1),  # cores unknown
    (100_000, 2, None, None, 2),  # no load average: as before the rule
    (19_999, 2, 0.0, None, 1),  # too few records for a second process to pay
    (20_000, 2, 0.0, None, 2),
    (100_000, 2, 3.0, 2, 2),  # a number given is taken as it is, whatever the load
    (10, 2, 0.0, 3, 3),
    (100_000, 2, 0.0, 1, 1),
    (100_000, 2, 0.0, 0, 1),
])
def test_the_processes_follow_the_cores_the_load_and_the_records(records: int, cpus: int | None, load: float | None,
                                                                 requested: int | None, expected: int) -> None:
    assert replay_workers(records, cpus=cpus, load=load, requested=requested, split_min=20_000) == expected


def test_the_rule_turns_at_a_spare_core() -> None:
    for cpus in (2, 3, 8):
        assert replay_workers(10**6, cpus=cpus, load=cpus - SPARE_CORE, requested=None, split_min=1) == 2
        assert replay_workers(10**6, cpus=cpus, load=cpus - SPARE_CORE + 0.01, requested=None, split_min=1) == 1


def _merged_whole(mine: IntakeLeads, others: list[IntakeLeads]) -> tuple[list[Finding], IntakeLeads]:
    found = []
    for other in others:
        found.extend(mine.merge(pickle.loads(pickle.dumps(other))))
    return found, mine


def _merged_by_hashes(mine: IntakeLeads, others: list[IntakeLeads]) -> tuple[list[Finding], IntakeLeads]:
    """As `leadbus.audit.split.run_split` does it: each other sends hashes, is asked back for those held elsewhere."""
    sent = [pickle.loads(pickle.dumps(sent_intake(o._seen, o.sources, o.ranges))) for o in others]
    asks = wanted({hash(ident) for ident in mine._seen}, [hashes_of(s) for s in sent])
    found = []
    for other, was, ask in zip(others, sent, asks, strict=True):
        again = IntakeLeads()
        again._seen = pickle.loads(pickle.dumps(picked(other._seen, ask)))
        again.sources, again.ranges = was.sources, was.ranges
        found.extend(mine.merge(again))
    return found, mine


@pytest.mark.parametrize("shared", [0, 1, 7])
@pytest.mark.parametrize("parts", [2, 3])
def test_leads_handed_back_as_hashes_give_the_findings_of_handing_back_all(shared: int, parts: int) -> None:
    leads = intake_lead_values()
    rng = random.Random(12 + shared + parts)
    groups = leads_split(leads, parts, shared, rng)
    if parts == 3 and shared:  # and a lead two forked processes read, neither of them the parent
        topic, value = next((t, v) for t, p, v in groups[1] if not any(v == w for _, _, w in groups[0]))
        groups[2].append((topic, 2, value))

    def fresh() -> tuple[IntakeLeads, list[IntakeLeads]]:
        return intake_read(groups[0]), [intake_read(g) for g in groups[1:]]

    whole_found, whole = _merged_whole(*fresh())
    found, merged = _merged_by_hashes(*fresh())
    assert sorted(found, key=repr) == sorted(whole_found, key=repr)
    assert (shared == 0) == (found == [])
    assert merged.sources == whole.sources and merged.ranges == whole.ranges


def test_the_hashes_are_eight_bytes_a_lead() -> None:
    seen = {(f"lead-{i}", 1): (b"d" * 32, "t", 0, i, None, None) for i in range(1000)}
    sent = sent_intake(seen, {}, {})
    assert len(sent.hashes) == 8000 and hashes_of(sent) == {hash(ident) for ident in seen}
    assert picked(seen, set()) == {} and list(picked(seen, {hash(("lead-5", 1)), hash(("lead-2", 1))})) == [
        ("lead-2", 1), ("lead-5", 1)]
