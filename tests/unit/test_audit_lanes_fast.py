"""The lanes' fast path: a verified run of consecutive numbers moves its lane at once; anything else goes number by
number. Same findings, at the same coordinates, as observing each record alone — anomalies inside a run included.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from leadbus.audit.verification import Finding, LaneTracker, Mark
from leadbus.producers.signing import MemorySequences, SigningSealer
from tests.unit.test_audit_chain import KEYS, TOPIC, Rec, _leads, _located, _replay

LANE = ("SAMR.33", TOPIC, 0)


def _one_by_one(runs: list[list[int]]) -> list[Finding]:
    tracker, found, offset = LaneTracker(), [], 0
    for run in runs:
        for sequence in run:
            found += tracker.observe(LANE, sequence, Mark(TOPIC, 0, offset))
            offset += 1
    return found + tracker.finish()


def _by_runs(runs: list[list[int]]) -> list[Finding]:
    tracker, found, offset = LaneTracker(), [], 0
    for run in runs:
        marks = [Mark(TOPIC, 0, offset + i) for i in range(len(run))]
        offset += len(run)
        found += tracker.observe_run(LANE, run, marks)
    return found + tracker.finish()


@pytest.mark.parametrize("seed", range(200))
def test_runs_give_the_same_findings_as_records_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    numbers = list(range(rng.randint(1, 5), rng.randint(10, 80)))
    for _ in range(rng.randint(0, 4)):  # drop, repeat, swap, jump: what tampering or a broken producer gives
        i = rng.randrange(len(numbers))
        kind = rng.choice(("drop", "repeat", "swap", "jump"))
        if kind == "drop" and len(numbers) > 1:
            del numbers[i]
        elif kind == "repeat":
            numbers.insert(rng.randrange(len(numbers) + 1), numbers[i])
        elif kind == "swap" and i + 1 < len(numbers):
            numbers[i], numbers[i + 1] = numbers[i + 1], numbers[i]
        elif kind == "jump":
            numbers[i:] = [n + rng.randint(1, 3) for n in numbers[i:]]
    runs, at = [], 0
    while at < len(numbers):
        size = rng.randint(1, 12)
        runs.append(numbers[at:at + size])
        at += size
    assert _by_runs(runs) == _one_by_one(runs)


class _Scripted(MemorySequences):
    """A producer that numbers its events as told (a broken or dishonest publisher: it still signs the chain)."""

    def __init__(self, numbers: list[int]) -> None:
        super().__init__()
        self.numbers = iter(numbers)

    def next(self, lane: str) -> int:
        return next(self.numbers)


def _chained(numbers: list[int]) -> list[Rec]:
    recs = _leads(len(numbers))
    sealer = SigningSealer("SAMR.33", KEYS["SAMR.33"], _Scripted(numbers))
    return [replace(r, headers=sealer.seal(TOPIC, r.key, r.value, 0)) for r in recs]


def test_numbers_out_of_line_inside_one_signed_chain_are_located() -> None:
    """The chain links and every signature holds, so the run is one: its numbers are not consecutive (a number
    used twice, one skipped, two exchanged), so they go one by one and each is named at its offset."""
    numbers = list(range(1, 301))
    numbers[150] = 150  # offset 150 carries 150 again (offset 149 has it), and 151 is never used
    numbers[200:] = [n + 1 for n in numbers[200:]]  # 201 never used: a gap before offset 200
    numbers[250], numbers[251] = numbers[251], numbers[250]
    recs = _chained(numbers)
    fast, verifier = _replay(recs, window=128)
    alone, _ = _replay(recs, window=1)
    assert verifier.signatures <= 4, "one chain: one signature per window"
    assert _located(fast) == _located(alone)
    assert _located(fast) == {("SEQUENCE_REPLAYED", 0, 150), ("SEQUENCE_GAP", 0, 151), ("SEQUENCE_GAP", 0, 200),
                              ("SEQUENCE_REORDERED", 0, 251)}


def test_a_clean_chain_across_windows_has_no_finding_and_keeps_its_place() -> None:
    # read from a later offset (a period, or a partition retention trimmed): the lane may start at any number
    found, verifier = _replay(_chained(list(range(7, 307))), window=100, first_offset=1000)
    assert found == [] and verifier.signatures == 3


def test_a_lane_read_from_the_partitions_first_record_must_start_at_one() -> None:
    """Read from offset 0 nothing came before (retention trims a partition's start, so its first offset is higher):
    a lane whose first number there is 7 lost 1–6 — the first records of a partition removed (a rewritten topic)."""
    found, _ = _replay(_chained(list(range(7, 307))), window=100)
    assert _located(found) == {("SEQUENCE_GAP", 0, 0)} and "1–6" in found[0].message
    found, _ = _replay(_chained(list(range(1, 301))), window=100)
    assert found == []


def test_a_lane_whose_partition_opens_past_aborted_records_must_start_at_one_too() -> None:
    """A partition read from offset 0 whose first visible record sits later (a rewriter began it with a transaction it
    aborted) is judged as one read from its first record: the source marks that record (`opens_log`)."""
    found, _ = _replay(_chained(list(range(7, 307))), window=100, first_offset=5, opens_log=True)
    assert _located(found) == {("SEQUENCE_GAP", 0, 5)} and "1–6" in found[0].message
    found, _ = _replay(_chained(list(range(1, 301))), window=100, first_offset=5, opens_log=True)
    assert found == []
    found, _ = _replay(_chained(list(range(7, 307))), window=100, first_offset=5)  # trimmed by retention: no start
    assert found == []
