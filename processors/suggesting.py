"""The suggesting stage: `leadbus.cases` + `leadbus.links.decisions` → `LinkSuggested` (issue #16, #19).

Linking used to keep the weak-signal suggestion index in its own state and score every changed case's pairs
inside its step, which made each lead cost about twice as much CPU and changelog as strong linking alone. This
stage keeps the index instead (`processors/core/suggesting.py`), fed by the cases linking publishes
(`CaseUpdated` v5 carries each case's weak signals and provinces), and emits the same `LinkSuggested` events:
keyed ``<case a>|<case b>``, onto `leadbus.links.suggested` and the review topic of each region involved.
Suggestions after an analyst's confirm or split come from the cases that decision republished.

Any case may pair with any, so the state is global: one active owner (partition 0), like linking's; it reads
every partition of `leadbus.cases` (see the core's docstring for what the interleaving of partitions may and
may not change). Analysts' rejects are read from `leadbus.links.decisions` (a reject does not republish the
cases): a reject counts unless this stage already saw one of its cases merged away — the one case in which
linking refuses a reject of two cases that were both made. Splits are read from the cases' history.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.models import LinkDecision
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.core.review import Review
from leadbus.processors.core.suggesting import PublishedCase, SuggestingCore
from leadbus.processors.linking import _Mirror, _Store
from leadbus.topics import CASES, LEADS_REJECTED, LINK_DECISIONS, LINKS_SUGGESTED, SUGGESTING_CHANGELOG, review_topic

log = logging.getLogger("leadbus.processors.suggesting")

CHANGELOG = SUGGESTING_CHANGELOG
TOPICS = [CASES, LINK_DECISIONS]


def link_suggested_record(review: Review, now: datetime) -> dict[str, Any]:
    s = review.suggestion
    return {"suggestion_id": review.suggestion_id, "case_a": s.case_a, "case_b": s.case_b,
            "version_a": review.version_a, "version_b": review.version_b, "score": s.score, "weight_bits": s.weight,
            "evidence": [{"signal": f, "value": v or None, "bits": round(b, 3)} for f, v, b in s.evidence],
            "regions": list(review.regions), "provinces": list(review.provinces), "suggested_at": now}


def suggested_outputs(reviews: list[Review], schema: Any, now: datetime) -> list[Output]:
    """Each review onto `leadbus.links.suggested` and the review topic of each of its regions."""
    outputs: list[Output] = []
    for review in reviews:
        value = encode(schema, link_suggested_record(review, now))
        key = f"{review.suggestion.case_a}|{review.suggestion.case_b}".encode()
        outputs.append(Output(LINKS_SUGGESTED, key, value))
        outputs.extend(Output(review_topic(region), key, value) for region in review.regions)
    return outputs


class SuggestingHandler:
    """The suggesting step. Like linking's, it keeps what it read and wrote in memory between records (the host
    applies each result's writes before the next record and moves its view's ``generation`` otherwise)."""

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.decision_schema = self.catalog.latest("cn.leadbus.LinkDecision")
        self.suggested_schema = self.catalog.latest("cn.leadbus.LinkSuggested")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")
        self._mirror = _Mirror()

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        if record.topic == LINK_DECISIONS:
            return self.decided(record, state)
        try:
            _, doc = decode(self.catalog, record.value or b"", self.case_schema)
            case = PublishedCase.of(doc)
        except (DecodeError, ValueError, KeyError, TypeError) as exc:
            # Linking wrote this topic, so this is a bug or tampering: dead-letter it, never drop it.
            log.error("undecodable case at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return Result([Output(LEADS_REJECTED, record.key, encode(self.rejected_schema, dead_letter_record(
                reason="LINK_UNDECODABLE", message=str(exc), original=record.value or b"", source=record.source,
                now=now)))])
        store = _Store(state, self._mirror)
        reviews = SuggestingCore(store).on_case(case)
        result = Result(suggested_outputs(reviews, self.suggested_schema, now))
        result.state.update(store.changed())
        return result

    def decided(self, record: Record, state: StateView) -> Result:
        """An analyst's reject separates the pair here too; other decisions republish cases, read above. A
        decision that does not decode is linking's to dead-letter (it reads the same record): ignored here."""
        try:
            _, event = decode(self.catalog, record.value or b"", self.decision_schema)
            decision = LinkDecision.model_validate(event)
        except (DecodeError, ValueError):
            return Result()
        if decision.action != "REJECT" or decision.case_b is None:
            return Result()
        store = _Store(state, self._mirror)
        counted = SuggestingCore(store).on_reject(decision.case_a, decision.case_b)
        log.info("link reject", extra={"decision_id": decision.decision_id, "case_a": decision.case_a,
                                       "case_b": decision.case_b, "counted": counted})
        result = Result()
        result.state.update(store.changed())
        return result
