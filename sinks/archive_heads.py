"""The archive's heads, published on the bus as the sink seals files (issue #14: "`--verify` also checks the
archive's chain against a published head").

The manifest chains every sealed file (`leadbus.sinks.archive`), but whoever controls the archive's files can also
rebuild the manifest: remove the first file and its line and chain the rest again, and the archive vouches for
itself. Only a head kept elsewhere tells. The sink writes each new head — every sealed line's `seq`, `chain` and
path — to `leadbus.archive.heads`, a topic it alone writes, kept whole and stamped by the broker, and signs the
record with its key (`LEADBUS-archive`, made and registered as the stages' are: `leadbus keys provision-stages
--stage archive`). An audit of an archive copy checks the manifest's line of that `seq` against it
(`leadbus.audit.archive_heads`).

A failed publication is logged and leaves the manifest as the record: the next seal publishes a later head, whose
chain covers the lines before it.

The latest head is also published again every `every` seconds (60 by default), new files sealed or not: the topic is
stamped by the broker, and its newest record is the time an auditor's replay knows the broker had reached
(`leadbus.audit.broker_time`). Published at seals alone, that time stood still while nothing was sealed (a quiet bus,
files sealed every 15 minutes), and a replay with a clock running slow read the records written since as re-dated into
the future. A head published again carries the same seq and chain: the audit takes it as the same head.

A head also carries `records`: per topic and partition, how many records the manifest's files hold (the sink skips
offsets it archived already, so none twice). The manifest tells what the archive holds, not what the bus still does: a
topic deleted and created again empty, or again with its newest records left out, replays from Kafka as a clean
shorter log. The heads outlive such a rewrite (another topic, written by the sink alone), so a Kafka replay reads the
newest head and names each partition whose log now has fewer offsets than the archive sealed records of it
(`leadbus.audit.archived_ends`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.clients import KafkaSettings
from leadbus.signing import key_id_of, public_bytes
from leadbus.sinks.archive import ManifestLine
from leadbus.stage_seals import stage_signer
from leadbus.topics import ARCHIVE_HEADS

log = logging.getLogger("leadbus.sinks.archive")

#: The archive sink's signing identity: a stage key of this name (`leadbus.stage_keys`), publisher LEADBUS-archive.
SIGNER_STAGE = "archive"
KEY_ID_HEADER = "leadbus-head-key-id"
SIGNATURE_HEADER = "leadbus-head-signature"
#: What the signature covers before the record's value: a head signature can be taken for no other signed thing.
DOMAIN = b"leadbus archive head\x00"


def signer() -> str:
    return stage_signer(SIGNER_STAGE)


#: Per (topic, partition): how many records a manifest's files hold.
Counts = dict[tuple[str, int], int]


def counted(lines: Iterable[ManifestLine], counts: Counts | None = None) -> Counts:
    """`counts` (a new dict when None) with `lines`' records added."""
    counts = {} if counts is None else counts
    for line in lines:
        where = (line.topic, line.partition)
        counts[where] = counts.get(where, 0) + line.records
    return counts


def head_value(archive: str, line: ManifestLine, counts: Counts | None = None) -> bytes:
    doc: dict[str, object] = {"archive": archive, "seq": line.seq, "chain": line.chain, "path": line.path}
    if counts:
        by_topic: dict[str, dict[str, int]] = {}
        for (topic, partition), records in counts.items():
            by_topic.setdefault(topic, {})[str(partition)] = records
        doc["records"] = by_topic
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def head_record(archive: str, line: ManifestLine, private: Ed25519PrivateKey | None,
                counts: Counts | None = None) -> tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]:
    """The record publishing `line`'s chain as `archive`'s head: key, value, headers (signed when a key is given)."""
    value = head_value(archive, line, counts)
    if private is None:
        return archive.encode(), value, []
    key_id = key_id_of(public_bytes(private.public_key()))
    return archive.encode(), value, [(KEY_ID_HEADER, key_id.encode()), (SIGNATURE_HEADER, private.sign(DOMAIN + value))]


class HeadPublisher:
    """Publishes the head of each sealed line; unsigned without a key (the topic's ACL alone)."""

    def __init__(self, kafka: KafkaSettings, archive: str, private: Ed25519PrivateKey | None,
                 timeout: float = 30.0, *, every: float = 60.0, latest: ManifestLine | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.archive, self.private, self.timeout = archive, private, timeout
        #: Seconds after which the latest head is published again with nothing sealed since (0: never).
        self.every, self.clock = every, clock
        self.latest = latest  # the manifest's last line: the head `tick` publishes again
        self.counts: Counts = {}  # records the manifest's files hold, per partition (`known`, `publish`)
        self.last_published = float("-inf")
        self.producer = kafka.producer(**{"enable.idempotence": True, "acks": "all", "message.timeout.ms": 20_000})
        self.published = 0
        try:  # a bus without the topic (not applied yet): say so once, never wait on each seal
            meta = self.producer.list_topics(ARCHIVE_HEADS, timeout=10).topics.get(ARCHIVE_HEADS)
            self.enabled = meta is not None and meta.error is None and bool(meta.partitions)
        except Exception:  # noqa: BLE001 - an unreachable bus: the consumer says so
            self.enabled = False
        if not self.enabled:
            log.warning("archive: %s not on the bus (leadbus topics apply): heads not published", ARCHIVE_HEADS)

    def known(self, lines: Sequence[ManifestLine]) -> None:
        """The manifest as this sink's start finds it: its last line is the head published again at once."""
        self.latest = max(lines, key=lambda line: line.seq, default=None)
        self.counts = counted(lines)

    def publish(self, sealed: Sequence[ManifestLine]) -> None:
        """A head for each sealed line, in seq order, each with the records counted up to it. Only the newest of a
        batch was published before: a sink that sealed its first six files in one poll published seq 6 alone, and a
        manifest rebuilt without its first file (five lines, chained again) ended before every published head, a
        notice (exit 0) where it must be ARCHIVE_HEAD_MISMATCH (session 22's CI)."""
        if not self.enabled:
            counted(sealed, self.counts)
            return
        for line in sorted(sealed, key=lambda x: x.seq):
            counted([line], self.counts)
            if self.latest is None or line.seq >= self.latest.seq:
                self.latest = line
            self._send(line)

    def tick(self) -> None:
        """The latest head published again when `every` seconds have passed since the last publication (none for an
        empty manifest: there is no head to publish)."""
        if self.every > 0 and self.latest is not None and self.enabled and (
                self.clock() - self.last_published >= self.every):
            self._send(self.latest)

    def _send(self, line: ManifestLine) -> None:
        self.last_published = self.clock()  # a failure too: tried again in `every` seconds, not on each poll
        key, value, headers = head_record(self.archive, line, self.private, self.counts)
        try:
            self.producer.produce(ARCHIVE_HEADS, key=key, value=value, headers=headers, partition=0)
            if self.producer.flush(self.timeout):
                raise RuntimeError(f"not confirmed within {self.timeout}s")
            self.published += 1
        except Exception as exc:  # noqa: BLE001 - the manifest stays the record; the next seal publishes again
            log.warning("archive: head %s (seq %d) not published on %s: %s", line.chain, line.seq, ARCHIVE_HEADS, exc)
