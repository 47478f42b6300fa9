"""Records removed from the head of a partition kept forever (issue #14's outside check, round 3).

A partition's log starts past offset 0 when retention trimmed it, or when someone removed its first records
(`DeleteRecords`, the admin API's `kafka-delete-records`). A replay reading from the log's start cannot tell the two
apart by the records (a chain met mid-way looks like retention's cut), and a replay `--from` a later time never reads
there at all: both passed. The bus declares most of its topics kept forever (`deploy/topics.yaml`: `retention.ms -1`,
`cleanup.policy delete`, no size limit): on those nothing but a deletion moves the log's start, whatever period is
replayed. Each such partition is one failure, located at the first offset still there.

The declaration, not the topic's configuration on the broker, decides: whoever deleted records could also have set a
retention afterwards. A topic the bus does not declare, or declares compacted, is not judged.

On a topic kept for a finite time (the routed topics: a year) a log past offset 0 is retention's work as often as a
deletion's, and nothing a consumer sees tells `DeleteRecords` mid-segment from retention's whole segments. What can be
told: retention removes a record only once it is `retention.ms` old. When the partition's first record still there is
stage-sealed at number n > 1 of its chain, the chain's records 1..n-1 were in this partition before it, sealed with
the same key (a chain is one run of a stage process), so written after that key's registration; the registry is
stamped by the broker and kept whole (`leadbus.audit.registration`), so that registration's time is the broker's. A
key registered less than `retention.ms` (less the clock skew) ago: retention cannot have removed what it sealed, and
the partition's start is a deletion (`within_retention`). A first record that opens its chain (number 1), is not
stage-sealed, or whose key was registered longer ago than the retention tells nothing: not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from leadbus.audit.registration import SKEW_MS
from leadbus.audit.verification import Finding
from leadbus.signing import KeyRegistry
from leadbus.stage_seals import MalformedStageSeal, StageSeal
from leadbus.topics import PUBLISHERS, TopicSpec, declarations


def kept_forever(specs: Iterable[TopicSpec]) -> set[str]:
    """The declared topics nothing removes from: retention.ms -1, cleanup.policy delete, no retention.bytes."""
    return {s.name for s in specs if s.config.get("retention.ms") == "-1"
            and s.config.get("cleanup.policy", "delete") == "delete"
            and s.config.get("retention.bytes", "-1") == "-1"}


def removed_heads(log_starts: Mapping[tuple[str, int], int], kept: set[str] | None = None) -> list[Finding]:
    """A failure per partition of a topic kept forever whose log no longer starts at offset 0."""
    kept = kept_forever(declarations()) if kept is None else kept
    found = []
    for (topic, partition), start in sorted(log_starts.items()):
        if start > 0 and topic in kept:
            removed = "0" if start == 1 else f"0–{start - 1}"
            found.append(Finding("RECORDS_DELETED", f"the partition's log starts at offset {start}: records "
                                 f"{removed} were removed, and {topic} is kept forever (retention.ms -1, "
                                 "cleanup.policy delete): not retention, but a deletion (DeleteRecords)",
                                 topic, partition, start))
    return found


def kept_for(specs: Iterable[TopicSpec]) -> dict[str, int]:
    """The declared topics retention trims: their `retention.ms` (finite, cleanup.policy delete)."""
    out = {}
    for s in specs:
        ms = s.config.get("retention.ms", "604800000")  # Kafka's default: 7 days
        if s.config.get("cleanup.policy", "delete") == "delete" and ms.lstrip("-").isdigit() and int(ms) > 0:
            out[s.name] = int(ms)
    return out


def trimmed_by_retention(log_starts: Mapping[tuple[str, int], int]) -> list[tuple[str, int]]:
    """The partitions whose start past 0 retention may explain (their first record is worth reading)."""
    kept = kept_for(declarations())
    return [tp for tp, start in sorted(log_starts.items()) if start > 0 and tp[0] in kept]


def within_retention(firsts: Mapping[tuple[str, int], tuple[int, Sequence[tuple[str, bytes | None]]]],
                     registry: KeyRegistry, now_ms: int, retention: Mapping[str, int] | None = None) -> list[Finding]:
    """A failure per partition whose first record (offset, headers) shows that records before it were removed sooner
    than retention could have removed them."""
    log = registry.log
    if log is None or log.missing or log.writer_stamped:  # no broker's time to go by (the registry's traces fail)
        return []
    retention = kept_for(declarations()) if retention is None else retention
    found = []
    for (topic, partition), (offset, headers) in sorted(firsts.items()):
        kept = retention.get(topic)
        try:
            seal = StageSeal.from_headers(headers)
        except MalformedStageSeal:
            continue  # the stage check names it
        if kept is None or seal is None or seal.sequence <= 1:
            continue
        written = registry.written.get((seal.signer, seal.key_id))
        if written is None or not written.as_registered or written.written_ms <= 0:
            continue
        if written.written_ms - SKEW_MS <= now_ms - kept:
            continue
        before = "1" if seal.sequence == 2 else f"1–{seal.sequence - 1}"
        at = datetime.fromtimestamp(written.written_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found.append(Finding("RECORDS_DELETED", f"the partition's log starts at offset {offset} with record "
                             f"{seal.sequence} of chain {seal.chain} of {seal.signer}: its records {before} were "
                             f"sealed with key {seal.key_id}, registered at {at} ({PUBLISHERS}[0]@{written.offset}), "
                             f"less than {topic}'s retention ({kept // 86_400_000} days) ago, so retention cannot have "
                             "removed them: a deletion (DeleteRecords)", topic, partition, offset))
    return found
