"""What an auditor checks in a replay, pure: the replayed record, findings, the `Verifier` protocol, today's verifiers.

No Kafka, no clock, no files: `replay.py` feeds `ReplayRecord`s (from a topic or the archive, the same
fields either way) to a list of verifiers and collects their `Finding`s. A verifier sees each record once,
in the order of its partition, and may keep state between records; `finish()` reports what only the end
can tell (a sequence gap never filled, a cross-reference that never appeared).

    class Verifier(Protocol):
        name: str
        def check(self, record: ReplayRecord) -> Iterable[Finding]: ...
        def finish(self) -> Iterable[Finding]: ...

A `Finding` is a failure (exit status 1) or a notice (shown, not failing: e.g. a publisher's own
redelivery on an intake topic, which intake drops). Every finding carries the record's coordinates:
topic, partition, offset, and for an archive replay the archive file and the record's index in it.

Today's checks, without signatures:

* `PartitionOrder`   offsets strictly increase in each partition; timestamps do not go back by more than
                     the skew allowed between producers (default 15 s, above the stages' 10 s transaction
                     timeout): a record moved, or a rewritten topic. On intake topics, written by agencies'
                     producers that may queue records for minutes, a step back is a notice.
* `Decodes`          every value reads with a writer schema of the catalog (any released version); on a topic
                     the bus writes itself, one that does not is a failure (on an intake topic, a notice:
                     intake dead-letters garbage, it is part of the record). An intake body is passed over by
                     its lengths, and read whole only when it does not end where its bytes do, unless a seal the
                     replay verifies covers it (`Decodes.seals_verified`).
* `IntakeLeads`      intake topics: the same (lead_id, revision) twice — identical: a redelivery (notice);
                     other content: a conflict intake refused (notice). Failures here need seals (below).
* `AcceptedLeads`    `leadbus.leads.accepted`: `digest` is the SHA-256 of the normalised lead; the lead is what
                     intake's normalisation makes of `original` (the bytes as published); a (lead_id, revision)
                     once, never a lower revision after a higher one; and when the intake topic is replayed too,
                     the record at `source` holds exactly `original`.
* `CaseVersions`     `leadbus.cases`: each case's versions go 1, 2, 3 … (the closing event of an absorbed case
                     repeats its last version with `merged_into`): a repeat, a step back or a missing version.
* `HandoverSteps`    `leadbus.handover`: each case's step numbers go 1, 2, 3 …
* `RoutedVersions`   routed topics (jurisdiction, liaison, region, channels, withdrawals): versions of a case
                     never go back, and the same event never appears twice.

**The seal slot.** Signed, sequenced events (DESIGN §7) carry in their headers
`leadbus-publisher`, `leadbus-key-id`, `leadbus-partition`, `leadbus-seq` and `leadbus-signature`
(`SEAL_HEADERS`). The verifier of those is one more `Verifier`, passed to the replay as `seal_verifier`:
per record it checks the signature against the `PublisherKey` registry of `leadbus.publishers` (forged or
altered → failure) and feeds the sequence number to a `LaneTracker` keyed by (publisher, topic, partition),
which reports numbers used twice (`SEQUENCE_REPLAYED`), arriving after a later one (`SEQUENCE_REORDERED`) and
never arriving (`SEQUENCE_GAP`, at `finish`). Until one is installed a replay says how many records carried
seals it could not check.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from leadbus.audit.native_intake import intake_lead as _native_lead
from leadbus.audit.native_intake import peek_usual as _native_peek
from leadbus.audit.native_intake import sha256 as _native_sha256
from leadbus.audit.native_runs import run_reader
from leadbus.audit.picker import Picker, body_end, picker
from leadbus.avro import DecodeError, SchemaCatalog, SchemaEntry, decode
from leadbus.models import CaseLead
from leadbus.processors.core.intake import renormalised_lead
from leadbus.signing import ALL_SEAL_HEADERS, PUBLISHER_HEADER
from leadbus.stage_seals import CHAIN_HEADER as STAGE_CHAIN_HEADER
from leadbus.topics import CASES, HANDOVER, INTAKE_PREFIX, LEADS_ACCEPTED, PUBLISHERS, SCHEMAS

SEAL_HEADERS = ALL_SEAL_HEADERS  # a v1 or v2 (chained) seal's headers, as leadbus.signing names them
_SEAL_NAMES = frozenset(SEAL_HEADERS)

CASE_LEAD = "cn.leadbus.CaseLead"
DECISION = "cn.leadbus.HandoverDecision"
ACCEPTED = "cn.leadbus.LeadAccepted"
REJECTED = "cn.leadbus.LeadRejected"
CASE_UPDATED = "cn.leadbus.CaseUpdated"
STEP = "cn.leadbus.HandoverStep"
BULLETIN = "cn.leadbus.RegionalBulletin"
WITHDRAWN = "cn.leadbus.CaseWithdrawn"

#: Topics whose records the bus writes itself, and the stage that writes them (the "publisher" in a summary).
STAGE_OF = {LEADS_ACCEPTED: "intake", "leadbus.leads.rejected": "intake", "leadbus.handover.decisions": "intake",
            CASES: "linking", HANDOVER: "handover"}
ROUTED_PREFIXES = ("leadbus.jurisdiction.", "leadbus.liaison.", "leadbus.region.", "leadbus.channel.",
                   "leadbus.takedown.notices", "leadbus.withdrawals")


def is_intake(topic: str) -> bool:
    return topic.startswith(INTAKE_PREFIX)


def is_routed(topic: str) -> bool:
    return topic.startswith(ROUTED_PREFIXES)


# -- the replayed record -----------------------------------------------------------------------------


class ReplayRecord:
    """One record as it sat on the bus, from Kafka or the archive: coordinates, key, headers, value bytes.

    `value` is the event exactly as published (single-object encoding); an archive replay re-encodes the
    archived event with its writer schema, which gives back these bytes. Decoding is lazy: a verifier that
    needs the event asks for `event`; `schema` (the writer) comes from the fingerprint alone.
    """

    __slots__ = ("_decoded", "_error", "_event", "_peek", "_picked", "_schema", "_sealed", "catalog", "file", "headers",
                 "index", "key", "offset", "opens_log", "partition", "pending", "timestamp_ms", "topic", "trusted",
                 "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None,
                 value: bytes | None, headers: Sequence[tuple[str, bytes | None]], catalog: SchemaCatalog,
                 *, file: str | None = None, index: int | None = None, event: Any = None,
                 schema: SchemaEntry | None = None) -> None:
        self.topic, self.partition, self.offset, self.timestamp_ms = topic, partition, offset, timestamp_ms
        self.key, self.value, self.headers = key, value, headers
        self.catalog = catalog
        self.file, self.index = file, index
        self._schema = schema
        self._event = event
        self._decoded = schema is not None
        self._error: str | None = None
        self._peek: LeadHead | bool | None = False
        #: Read by its fields alone (`picked`), never whole: a stage seal vouched for these bytes (the replay sets it
        #: once the lane's signature verified, `leadbus.audit.stage_seals`), or the replay verifies nothing.
        self.trusted = False
        self.pending = False  # held by the stage seal check until its run's signature (`StageSealVerifier.vouching`)
        #: The first record a Kafka replay read of a partition it reads from the log's start (offset 0): whatever
        #: its offset, nothing visible comes before it (records before it were in aborted transactions). The
        #: verifiers judge it as the offset-0 record: a chain or lane met here must begin here.
        self.opens_log = False
        self._picked: tuple[tuple[str, ...], tuple[Any, ...]] | None = None
        #: whether an agency seal header is among the headers (read once; set False by the stage seal check's C path,
        #: `leadbus.audit.native_seal.quick_run`, on a record whose headers are a stage seal's five alone)
        self._sealed: bool | None = None

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def has_seal(self) -> bool:
        """Whether any agency seal header is there (several checks ask it of each record: the headers are read once)."""
        sealed = self._sealed
        if sealed is None:
            sealed = False
            for key, _ in self.headers:
                if key in _SEAL_NAMES:
                    sealed = True
                    break
            self._sealed = sealed
        return sealed

    def sealed_publisher(self) -> bytes | None:
        """The `leadbus-publisher` header (`header(PUBLISHER_HEADER)`): none without any agency seal header."""
        if not self.headers or (self._sealed is False):
            return None
        return self.header(PUBLISHER_HEADER)

    @property
    def schema(self) -> SchemaEntry | None:
        """The writer schema named by the value's fingerprint (None for garbage or an unknown one)."""
        if self._schema is None and not self._decoded:
            value = self.value
            if value and len(value) >= 10 and value[:2] == b"\xc3\x01":
                self._schema = self.catalog.by_fingerprint(value[2:10])
        return self._schema

    @property
    def type_name(self) -> str:
        schema = self.schema
        if schema is not None:
            return schema.name
        return "(tombstone)" if self.value is None else "(undecodable)"

    def _decode(self) -> None:
        if self._decoded:
            return
        self._decoded = True
        if self.value is None:
            return
        try:
            self._schema, self._event = decode(self.catalog, self.value)
        except DecodeError as exc:
            self._error = f"{exc.reason}: {exc.message}"

    @property
    def event(self) -> Any:
        """The event read with its writer schema; None for a tombstone or an undecodable value."""
        self._decode()
        return self._event

    @property
    def decode_error(self) -> str | None:
        self._decode()
        return self._error

    def picked(self, paths: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The values of `paths` (dotted field names) read from a trusted record's body without decoding the rest;
        None when the record is not trusted, already decoded, or cannot be read so (the caller then reads `event`)."""
        if not self.trusted or self._decoded or self.value is None:
            return None
        cached = self._picked
        if cached is not None and cached[0] is paths:
            return cached[1]
        schema = self.schema
        if schema is None:
            return None
        last = _LAST_PICKER
        pick: Picker | None
        if last[0] is schema and last[1] is paths:  # the same as the record before (no key to hash)
            pick = last[2]
        else:
            pick = picker(schema, paths)
            last[0], last[1], last[2] = schema, paths, pick
        if pick is None:
            return None
        try:
            values = pick(self.value)
        except Exception:  # noqa: BLE001 - bytes it does not read: the caller decodes them whole, which judges
            return None
        self._picked = (paths, values)
        return values

    def was_picked(self, paths: tuple[str, ...]) -> bool:
        return self._picked is not None and self._picked[0] is paths

    def picked_before(self) -> tuple[Any, ...] | None:
        """The values an accepted lead's check picked (`ACCEPTED_HEAD` or `ACCEPTED_REVISION`: its publisher at [2],
        [3]), if it did."""
        cached = self._picked
        if cached is not None and (cached[0] is ACCEPTED_HEAD or cached[0] is ACCEPTED_REVISION):
            return cached[1]
        return None

    def lead_head(self) -> LeadHead | None:
        """A CaseLead's id, revision and publisher read from the front of its body (no full decode)."""
        if self._peek is False:
            schema = self.schema
            head = None
            if schema is not None and schema.name == CASE_LEAD and self.value is not None:
                if self._decoded and isinstance(self._event, dict):
                    e = self._event
                    head = LeadHead(e["lead_id"], e["revision"], e["publisher"]["agency"], e["publisher"]["province"])
                else:
                    head = peek_lead(schema, self.value)
            self._peek = head
        return self._peek if isinstance(self._peek, LeadHead) else None

    def where(self) -> str:
        return where(self.topic, self.partition, self.offset, self.file, self.index)

    def sha256(self) -> str:
        return hashlib.sha256(self.value or b"").hexdigest()


