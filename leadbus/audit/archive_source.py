"""The archive as a replay's source (`leadbus.audit.sources` holds the period rule and the Kafka side): the records of
a topic's sealed files, by hour, read by the same rule as Kafka's `offsets_for_times`, each encoded again with its
writer schema as a raw file holds it; `verify` first checks the archive's chain (with a head when given)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import fastavro

from leadbus.audit.sources import PartitionSpan, SourceError, _matches
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import SchemaCatalog, SchemaEntry, encode
from leadbus.sinks.archive import MANIFEST, RAW, ManifestLine, Problem, parse_manifest, verify

_HOUR_MS = 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(value: datetime | int) -> int:
    if isinstance(value, int):
        return value
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _archived(entry: SchemaEntry | None, item: Any) -> tuple[int, int, bytes | None, bytes | None,
                                                             tuple[tuple[str, bytes | None], ...], Any]:
    """An archived record's offset, time, key, value (the event encoded again with `entry`, its writer schema; as
    archived in a raw file), headers and event; TypeError (or KeyError …) for a record not in the archive's shape."""
    record = cast(dict[str, Any], item)
    offset, stamp, key = record["offset"], record["timestamp"], record["key"]
    if type(offset) is not int or not isinstance(stamp, int | datetime) or not (key is None or type(key) is bytes):
        raise TypeError("offset, timestamp or key of another type than the archive writes")
    headers = tuple([(h["key"], h["value"]) for h in record["headers"]])
    for name, raw in headers:
        if type(name) is not str or (raw is not None and type(raw) is not bytes):
            raise TypeError("a header of another type than the archive writes")
    event = record["event"]
    if entry is None:
        if not (event is None or type(event) is bytes):
            raise TypeError("an event where a raw file holds bytes (the file's metadata names no writer schema)")
        return offset, _millis(stamp), key, event, headers, event
    return offset, _millis(stamp), key, encode(entry, event), headers, event


