"""Records removed at the head of a partition kept for a finite time (issue #14, round 3's residual): retention and
`DeleteRecords` both move the log's start past 0. Retention removes only what is `retention.ms` old; the first record
still there, stage-sealed at number n > 1, had its chain's records 1..n-1 before it, sealed with the same key, so
written after that key's broker-stamped registration: a key registered less than the retention ago means a deletion."""

from __future__ import annotations

from leadbus.audit.log_start import kept_for, within_retention
from leadbus.signing import KeyRegistry, KeyWritten, RegistryLog
from leadbus.topics import load_declarations
from tests.unit.test_stage_seals import KEY, day, registry, sealer

DAY = 86_400_000
YEAR = 365 * DAY
NOW = 1_800_000_000_000
ROUTED = "leadbus.region.yrd"


def _registry(written_ms: int, log: RegistryLog | None = None) -> KeyRegistry:
    reg = registry(KEY)
    for key in reg.keys_of("LEADBUS-linking"):
        reg.written[(key.publisher, key.key_id)] = KeyWritten(4, written_ms, True)
    reg.log = RegistryLog(next_offset=5) if log is None else log
    return reg


def _first(number: int) -> tuple[int, tuple[tuple[str, bytes | None], ...]]:
    written = [w for w in day(sealer(), transactions=3, per=4, partitions=1)]
    return 17, tuple(written[number - 1].headers)


def test_a_chain_met_mid_way_whose_key_is_younger_than_the_retention_was_cut_by_a_deletion() -> None:
    found = within_retention({(ROUTED, 2): _first(3)}, _registry(NOW - 30 * DAY), NOW, {ROUTED: YEAR})
    assert [(f.check, f.topic, f.partition, f.offset) for f in found] == [("RECORDS_DELETED", ROUTED, 2, 17)]
    assert "records 1–2" in found[0].message and "leadbus.publishers[0]@4" in found[0].message and found[0].failure


def test_what_retention_can_explain_or_nothing_dates_is_not_judged() -> None:
    old_key = _registry(NOW - YEAR - DAY)  # registered longer ago than the retention: retention may have removed them
    assert within_retention({(ROUTED, 2): _first(3)}, old_key, NOW, {ROUTED: YEAR}) == []
    young = _registry(NOW - 30 * DAY)
    assert within_retention({(ROUTED, 2): _first(1)}, young, NOW, {ROUTED: YEAR}) == []  # the chain opens there
    assert within_retention({(ROUTED, 2): (3, ())}, young, NOW, {ROUTED: YEAR}) == []  # not stage-sealed
    assert within_retention({("leadbus.other", 0): _first(3)}, young, NOW, {ROUTED: YEAR}) == []  # not declared
    cut = _registry(NOW - 30 * DAY, RegistryLog(next_offset=5, missing=[(0, 2)]))  # the registry's own traces fail
    assert within_retention({(ROUTED, 2): _first(3)}, cut, NOW, {ROUTED: YEAR}) == []
    bare = registry(KEY)  # not read from the topic
    assert within_retention({(ROUTED, 2): _first(3)}, bare, NOW, {ROUTED: YEAR}) == []


def test_the_routed_topics_are_declared_kept_a_year_and_the_intake_topics_are_not_trimmed() -> None:
    kept = kept_for(load_declarations())
    assert kept[ROUTED] == YEAR and "leadbus.intake.SAMR" not in kept and "leadbus.publishers" not in kept