#: The C reader of a trusted run's usual records (`leadbus.audit.native_runs`), or None: the Python paths alone.
_RUN_READER = run_reader(ReplayRecord)


#: The writer schema, paths and picker of the last `ReplayRecord.picked` (a replay picks the same, record after
#: record: two identity tests instead of hashing the key of `picker`'s cache).
_LAST_PICKER: list[Any] = [None, None, None]


def _plain(mark: Mark) -> tuple[str, int, int, str | None, int | None]:
    return (mark.topic, mark.partition, mark.offset, mark.file, mark.index)


class LeadHead(NamedTuple):
    """A lead's id, revision and publisher (a tuple: one is made per intake record, and a frozen dataclass's
    constructor costs several times a tuple's)."""

    lead_id: str
    revision: int
    agency: str
    province: str


#: `LeadHead(...)` without its constructor's Python frame (a third of `_peek_usual`'s time): the same tuple.
_new_head = tuple.__new__


class _Cut(Exception):
    """The body ended, or holds a type the front reader does not read: decode it whole instead."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise _Cut
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise _Cut


def _front(schema: Any, data: bytes, pos: int, path: str, out: dict[str, Any], wanted: set[str]) -> int:
    """Read `schema` at `pos` into `out` (dotted names), stopping once every wanted name is read."""
    if isinstance(schema, dict) and schema.get("type") == "record":
        for f in schema["fields"]:
            pos = _front(f["type"], data, pos, f"{path}{f['name']}", out, wanted) if wanted - out.keys() else pos
            if not wanted - out.keys():
                return pos
        return pos
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if isinstance(kind, list):
        index, pos = _varint(data, pos)
        if not 0 <= index < len(kind):
            raise _Cut
        return _front(kind[index], data, pos, path, out, wanted)
    if kind == "null":
        out[path] = None
        return pos
    if kind in ("int", "long"):
        out[path], pos = _varint(data, pos)
        return pos
    if kind == "string":
        size, pos = _varint(data, pos)
        if size < 0 or pos + size > len(data):
            raise _Cut
        out[path] = data[pos:pos + size].decode()
        return pos + size
    raise _Cut


_HEAD = {"lead_id", "revision", "publisher.agency", "publisher.province"}


#: Per writer schema: the reads from the body's start to the last of the head's fields — (is a string, the
#: position in the head it fills, or -1 for a field passed over) — when all of them are plain; else None.
_PLANS: dict[bytes, tuple[tuple[bool, int], ...] | None] = {}
_HEAD_ORDER = ("lead_id", "revision", "publisher.agency", "publisher.province")


def _plan(schema: SchemaEntry) -> tuple[tuple[bool, int], ...] | None:
    """The reads (string / number, kept or passed over) up to the last of the head's fields, when all are plain."""
    steps: list[tuple[bool, int]] = []
    wanted = set(_HEAD)

    def walk(fields: Any, prefix: str) -> bool:
        for f in fields:
            if not wanted:
                return True
            name, t = prefix + f["name"], f["type"]
            kind = t.get("type") if isinstance(t, dict) else t
            if kind == "record" and isinstance(t, dict):
                if not walk(t["fields"], name + "."):
                    return False
                continue
            if kind not in ("string", "int", "long"):
                return False
            steps.append((kind == "string", _HEAD_ORDER.index(name) if name in _HEAD else -1))
            wanted.discard(name)
        return not wanted

    parsed = schema.parsed
    ok = isinstance(parsed, dict) and walk(parsed.get("fields", []), "")
    if not ok:
        return None
    return _USUAL if tuple(steps) == _USUAL else tuple(steps)


#: The plan of every CaseLead version so far (lead_id, revision, reported_at passed over, publisher.agency,
#: publisher.province), read by `_peek_usual`.
_USUAL = ((True, 0), (False, 1), (False, -1), (True, 2), (True, 3))


def _peek_usual(value: bytes) -> LeadHead | None:
    """`peek_lead` for the usual plan when the id, revision and names have one-byte lengths (a lead's do): the same
    head as the general reader gives, or None when in any doubt (the general reader then decides)."""
    try:
        b = value[10]
        if b >= 0x80 or b & 1:
            return None
        end = 11 + (b >> 1)
        b = value[end]
        if b >= 0x80:
            return None
        revision = (b >> 1) ^ -(b & 1)
        lead_id = value[11:end].decode()
        pos = end + 1
        last = pos + 9  # reported_at, passed over: a varint of at most 10 bytes
        while value[pos] >= 0x80:
            pos += 1
            if pos > last:
                return None
        b = value[pos + 1]
        if b >= 0x80 or b & 1:
            return None
        start = pos + 2
        end = start + (b >> 1)
        b = value[end]
        if b >= 0x80 or b & 1:
            return None
        agency = value[start:end].decode()
        start = end + 1
        end = start + (b >> 1)
        if end > len(value):
            return None
        return _new_head(LeadHead, (lead_id, revision, agency, value[start:end].decode()))
    except (IndexError, UnicodeDecodeError):
        return None


def peek_lead(schema: SchemaEntry, value: bytes) -> LeadHead | None:
    """Id, revision and publisher of a CaseLead from the front of its body; None when they cannot be read so."""
    fp = schema.fingerprint
    if fp in _PLANS:
        plan = _PLANS[fp]
    else:
        plan = _PLANS[fp] = _plan(schema)
    if plan is _USUAL:
        head = _native_peek(value, LeadHead) if _native_peek is not None else _peek_usual(value)
        if head is not None:
            return head
    if plan is None:
        return _peek_slow(schema, value)
    return _peek_planned(plan, value)


def _peek_planned(plan: tuple[tuple[bool, int], ...], value: bytes) -> LeadHead | None:
    """The head read by `plan`, step by step; None when it cannot be read so."""
    out: list[Any] = [None, None, None, None]
    pos = 10
    size = len(value)
    try:
        for is_string, slot in plan:
            b = value[pos]
            if b < 0x80:  # one-byte varint: most lengths and small numbers (no call)
                number, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:  # a longer varint (a timestamp), read here: at most 10 bytes
                result, shift = b & 0x7F, 7
                pos += 1
                b = value[pos]
                while b & 0x80:
                    result |= (b & 0x7F) << shift
                    shift += 7
                    if shift > 63:
                        return None
                    pos += 1
                    b = value[pos]
                result |= b << shift
                number, pos = (result >> 1) ^ -(result & 1), pos + 1
            if is_string:
                if number < 0 or pos + number > size:
                    return None
                if slot >= 0:
                    out[slot] = value[pos:pos + number].decode()
                pos += number
            elif slot >= 0:
                out[slot] = number
    except (UnicodeDecodeError, IndexError):
        return None
    return LeadHead(*out)


def _peek_slow(schema: SchemaEntry, value: bytes) -> LeadHead | None:
    parsed = schema.parsed
    fields = {f["name"]: f for f in parsed.get("fields", [])} if isinstance(parsed, dict) else {}
    if "publisher" not in fields:
        return None
    out: dict[str, Any] = {}
    try:
        _front_record(parsed, value, 10, out)
    except (_Cut, UnicodeDecodeError):
        return None
    if not out.keys() >= _HEAD:
        return None
    return LeadHead(out["lead_id"], out["revision"], out["publisher.agency"], out["publisher.province"])


def _front_record(parsed: Any, value: bytes, pos: int, out: dict[str, Any]) -> None:
    for f in parsed["fields"]:
        if not _HEAD - out.keys():
            return
        t = f["type"]
        if f["name"] == "publisher" and isinstance(t, dict) and t.get("type") == "record":
            pos = _front(t, value, pos, "publisher.", out, {"publisher.agency", "publisher.province"})
            if not {"publisher.agency", "publisher.province"} <= out.keys():
                raise _Cut
            # the rest of the publisher record is not needed: stop here if everything else is read
            continue
        pos = _front(t, value, pos, f["name"], out, {f["name"]})


