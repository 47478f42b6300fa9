"""What `leadbus.schemas`' log shows against its declaration (issue #14's outside check, round 4's residual).

A record's writer schema is named by a fingerprint, the CRC-64 of the Parsing Canonical Form, which leaves logical
types and defaults out and can be matched at will. The first record of a fingerprint is the one the catalog keeps, and
a later one reading otherwise is `SCHEMA_ALTERED` (`leadbus.schema_topic.load_schemas`). On a compacted topic only the
latest record of a key survives: a schema known only from the topic (a writer released after the auditor's tool)
written again to read otherwise, its first record compacted away, was the only one left and read as the writer's.

The topic is declared kept whole and stamped by the broker, as the key registry is (`deploy/topics.yaml`:
`cleanup.policy delete`, `retention.ms -1`, `message.timestamp.type LogAppendTime`; `leadbus.audit.registration`):
a record missing from it (its start past 0 or a hole: deleted or compacted) is `RECORDS_DELETED`, and a record whose
time its writer chose (the topic created again, or configured otherwise, before it was written) `SCHEMAS_REWRITTEN`,
each at `leadbus.schemas[0]@offset`. The declaration decides, not the topic's configuration on the broker.
"""

from __future__ import annotations

from leadbus.audit.registration import LogWords, log_traces
from leadbus.audit.verification import Finding
from leadbus.signing import RegistryLog
from leadbus.topics import SCHEMAS

REWRITTEN = "SCHEMAS_REWRITTEN"


def schema_traces(log: RegistryLog, declared: dict[str, str] | None = None) -> list[Finding]:
    """Failures, located on `leadbus.schemas`, for records missing from its log and records not stamped by the
    broker, as far as its declaration rules them out."""
    return log_traces(log, SCHEMAS, declared, LogWords(
        "the schema topic", "the first record of a fingerprint, the one records are read with, may be missing and a "
        "later one written to read otherwise taken for it", REWRITTEN, "schema record(s)", "the schema topic",
        "which record of a fingerprint came first is not told"))
