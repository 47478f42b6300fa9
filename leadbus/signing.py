"""Signed, sequenced events (DESIGN §7), pure: what is signed, the seal in headers, the key registry.

Every event a signing publisher writes carries in its Kafka headers

    leadbus-publisher   the publisher id: an agency (`SAMR`), or an agency and province (`SAMR.33`),
                        optionally with an instance suffix (`SAMR.33-gw2`) when several processes sign
    leadbus-key-id      the id of the Ed25519 key (16 hex digits of the SHA-256 of the raw public key)
    leadbus-partition   the intake partition the publisher chose: sequences count per partition (a lane)
    leadbus-seq         the sequence number in that lane, from 1
    leadbus-signature   64 bytes of Ed25519 over `signed_message(...)`
    leadbus-prev        (seal v2) 32 bytes: the link digest of the lane's previous event, zeros at a chain start

and the signature covers the topic, that partition, the publisher id, the key id, the sequence
number and the whole value (`C3 01` + the schema fingerprint + the Avro body): changing any of
them, or copying the record to another topic or partition, breaks it.

**Seal v2, a hash chain per lane.** A v2 seal also signs `leadbus-prev`, the `link_digest` (SHA-256
of the signed message and the signature) of the event before it in its lane, under another domain
tag, so a v1 signature never verifies as v2 nor the reverse. One valid signature then vouches for
every event chained below it: an auditor replaying millions of events checks each link (one SHA-256)
and one Ed25519 signature per run of links instead of one per event (`leadbus.audit.seals`); intake
does the same within each batch it handles (`processors.core.provenance.vouched_by_chains`). Events
sealed v1 (no `leadbus-prev` header) verify exactly as before. A publisher that restarts does not know
its last digest: it starts a new chain (`prev` = 32 zero bytes), which costs an auditor one more
signature, never a false alarm.

Keys live on the compacted `leadbus.publishers` topic as `PublisherKey` events keyed by
`<publisher>/<key id>` (every key a publisher ever had stays readable, so old events re-verify);
`KeyRegistry` is the table of them. No Kafka, no clock, no environment here: callers pass `now`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

PUBLISHER_HEADER = "leadbus-publisher"
KEY_ID_HEADER = "leadbus-key-id"
PARTITION_HEADER = "leadbus-partition"
SEQUENCE_HEADER = "leadbus-seq"
SIGNATURE_HEADER = "leadbus-signature"
PREV_HEADER = "leadbus-prev"
SEAL_HEADERS = (PUBLISHER_HEADER, KEY_ID_HEADER, PARTITION_HEADER, SEQUENCE_HEADER, SIGNATURE_HEADER)
#: Every header a seal may carry: the five above, and `leadbus-prev` in a v2 (chained) seal.
ALL_SEAL_HEADERS = (*SEAL_HEADERS, PREV_HEADER)
_SEAL_NAMES = frozenset(ALL_SEAL_HEADERS)
ALGORITHM = "Ed25519"
_DOMAIN = b"leadbus-event-signature-v1\x00"
_DOMAIN_V2 = b"leadbus-event-signature-v2\x00"
#: `prev` of the first event of a chain (a lane's first event, or the first after a publisher restarted).
CHAIN_START = bytes(32)
_PUBLISHER_ID = re.compile(r"^(?P<agency>[A-Z]{2,8})(?:\.(?P<province>[0-9]{2}))?(?:-(?P<instance>[a-z0-9]{1,16}))?$")


class MalformedSeal(ValueError):
    """Some seal headers are present but not all, or one cannot be read."""


def seal_headers(headers: Iterable[tuple[str, bytes | None]], names: frozenset[str], malformed: type[ValueError], *,
                 none_allowed: bool = True) -> dict[str, bytes]:
    """The values of the headers named in `names` (an agency's seal, or a stage's: `leadbus.stage_seals`), by name; a
    name twice is `malformed`, and so is a header without a value unless `none_allowed` (then it reads as b"")."""
    found: dict[str, bytes] = {}
    for name, value in headers:
        if name in names:
            if name in found:
                raise malformed(f"header {name} appears twice")
            if value is None:
                if not none_allowed:
                    raise malformed(f"header {name} has no value")
                value = b""
            found[name] = value
    return found


@lru_cache(maxsize=4096)
def parse_publisher_id(publisher: str) -> tuple[str, str | None]:
    """`SAMR.33-gw2` → ("SAMR", "33"); `SAMR` → ("SAMR", None). ValueError when it is not a publisher id."""
    found = _PUBLISHER_ID.match(publisher)
    if found is None:
        raise ValueError(f"{publisher!r} is not a publisher id (AGENCY, AGENCY.PP or either with -instance)")
    return found["agency"], found["province"]


def key_id_of(public_key: bytes) -> str:
    """The key id: 16 hex digits of the SHA-256 of the 32-byte raw public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def signed_message(topic: str, partition: int, publisher: str, key_id: str, sequence: int, value: bytes,
                   prev: bytes | None = None) -> bytes:
    """The bytes signed: a domain tag, then each part length-prefixed (no two inputs give the same bytes).

    v1 (`prev` None) as events were always signed; v2 adds the previous event's link digest under its own tag.
    """
    number = str(sequence).encode()
    head = _message_head(topic, partition, publisher, key_id, prev is not None)
    if prev is None:
        return b"".join((head, len(number).to_bytes(4, "big"), number, len(value).to_bytes(4, "big"), value))
    return b"".join((head, len(number).to_bytes(4, "big"), number, len(value).to_bytes(4, "big"), value,
                     len(prev).to_bytes(4, "big"), prev))


