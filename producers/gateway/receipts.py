"""Receipts: what became of each lead, from the bus's own outputs.

A reader thread reads, from the beginning and without joining a consumer group, `leadbus.leads.accepted`,
`leadbus.leads.rejected` and `leadbus.cases` (read-committed: intake and linking write them in
transactions) and keeps, per lead id of this gateway's agency, its outcomes — accepted (revision, content
digest, warnings, the intake record it came from) or rejected (reason, field, message) — and the case each
lead belongs to now. Outcomes name the intake record they judged (topic, partition, offset), which the
gateway knows of every lead it published: a receipt matches them exactly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadbus.avro import DecodeError, SchemaCatalog, decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.readers import FollowingReader
from leadbus.topics import CASES, LEADS_ACCEPTED, LEADS_REJECTED

log = logging.getLogger("leadbus.producers.gateway.receipts")


@dataclass(frozen=True)
class Outcome:
    status: str  # accepted | rejected
    at: str
    source: tuple[str, int, int]
    revision: int | None = None
    digest: str | None = None
    reason: str | None = None
    field: str | None = None
    message: str | None = None
    warnings: tuple[str, ...] = ()
    province: str | None = None

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "at": self.at, "topic": self.source[0],
                               "partition": self.source[1], "offset": self.source[2]}
        if self.status == "accepted":
            out.update(revision=self.revision, warnings=list(self.warnings))
        else:
            out.update(reason=self.reason, field=self.field, message=self.message)
        return out


@dataclass
class LeadOutcomes:
    outcomes: list[Outcome] = field(default_factory=list)
    by_source: dict[tuple[str, int, int], Outcome] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        if outcome.source in self.by_source and outcome.status == self.by_source[outcome.source].status:
            return
        self.outcomes.append(outcome)
        self.by_source[outcome.source] = outcome

    def accepted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "accepted"]


def _iso(value: Any) -> str:
    return value.isoformat(timespec="milliseconds") if isinstance(value, datetime) else str(value)


class ReceiptIndex(FollowingReader):
    """Outcomes of one agency's leads, filled by a reader thread; every method is thread-safe."""

    topics = (LEADS_ACCEPTED, LEADS_REJECTED, CASES)
    metadata_timeout = 10.0
    poll_timeout = 0.2

    def __init__(self, settings: KafkaSettings | None, agency: str, catalog: SchemaCatalog | None = None) -> None:
        # without settings (a gateway that does not read its receipts) the reader never starts
        super().__init__(settings or KafkaSettings(""), f"receipts-{agency}")
        self.settings, self.agency = settings, agency
        self.group_prefix = f"leadbus-gateway-{agency}-"  # the gateway-receipts principal's grant
        self.catalog = catalog or packaged_catalog()
        self.lock = threading.Lock()
        self.leads: dict[str, LeadOutcomes] = {}
        self.case_of: dict[str, str] = {}

    # -- queries -------------------------------------------------------------------------------

    def of(self, lead_id: str) -> tuple[list[Outcome], str | None, dict[tuple[str, int, int], Outcome]]:
        with self.lock:
            found = self.leads.get(lead_id.lower())
            outcomes = sorted(found.outcomes, key=lambda o: o.at) if found else []  # topics interleave: by time
            by_source = dict(found.by_source) if found else {}
            return outcomes, self.case_of.get(lead_id.lower()), by_source

    # -- feeding -------------------------------------------------------------------------------

    def handle(self, topic: str, value: bytes) -> None:
        try:
            _, record = decode(self.catalog, value)
        except DecodeError as exc:
            log.error("undecodable record on %s: %s", topic, exc)
            return
        if topic == LEADS_ACCEPTED:
            lead = record["lead"]
            if lead["publisher"]["agency"] != self.agency:
                return
            src = record["source"]
            outcome = Outcome("accepted", _iso(record["accepted_at"]), (src["topic"], src["partition"], src["offset"]),
                              revision=int(lead["revision"]), digest=str(record["digest"]),
                              warnings=tuple(w["code"] for w in record.get("warnings") or ()),
                              province=lead["publisher"]["province"])
            self._add(str(lead["lead_id"]), outcome)
        elif topic == LEADS_REJECTED:
            if record.get("publisher_agency") != self.agency or not record.get("lead_id"):
                return
            src = record["source"]
            outcome = Outcome("rejected", _iso(record["rejected_at"]), (src["topic"], src["partition"], src["offset"]),
                              reason=str(record["reason"]), field=record.get("field"),
                              message=str(record["message"])[:500])
            self._add(str(record["lead_id"]), outcome)
        elif topic == CASES:
            if record.get("merged_into"):
                return  # the survivor's update names these members too
            with self.lock:
                for member in record.get("members") or ():
                    self.case_of[str(member).lower()] = str(record["case_id"])

    def _add(self, lead_id: str, outcome: Outcome) -> None:
        with self.lock:
            self.leads.setdefault(lead_id.lower(), LeadOutcomes()).add(outcome)

    # -- the reader thread (leadbus/readers.py) ---------------------------------------------------

    def start(self) -> None:
        if self.settings is not None:
            super().start()
