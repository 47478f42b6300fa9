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

Heads are kept per archive (the name each head's value carries, the sink's consumer group; a head of an earlier sink
without one is named by its record key, else belongs to no archive in particular): two archives number their manifests
from 1 alike, and one's seq 5 is no head of the other's (read by seq alone, two archives published on one bus made each
other's heads "published again" and mismatched). The copy's archive is the one named (`--archive-name`); else the only
one publishing; else, among several, the one whose latest head up to the manifest's end chains as the manifest does —
none doing so is `ARCHIVE_HEAD_MISMATCH`, naming each archive's head it was checked against.
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
    key: bytes | None = None


def read_heads(settings: KafkaSettings, timeout: float = 30.0, last: int | None = None) -> list[PublishedHead]:
    """Every record of `leadbus.archive.heads` (one partition), in offset order, or its `last` ones; [] for a bus
    without the topic."""
    consumer = settings.consumer(f"leadbus-audit-heads-{uuid.uuid4()}", **{  # (a fetch at the log's end: no wait)
        "isolation.level": "read_committed", "fetch.wait.max.ms": 10, "enable.sparse.connections": False})
    try:
        meta = consumer.list_topics(ARCHIVE_HEADS, timeout=timeout).topics.get(ARCHIVE_HEADS)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        tp = TopicPartition(ARCHIVE_HEADS, 0, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        if high <= low:
            return []
        if last is not None:
            tp = TopicPartition(ARCHIVE_HEADS, 0, max(low, high - last))
        consumer.assign([tp])
        out: list[PublishedHead] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                # The position, not a record's offset, once nothing comes: a transaction's marker (someone else's
                # writing: the sink's are not transactional) or an aborted record at the end takes an offset no
                # record is read at.
                if consumer.position([TopicPartition(ARCHIVE_HEADS, 0)])[0].offset >= high:
                    return out
                continue
            if msg.error():
                continue
            kind, stamp = msg.timestamp()
            offset = msg.offset() or 0
            headers: Any = msg.headers() or ()  # consumed headers are a list of (name, bytes | None)
            out.append(PublishedHead(offset, stamp, kind == TIMESTAMP_LOG_APPEND_TIME, msg.value() or b"",
                                     tuple(headers), msg.key()))
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


def _head_of(head: PublishedHead) -> tuple[str | None, int, str]:
    """(archive, seq, chain) of a head's value; ValueError, KeyError or TypeError for a record that is no head."""
    doc = json.loads(head.value)
    seq, chain = doc["seq"], doc["chain"]
    if type(seq) is not int or type(chain) is not str:
        raise TypeError("seq or chain of another type")
    archive = doc.get("archive")
    if archive is None:  # a head of a sink from before heads named their archive: its record key did
        archive = head.key.decode("utf-8", "replace") if head.key else None
    elif type(archive) is not str:
        raise TypeError("archive of another type")
    return archive, seq, chain


#: Per archive (None: heads naming none), per seq: (chain, the head, who signed it).
_Published = dict[str | None, dict[int, tuple[str, PublishedHead, str | None]]]


def judge(lines: Sequence[ManifestLine], heads: Sequence[PublishedHead],
          registry: KeyRegistry | None, archive: str | None = None) -> list[Finding]:
    """The manifest `lines` against the `heads` published (in offset order) for `archive` (None: the copy's archive
    told from the heads, see the module's doc)."""
    found: list[Finding] = []
    by_archive: _Published = {}
    for head in heads:
        who, wrong = _signed_by(head, registry)
        if wrong is not None:
            found.append(Finding("ARCHIVE_HEAD_FORGED", f"a head published on {ARCHIVE_HEADS} that is not the archive "
                                 f"sink's: {wrong}; not used", ARCHIVE_HEADS, 0, head.offset))
            continue
        try:
            name, seq, chain = _head_of(head)
        except (ValueError, KeyError, TypeError) as exc:
            found.append(Finding("ARCHIVE_HEAD_FORGED", f"a record on {ARCHIVE_HEADS} that is no head ({exc}); not "
                                 "used", ARCHIVE_HEADS, 0, head.offset))
            continue
        published = by_archive.setdefault(name, {})
        first = published.get(seq)
        if first is None:
            published[seq] = (chain, head, who)
        elif first[0] != chain:  # the sink publishes one head per seq: the archive's chain was made again
            found.append(Finding("ARCHIVE_HEAD_MISMATCH", f"head of seq {seq} published again with another chain "
                                 f"value than at {ARCHIVE_HEADS}[0]@{first[1].offset}: the archive's manifest was "
                                 "chained again", ARCHIVE_HEADS, 0, head.offset))
    by_seq = {line.seq: line for line in lines}
    last = max(by_seq, default=0)
    published = _this_archive(by_archive, by_seq, last, archive)
    if not by_archive or (archive is not None and not published):
        if archive is not None and by_archive:
            found.append(Finding("ARCHIVE_HEAD_MISMATCH", f"no head of archive {archive!r} published on "
                                 f"{ARCHIVE_HEADS}, which holds heads of {_names(by_archive)}: this copy is checked "
                                 "against none (another archive's name, or its heads removed)", _WHERE, file=MANIFEST))
            return found
        found.append(Finding("ARCHIVE_NO_HEAD", f"no --head, and no head published on {ARCHIVE_HEADS}: the manifest's "
                             "chain was not checked against a head kept elsewhere, so a manifest rolled back to an "
                             "earlier head or chained again whole is not told", _WHERE, file=MANIFEST, failure=False))
        return found
    if not published:  # several archives, none chaining as this manifest does
        at = ", ".join(f"{_name(n)} seq {max(s for s in p if s <= last)} at {ARCHIVE_HEADS}[0]@"
                       f"{p[max(s for s in p if s <= last)][1].offset}"
                       for n, p in sorted(by_archive.items(), key=lambda i: _name(i[0]))
                       if any(s <= last for s in p))
        found.append(Finding("ARCHIVE_HEAD_MISMATCH", f"the manifest chains as the heads of none of the archives "
                             f"publishing on {ARCHIVE_HEADS} ({at or 'none up to its end'}): the manifest was rebuilt, "
                             "or files and their lines removed, added or altered (--archive-name names the archive "
                             "this copy is of)", _WHERE, file=MANIFEST))
        return found
    return found + _against(by_seq, last, published)


def _name(archive: str | None) -> str:
    return "(unnamed)" if archive is None else repr(archive)


def _names(by_archive: _Published) -> str:
    return ", ".join(sorted(_name(n) for n in by_archive))


def _this_archive(by_archive: _Published, by_seq: dict[int, ManifestLine], last: int,
                  archive: str | None) -> dict[int, tuple[str, PublishedHead, str | None]]:
    """The heads of the archive this copy is judged as: the one named; else the only one; else the one whose latest
    head up to `last` chains as the manifest does, or the first when none has a head up to `last` ({} when some do
    and none chains so: the caller names the mismatch)."""
    if archive is not None:
        return by_archive.get(archive, {})
    ordered = [p for _, p in sorted(by_archive.items(), key=lambda i: _name(i[0]))]
    if len(ordered) <= 1:
        return ordered[0] if ordered else {}
    reaching = False
    for published in ordered:
        usable = [s for s in published if s <= last]
        if not usable:
            continue
        reaching = True
        line = by_seq.get(max(usable))
        if line is not None and line.chain == published[max(usable)][0]:
            return published
    return {} if reaching else ordered[0]


def _against(by_seq: dict[int, ManifestLine], last: int,
             published: dict[int, tuple[str, PublishedHead, str | None]]) -> list[Finding]:
    """The manifest's lines against one archive's `published` heads."""
    found: list[Finding] = []
    usable = [seq for seq in published if seq <= last]
    newest = max(published)
    if not usable:
        head = published[newest][1]
        found.append(Finding("ARCHIVE_HEAD_BEHIND", f"the manifest ends at seq {last}, before the first head "
                             f"published on {ARCHIVE_HEADS} (seq {min(published)}): nothing checked against it",
                             _WHERE, file=MANIFEST, failure=False))
        return found
    seq = max(usable)
    chain, head, who = published[seq]
    line = by_seq.get(seq)
    if line is None:  # the manifest's own check names the line missing
        found.append(Finding("ARCHIVE_HEAD_MISMATCH", f"the manifest has no line {seq}, for which the archive sink "
                             f"published {chain} ({ARCHIVE_HEADS}[0]@{head.offset}): lines removed", _WHERE,
                             file=MANIFEST))
        return found
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
