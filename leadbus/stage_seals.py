"""Stage output seals, pure: a hash chain per (stage signer, chain, topic, partition), one signature per transaction.

The records the bus writes itself (`leadbus.leads.accepted`, `leadbus.cases`, `leadbus.handover`, the routed
topics …) are sealed by the exactly-once stage that writes them, with the stage's own Ed25519 key, registered
like an agency's on `leadbus.publishers` under the publisher id `LEADBUS-<stage>` (`LEADBUS` is no agency:
no intake topic, no lead and no decision can name it, so such a key never speaks for an agency's event).

Every sealed record carries in its headers

    leadbus-stage-signer     `LEADBUS-<stage>`
    leadbus-stage-key-id     the key id (16 hex digits, as `leadbus.signing.key_id_of`)
    leadbus-stage-chain      16 hex digits: the chain, one per start of a stage process (a *lane instance*)
    leadbus-stage-seq        the record's number in its (chain, topic, partition), from 1
    leadbus-stage-prev       32 bytes: the link of the record before it in that lane, zeros at the chain's start
    leadbus-stage-signature  64 bytes, on the last record a transaction writes to that partition only

The *link* of a record is the SHA-256 of a domain tag and, length-prefixed, the topic, partition, signer, key
id, chain, sequence number, Kafka key, value, the record's other headers (in order) and `prev`. The signature
is Ed25519 over another domain tag and the link of that last record, so it vouches for every record chained
below it. Per record a stage pays one SHA-256; per transaction and partition one signature.

**Transactions.** The chain follows what commits: `StageSealer.seal` numbers a transaction's records after the
chain's committed head, `commit` makes them the head, `abort` forgets them (read_committed readers never see an
aborted transaction's records, so the next transaction links to the last *committed* record).

**Restarts.** A restarted stage does not know its last link: it starts a new chain (a new chain id, sequence 1,
`prev` zeros). An auditor takes that as a new lane, never as tampering. What this cannot show: the last
transaction of a chain removed whole (the chain then ends at an earlier signed record), or the first records of a
chain removed when the partition is not read from offset 0 (retention looks the same); `leadbus audit rebuild` finds
those.

No Kafka, no clock, no environment here.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.signing import (
    CHAIN_START,
    key_id_of,
    message_signed,
    parse_publisher_id,
    public_bytes,
    seal_headers,
)

SIGNER_HEADER = "leadbus-stage-signer"
KEY_ID_HEADER = "leadbus-stage-key-id"
CHAIN_HEADER = "leadbus-stage-chain"
SEQUENCE_HEADER = "leadbus-stage-seq"
PREV_HEADER = "leadbus-stage-prev"
SIGNATURE_HEADER = "leadbus-stage-signature"
#: Every header of a stage seal; the last one only on the record that closes a transaction's run in a partition.
STAGE_SEAL_HEADERS = (SIGNER_HEADER, KEY_ID_HEADER, CHAIN_HEADER, SEQUENCE_HEADER, PREV_HEADER, SIGNATURE_HEADER)
STAGE_SEAL_NAMES = frozenset(STAGE_SEAL_HEADERS)
#: The agency part of every stage signer's publisher id: no agency of the bus is called so.
STAGE_AGENCY = "LEADBUS"
_LINK_DOMAIN = b"leadbus-stage-link-v1\x00"
_SIGN_DOMAIN = b"leadbus-stage-head-v1\x00"
_CHAIN = re.compile(rb"[0-9a-f]{16}")
_u32 = struct.Struct(">I").pack
_NONE = b"\xff\xff\xff\xff"  # a header whose value is None (no length a real value has)
_PREV_LENGTH = _u32(32)


class MalformedStageSeal(ValueError):
    """Some stage seal headers are present but not all, or one cannot be read."""


def stage_signer(stage: str) -> str:
    """The publisher id a stage signs as: `LEADBUS-intake`. ValueError for a name that makes no publisher id."""
    signer = f"{STAGE_AGENCY}-{stage}"
    parse_publisher_id(signer)
    return signer


def is_stage_signer(publisher: str) -> bool:
    try:
        agency, province = parse_publisher_id(publisher)
    except ValueError:
        return False
    return agency == STAGE_AGENCY and province is None and "-" in publisher


def _other_headers(headers: Iterable[tuple[str, bytes | None]]) -> bytes:
    out = []
    for name, value in headers:
        if name in STAGE_SEAL_NAMES:
            continue
        raw, value = name.encode(), value or b""  # a header without a value reads back as None or b"": alike
        out.append(_u32(len(raw)) + raw + _u32(len(value)) + value)
    return b"".join(out)


def record_link(topic: str, partition: int, signer: str, key_id: str, chain: str, sequence: int, key: bytes | None,
                value: bytes | None, headers: Iterable[tuple[str, bytes | None]], prev: bytes) -> bytes:
    """The link of a record: what the next record of its lane names as `prev`, and what a signature covers.

    SHA-256 of the domain tag and, each length-prefixed: topic, partition, signer, key id, chain, sequence number,
    Kafka key and value (`ff ff ff ff` for none), the other headers (each name and value length-prefixed), `prev`.
    """
    return link_after(lane_hash(topic, partition, signer, key_id, chain), str(sequence).encode(), key, value, headers,
                      prev)


def lane_hash(topic: str, partition: int, signer: str, key_id: str, chain: str) -> hashlib._Hash:
    """A SHA-256 fed the parts every record of a lane shares: a replay keeps one per lane and goes on from a copy."""
    return hashlib.sha256(_lane_head(topic, partition, signer, key_id, chain))


def link_after(lane: hashlib._Hash, number: bytes, key: bytes | None, value: bytes | None,
               headers: Iterable[tuple[str, bytes | None]], prev: bytes) -> bytes:
    """The rest of `record_link` over `lane` (a `lane_hash`, fed here): `number` is the sequence number's digits."""
    others = _other_headers(headers) if headers else b""
    # one update: joining copies the value (a few hundred bytes), which costs less than two more calls
    lane.update(b"".join((_u32(len(number)), number, _NONE if key is None else _u32(len(key)), key or b"",
                          _NONE if value is None else _u32(len(value)), value or b"", _u32(len(others)), others,
                          _PREV_LENGTH if len(prev) == 32 else _u32(len(prev)), prev)))
    return lane.digest()