def where(topic: str, partition: int, offset: int, file: str | None = None, index: int | None = None) -> str:
    text = f"{topic}[{partition}]@{offset}"
    return f"{text} (archive {file} #{index})" if file is not None else text


@dataclass(frozen=True)
class Finding:
    """Something a verifier found, with where: a failure makes the replay exit 1, a notice does not."""

    check: str
    message: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    index: int | None = None
    failure: bool = True

    @classmethod
    def at(cls, record: ReplayRecord | Mark, check: str, message: str, *, failure: bool = True) -> Finding:
        return cls(check, message, record.topic, record.partition, record.offset, record.file, record.index, failure)

    def where(self) -> str:
        if self.partition is None or self.offset is None:
            return self.file or self.topic
        return where(self.topic, self.partition, self.offset, self.file, self.index)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "failure": self.failure, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "file": self.file, "index": self.index, "message": self.message}


class Verifier(Protocol):
    """A check over a replay: each record once, in partition order; `finish` after the last.

    A verifier may also have `applies(topic) -> bool`: the replay then gives it only the records of the topics
    it applies to (its `check` must still ignore the others, as it is called with anything when run directly).
    """

    name: str

    def check(self, record: ReplayRecord) -> Iterable[Finding]: ...

    def finish(self) -> Iterable[Finding]: ...


@dataclass(slots=True)
class Mark:
    """Where a record was, kept by verifiers that report on an earlier record later."""

    topic: str
    partition: int
    offset: int
    file: str | None = None
    index: int | None = None

    @classmethod
    def of(cls, record: ReplayRecord | Mark) -> Mark:
        return cls(record.topic, record.partition, record.offset, record.file, record.index)

    def where(self) -> str:
        return where(self.topic, self.partition, self.offset, self.file, self.index)

    def finding(self, check: str, message: str, *, failure: bool = True) -> Finding:
        return Finding(check, message, self.topic, self.partition, self.offset, self.file, self.index, failure)


# -- sequences (for the seal verifier) -------------------------------------------------------------------


@dataclass
class _Lane:
    last: int
    last_at: Mark
    gaps: list[tuple[int, int, Mark]] = field(default_factory=list)  # (low, high, the record after the gap)


class LaneTracker:
    """Sequence numbers per lane — (publisher, topic, partition) — as the seal verifier reads them.

    The first number of a lane in the replay is its start (a replay from a point in time starts mid-lane).
    A number above the next opens a gap; one inside an open gap arrived late (`SEQUENCE_REORDERED`, and it is
    no longer missing); any other number at or below the highest is `SEQUENCE_REPLAYED`. Gaps still open at
    the end are `SEQUENCE_GAP` failures, located at the record that came after the missing numbers.
    """

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str, int], _Lane] = {}
        #: (topic, partition) read from offset 0, its very first record: nothing before it was removed by retention,
        #: so each lane's first number there is 1 (intake numbers a lane from 1) and a higher one follows a gap
        self.from_start: set[tuple[str, int]] = set()

    def _new(self, lane: tuple[str, str, int], sequence: int, here: Mark) -> _Lane:
        state = self._lanes[lane] = _Lane(sequence, here)
        if sequence > 1 and (lane[1], lane[2]) in self.from_start:
            state.gaps.append((1, sequence - 1, here))
        return state

    def observe(self, lane: tuple[str, str, int], sequence: int, record: ReplayRecord | Mark) -> list[Finding]:
        state = self._lanes.get(lane)
        here = record if type(record) is Mark else Mark.of(record)  # a Mark is kept as it is (never changed)
        if state is None:
            self._new(lane, sequence, here)
            return []
        last = state.last
        if sequence > last:
            if sequence > last + 1:
                state.gaps.append((last + 1, sequence - 1, here))
            state.last, state.last_at = sequence, here
            return []
        name = f"{lane[0]} on {lane[1]}[{lane[2]}]"
        for i, (low, high, after) in enumerate(state.gaps):
            if low <= sequence <= high:
                rest = [(a, b, after) for a, b in ((low, sequence - 1), (sequence + 1, high)) if a <= b]
                state.gaps[i:i + 1] = rest
                return [Finding.at(record, "SEQUENCE_REORDERED",
                                   f"sequence number {sequence} of {name} comes after {after.where()}, which "
                                   f"carries a later number: records were moved")]
        return [Finding.at(record, "SEQUENCE_REPLAYED",
                           f"sequence number {sequence} of {name} was already used (the lane is at {state.last}, "
                           f"last seen at {state.last_at.where()}): a record replayed")]

    def observe_run(self, lane: tuple[str, str, int], sequences: list[int], marks: Sequence[Mark]) -> list[Finding]:
        """`observe` for each of a run's records in order, at once when they are in order (the usual case).

        When the run's numbers are consecutive and above the lane's highest, observing them one by one would
        only open a gap before the first (if it skips numbers) and move the lane to the last: that is done here.
        Anything else (a number repeated, going back, skipping inside the run) takes them one by one.
        """
        first, last = sequences[0], sequences[-1]
        state = self._lanes.get(lane)
        if (state is None or first > state.last) and last - first == len(sequences) - 1 \
                and sequences == list(range(first, last + 1)):
            if state is None:
                state = self._new(lane, first, marks[0])
                state.last, state.last_at = last, marks[-1]
            else:
                if first > state.last + 1:
                    state.gaps.append((state.last + 1, first - 1, marks[0]))
                state.last, state.last_at = last, marks[-1]
            return []
        found: list[Finding] = []
        for sequence, mark in zip(sequences, marks, strict=True):
            found += self.observe(lane, sequence, mark)
        return found

    def finish(self) -> list[Finding]:
        out = []
        for (publisher, topic, partition), state in self._lanes.items():
            for low, high, after in state.gaps:
                numbers = f"{low}" if low == high else f"{low}–{high}"
                out.append(after.finding("SEQUENCE_GAP", f"sequence number(s) {numbers} of {publisher} on "
                                                         f"{topic}[{partition}] are missing before this record: "
                                                         "records dropped"))
        return out


# -- today's verifiers ----------------------------------------------------------------------------------


