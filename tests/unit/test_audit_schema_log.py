"""`schema_traces`: what leadbus.schemas' log shows against its declaration (kept whole, stamped by the broker)."""

from __future__ import annotations

from leadbus.audit.schema_log import schema_traces
from leadbus.signing import RegistryLog
from leadbus.topics import SCHEMAS

DECLARED = {"cleanup.policy": "delete", "retention.ms": "-1", "message.timestamp.type": "LogAppendTime"}


def _log(offsets: list[int], writer_stamped: frozenset[int] = frozenset()) -> RegistryLog:
    log = RegistryLog()
    for offset in offsets:
        log.note(offset, offset not in writer_stamped)
    return log


def test_a_whole_broker_stamped_log_passes_and_the_declaration_is_todays() -> None:
    assert schema_traces(_log([0, 1, 2])) == []
    assert schema_traces(_log([0, 1, 2]), DECLARED) == []


def test_records_missing_at_the_start_or_in_a_hole_are_deleted_where_the_log_goes_on() -> None:
    found = schema_traces(_log([2, 3, 5]), DECLARED)
    assert [(f.check, f.topic, f.partition, f.offset) for f in found] == [
        ("RECORDS_DELETED", SCHEMAS, 0, 2), ("RECORDS_DELETED", SCHEMAS, 0, 5)]
    assert "0–1" in found[0].message and "records 4 " in found[1].message


def test_every_record_deleted_is_named_at_the_end() -> None:
    log = RegistryLog()
    log.note_missing(4)
    assert [(f.check, f.offset) for f in schema_traces(log, DECLARED)] == [("RECORDS_DELETED", 4)]


def test_writer_stamped_records_are_a_rewrite_at_the_first() -> None:
    found = schema_traces(_log([0, 1, 2], frozenset({1, 2})), DECLARED)
    assert [(f.check, f.offset) for f in found] == [("SCHEMAS_REWRITTEN", 1)]
    assert "2 schema record(s)" in found[0].message


def test_a_compacted_declaration_judges_nothing() -> None:
    assert schema_traces(_log([2, 5], frozenset({5})), {"cleanup.policy": "compact", "retention.ms": "-1"}) == []
