"""Stage-sealed records moved between partitions (issue #14's outside check, round 2): a record swapped with one of
another partition, or moved to one, is named where it sits and where it was sealed for (`STAGE_RECORD_MOVED`), the
gap it left is named once, and the lanes go on from where they were — not a run of `STAGE_SEQUENCE_REPLAYED` over
every later record of the partition it landed in (what the replay reported before)."""

from __future__ import annotations

from dataclasses import replace

from leadbus.audit.verification import Finding
from leadbus.stage_seals import SEQUENCE_HEADER, SIGNATURE_HEADER
from tests.unit.test_stage_seals import KEY, Written, day, registry, sealer
from tests.unit.test_stage_seals_quick import same


def partitions(written: list[Written]) -> dict[int, list[Written]]:
    out: dict[int, list[Written]] = {}
    for w in written:
        out.setdefault(w.partition, []).append(w)
    return out


def written(parts: dict[int, list[Written]]) -> list[Written]:
    """Each partition's records as listed: the order and the partition they are written to."""
    return [replace(w, partition=p) for p in sorted(parts) for w in parts[p]]


def unsigned_in_middle(rs: list[Written]) -> int:
    return next(i for i in range(len(rs) // 2, len(rs)) if all(n != SIGNATURE_HEADER for n, _ in rs[i].headers))


def number(w: Written) -> bytes | None:
    return next(v for n, v in w.headers if n == SEQUENCE_HEADER)


def unsigned(w: Written) -> bool:
    return all(n != SIGNATURE_HEADER for n, _ in w.headers)


def shown(found: list[Finding]) -> list[tuple[str, int | None, int | None]]:
    return sorted((f.check, f.partition, f.offset) for f in found)


def test_records_swapped_between_partitions_are_named_at_both_places() -> None:
    parts = partitions(day(sealer(), transactions=6, per=9))
    a, b = unsigned_in_middle(parts[0]), unsigned_in_middle(parts[1]) - 2
    assert parts[0][a] is not parts[1][b]
    parts[0][a], parts[1][b] = parts[1][b], parts[0][a]
    found = same(written(parts), registry(KEY))
    moved = {(f.partition, f.offset): f.message for f in found if f.check == "STAGE_RECORD_MOVED"}
    assert set(moved) == {(0, a), (1, b)}, shown(found)
    assert f"to follow leadbus.cases[1]@{b - 1}," in moved[(0, a)]
    assert f"to follow leadbus.cases[0]@{a - 1}," in moved[(1, b)]
    # each partition: the stray record, the number it replaced missing right after it; nothing further on
    assert all(f.offset in (a, a + 1) if f.partition == 0 else f.offset in (b, b + 1) for f in found), shown(found)
    assert len(found) == 6, shown(found)


def test_a_record_moved_into_the_middle_of_another_partition_is_one_finding_there() -> None:
    parts = partitions(day(sealer(), transactions=6, per=9))
    a = unsigned_in_middle(parts[0])
    at = len(parts[1]) // 2
    parts[1].insert(at, parts[0].pop(a))
    found = same(written(parts), registry(KEY))
    assert ("STAGE_RECORD_MOVED", 1, at) in shown(found)
    assert [f for f in found if f.partition == 1 and f.offset != at] == [], shown(found)
    assert ("STAGE_SEQUENCE_GAP", 0, a) in shown(found)  # where it was taken from


def test_a_record_copied_into_another_partition_is_one_finding_there_and_the_lane_goes_on() -> None:
    parts = partitions(day(sealer(), transactions=6, per=9))
    at = len(parts[1]) // 2
    parts[1].insert(at, parts[0][unsigned_in_middle(parts[0])])
    found = same(written(parts), registry(KEY))
    assert shown(found) == [("STAGE_OUT_OF_PLACE", 1, at)], shown(found)  # it has the next number, not the link


def test_records_of_the_same_number_swapped_between_partitions_are_named_at_both_places() -> None:
    """Two partitions of one chain at the same place swap records of the same number: each lane meets the next number
    with another link (not a gap), and the record after it links to neither — the stray is still paired with the
    place it was sealed for (a red-team day whose partitions were of equal length, before: two STAGE_CHAIN_BROKEN on
    each side and no STAGE_RECORD_MOVED)."""
    parts = partitions(day(sealer(), transactions=6, per=9))
    a, b = next((a, b) for a in range(len(parts[0]) // 2, len(parts[0]) - 1) if unsigned(parts[0][a])
                for b in range(1, len(parts[1]) - 1)
                if unsigned(parts[1][b]) and number(parts[1][b]) == number(parts[0][a]))
    parts[0][a], parts[1][b] = parts[1][b], parts[0][a]
    found = same(written(parts), registry(KEY))
    moved = {(f.partition, f.offset): f.message for f in found if f.check == "STAGE_RECORD_MOVED"}
    assert set(moved) == {(0, a), (1, b)}, shown(found)
    assert f"to follow leadbus.cases[1]@{b - 1}," in moved[(0, a)]
    assert f"to follow leadbus.cases[0]@{a - 1}," in moved[(1, b)]
    assert all(f.offset in (a - 1, a, a + 1) if f.partition == 0 else f.offset in (b - 1, b, b + 1) for f in found), \
        shown(found)