@lru_cache(maxsize=4096)
def _message_head(topic: str, partition: int, publisher: str, key_id: str, chained: bool) -> bytes:
    """The domain tag and the parts every event of a lane and key shares (cached: replays read millions)."""
    parts = (topic.encode(), str(partition).encode(), publisher.encode(), key_id.encode())
    return (_DOMAIN_V2 if chained else _DOMAIN) + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def link_digest(message: bytes, signature: bytes) -> bytes:
    """What the next event of the lane names as its `prev`: SHA-256 of this event's signed message and signature.

    The signature is in it so that a signature altered in the middle of a chain breaks the next link too.
    """
    return hashlib.sha256(message + signature).digest()


@dataclass(frozen=True, slots=True)
class Seal:
    """The signature material of one event, as carried in its headers."""

    publisher: str
    key_id: str
    partition: int
    sequence: int
    signature: bytes
    prev: bytes | None = None  # v2: the link digest of the lane's previous event (CHAIN_START at a start)

    def headers(self) -> list[tuple[str, bytes]]:
        out = [(PUBLISHER_HEADER, self.publisher.encode()), (KEY_ID_HEADER, self.key_id.encode()),
               (PARTITION_HEADER, str(self.partition).encode()), (SEQUENCE_HEADER, str(self.sequence).encode()),
               (SIGNATURE_HEADER, self.signature)]
        if self.prev is not None:
            out.append((PREV_HEADER, self.prev))
        return out

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> Seal | None:
        """The seal in `headers`; None when there is none; `MalformedSeal` when it is partial or unreadable."""
        found = seal_headers(headers, _SEAL_NAMES, MalformedSeal)
        if not found:
            return None
        if len(found) < 6 and (len(found) < 5 or PREV_HEADER in found):  # some of the five are missing
            missing = [h for h in SEAL_HEADERS if h not in found]
            raise MalformedSeal(f"seal headers missing: {', '.join(missing)}")
        partition_raw, sequence_raw = found[PARTITION_HEADER], found[SEQUENCE_HEADER]
        if not (partition_raw.isdigit() and len(partition_raw) <= 9):
            raise MalformedSeal(f"{PARTITION_HEADER} {partition_raw[:40]!r} is not a partition number")
        if not sequence_raw.isdigit() or len(sequence_raw) > 19:
            raise MalformedSeal(f"{SEQUENCE_HEADER} {sequence_raw[:40]!r} is not a sequence number")
        sequence = int(sequence_raw)
        if sequence < 1:
            raise MalformedSeal("sequence numbers start at 1")
        signature = found[SIGNATURE_HEADER]
        if len(signature) != 64:
            raise MalformedSeal(f"{SIGNATURE_HEADER} is {len(signature)} bytes, not 64")
        prev = found.get(PREV_HEADER)
        if prev is not None and len(prev) != 32:
            raise MalformedSeal(f"{PREV_HEADER} is {len(prev)} bytes, not 32")
        publisher, key_id = _signer(found[PUBLISHER_HEADER], found[KEY_ID_HEADER])
        return cls(publisher, key_id, int(partition_raw), sequence, signature, prev)

    def message(self, topic: str, value: bytes) -> bytes:
        return signed_message(topic, self.partition, self.publisher, self.key_id, self.sequence, value, self.prev)


