"""Who sent an event, and whether it came in its turn — pure (DESIGN §7).

    outcome = verify_event(headers, value, topic, partition, registry, now)   # Seal | Refused | None (unsigned)
    verdict = check_sequence(lane_state, seal.sequence)                       # next, gap, replayed, reordered

Sequences count per *lane*: (publisher, intake topic, partition). The publisher SDK chooses the
partition of each event itself and numbers each partition from 1, so a lane is one Kafka partition's
order, which Kafka keeps: intake sees a lane's events in the order they were signed, whatever the
number of partitions, workers or rebalances. One number per publisher over all partitions could not
be checked: the partitions interleave arbitrarily on the way to intake.

A lane remembers the highest number accepted and the open gaps (numbers skipped, still missing).
A number above the next one opens a gap (a warning with its range; the event is accepted); a number
inside an open gap arrived late (SEQUENCE_REORDERED); any other number at or below the highest was
seen already (SEQUENCE_REPLAYED). Both are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from leadbus.processors.core.records import Record
from leadbus.signing import (
    KeyRegistry,
    MalformedSeal,
    PublisherKey,
    Seal,
    covers,
    link_digest,
    message_signed,
    signature_valid,
)

#: Open gaps a lane remembers; older ones are forgotten (a number in them is then judged replayed: still refused).
MAX_OPEN_GAPS = 64

SignatureReason = Literal["SIGNATURE_MALFORMED", "UNKNOWN_KEY", "BAD_SIGNATURE", "KEY_REVOKED", "KEY_EXPIRED",
                          "KEY_NOT_YET_VALID", "PUBLISHER_MISMATCH", "WRONG_PARTITION", "UNSIGNED"]


@dataclass(frozen=True)
class Refused:
    """An event whose seal does not hold: the reason code and a message for the dead letter."""

    reason: SignatureReason
    message: str
    publisher: str | None = None


def _agency_of_topic(topic: str, prefix: str = "leadbus.intake.") -> str | None:
    return topic[len(prefix):] if topic.startswith(prefix) else None


@dataclass(frozen=True, slots=True)
class Vouched:
    """An event's seal, read from its headers, whose signature is known to hold under `public_key`: a verified
    signature later in its lane's hash chain vouches for it (`vouched_by_chains`)."""

    seal: Seal
    public_key: bytes


def verify_event(headers: Iterable[tuple[str, bytes | None]], value: bytes, topic: str, partition: int,
                 registry: KeyRegistry, now: datetime, vouched: Vouched | None = None) -> Seal | Refused | None:
    """Check an event's seal against the registry at `now`; None when the event carries no seal at all.

    `vouched` is what `vouched_by_chains` found for this very event (its seal as read from these headers): the
    Ed25519 check is then skipped if the registry still holds the key that vouched; every other check is made.
    """
    if vouched is not None:
        seal: Seal | None = vouched.seal
    else:
        try:
            seal = Seal.from_headers(headers)
        except MalformedSeal as exc:
            return Refused("SIGNATURE_MALFORMED", str(exc))
    if seal is None:
        return None
    who = seal.publisher
    key = registry.get(who, seal.key_id)
    if key is None:
        return Refused("UNKNOWN_KEY", f"key {seal.key_id[:32]} is not registered for publisher {who}", who)
    if (vouched is None or vouched.public_key != key.public_key) and not signature_valid(key.public_key, seal,
                                                                                         topic, value):
        return Refused("BAD_SIGNATURE", f"the signature of {who} (key {seal.key_id}) does not match this event "
                                        f"on {topic}: forged, or altered after signing", who)
    # The signature holds: the headers are the publisher's own. Now what they say must fit.
    status = key.status(now)
    if status == "KEY_REVOKED":
        return Refused(status, f"key {seal.key_id} of {who} was revoked at {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
                               f"{': ' + key.revocation_reason if key.revocation_reason else ''}", who)
    if status == "KEY_EXPIRED":
        return Refused(status, f"key {seal.key_id} of {who} expired at {key.valid_until:%Y-%m-%dT%H:%M:%SZ}", who)
    if status == "KEY_NOT_YET_VALID":
        return Refused(status, f"key {seal.key_id} of {who} is valid from {key.valid_from:%Y-%m-%dT%H:%M:%SZ}", who)
    agency = _agency_of_topic(topic)
    if agency is not None and key.agency != agency:
        return Refused("PUBLISHER_MISMATCH", f"{who} signed an event for {topic}: publishers sign only for their "
                                             "own agency's topic", who)
    if seal.partition != partition:
        return Refused("WRONG_PARTITION", f"signed for {topic}[{seal.partition}], found on [{partition}]: a copy "
                                          "placed elsewhere", who)
    return seal


#: One event of an open run: its index in the batch, its seal, signed message and link digest, and its key.
_Link = tuple[int, Seal, bytes, bytes, PublisherKey]


