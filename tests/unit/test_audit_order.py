"""Partition order in a replay: offsets strictly increase; a timestamp step back beyond the skew is located."""

from __future__ import annotations

from leadbus.audit.verification import PartitionOrder, ReplayRecord
from leadbus.avro import packaged_catalog

CATALOG = packaged_catalog()


def _check(topic: str, stamps: list[tuple[int, int]]) -> list[tuple[str, int, bool]]:
    order = PartitionOrder(skew_ms=15_000)
    found = []
    for offset, ms in stamps:
        found += order.check(ReplayRecord(topic, 0, offset, ms, b"k", b"v", (), CATALOG))
    return [(f.check, f.offset or 0, f.failure) for f in found]


def test_in_order_is_silent_and_small_steps_back_are_skew() -> None:
    assert _check("leadbus.cases", [(0, 100_000), (1, 101_000), (2, 90_000), (5, 120_000)]) == []


def test_an_offset_out_of_order_and_a_step_back_are_located() -> None:
    found = _check("leadbus.cases", [(0, 100_000), (1, 200_000), (1, 200_001), (2, 150_000), (3, 210_000)])
    assert found == [("OFFSET_ORDER", 1, True), ("TIMESTAMP_BACKWARDS", 2, True)]


def test_on_an_intake_topic_a_step_back_is_a_notice() -> None:
    assert _check("leadbus.intake.SAMR", [(0, 200_000), (1, 100_000)]) == [("TIMESTAMP_BACKWARDS", 1, False)]


def test_a_partitions_last_record_dated_after_the_replay_began_is_located_at_the_end() -> None:
    """A record's time is not sealed: a partition's last records re-dated into the future (out of any period an auditor
    asks for) passed, the order within the partition intact. The replay's start bounds every record's time."""
    order = PartitionOrder(skew_ms=15_000, now_ms=1_000_000)
    for topic, stamps in (("leadbus.cases", [(0, 900_000), (1, 950_000), (2, 4_600_000)]),
                          ("leadbus.intake.SAMR", [(0, 900_000), (1, 1_020_000)]),
                          ("leadbus.handover", [(0, 900_000), (1, 1_010_000)])):  # within the skew: silent
        for offset, ms in stamps:
            assert not list(order.check(ReplayRecord(topic, 0, offset, ms, b"k", b"v", (), CATALOG)))
    found = [(f.check, f.topic, f.offset, f.failure) for f in order.finish()]
    assert found == [("TIMESTAMP_IN_FUTURE", "leadbus.cases", 2, True),
                     ("TIMESTAMP_IN_FUTURE", "leadbus.intake.SAMR", 1, False)]
    assert list(PartitionOrder(skew_ms=15_000).finish()) == []  # no start given: not judged
