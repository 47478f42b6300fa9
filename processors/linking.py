"""The linking stage: `leadbus.leads.accepted` → `leadbus.cases` (CaseUpdated), one global state.

Linking is global — any lead may join any case, and a merge touches cases anywhere — so its
state is not partitioned: one active worker owns it (others in the group stand by and take
over on failure), and `leadbus.leads.accepted` has a single partition, so every replay sees
the leads in the same order and derives the same case ids. bench/link_speed.py measures what
one worker sustains.

Analysts in the loop (`processors/core/review.py`): the suggestion index is not kept here but by the suggesting
stage (`processors/suggesting.py`), from the cases published (`CaseUpdated` v5 carries each case's weak signals and
provinces), so that strong linking does not pay for weak-signal review (issue #16). Analysts' `LinkDecision` events,
validated by intake, arrive on `leadbus.links.decisions` (one partition, read by the same worker: the range assignor
gives partition 0 of both topics to one member). A confirm or reject of a pair also writes `LinkDecided` onto the
review topics of the regions involved, keyed like the pair's suggestion, so that a dashboard rebuilding its board
from them drops the pair.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.avro.codec import HEADER_SIZE, MAGIC
from leadbus.avro.fastread import Compiler, Reader, Unsupported, compile_reader
from leadbus.models import (
    Address,
    CaseLead,
    Category,
    Channel,
    Contact,
    Evidence,
    Facts,
    Grading,
    Handling,
    LinkDecision,
    Online,
    PriorPenalty,
    Product,
    Publisher,
    RightsHolder,
    Subject,
    SubjectKind,
    Violation,
)
from leadbus.processors.core.case_totals import HotCase, HotLinker
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.linking import LINK_VIEW_VERSION, MEMBER_FIELDS, Case, Linker, case_summary, derive
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.core.review import Decided, apply_decision
from leadbus.topics import CASES, LEADS_REJECTED, LINK_DECISIONS, LINKING_CHANGELOG, review_topic

log = logging.getLogger("leadbus.processors.linking")

CHANGELOG = LINKING_CHANGELOG


#: Keys whose values the handler keeps in memory between records (text and parsed forms): cleared when full.
MIRROR_KEYS = 200_000
#: Big cases whose totals the handler keeps in memory (`HotCase`): cleared when full (each is then summarised in full
#: once more when its next lead comes).
HOT_CASES = 1_000
_ABSENT = object()
_T = TypeVar("_T")


class _Mirror:
    """What the handler read and wrote of the state, kept between records so that a hot key (a count of the
    suggestion index, a busy case's header, a blocking value's postings) is neither read from the store nor parsed
    again for every lead.

    It holds exactly the state (committed and the open transaction's writes) as long as the view is the same and
    its ``generation`` did not move (`StateStore.generation`: an aborted transaction, a restore after a rebalance,
    a step's writes dropped); otherwise it starts empty. Only a record that completes writes into it, so a step
    that raises leaves nothing of itself behind.
    """

    def __init__(self) -> None:
        self.view: StateView | None = None
        self.generation: object = None
        self.text: dict[str, str | None] = {}
        self.parsed: dict[tuple[str, Callable[[str], Any]], tuple[str, Any]] = {}
        self.hot: dict[str, HotCase] = {}  # big cases' totals, each valid while its header text is the one held

    def over(self, view: StateView) -> _Mirror:
        generation = getattr(view, "generation", None)
        if view is not self.view or generation != self.generation or len(self.text) > MIRROR_KEYS:
            self.view, self.generation = view, generation
            self.text.clear()
            self.parsed.clear()
            self.hot.clear()
        elif len(self.parsed) > MIRROR_KEYS:
            self.parsed.clear()
        return self


class _Store:
    """The linker's key → text store over the stage's state view, collecting this record's writes."""

    def __init__(self, view: StateView, mirror: _Mirror | None = None) -> None:
        self.view = view
        self.writes: dict[str, str | None] = {}
        self.mirror = (mirror or _Mirror()).over(view)
        self.kept: dict[str, HotCase] = {}

    def get(self, key: str) -> str | None:
        writes = self.writes
        if key in writes:
            return writes[key]
        text = self.mirror.text
        value = text.get(key, _ABSENT)
        if value is _ABSENT:
            raw = self.view.get(key.encode())
            value = text[key] = raw.decode() if raw is not None else None
        return value  # type: ignore[return-value]

    def read_parsed(self, key: str, parse: Callable[[str], _T]) -> _T | None:
        """``parse`` of the key's text, parsed once while the text stays the same. Shared: never change it."""
        text = self.get(key)
        if text is None:
            return None
        cache = self.mirror.parsed
        found = cache.get((key, parse))
        if found is not None and found[0] is text:
            return found[1]  # type: ignore[no-any-return]
        value = parse(text)
        cache[(key, parse)] = (text, value)
        return value

    def read_member(self, lead_id: str) -> dict[str, Any] | None:
        """A member record, parsed once (a member record is read-only: see `load_case`)."""
        return self.read_parsed(f"m:{lead_id}", json.loads)

    def take_hot(self, case_id: str) -> HotCase | None:
        """The case's totals, taken out of the mirror: a record that fails after changing them leaves none behind."""
        hot = self.mirror.hot.pop(case_id, None)
        if hot is None or self.get(f"c:{case_id}") is not hot.text:
            return None
        return hot

    def keep_hot(self, case_id: str, hot: HotCase) -> None:
        self.kept[case_id] = hot

    def set(self, key: str, value: str) -> None:
        self.writes[key] = value

    def delete(self, key: str) -> None:
        self.writes[key] = None

    def changed(self) -> dict[bytes, bytes | None]:
        """This record's writes that change something the mirror knows (a value rewritten as it was is no changelog
        record), now also in the mirror: call it once the record is done.

        A key the mirror never saw (a new lead's member record, a new case's header: written, never read) is
        written without reading the store first: that read was an absent-key lookup in RocksDB for ~2 keys of
        every lead (issue #16), and writing a value the store may already hold leaves the state as it was."""
        text = self.mirror.text
        out: dict[bytes, bytes | None] = {}
        for key, value in self.writes.items():
            if text.get(key, _ABSENT) != value:
                out[key.encode()] = value.encode() if value is not None else None
            text[key] = value
        hot = self.mirror.hot
        if len(hot) + len(self.kept) > HOT_CASES:
            hot.clear()
        hot.update(self.kept)
        return out


_M = TypeVar("_M", bound=BaseModel)
_set = object.__setattr__
_FIELD_NAMES: dict[type[BaseModel], frozenset[str]] = {}


def _built(model: type[_M], values: dict[str, Any], fields: frozenset[str] | None = None) -> _M:
    """``model`` holding ``values`` as they are: what `BaseModel.model_construct` does, without its per-field work
    (the values are complete: the Avro reader filled every field). Values whose fields are not exactly the model's
    (the model and the schema drifted apart) are validated instead. ``fields``: the fields expected when not all of
    the model's (the lead the linker reads, `LINKING_UNREAD`), those left out then absent from the object."""
    if fields is None:
        fields = _FIELD_NAMES.get(model)
        if fields is None:  # pydantic's `model_fields` is a descriptor that costs a call each time: read it once
            fields = _FIELD_NAMES[model] = frozenset(model.model_fields)
    if values.keys() != fields:
        return model.model_validate(values)
    built = model.__new__(model)
    _set(built, "__dict__", values)
    _set(built, "__pydantic_fields_set__", set(values))
    _set(built, "__pydantic_extra__", None)
    _set(built, "__pydantic_private__", None)
    return built


_E = TypeVar("_E", bound=Enum)


def _member_of(enum: type[_E], value: Any) -> _E:
    """``enum(value)`` by one dict lookup (calling an enumeration costs ~0.7 µs; a lead has six of them); a value that
    is no member raises ValueError as the call does."""
    found = enum._value2member_map_.get(value) if isinstance(value, str) else None
    return found if found is not None else enum(value)  # type: ignore[return-value]


#: Parts of an accepted lead linking never reads (neither `Linker` nor the weak signals): the stream's reader checks
#: them as it checks the rest but builds none of them (evidence is the second largest part of a lead; issue #16).
LINKING_UNREAD = frozenset({"evidence", "description", "grading"})
_LINKED_FIELDS = frozenset(CaseLead.model_fields) - LINKING_UNREAD
#: What the linking handler reads of a `LeadAccepted` (the lead without `LINKING_UNREAD`, its registrable domains).
_ACCEPTED_UNREAD = frozenset({
    *(f"lead.{name}" for name in LINKING_UNREAD), "identity.name_core", "identity.name_prefix", "identity.legal_form",
    "digest", "warnings", "source", "publisher_sequence", "accepted_at", "original", "seal", "linking",
})  # fmt: skip


def linked_lead(doc: dict[str, Any]) -> CaseLead:
    """The lead of a `LeadAccepted` read without `LINKING_UNREAD`, as `accepted_lead` builds it, those parts absent:
    reading one raises AttributeError. Only for the linker, which never reads them (the stream's outputs equal
    offline linking's on the golden corpus, and a unit test compares the two leads on the parts read)."""
    return accepted_lead(doc, _LINKED_FIELDS)


def accepted_lead(doc: dict[str, Any], fields: frozenset[str] | None = None) -> CaseLead:
    """The lead of a decoded `LeadAccepted`, built without validating it again.

    Intake validated and normalised it before writing `leadbus.leads.accepted` (only intake may write there), and
    the Avro reader has resolved older writers to today's fields; validating it again cost more than a quarter of
    the linking step (issue #16). The result equals the validated lead, enumerations included (a unit test compares
    them). A record missing a part raises KeyError, TypeError or ValueError: dead-lettered.
    """
    subject = dict(doc["subject"])
    subject["kind"] = _member_of(SubjectKind, subject["kind"])
    address = subject["address"]
    if address is not None:
        subject["address"] = _built(Address, address)
    holder, operator = doc["rights_holder"], doc["operator"]
    parts: dict[str, Any] = {} if fields is not None else {
        "grading": _built(Grading, doc["grading"]), "evidence": [_built(Evidence, e) for e in doc["evidence"]]}
    return _built(CaseLead, {
        **doc,
        **parts,
        "channel": _member_of(Channel, doc["channel"]), "category": _member_of(Category, doc["category"]),
        "violation": _member_of(Violation, doc["violation"]), "handling": _member_of(Handling, doc["handling"]),
        "publisher": _built(Publisher, doc["publisher"]),
        "subject": _built(Subject, subject),
        "online": _built(Online, doc["online"]),
        "facts": _built(Facts, doc["facts"]),
        "rights_holder": _built(RightsHolder, holder) if holder is not None else None,
        "prior_penalties": [_built(PriorPenalty, {**p, "violation": _member_of(Violation, p["violation"])})
                            for p in doc["prior_penalties"]],
        # v3 (courier channel): the weak signals read these as models, as they read the validated lead's
        "products": [_built(Product, p) for p in doc["products"]],
        "senders": [_built(Contact, c) for c in doc["senders"]],
        "return_addresses": [_built(Address, a) for a in doc["return_addresses"]],
        "operator": _built(Contact, operator) if operator is not None else None,
    }, fields)


def view_reader(parsed: Any) -> Reader | None:
    """A reader of the ``linking`` view (`LeadAccepted` v7's first field) that stops where the view ends: the rest of
    the body is neither read nor judged (passing over it by its lengths, `Compiler.skip`, cost 13 µs a lead, a fifth
    of the step, and would judge its lengths only: the audit rebuild reads every record whole). None when the writer
    schema does not begin with the view or the reader cannot be made."""
    fields = parsed.get("fields") if isinstance(parsed, dict) else None
    if not fields or fields[0]["name"] != "linking":
        return None
    compiler = Compiler()
    compiler.emit(0, "def read(data, pos):")
    compiler.emit(1, "end = len(data)")
    try:
        compiler.value(fields[0]["type"], "result", 1)
    except Unsupported:
        return None
    compiler.emit(1, "if pos > end:")
    compiler.emit(2, "raise Unreadable('end')")
    compiler.emit(1, "return result, pos")
    reader: Reader = compiler.function("read")
    return reader


#: (lead id, strong identifiers, member record) of a lead, as `Linker.link_member` takes them
Derived = tuple[str, list[str], dict[str, Any]]


def case_updated_record(case: Case, now: datetime, merged_into: str | None = None) -> dict[str, Any]:
    # v5: what the suggesting stage indexes, and the regions that review it (`case_signals` and `provinces_of`),
    # gathered in the summary's pass over the members (the stream summarises a case for every lead that joins it)
    summary: dict[str, Any]
    if case.totals is not None:  # a big case, summarised from its totals: its weak signals come sorted
        summary, weak, provinces = case.totals.summary(case)
    else:
        signals: set[str] = set()
        places: set[str] = set()
        summary = case_summary(case, signals, places)
        weak, provinces = sorted(signals), sorted(places)
    summary["first_reported_at"] = datetime.fromisoformat(summary["first_reported_at"])
    summary["last_reported_at"] = datetime.fromisoformat(summary["last_reported_at"])
    if first := summary["conduct_from"]:
        summary["conduct_from"] = date.fromisoformat(first)
    if last := summary["conduct_to"]:
        summary["conduct_to"] = date.fromisoformat(last)
    if penalties := summary["prior_penalties"]:
        summary["prior_penalties"] = [{**p, "decided_on": date.fromisoformat(p["decided_on"])} for p in penalties]
    summary["merged_into"] = merged_into
    summary["updated_at"] = now
    summary["link_history"] = [
        {"decision_id": e["decision_id"], "action": e["action"], "agency": e["agency"], "province": e["province"],
         "user": e["user"], "role": e["role"], "reason": e["reason"],
         "decided_at": datetime.fromisoformat(e["decided_at"]), "suggestion_id": e.get("suggestion_id"),
         "merged": e.get("merged"), "leads": e.get("leads", []), "split_from": e.get("from"), "split_to": e.get("to")}
        for e in case.history] if case.history else []
    summary["weak_signals"] = weak
    summary["provinces"] = provinces
    return summary


def link_decided_record(decision: LinkDecision, decided: Decided, now: datetime) -> dict[str, Any]:
    return {"case_a": decided.case_a, "case_b": decided.case_b, "action": decision.action,
            "decision_id": decision.decision_id, "suggestion_id": decision.suggestion_id,
            "regions": list(decided.regions), "decided_at": decision.decided_at, "recorded_at": now}


class LinkingHandler:
    """The linking step. It keeps what it read and wrote of the state in memory between records (`_Mirror`): a host
    must apply each result's state writes before the next record, and a host whose state can change otherwise (an
    aborted transaction, a restore) must give its view a ``generation`` that moves then, as the stage's does.

    ``use_views``: link a `LeadAccepted` v7 by the view intake derived of its lead (``linking``), reading nothing else
    of the record (issue #16). The audit rebuild passes False: every lead is then derived here, and a view that
    differs from what was derived is listed in `view_mismatches`, so that a view which is not its lead's cannot
    change cases unseen."""

    def __init__(self, catalog: SchemaCatalog | None = None, *, use_views: bool = True) -> None:
        self.catalog = catalog or packaged_catalog()
        self.accepted_schema = self.catalog.latest("cn.leadbus.LeadAccepted")
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")
        self.decision_schema = self.catalog.latest("cn.leadbus.LinkDecision")
        self.decided_schema = self.catalog.latest("cn.leadbus.LinkDecided")
        self._mirror = _Mirror()
        self.linking_reader = compile_reader(self.accepted_schema.parsed, _ACCEPTED_UNREAD)
        self.view_reader = view_reader(self.accepted_schema.parsed)
        self.use_views = use_views
        #: (record, lead id, the view's parts that differ from the lead's derivation), with ``use_views`` False
        self.view_mismatches: list[tuple[Record, str, list[str]]] = []

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        if record.topic == LINK_DECISIONS:
            return self.decide(record, state, now)
        result = Result()
        data = record.value or b""
        derived = self.read_view(data) if self.use_views else None
        try:
            if derived is None:
                event, lead = self.read_accepted(data)
        except (DecodeError, ValueError, KeyError, TypeError) as exc:
            # Intake wrote this topic, so this is a bug or tampering: dead-letter it, never drop it. (A record linked
            # by its view is judged by the view alone: the audit rebuild reads every record whole.)
            log.error("undecodable accepted lead at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            result.outputs.append(Output(LEADS_REJECTED, record.key, encode(self.rejected_schema, dead_letter_record(
                reason="LINK_UNDECODABLE", message=str(exc), original=record.value or b"", source=record.source,
                now=now))))
            return result
        store = _Store(state, self._mirror)
        linker = HotLinker(store)
        if derived is None:
            derived = (lead.lead_id, *derive(lead, event["identity"]["registrable_domains"]))
            if not self.use_views:
                self._check_view(record, data, derived)
        outcome = linker.link_member(*derived)
        for absorbed in outcome.absorbed:
            value = encode(self.case_schema, case_updated_record(absorbed, now, merged_into=outcome.case.case_id))
            result.outputs.append(Output(CASES, absorbed.case_id.encode(), value))
        value = encode(self.case_schema, case_updated_record(outcome.case, now))
        result.outputs.append(Output(CASES, outcome.case.case_id.encode(), value))
        result.state.update(store.changed())
        return result

    def read_view(self, data: bytes) -> Derived | None:
        """The lead's derivation as intake wrote it in today's `LeadAccepted` (v7's ``linking``), when it is there and
        made by this code's derivation (`LINK_VIEW_VERSION`); None otherwise — an older writer, a view of another
        version, bytes the view reader will not read —, and the record is then read whole and derived here."""
        reader = self.view_reader
        if reader is None or type(data) is not bytes or data[2:HEADER_SIZE] != self.accepted_schema.fingerprint \
                or data[:2] != MAGIC:
            return None
        try:
            view, _ = reader(data, HEADER_SIZE)
            if view is None or view["version"] != LINK_VIEW_VERSION:
                return None
            member = orjson.loads(view["member"])
        except (ValueError, KeyError, TypeError, IndexError, OverflowError, struct.error):
            return None
        if type(member) is not dict or member.keys() != MEMBER_FIELDS:  # not a member record: derive the lead here
            return None
        return view["lead_id"], view["keys"], member

    def _check_view(self, record: Record, data: bytes, derived: Derived) -> None:
        """Lists the record's view (when it carries one this code would use) if it is not ``derived``, what was
        derived of its lead."""
        view = self.read_view(data)
        if view is not None and view != derived:
            parts = [name for name, a, b in zip(("lead_id", "keys", "member"), view, derived, strict=True) if a != b]
            self.view_mismatches.append((record, derived[0], parts))

    def read_accepted(self, data: bytes) -> tuple[dict[str, Any], CaseLead]:
        """The `LeadAccepted` in ``data`` and its lead. Today's writer is read by a reader that builds only what
        linking reads (`linked_lead`); anything else — an older writer, bytes that reader will not judge, a lead it
        cannot build — is decoded whole as before, whose verdict (a lead or the error dead-lettered) stands."""
        reader = self.linking_reader
        if reader is not None and type(data) is bytes and data[2:HEADER_SIZE] == self.accepted_schema.fingerprint:
            try:
                event, end = reader(data, HEADER_SIZE)
                if end == len(data) and data[:2] == MAGIC:
                    return event, linked_lead(event["lead"])
            except (ValueError, KeyError, TypeError, IndexError, OverflowError, struct.error):
                pass
        _, event = decode(self.catalog, data, self.accepted_schema)
        return event, accepted_lead(event["lead"])

    def decide(self, record: Record, state: StateView, now: datetime) -> Result:
        """An analyst's `LinkDecision` (intake checked who and why): merge, reject or split; a decision that no
        longer fits the cases (a case merged away, leads not in it) is dead-lettered with its reason."""
        try:
            _, event = decode(self.catalog, record.value or b"", self.decision_schema)
            decision = LinkDecision.model_validate(event)
        except (DecodeError, ValueError) as exc:
            return self._refused(record, "LINK_UNDECODABLE", str(exc), now)
        store = _Store(state, self._mirror)
        outcome = apply_decision(Linker(store), decision, reviews=False)
        if outcome.refused is not None:
            return self._refused(record, *outcome.refused, now, agency=decision.analyst.agency)
        result = Result()
        for absorbed, into in outcome.absorbed:
            value = encode(self.case_schema, case_updated_record(absorbed, now, merged_into=into))
            result.outputs.append(Output(CASES, absorbed.case_id.encode(), value))
        for case in outcome.updated:
            value = encode(self.case_schema, case_updated_record(case, now))
            result.outputs.append(Output(CASES, case.case_id.encode(), value))
        result.outputs.extend(self._decided(decision, outcome.decided, now))
        result.state.update(store.changed())
        log.info("link decision", extra={"decision_id": decision.decision_id, "action": decision.action,
                                         "case_a": decision.case_a, "case_b": decision.case_b,
                                         "duplicate": outcome.duplicate})
        return result

    def _decided(self, decision: LinkDecision, decided: Decided | None, now: datetime) -> list[Output]:
        """The pair a confirm or reject closed, onto the review topics that carried its suggestion (issue #19)."""
        if decided is None:
            return []
        value = encode(self.decided_schema, link_decided_record(decision, decided, now))
        key = f"{decided.case_a}|{decided.case_b}".encode()
        return [Output(review_topic(region), key, value) for region in decided.regions]

    def _refused(self, record: Record, reason: str, message: str, now: datetime, agency: str | None = None) -> Result:
        log.warning("link decision refused at %s@%s: %s %s", record.topic, record.offset, reason, message)
        return Result([Output(LEADS_REJECTED, record.key, encode(self.rejected_schema, dead_letter_record(
            reason=reason, message=message, original=record.value or b"", source=record.source, now=now,
            agency=agency)))])
