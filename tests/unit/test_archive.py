"""The tamper-evident archive: files and manifest written, verified, and every kind of tampering named."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import pytest

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.avro.codec import HEADER_SIZE, MAGIC
from leadbus.producers.simulator import TrafficGenerator
from leadbus.sinks.archive import (
    MANIFEST,
    PARTIAL,
    ArchiveError,
    ArchiveWriter,
    Coordinates,
    Problem,
    read_events,
    read_manifest,
    verify,
)
from leadbus.topics import intake_topic

START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
GARBAGE = b"\x00not avro at all"
Event = tuple[Coordinates, bytes]


def _events(n: int = 300) -> list[Event]:
    """Leads as they would sit on the intake topics, 20 s apart: 08:00 to 09:40, so two hours."""
    entry = packaged_catalog().latest("cn.leadbus.CaseLead")
    offsets: Counter[tuple[str, int]] = Counter()
    out: list[Event] = []
    for i, lead in enumerate(TrafficGenerator(seed=7).leads(n, START, timedelta(seconds=20))):
        topic, partition = intake_topic(lead.publisher.agency), i % 3
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] += 2  # gaps, as transaction markers leave them
        millis = int(lead.reported_at.timestamp() * 1000)
        where = Coordinates(topic, partition, offset, millis, lead.lead_id.encode(), (("seq", str(i).encode()),))
        out.append((where, encode(entry, lead.to_avro())))
    last = out[-1][0]
    out.append((Coordinates(last.topic, last.partition, last.offset + 1, last.timestamp_ms), GARBAGE))
    return out


def _append(writer: ArchiveWriter, events: list[Event]) -> None:
    catalog = packaged_catalog()
    for where, value in events:
        if value.startswith(MAGIC):
            writer.append(where, *decode(catalog, value))
        else:
            writer.append(where, None, value)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return _events()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, events: list[Event]) -> Path:
    root = tmp_path_factory.mktemp("archive")
    with ArchiveWriter(root) as writer:
        _append(writer, events)
    return root


@pytest.fixture
def copy(archive: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(archive, target)
    for path in target.rglob("*.avro"):
        path.chmod(0o644)  # sealed files are read-only; the tamperer is not stopped by that
    return target


def _kinds(problems: list[Problem]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in problems:
        out.setdefault(p.kind, set()).add(p.path)
    return out


def _manifest_lines(root: Path) -> list[str]:
    return (root / MANIFEST).read_text(encoding="utf-8").splitlines(keepends=True)


# -- writing ---------------------------------------------------------------------------------------


def test_files_per_topic_partition_and_hour_with_a_chained_manifest(archive: Path, events: list[Event]) -> None:
    lines = read_manifest(archive)
    files = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*.avro"))
    assert sorted(line.path for line in lines) == files
    assert {path.split("/")[2][:2] for path in files} == {"08", "09"}
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    assert lines[0].prev == "0" * 64
    assert all(b.prev == a.chain for a, b in itertools.pairwise(lines))
    assert sum(line.records for line in lines) == len(events)
    assert not (archive / PARTIAL).exists() or not any((archive / PARTIAL).rglob("*.avro"))
    assert verify(archive) == []
    assert verify(archive, head=lines[-1].chain) == []


def test_archived_events_carry_their_coordinates_and_reencode_to_the_published_bytes(
        archive: Path, events: list[Event]) -> None:
    published = {(w.topic, w.partition, w.offset): (w, value) for w, value in events}
    seen: Counter[tuple[str, int, int]] = Counter()
    schemas: dict[str, object] = {}
    for line, record in read_events(archive):
        where, value = published[(line.topic, record["partition"], record["offset"])]
        seen[(line.topic, record["partition"], record["offset"])] += 1
        assert record["key"] == where.key
        assert [(h["key"], h["value"]) for h in record["headers"]] == list(where.headers)
        assert int(record["timestamp"].timestamp() * 1000) == where.timestamp_ms
        if value == GARBAGE:
            assert record["event"] == GARBAGE
            continue
        if line.path not in schemas:  # the writer schema embedded in the file, nothing else
            with (archive / line.path).open("rb") as fh:
                wrapper = json.loads(fastavro.reader(fh).metadata["avro.schema"])
            schemas[line.path] = fastavro.parse_schema(next(f["type"] for f in wrapper["fields"]
                                                            if f["name"] == "event"))
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schemas[line.path], record["event"])
        assert body.getvalue() == value[HEADER_SIZE:]
    assert set(seen) == set(published)
    assert set(seen.values()) == {1}


# -- tampering -------------------------------------------------------------------------------------


def test_a_flipped_byte_is_reported_as_modified(copy: Path) -> None:
    path = read_manifest(copy)[3].path
    target = copy / path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert _kinds(verify(copy)) == {"modified": {path}}


def test_a_removed_file_is_reported_as_removed(copy: Path) -> None:
    path = read_manifest(copy)[5].path
    (copy / path).unlink()
    assert _kinds(verify(copy)) == {"removed": {path}}


def test_two_swapped_manifest_lines_are_reported_as_reordered(copy: Path) -> None:
    text = _manifest_lines(copy)
    text[2], text[3] = text[3], text[2]
    (copy / MANIFEST).write_text("".join(text), encoding="utf-8")
    lines = read_manifest(copy)
    assert _kinds(verify(copy)) == {"reordered": {lines[2].path, lines[3].path}}


def test_two_files_swapped_by_name_are_reported_as_reordered(copy: Path) -> None:
    a, b = (copy / line.path for line in read_manifest(copy)[1:3])
    a.rename(copy / "tmp")
    b.rename(a)
    (copy / "tmp").rename(b)
    problems = verify(copy)
    assert _kinds(problems) == {"reordered": {a.relative_to(copy).as_posix(), b.relative_to(copy).as_posix()}}
    assert all("holds the content listed for" in p.message for p in problems)


def test_an_added_file_is_reported_as_unlisted(copy: Path) -> None:
    extra = copy / "leadbus.intake.SAMR" / "2026-11-01" / "10-p0-forged.avro"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_bytes(b"Obj\x01")
    assert _kinds(verify(copy)) == {"unlisted": {extra.relative_to(copy).as_posix()}}


def test_a_file_altered_with_its_digest_updated_breaks_the_chain(copy: Path) -> None:
    text = _manifest_lines(copy)
    line = json.loads(text[4])
    target = copy / line["path"]
    target.write_bytes(target.read_bytes() + b"\x00")
    line["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    text[4] = json.dumps(line) + "\n"
    (copy / MANIFEST).write_text("".join(text), encoding="utf-8")
    assert "modified" in _kinds(verify(copy))
    assert line["path"] in _kinds(verify(copy))["modified"]


def test_a_removed_middle_line_names_the_line_after_it_and_the_orphan(copy: Path) -> None:
    text = _manifest_lines(copy)
    gone, after = (json.loads(text[i])["path"] for i in (6, 7))
    del text[6]
    (copy / MANIFEST).write_text("".join(text), encoding="utf-8")
    assert _kinds(verify(copy)) == {"reordered": {after}, "unlisted": {gone}}


def test_cutting_the_tail_is_evident_only_against_the_known_head(copy: Path) -> None:
    lines = read_manifest(copy)
    text = _manifest_lines(copy)
    (copy / MANIFEST).write_text("".join(text[:-1]), encoding="utf-8")
    (copy / lines[-1].path).unlink()
    assert verify(copy) == []  # a consistent rewrite: why the head must be kept elsewhere
    assert _kinds(verify(copy, head=lines[-1].chain)) == {"manifest": {MANIFEST}}


# -- crashes ---------------------------------------------------------------------------------------


def _abandon(writer: ArchiveWriter) -> None:
    """A crash: open files are never sealed (what was buffered may or may not be on disk)."""
    writer.__exit__(RuntimeError, RuntimeError("crash"), None)


def test_a_crash_drops_unsealed_files_and_a_restart_archives_each_record_once(
        tmp_path: Path, events: list[Event]) -> None:
    first, second = events[:150], events[150:]
    writer = ArchiveWriter(tmp_path)
    _append(writer, first)
    writer.seal(sorted(writer.open_partitions())[:2])  # two files sealed (and acknowledged), the rest open
    _append(writer, second[:50])
    _abandon(writer)
    assert any((tmp_path / PARTIAL).rglob("*.avro"))

    with ArchiveWriter(tmp_path) as writer:
        assert not (tmp_path / PARTIAL).exists()
        sealed = read_manifest(tmp_path)
        assert sealed, "files of the first hour sealed on the hour change, two more by hand"
        assert writer.progress() == {(line.topic, line.partition): line.last_offset + 1 for line in sealed}
        _append(writer, events)  # the bus delivers everything again from the start
        assert writer.skipped == sum(line.records for line in sealed)
    assert verify(tmp_path) == []
    counted = Counter((line.topic, r["partition"], r["offset"]) for line, r in read_events(tmp_path))
    assert set(counted.values()) == {1}
    assert len(counted) == len(events)


def test_a_seal_interrupted_after_its_manifest_line_is_completed(tmp_path: Path, events: list[Event]) -> None:
    with ArchiveWriter(tmp_path) as writer:
        _append(writer, events[:40])
    last = read_manifest(tmp_path)[-1]
    partial = tmp_path / PARTIAL / last.topic / f"{last.partition}.avro"
    partial.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_path / last.path, partial)  # as if the crash came before the move
    assert _kinds(verify(tmp_path)) == {"removed": {last.path}}
    ArchiveWriter(tmp_path).close()
    assert verify(tmp_path) == []


def test_a_torn_manifest_line_is_cut_on_restart(tmp_path: Path, events: list[Event]) -> None:
    with ArchiveWriter(tmp_path) as writer:
        _append(writer, events[:40])
    count = len(read_manifest(tmp_path))
    with (tmp_path / MANIFEST).open("ab") as fh:
        fh.write(b'{"seq": 99, "pa')
    assert _kinds(verify(tmp_path)) == {"manifest": {MANIFEST}}
    with pytest.raises(ArchiveError):
        read_manifest(tmp_path)
    ArchiveWriter(tmp_path).close()
    assert len(read_manifest(tmp_path)) == count
    assert verify(tmp_path) == []


def test_the_command_line_names_each_damaged_file(copy: Path) -> None:
    """`leadbus archive verify DIR`: exit 0 on a sound archive; exit 1 naming the flipped, removed, swapped files."""
    from typer.testing import CliRunner

    from leadbus.cli import app

    runner = CliRunner()
    sound = runner.invoke(app, ["archive", "verify", str(copy)])
    assert sound.exit_code == 0 and "ok:" in sound.output
    entries = read_manifest(copy)
    flipped, removed = copy / entries[0].path, copy / entries[1].path
    flipped.chmod(0o644)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    removed.chmod(0o644)
    removed.unlink()
    lines = _manifest_lines(copy)
    lines[2], lines[3] = lines[3], lines[2]
    (copy / "MANIFEST.jsonl").write_text("".join(lines))
    damaged = runner.invoke(app, ["archive", "verify", str(copy)])
    assert damaged.exit_code == 1
    assert entries[0].path in damaged.output and "modified" in damaged.output
    assert entries[1].path in damaged.output and "removed" in damaged.output
    assert entries[2].path in damaged.output and "reordered" in damaged.output


# -- values archived as they sat on the bus (append_encoded) ----------------------------------------

def _messy(events: list[Event]) -> list[tuple[Coordinates, bytes | None]]:
    """The same events with every kind of key and header: none, empty, null values, non-ASCII names, big."""
    out: list[tuple[Coordinates, bytes | None]] = []
    for i, (where, value) in enumerate(events):
        key = [None, b"", where.key, "键".encode() * 200][i % 4]
        headers = [(), (("seq", None),), (("签名", b"\x00\xff" * 300), ("", b"")), where.headers][i % 4]
        out.append((Coordinates(where.topic, where.partition, where.offset, where.timestamp_ms, key, headers), value))
    last = out[-1][0]
    out.append((Coordinates(last.topic, last.partition, last.offset + 1, last.timestamp_ms), None))  # a tombstone
    return out


def test_values_archived_encoded_read_back_as_the_decoded_ones_do(tmp_path: Path, events: list[Event]) -> None:
    catalog = packaged_catalog()
    messy = _messy(events)
    with ArchiveWriter(tmp_path / "decoded") as writer:
        for where, value in messy:
            if value is not None and value.startswith(MAGIC):
                writer.append(where, *decode(catalog, value))
            else:
                writer.append(where, None, value)
    with ArchiveWriter(tmp_path / "encoded") as writer:
        for i, (where, value) in enumerate(messy):
            entry = decode(catalog, value)[0] if value is not None and value.startswith(MAGIC) else None
            if i % 7 == 3 and entry is not None:  # both ways into one file: the order is kept
                writer.append(where, entry, decode(catalog, value)[1])  # type: ignore[arg-type]
            else:
                writer.append_encoded(where, entry, value)
    assert verify(tmp_path / "encoded") == []

    def content(root: Path) -> list[tuple[object, ...]]:
        return [(line.path, line.records, line.first_offset, line.last_offset, json.dumps(event, default=repr))
                for line, event in read_events(root)]

    decoded, encoded = content(tmp_path / "decoded"), content(tmp_path / "encoded")
    assert len(encoded) == len(messy) and encoded == decoded
    files = sorted(p.relative_to(tmp_path / "encoded") for p in (tmp_path / "encoded").rglob("*.avro"))
    assert files == sorted(p.relative_to(tmp_path / "decoded") for p in (tmp_path / "decoded").rglob("*.avro"))
    for path in files:  # the same schema and metadata in each file, and the encoded one in blocks of ~16 KB
        with (tmp_path / "encoded" / path).open("rb") as a, (tmp_path / "decoded" / path).open("rb") as b:
            ra, rb = fastavro.reader(a), fastavro.reader(b)
            assert ra.metadata == rb.metadata and ra.writer_schema == rb.writer_schema
    with (tmp_path / "encoded" / files[0]).open("rb") as fh:
        blocks = list(fastavro.block_reader(fh))
    assert len(blocks) >= 2 and all(b.num_records >= 1 for b in blocks)


def test_a_body_with_trailing_bytes_never_reaches_the_archive_as_an_event(tmp_path: Path, events: list[Event]) -> None:
    """The sink archives a value encoded only when it decoded whole; anything else goes in as raw bytes."""
    from leadbus.sinks.archive_sink import _decoded

    catalog = packaged_catalog()
    where, value = events[0]
    padded = value + b"\x00\x00"
    entry, _ = _decoded(catalog, padded)
    assert entry is None  # trailing bytes: raw
    with ArchiveWriter(tmp_path) as writer:
        writer.append_encoded(where, entry, padded)
    assert verify(tmp_path) == []
    [(_, record)] = list(read_events(tmp_path))
    assert record["event"] == padded


def test_the_archive_consumer_fetches_at_most_twice_a_second_under_load() -> None:
    """Off the latency path, a fetch waits for a MiB or half a second instead of returning at each record (issue #16);
    librdkafka accepts the settings (an unknown or invalid one fails when the consumer is built)."""
    from leadbus.clients import KafkaSettings
    from leadbus.sinks.archive_sink import FETCH

    assert FETCH == {"fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": 500}
    KafkaSettings("127.0.0.1:9").consumer("archive-settings", **FETCH).close()