@lru_cache(maxsize=4096)
def _lane_head(topic: str, partition: int, signer: str, key_id: str, chain: str) -> bytes:
    """The tag and the parts every record of a lane shares (cached: a replay reads millions of one lane)."""
    parts = (topic.encode(), str(partition).encode(), signer.encode(), key_id.encode(), chain.encode())
    return _LINK_DOMAIN + b"".join(_u32(len(p)) + p for p in parts)


def head_message(link: bytes) -> bytes:
    """The bytes a stage signs for a chain head (under its own tag: never an agency's seal message)."""
    return _SIGN_DOMAIN + link


def head_signed(public_key: bytes, signature: bytes, link: bytes) -> bool:
    return message_signed(public_key, signature, head_message(link))


@dataclass(frozen=True, slots=True)
class StageSeal:
    """A stage seal as read from a record's headers (`signature` None on a record that carries the link only)."""

    signer: str
    key_id: str
    chain: str
    sequence: int
    prev: bytes
    signature: bytes | None

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes | None]]) -> StageSeal | None:
        """The stage seal in `headers`; None when there is none; `MalformedStageSeal` when partial or unreadable."""
        found = seal_headers(headers, STAGE_SEAL_NAMES, MalformedStageSeal, none_allowed=False)
        if not found:
            return None
        missing = [h for h in STAGE_SEAL_HEADERS[:-1] if h not in found]
        if missing:
            raise MalformedStageSeal(f"stage seal headers missing: {', '.join(missing)}")
        signer, key_id, chain = _signer(found[SIGNER_HEADER], found[KEY_ID_HEADER], found[CHAIN_HEADER])
        number = found[SEQUENCE_HEADER]
        if not number.isdigit() or len(number) > 19 or number[:1] == b"0":
            raise MalformedStageSeal(f"stage sequence {number[:40]!r} is not a number from 1")
        prev = found[PREV_HEADER]
        if len(prev) != 32:
            raise MalformedStageSeal(f"{PREV_HEADER} is {len(prev)} bytes, not 32")
        signature = found.get(SIGNATURE_HEADER)
        if signature is not None and len(signature) != 64:
            raise MalformedStageSeal(f"{SIGNATURE_HEADER} is {len(signature)} bytes, not 64")
        return cls(signer, key_id, chain, int(number), prev, signature)

    def link(self, topic: str, partition: int, key: bytes | None, value: bytes | None,
             headers: Iterable[tuple[str, bytes | None]]) -> bytes:
        return record_link(topic, partition, self.signer, self.key_id, self.chain, self.sequence, key, value,
                           headers, self.prev)


