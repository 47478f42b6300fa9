"""The first records of a partition the bus keeps forever, removed (DeleteRecords): before, a replay from the log's
start took the chain met mid-way for retention's cut, and one `--from` later never looked there (exit 0 both)."""

from __future__ import annotations

from leadbus.audit.log_start import kept_forever, removed_heads
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED, PUBLISHERS, load_declarations


def test_the_declared_topics_kept_forever_are_the_records_not_the_compacted_or_the_expiring() -> None:
    kept = kept_forever(load_declarations())
    assert {CASES, HANDOVER, LEADS_ACCEPTED, "leadbus.intake.SAMR"} <= kept
    assert PUBLISHERS not in kept and "leadbus.state.linking" not in kept and "leadbus.region.yrd" not in kept


def test_a_partition_kept_forever_not_starting_at_zero_is_one_failure_at_its_first_offset() -> None:
    found = removed_heads({(CASES, 0): 0, (CASES, 1): 3, ("leadbus.region.yrd", 0): 9, (PUBLISHERS, 0): 4})
    assert [(f.check, f.topic, f.partition, f.offset, f.failure) for f in found] == [
        ("RECORDS_DELETED", CASES, 1, 3, True)]
    assert "0–2 were removed" in found[0].message
