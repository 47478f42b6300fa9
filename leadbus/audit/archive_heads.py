"""An archive copy's manifest against the heads its sink published on the bus (`leadbus.sinks.archive_heads`).

Whoever controls the archive's files can rebuild its manifest (a file and its line removed, the rest chained again),
and the manifest then vouches for itself: only a head kept elsewhere tells (issue #14's outside check, round 4's
residual). `replay --source archive:DIR --verify` without `--head`, the bus reachable, reads `leadbus.archive.heads`
and checks the manifest's line of the latest `seq` published (up to the manifest's last) against the head published
for it: a chain value that differs is `ARCHIVE_HEAD_MISMATCH` (the manifest was rebuilt, or lines cut or added
before that one), naming the head's coordinates. A notice says which head it checked against; lines sealed after the
latest head published, or a manifest ending before it (a copy taken earlier, or lines cut at its end), are notices.

A head is signed with the archive sink's key (`LEADBUS-archive` on `leadbus.publishers`): a head whose signature does
not verify under a registered key of that name is `ARCHIVE_HEAD_FORGED` at its record and not used; an unsigned one
(a sink run without its key) is used, vouched for by the topic's ACL alone, and said so. `--head` given still wins.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from leadbus.audit.verification import Finding
from leadbus.clients import KafkaSettings
from leadbus.signing import KeyRegistry
from leadbus.sinks.archive import MANIFEST, ManifestLine
from leadbus.sinks.archive_heads import DOMAIN, KEY_ID_HEADER, SIGNATURE_HEADER, signer
from leadbus.topics import ARCHIVE_HEADS

_WHERE = "(archive)"


@dataclass(frozen=True)
class PublishedHead:
    offset: int
    timestamp_ms: int
    broker_stamped: bool
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...]


def read_heads(settings: KafkaSettings, timeout: float = 30.0) -> list[PublishedHead]:
    """Every record of `leadbus.archive.heads` (one partition), in offset order; [] for a bus without the topic."""
    consumer = settings.consumer(f"leadbus-audit-heads-{uuid.uuid4()}", **{"isolation.level": "read_committed"})
    try:
        meta = consumer.list_topics(ARCHIVE_HEADS, timeout=timeout).topics.get(ARCHIVE_HEADS)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        tp = TopicPartition(ARCHIVE_HEADS, 0, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        if high <= low:
            return []
        consumer.assign([tp])
        out: list[PublishedHead] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            kind, stamp = msg.timestamp()
            offset = msg.offset() or 0
            headers: Any = msg.headers() or ()  # consumed headers are a list of (name, bytes | None)
            out.append(PublishedHead(offset, stamp, kind == TIMESTAMP_LOG_APPEND_TIME, msg.value() or b"",
                                     tuple(headers)))
            if offset + 1 >= high:
                return out
        raise TimeoutError(f"{ARCHIVE_HEADS} not read to its end within {timeout}s")
    finally:
        consumer.close()


def _signed_by(head: PublishedHead, registry: KeyRegistry | None) -> tuple[str | None, str | None]:
    """(who signed it, why it is not to be used): (None, None) for an unsigned head."""
    headers = dict(head.headers)
    key_id, signature = headers.get(KEY_ID_HEADER), headers.get(SIGNATURE_HEADER)
    if key_id is None and signature is None:
        return None, None
    if not key_id or not signature:
        return None, "a signature header without the other"
    if registry is None:
        return None, "no key registry read to check its signature against"
    key = registry.get(signer(), key_id.decode("utf-8", "replace"))
    if key is None:
        return None, f"signed with key {key_id[:40]!r}, which is no registered key of {signer()}"
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, DOMAIN + head.value)
    except (InvalidSignature, ValueError):
        return None, f"its signature does not verify under {signer()}'s key {key.key_id}"
    return f"{signer()} key {key.key_id}", None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(lines: Sequence[ManifestLine], heads: Sequence[PublishedHead],
          registry: KeyRegistry | None) -> list[Finding]:
    """The manifest `lines` against the `heads` published (in offset order)."""
    found: list[Finding] = []
    published: dict[int, tuple[str, PublishedHead, str | None]] = {}  # seq -> (chain, head, signed by)
    for head in heads:
        who, wrong = _signed_by(head, registry)
        if wrong is not None:
            found.append(Finding("ARCHIVE_HEAD_FORGED", f"a head published on {ARCHIVE_HEADS} that is not the archive "
                                 f"sink's: {wrong}; not used", ARCHIVE_HEADS, 0, head.offset))
            continue
        try:
            doc = json.loads(head.value)
            seq, chain = doc["seq"], doc["chain"]
            if type(seq) is not int or type(chain) is not str:
                raise TypeError("seq or chain of another type")
        except (ValueError, KeyError, TypeError) as exc:
            found.append(Finding("ARCHIVE_HEAD_FORGED", f"a record on {ARCHIVE_HEADS} that is no head ({exc}); not "
                                 "used", ARCHIVE_HEADS, 0, head.offset))
            continue
        first = published.get(seq)
        if first is None:
            published[seq] = (chain, head, who)
        elif first[0] != chain:  # the sink publishes one head per seq: the archive's chain was made again
            found.append(Finding("ARCHIVE_HEAD_MISMATCH", f"head of seq {seq} published again with another chain "
                                 f"value than at {ARCHIVE_HEADS}[0]@{first[1].offset}: the archive's manifest was "
                                 "chained again", ARCHIVE_HEADS, 0, head.offset))
    by_seq = {line.seq: line for line in lines}
    last = max(by_seq, default=0)
    usable = [seq for seq in published if seq <= last]
    if not published:
        found.append(Finding("ARCHIVE_NO_HEAD", f"no --head, and no head published on {ARCHIVE_HEADS}: the manifest's "
                             "chain was not checked against a head kept elsewhere, so a manifest rolled back to an "
                             "earlier head or chained again whole is not told", _WHERE, file=MANIFEST, failure=False))
        return found
    newest = max(published)
    if not usable:
        head = published[newest][1]
        found.append(Finding("ARCHIVE_HEAD_BEHIND", f"the manifest ends at seq {last}, before the first head "
                             f"published on {ARCHIVE_HEADS} (seq {min(published)}): nothing checked against it",
                             _WHERE, file=MANIFEST, failure=False))
        return found
    seq = max(usable)
    chain, head, who = published[seq]
    line = by_seq[seq]
    at = f"{ARCHIVE_HEADS}[0]@{head.offset}"
    stamped = f"{'broker time' if head.broker_stamped else 'writer time'} {_iso(head.timestamp_ms)}"
    if line.chain != chain:
        found.append(Finding("ARCHIVE_HEAD_MISMATCH", f"the manifest's line {seq} ({line.path}) chains to "
                             f"{line.chain}, and the archive sink published {chain} for it ({at}, {stamped}): the "
                             "manifest was rebuilt, or files and their lines removed, added or altered up to it",
                             _WHERE, file=MANIFEST))
    else:
        signed = f"signed by {who}" if who else "unsigned: vouched for by the topic's ACL alone"
        found.append(Finding("ARCHIVE_HEAD_CHECKED", f"the manifest's line {seq} ({line.path}) checked against the "
                             f"head published at {at} ({stamped}; {signed})", _WHERE, file=MANIFEST, failure=False))
    after = sum(1 for s in by_seq if s > seq)
    if after:
        found.append(Finding("ARCHIVE_HEAD_BEHIND", f"{after} manifest line(s) after seq {seq} sealed since the latest "
                             f"head published for this copy ({at}): not checked against a head kept elsewhere",
                             _WHERE, file=MANIFEST, failure=False))
    if newest > last:
        found.append(Finding("ARCHIVE_HEAD_BEHIND", f"the archive sink published heads up to seq {newest} "
                             f"({ARCHIVE_HEADS}[0]@{published[newest][1].offset}), and this manifest ends at seq "
                             f"{last}: a copy taken earlier, or lines cut at its end", _WHERE, file=MANIFEST,
                             failure=False))
    return found