def _hour_of(line: ManifestLine) -> int:
    """The UTC hour of a sealed file's records, from its path `<topic>/<YYYY-MM-DD>/<HH>-p…`."""
    day, name = line.path.split("/")[-2:]
    stamp = datetime.strptime(f"{day}T{name[:2]}", "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000) // _HOUR_MS


class ArchiveSource:
    """Records of `topics` in [start_ms, end_ms) from an archive folder; `verify` first, with the chain's head."""

    def __init__(self, root: Path, topics: list[str], catalog: SchemaCatalog,
                 start_ms: int | None = None, end_ms: int | None = None, *, head: str | None = None) -> None:
        self.root, self.topics, self.catalog = Path(root), topics, catalog
        self.start_ms, self.end_ms, self.head = start_ms, end_ms, head
        self.problems: list[Problem] = []
        self.unreadable: list[tuple[str, str]] = []
        self.skipped: list[str] = []  # files not read: their offsets were read from an earlier file
        #: why the archive's manifest cannot be trusted to plan from (missing, a line not of the sink's making): a
        #: verified replay goes on and names each problem (exit 1), any other stops (`replay`)
        self.damaged: str | None = None
        self._lines: dict[tuple[str, int], list[ManifestLine]] = {}
        self.spans: list[PartitionSpan] = []

    def describe(self) -> str:
        return f"archive {self.root}"

    def verify(self) -> list[Problem]:
        self.problems = verify(self.root, head=self.head)
        denied = [p for p in self.problems if p.kind == "denied"]
        if denied:  # the auditor's access, not the archive, is at fault: a replay could only call it altered
            more = f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""
            raise SourceError(f"access refused to the archive: {denied[0].path}: {denied[0].message}{more}")
        if not (self.root / MANIFEST).exists() and not (self.root / MANIFEST).is_symlink() and self._holds_files():
            self.problems.insert(0, Problem("manifest", MANIFEST, f"{MANIFEST} is missing: every archived file is "
                                                                  "unlisted"))
        return self.problems

    def plan(self) -> list[PartitionSpan]:
        lines, problems = parse_manifest(self.root)  # a line that does not parse is `verify`'s finding, not an error
        self.damaged = None
        if not (self.root / MANIFEST).is_file():
            if not self._holds_files():
                raise SourceError(f"{self.root} is not an archive (no {MANIFEST})")
            # archived files without their manifest (removed, or a folder or link put in its place): tampering, which
            # `verify` names file by file, not a wrong folder
            self.damaged = f"{self.root / MANIFEST} is missing or not a file, and the folder holds archived files"
        elif problems:
            self.damaged = f"{self.root / MANIFEST}: {problems[0].message}"
        by_partition: dict[tuple[str, int], list[ManifestLine]] = {}
        for line in lines:
            if _matches(line.topic, self.topics):
                by_partition.setdefault((line.topic, line.partition), []).append(line)
        named = [t for t in self.topics if not t.startswith("^")]
        missing = [t for t in named if not any(k[0] == t for k in by_partition)]
        if not by_partition and self.damaged is None:
            wanted = ", ".join(missing or self.topics)
            if not self._holds_files():
                raise SourceError(f"the archive holds nothing of {wanted}")
            self.damaged = f"{self.root / MANIFEST} lists no file of {wanted}, and the folder holds some"
        self._lines = {}
        spans = []
        for key in sorted(by_partition):
            chosen = [line for line in by_partition[key] if self._may_hold(line)]
            self._lines[key] = chosen
            if chosen:
                spans.append(PartitionSpan(key[0], key[1], chosen[0].first_offset,
                                           chosen[-1].last_offset + 1))
        self.spans = spans
        return spans

    def _holds_files(self) -> bool:
        """Whether the folder holds a sealed file (`<topic>/<day>/<name>.avro`) of the topics replayed."""
        try:
            return any(_matches(folder.name, self.topics) and any(folder.glob("*/*.avro"))
                       for folder in self.root.iterdir() if folder.is_dir())
        except OSError:
            return False

    def only(self, where: tuple[str, int]) -> bool:
        """Read only this partition's files (after `plan`); False when the plan holds none of it."""
        lines = self._lines.get(where)
        self._lines = {where: lines} if lines else {}
        return bool(lines)

    def _may_hold(self, line: ManifestLine) -> bool:
        """Could the file hold records of the period (or records that come between them)? Reading decides."""
        try:
            hour = _hour_of(line)
        except ValueError:
            return True  # a path not of our making: read it, and let `verify` and the records speak
        return self.end_ms is None or hour * _HOUR_MS < self.end_ms

    def expected(self) -> int:
        return sum(line.records for lines in self._lines.values() for line in lines)

    def records(self) -> Iterator[ReplayRecord]:
        if not self._lines:
            self.plan()
        start, end = self.start_ms, self.end_ms
        for (topic, partition), lines in sorted(self._lines.items()):
            started = start is None
            covered = -1  # the highest offset a file read so far of this partition ends at
            for line in lines:
                if line.last_offset <= covered:
                    # a file listed again (a copy) or within what was read: `verify` names it once with the file it
                    # repeats (ARCHIVE_DUPLICATED); read twice, each of its records would be a finding of its own
                    self.skipped.append(line.path)
                    continue
                covered = max(covered, line.last_offset)
                if not started:
                    try:
                        if (_hour_of(line) + 1) * _HOUR_MS <= cast(int, start):
                            continue  # wholly before the period, and the period has not begun in this partition
                    except ValueError:
                        pass
                done = False
                for index, item in enumerate(self._read(line)):
                    entry = item[0]
                    try:
                        offset, ts, key, value, headers, event = _archived(entry, item[1])
                    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                        # a file of someone else's making (its own schema, or events its metadata does not
                        # describe): what it holds from here on cannot be read as records; `verify` names it too
                        self.unreadable.append((line.path, f"record {index}: {type(exc).__name__}: {exc}"))
                        break
                    if not started:
                        if ts < cast(int, start):
                            continue
                        started = True
                    if end is not None and ts >= end:
                        done = True
                        break
                    yield ReplayRecord(topic, partition, offset, ts, key, value, headers,
                                       self.catalog, file=line.path, index=index, event=event if entry else None,
                                       schema=entry)
                if done:
                    break

    def _read(self, line: ManifestLine) -> Iterator[tuple[SchemaEntry | None, Any]]:
        path = self.root / line.path
        try:
            if not path.is_file():  # removed (`verify` says so), or a pipe put in its place: opening it would wait
                self.unreadable.append((line.path, "not a file"))
                return
            with path.open("rb") as fh:
                reader = fastavro.reader(fh)
                entry = self._writer(reader.metadata)
                for record in reader:
                    yield entry, record
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in any way; `verify` names it, go on
            self.unreadable.append((line.path, f"{type(exc).__name__}: {exc}"))

    def _writer(self, meta: dict[str, Any]) -> SchemaEntry | None:
        fingerprint = meta.get("leadbus.fingerprint")
        if fingerprint == RAW or fingerprint is None:
            return None
        entry = self.catalog.by_fingerprint(bytes.fromhex(fingerprint))
        if entry is None:  # a schema registered at run time: the file carries it
            schema = json.loads(meta["avro.schema"])
            event_schema = next(f["type"] for f in schema["fields"] if f["name"] == "event")
            entry = self.catalog.add(event_schema)
        return entry

    def close(self) -> None:
        pass
