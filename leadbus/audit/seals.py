"""The bus's own seal verifier for replays: Ed25519 signatures against the publisher key registry, and lanes.

The same check intake runs (`processors.core.provenance.verify_event`), judged at each record's own time
(its broker timestamp), so a key revoked later does not fail what it signed while valid; valid seals feed
their (publisher, topic, partition) lane's sequence numbers to a `LaneTracker`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from leadbus.audit.verification import Finding, LaneTracker, ReplayRecord
from leadbus.processors.core.provenance import Refused, verify_event
from leadbus.signing import KeyRegistry


class BusSealVerifier:
    name = "seals"

    def __init__(self, registry: KeyRegistry) -> None:
        self.registry = registry
        self.lanes = LaneTracker()

    def check(self, record: ReplayRecord) -> list[Finding]:
        when = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC) if record.timestamp_ms else datetime.now(UTC)
        outcome = verify_event(record.headers, record.value or b"", record.topic, record.partition, self.registry,
                               when)
        if outcome is None:
            return []
        if isinstance(outcome, Refused):
            return [Finding.at(record, outcome.reason, outcome.message)]
        return self.lanes.observe((outcome.publisher, record.topic, record.partition), outcome.sequence, record)

    def finish(self) -> list[Finding]:
        return self.lanes.finish()
