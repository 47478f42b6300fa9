"""Each record's writer schema published on `leadbus.schemas` before the record (issue #14's outside check, round 5).

A writer publishes its schema before its first event (`leadbus.schema_topic`), and the topic is stamped by the broker:
the first record of a fingerprint carries the time the schema was first on the bus. The schema topic deleted, created
again as declared (kept whole, LogAppendTime) and written back passes `leadbus.audit.schema_log` (nothing missing,
every record broker-stamped), and a schema written back may read otherwise than the one the records were written
with. What it cannot keep is the time: every schema then reads as published at the rewrite, after the records written
with it. A record whose writer schema was first published more than the clock skew after it is
`SCHEMA_PUBLISHED_LATER`, at the record, naming the schema's record on `leadbus.schemas` (on an intake topic a notice:
an agency's producer stamps its records itself and may queue them).

Only schemas the auditor's tool does not ship are judged: a packaged schema is the tool's own, and one published
under its fingerprint that reads otherwise is `SCHEMA_ALTERED`; the bus may publish packaged schemas after records
(`leadbus schemas publish` run on a running bus). Without a schema known from the topic alone the check is not run at
all (nothing per record). A partition's first record of each fingerprint is judged (the first seen: its records go
forward in time, or `PartitionOrder` names the step back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from leadbus.audit.verification import Finding, ReplayRecord, is_intake
from leadbus.topics import SCHEMAS

PUBLISHED_LATER = "SCHEMA_PUBLISHED_LATER"
#: The single-object encoding's marker, before the writer schema's fingerprint (value[2:10]).
_MAGIC = b"\xc3\x01"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SchemaPublishedFirst:
    """Records written with a schema known from the topic alone, judged against its first publication there."""

    name = "schema-order"

    def __init__(self, published: Mapping[bytes, tuple[int, int, str]], skew_ms: int = 15_000) -> None:
        #: fingerprint -> (offset on leadbus.schemas of its first broker-stamped record, its broker time, schema name)
        self.published = dict(published)
        self.skew_ms = skew_ms
        self._seen: set[tuple[str, int, bytes]] = set()  # (topic, partition, fingerprint) judged

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        value = record.value
        if value is None or value[:2] != _MAGIC:
            return ()
        fingerprint = value[2:10]
        first = self.published.get(fingerprint)
        if first is None:
            return ()
        seen = (record.topic, record.partition, fingerprint)
        if seen in self._seen:
            return ()
        self._seen.add(seen)
        offset, published_ms, name = first
        stamp = record.timestamp_ms
        if stamp <= 0 or stamp >= published_ms - self.skew_ms:
            return ()
        return (Finding.at(record, PUBLISHED_LATER, f"written with schema {name} ({fingerprint.hex()}) at "
                           f"{_iso(stamp)}, which was first published on {SCHEMAS} at {_iso(published_ms)} "
                           f"({SCHEMAS}[0]@{offset}, broker time), {(published_ms - stamp) / 1000:,.0f} s later: a "
                           "schema is published before its first record, so the schema topic was written again (the "
                           "schema the record was written with is not told by it)",
                           failure=not is_intake(record.topic)),)

    def finish(self) -> Iterable[Finding]:
        return ()


def topic_only(first_published: Mapping[bytes, tuple[int, int, str]],
               shipped: Iterable[bytes]) -> dict[bytes, tuple[int, int, str]]:
    """The schemas of `first_published` (fingerprint -> (offset, broker time, name)) the tool does not ship."""
    known = set(shipped)
    return {fp: first for fp, first in first_published.items() if fp not in known}
