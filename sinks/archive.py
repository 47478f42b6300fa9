"""The tamper-evident archive: Avro object container files chained by a manifest of SHA-256 digests.

Pure file layer (no Kafka): the sink in `archive_sink.py` feeds it, auditors run `verify(root)` with
nothing but the folder. Layout under the root:

    MANIFEST.jsonl                                                    one line per sealed file
    <topic>/<YYYY-MM-DD>/<HH>-p<partition>-<fingerprint>-<seq>.avro  sealed files, read-only
    .partial/<topic>/<partition>.avro                                 the open file of a partition

A file holds the records of one topic partition, one writer schema and one UTC hour of the Kafka
timestamp. It is per partition, not only per topic, so that offsets strictly increase within a file
and along the manifest: that is what lets `verify` prove order and the sink resume exactly after the
last archived offset. A file is sealed when its hour or writer schema changes, when it is older than
the sink's `seal_after_seconds`, or on `close()`; only sealed files enter the manifest.

Each record is an `ArchivedEvent` wrapping the event in its Kafka coordinates: {partition, offset,
timestamp, key, headers, event}. The type of `event` *is* the writer schema (self-contained, named
types inlined), so the file header embeds it and re-encoding `event` with it gives back the exact
bytes that were published (signatures in the headers stay checkable). Coordinates differ per record,
so they cannot be file metadata; the metadata says the topic, partition, fingerprint and hour.
Values that no known schema reads are archived too, as bytes (fingerprint `raw`): an archive of the
record may not drop what the bus carried.

Manifest line: {"seq", "path", "topic", "partition", "records", "first_offset", "last_offset",
"sha256", "prev", "chain"} with chain = sha256_hex(prev + sha256 + path) over the hex and path
strings (UTF-8), and prev = the previous line's chain, 64 zeros on line 1. The chain makes a removed,
inserted, edited or moved line evident; to make a rewrite of the *whole* manifest evident, keep the
head (`chain` of the last line) outside the archive and pass it to `verify(root, head=...)`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import fastavro
from fastavro.schema import to_parsing_canonical_form
from fastavro.write import Writer

from leadbus.avro import SchemaEntry
from leadbus.avro.codec import HEADER_SIZE
from leadbus.avro.fastwrite import write_long, write_string
from leadbus.avro.fingerprint import fingerprint_bytes

MANIFEST = "MANIFEST.jsonl"
PARTIAL = ".partial"
ZERO_CHAIN = "0" * 64
RAW = "raw"
RAW_SCHEMA: Any = ["null", "bytes"]
_HOUR_MS = 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ArchiveError(RuntimeError):
    """The archive cannot be written safely (e.g. its own manifest is unreadable): run `verify`."""


@dataclass(frozen=True)
class Coordinates:
    """Where a record sat on the bus."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(frozen=True)
class ManifestLine:
    seq: int
    path: str
    topic: str
    partition: int
    records: int
    first_offset: int
    last_offset: int
    sha256: str
    prev: str
    chain: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ManifestLine:
        """A line as the sink writes it; TypeError for a field of another type (a line of someone else's making:
        a partition as text or a path as a number would otherwise fail the readers that sort or join them)."""
        doc = json.loads(text)
        values = {name: doc[name] for name in cls.__dataclass_fields__}
        for name, kind in _FIELD_TYPES.items():
            if type(values[name]) is not kind:
                raise TypeError(f"{name} is {values[name]!r}, not of type {kind.__name__}")
        return cls(**values)


_FIELD_TYPES = {"seq": int, "path": str, "topic": str, "partition": int, "records": int, "first_offset": int,
                "last_offset": int, "sha256": str, "prev": str, "chain": str}


@dataclass(frozen=True)
class Problem:
    kind: str  # modified | removed | unlisted | reordered | unreadable | manifest | denied (no access: not tampering)
    path: str  # relative to the archive root
    message: str


def chain_of(prev: str, sha256: str, path: str) -> str:
    return hashlib.sha256((prev + sha256 + path).encode()).hexdigest()


