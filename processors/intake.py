"""The intake stage: every `leadbus.intake.<agency>` topic → `leadbus.leads.accepted` / `.rejected`.

Thin edge around the pure core (`leadbus.processors.core.intake`): it moves bytes, keeps the
dedupe memory in the stage's state store, counts metrics and logs rejections.
"""

from __future__ import annotations

import logging
from datetime import datetime

from confluent_kafka import Message

from leadbus.avro import SchemaCatalog, encode, packaged_catalog
from leadbus.processors import metrics
from leadbus.processors.core.intake import (
    Acceptance,
    DecisionAcceptance,
    Rejection,
    Seen,
    Source,
    accepted_record,
    agency_of_topic,
    dedupe,
    examine,
    rejected_record,
)
from leadbus.processors.stage import Output, Result, StateView
from leadbus.topics import HANDOVER_DECISIONS, LEADS_ACCEPTED, LEADS_REJECTED

log = logging.getLogger("leadbus.processors.intake")

INTAKE_PATTERN = "^leadbus\\.intake\\..*"
CHANGELOG = "leadbus.state.intake"


class IntakeHandler:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.accepted_schema = self.catalog.latest("cn.leadbus.LeadAccepted")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")

    def handle(self, msg: Message, state: StateView, now: datetime) -> Result:
        source = Source(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        try:
            outcome: Acceptance | DecisionAcceptance | Rejection = examine(msg.value(), source, self.catalog, now)
        except Exception as exc:
            log.exception("intake core failed on %s", source)
            outcome = Rejection("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", msg.value() or b"", source)
        if isinstance(outcome, DecisionAcceptance):
            # Handover decisions go on, keyed by case, to the handover stage that judges them.
            result = Result([Output(HANDOVER_DECISIONS, outcome.case_id.encode(), outcome.original)])
            metrics.INTAKE_ACCEPTED.labels(agency_of_topic(source.topic) or "?").inc()
            return result
        seen = Seen.from_bytes(state.get(outcome.lead.lead_id.encode())) if isinstance(outcome, Acceptance) else None
        decision = dedupe(seen, outcome)
        result = Result()
        if decision.action == "emit":
            assert isinstance(outcome, Acceptance) and decision.remember is not None
            key = outcome.lead.lead_id.encode()
            value = encode(self.accepted_schema, accepted_record(outcome, now))
            result.outputs.append(Output(LEADS_ACCEPTED, key, value))
            result.state[key] = decision.remember.to_bytes()
            metrics.INTAKE_ACCEPTED.labels(outcome.lead.publisher.agency).inc()
            for warning in outcome.warnings:
                metrics.INTAKE_WARNINGS.labels(warning.code).inc()
        elif decision.action == "drop":
            assert isinstance(outcome, Acceptance)
            metrics.INTAKE_DUPLICATES.labels(outcome.lead.publisher.agency).inc()
        else:
            rejection = decision.outcome
            assert isinstance(rejection, Rejection)
            key = (rejection.lead_id or f"{source.topic}:{source.partition}:{source.offset}").encode()
            value = encode(self.rejected_schema, rejected_record(rejection, now))
            result.outputs.append(Output(LEADS_REJECTED, key, value))
            metrics.INTAKE_REJECTED.labels(rejection.reason, rejection.agency or "?").inc()
            log.info(
                "rejected",
                extra={"reason": rejection.reason, "field": rejection.field, "lead_id": rejection.lead_id,
                       "topic": source.topic, "partition": source.partition, "offset": source.offset},
            )
        return result