class PartitionOrder:
    """Offsets strictly increase within a partition; timestamps go back by at most `skew_ms`."""

    name = "order"

    #: Records per partition whose offset and timestamp a tail's process notes (see `leadbus.audit.boundary`).
    noted_max = 4096

    def __init__(self, skew_ms: int = 15_000, now_ms: int | None = None) -> None:
        self.skew_ms = skew_ms
        #: When the replay began (None: not judged): no record can have been written after it, and a record's
        #: timestamp is not sealed: one moved past it (a partition's last records re-dated out of an audited period)
        #: is `TIMESTAMP_IN_FUTURE`, judged at the end from each partition's highest (nothing per record).
        self.now_ms = now_ms
        # per partition: [last offset, highest timestamp, (offset, archive file, index) of the record that set it]
        self._last: dict[tuple[str, int], list[Any]] = {}
        #: Set in the process reading the tail of a partition cut in two: per partition, (offset, timestamp) of its
        #: first records, with which the parent judges them again against what came before (`leadbus.audit.boundary`).
        self.noted: dict[tuple[str, int], list[tuple[int, int]]] | None = None

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        key = (record.topic, record.partition)
        before = self._last.get(key)
        now_offset, stamp = record.offset, record.timestamp_ms
        if self.noted is not None:
            noted = self.noted.setdefault(key, [])
            if len(noted) < self.noted_max:
                noted.append((now_offset, stamp))
        if before is None:
            self._last[key] = [now_offset, stamp, (now_offset, record.file, record.index)]
            return ()
        offset, highest, seen = before
        if now_offset > offset and stamp >= highest:  # the usual case: in order, no step back
            before[0], before[1], before[2] = now_offset, stamp, (now_offset, record.file, record.index)
            return ()
        at = Mark(key[0], key[1], *seen)
        found: list[Finding] = []
        if now_offset <= offset:
            found.append(Finding.at(record, "OFFSET_ORDER", f"offset {now_offset} comes after offset {offset} "
                                                            f"({at.where()})"))
        if stamp < highest - self.skew_ms:
            found.append(self.backwards(record, stamp, highest, at))
        before[0] = now_offset
        if stamp >= highest:
            before[1], before[2] = stamp, (now_offset, record.file, record.index)
        return found

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (a run, as `CaseVersions.check_run` takes it): the usual record (a later offset,
        no step back) only moves its partition on, written once per stretch of one partition; anything else goes
        through `check`."""
        found: RunFindings = []
        if self.noted is not None:  # a tail's process notes every record: one by one
            return each(self, records)
        lasts = self._last
        before: list[Any] | None = None
        topic, partition, offset, highest = "", -1, 0, 0
        moved: ReplayRecord | None = None  # the last usual record of the stretch, not yet written into `before`
        reader = _RUN_READER if type(records) is list else None
        i, size = 0, len(records)
        while i < size:
            if before is not None and reader is not None:  # the usual records from i on, at once, in C
                usual_to = reader.order(records, i, topic, partition, offset, highest)
                if usual_to > i:
                    moved = records[usual_to - 1]
                    offset, highest, i = moved.offset, moved.timestamp_ms, usual_to
                    if i == size:
                        break
            record = records[i]
            i += 1
            if before is not None and record.partition == partition and record.topic == topic:
                now_offset, stamp = record.offset, record.timestamp_ms
                try:
                    usual = now_offset > offset and stamp >= highest
                except Exception:  # noqa: BLE001 - not numbers: `check` raises, located as the loop locates it
                    usual = False
                if usual:
                    offset, highest, moved = now_offset, stamp, record
                    continue
            if moved is not None and before is not None:
                before[0], before[1], before[2] = offset, highest, (offset, moved.file, moved.index)
                moved = None
            try:
                judged = self.check(record)
            except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((i - 1, judged))
            topic, partition = record.topic, record.partition
            before = lasts.get((topic, partition))
            if before is not None:
                offset, highest = before[0], before[1]
        if moved is not None and before is not None:
            before[0], before[1], before[2] = offset, highest, (offset, moved.file, moved.index)
        return found

    @staticmethod
    def backwards(record: ReplayRecord | Mark, stamp: int, highest: int, at: Mark) -> Finding:
        # Agencies' own producers stamp records when they are handed over, and may queue them for minutes:
        # on an intake topic a step back is worth a look (seals decide); on the bus's own topics it is a failure.
        text = (f"timestamp {_iso(stamp)} is {(highest - stamp) / 1000:.1f} s before "
                f"one already seen in this partition ({at.where()}, {_iso(highest)}): records moved or replayed")
        return Finding.at(record, "TIMESTAMP_BACKWARDS", text, failure=not is_intake(record.topic))

    def finish(self) -> Iterable[Finding]:
        if self.now_ms is None:
            return ()
        limit = self.now_ms + self.skew_ms
        return [Mark(topic, partition, *seen).finding(
                    "TIMESTAMP_IN_FUTURE", f"timestamp {_iso(highest)} is after the replay began ({_iso(self.now_ms)}, "
                    f"{(highest - self.now_ms) / 1000:,.0f} s later): re-dated after it was written",
                    failure=not is_intake(topic))
                for (topic, partition), (_, highest, seen) in sorted(self._last.items()) if highest > limit]


class Decodes:
    """Every value reads with a known writer schema; on the bus's own topics anything else is a failure."""

    name = "decode"

    #: Set by a replay whose seal verifier judges the agencies' seals (`ReplayOptions.seal_verifier`): a sealed intake
    #: record's bytes are then the signer's, or a failure of that check. Else every intake body is passed over too.
    seals_verified = False

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        if record.value is None:
            if is_intake(record.topic) or record.topic in _TOMBSTONED or record.topic.startswith("leadbus.state."):
                return ()
            # no stage writes a tombstone to an event topic: one there was added (it also deletes nothing there,
            # where nothing is compacted, and a replay would count it as an event)
            return (Finding.at(record, "UNDECODABLE", "a tombstone (no value): the bus writes none on this topic, so "
                                                      "it was added"),)
        if record.trusted:
            return ()  # the bytes its stage wrote, vouched for by the stage's signature
        schema = record.schema
        # An intake record is read by its header. Where no signature covers its bytes, its body is passed over by its
        # lengths (a fifth of a whole read): one that ends where the bytes do passes, any other is read whole, which
        # judges it (a trailing byte, a body cut short: a notice, as the whole read gives it).
        if schema is not None and not _needs_full_read(record) and (
                (self.seals_verified and record.headers and record.has_seal()) or _ends_exactly(schema, record.value)):
            return ()
        error = record.decode_error
        if error is None:
            return ()
        if is_intake(record.topic):
            return (Finding.at(record, "UNDECODABLE", f"{error} (intake dead-letters it)", failure=False),)
        return (Finding.at(record, "UNDECODABLE", f"{error}: the bus wrote this topic, so it was altered"),)

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (the replay's loop's run): a sealed intake body, under a seal the replay's seal
        verifier judges, passes without the call (as `check` passes it); any other record goes through `check`."""
        found: RunFindings = []
        sealed_pass = self.seals_verified
        check = self.check
        for i, record in enumerate(records):
            try:
                if (sealed_pass and record.value is not None and not record.trusted and record.headers
                        and record.topic.startswith(INTAKE_PREFIX) and record.schema is not None and record.has_seal()):
                    continue
                judged = check(record)
            except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((i, judged))
        return found

    def finish(self) -> Iterable[Finding]:
        return ()


#: The bus's topics where a record without a value is usual: the registries and the stages' changelogs (compacted).
_TOMBSTONED = frozenset({SCHEMAS, PUBLISHERS})


def _ends_exactly(schema: SchemaEntry, value: bytes) -> bool:
    """Whether the body of `value` passed over by its lengths (`picker.body_end`) ends where the bytes do; False when
    it cannot be passed over so (the caller reads it whole)."""
    end_of = body_end(schema)
    if end_of is None:
        return False
    try:
        return end_of(value) == len(value)
    except (IndexError, ValueError, OverflowError):  # bytes the pass does not read: the whole read judges them
        return False


def _needs_full_read(record: ReplayRecord) -> bool:
    """Bus-written topics are read whole (a cut or altered body must not pass); intake topics by their header."""
    return not is_intake(record.topic)


class IntakeLeads:
    """Intake topics: a (lead_id, revision) repeated — a redelivery or a refused conflict (notices)."""

    name = "intake-leads"

    @staticmethod
    def applies(topic: str) -> bool:
        return topic.startswith(INTAKE_PREFIX)

    def __init__(self) -> None:
        # (lead id, revision) → (SHA-256 of the value, topic, partition, offset, archive file, index): plain tuples,
        # which a split replay's worker pickles back to the parent at C speed (a Mark each cost ~10 µs there)
        self._seen: dict[tuple[str, int], tuple[bytes, str, int, int, str | None, int | None]] = {}
        self.sources: dict[tuple[str, int, int], bytes] = {}  # coordinates → SHA-256 of the value (cross-checks)
        self.ranges: dict[tuple[str, int], list[int]] = {}  # [lowest, highest] offset read per partition
        #: Whether to keep `sources` and `ranges`, which only `AcceptedLeads` reads: a replay that reads no accepted
        #: lead turns it off (a dict entry less per record, and less to send back from a split replay's process).
        self.keep_sources = True

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        topic = record.topic
        if not topic.startswith(INTAKE_PREFIX):
            return ()
        if _native_lead is not None:  # a lead met for the first time (the usual record) kept in one C call
            head = record.lead_head()
            if head is not None and _native_lead(record, head, self._seen, self.sources if self.keep_sources else None,
                                                 self.ranges if self.keep_sources else None):
                return ()
        offset = record.offset
        value = record.value or b""
        digest = _native_sha256(value) if _native_sha256 is not None else None
        if digest is None:
            digest = hashlib.sha256(value).digest()
        if self.keep_sources:
            self.sources[(topic, record.partition, offset)] = digest
            span = self.ranges.get((topic, record.partition))
            if span is None:
                self.ranges[(topic, record.partition)] = [offset, offset]
            elif offset > span[1]:
                span[1] = offset
            elif offset < span[0]:
                span[0] = offset
        head = record.lead_head()
        if head is None:
            return ()
        ident = (head.lead_id.lower(), head.revision)
        before = self._seen.get(ident)
        if before is None:
            self._seen[ident] = (digest, topic, record.partition, offset, record.file, record.index)
            return ()
        if before[0] == digest:
            return (Finding.at(record, "REDELIVERED", f"lead {ident[0]} revision {ident[1]} again, identical to "
                                                      f"{where(*before[1:])} (intake drops it)", failure=False),)
        return (Finding.at(record, "REVISION_CONFLICT", f"lead {ident[0]} revision {ident[1]} again with other "
                                                        f"content than {where(*before[1:])} (intake refuses it)",
                           failure=False),)

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (the replay's loop's run): a lead met for the first time is kept in one C call
        (`intake_lead`) without the calls in between, any other record goes through `check`. The same findings and
        state as one record after the other."""
        native = _native_lead
        if native is None:
            return each(self, records)
        found: RunFindings = []
        seen = self._seen
        sources, ranges = (self.sources, self.ranges) if self.keep_sources else (None, None)
        for i, record in enumerate(records):
            try:
                head = record.lead_head() if record.topic.startswith(INTAKE_PREFIX) else None
                if head is not None and native(record, head, seen, sources, ranges):
                    continue
            except Exception:  # noqa: BLE001 - nothing kept: `check` raises it again, and it is located there
                pass
            try:
                judged = self.check(record)
            except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((i, judged))
        return found

    def merge(self, other: IntakeLeads) -> list[Finding]:
        """Take in what another process read (other partitions): repeats across the two are noticed here."""
        self.sources.update(other.sources)
        self.ranges.update(other.ranges)
        if self._seen.keys().isdisjoint(other._seen):  # the usual case, at C speed: no lead read by both processes
            self._seen.update(other._seen)  # (what the loop below does when no ident is there already)
            return []
        found = []
        for ident, seen in other._seen.items():
            before = self._seen.get(ident)
            if before is None:
                self._seen[ident] = seen
                continue
            same = before[0] == seen[0]
            found.append(Mark(*seen[1:]).finding(
                "REDELIVERED" if same else "REVISION_CONFLICT",
                                    f"lead {ident[0]} revision {ident[1]} again, "
                                    f"{'identical to' if same else 'with other content than'} {where(*before[1:])} "
                                    f"(intake {'drops' if same else 'refuses'} it)", failure=False))
        return found

    def finish(self) -> Iterable[Finding]:
        return ()


#: What `AcceptedLeads` keeps of one accepted lead: id, revision, the event's digest, the intake coordinates it came
#: from, the SHA-256 of `original`.
_Facts = tuple[str, int, str, tuple[str, int, int], bytes]
#: A record sent to a worker for the content check: topic, partition, offset, timestamp, archive file, index, value.
_Row = tuple[str, int, int, int, "str | None", "int | None", "bytes | None"]
#: What a worker gives back of one row: the `Decodes` check's findings (it read the record whole), the content
#: check's findings, the facts kept (None: nothing to keep), and the publisher a replay's summary names (`publisher_of`
#: without headers: the parent reads a seal's publisher header itself).
_Result = tuple[list[Finding], list[Finding], "_Facts | None", str]
#: Called, when set, with each row taken back and the `Decodes` findings and publisher the worker found for it.
WholeRead = Callable[[_Row, list[Finding], str], None]