@lru_cache(maxsize=4096)
def _signer(publisher_raw: bytes, key_id_raw: bytes) -> tuple[str, str]:
    """The publisher id and key id of a seal, read and checked (cached: a replay meets the same few pairs often)."""
    try:
        publisher = publisher_raw.decode()
        key_id = key_id_raw.decode()
    except UnicodeDecodeError as exc:
        raise MalformedSeal(f"a seal header is not UTF-8: {exc}") from None
    try:
        parse_publisher_id(publisher)
    except ValueError as exc:
        raise MalformedSeal(str(exc)) from None
    return publisher, key_id


def sign(private_key: Ed25519PrivateKey, publisher: str, topic: str, partition: int, sequence: int,
         value: bytes, prev: bytes | None = None) -> Seal:
    """Seal `value` for `topic`[`partition`] as number `sequence` of `publisher`; v2 (chained) when `prev` is given."""
    if prev is not None and len(prev) != 32:
        raise ValueError("prev is a 32-byte link digest")
    key_id = key_id_of(public_bytes(private_key.public_key()))
    signature = private_key.sign(signed_message(topic, partition, publisher, key_id, sequence, value, prev))
    return Seal(publisher, key_id, partition, sequence, signature, prev)


def public_bytes(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw: bytes = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return raw


def _verified(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 verification by libsodium (PyNaCl): about 40 % less CPU than OpenSSL's here (65 against 110 µs per
    event, measured on this project's 2-core machine), and intake verifies every event. libsodium is the stricter of
    the two (it also refuses small-order keys and non-canonical encodings), so nothing OpenSSL refuses passes."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def message_signed(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is the Ed25519 signature of `message` (a `signed_message`) under `public_key`."""
    return _verified(public_key, signature, message)


def signature_valid(public_key: bytes, seal: Seal, topic: str, value: bytes) -> bool:
    return _verified(public_key, seal.signature, seal.message(topic, value))


# -- the key registry ---------------------------------------------------------------------------

KeyStatus = Literal["VALID", "KEY_REVOKED", "KEY_EXPIRED", "KEY_NOT_YET_VALID"]


@dataclass(frozen=True)
class PublisherKey:
    """One key of one publisher, as last written on `leadbus.publishers` (the `PublisherKey` event)."""

    publisher: str
    key_id: str
    public_key: bytes
    valid_from: datetime
    registered_at: datetime
    valid_until: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    require_signed: bool = True
    replaces: str | None = None

    @property
    def agency(self) -> str:
        return parse_publisher_id(self.publisher)[0]

    @property
    def province(self) -> str | None:
        return parse_publisher_id(self.publisher)[1]

    @property
    def registry_key(self) -> bytes:
        return f"{self.publisher}/{self.key_id}".encode()

    def status(self, now: datetime) -> KeyStatus:
        """Revocation first (it is the strongest statement), then the validity period [valid_from, valid_until)."""
        if self.revoked_at is not None and now >= self.revoked_at:
            return "KEY_REVOKED"
        if now < self.valid_from:
            return "KEY_NOT_YET_VALID"
        if self.valid_until is not None and now >= self.valid_until:
            return "KEY_EXPIRED"
        return "VALID"

    def to_avro(self) -> dict[str, Any]:
        agency, province = parse_publisher_id(self.publisher)
        return {
            "publisher": self.publisher, "agency": agency, "province": province, "key_id": self.key_id,
            "algorithm": ALGORITHM, "public_key": self.public_key, "valid_from": self.valid_from,
            "valid_until": self.valid_until, "revoked_at": self.revoked_at,
            "revocation_reason": self.revocation_reason, "require_signed": self.require_signed,
            "replaces": self.replaces, "registered_at": self.registered_at,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> PublisherKey:
        if record.get("algorithm", ALGORITHM) != ALGORITHM:
            raise ValueError(f"key algorithm {record.get('algorithm')!r} is not {ALGORITHM}")
        public_key = bytes(record["public_key"])
        if len(public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        parse_publisher_id(str(record["publisher"]))
        return cls(str(record["publisher"]), str(record["key_id"]), public_key, record["valid_from"],
                   record["registered_at"], record.get("valid_until"), record.get("revoked_at"),
                   record.get("revocation_reason"), bool(record.get("require_signed", True)), record.get("replaces"))

    def revoked(self, at: datetime, reason: str) -> PublisherKey:
        return replace(self, revoked_at=at, revocation_reason=reason)

    def expiring(self, at: datetime) -> PublisherKey:
        until = at if self.valid_until is None else min(self.valid_until, at)
        return replace(self, valid_until=until)


@dataclass(frozen=True, slots=True)
class KeyWritten:
    """A key's first record read on `leadbus.publishers`: its offset, the earliest time it can have been written (its
    broker timestamp, or a later one of a record before it in the log: offsets are the broker's, timestamps the
    writer's), and whether it reads as a registration (no end of validity, no revocation: nothing a later change of
    the key would have written)."""

    offset: int
    written_ms: int
    as_registered: bool


@dataclass(frozen=True, slots=True)
class KeyEnded:
    """The earliest revocation (time, reason, offset) and end of validity (time, offset) the records of a key said."""

    revoked: tuple[datetime, str | None, int] | None = None
    until: tuple[datetime, int] | None = None


_NOT_ENDED = KeyEnded()


@dataclass(slots=True)
class RegistryLog:
    """What the registry's log itself showed, read from its start in offset order: records missing from it (its start
    past offset 0, or a hole: a deletion or a compaction, which the declaration `cleanup.policy delete` rules out; the
    admin's writes are not transactional, so no control record leaves one) and records whose time their writer chose
    (CreateTime: written while the topic was not `message.timestamp.type LogAppendTime`, as declared)."""

    next_offset: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)  # (first offset missing, the offset read after them)
    writer_stamped: list[int] = field(default_factory=list)  # offsets
    #: Key records whose key id is not the one of their key (`key_id_of`): (offset, "<publisher>/<key id>"). Every key
    #: id is made from its key, so a second record of a key id with other material is a key put in another's place.
    foreign: list[tuple[int, str]] = field(default_factory=list)

    def note(self, offset: int, broker_stamped: bool) -> None:
        if offset > self.next_offset:
            self.missing.append((self.next_offset, offset))
        self.next_offset = max(self.next_offset, offset + 1)
        if not broker_stamped:
            self.writer_stamped.append(offset)

    def note_key(self, offset: int, key: PublisherKey) -> None:
        """The key record read at `offset` (after `note`): its key id judged against its key (`foreign`)."""
        if key_id_of(key.public_key) != key.key_id:
            self.foreign.append((offset, key.registry_key.decode()))

    def note_missing(self, end: int) -> None:
        """The log holds nothing up to `end` (its start, with no record after it yet)."""
        if end > self.next_offset:
            self.missing.append((self.next_offset, end))
            self.next_offset = end


class KeyRegistry:
    """Every publisher key known, by (publisher, key id): the table of the compacted `leadbus.publishers` topic."""

    def __init__(self, keys: Iterable[PublisherKey] = ()) -> None:
        self._keys: dict[tuple[str, str], PublisherKey] = {}
        self._required: frozenset[tuple[str, str | None]] | None = None  # (agency, province or None), derived
        #: Where each key's first record read on `leadbus.publishers` sits, filled by the feed that read the topic
        #: (`leadbus.publisher_keys.KeyFeed`; empty for a registry made otherwise): what an audit judges a key's
        #: registration time by (`leadbus.audit.registration`), never its own `registered_at` alone.
        self.written: dict[tuple[str, str], KeyWritten] = {}
        #: Per key, the earliest revocation and end of validity any of its records read said, each with that record's
        #: offset (filled by the feed, as `written`): the admin only ever revokes or shortens a key, so a later record
        #: saying less is a revocation undone, which an audit does not follow (`leadbus.audit.registration`).
        self.ended: dict[tuple[str, str], KeyEnded] = {}
        self._latest_ms = 0  # the latest broker timestamp of the records noted so far, in offset order
        #: The registry's log as the feed read it (None for a registry made otherwise): `leadbus.audit.registration`.
        self.log: RegistryLog | None = None
        for key in keys:
            self.apply(key)

    def __len__(self) -> int:
        return len(self._keys)

    def apply(self, key: PublisherKey) -> None:
        """The latest record of a key replaces what was known of it (the compacted topic's rule)."""
        self._keys[(key.publisher, key.key_id)] = key
        self._required = None

    def note_record(self, key: PublisherKey, offset: int, broker_ms: int) -> None:
        """Note a key record read on `leadbus.publishers` in offset order (at `offset`, broker time `broker_ms`, 0
        when it has none): where the key's first record sits and the earliest it can have been written
        (`KeyWritten`), the earliest revocation and end of validity its records said (`KeyEnded`) and, when the
        registry keeps its log, whether the record's key id is made from its key (`RegistryLog.note_key`)."""
        if self.log is not None:
            self.log.note_key(offset, key)
        self._latest_ms = max(self._latest_ms, broker_ms)
        where = (key.publisher, key.key_id)
        ended = self.ended.get(where, _NOT_ENDED)
        revoked, until = ended.revoked, ended.until
        if key.revoked_at is not None and (revoked is None or key.revoked_at < revoked[0]):
            revoked = (key.revoked_at, key.revocation_reason, offset)
        if key.valid_until is not None and (until is None or key.valid_until < until[0]):
            until = (key.valid_until, offset)
        if revoked is not None or until is not None:
            self.ended[where] = KeyEnded(revoked, until)
        if where not in self.written:
            self.written[where] = KeyWritten(offset, self._latest_ms,
                                             key.revoked_at is None and key.valid_until is None)

    def remove(self, publisher: str, key_id: str) -> None:
        self._keys.pop((publisher, key_id), None)
        self._required = None

    def get(self, publisher: str, key_id: str) -> PublisherKey | None:
        return self._keys.get((publisher, key_id))

    def keys_of(self, publisher: str) -> list[PublisherKey]:
        return sorted((k for (p, _), k in self._keys.items() if p == publisher), key=lambda k: k.valid_from)

    def publishers(self) -> list[str]:
        return sorted({p for p, _ in self._keys})

    def requires_signature(self, agency: str, province: str | None) -> bool:
        """Whether an unsigned event of (agency, province) must be refused.

        True once a key asking for it is registered for the agency as a whole or for that province
        (also when it is revoked or expired since: a publisher never falls back to unsigned).
        """
        required = self._required
        if required is None:
            required = frozenset(parse_publisher_id(p) for (p, _), k in self._keys.items() if k.require_signed)
            self._required = required
        return (agency, None) in required or (province is not None and (agency, province) in required)

    def current(self, publisher: str, now: datetime) -> list[PublisherKey]:
        return [k for k in self.keys_of(publisher) if k.status(now) in ("VALID", "KEY_NOT_YET_VALID")]


def covers(publisher: str, agency: str, province: str | None) -> bool:
    """Whether `publisher` may speak for an event of (agency, province)."""
    key_agency, key_province = parse_publisher_id(publisher)
    return key_agency == agency and (key_province is None or key_province == province)


def reverify(publisher_key: PublisherKey, seal: Seal, topic: str, value: bytes) -> bool:
    """Anyone's later check of a kept event: the key is the seal's, and the signature holds."""
    return (publisher_key.publisher == seal.publisher and publisher_key.key_id == seal.key_id
            and signature_valid(publisher_key.public_key, seal, topic, value))


def headers_without_seal(headers: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in headers if k not in ALL_SEAL_HEADERS]
