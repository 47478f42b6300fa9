"""`archived_ends`: a Kafka replay's partitions against the records the archive's published heads say it sealed."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.archive_heads import PublishedHead
from leadbus.audit.archived_ends import HEADS_DUE_MS, heads_gone, missing, sealed_counts
from leadbus.signing import KeyRegistry
from leadbus.sinks.archive import ZERO_CHAIN, ManifestLine, chain_of
from leadbus.sinks.archive_heads import counted, head_record
from tests.unit.test_audit_archive_heads import KEY, REGISTRY, T0

CASES = "leadbus.cases"


def line(seq: int, partition: int, first: int, records: int) -> ManifestLine:
    digest = str(seq).ljust(64, "0")
    path = f"{CASES}/2026-01-01/00-p{partition}-{first}.avro"
    return ManifestLine(seq, path, CASES, partition, records, first, first + records - 1, digest, ZERO_CHAIN,
                        chain_of(ZERO_CHAIN, digest, path))


def head(offset: int, lines: list[ManifestLine], key: Ed25519PrivateKey | None = KEY,
         archive: str = "leadbus-archive") -> PublishedHead:
    record_key, value, headers = head_record(archive, lines[-1], key, counted(lines))
    return PublishedHead(offset, 1_700_000_000_000, True, value,
                         tuple((n, v if isinstance(v, bytes) or v is None else v.encode()) for n, v in headers),
                         record_key)


LINES = [line(1, 0, 0, 10), line(2, 1, 0, 4), line(3, 0, 12, 5)]  # partition 0: 15 records (markers between)


def test_a_head_carries_the_records_sealed_per_partition() -> None:
    doc = json.loads(head(0, LINES).value)
    assert doc["records"] == {CASES: {"0": 15, "1": 4}} and doc["seq"] == 3


def test_a_log_as_long_as_what_was_sealed_is_no_finding_even_without_the_markers_offsets() -> None:
    sealed = sealed_counts([head(0, LINES)], REGISTRY)
    assert missing(sealed, {(CASES, 0): 15, (CASES, 1): 4}, [CASES]) == []  # written back whole, no markers
    assert missing(sealed, {(CASES, 0): 19, (CASES, 1): 9}, [CASES]) == []


def test_a_partition_emptied_cut_short_or_gone_is_named_at_its_end() -> None:
    sealed = sealed_counts([head(0, LINES)], REGISTRY)
    found = missing(sealed, {(CASES, 0): 0, (CASES, 1): 4}, [CASES])
    assert [(f.check, f.partition, f.offset, f.failure) for f in found] == [("RECORDS_DELETED", 0, 0, True)]
    assert "leadbus.archive.heads[0]@0" in found[0].message and "every record" in found[0].message
    found = missing(sealed, {(CASES, 0): 11}, [CASES])
    assert [(f.partition, f.offset) for f in found] == [(0, 11), (1, 0)]
    assert "4 record(s)" in found[0].message and "no partition 1" in found[1].message


def test_only_the_replayed_topics_and_the_newest_usable_head_of_each_archive_count() -> None:
    early = head(0, LINES[:1])
    forged = head(2, [line(4, 0, 0, 99)], key=Ed25519PrivateKey.generate())  # not the sink's key: passed over
    sealed = sealed_counts([early, head(1, LINES), forged], REGISTRY)
    assert sealed[(CASES, 0)][0] == 15 and sealed[(CASES, 0)][1].offset == 1
    assert missing(sealed, {}, ["leadbus.handover"]) == []
    other = head(3, [line(1, 0, 0, 20)], archive="second")
    assert sealed_counts([head(1, LINES), other], REGISTRY)[(CASES, 0)][0] == 20


def test_heads_without_counts_or_of_another_shape_tell_nothing() -> None:
    old = head(0, LINES)
    doc = json.loads(old.value)
    del doc["records"]
    bare = PublishedHead(0, 0, True, json.dumps(doc).encode(), (), None)
    odd = PublishedHead(1, 0, True, json.dumps({**doc, "records": {CASES: {"x": 1}}}).encode(), (), None)
    junk = PublishedHead(2, 0, True, b"\xff", (), None)
    assert sealed_counts([bare, odd, junk], REGISTRY) == {}


REGISTERED_MS = int(T0.timestamp() * 1000)  # when REGISTRY's archive key was registered


def test_no_head_of_a_key_registered_long_enough_is_heads_missing() -> None:
    later = REGISTERED_MS + HEADS_DUE_MS
    found = heads_gone([], REGISTRY, later)
    assert [(f.check, f.topic, f.partition, f.offset, f.failure) for f in found] == [
        ("ARCHIVE_HEADS_MISSING", "leadbus.archive.heads", 0, 0, True)]
    assert "holds no record" in found[0].message and "2026-01-01T00:00:00Z" in found[0].message
    forged = head(7, LINES, key=Ed25519PrivateKey.generate())  # the topic refilled with heads of another key
    found = heads_gone([forged, head(8, LINES, key=None)], REGISTRY, later)
    assert [(f.check, f.offset) for f in found] == [("ARCHIVE_HEADS_MISSING", 8)]
    assert "2 record(s), none a head signed with it" in found[0].message


def test_a_signed_head_a_young_key_or_no_archive_key_is_no_finding() -> None:
    later = REGISTERED_MS + HEADS_DUE_MS
    assert heads_gone([head(0, LINES), head(1, LINES, key=None)], REGISTRY, later) == []
    assert heads_gone([], REGISTRY, later - 1) == []  # a sink started on a quiet bus: time to seal its first files
    assert heads_gone([], KeyRegistry(), later) == []  # no archive sink with a key on this bus
    assert heads_gone([], None, later) == []