#: A noted lead's hash as `AcceptedLeads.noted_hashes` holds it: 8 bytes in native order, as array('q') and the C reader
_NOTED_HASH = struct.Struct("=q")


class AcceptedLeads:
    """`leadbus.leads.accepted`: the digest, the normalisation of the original, one (lead_id, revision).

    The content check of each record (its digest, and normalising `original` again by intake's own steps,
    `renormalised_lead`: ~120 µs a record, nearly all of this verifier's time) depends on that record alone. Given an
    `executor` (processes forked with the catalog: see `replay.py`), records go to it in chunks of raw bytes and the
    checks run on every core; the results are taken back in the order the records came, where the revisions and
    sources are kept as without one. The findings are the same, at the same coordinates; with an executor some
    arrive later (at the latest from `finish`).

    A worker reads each record whole anyway: it also makes the `Decodes` check of it and names its publisher. With
    `whole_read` set (by a replay that exports nothing), each row taken back is given to it with those, so that the
    replay's parent need not decode the records it sends (`takes`) a second time.
    """

    name = "accepted-leads"
    chunk = 500  # records per task sent to the executor
    in_flight = 6  # tasks sent and not yet taken back, at most

    @staticmethod
    def applies(topic: str) -> bool:
        return topic == LEADS_ACCEPTED

    def __init__(self, intake: IntakeLeads | None = None, *, renormalise: bool = True,
                 executor: Executor | None = None) -> None:
        self.intake = intake
        self.renormalise = renormalise
        self.executor = executor
        self._revisions: dict[str, tuple[int, str, Mark]] = {}  # lead id → highest revision, digest, where
        self._sources: list[tuple[tuple[str, int, int], bytes, Mark]] = []
        self._rows: list[_Row] = []
        self._catalog: SchemaCatalog | None = None
        self._tasks: deque[tuple[list[_Row], Future[list[_Result]]]] = deque()
        self.whole_read: WholeRead | None = None
        #: Set by a replay that verifies stage seals (`leadbus.audit.stage_seals`): a record intake sealed is vouched
        #: for by its seal, so `original` is not normalised again (its digest, revisions and source still are checked).
        self.trust_stage_seals = False
        #: Whether to keep where each lead came from for the source check (`finish`): a replay that reads no intake
        #: topic turns it off (there is nothing to check them against), and a trusted record's source is not read.
        self.keep_sources = True
        #: Set in the process reading the tail of the partition cut in two: (lead id, revision, digest, partition,
        #: offset) of every lead it accounts, in order, not judged there: the parent judges them after the head's
        #: (`leadbus.audit.boundary`).
        self.noted: list[tuple[str, int, str, int, int]] | None = None
        #: Beside `noted` (a cut's tail sets both): hash(lead id) of each note, made as it is noted, by the C reader
        #: (`_records.RunReader.accepted`) or `_note`; 8 bytes each in native order (`boundary.settle_tail` sends them).
        self.noted_hashes: bytearray | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a split replay's worker sends it back): what it read, never its executor or work in flight; marks
        as plain tuples (a pickled dataclass costs several µs each, and there is one per lead). Nor its `intake`: the
        worker's own `IntakeLeads`, which the parent's `merge` never reads (its own is the one `finish` reads), went
        back whole with it — every lead a split replay of the intake topics read, 4.6 MB of the 5 MB sent back, where
        `leadbus.audit.processes` sends their hashes alone."""
        state = self.__dict__.copy()
        state["executor"], state["_tasks"], state["_catalog"], state["whole_read"] = None, deque(), None, None
        state["intake"] = None
        state["_revisions"] = {k: (r, d, _plain(m)) for k, (r, d, m) in self._revisions.items()}
        state["_sources"] = [(c, d, _plain(m)) for c, d, m in self._sources]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_revisions"] = {k: (r, d, Mark(*m)) for k, (r, d, m) in state["_revisions"].items()}
        state["_sources"] = [(c, d, Mark(*m)) for c, d, m in state["_sources"]]
        self.__dict__.update(state)

    def takes(self, record: ReplayRecord) -> bool:
        """Whether `check` sends this record to the executor (a LeadAccepted by its fingerprint, with an executor)."""
        schema = record.schema
        return (self.executor is not None and record.topic == LEADS_ACCEPTED and schema is not None
                and schema.name == ACCEPTED and not (self.trust_stage_seals and _stage_sealed(record)))

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        if record.topic != LEADS_ACCEPTED:
            return ()
        schema = record.schema
        if schema is None or schema.name != ACCEPTED:
            return ()
        if record.trusted and self.trust_stage_seals and not (self._rows or self._tasks):
            found = self._vouched(record)
            if found is not None:
                return found
        if self.trust_stage_seals and _stage_sealed(record):
            before = self._send(drain=True) if self._rows or self._tasks else []  # in the order records came
            return before + self._account([], sealed_facts(record, self.keep_sources), record)
        if self.executor is None:
            found, facts = accepted_content(record, self.renormalise)
            return self._account(found, facts, record)
        self._catalog = record.catalog  # for records checked here when the executor fails
        self._rows.append((record.topic, record.partition, record.offset, record.timestamp_ms, record.file,
                           record.index, record.value))
        if len(self._rows) < self.chunk:
            return ()
        return self._send()

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (the replay's loop's trusted run of this topic): a record a stage seal vouched
        for goes to `_vouched` without the call in between, any other through `check`. The same findings and state as
        one record after the other (this check reads no other's state but at `finish`)."""
        found: RunFindings = []
        check, vouched = self.check, self._vouched
        # the C reader takes the usual records (a lead's first revision, or noted in a cut's tail) from i on and stops
        # at any other, judged below; not where sources are kept (their `original` hashed: the Python path)
        reader = (_RUN_READER if type(records) is list and self.trust_stage_seals and not self.keep_sources
                  else None)
        known: SchemaEntry | None = None  # the writer of the record before, its picker and single-object header
        pick: Picker | None = None
        tag = b""
        i, size = 0, len(records)
        while i < size:
            if pick is not None and reader is not None and not (self._rows or self._tasks):
                i = reader.accepted(records, i, self._revisions, self.noted, pick, known, tag, ACCEPTED_REVISION,
                                    LEADS_ACCEPTED, Mark, self.noted_hashes)
                if i == size:
                    break
            record = records[i]
            try:
                judged: Iterable[Finding] | None = None
                schema = record.schema
                if (record.trusted and self.trust_stage_seals and schema is not None and schema.name == ACCEPTED
                        and record.topic == LEADS_ACCEPTED and not (self._rows or self._tasks)):
                    judged = vouched(record)
                if judged is None:
                    judged = check(record)
            except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((i, judged))
            i += 1
            if reader is not None and record._schema is not known:  # the picker of this writer, for the next ones
                known = record._schema
                pick = picker(known, ACCEPTED_REVISION) if known is not None and known.name == ACCEPTED else None
                tag = b"\xc3\x01" + known.fingerprint if known is not None else b""
        return found

    def _vouched(self, record: ReplayRecord) -> list[Finding] | None:
        """`sealed_facts` and `_account` of a record a stage seal vouched for (`trusted`: stage-sealed, so the header
        scan of `_stage_sealed` is not needed), in one step: the same facts kept and findings, without the tuples and
        calls between them (each accepted record of a verified replay passes here). None when its fields cannot be
        picked: the general path then reads it whole."""
        sources = self.keep_sources
        head = record.picked(ACCEPTED_HEAD if sources else ACCEPTED_REVISION)
        if head is None:
            return None
        lead_id, revision, digest = str(head[0]), int(head[1]), str(head[4])
        noted = self.noted
        if noted is not None and not sources:  # the tail of a cut: noted for the parent, no place kept here
            self._note(lead_id, revision, digest, record.partition, record.offset)
            return []
        here = Mark(record.topic, record.partition, record.offset, record.file, record.index)
        if sources:
            self._sources.append(((head[5], head[6], head[7]), hashlib.sha256(bytes(head[8] or b"")).digest(), here))
        if noted is not None:
            self._note(lead_id, revision, digest, here.partition, here.offset)
            return []
        revisions = self._revisions
        if lead_id not in revisions:  # the usual case: the lead's first record (`revision` finds nothing)
            revisions[lead_id] = (revision, digest, here)
            return []
        return self.revision([], lead_id, revision, digest, here)

    def _send(self, *, drain: bool = False) -> list[Finding]:
        rows, self._rows = self._rows, []
        found: list[Finding] = []
        if rows:
            assert self.executor is not None
            try:
                self._tasks.append((rows, self.executor.submit(contents_of, rows, self.renormalise)))
            except RuntimeError:  # the executor is shut down or broken: checked here, as without one
                found += self._take(rows, None)
        while len(self._tasks) > (0 if drain else self.in_flight):
            found += self._take(*self._tasks.popleft())
        return found

    def _take(self, rows: list[_Row], task: Future[list[_Result]] | None) -> list[Finding]:
        try:
            results = task.result() if task is not None else None
        except Exception:  # noqa: BLE001 - a worker lost (killed, out of memory): its records are checked here
            results = None
        if results is None:
            results = contents_of(rows, self.renormalise, self._catalog)
        found: list[Finding] = []
        whole_read = self.whole_read
        for row, (decoded, findings, facts, publisher) in zip(rows, results, strict=True):
            if whole_read is not None:
                whole_read(row, decoded, publisher)
            found += self._account(list(findings), facts, Mark(row[0], row[1], row[2], row[4], row[5]))
        return found

    def _account(self, found: list[Finding], facts: _Facts | None, at_record: ReplayRecord | Mark) -> list[Finding]:
        """The revisions and sources of the accepted lead (in the order records came), after its content check."""
        if facts is None:
            return found
        lead_id, revision, digest, coords, original_sha = facts
        here = at_record if type(at_record) is Mark else Mark(  # a Mark made for it is kept as it is
            at_record.topic, at_record.partition, at_record.offset, at_record.file, at_record.index)
        if self.keep_sources:
            self._sources.append((coords, original_sha, here))
        if self.noted is not None:  # judged by the parent, after the head's (`leadbus.audit.boundary`)
            self._note(lead_id, revision, digest, here.partition, here.offset)
            return found
        return self.revision(found, lead_id, revision, digest, here)

    def _note(self, lead_id: str, revision: int, digest: str, partition: int, offset: int) -> None:
        """A lead noted in a cut's tail (`noted`), its hash beside it where they are kept (`noted_hashes`)."""
        assert self.noted is not None
        self.noted.append((lead_id, revision, digest, partition, offset))
        if self.noted_hashes is not None:
            self.noted_hashes += _NOTED_HASH.pack(hash(lead_id))

    def revision(self, found: list[Finding], lead_id: str, revision: int, digest: str, here: Mark) -> list[Finding]:
        """The one-revision-once check of an accepted lead, in the order records came."""
        before = self._revisions.get(lead_id)
        if before is not None:
            seen_revision, seen_digest, at = before
            if revision == seen_revision:
                what = "identical" if seen_digest == digest else "with other content"
                found.append(here.finding("REPLAYED", f"lead {lead_id} revision {revision} accepted again, {what} "
                                                      f"({at.where()}): intake accepts a revision once"))
            elif revision < seen_revision:
                found.append(here.finding("REORDERED", f"lead {lead_id} revision {revision} after revision "
                                                       f"{seen_revision} ({at.where()})"))
        if before is None or revision > before[0]:
            self._revisions[lead_id] = (revision, digest, here)
        return found

    def merge(self, other: AcceptedLeads) -> None:
        """Take in what another process read of `leadbus.leads.accepted` (its one partition is read by one)."""
        self._sources.extend(other._sources)
        for lead_id, seen in other._revisions.items():
            if lead_id not in self._revisions or seen[0] > self._revisions[lead_id][0]:
                self._revisions[lead_id] = seen

    @staticmethod
    def _original_differs(record: ReplayRecord, again: tuple[CaseLead, bytes] | Exception, text: bytes,
                          lead: CaseLead) -> list[Finding]:
        if isinstance(again, Exception):
            return [Finding.at(record, "ORIGINAL_MISMATCH", f"lead {lead.lead_id}: `original` does not read as a "
                                                            f"CaseLead: {again}")]
        if again[1] != text:
            return [Finding.at(record, "ORIGINAL_MISMATCH",
                               f"lead {lead.lead_id} revision {lead.revision}: normalising `original` (the bytes as "
                               "published) does not give the accepted lead: one of them was altered")]
        return []

    def finish(self) -> Iterable[Finding]:
        found = self._send(drain=True) if self.executor is not None else []  # what is still in the workers' hands
        if self.intake is None:
            return found
        for coords, digest, at in self._sources:
            span = self.intake.ranges.get(coords[:2])
            if span is None or not span[0] <= coords[2] <= span[1]:
                continue  # that intake record is outside what this replay read
            there = self.intake.sources.get(coords)
            if there is None:
                found.append(at.finding("SOURCE_MISSING", f"the accepted lead came from {where(*coords)}, which "
                                                          "holds no record: the intake topic was rewritten"))
            elif there != digest:
                found.append(at.finding("SOURCE_MISMATCH", f"the accepted lead came from {where(*coords)}, which "
                                                           "holds other bytes than its `original`: one was altered "
                                                           "or records were moved"))
        return found


