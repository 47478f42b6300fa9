"""The intake stage: every `leadbus.intake.<agency>` topic → `leadbus.leads.accepted` / `.rejected`.

Two halves in one exactly-once stage, like a Kafka Streams topology with a repartition topic:

1. records of the intake topics are examined (decode, validate, normalise) where they land;
   rejections and handover decisions go straight out, an examined lead goes to
   `leadbus.internal.intake-by-lead` keyed by its *normalised* lead id;
2. records of that topic meet the dedupe memory of their partition, so every copy of one lead —
   keyless, under a wrong key, an upper-case id, from another agency's topic, after the intake
   topics gained partitions — is judged in one place: emitted once, dropped, or refused.

Thin edge around the pure core (`leadbus.processors.core.intake`): it moves bytes, keeps the
dedupe memory in the stage's state store, counts metrics and logs rejections.
"""

from __future__ import annotations

import logging
from datetime import datetime

from leadbus.avro import SchemaCatalog, decode, encode, packaged_catalog
from leadbus.processors import metrics
from leadbus.processors.core.intake import (
    Acceptance,
    DecisionAcceptance,
    Examined,
    Rejection,
    Seen,
    Source,
    accepted_record,
    agency_of_topic,
    conflict_message,
    examine,
    judge,
    rejected_record,
)
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.topics import HANDOVER_DECISIONS, INTAKE_BY_LEAD, INTAKE_CHANGELOG, LEADS_ACCEPTED, LEADS_REJECTED

log = logging.getLogger("leadbus.processors.intake")

INTAKE_PATTERN = "^leadbus\\.intake\\..*"
CHANGELOG = INTAKE_CHANGELOG
TOPICS = [INTAKE_PATTERN, INTAKE_BY_LEAD]


class IntakeHandler:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.accepted_schema = self.catalog.latest("cn.leadbus.LeadAccepted")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        if record.topic == INTAKE_BY_LEAD:
            return self.judge(record, state, now)
        return self.examine(record, now)

    # -- first half: where the record landed ---------------------------------------------------

    def examine(self, record: Record, now: datetime) -> Result:
        source = record.source
        try:
            outcome = examine(record.value, source, self.catalog, now, size=record.size)
        except Exception as exc:
            log.exception("intake core failed on %s", source)
            outcome = Rejection("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", record.value or b"", source)
        if isinstance(outcome, DecisionAcceptance):
            # Handover decisions go on, keyed by case, to the handover stage that judges them.
            metrics.INTAKE_ACCEPTED.labels(agency_of_topic(source.topic) or "?").inc()
            return Result([Output(HANDOVER_DECISIONS, outcome.case_id.encode(), outcome.original)])
        if isinstance(outcome, Rejection):
            return Result([self._rejected(outcome, now)])
        return Result([self._examined(outcome, now)])

    def _examined(self, acceptance: Acceptance, now: datetime) -> Output:
        value = encode(self.accepted_schema, accepted_record(acceptance, now))
        examined = Examined.of(acceptance)
        return Output(INTAKE_BY_LEAD, examined.lead_id.encode(), value, examined.headers())

    # -- second half: one place per lead id ----------------------------------------------------

    def judge(self, record: Record, state: StateView, now: datetime) -> Result:
        examined = Examined.from_headers(record.headers)
        if examined is None:  # only intake writes this topic: a bug or tampering, never dropped silently
            raise ValueError(f"a record on {INTAKE_BY_LEAD} lacks its examined-lead headers")
        key = examined.lead_id.encode()
        seen = Seen.from_bytes(state.get(key))
        verdict = judge(seen, examined.revision, examined.digest)
        if verdict == "emit":
            metrics.INTAKE_ACCEPTED.labels(examined.agency).inc()
            result = Result([Output(LEADS_ACCEPTED, key, record.value or b"")])
            result.state[key] = Seen(examined.revision, examined.digest).to_bytes()
            return result
        if verdict == "drop":
            metrics.INTAKE_DUPLICATES.labels(examined.agency).inc()
            return Result()
        assert seen is not None
        _, accepted = decode(self.catalog, record.value or b"", self.accepted_schema)
        where = accepted["source"]
        rejection = Rejection(verdict, conflict_message(verdict, examined.lead_id, examined.revision, seen),
                              bytes(accepted.get("original") or b""),
                              Source(where["topic"], where["partition"], where["offset"]),
                              field="revision", lead_id=examined.lead_id, agency=examined.agency)
        return Result([self._rejected(rejection, now)])

    def _rejected(self, rejection: Rejection, now: datetime) -> Output:
        source = rejection.source
        key = (rejection.lead_id or f"{source.topic}:{source.partition}:{source.offset}").encode()
        metrics.INTAKE_REJECTED.labels(rejection.reason, rejection.agency or "?").inc()
        log.info(
            "rejected",
            extra={"reason": rejection.reason, "field": rejection.field, "lead_id": rejection.lead_id,
                   "topic": source.topic, "partition": source.partition, "offset": source.offset},
        )
        return Output(LEADS_REJECTED, key[:1024], encode(self.rejected_schema, rejected_record(rejection, now)))


__all__ = ["CHANGELOG", "INTAKE_PATTERN", "TOPICS", "IntakeHandler"]
