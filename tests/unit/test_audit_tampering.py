"""Tampering the replay's other tests do not try (issue #14's outside check): each is a located failure, never a pass
and never a crash — a tombstone added to a topic the bus writes, and archive files of someone else's making (no
metadata naming the writer schema, or records in another shape), re-chained so that the manifest holds."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest

from leadbus.audit.replay import ReplayOptions, replay
from leadbus.audit.verification import Decodes, ReplayRecord
from leadbus.avro import decode, encode_object, packaged_catalog
from leadbus.producers.simulator import TrafficGenerator
from leadbus.sinks.archive import MANIFEST, ArchiveWriter, Coordinates, ManifestLine, chain_of, read_manifest
from leadbus.topics import CASES, LEADS_ACCEPTED, PUBLISHERS, intake_topic

CATALOG = packaged_catalog()
START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
MS = int(START.timestamp() * 1000)


@pytest.mark.parametrize("topic", [CASES, LEADS_ACCEPTED, "leadbus.region.yrd"])
def test_a_tombstone_on_a_topic_the_bus_writes_is_a_failure_at_its_place(topic: str) -> None:
    found = list(Decodes().check(ReplayRecord(topic, 2, 0, MS, b"CASE-1", None, (), CATALOG)))
    assert [(f.check, f.partition, f.offset, f.failure) for f in found] == [("UNDECODABLE", 2, 0, True)]
    assert "tombstone" in found[0].message


@pytest.mark.parametrize("topic", [intake_topic("SAMR"), PUBLISHERS, "leadbus.state.linking"])
def test_a_tombstone_where_one_is_usual_is_no_finding(topic: str) -> None:
    # intake's own check dead-letters what an agency sent; registries and changelogs are compacted by tombstones
    assert list(Decodes().check(ReplayRecord(topic, 0, 0, MS, b"k", None, (), CATALOG))) == []


# -- archive files of someone else's making ---------------------------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    entry = CATALOG.latest("cn.leadbus.CaseLead")
    root = tmp_path / "archive"
    with ArchiveWriter(root) as writer:
        for i, lead in enumerate(TrafficGenerator(seed=5).leads(12, START, timedelta(seconds=20))):
            where = Coordinates(intake_topic("SAMR"), i % 2, i // 2, MS + 20_000 * i, lead.lead_id.encode(),
                                (("content-type", b"application/vnd.leadbus.avro"),))
            writer.append(where, *decode(CATALOG, encode_object(entry, lead)))
    for path in root.rglob("*.avro"):
        path.chmod(0o644)  # sealed files are read-only; the tamperer is not stopped by that
    return root


def _rewrite(root: Path, line: ManifestLine, schema: Any, records: list[Any], metadata: dict[str, str]) -> str:
    """The file written again as someone with fastavro would, and the manifest chained over it: the new head."""
    path = root / line.path
    with path.open("wb") as fh:
        fastavro.writer(fh, schema, records, metadata=metadata)
    lines, prev = [], "0" * 64
    for old in read_manifest(root):
        digest = hashlib.sha256((root / old.path).read_bytes()).hexdigest()
        chain = chain_of(prev, digest, old.path)
        lines.append(ManifestLine(old.seq, old.path, old.topic, old.partition, old.records, old.first_offset,
                                  old.last_offset, digest, prev, chain).to_json())
        prev = chain
    (root / MANIFEST).write_text("".join(f"{text}\n" for text in lines), encoding="utf-8")
    return prev


def _read(root: Path, line: ManifestLine) -> tuple[Any, list[Any], dict[str, str]]:
    with (root / line.path).open("rb") as fh:
        reader = fastavro.reader(fh)
        meta = {k: v for k, v in reader.metadata.items() if not k.startswith("avro.")}
        return reader.writer_schema, list(reader), meta


def _replayed(root: Path, head: str) -> list[tuple[str, str | None]]:
    report = replay(ReplayOptions(topics=[intake_topic("SAMR")], source=f"archive:{root}", head=head))
    assert report.status == 1
    return [(f.check, f.file) for f in report.failures]


def test_a_file_without_its_writer_schemas_name_is_unreadable_not_a_crash(archive: Path) -> None:
    line = read_manifest(archive)[0]
    schema, records, _ = _read(archive, line)
    head = _rewrite(archive, line, schema, records, {})  # no leadbus.fingerprint: read as raw, its events are not
    found = _replayed(archive, head)
    assert {check for check, path in found if path == line.path} & {"ARCHIVE_UNREADABLE", "ARCHIVE_MODIFIED"}, found


def test_a_file_whose_records_have_another_shape_is_unreadable_not_a_crash(archive: Path) -> None:
    line = read_manifest(archive)[0]
    schema, records, meta = _read(archive, line)
    schema = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "headers"]}
    head = _rewrite(archive, line, schema, [{k: v for k, v in r.items() if k != "headers"} for r in records], meta)
    assert ("ARCHIVE_UNREADABLE", line.path) in _replayed(archive, head)
    schema = {**schema, "fields": [{**f, "type": "string"} if f["name"] == "key" else f for f in schema["fields"]]}
    head = _rewrite(archive, line, schema, [{**r, "key": r["key"].decode()} for r in records], meta)
    assert ("ARCHIVE_UNREADABLE", line.path) in _replayed(archive, head)


def test_an_archive_file_listed_twice_is_one_failure_naming_both_files(archive: Path) -> None:
    """A sealed file copied under another name and listed again, the manifest chained over it: before, the replay read
    its records twice (an OFFSET_ORDER and more per record); now one ARCHIVE_DUPLICATED naming both files."""
    lines = read_manifest(archive)
    original = lines[0]
    copy = original.path.replace(".avro", "-again.avro")
    (archive / copy).write_bytes((archive / original.path).read_bytes())
    last = lines[-1]
    chain = chain_of(last.chain, original.sha256, copy)
    again = ManifestLine(last.seq + 1, copy, original.topic, original.partition, original.records,
                         original.first_offset, original.last_offset, original.sha256, last.chain, chain)
    with (archive / MANIFEST).open("a", encoding="utf-8") as fh:
        fh.write(again.to_json() + "\n")
    report = replay(ReplayOptions(topics=[intake_topic("SAMR")], source=f"archive:{archive}", head=chain))
    assert [(f.check, f.file) for f in report.failures] == [("ARCHIVE_DUPLICATED", copy)], report.failures
    assert original.path in report.failures[0].message
    assert report.records == sum(line.records for line in lines)  # each record read once
