"""`SchemaPublishedFirst`: a record written with a schema known from the topic alone, before that schema's first
publication on leadbus.schemas (the topic written again), is SCHEMA_PUBLISHED_LATER at the record."""

from __future__ import annotations

from leadbus.audit.schema_order import PUBLISHED_LATER, SchemaPublishedFirst, topic_only
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import packaged_catalog
from leadbus.topics import SCHEMAS

FP = bytes.fromhex("0102030405060708")
OTHER = bytes.fromhex("1112131415161718")
PUBLISHED = 1_700_000_100_000
CATALOG = packaged_catalog()


def record(topic: str, offset: int, stamp: int, fingerprint: bytes = FP, partition: int = 0) -> ReplayRecord:
    return ReplayRecord(topic, partition, offset, stamp, b"k", b"\xc3\x01" + fingerprint + b"\x02", [], CATALOG)


def judged(check: SchemaPublishedFirst, records: list[ReplayRecord]) -> list[tuple[str, str, int, int, bool]]:
    return [(f.check, f.topic, f.partition or 0, f.offset or 0, f.failure) for r in records for f in check.check(r)]


def test_a_record_before_its_schemas_first_publication_is_named_once_per_partition_with_the_schema_record() -> None:
    check = SchemaPublishedFirst({FP: (7, PUBLISHED, "leadbus.Case")})
    found = judged(check, [record("leadbus.cases", 3, PUBLISHED - 60_000), record("leadbus.cases", 4, PUBLISHED),
                           record("leadbus.cases", 0, PUBLISHED - 60_000, partition=1)])
    assert found == [(PUBLISHED_LATER, "leadbus.cases", 0, 3, True), (PUBLISHED_LATER, "leadbus.cases", 1, 0, True)]
    message = next(iter(check.check(record("leadbus.handover", 0, PUBLISHED - 60_000)))).message
    assert f"{SCHEMAS}[0]@7" in message and "60 s later" in message and "leadbus.Case" in message


def test_records_after_it_within_the_skew_of_other_schemas_or_not_avro_pass() -> None:
    check = SchemaPublishedFirst({FP: (0, PUBLISHED, "leadbus.Case")})
    records = [record("leadbus.cases", 0, PUBLISHED - 10_000), record("leadbus.cases", 0, 1, OTHER, partition=2),
               ReplayRecord("leadbus.cases", 3, 0, 1, None, None, [], CATALOG),
               ReplayRecord("leadbus.cases", 4, 0, 1, None, b"garbage", [], CATALOG)]
    assert judged(check, records) == []
    assert list(check.finish()) == []


def test_on_an_intake_topic_it_is_a_notice_and_shipped_schemas_are_not_judged() -> None:
    check = SchemaPublishedFirst({FP: (0, PUBLISHED, "leadbus.Lead")})
    assert judged(check, [record("leadbus.intake.SAMR", 0, 1)]) == [(PUBLISHED_LATER, "leadbus.intake.SAMR", 0, 0,
                                                                      False)]
    assert topic_only({FP: (0, 1, "a"), OTHER: (1, 2, "b")}, [FP]) == {OTHER: (1, 2, "b")}