def wrapper_schema(event_schema: Any) -> dict[str, Any]:
    return {
        "type": "record", "name": "cn.leadbus.archive.ArchivedEvent",
        "doc": "An event as it sat on the bus: its Kafka coordinates and the event in its writer schema.",
        "fields": [
            {"name": "partition", "type": "int"},
            {"name": "offset", "type": "long"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "key", "type": ["null", "bytes"]},
            {"name": "headers", "type": {"type": "array", "items": {
                "type": "record", "name": "cn.leadbus.archive.Header",
                "fields": [{"name": "key", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}]}}},
            {"name": "event", "type": event_schema},
        ],
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdirs(path: Path) -> None:
    """Create missing folders and fsync each parent, so a sealed file's folder survives a power cut."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir()
        _fsync_dir(folder.parent)


@dataclass
class _OpenFile:
    topic: str
    partition: int
    hour: int
    fingerprint: str
    partial: Path
    handle: IO[bytes]
    avro: Writer
    opened_at: float
    records: int = 0
    #: Records appended already encoded (`append_encoded`), not yet written to the file as one Avro block.
    block: bytearray = field(default_factory=bytearray)
    block_records: int = 0
    first_offset: int = -1
    last_offset: int = -1


class ArchiveWriter:
    """Appends decoded events to per-partition files and seals them into the manifest.

    Opening recovers from a crash: a torn last manifest line is cut, a seal interrupted after its
    manifest line is completed, and every other partial file is deleted — its records were never
    acknowledged to the bus, which delivers them again. Offsets already archived are skipped, so a
    redelivery never doubles a record. One writer per root: the manifest has a single author.
    """

    def __init__(self, root: Path, *, codec: str = "deflate", clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root)
        self.codec = codec
        self.clock = clock
        self.skipped = 0
        self._open: dict[tuple[str, int], _OpenFile] = {}
        self._schemas: dict[str, Any] = {}  # fingerprint → parsed wrapper schema
        self._seq = 0
        self._head = ZERO_CHAIN
        self._sealed: dict[tuple[str, int], int] = {}  # next offset after the sealed files
        self._next: dict[tuple[str, int], int] = {}  # next offset after sealed and open files
        _mkdirs(self.root)
        self._recover()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:  # leave partial files to the next start's recovery rather than seal after a failure
            for f in self._open.values():
                f.handle.close()
            self._open.clear()

    # -- state -----------------------------------------------------------------------------------

    def progress(self) -> dict[tuple[str, int], int]:
        """(topic, partition) → the next offset to archive: one past the last sealed offset."""
        return dict(self._sealed)

    def open_partitions(self) -> set[tuple[str, int]]:
        return set(self._open)

    def _partial_path(self, topic: str, partition: int) -> Path:
        return self.root / PARTIAL / topic / f"{partition}.avro"

    def _recover(self) -> None:
        manifest = self.root / MANIFEST
        if manifest.exists():
            data = manifest.read_bytes()
            if data and not data.endswith(b"\n"):  # a crash tore the last line: that seal never completed
                with manifest.open("r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
                    os.fsync(fh.fileno())
        last: ManifestLine | None = None
        for number, line in enumerate(read_manifest(self.root), 1):
            if line.seq != number:
                raise ArchiveError(f"{MANIFEST} line {number} has seq {line.seq}: run `leadbus archive verify`")
            last = line
            self._sealed[(line.topic, line.partition)] = line.last_offset + 1
        if last is not None:
            self._seq, self._head = last.seq, last.chain
            final, partial = self.root / last.path, self._partial_path(last.topic, last.partition)
            if not final.exists() and partial.exists() and _sha256(partial) == last.sha256:
                self._install(partial, final)  # crashed between the manifest line and the move
        shutil.rmtree(self.root / PARTIAL, ignore_errors=True)
        self._next = dict(self._sealed)

    # -- writing ---------------------------------------------------------------------------------

    def append(self, where: Coordinates, entry: SchemaEntry | None, event: Any) -> list[ManifestLine]:
        """Archive one event (`entry` None: `event` is the raw value bytes); return files this sealed."""
        return self._append(where, entry, event, None)

    def _append(self, where: Coordinates, entry: SchemaEntry | None, event: Any,
                body: bytes | None) -> list[ManifestLine]:
        key = (where.topic, where.partition)
        if where.offset < self._next.get(key, 0):
            self.skipped += 1  # already archived: a redelivery after a restart or rebalance
            return []
        fingerprint = entry.fingerprint_hex if entry is not None else RAW
        hour = where.timestamp_ms // _HOUR_MS
        sealed: list[ManifestLine] = []
        current = self._open.get(key)
        if current is not None and (current.hour, current.fingerprint) != (hour, fingerprint):
            sealed.append(self._seal(key))
            current = None
        if current is None:
            current = self._open[key] = self._start(where, hour, fingerprint, entry)
        if body is None:
            _write_block(current)  # records appended encoded first, in order
            current.avro.write({
                "partition": where.partition, "offset": where.offset, "timestamp": where.timestamp_ms,
                "key": where.key, "headers": [{"key": k, "value": v} for k, v in where.headers], "event": event,
            })
        else:
            _encode_wrapped(current.block, where, body)
            current.block_records += 1
            if len(current.block) >= _BLOCK_BYTES:
                _write_block(current)
        if current.records == 0:
            current.first_offset = where.offset
        current.records += 1
        current.last_offset = where.offset
        self._next[key] = where.offset + 1
        return sealed

    def append_encoded(self, where: Coordinates, entry: SchemaEntry | None, value: bytes | None) -> list[ManifestLine]:
        """Archive one value as it sat on the bus: `entry` its writer schema (the value decoded with it: `decode`
        checked that its body is one whole datum), or None to keep it as raw bytes. The same file as `append` of
        the decoded event writes, without decoding it to re-encode it: the body is the event's datum already, and
        the wrapper's other fields are encoded here (fastavro's write of the whole record took half the sink's CPU).
        """
        body = bytearray()
        if entry is not None and value is not None:
            body += memoryview(value)[HEADER_SIZE:]
        elif value is None:
            body.append(0)  # ["null", "bytes"]: null
        else:
            body.append(2)
            write_long(body, len(value))
            body += value
        return self._append(where, entry, None, bytes(body))

    def _start(self, where: Coordinates, hour: int, fingerprint: str, entry: SchemaEntry | None) -> _OpenFile:
        if fingerprint not in self._schemas:
            event_schema = dict(entry.expanded) if entry is not None else RAW_SCHEMA
            self._schemas[fingerprint] = fastavro.parse_schema(wrapper_schema(event_schema))
        partial = self._partial_path(where.topic, where.partition)
        _mkdirs(partial.parent)
        handle = partial.open("wb")
        metadata = {"leadbus.topic": where.topic, "leadbus.partition": str(where.partition),
                    "leadbus.fingerprint": fingerprint, "leadbus.hour": _hour_label(hour)}
        avro = Writer(handle, self._schemas[fingerprint], codec=self.codec, metadata=metadata)
        return _OpenFile(where.topic, where.partition, hour, fingerprint, partial, handle, avro, self.clock())

    # -- sealing ---------------------------------------------------------------------------------

    def seal(self, keys: Iterable[tuple[str, int]] | None = None) -> list[ManifestLine]:
        """Seal the open files of these (topic, partition)s, or of all."""
        wanted = set(self._open) if keys is None else set(keys) & set(self._open)
        return [self._seal(key) for key in sorted(wanted)]

    def seal_older_than(self, seconds: float) -> list[ManifestLine]:
        limit = self.clock() - seconds
        return self.seal([key for key, f in self._open.items() if f.opened_at <= limit])

    def close(self) -> list[ManifestLine]:
        return self.seal()

    def _seal(self, key: tuple[str, int]) -> ManifestLine:
        f = self._open.pop(key)
        _write_block(f)
        f.avro.flush()
        f.handle.flush()
        os.fsync(f.handle.fileno())
        f.handle.close()
        digest = _sha256(f.partial)
        seq = self._seq + 1
        stamp = _hour_label(f.hour)
        path = f"{f.topic}/{stamp[:10]}/{stamp[11:]}-p{f.partition}-{f.fingerprint}-{seq:06d}.avro"
        line = ManifestLine(seq, path, f.topic, f.partition, f.records, f.first_offset, f.last_offset,
                            digest, self._head, chain_of(self._head, digest, path))
        # Line first, then the move: recovery can finish a move, but a file without its line would
        # be unlisted and its records archived twice.
        manifest = self.root / MANIFEST
        created = not manifest.exists()
        with manifest.open("ab") as fh:
            fh.write((line.to_json() + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        if created:
            _fsync_dir(self.root)
        self._install(f.partial, self.root / path)
        self._seq, self._head = seq, line.chain
        self._sealed[key] = f.last_offset + 1
        return line

    def _install(self, partial: Path, final: Path) -> None:
        _mkdirs(final.parent)
        os.replace(partial, final)
        final.chmod(0o444)  # sealed files never change; read-only guards against accidents, not attackers
        _fsync_dir(final.parent)


#: Encoded records gathered before they are written as one block (fastavro's own sync interval).
_BLOCK_BYTES = 16000


@dataclass
class _Block:  # what fastavro's `Writer.write_block` takes: a block of records already encoded
    num_records: int
    bytes_: io.BytesIO


def _write_block(f: _OpenFile) -> None:
    if f.block_records:
        f.avro.write_block(_Block(f.block_records, io.BytesIO(bytes(f.block))))
        f.block.clear()
        f.block_records = 0


def _encode_wrapped(out: bytearray, where: Coordinates, body: bytes) -> None:
    """An `ArchivedEvent` (`wrapper_schema`) in Avro's binary encoding, its event's datum `body` as given."""
    write_long(out, where.partition)
    write_long(out, where.offset)
    write_long(out, where.timestamp_ms)
    _write_optional_bytes(out, where.key)
    if where.headers:
        write_long(out, len(where.headers))
        for name, value in where.headers:
            write_string(out, name)
            _write_optional_bytes(out, value)
    out.append(0)  # the end of the headers array
    out += body


def _write_optional_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out.append(0)  # union branch 0: null
        return
    out.append(2)  # union branch 1: bytes
    write_long(out, len(value))
    out += value


def _hour_label(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H")


# -- reading -------------------------------------------------------------------------------------


def read_manifest(root: Path) -> list[ManifestLine]:
    """The manifest's lines; raises ArchiveError on a malformed line (`verify` reports it instead)."""
    lines, problems = _parse_manifest(Path(root))
    if problems:
        raise ArchiveError(problems[0].message)
    return lines


def parse_manifest(root: Path) -> tuple[list[ManifestLine], list[Problem]]:
    """The lines that parse, and a problem for each that does not (for readers that go on, like a replay)."""
    return _parse_manifest(Path(root))


def read_events(root: Path) -> Iterator[tuple[ManifestLine, dict[str, Any]]]:
    """Every archived record in manifest order, as (its file's line, the ArchivedEvent record)."""
    for line in read_manifest(root):
        with (Path(root) / line.path).open("rb") as fh:
            for record in fastavro.reader(fh):
                yield line, cast(dict[str, Any], record)


def _parse_manifest(root: Path) -> tuple[list[ManifestLine], list[Problem]]:
    manifest = root / MANIFEST
    if not manifest.exists() and not manifest.is_symlink():
        return [], []
    lines: list[ManifestLine] = []
    problems: list[Problem] = []
    try:
        if not manifest.is_file():  # a folder, a pipe or a dangling link where the manifest was: never opened
            return [], [Problem("manifest", MANIFEST, f"{MANIFEST} is not a file")]
        with manifest.open(encoding="utf-8", errors="replace") as fh:  # bytes that are not UTF-8 fail their line only
            for number, text in enumerate(fh, 1):
                try:
                    lines.append(ManifestLine.from_json(text))
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    problems.append(Problem("manifest", MANIFEST, f"line {number} is not a manifest line: {exc!r}"))
    except PermissionError as exc:
        problems.append(Problem("denied", MANIFEST, f"{MANIFEST} cannot be read: {exc}"))
    except OSError as exc:
        problems.append(Problem("manifest", MANIFEST, f"{MANIFEST} cannot be read: {exc}"))
    return lines, problems


# -- verifying -----------------------------------------------------------------------------------


def verify(root: Path, head: str | None = None) -> list[Problem]:
    """Check the archive with nothing but its files; [] means intact. `head`: the expected last chain."""
    root = Path(root)
    lines, problems = _parse_manifest(root)
    problems += _order_problems(lines)
    listed_sha = {line.sha256: line.path for line in lines}
    for line in lines:
        problems += _file_problems(root, line, listed_sha)
    listed = {line.path for line in lines}
    for path in sorted(_archive_files(root) - listed):
        problems.append(Problem("unlisted", path, "file is in the archive but not in the manifest"))
    if head is not None and (lines[-1].chain if lines else ZERO_CHAIN) != head:
        problems.append(Problem("manifest", MANIFEST, f"the chain ends in {lines[-1].chain if lines else ZERO_CHAIN}, "
                                                      f"not the expected head {head}: lines were cut or rewritten"))
    return _merged(problems)


def _order_problems(lines: list[ManifestLine]) -> list[Problem]:
    out: list[Problem] = []
    # When the seqs are a permutation of 1..n, lines were moved: flag exactly those out of place.
    # Otherwise (lines cut or duplicated) flag where the run of seqs breaks.
    permutation = sorted(line.seq for line in lines) == list(range(1, len(lines) + 1))
    flagged: set[int] = set()
    for i, line in enumerate(lines):
        expected = i + 1 if permutation or i == 0 else lines[i - 1].seq + 1
        if line.seq != expected:
            flagged.add(i)
            out.append(Problem("reordered", line.path, f"manifest line {i + 1} has seq {line.seq}, not {expected}"))
    ends: dict[tuple[str, int], ManifestLine] = {}
    earlier: dict[tuple[str, int], list[ManifestLine]] = {}
    for i, line in enumerate(lines):
        if line.chain != chain_of(line.prev, line.sha256, line.path):
            out.append(Problem("modified", line.path, f"manifest line {i + 1} was edited: its chain does not "
                                                      "match its prev, sha256 and path"))
        expected_prev = lines[i - 1].chain if i else ZERO_CHAIN
        # A break next to an already flagged line is that line's doing; report it only once.
        if line.prev != expected_prev and not {i, i - 1} & flagged:
            after = f"line {i} ({lines[i - 1].path})" if i else "the start"
            out.append(Problem("reordered", line.path, f"manifest line {i + 1} does not chain to {after}: "
                                                       "lines were removed, inserted or moved"))
        before = ends.get((line.topic, line.partition))
        twin = next((x for x in earlier.get((line.topic, line.partition), ()) if x.sha256 == line.sha256 or (
            x.first_offset, x.last_offset) == (line.first_offset, line.last_offset)), None)
        if twin is not None:  # one problem naming both files, not one per record the replay reads twice
            out.append(Problem("duplicated", line.path, f"a second copy of {twin.path} ({line.topic}"
                                                        f"[{line.partition}] offsets {line.first_offset}-"
                                                        f"{line.last_offset}): its records archived twice"))
        elif before is not None and line.first_offset <= before.last_offset:
            out.append(Problem("reordered", line.path, f"{line.topic}[{line.partition}] offsets from "
                                                       f"{line.first_offset} come after {before.path}, which ends "
                                                       f"at {before.last_offset}"))
        ends[(line.topic, line.partition)] = line
        earlier.setdefault((line.topic, line.partition), []).append(line)
    return out


def _file_problems(root: Path, line: ManifestLine, listed_sha: dict[str, str]) -> list[Problem]:
    try:
        return _listed_file_problems(root, line, listed_sha)
    except PermissionError as exc:
        return [Problem("denied", line.path, f"manifest line {line.seq}: {exc}")]
    except (OSError, ValueError) as exc:  # a name no file system takes (too long, a NUL), a file access refused
        return [Problem("unreadable", line.path, f"manifest line {line.seq}: cannot read the file: "
                                                 f"{type(exc).__name__}: {exc}")]


def _listed_file_problems(root: Path, line: ManifestLine, listed_sha: dict[str, str]) -> list[Problem]:
    path = root / line.path
    if Path(line.path).is_absolute() or ".." in Path(line.path).parts or line.path.startswith(PARTIAL):
        return [Problem("manifest", line.path, f"manifest line {line.seq} names a path outside the archive")]
    if not path.is_file():
        return [Problem("removed", line.path, f"listed at seq {line.seq} but missing")]
    digest = _sha256(path)
    if digest != line.sha256:
        other = listed_sha.get(digest)
        if other is not None and other != line.path:
            return [Problem("reordered", line.path, f"holds the content listed for {other}")]
        return [Problem("modified", line.path, f"SHA-256 is {digest}, the manifest says {line.sha256}")]
    try:
        return _content_problems(path, line)
    except Exception as exc:  # noqa: BLE001 - a damaged file may fail in any way; report it, check the rest
        return [Problem("unreadable", line.path, f"not a readable Avro container: {type(exc).__name__}: {exc}")]


def _content_problems(path: Path, line: ManifestLine) -> list[Problem]:
    """The file's digest matches; check it reads with its embedded schema and agrees with its line."""
    found: list[str] = []
    with path.open("rb") as fh:
        reader = fastavro.reader(fh)
        meta = reader.metadata
        schema = json.loads(meta["avro.schema"])
        event_schema = next(f["type"] for f in schema["fields"] if f["name"] == "event")
        if meta.get("leadbus.fingerprint") != RAW:
            canonical = to_parsing_canonical_form(fastavro.parse_schema(event_schema))
            if fingerprint_bytes(canonical).hex() != meta.get("leadbus.fingerprint"):
                found.append("its embedded writer schema does not have the fingerprint its metadata names")
        if (meta.get("leadbus.topic"), meta.get("leadbus.partition")) != (line.topic, str(line.partition)):
            found.append(f"it holds {meta.get('leadbus.topic')}[{meta.get('leadbus.partition')}]")
        offsets: list[int] = []
        stamps: list[Any] = []
        for item in reader:
            record = cast(dict[str, Any], item)
            offsets.append(record["offset"])
            stamps.append(record["timestamp"])
            if record["partition"] != line.partition:
                found.append(f"offset {record['offset']} is from partition {record['partition']}")
    # The sink writes a file per UTC hour of its records' times, named by that hour: a file renamed to another hour
    # or day (and the manifest chained again) would be passed over by a replay of the period its records are in.
    named = _path_hour(line.path)
    hours = sorted({_ms(min(stamps)) // _HOUR_MS, _ms(max(stamps)) // _HOUR_MS}) if stamps else []
    if named is not None and hours and hours != [named]:
        found.append(f"its records are stamped {' to '.join(_hour_label(h) for h in hours)}h, "
                     f"its name says {_hour_label(named)}h")
    label = meta.get("leadbus.hour")
    if named is not None and label is not None and label != _hour_label(named):
        found.append(f"its metadata says hour {label}, its name {_hour_label(named)}")
    if len(offsets) != line.records:
        found.append(f"it holds {len(offsets)} records, the manifest says {line.records}")
    if any(a >= b for a, b in itertools.pairwise(offsets)):
        found.append("its offsets do not strictly increase")
    if offsets and (offsets[0], offsets[-1]) != (line.first_offset, line.last_offset):
        found.append(f"it spans offsets {offsets[0]}-{offsets[-1]}, "
                     f"the manifest says {line.first_offset}-{line.last_offset}")
    return [Problem("modified", line.path, f"manifest line {line.seq} disagrees with the file: {f}") for f in found]


def _ms(stamp: Any) -> int:
    """An archived record's time in ms: fastavro reads `timestamp-millis` as a datetime."""
    if isinstance(stamp, datetime):
        return (stamp - _EPOCH) // timedelta(milliseconds=1)
    return int(stamp)


def _path_hour(path: str) -> int | None:
    """The UTC hour a sealed file's name `<topic>/<YYYY-MM-DD>/<HH>-p…` says, or None for a name not of that shape."""
    parts = path.split("/")
    if len(parts) < 3:
        return None
    try:
        stamp = datetime.strptime(f"{parts[-2]}T{parts[-1][:2]}", "%Y-%m-%dT%H").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(stamp.timestamp()) // 3600


def _archive_files(root: Path) -> set[str]:
    files = set()
    for folder, _, names in os.walk(root):  # links to folders are not followed: what sits here is what is listed
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative != MANIFEST and not relative.startswith(PARTIAL + "/") and path.is_file():
                files.add(relative)
    return files


def _merged(problems: list[Problem]) -> list[Problem]:
    """One problem per (kind, path), its messages joined, in first-seen order."""
    merged: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        merged.setdefault((p.kind, p.path), []).append(p.message)
    return [Problem(kind, path, "; ".join(dict.fromkeys(msgs))) for (kind, path), msgs in merged.items()]