@lru_cache(maxsize=4096)
def _signer(signer_raw: bytes, key_id_raw: bytes, chain: bytes) -> tuple[str, str, str]:
    """A seal's signer, key id and chain, read and checked (cached: a replay meets the same few often)."""
    try:
        signer = signer_raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedStageSeal("the stage signer is not ASCII") from None
    if not is_stage_signer(signer):
        raise MalformedStageSeal(f"{signer[:40]!r} is not a stage signer ({STAGE_AGENCY}-<stage>)")
    if not _CHAIN.fullmatch(key_id_raw):
        raise MalformedStageSeal(f"stage key id {key_id_raw[:40]!r} is not 16 hex digits")
    if not _CHAIN.fullmatch(chain):
        raise MalformedStageSeal(f"stage chain {chain[:40]!r} is not 16 hex digits")
    return signer, key_id_raw.decode(), chain.decode()


#: One output to seal: topic, partition (chosen before sealing), key, value, its own headers.
Unsealed = tuple[str, int, bytes | None, bytes | None, list[tuple[str, bytes]]]


class StageSealer:
    """The sealing side of one stage process: its chain heads per (topic, partition), following its transactions."""

    def __init__(self, signer: str, private_key: Ed25519PrivateKey, chain: str) -> None:
        if not is_stage_signer(signer):
            raise ValueError(f"{signer!r} is not a stage signer ({STAGE_AGENCY}-<stage>)")
        if not _CHAIN.fullmatch(chain.encode()):
            raise ValueError("a chain id is 16 lowercase hex digits")
        self.signer, self.chain = signer, chain
        self._key = private_key
        self.key_id = key_id_of(public_bytes(private_key.public_key()))
        self._committed: dict[tuple[str, int], tuple[int, bytes]] = {}  # (topic, partition) → last sequence, link
        self._pending: dict[tuple[str, int], tuple[int, bytes]] = {}
        self.signatures = 0
        self._fixed = [(SIGNER_HEADER, signer.encode()), (KEY_ID_HEADER, self.key_id.encode()),
                       (CHAIN_HEADER, chain.encode())]

    @property
    def public_key(self) -> bytes:
        """The raw public key (registered as `signer` on leadbus.publishers)."""
        return public_bytes(self._key.public_key())

    def seal(self, outputs: Sequence[Unsealed]) -> list[list[tuple[str, bytes]]]:
        """The headers to write with each of a transaction's outputs (in their order), chained after what it wrote
        before in this transaction or, before that, after the committed head; the last per partition signed."""
        last: dict[tuple[str, int], int] = {}
        for i, (topic, partition, *_rest) in enumerate(outputs):
            last[(topic, partition)] = i
        out: list[list[tuple[str, bytes]]] = []
        signer, key_id, chain = self.signer, self.key_id, self.chain
        for i, (topic, partition, key, value, headers) in enumerate(outputs):
            lane = (topic, partition)
            sequence, prev = self._pending.get(lane) or self._committed.get(lane) or (0, CHAIN_START)
            sequence += 1
            link = record_link(topic, partition, signer, key_id, chain, sequence, key, value, headers, prev)
            self._pending[lane] = (sequence, link)
            sealed = [*headers, *self._fixed, (SEQUENCE_HEADER, str(sequence).encode()), (PREV_HEADER, prev)]
            if last[lane] == i:
                sealed.append((SIGNATURE_HEADER, self._key.sign(head_message(link))))
                self.signatures += 1
            out.append(sealed)
        return out

    def commit(self) -> None:
        """The transaction committed: its records are the chains' heads."""
        self._committed.update(self._pending)
        self._pending.clear()

    def abort(self) -> None:
        """The transaction aborted: nobody will read its records; the chains go on from the committed heads."""
        self._pending.clear()


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java clients' and librdkafka's `murmur2` partitioners), as a signed 32-bit int."""
    length = len(data)
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the `murmur2_random` partitioner gives a keyed record: where the stage's records always went."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
