"""The linking stage: `leadbus.leads.accepted` → `leadbus.cases` (CaseUpdated), one global state.

Linking is global — any lead may join any case, and a merge touches cases anywhere — so its
state is not partitioned: one active worker owns it (others in the group stand by and take
over on failure), and `leadbus.leads.accepted` has a single partition, so every replay sees
the leads in the same order and derives the same case ids. bench/link_speed.py measures what
one worker sustains.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.linking import Case, Linker, case_summary
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.topics import CASES, LEADS_REJECTED, LINKING_CHANGELOG

log = logging.getLogger("leadbus.processors.linking")

CHANGELOG = LINKING_CHANGELOG


class _Store:
    """The linker's key → text store over the stage's state view, collecting this record's writes."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: str) -> str | None:
        raw = key.encode()
        value = self.writes[raw] if raw in self.writes else self.view.get(raw)
        return value.decode() if value is not None else None

    def set(self, key: str, value: str) -> None:
        self.writes[key.encode()] = value.encode()

    def delete(self, key: str) -> None:
        self.writes[key.encode()] = None


def case_updated_record(case: Case, now: datetime, merged_into: str | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = case_summary(case)
    summary["first_reported_at"] = datetime.fromisoformat(summary["first_reported_at"])
    summary["last_reported_at"] = datetime.fromisoformat(summary["last_reported_at"])
    for name in ("conduct_from", "conduct_to"):
        summary[name] = date.fromisoformat(summary[name]) if summary[name] else None
    summary["prior_penalties"] = [{**p, "decided_on": date.fromisoformat(p["decided_on"])}
                                  for p in summary["prior_penalties"]]
    summary["merged_into"] = merged_into
    summary["updated_at"] = now
    return summary


class LinkingHandler:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.accepted_schema = self.catalog.latest("cn.leadbus.LeadAccepted")
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        result = Result()
        try:
            _, event = decode(self.catalog, record.value or b"", self.accepted_schema)
            lead = CaseLead.model_validate(event["lead"])
        except (DecodeError, ValueError) as exc:
            # Intake wrote this topic, so this is a bug or tampering: dead-letter it, never drop it.
            log.error("undecodable accepted lead at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            result.outputs.append(Output(LEADS_REJECTED, record.key, encode(self.rejected_schema, dead_letter_record(
                reason="LINK_UNDECODABLE", message=str(exc), original=record.value or b"", source=record.source,
                now=now))))
            return result
        store = _Store(state)
        outcome = Linker(store).link(lead, event["identity"]["registrable_domains"])
        for absorbed in outcome.absorbed:
            value = encode(self.case_schema, case_updated_record(absorbed, now, merged_into=outcome.case.case_id))
            result.outputs.append(Output(CASES, absorbed.case_id.encode(), value))
        value = encode(self.case_schema, case_updated_record(outcome.case, now))
        result.outputs.append(Output(CASES, outcome.case.case_id.encode(), value))
        result.state.update(store.writes)
        return result