def _stage_sealed(record: ReplayRecord) -> bool:
    return record.header(STAGE_CHAIN_HEADER) is not None


#: What the replay reads of a trusted accepted lead (`ReplayRecord.picked`): the lead's id, revision and publisher
#: (agency, province), the digest, the source's topic, partition and offset, `original`.
ACCEPTED_HEAD = ("lead.lead_id", "lead.revision", "lead.publisher.agency", "lead.publisher.province", "digest",
                 "source.topic", "source.partition", "source.offset", "original")


#: The same without what only the source check reads (a replay that reads no intake topic has no source to check): the
#: picker stops at `digest`, before the warnings, the source and `original`.
ACCEPTED_REVISION = ACCEPTED_HEAD[:5]
_NO_SOURCE = ("", 0, -1)

_PUBLISHER_HEAD = ("lead.publisher.agency", "lead.publisher.province")  # what the summary alone reads of one


def sealed_facts(record: ReplayRecord, sources: bool = True) -> _Facts | None:
    """What the revision and source checks keep of an accepted lead intake sealed, read as it is: its seal (checked by
    the stage seal verifier) vouches that these are the bytes intake wrote, so neither the lead's validation nor its
    digest nor the normalisation of `original` is made again here (`--rederive` and `audit rebuild` make them).
    Without `sources` (no intake topic read: nothing to check them against) a trusted record's source and `original`
    are not read."""
    if record.trusted:
        head = record.picked(ACCEPTED_HEAD if sources else ACCEPTED_REVISION)
        if head is not None:
            if not sources:
                return (str(head[0]), int(head[1]), str(head[4]), _NO_SOURCE, b"")
            return (str(head[0]), int(head[1]), str(head[4]), (head[5], head[6], head[7]),
                    hashlib.sha256(bytes(head[8] or b"")).digest())
    event = record.event
    if not isinstance(event, dict):
        return None  # `Decodes` reports it
    try:
        lead, where_from = event["lead"], event["source"]
        return (str(lead["lead_id"]), int(lead["revision"]), str(event["digest"]),
                (where_from["topic"], where_from["partition"], where_from["offset"]),
                hashlib.sha256(bytes(event.get("original") or b"")).digest())
    except (KeyError, TypeError, ValueError):
        return None  # not the contract's shape: `Decodes` has it read with its writer schema, so it cannot be


def accepted_content(record: ReplayRecord, renormalise: bool = True) -> tuple[list[Finding], _Facts | None]:
    """The checks of one accepted lead that depend on it alone (the digest, `original` normalised again), and the
    facts the revision and source checks keep (None when the lead does not validate: nothing to keep)."""
    event = record.event
    if not isinstance(event, dict):
        return [], None  # `Decodes` reports it
    found: list[Finding] = []
    original = bytes(event.get("original") or b"")
    again = _renormalised(record.catalog, original) if renormalise and original else None
    if isinstance(again, tuple) and again[0].to_avro() == event["lead"]:
        # The event's lead is, field for field, what normalising `original` gives: its JSON is that lead's
        # (validating the event's copy again would give the same model), and `original` holds.
        lead, text = again
    else:
        try:
            lead = CaseLead.model_validate(event["lead"])
        except ValueError as exc:
            return [Finding.at(record, "INVALID_LEAD", f"the accepted lead does not validate: {exc}")], None
        text = lead.json_bytes()  # the bytes `to_json()` decodes: comparing or digesting either is the same
        if again is not None:
            found += AcceptedLeads._original_differs(record, again, text, lead)
    digest = hashlib.sha256(text).hexdigest()
    if digest != event["digest"]:
        found.insert(0, Finding.at(record, "DIGEST_MISMATCH",
                                   f"lead {lead.lead_id} revision {lead.revision}: the SHA-256 of the normalised "
                                   f"lead is {digest}, the event says {event['digest']}: the body was altered"))
    where_from = event["source"]
    coords = (where_from["topic"], where_from["partition"], where_from["offset"])
    return found, (lead.lead_id, lead.revision, event["digest"], coords, hashlib.sha256(original).digest())


#: The catalog of a worker process of `AcceptedLeads`'s executor (set by `use_catalog` when it starts).
_WORKER_CATALOG: list[SchemaCatalog | None] = [None]


def use_catalog(catalog: SchemaCatalog) -> None:
    """An executor's initializer: the catalog its workers read records with."""
    _WORKER_CATALOG[0] = catalog


def unreadable(record: ReplayRecord | Mark, verifier: str, exc: Exception) -> Finding:
    """A check that could not read a record (it raised): a located failure, never a crash."""
    return Finding.at(record, "UNREADABLE", f"the {verifier} check cannot read this record "
                                            f"({type(exc).__name__}: {str(exc)[:200]}): altered or damaged")


_DECODES = Decodes()  # the `Decodes` check a worker makes (it keeps no state)


#: A verifier's findings over a run of records (`check_run`): (the record's index in the run, what `check` found there).
RunFindings = list[tuple[int, Iterable[Finding]]]


def each(verifier: Verifier, records: Sequence[ReplayRecord]) -> RunFindings:
    """`verifier.check` of each record of a run, one by one: what the replay's loop would find, exceptions located."""
    found: RunFindings = []
    check = verifier.check
    for i, record in enumerate(records):
        try:
            judged = check(record)
        except Exception as exc:  # noqa: BLE001 - hostile bytes must give a located failure, never a crash
            judged = [unreadable(record, verifier.name, exc)]
        if judged:
            found.append((i, judged))
    return found


