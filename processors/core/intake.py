"""Intake, pure: bytes from an intake topic → an accepted lead with warnings, or a rejection with a reason.

    outcome = examine(data, source, catalog, now)
    decision = dedupe(seen.get(lead_id), outcome)   # exact redeliveries drop, conflicts reject

A bad record never raises out of `examine`: every failure becomes a `Rejection` carrying its
reason code, a human message, the original bytes and the source position.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from leadbus.agencies import is_agency_code
from leadbus.avro import DecodeError, SchemaCatalog, decode
from leadbus.avro.codec import writer_of
from leadbus.geography import is_publisher_province
from leadbus.models import FUTURE_TOLERANCE, CaseLead, reason_code
from leadbus.processors.core.normalize import Normalised, Warning_, normalise
from leadbus.topics import INTAKE_PREFIX

MAX_EVENT_BYTES = 512 * 1024
CASE_LEAD = "cn.leadbus.CaseLead"


@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Acceptance:
    lead: CaseLead
    normalised: Normalised
    digest: str
    source: Source
    original: bytes

    @property
    def warnings(self) -> tuple[Warning_, ...]:
        warnings: tuple[Warning_, ...] = self.normalised.warnings
        return warnings


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str
    original: bytes
    source: Source
    field: str | None = None
    lead_id: str | None = None
    agency: str | None = None


@dataclass(frozen=True)
class DecisionAcceptance:
    """A valid `HandoverDecision`, forwarded as published to `leadbus.handover.decisions`."""

    case_id: str
    decision_id: str
    kind: str
    original: bytes
    source: Source


Outcome = Acceptance | DecisionAcceptance | Rejection
DECISION = "cn.leadbus.HandoverDecision"
_ROLES_OF = {"MPS": {"POLICE", "HEAD"}, "SPP": {"PROCURATOR", "HEAD"}}


def _examine_decision(original: bytes, source: Source, catalog: SchemaCatalog, now: datetime,
                      topic_agency: str | None) -> DecisionAcceptance | Rejection:
    def reject(reason: str, message: str, field: str | None = None) -> Rejection:
        return Rejection(reason, message, original, source, field=field, agency=topic_agency)

    try:
        _, record = decode(catalog, original, catalog.latest(DECISION))
    except DecodeError as exc:
        return reject(exc.reason, exc.message)
    actor = record["actor"]
    try:
        uuid.UUID(str(record["decision_id"]))
    except ValueError:
        return reject("DECISION_ID_FORMAT", f"{record['decision_id']!r} is not a UUID", "decision_id")
    if not str(record["case_id"]).startswith("CASE-"):
        return reject("UNKNOWN_CASE", f"{record['case_id']!r} is not a case id of the bus", "case_id")
    if record["kind"] == "UNSPECIFIED":
        return reject("UNKNOWN_ENUM", "the decision kind is missing or unknown to this reader", "kind")
    if not is_agency_code(actor["agency"]):
        return reject("UNKNOWN_AGENCY", f"{actor['agency']!r} is not a current agency code", "actor.agency")
    if not is_publisher_province(actor["province"]):
        return reject("UNKNOWN_PROVINCE", f"{actor['province']!r} is not a province code", "actor.province")
    if topic_agency is not None and actor["agency"] != topic_agency:
        return reject("WRONG_TOPIC", f"a decision of {actor['agency']} arrived on {source.topic}", "actor.agency")
    allowed = _ROLES_OF.get(actor["agency"], {"OFFICER", "HEAD"})
    if actor["role"] not in allowed:
        return reject("WRONG_ROLE", f"{actor['agency']} cannot act as {actor['role']}", "actor.role")
    if record["decided_at"] > now + FUTURE_TOLERANCE:
        return reject("TIME_IN_FUTURE", "decided_at is in the future", "decided_at")
    return DecisionAcceptance(str(record["case_id"]), str(record["decision_id"]), str(record["kind"]), original,
                              source)


def agency_of_topic(topic: str) -> str | None:
    return topic[len(INTAKE_PREFIX):] if topic.startswith(INTAKE_PREFIX) else None


def examine(data: bytes | None, source: Source, catalog: SchemaCatalog, now: datetime) -> Outcome:
    """Decode, validate, check the publisher against the topic, normalise."""
    original = data or b""
    topic_agency = agency_of_topic(source.topic)

    def reject(reason: str, message: str, **extra: str | None) -> Rejection:
        return Rejection(reason, message, original, source, agency=extra.pop("agency", topic_agency), **extra)

    if len(original) > MAX_EVENT_BYTES:
        return reject("OVERSIZED", f"{len(original)} bytes exceed the {MAX_EVENT_BYTES}-byte limit")
    try:
        if writer_of(catalog, original).name == DECISION:
            return _examine_decision(original, source, catalog, now, topic_agency)
    except DecodeError as exc:
        return reject(exc.reason, exc.message)
    try:
        _, record = decode(catalog, original, catalog.latest(CASE_LEAD))
    except DecodeError as exc:
        return reject(exc.reason, exc.message)
    try:
        lead = CaseLead.model_validate(record, context={"now": now})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        path = ".".join(str(p) for p in first["loc"]) or None
        code = reason_code(first["type"])
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        lead_id = record.get("lead_id") if isinstance(record, dict) else None
        return reject(code, detail, field=path, lead_id=str(lead_id) if lead_id is not None else None)
    if topic_agency is not None and lead.publisher.agency != topic_agency:
        return reject(
            "WRONG_TOPIC",
            f"a lead of {lead.publisher.agency} arrived on {source.topic}: agencies publish only to their own topic",
            field="publisher.agency", lead_id=lead.lead_id,
        )
    normalised = normalise(lead)
    digest = hashlib.sha256(normalised.lead.to_json().encode()).hexdigest()
    return Acceptance(normalised.lead, normalised, digest, source, original)


@dataclass(frozen=True)
class Seen:
    """What intake remembers of a lead id: the highest revision accepted and its content digest."""

    revision: int
    digest: str

    def to_bytes(self) -> bytes:
        return json.dumps({"revision": self.revision, "digest": self.digest}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Seen | None:
        if raw is None:
            return None
        stored = json.loads(raw)
        return cls(int(stored["revision"]), str(stored["digest"]))


@dataclass(frozen=True)
class Decision:
    action: Literal["emit", "drop", "reject"]
    outcome: Acceptance | Rejection
    remember: Seen | None = None


def dedupe(seen: Seen | None, outcome: Acceptance | Rejection) -> Decision:
    """Exact redeliveries are dropped; a higher revision supersedes; a conflict or stale revision is rejected."""
    if isinstance(outcome, Rejection):
        return Decision("reject", outcome)
    revision = outcome.lead.revision
    if seen is None or revision > seen.revision:
        return Decision("emit", outcome, Seen(revision, outcome.digest))
    if revision == seen.revision:
        if outcome.digest == seen.digest:
            return Decision("drop", outcome)
        return Decision("reject", _conflict(outcome, "REVISION_CONFLICT",
                                             f"revision {revision} of {outcome.lead.lead_id} was already accepted "
                                             "with different content; publish a higher revision to correct it"))
    return Decision("reject", _conflict(outcome, "STALE_REVISION",
                                         f"revision {revision} of {outcome.lead.lead_id} arrived after revision "
                                         f"{seen.revision}"))


def _conflict(outcome: Acceptance, reason: str, message: str) -> Rejection:
    return Rejection(reason, message, outcome.original, outcome.source, field="revision",
                     lead_id=outcome.lead.lead_id, agency=outcome.lead.publisher.agency)


def accepted_record(acceptance: Acceptance, now: datetime, sequence: int | None = None) -> dict[str, Any]:
    """The `LeadAccepted` event (Avro record form)."""
    name = acceptance.normalised.name
    return {
        "lead": acceptance.lead.to_avro(),
        "identity": {
            "name_core": name.core,
            "name_prefix": name.prefix,
            "legal_form": name.legal_form,
            "registrable_domains": list(acceptance.normalised.domains),
        },
        "digest": acceptance.digest,
        "warnings": [{"code": w.code, "field": w.field, "message": w.message} for w in acceptance.warnings],
        "source": _source(acceptance.source),
        "publisher_sequence": sequence,
        "accepted_at": now,
    }


def rejected_record(rejection: Rejection, now: datetime) -> dict[str, Any]:
    """The `LeadRejected` event (Avro record form)."""
    return {
        "reason": rejection.reason,
        "message": rejection.message,
        "field": rejection.field,
        "lead_id": rejection.lead_id,
        "publisher_agency": rejection.agency,
        "original": rejection.original,
        "source": _source(rejection.source),
        "rejected_at": now,
    }


def _source(source: Source) -> dict[str, Any]:
    return {"topic": source.topic, "partition": source.partition, "offset": source.offset}
