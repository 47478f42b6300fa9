"""A record moved between two partitions that two replay processes read: each process sees only its half (a stray
here, a gap there); the parent pairs them into one STAGE_RECORD_MOVED, as one process would have. Before, which
partitions fell to which process (their sizes) decided whether the move was named: a flaky red-team test."""

from __future__ import annotations

from leadbus.audit.stage_seals import moved, moved_across
from leadbus.audit.verification import Mark

CASES = "leadbus.cases"
LINK = b"\x01" * 32


def test_a_stray_in_one_process_and_its_gap_in_another_are_paired_once() -> None:
    stray = {("LEADBUS-linking", "c1", LINK): (7, Mark(CASES, 3, 40))}
    hole = {("LEADBUS-linking", "c1", LINK): (7, Mark(CASES, 5, 11))}
    found = moved_across([[(stray, {})], [({}, hole)]])
    assert [(f.check, f.partition, f.offset) for f in found] == [("STAGE_RECORD_MOVED", 3, 40)]
    assert f"to follow {CASES}[5]@11," in found[0].message


def test_pairs_within_one_process_are_left_to_it_and_other_numbers_do_not_pair() -> None:
    stray = {("LEADBUS-linking", "c1", LINK): (7, Mark(CASES, 3, 40))}
    hole = {("LEADBUS-linking", "c1", LINK): (7, Mark(CASES, 5, 11))}
    assert len(moved(stray, hole)) == 1  # what the process itself names in `finish`
    assert moved_across([[(stray, hole)], [({}, {})]]) == []  # not named twice
    other = {("LEADBUS-linking", "c1", LINK): (8, Mark(CASES, 5, 11))}
    assert moved_across([[(stray, {})], [({}, other)]]) == []
    elsewhere = {("LEADBUS-linking", "c2", LINK): (7, Mark(CASES, 5, 11))}
    assert moved_across([[(stray, {})], [({}, elsewhere)]]) == []
