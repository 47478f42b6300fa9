"""The bus's own seal verifier for replays: Ed25519 signatures against the publisher key registry, and lanes.

The same judgement intake makes (`processors.core.provenance`), at each record's own time (its broker
timestamp), so a key revoked later does not fail what it signed while valid. Per record, from its headers
and the registry alone: the seal reads (`SIGNATURE_MALFORMED`), its key is registered for the publisher it
names (`UNKNOWN_KEY`: unknown, retired, or another publisher's key), valid at the record's time
(`KEY_REVOKED`, `KEY_EXPIRED`, `KEY_NOT_YET_VALID`), the publisher signs for this topic's agency and for
the agency and province the content names (`PUBLISHER_MISMATCH`), the partition signed for is the one it
sits in (`WRONG_PARTITION`), the Kafka key is the lead's id (`KEY_MISMATCH`: a record moved to another
key). An unsigned record where the registry requires signatures since before it was written is `UNSIGNED`
(seal headers removed).

**Signatures, by chains.** A v2 seal signs `leadbus-prev`, the link digest of its lane's previous event
(SHA-256 of its signed message and signature, `leadbus.signing`). Per lane the verifier keeps a *run*: records
whose `prev` is the link digest of the record before them in the partition. A run closes at a break (a `prev`
that does not link, a chain start, a v1 seal, a refused record between) or once it holds `window` records;
closing verifies the Ed25519 signature of its last record, which — the links being SHA-256 digests of
everything signed — vouches for every record of the run. Only then do the run's sequence numbers go to the
lane tracker, in order, as intake would judge them. When the last signature fails, each record of the run is
verified alone and every one that fails is located (`BAD_SIGNATURE`); the others still count. A v1 seal is a
run of one: old events verify exactly as before. So an altered, forged, dropped, swapped or replayed record
breaks a link or a signature, or a sequence number, and is named at its coordinates; an auditor pays one
signature per `window` records of an unbroken lane instead of one per record.

Sealed records on the bus's own topics (a signed decision forwarded to `leadbus.handover.decisions`)
are verified alone against their intake coordinates (`leadbus-source`); their lanes are intake's.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from leadbus.audit import verification as _verification
from leadbus.audit.native_intake import chained_fields as _native_fields
from leadbus.audit.native_intake import link_digest as _native_link
from leadbus.audit.native_intake import quick_seal as _native_quick
from leadbus.audit.registration import REGISTERED_LATER, as_judged, honoured_from, registered_later, undone
from leadbus.audit.seal_marks import LinkMarks, link_mark
from leadbus.audit.verification import (
    CASE_LEAD,
    DECISION,
    Finding,
    LaneTracker,
    ReplayRecord,
    RunFindings,
    each,
    unreadable,
)
from leadbus.audit.verification import ms_of as _ms
from leadbus.signing import (
    CHAIN_START,
    KEY_ID_HEADER,
    PARTITION_HEADER,
    PREV_HEADER,
    PUBLISHER_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    KeyRegistry,
    MalformedSeal,
    PublisherKey,
    Seal,
    _message_head,
    covers,
    message_signed,
    parse_publisher_id,
)
from leadbus.topics import INTAKE_PREFIX

SOURCE_HEADER = "leadbus-source"
#: Records of an unbroken lane per signature verified (memory: about this many values per open lane).
WINDOW = 256


@dataclass(frozen=True, slots=True)
class SealFault:
    """Why a seal does not hold: a replay finding (intake's reason names where they agree, plus `KEY_MISMATCH`)."""

    reason: str
    message: str
    publisher: str | None = None


#: A v2 seal's signed message in its parts, joined only when its signature is verified (`_message`): the lane's shared
#: head, the sequence number's digits, the value, `prev`.
_Parts = tuple[bytes, bytes, bytes, bytes]

#: Where a record is: topic, partition, offset, archive file, index (a `Mark`'s fields; one is made when a finding or
#: the lane tracker needs it, `_mark`).
_Where = tuple[str, int, int, str | None, int | None]

#: One record of a run: where it is, its sequence number, signature, key id, signed message (or its parts), link digest,
#: public key. A plain tuple (one is made per sealed record; a dataclass's constructor costs several times a tuple's).
_Link = tuple[_Where, int, bytes, str, "bytes | _Parts", bytes, bytes]

#: A signer judged valid on a topic and partition (see `BusSealVerifier._quick`): publisher id, key id, public key,
#: validity bounds in ms (start, until, revoked), the partition as its header reads, the signed message's head, lane.
_Signer = tuple[str, str, bytes, int | None, int | None, int | None, bytes, bytes, tuple[str, str, int]]

#: A chained seal's six header values as they read: publisher, key id, partition, sequence number, signature, prev.
_Fields = tuple[bytes, bytes, bytes, bytes, bytes, bytes]

_LENGTHS = tuple(n.to_bytes(4, "big") for n in range(20))  # a sequence number's length prefix (at most 19 digits)
_PREV_LENGTH = (32).to_bytes(4, "big")
_length = struct.Struct(">I").pack  # what len(value).to_bytes(4, "big") gives


#: The most (signer, topic, partition) entries `_quick` is kept for.
QUICK_SIGNERS = 65_536


def quick_signer(publisher: str, key_id: str, known: tuple[PublisherKey, int | None, int | None, int | None, bool],
                 topic: str, partition: int) -> _Signer:
    """What `_quick` needs of a signer judged valid on `topic` (`known`: its `_signers` entry) on `partition`."""
    return (publisher, key_id, known[0].public_key, known[1], known[2], known[3], str(partition).encode(),
            _message_head(topic, partition, publisher, key_id, True), (publisher, topic, partition))


class BusSealVerifier:
    name = "seals"

    def __init__(self, registry: KeyRegistry, *, window: int = WINDOW) -> None:
        self.registry = registry
        self.window = max(1, window)
        self.lanes = LaneTracker()
        self.signatures = 0  # Ed25519 verifications made
        self.sealed = 0
        self._runs: dict[tuple[str, str, int], list[_Link]] = {}  # per lane: the open run, in order
        self._required: dict[tuple[str, str | None], datetime | None] = {}
        self._covers: dict[tuple[str, str, str | None], bool] = {}
        self._bounds: dict[tuple[str, str], tuple[PublisherKey, int | None, int | None, int | None]] = {}
        #: (publisher, key id, topic) → the key, its validity in ms, whether the publisher's agency owns the topic
        self._signers: dict[tuple[str, str, str], tuple[PublisherKey, int | None, int | None, int | None, bool]] = {}
        #: (publisher, key id as their headers read, topic, partition) → what `_quick` needs of that signer there
        self._quick_signers: dict[tuple[bytes, bytes, str, int], _Signer] = {}

    # -- per record ---------------------------------------------------------------------------------

    def check(self, record: ReplayRecord) -> list[Finding]:
        if record.offset == 0 or record.opens_log:  # the partition is read from its first record (`from_start`)
            self.lanes.from_start.add((record.topic, record.partition))
        if not record.topic.startswith(INTAKE_PREFIX) and not record.has_seal():
            # no seal, on a topic where none is required (what `_check` finds, without reading for one): a bus-written
            # record with other headers only (a stage seal's, checked by the stage seal verifier)
            return []
        if _native_quick is not None and self._quick_signers:
            found = self._quick_in_c(record)
            if found is not None:
                return found
        fields = _native_fields(record.headers) if _native_fields is not None else False
        if fields is False:  # not built, or headers of unusual types: the reference reads them
            fields = _chained_fields(record.headers)
        if fields is not None:
            found = self._quick(record, fields)
            if found is not None:
                return found
        return self._check(record, fields)

    def check_run(self, records: Sequence[ReplayRecord]) -> RunFindings:
        """`check` of each of `records` (the replay's loop's run): a lead C takes (`_quick_in_c`) is judged here without
        the calls in between, any other record by `check`. The same findings and state as one record after the other."""
        quick, signers = _native_quick, self._quick_signers
        if quick is None:
            return each(self, records)
        found: RunFindings = []
        covers, runs, window = self._covers, self._runs, self.window
        # the C reader passes over the records below from i on, in a row (a stage's run: all of them), and stops at any
        # other, judged here
        reader = _verification._RUN_READER if type(records) is list else None
        i, size = 0, len(records)
        while i < size:
            if reader is not None:
                i = reader.unstamped_bus(records, i, INTAKE_PREFIX)
                if i == size:
                    break
            record, at = records[i], i
            i += 1
            if (record._sealed is False and record.offset and not record.opens_log
                    and not record.topic.startswith(INTAKE_PREFIX)):
                continue  # what `check` finds in a bus-written record known to carry no seal (a stage's): nothing
            got = None
            if signers and record.offset and not record.opens_log:
                try:
                    lead = record.lead_head() if record.topic.startswith(INTAKE_PREFIX) else None
                    got = quick(record, lead, signers, covers, runs, window) if lead is not None else None
                except Exception:  # noqa: BLE001 - nothing done: `check` raises it again, and it is located there
                    got = None
            try:
                if got is None:
                    judged = self.check(record)
                else:
                    self.sealed += 1
                    if got is True:  # it went on its lane's open run
                        continue
                    lane, link = got
                    judged = self._close(lane)
                    runs[lane] = [link]
            except Exception as exc:  # noqa: BLE001 - as the replay's loop locates a check that raised
                judged = [unreadable(record, self.name, exc)]
            if judged:
                found.append((at, judged))
        return found

    def _quick_in_c(self, record: ReplayRecord) -> list[Finding] | None:
        """`_quick` of a lead in one C call (`native_intake.quick_seal`), when its head reads: the same judgement and
        the same state after it; None when C does not take the record (nothing done: `_quick` or `_check` judges it)."""
        lead = record.lead_head()
        if lead is None or _native_quick is None:
            return None
        got = _native_quick(record, lead, self._quick_signers, self._covers, self._runs, self.window)
        if got is None:
            return None
        self.sealed += 1
        if got is True:  # it went on its lane's open run
            return []
        lane, link = got
        found = self._close(lane)
        self._runs[lane] = [link]
        return found

    def _quick(self, record: ReplayRecord, fields: _Fields) -> list[Finding] | None:
        """The usual record, judged without building a `Seal`: a chained seal in the SDK's shape, from a signer already
        judged valid on this topic and partition, within its key's validity, with a sequence number written as
        `str(int)` writes it, its content spoken for. None for anything else: `_check` judges it (the same way as
        always), so the findings are those of `_check` alone."""
        publisher_raw, key_id_raw, partition_raw, sequence_raw, signature, prev = fields
        topic, partition = record.topic, record.partition
        signer = self._quick_signers.get((publisher_raw, key_id_raw, topic, partition))
        if signer is None:
            return None
        publisher, key_id, public_key, start, until, revoked, partition_text, head, lane = signer
        ms = record.timestamp_ms
        if (partition_raw != partition_text or ms <= 0 or (revoked is not None and ms >= revoked)
                or (start is not None and ms < start) or (until is not None and ms >= until)
                or sequence_raw[:1] == b"0"):
            return None  # _chained_fields saw digits only, at most 19: without a leading 0 it is str(int(...))
        schema = record.schema
        if schema is not None and schema.name == CASE_LEAD:  # `_content` for a lead, when its publisher was judged
            lead = record.lead_head()
            if lead is not None and (self._covers.get((publisher, lead.agency, lead.province)) is not True
                                     or record.key != lead.lead_id.encode()):
                return None  # not judged yet, or a fault: `_content` (in `_check`) says which
        elif self._content(record, publisher) is not None:
            return None
        self.sealed += 1
        value = record.value or b""
        # link_digest(signed_message(topic, partition, publisher, key_id, int(sequence_raw), value, prev), signature);
        # the message is joined only if its signature is verified (`_message`)
        linked = _native_link(head, sequence_raw, value, prev, signature) if _native_link is not None else None
        link = ((topic, partition, record.offset, record.file, record.index), int(sequence_raw), signature,
                key_id, (head, sequence_raw, value, prev),
                linked if linked is not None else _link_of(head, sequence_raw, value, prev, signature), public_key)
        run = self._runs.get(lane)
        if run is not None and len(run) < self.window and run[-1][5] == prev and prev != CHAIN_START:  # [5]: digest
            run.append(link)
            return []
        found = self._close(lane)
        self._runs[lane] = [link]
        return found

    def _check(self, record: ReplayRecord,
               fields: _Fields | None = None) -> list[Finding]:
        try:
            seal = read_seal(record.headers)
        except MalformedSeal as exc:
            return [Finding.at(record, "SIGNATURE_MALFORMED", f"{exc}: seal headers altered or removed")]
        if seal is None:
            return self._unsigned(record)
        self.sealed += 1
        topic, value = record.topic, record.value or b""
        if not topic.startswith(INTAKE_PREFIX):
            return self._forwarded(record, seal, value)
        refused, key = self._refused(record, seal, topic, record.partition)
        lane = (seal.publisher, topic, record.partition)
        if key is None or refused is not None:
            # Not part of any chain: what was before it is verified on its own.
            why = refused or SealFault("UNKNOWN_KEY", "no key")
            return [*self._close(lane), Finding.at(record, why.reason, why.message)]
        if fields is not None and seal.prev is not None:
            self._remember(fields, seal, key, topic, record.partition)
        message = seal.message(topic, value)
        digest = hashlib.sha256(message)
        digest.update(seal.signature)  # link_digest(message, signature), without joining the two
        link = ((topic, record.partition, record.offset, record.file, record.index), seal.sequence,
                seal.signature, seal.key_id, message, digest.digest(), key.public_key)
        run = self._runs.get(lane)
        prev = seal.prev
        if run is not None and prev is not None and len(run) < self.window and run[-1][5] == prev \
                and prev != CHAIN_START:
            run.append(link)
            return []
        found = self._close(lane)
        self._runs[lane] = [link]
        return found

    def _remember(self, fields: _Fields, seal: Seal, key: PublisherKey, topic: str, partition: int) -> None:
        """A signer `_refused` judged valid on this topic (its key's bounds known), for `_quick` on this partition."""
        known = self._signers.get((seal.publisher, seal.key_id, topic))
        if known is None or known[0] is not key or not known[4] or len(self._quick_signers) >= QUICK_SIGNERS:
            return
        self._quick_signers[(fields[0], fields[1], topic, partition)] = quick_signer(seal.publisher, seal.key_id, known,
                                                                                    topic, partition)

    def finish(self) -> list[Finding]:
        found = []
        for lane in list(self._runs):
            found += self._close(lane)
        return found + self.lanes.finish()

    # -- chains ---------------------------------------------------------------------------------------

    def _valid(self, link: _Link) -> bool:
        self.signatures += 1
        message = link[4]
        return message_signed(link[6], link[2], message if isinstance(message, bytes) else _message(message))

    def _close(self, lane: tuple[str, str, int]) -> list[Finding]:
        return self._close_links(lane, self._runs.pop(lane, None))

    def _close_links(self, lane: tuple[str, str, int], links: list[_Link] | None) -> list[Finding]:
        """`_close` of a run off `_runs` already (the C pass over a plain intake stretch opened the lane's next one)."""
        if not links:
            return []
        if self._valid(links[-1]):
            good = links
            found: list[Finding] = []
        else:
            good, found = [], []
            for link in links[:-1]:
                if self._valid(link):
                    good.append(link)
                else:
                    found.append(self._bad(link, lane))
            found.append(self._bad(links[-1], lane))
        if good:
            found += self.lanes.observe_run(lane, [link[1] for link in good], LinkMarks(good))
        return found

    @staticmethod
    def _bad(link: _Link, lane: tuple[str, str, int]) -> Finding:
        return link_mark(link).finding("BAD_SIGNATURE", f"the signature of {lane[0]} (key {link[3]}) does not match "
                                                f"this event on {lane[1]}: forged, or altered after signing")

    # -- what a seal says, against the registry and the record ----------------------------------------

    def _refused(self, record: ReplayRecord, seal: Seal, topic: str,
                 partition: int) -> tuple[SealFault | None, PublisherKey | None]:
        who = seal.publisher
        known = self._signers.get((who, seal.key_id, topic))
        if known is not None:  # the usual case: a key seen before, its registry entry and agency already judged
            signer, start, until, revoked, own_agency = known
            ms = record.timestamp_ms
            if (own_agency and ms > 0 and (revoked is None or ms < revoked) and (start is None or ms >= start)
                    and (until is None or ms < until) and seal.partition == partition):
                return self._content(record, seal.publisher), signer
        key = self.registry.get(who, seal.key_id)
        if key is None:
            others = [k.publisher for k in self._keys_with_id(seal.key_id)]
            whose = f" (it is a key of {', '.join(sorted(others))})" if others else ""
            return SealFault("UNKNOWN_KEY", f"key {seal.key_id[:32]!r} is not registered for publisher {who}{whose}",
                           who), None
        status = self._status(key, record.timestamp_ms)
        if status != "VALID":
            later = registered_later(self.registry, key, record.timestamp_ms) if status == REGISTERED_LATER else None
            judged = as_judged(self.registry, key)
            message = later or _status_message(judged, status) + undone(self.registry, key, status)
            return SealFault(status, message, who), key
        agency = topic[len(INTAKE_PREFIX):] if topic.startswith(INTAKE_PREFIX) else None
        if agency is not None and parse_publisher_id(who)[0] != agency:
            return SealFault("PUBLISHER_MISMATCH", f"{who} signed an event for {topic}: publishers sign only for their "
                                                 "own agency's topic", who), key
        bounds = self._bounds[(key.publisher, key.key_id)] if record.timestamp_ms > 0 else None
        if bounds is not None:
            self._signers[(who, seal.key_id, topic)] = (key, bounds[1], bounds[2], bounds[3], True)
        if seal.partition != partition:
            return SealFault("WRONG_PARTITION", f"signed for {topic}[{seal.partition}], found on [{partition}]: a "
                                              "record moved or copied to another partition", who), key
        return self._content(record, seal.publisher), key

    def _status(self, key: PublisherKey, ms: int) -> str:
        """`key.status` at a record's broker time, in milliseconds (cached bounds: this runs per record)."""
        if ms <= 0:
            return as_judged(self.registry, key).status(datetime.now(UTC))
        bounds = self._bounds.get((key.publisher, key.key_id))
        if bounds is None or bounds[0] is not key:
            # honoured from its registration as the registry's log shows it, if later than it claims
            judged = as_judged(self.registry, key)  # revoked as early as any of its records said
            bounds = (key, honoured_from(self.registry, key)[0], _ms(judged.valid_until), _ms(judged.revoked_at))
            self._bounds[(key.publisher, key.key_id)] = bounds
        _, start, until, revoked = bounds
        if revoked is not None and ms >= revoked:
            return "KEY_REVOKED"
        if start is not None and ms < start:
            return REGISTERED_LATER if registered_later(self.registry, key, ms) else "KEY_NOT_YET_VALID"
        if until is not None and ms >= until:
            return "KEY_EXPIRED"
        return "VALID"

    def _content(self, record: ReplayRecord, publisher: str) -> SealFault | None:
        """The signer speaks for the content's publisher; a lead sits under its own id as the Kafka key."""
        schema = record.schema
        if schema is None:
            return None  # the signature decides (an unknown schema id was signed, or altered: BAD_SIGNATURE)
        if schema.name == CASE_LEAD:
            head = record.lead_head()
            if head is None:
                return None
            speaks = self._covers.get((publisher, head.agency, head.province))
            if speaks is None:
                speaks = self._covers[(publisher, head.agency, head.province)] = covers(
                    publisher, head.agency, head.province)
            if not speaks:
                return SealFault("PUBLISHER_MISMATCH", f"{publisher} signed a lead of {head.agency}."
                                                     f"{head.province}", publisher)
            if record.key != head.lead_id.encode():  # no key at all is another key too
                return SealFault("KEY_MISMATCH", f"lead {head.lead_id} sits under Kafka key "
                                               f"{_shown(record.key)}: a record moved to another key", publisher)
        elif schema.name == DECISION:
            event = record.event
            if not isinstance(event, dict):
                return None
            actor = event.get("actor")
            if isinstance(actor, dict) and not covers(publisher, str(actor.get("agency")),
                                                      actor.get("province")):
                return SealFault("PUBLISHER_MISMATCH", f"{publisher} signed a decision of {actor.get('agency')}."
                                                     f"{actor.get('province')}", publisher)
            case_id = str(event.get("case_id"))
            if record.key != case_id.encode():
                return SealFault("KEY_MISMATCH", f"the decision on case {case_id} sits under Kafka key "
                                               f"{_shown(record.key)}: a record moved to another key", publisher)
        return None

    def _keys_with_id(self, key_id: str) -> list[PublisherKey]:
        return [k for p in self.registry.publishers() for k in self.registry.keys_of(p) if k.key_id == key_id]

    def _forwarded(self, record: ReplayRecord, seal: Seal, value: bytes) -> list[Finding]:
        """A sealed record the bus forwarded (a decision on `leadbus.handover.decisions`): checked at its source."""
        raw = record.header(SOURCE_HEADER)
        try:
            partition_text, _, topic = (raw or b"").decode().split(":", 2)
            partition = int(partition_text)
        except (UnicodeDecodeError, ValueError):
            return [Finding.at(record, "SIGNATURE_MALFORMED", f"a sealed record on {record.topic} without a readable "
                                                              f"{SOURCE_HEADER} (its intake coordinates)")]
        refused, key = self._refused(record, seal, topic, partition)
        if key is None or refused is not None:
            why = refused or SealFault("UNKNOWN_KEY", "no key")
            return [Finding.at(record, why.reason, why.message)]
        link = ((record.topic, record.partition, record.offset, record.file, record.index), seal.sequence,
                seal.signature, seal.key_id, seal.message(topic, value), b"", key.public_key)
        return [] if self._valid(link) else [self._bad(link, (seal.publisher, topic, partition))]

    def _unsigned(self, record: ReplayRecord) -> list[Finding]:
        """An unsigned record on an intake topic whose publisher must sign (since before it was written)."""
        topic = record.topic
        if not topic.startswith(INTAKE_PREFIX):
            return []
        agency, province = topic[len(INTAKE_PREFIX):], None
        schema = record.schema
        if schema is not None and schema.name == CASE_LEAD:
            head = record.lead_head()
            province = head.province if head is not None else None
        elif schema is not None and schema.name == DECISION:
            event = record.event
            actor = event.get("actor") if isinstance(event, dict) else None
            province = actor.get("province") if isinstance(actor, dict) else None
        since = self._required_since(agency, province if isinstance(province, str) else None)
        if since is None or _time_of(record) < since:
            return []
        return [Finding.at(record, "UNSIGNED", f"no seal, but {agency}{'.' + province if province else ''} signs "
                                               f"every event since {since:%Y-%m-%dT%H:%M:%SZ}: seal headers removed, "
                                               "or an event nobody signed")]

    def _required_since(self, agency: str, province: str | None) -> datetime | None:
        """Since when (agency, province) must sign: the registration of its first key that requires it."""
        if (agency, province) not in self._required:
            since = None
            for publisher in self.registry.publishers():
                try:
                    key_agency, key_province = parse_publisher_id(publisher)
                except ValueError:
                    continue
                if key_agency != agency or (key_province is not None and key_province != province):
                    continue
                for key in self.registry.keys_of(publisher):
                    if key.require_signed:  # from its registration on, intake refused unsigned events
                        since = key.registered_at if since is None else min(since, key.registered_at)
            self._required[(agency, province)] = since
        return self._required[(agency, province)]


#: A chained seal's headers in the order the SDK writes them (`Seal.headers()`): the shape read quickly.
_CHAINED = (PUBLISHER_HEADER, KEY_ID_HEADER, PARTITION_HEADER, SEQUENCE_HEADER, SIGNATURE_HEADER, PREV_HEADER)
_SEAL_NAMES = frozenset(_CHAINED)


def _chained_fields(headers: Sequence[tuple[str, bytes | None]]) -> _Fields | None:
    """The six values of a chained seal in the SDK's shape — its six headers together and in order, other headers (such
    as the SDK's `content-type`) around them and none of them a seal header, the partition and sequence number digits
    (at most 9 and 19), a 64-byte signature, a 32-byte `prev` — as raw bytes; None for any other headers."""
    n = len(headers)
    if n == 7:  # the SDK's own shape: one other header (its `content-type`), then the seal's six in order
        try:
            (other, _), (n0, publisher), (n1, key_id), (n2, partition), (n3, sequence), (n4, signature), (n5, prev) = \
                headers
            if ((n0, n1, n2, n3, n4, n5) == _CHAINED and other not in _SEAL_NAMES and type(partition) is bytes
                    and type(sequence) is bytes and type(signature) is bytes and type(prev) is bytes
                    and type(publisher) is bytes and type(key_id) is bytes and len(signature) == 64 and len(prev) == 32
                    and len(partition) <= 9 and len(sequence) <= 19 and partition.isdigit() and sequence.isdigit()):
                return publisher, key_id, partition, sequence, signature, prev
        except (TypeError, ValueError):
            pass  # not pairs, or a name that is no string: judged below, as always
    if n < 6:
        return None
    at = 0
    for name, _ in headers:  # the index of the first seal header
        if name == PUBLISHER_HEADER:
            break
        if name in _SEAL_NAMES:
            return None
        at += 1
    if at + 6 > n:
        return None
    try:
        (n0, publisher), (n1, key_id), (n2, partition), (n3, sequence), (n4, signature), (n5, prev) = \
            headers[at:at + 6]
    except (TypeError, ValueError):
        return None
    if ((n0, n1, n2, n3, n4, n5) == _CHAINED and type(partition) is bytes and type(sequence) is bytes
            and type(signature) is bytes and type(prev) is bytes and type(publisher) is bytes
            and type(key_id) is bytes and partition.isdigit() and len(partition) <= 9 and sequence.isdigit()
            and len(sequence) <= 19 and len(signature) == 64 and len(prev) == 32
            and (at + 6 == n or not any(h[0] in _SEAL_NAMES for h in headers[at + 6:]))):
        return publisher, key_id, partition, sequence, signature, prev
    return None


def read_seal(headers: Sequence[tuple[str, bytes | None]]) -> Seal | None:
    """`Seal.from_headers`, read directly when the headers hold a chained seal's six together in the SDK's order
    (`_chained_fields`) and its signer pair was read before; anything else (another order, a header twice, a
    doubtful value) goes through `Seal.from_headers`, which gives the same seal or says what is wrong."""
    fields = _chained_fields(headers)
    if fields is None:
        return Seal.from_headers(headers)
    publisher, key_id, partition, sequence, signature, prev = fields
    number = int(sequence)
    signer = _SIGNERS.get((publisher, key_id))
    if number >= 1 and signer is not None:
        return Seal(signer[0], signer[1], int(partition), number, signature, prev)
    seal = Seal.from_headers(headers)  # the pair's first time: read (and judged) as always
    if seal is not None and len(_SIGNERS) < 4096:
        _SIGNERS[(publisher, key_id)] = (seal.publisher, seal.key_id)
    return seal


#: (publisher, key id) header values `Seal.from_headers` read without fault → the publisher id and key id it gave.
_SIGNERS: dict[tuple[bytes, bytes], tuple[str, str]] = {}


def _message(parts: _Parts) -> bytes:
    """A v2 seal's signed message from its parts: `signed_message(topic, partition, publisher, key_id, sequence, value,
    prev)`, whose shared head (`_message_head`) is the first part."""
    head, sequence_raw, value, prev = parts
    return b"".join((head, _LENGTHS[len(sequence_raw)], sequence_raw, _length(len(value)), value, _PREV_LENGTH, prev))


def _link_of(head: bytes, sequence_raw: bytes, value: bytes, prev: bytes, signature: bytes) -> bytes:
    """The link digest of the message of those parts and its signature (what `link_digest` gives), in Python."""
    digest = hashlib.sha256(_message((head, sequence_raw, value, prev)))
    digest.update(signature)  # link_digest(message, signature), without joining the two
    return digest.digest()


def _shown(key: bytes | None) -> str:
    return "none (the key removed)" if key is None else repr(key[:64])


def _time_of(record: ReplayRecord) -> datetime:
    return datetime.fromtimestamp(record.timestamp_ms / 1000, UTC) if record.timestamp_ms > 0 else datetime.now(UTC)


def _status_message(key: PublisherKey, status: str) -> str:
    who = key.publisher
    if status == "KEY_REVOKED":
        reason = f": {key.revocation_reason}" if key.revocation_reason else ""
        return f"key {key.key_id} of {who} was revoked at {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}{reason}"
    if status == "KEY_EXPIRED":
        return f"key {key.key_id} of {who} expired at {key.valid_until:%Y-%m-%dT%H:%M:%SZ}"
    return f"key {key.key_id} of {who} is valid from {key.valid_from:%Y-%m-%dT%H:%M:%SZ}"
