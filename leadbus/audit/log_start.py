"""Records removed from the head of a partition kept forever (issue #14's outside check, round 3).

A partition's log starts past offset 0 when retention trimmed it, or when someone removed its first records
(`DeleteRecords`, the admin API's `kafka-delete-records`). A replay reading from the log's start cannot tell the two
apart by the records (a chain met mid-way looks like retention's cut), and a replay `--from` a later time never reads
there at all: both passed. The bus declares most of its topics kept forever (`deploy/topics.yaml`: `retention.ms -1`,
`cleanup.policy delete`, no size limit): on those nothing but a deletion moves the log's start, whatever period is
replayed. Each such partition is one failure, located at the first offset still there.

The declaration, not the topic's configuration on the broker, decides: whoever deleted records could also have set a
retention afterwards. A topic the bus does not declare, or declares with a finite retention or compaction, is not
judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from leadbus.audit.verification import Finding
from leadbus.topics import TopicSpec, load_declarations

_KEPT: set[str] | None = None


def kept_forever(specs: Iterable[TopicSpec]) -> set[str]:
    """The declared topics nothing removes from: retention.ms -1, cleanup.policy delete, no retention.bytes."""
    return {s.name for s in specs if s.config.get("retention.ms") == "-1"
            and s.config.get("cleanup.policy", "delete") == "delete"
            and s.config.get("retention.bytes", "-1") == "-1"}


def _declared() -> set[str]:
    global _KEPT
    if _KEPT is None:
        _KEPT = kept_forever(load_declarations())
    return _KEPT


def removed_heads(log_starts: Mapping[tuple[str, int], int], kept: set[str] | None = None) -> list[Finding]:
    """A failure per partition of a topic kept forever whose log no longer starts at offset 0."""
    kept = _declared() if kept is None else kept
    found = []
    for (topic, partition), start in sorted(log_starts.items()):
        if start > 0 and topic in kept:
            removed = "0" if start == 1 else f"0–{start - 1}"
            found.append(Finding("RECORDS_DELETED", f"the partition's log starts at offset {start}: records "
                                 f"{removed} were removed, and {topic} is kept forever (retention.ms -1, "
                                 "cleanup.policy delete): not retention, but a deletion (DeleteRecords)",
                                 topic, partition, start))
    return found