def contents_of(rows: list[_Row], renormalise: bool, catalog: SchemaCatalog | None = None) -> list[_Result]:
    """Per row (run in a worker): the `Decodes` check of the record, read whole once; `accepted_content`; the publisher
    `publisher_of` names (without headers). A record that cannot be read is a located failure, as the replay's loop
    reports a check that raises."""
    catalog = catalog or _WORKER_CATALOG[0]
    if catalog is None:
        raise RuntimeError("no catalog: the executor's workers start with use_catalog")
    decodes = _DECODES
    out: list[_Result] = []
    for topic, partition, offset, ms, file, index, value in rows:
        record = ReplayRecord(topic, partition, offset, ms, None, value, (), catalog, file=file, index=index)
        try:
            decoded = list(decodes.check(record))
        except Exception as exc:  # noqa: BLE001 - as the replay's loop reports it
            # The parent's `Decodes` saw this raise, and so did the content check reading the same bytes afresh.
            unread = unreadable(record, decodes.name, exc)
            out.append(([unread], [unreadable(record, AcceptedLeads.name, exc)], None, _publisher(record)))
            continue
        try:
            found, facts = accepted_content(record, renormalise)
        except Exception as exc:  # noqa: BLE001 - as the replay's loop reports it
            found, facts = [unreadable(record, AcceptedLeads.name, exc)], None
        out.append((decoded, found, facts, _publisher(record)))
    return out


def _publisher(record: ReplayRecord) -> str:
    try:
        return publisher_of(record)
    except Exception:  # noqa: BLE001 - as the replay's loop names it: the verifiers located what is wrong
        return "?"


def _renormalised(catalog: SchemaCatalog, original: bytes) -> tuple[CaseLead, bytes] | Exception:
    """What intake's normalisation makes of `original` (the lead and its JSON bytes), or why it cannot read it."""
    try:
        return renormalised_lead(original, catalog)
    except (DecodeError, ValueError) as exc:
        return exc


#: What the order checks read of a trusted record (`ReplayRecord.picked`).
_CASE_HEAD = ("case_id", "version", "merged_into")
_STEP_HEAD = ("case_id", "seq")


