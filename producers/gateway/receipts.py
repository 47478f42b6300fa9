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
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from leadbus.avro import DecodeError, SchemaCatalog, decode, packaged_catalog
from leadbus.clients import KafkaSettings
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


class ReceiptIndex:
    """Outcomes of one agency's leads, filled by a reader thread; every method is thread-safe."""

    def __init__(self, settings: KafkaSettings | None, agency: str, catalog: SchemaCatalog | None = None) -> None:
        self.settings, self.agency = settings, agency
        self.catalog = catalog or packaged_catalog()
        self.lock = threading.Lock()
        self.leads: dict[str, LeadOutcomes] = {}
        self.case_of: dict[str, str] = {}
        self.caught_up = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.last_error: str | None = None

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

    # -- the reader thread -----------------------------------------------------------------------

    def start(self) -> None:
        if self.settings is None:
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name=f"receipts-{self.agency}", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - broker gone, metadata timeout …: retry, never die
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("receipt reader failed (%s); retrying", self.last_error)
                self.stopping.wait(2.0)

    def _read(self) -> None:
        assert self.settings is not None
        consumer = self.settings.consumer(f"leadbus-gateway-{self.agency}-{uuid.uuid4()}")  # assigned, never joined
        try:
            assignment = []
            for topic in (LEADS_ACCEPTED, LEADS_REJECTED, CASES):
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                if meta.error is not None:
                    raise RuntimeError(f"{topic}: {meta.error}")
                assignment += [TopicPartition(topic, p, self.positions.get((topic, p), OFFSET_BEGINNING))
                               for p in meta.partitions]
            ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in assignment}
            consumer.assign(assignment)
            while not self.stopping.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error():
                        log.warning("consumer error: %s", msg.error())
                        continue
                    topic, partition = msg.topic() or "", msg.partition() or 0
                    try:
                        self.handle(topic, msg.value() or b"")
                    except (KeyError, TypeError, ValueError) as exc:
                        log.error("unusable record %s[%s]@%s: %s", topic, partition, msg.offset(), exc)
                    self.positions[(topic, partition)] = (msg.offset() or 0) + 1
                if not self.caught_up.is_set():
                    positions = consumer.position([TopicPartition(t, p) for t, p in ends])
                    if all(tp.offset >= ends[(tp.topic, tp.partition)] or ends[(tp.topic, tp.partition)] == 0
                           for tp in positions):
                        self.caught_up.set()
        finally:
            consumer.close()