def vouched_by_chains(records: Sequence[Record], registry: KeyRegistry) -> dict[int, Vouched]:
    """The events of a batch whose signatures hold, found with one Ed25519 check per chained run (seal v2).

    Per lane — (intake topic, the partition the record sits in, publisher) — the events of `records` in their order
    form *runs*: each event's `prev` is the link digest (SHA-256 of its signed message and signature) of the
    lane's event before it in the batch, all with one key of the registry and one signed partition. The
    signature of a run's last event, once it verifies, vouches for the whole run: it signs the link digest of the
    event before it, which covers that event's whole signed message and signature, and so on down the run. The
    index of every event of such a run maps to its `Vouched`. An event of no run of two or more (a v1 seal, a
    chain start with nothing after it, a broken link, an unknown key, no seal or one that does not read) is left
    out, as is every event of a run whose last signature fails: `verify_event` checks each of those alone, as
    always. So the outcome of every event is the one `verify_event` gives it alone. (A link names a signature
    and a message, not their validity: only the key's holder could chain an event to a signature that does not
    hold — what its key would vouch for anyway — and nobody else can make one hold by altering anything.)
    """
    open_runs: dict[tuple[str, int, str], list[_Link]] = {}
    closed: list[list[_Link]] = []
    for index, record in enumerate(records):
        if not record.headers:
            continue
        try:
            seal = Seal.from_headers(record.headers)
        except MalformedSeal:
            continue
        if seal is None or seal.prev is None:
            continue
        key = registry.get(seal.publisher, seal.key_id)
        if key is None:
            continue
        message = seal.message(record.topic, record.value or b"")
        link = (index, seal, message, link_digest(message, seal.signature), key)
        lane = (record.topic, record.partition, seal.publisher)
        run = open_runs.get(lane)
        if run is not None:
            last = run[-1]
            if last[4] is key and last[1].partition == seal.partition and seal.prev == last[3]:
                run.append(link)
                continue
            if len(run) > 1:
                closed.append(run)
        open_runs[lane] = [link]
    closed += (run for run in open_runs.values() if len(run) > 1)
    vouched: dict[int, Vouched] = {}
    for run in closed:
        _, seal, message, _, key = run[-1]
        if message_signed(key.public_key, seal.signature, message):
            for index, each, _, _, _ in run:
                vouched[index] = Vouched(each, key.public_key)
    return vouched


def content_mismatch(seal: Seal, agency: str, province: str | None) -> Refused | None:
    """The content's publisher (a lead's `publisher`, a decision's `actor`) must be one the signer speaks for."""
    if covers(seal.publisher, agency, province):
        return None
    return Refused("PUBLISHER_MISMATCH", f"{seal.publisher} signed an event of {agency}.{province}", seal.publisher)


# -- sequences ------------------------------------------------------------------------------------


def lane_key(seal: Seal, topic: str) -> bytes:
    """The state key (and repartition key) of a lane; starts with a NUL byte, which no lead id does."""
    return f"\x00seq\x00{seal.publisher}\x00{topic}\x00{seal.partition}".encode()


@dataclass(frozen=True)
class Lane:
    """What intake remembers of a lane: the highest number accepted and the numbers still missing below it."""

    last: int = 0
    gaps: tuple[tuple[int, int], ...] = ()

    def to_bytes(self) -> bytes:
        # byte for byte json.dumps({"last": ..., "gaps": [[low, high], ...]}), without building the mapping (per event)
        gaps = ", ".join(f"[{int(low)}, {int(high)}]" for low, high in self.gaps)
        return f'{{"last": {int(self.last)}, "gaps": [{gaps}]}}'.encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Lane:
        if raw is None:
            return cls()
        doc = json.loads(raw)
        return cls(int(doc["last"]), tuple((int(a), int(b)) for a, b in doc["gaps"]))


Status = Literal["NEXT", "GAP", "SEQUENCE_REPLAYED", "SEQUENCE_REORDERED"]


@dataclass(frozen=True)
class SequenceVerdict:
    status: Status
    lane: Lane
    gap: tuple[int, int] | None = None

    @property
    def accepted(self) -> bool:
        return self.status in ("NEXT", "GAP")


def check_sequence(lane: Lane, sequence: int) -> SequenceVerdict:
    """Judge `sequence` in `lane`; the verdict carries the lane as it is afterwards."""
    if sequence == lane.last + 1:
        return SequenceVerdict("NEXT", Lane(sequence, lane.gaps))
    if sequence > lane.last:
        gap = (lane.last + 1, sequence - 1)
        return SequenceVerdict("GAP", Lane(sequence, (*lane.gaps, gap)[-MAX_OPEN_GAPS:]), gap)
    for i, (low, high) in enumerate(lane.gaps):
        if low <= sequence <= high:
            # It arrived after a later number: refused, and no longer missing (a second copy is a replay).
            split = tuple(g for g in ((low, sequence - 1), (sequence + 1, high)) if g[0] <= g[1])
            # A split adds a gap: keep the bound, forgetting the oldest (a number there then reads as a replay).
            gaps = (lane.gaps[:i] + split + lane.gaps[i + 1:])[-MAX_OPEN_GAPS:]
            return SequenceVerdict("SEQUENCE_REORDERED", Lane(lane.last, gaps))
    return SequenceVerdict("SEQUENCE_REPLAYED", lane)


def sequence_message(verdict: SequenceVerdict, seal: Seal, topic: str) -> str:
    where = f"{seal.publisher} on {topic}[{seal.partition}]"
    if verdict.status == "SEQUENCE_REORDERED":
        return (f"sequence number {seal.sequence} of {where} arrived after {verdict.lane.last}: "
                "out of order, refused")
    if verdict.status == "SEQUENCE_REPLAYED":
        return f"sequence number {seal.sequence} of {where} was already used (the lane is at {verdict.lane.last})"
    if verdict.gap is None:
        return f"sequence number {seal.sequence} of {where} is the next one"
    low, high = verdict.gap
    numbers = f"{low}" if low == high else f"{low}–{high}"
    return f"sequence number(s) {numbers} of {where} never arrived before {seal.sequence}"