class CaseVersions:
    """`leadbus.cases`: per case, versions 1, 2, 3 …; an absorbed case's closing event repeats its last version."""

    name = "case-versions"

    @staticmethod
    def applies(topic: str) -> bool:
        return topic == CASES

    def __init__(self) -> None:
        #: per case: its highest version, whether that one closed it (merged away), and where (partition, offset,
        #: archive file, index: the topic is `leadbus.cases`): a plain tuple, one per record (a `Mark` costs ten times)
        self._last: dict[str, tuple[int, bool, int, int, str | None, int | None]] = {}

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        if record.topic != CASES:
            return ()
        schema = record.schema
        if schema is None or schema.name != CASE_UPDATED:
            return ()
        head = record.picked(_CASE_HEAD) if record.trusted else None
        if head is not None:
            case_id, version, merged = str(head[0]), int(head[1]), head[2] is not None
        else:
            event = record.event
            if not isinstance(event, dict):
                return ()
            case_id, version = str(event["case_id"]), int(event["version"])
            merged = event.get("merged_into") is not None
        return self._follows(record, case_id, version, merged)

    def _follows(self, record: ReplayRecord, case_id: str, version: int, merged: bool) -> Iterable[Finding]:
        before = self._last.get(case_id)
        if before is None or version > before[0] or (version == before[0] and merged):
            self._last[case_id] = (version, merged, record.partition, record.offset, record.file, record.index)
        if before is None:
            return ()
        last, was_merged = before[0], before[1]
        if version == last + 1 and not was_merged:
            return ()
        if version == last and merged and not was_merged:
            return ()  # the closing event of a case absorbed by another
        at = where(CASES, before[2], before[3], before[4], before[5])
        if was_merged:
            return (Finding.at(record, "AFTER_MERGE", f"case {case_id} version {version} after it was merged "
                                                      f"away ({at})"),)
        if version == last:
            return (Finding.at(record, "REPLAYED", f"case {case_id} version {version} a second time ({at})"),)
        if version < last:
            return (Finding.at(record, "REORDERED", f"case {case_id} version {version} after version {last} "
                                                    f"({at})"),)
        missing = f"{last + 1}" if version == last + 2 else f"{last + 1}–{version - 1}"
        return (Finding.at(record, "VERSION_GAP", f"case {case_id} version {version} follows version {last} "
                                                  f"({at}): version {missing} missing"),)

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (consecutive trusted records of one topic, `leadbus.audit.replay`'s runs): the
        findings of each by its index. The usual record (a CaseUpdated read by the picker, the case's next version) is
        judged here without a call; anything else goes through `check`."""
        found: RunFindings = []
        if not records or records[0].topic != CASES:
            return found
        last = self._last
        paths = _CASE_HEAD
        schema: SchemaEntry | None = None
        pick: Picker | None = None
        tag = b""  # the single-object header naming `schema` (what `ReplayRecord.schema` reads the fingerprint from)
        # the C reader takes the usual records from i on, and stops at any other, judged below
        reader = _RUN_READER if type(records) is list else None
        i, size = 0, len(records)
        while i < size:
            if pick is not None and reader is not None:
                i = reader.versions(records, i, last, pick, schema, tag, paths, CASES, True)
                if i == size:
                    break
            record, at = records[i], i
            i += 1
            value = record.value
            # what `picked` reads, without its call: trusted, never decoded, the same writer schema as the record before
            # (found by its header's bytes, without the catalog's lookup: then kept on the record, as `schema` keeps it)
            if (pick is not None and record.trusted and not record._decoded and value is not None
                    and record._picked is None and (record._schema is schema or (
                        record._schema is None and value.startswith(tag)))):
                record._schema = schema
                try:
                    head = pick(value)
                except Exception:  # noqa: BLE001 - bytes it does not read: `check` decodes them whole, which judges
                    head = None
                if head is not None:
                    record._picked = (paths, head)
                    try:  # (what `check` does from here, raising where it would)
                        case_id, version, merged = str(head[0]), int(head[1]), head[2] is not None
                        before = last.get(case_id)
                        if before is not None and version == before[0] + 1 and not before[1]:
                            last[case_id] = (version, merged, record.partition, record.offset, record.file,
                                             record.index)
                            continue
                        judged = self._follows(record, case_id, version, merged)
                    except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                        judged = [unreadable(record, self.name, exc)]
                    if judged:
                        found.append((at, judged))
                    continue
            try:
                judged = self.check(record)
            except Exception as exc:  # noqa: BLE001 - as above
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((at, judged))
            if record.schema is not schema:  # the picker of this record's writer, for the next ones
                schema = record.schema
                pick = picker(schema, paths) if schema is not None and schema.name == CASE_UPDATED else None
                tag = b"\xc3\x01" + schema.fingerprint if schema is not None else b""
        return found

    def finish(self) -> Iterable[Finding]:
        return ()


class HandoverSteps:
    """`leadbus.handover`: per case, step numbers 1, 2, 3 …"""

    name = "handover-steps"

    @staticmethod
    def applies(topic: str) -> bool:
        return topic == HANDOVER

    def __init__(self) -> None:
        #: per case: its highest step and where (partition, offset, archive file, index), as `CaseVersions` keeps it
        self._last: dict[str, tuple[int, int, int, str | None, int | None]] = {}

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        if record.topic != HANDOVER or record.schema is None or record.schema.name != STEP:
            return ()
        head = record.picked(_STEP_HEAD) if record.trusted else None
        if head is not None:
            case_id, seq = str(head[0]), int(head[1])
        else:
            event = record.event
            if not isinstance(event, dict):
                return ()
            case_id, seq = str(event["case_id"]), int(event["seq"])
        before = self._last.get(case_id)
        if before is None or seq > before[0]:
            self._last[case_id] = (seq, record.partition, record.offset, record.file, record.index)
        if before is None or seq == before[0] + 1:
            return ()
        last, at = before[0], where(HANDOVER, *before[1:])
        if seq == last:
            return (Finding.at(record, "REPLAYED", f"handover step {seq} of case {case_id} a second time "
                                                   f"({at})"),)
        if seq < last:
            return (Finding.at(record, "REORDERED", f"handover step {seq} of case {case_id} after step {last} "
                                                    f"({at})"),)
        return (Finding.at(record, "STEP_GAP", f"handover step {seq} of case {case_id} follows step {last} "
                                               f"({at}): a step is missing"),)

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (a trusted run, as `CaseVersions.check_run` takes it): the usual steps (read by
        the picker of the writer of the record before, the case's first or next step) by the C reader of runs, anything
        else through `check`."""
        found: RunFindings = []
        reader = _RUN_READER if type(records) is list else None
        last, paths = self._last, _STEP_HEAD
        schema: SchemaEntry | None = None
        pick: Picker | None = None
        tag = b""
        i, size = 0, len(records)
        while i < size:
            if pick is not None and reader is not None:
                i = reader.versions(records, i, last, pick, schema, tag, paths, HANDOVER, False)
                if i == size:
                    break
            record, at = records[i], i
            i += 1
            try:
                judged = self.check(record)
            except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((at, judged))
            if record.schema is not schema:  # the picker of this record's writer, for the next ones
                schema = record.schema
                pick = picker(schema, paths) if schema is not None and schema.name == STEP else None
                tag = b"\xc3\x01" + schema.fingerprint if schema is not None else b""
        return found

    def finish(self) -> Iterable[Finding]:
        return ()


#: Per writer schema of a routed record (by fingerprint): the fields `RoutedVersions` reads (`case_id`, `version`, and
#: `merged_into`, `topic` where the schema has them) and where these two are among them (-1: a field the schema lacks,
#: None as `event.get` gives); None for a schema without a case id and version (nothing to check).
_ROUTED_PATHS: dict[bytes, tuple[tuple[str, ...], int, int] | None] = {}


def _routed_paths(schema: SchemaEntry) -> tuple[tuple[str, ...], int, int] | None:
    if schema.fingerprint in _ROUTED_PATHS:
        return _ROUTED_PATHS[schema.fingerprint]
    parsed = schema.parsed
    names = {f.get("name") for f in parsed.get("fields", ())} if isinstance(parsed, dict) else set()
    plan = None
    if "case_id" in names and "version" in names:
        paths = ("case_id", "version", *(n for n in ("merged_into", "topic") if n in names))
        plan = (paths, paths.index("merged_into") if "merged_into" in paths else -1,
                paths.index("topic") if "topic" in paths else -1)
    _ROUTED_PATHS[schema.fingerprint] = plan
    return plan


class RoutedVersions:
    """Routed topics: a case's versions never go back on a topic, and no event appears twice.

    A trusted record (a stage seal vouched for its bytes) is read by the fields the check uses alone (the picker,
    `ReplayRecord.picked`), as `CaseVersions` reads cases; any other, or one the picker cannot read, whole."""

    name = "routed-versions"

    @staticmethod
    def applies(topic: str) -> bool:
        return is_routed(topic)

    def __init__(self) -> None:
        #: where as plain tuples (topic, partition, offset, archive file, index), one or two per record (a `Mark`
        #: costs ten times, as `CaseVersions` found)
        self._last: dict[tuple[str, str], tuple[int, tuple[str, int, int, str | None, int | None]]] = {}
        self._seen: dict[tuple[Any, ...], tuple[str, int, int, str | None, int | None]] = {}

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        if not is_routed(record.topic):
            return ()
        schema = record.schema
        if schema is None:
            return ()
        head = None
        if record.trusted:
            plan = _routed_paths(schema)
            if plan is None:
                return ()  # no case id or version in this schema: a full decode would find neither
            paths, merged_at, topic_at = plan
            head = record.picked(paths)
        if head is not None:
            case_id, version = str(head[0]), int(head[1])
            merged = head[merged_at] if merged_at >= 0 else None
            routed_to = head[topic_at] if topic_at >= 0 else None
        else:
            event = record.event
            if not isinstance(event, dict) or "case_id" not in event or "version" not in event:
                return ()
            case_id, version = str(event["case_id"]), int(event["version"])
            merged, routed_to = event.get("merged_into"), event.get("topic")
        found: list[Finding] = []
        topic = record.topic
        here = (topic, record.partition, record.offset, record.file, record.index)
        ident = (topic, schema.name, case_id, version, merged, routed_to)
        at = self._seen.get(ident)
        if at is not None:
            found.append(Finding.at(record, "REPLAYED", f"{schema.name.rsplit('.', 1)[-1]} of case {case_id} "
                                                        f"version {version} a second time ({where(*at)})"))
        self._seen[ident] = here
        before = self._last.get((topic, case_id))
        if before is not None and version < before[0]:
            found.append(Finding.at(record, "REORDERED", f"case {case_id} version {version} after version "
                                                        f"{before[0]} ({where(*before[1])})"))
        if before is None or version >= before[0]:
            self._last[(topic, case_id)] = (version, here)
        return found

    def finish(self) -> Iterable[Finding]:
        return ()


def standard_verifiers(skew_ms: int = 15_000, *, renormalise: bool = True, now_ms: int | None = None) -> list[Verifier]:
    """Today's verifiers, in the order they run (`now_ms`: when the replay began, see `PartitionOrder`)."""
    intake = IntakeLeads()
    return [PartitionOrder(skew_ms, now_ms), Decodes(), intake, AcceptedLeads(intake, renormalise=renormalise),
            CaseVersions(), HandoverSteps(), RoutedVersions()]


# -- who sent it ------------------------------------------------------------------------------------------


def publisher_of(record: ReplayRecord) -> str:
    """Who an event is from: the seal's publisher; else the agency (and province) the event names; else the stage."""
    sealed = record.sealed_publisher()
    if sealed:
        return sealed.decode(errors="replace")
    schema = record.schema
    if schema is None or schema.name not in _NAMING:  # (a case, a step, a routed record …: its topic alone tells)
        by_topic = _BY_TOPIC.get(record.topic)
        if by_topic is None:
            by_topic = _BY_TOPIC[record.topic] = _topic_publisher(record.topic)
        return by_topic
    if schema.name == CASE_LEAD:
        head = record.lead_head()
        if head is not None:
            return f"{head.agency}.{head.province}"
    if record.trusted and schema is not None and schema.name == ACCEPTED:
        # the accepted lead's facts when its check read them already, else its publisher alone (at the front)
        picked = record.picked_before() or record.picked(_PUBLISHER_HEAD)
        if picked is not None:
            return f"{picked[0]}.{picked[1]}" if len(picked) == 2 else f"{picked[2]}.{picked[3]}"
    event = record.event if schema is not None and schema.name in (CASE_LEAD, DECISION, ACCEPTED, REJECTED) else None
    if isinstance(event, dict):
        if schema is not None and schema.name == CASE_LEAD:
            return f"{event['publisher']['agency']}.{event['publisher']['province']}"
        if schema is not None and schema.name == DECISION:
            return f"{event['actor']['agency']}.{event['actor']['province']}"
        if schema is not None and schema.name == ACCEPTED:
            publisher = event["lead"]["publisher"]
            return f"{publisher['agency']}.{publisher['province']}"
        if event.get("publisher_agency"):
            return str(event["publisher_agency"])
    return _topic_publisher(record.topic)


def tally_run(records: Sequence[ReplayRecord], tally: dict[tuple[str, str], int]) -> int:
    """Each record of a run counted in `tally` under (its type, `publisher_of`) as the replay's summary counts it; the
    number of them that carry an agency seal header. The C reader (`leadbus.audit.native_runs`) counts the usual
    records and stops at any other, counted here."""
    reader = _RUN_READER
    if reader is None or type(records) is not list:
        return _tally_run(records, tally)
    sealed = 0
    i, size = 0, len(records)
    while i < size:
        i = reader.tally(records, i, tally, _BY_TOPIC, _NAMING)
        if i == size:
            break
        sealed += _tally_run(records[i:i + 1], tally)
        i += 1
    return sealed


def tally_each(records: Sequence[ReplayRecord], tally: dict[tuple[str, str], int]) -> int:
    """Each record counted as the replay's loop counts one (no key or publisher selected), and how many carry an
    agency seal header: `tally_run` for records it would count one by one anyway (sealed: their publisher is a
    header's)."""
    sealed = 0
    for record in records:
        if record.headers and record.has_seal():
            sealed += 1
        try:
            who = publisher_of(record)
        except Exception:  # noqa: BLE001 - the verifiers located what is wrong with it
            who = "?"
        what = (record.type_name, who)
        tally[what] = tally.get(what, 0) + 1
    return sealed


#: The picked heads of an accepted lead whose publisher its check read (`ReplayRecord.picked_before`)
_ACCEPTED_PICKS = (ACCEPTED_HEAD, ACCEPTED_REVISION)


def tally_accepted(records: Sequence[ReplayRecord], tally: dict[tuple[str, str], int]) -> int:
    """`tally_each` of a trusted run of accepted leads (which name their publisher in their fields): the C reader
    (`leadbus.audit.native_runs`) counts the usual record (no agency seal header, its check's picked head naming the
    publisher by two strings) and stops at any other, counted by `tally_each`."""
    reader = _RUN_READER
    if reader is None or type(records) is not list:
        return tally_each(records, tally)
    sealed = 0
    schema: SchemaEntry | None = None
    i, size = 0, len(records)
    while i < size:
        if schema is not None:
            i = reader.accepted_tally(records, i, tally, schema, schema.name, _ACCEPTED_PICKS)
            if i == size:
                break
        record = records[i]
        sealed += tally_each((record,), tally)
        i += 1
        known = record._schema
        if known is not None and known is not schema and known.name == ACCEPTED:
            schema = known
    return sealed


def _tally_run(records: Sequence[ReplayRecord], tally: dict[tuple[str, str], int]) -> int:
    """`tally_run` in Python (the reference): a record without an agency seal header whose event does not name who
    sent it (a case, a step, a routed record …) is named by its topic, as `publisher_of` names it, without the call."""
    sealed = 0
    counted: tuple[str, str] | None = None
    n = 0
    for record in records:
        flag = record._sealed
        if flag is None:
            flag = record.has_seal() if record.headers else False
        if flag:
            sealed += 1
        schema = record.schema
        if not flag and schema is not None and schema.name not in _NAMING:
            who = _BY_TOPIC.get(record.topic)
            if who is None:
                who = _BY_TOPIC[record.topic] = _topic_publisher(record.topic)
            what = (schema.name, who)
        else:
            try:
                who = publisher_of(record)
            except Exception:  # noqa: BLE001 - the verifiers located what is wrong with it
                who = "?"
            what = (record.type_name, who)
        if what != counted:
            if counted is not None:
                tally[counted] = tally.get(counted, 0) + n
            counted, n = what, 0
        n += 1
    if counted is not None:
        tally[counted] = tally.get(counted, 0) + n
    return sealed


#: The events whose fields name who sent them (`publisher_of`); any other is named by its topic (`_BY_TOPIC`).
_NAMING = frozenset((CASE_LEAD, DECISION, ACCEPTED, REJECTED))
_BY_TOPIC: dict[str, str] = {}


def _topic_publisher(topic: str) -> str:
    if is_intake(topic):
        return topic[len(INTAKE_PREFIX):]
    stage = STAGE_OF.get(topic) or ("routing" if is_routed(topic) else None)
    return f"leadbus:{stage}" if stage else "?"


def publisher_matches(publisher: str, wanted: str) -> bool:
    """`SAMR` matches SAMR, SAMR.33 and SAMR.33-gw2; `SAMR.33` matches SAMR.33 and its instances."""
    return publisher == wanted or publisher.startswith((wanted + ".", wanted + "-"))


def ms_of(when: datetime | None) -> int | None:
    """A key's bound in milliseconds since the epoch (None stays None), as records' broker timestamps are compared with
    it by the seal verifiers (`leadbus.audit.seals`, `leadbus.audit.stage_seals`)."""
    return None if when is None else int(when.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
