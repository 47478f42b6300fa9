"""A Kafka replay's partitions against what the archive sealed of them (issue #14's outside check, round 6).

A topic deleted and created again empty — or again with its newest records left out — replays from Kafka as a clean,
shorter log: a chain shows what is missing inside it, not after it, and a log that starts at offset 0 has lost no
head. Exit 0 for a topic whose whole history is gone. The archive sink publishes, with each head, how many records its
files hold per partition (`records`, `leadbus.sinks.archive_heads`) on a topic of its own, signed with its key. Each
of those records took an offset of the partition when it was written, and a partition never gives an offset twice (nor
takes one back: retention and deletions move its start, not its end). So a partition whose log now ends at an offset
lower than the records the archive sealed of it is not the partition the archive read: it was deleted and created
again without them (`RECORDS_DELETED` at the log's end: offset 0 for a topic emptied). A partition the archive read
that the topic no longer has is named too.

Counting records rather than comparing offsets leaves a rewrite alone that keeps every record (its offsets may differ:
a transactional writer's markers take offsets of their own); the records it drops are told once they outnumber those
markers. Only the newest usable head of each archive counts (its counts cover every file before it); a head that is
not the sink's (`archive_heads._signed_by`) is passed over here, and named by an archive replay. Records the sink has
not sealed yet (files are sealed every few minutes) are beyond what this can tell.

The heads topic itself may be deleted with the topic (or emptied, or filled with records no archive signed): then
nothing would be compared. Once the archive sink's key has been registered for `HEADS_DUE_MS` (its heads are
published at each seal and again every minute, and the topic is kept whole), a bus holding no head that key signed
is `ARCHIVE_HEADS_MISSING` (`heads_gone`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from leadbus.audit.archive_heads import PublishedHead, _signed_by, read_heads
from leadbus.audit.verification import Finding
from leadbus.clients import KafkaSettings
from leadbus.signing import KeyRegistry
from leadbus.sinks.archive_heads import signer
from leadbus.topics import ARCHIVE_HEADS

#: The heads read back from the topic's end: each archive sink publishes its head again every minute, so its newest is
#: among them while it runs; several archives, or one stopped long ago, may need more (`sealed_counts` takes the
#: newest).
READ_LAST = 1_000

#: How long after the archive sink's key was first registered a head it signed must be on the bus: it publishes one
#: when it seals its first files (every few minutes under traffic) and again every minute; an hour leaves a sink
#: started on a quiet bus time to seal.
HEADS_DUE_MS = 3_600_000

#: Per (topic, partition): how many records were sealed, and the head (offset, broker time) that says so.
Sealed = dict[tuple[str, int], tuple[int, PublishedHead]]


def _counts(head: PublishedHead) -> tuple[str | None, dict[tuple[str, int], int]] | None:
    """(archive, counts) of a head carrying them; None for one without (an older sink's) or not of this shape."""
    try:
        doc = json.loads(head.value)
        counts = doc.get("records")
        if not isinstance(counts, dict):
            return None
        out = {}
        for topic, parts in counts.items():
            for partition, records in parts.items():
                if type(records) is not int or not partition.isdigit():
                    return None
                out[(topic, int(partition))] = records
        archive = doc.get("archive")
        return (archive if isinstance(archive, str) else None), out
    except (ValueError, AttributeError, TypeError):
        return None


def sealed_counts(heads: Sequence[PublishedHead], registry: KeyRegistry | None) -> Sealed:
    """Per partition, the most records the newest usable head of any archive says were sealed."""
    newest: dict[str | None, tuple[PublishedHead, dict[tuple[str, int], int]]] = {}
    for head in heads:  # offset order: a later head of the same archive replaces an earlier one
        if _signed_by(head, registry)[1] is not None:
            continue
        found = _counts(head)
        if found is not None:
            newest[found[0]] = (head, found[1])
    out: Sealed = {}
    for head, counts in newest.values():
        for where, records in counts.items():
            if where not in out or records > out[where][0]:
                out[where] = (records, head)
    return out


def missing(sealed: Sealed, log_ends: Mapping[tuple[str, int], int], topics: Iterable[str]) -> list[Finding]:
    """A failure per partition of `topics` whose log ends below the count of records the archive sealed of it
    (`log_ends`: each partition's end as the replay reads it; a partition absent has gone)."""
    replayed = set(topics)
    found = []
    for (topic, partition), (records, head) in sorted(sealed.items()):
        if topic not in replayed or records <= 0:
            continue
        end = log_ends.get((topic, partition))
        if end is not None and end >= records:
            continue
        said = (f"the archive sealed {records} of its records ({ARCHIVE_HEADS}[0]@{head.offset}, "
                f"{'broker time' if head.broker_stamped else 'writer time'} "
                f"{datetime.fromtimestamp(head.timestamp_ms / 1000, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')})")
        if end is None:
            found.append(Finding("RECORDS_DELETED", f"{topic} has no partition {partition} any more, and {said}: the "
                                 "topic was deleted and created again with fewer partitions", topic, partition, 0))
            continue
        gone = "every record removed" if end == 0 else f"{records - end} record(s) at least removed"
        found.append(Finding("RECORDS_DELETED", f"the partition's log ends at offset {end}, and {said}, each at an "
                             f"offset of its own: {gone} (the topic deleted and created again without them)",
                             topic, partition, end))
    return found


def heads_gone(heads: Sequence[PublishedHead], registry: KeyRegistry | None, now_ms: int) -> list[Finding]:
    """A failure when the archive sink's key was registered `HEADS_DUE_MS` before `now_ms` or earlier and none of
    `heads` (the newest on the bus) is signed with its key: the heads topic deleted, emptied or buried."""
    if registry is None:
        return []
    keys = registry.keys_of(signer())
    if not keys:
        return []
    first = min(key.registered_at for key in keys)
    if now_ms - int(first.timestamp() * 1000) < HEADS_DUE_MS:
        return []
    if any(_signed_by(head, registry)[0] is not None for head in heads):
        return []
    since = first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    held = f"holds {len(heads)} record(s), none a head signed with it" if heads else "holds no record"
    return [Finding("ARCHIVE_HEADS_MISSING", f"{signer()}'s key is registered since {since}, and {ARCHIVE_HEADS} "
                    f"{held}: the archive sink publishes its head as it seals files and every minute, on a topic"
                    " kept whole, so its heads were deleted (the topic deleted or emptied): what the archive"
                    " sealed of each partition cannot be compared", ARCHIVE_HEADS, 0, heads[-1].offset if heads else 0)]


def judge(settings: KafkaSettings, registry: KeyRegistry | None, log_ends: Mapping[tuple[str, int], int],
          topics: Iterable[str], now_ms: int | None = None) -> list[Finding]:
    """`missing` for a Kafka replay: the newest heads read from the bus (a notice when they cannot be read); with
    `now_ms`, `heads_gone` too."""
    try:
        heads = read_heads(settings, timeout=15.0, last=READ_LAST)
    except Exception as exc:  # noqa: BLE001 - the check is not made; the replay says so and goes on
        return [Finding("ARCHIVE_ENDS_UNREAD", f"{ARCHIVE_HEADS} not read ({exc}): partitions not checked against "
                        "what the archive sealed of them", ARCHIVE_HEADS, failure=False)]
    gone = heads_gone(heads, registry, now_ms) if now_ms is not None else []
    return gone + missing(sealed_counts(heads, registry), log_ends, topics)
