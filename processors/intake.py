"""The intake stage: every `leadbus.intake.<agency>` topic → `leadbus.leads.accepted` / `.rejected`.

Two halves in one exactly-once stage, like a Kafka Streams topology with a repartition topic:

1. records of the intake topics are examined (decode, validate, normalise) where they land;
   rejections and handover decisions go straight out, an examined lead goes to
   `leadbus.internal.intake-by-lead` keyed by its *normalised* lead id;
2. records of that topic meet the dedupe memory of their partition, so every copy of one lead —
   keyless, under a wrong key, an upper-case id, from another agency's topic, after the intake
   topics gained partitions — is judged in one place: emitted once, dropped, or refused.

Signed events (DESIGN §7) have their signature checked in the first half, against the publisher key
registry (`KeyFeed` on `leadbus.publishers`), and take one more hop before the second: whatever
their examination decided (an examined lead, a decision, a rejection of their content) travels to
`leadbus.internal.intake-by-lead` keyed by the event's *sequence lane* — (publisher, intake topic,
partition) — wrapped in a `leadbus-intake-phase: sequence` record. There the lane's memory (in the
same state store, hence the same changelog and transaction) judges the number: the next one or one
after a gap goes on to where it was headed (a gap becomes a `SEQUENCE_GAP` warning with its range),
a replayed or late one is dead-lettered. A lane is one intake partition, whose order Kafka keeps and
the first half preserves (it writes one lane's records to one partition, in order).

Thin edge around the pure core (`leadbus.processors.core.intake`): it moves bytes, keeps the
dedupe memory in the stage's state store, counts metrics and logs rejections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaException

from leadbus.avro import SchemaCatalog, decode, encode, packaged_catalog
from leadbus.avro.codec import encode_mixed
from leadbus.processors import metrics
from leadbus.processors.core import provenance
from leadbus.processors.core.event_kinds import KINDS as EVENT_KINDS
from leadbus.processors.core.intake import (
    Acceptance,
    DecisionAcceptance,
    EventAcceptance,
    Examined,
    Outcome,
    Rejection,
    Seen,
    Source,
    accepted_record,
    agency_of_topic,
    conflict_message,
    examine,
    examined_fields,
    judge,
    rejected_record,
    seen_bytes,
)
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.publisher_keys import KeyFeed
from leadbus.signing import ALL_SEAL_HEADERS, KeyRegistry, Seal
from leadbus.topics import (
    BLACKLIST_DECISIONS,
    HANDOVER_DECISIONS,
    INTAKE_BY_LEAD,
    INTAKE_CHANGELOG,
    INTAKE_PATTERN,
    LEADS_ACCEPTED,
    LEADS_REJECTED,
    LINK_DECISIONS,
)

log = logging.getLogger("leadbus.processors.intake")

CHANGELOG = INTAKE_CHANGELOG
TOPICS = [INTAKE_PATTERN, INTAKE_BY_LEAD]

PHASE = "leadbus-intake-phase"
SEQUENCE_PHASE = b"sequence"
# Headers of a sequence-phase record: where its payload goes next, and where the event came from.
_NEXT_TOPIC, _NEXT_KEY, _SOURCE = "leadbus-next-topic", "leadbus-next-key", "leadbus-source"
# decisions keep their seal downstream
_DECISION_TOPICS = frozenset({HANDOVER_DECISIONS, BLACKLIST_DECISIONS, LINK_DECISIONS})
_UNKNOWN_YET = frozenset({"UNKNOWN_KEY", "KEY_NOT_YET_VALID"})
_LEAD_MODEL = frozenset({"cn.leadbus.CaseLead"})  # written from the model's attributes: no dump per event


class IntakeHandler:
    def __init__(self, catalog: SchemaCatalog | None = None, keys: KeyFeed | KeyRegistry | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.accepted_schema = self.catalog.latest("cn.leadbus.LeadAccepted")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")
        self.feed = keys if isinstance(keys, KeyFeed) else None
        self._registry = keys if isinstance(keys, KeyRegistry) else KeyRegistry()
        # id(record) → (that record, what its batch's chains vouch for): see `prepare`
        self._vouched: dict[int, tuple[Record, provenance.Vouched]] = {}

    @property
    def registry(self) -> KeyRegistry:
        return self.feed.registry if self.feed is not None else self._registry

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        if record.topic == INTAKE_BY_LEAD:
            if record.header(PHASE) == SEQUENCE_PHASE:
                return self.sequence(record, state, now)
            return self.judge(record, state, now)
        return self.examine(record, now)

    def prepare(self, records: Sequence[Record]) -> None:
        """Before a batch's records are handled (the stage calls this per transaction): the signatures of signed
        events chained in their lane (seal v2) are checked one per run (`provenance.vouched_by_chains`) instead of
        one per event. Every event is still judged alone in `examine`, with the same outcome: this only spares
        Ed25519 checks that a later verified signature of its chain makes redundant. Never raises: whatever goes
        wrong here leaves every event to be verified alone."""
        self._vouched = {}
        signed = [r for r in records if r.headers and r.topic != INTAKE_BY_LEAD]
        if len(signed) < 2 or (self.feed is not None and not self.feed.ready) or not len(self.registry):
            return  # nothing to chain, or no key known: every seal is judged alone (as unknown, with no key)
        try:
            found = provenance.vouched_by_chains(signed, self.registry)
        except Exception:  # never a reason to refuse: the events are verified alone
            log.exception("chained seals of a batch not checked; verifying its events one by one")
            return
        self._vouched = {id(signed[i]): (signed[i], vouched) for i, vouched in found.items()}

    # -- first half: where the record landed ---------------------------------------------------

    def _keys_current(self) -> None:
        """Before the first event is judged, know every key registered so far; then take what arrives."""
        if self.feed is None:
            return
        if not self.feed.ready:
            self.feed.catch_up()  # raises when the registry cannot be read: no event is judged without it
        self.feed.poll()

    def _examine(self, record: Record, source: Source, now: datetime) -> Outcome:
        vouched = None
        if self._vouched:
            prepared = self._vouched.pop(id(record), None)
            if prepared is not None and prepared[0] is record:  # this very record (its id held alive in the map)
                vouched = prepared[1]
        outcome = examine(record.value, source, self.catalog, now, size=record.size, headers=record.headers,
                          keys=self.registry, vouched=vouched)
        if self.feed is not None and isinstance(outcome, Rejection) and outcome.reason in _UNKNOWN_YET:
            # A key registered a moment ago may not have reached us: read the registry to its end, judge again.
            try:
                self.feed.catch_up(timeout=5.0)
            except (TimeoutError, KafkaException) as exc:
                log.warning("publisher key registry not read to its end (%s); judging with what is known", exc)
                return outcome
            outcome = examine(record.value, source, self.catalog, now, size=record.size,
                              headers=record.headers, keys=self.registry, vouched=vouched)
        return outcome

    def examine(self, record: Record, now: datetime) -> Result:
        source = record.source
        self._keys_current()
        try:
            outcome = self._examine(record, source, now)
        except Exception as exc:
            log.exception("intake core failed on %s", source)
            outcome = Rejection("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}", record.value or b"", source)
        seal = outcome.seal
        if type(outcome) is Acceptance and seal is None:  # the usual event: an unsigned lead, nothing to count yet
            return Result([self._examined(outcome, now)])
        counted: list[Callable[[], object]] = []
        if isinstance(outcome, DecisionAcceptance):
            # Handover decisions go on, keyed by case, to the handover stage that judges them; a signed one
            # keeps its seal and origin in headers so that it can be re-verified there.
            headers = [] if seal is None else [*seal.headers(), (_SOURCE, _source_text(source).encode())]
            out = Output(outcome.topic, outcome.case_id.encode(), outcome.original, headers)
            if seal is None:
                counted.append(metrics.INTAKE_ACCEPTED.labels(agency_of_topic(source.topic) or "?").inc)
        elif isinstance(outcome, EventAcceptance):
            # Courier replies, consumer warnings, operation decisions: on to their topic, a signed one with its seal.
            headers = [] if seal is None else [*seal.headers(), (_SOURCE, _source_text(source).encode())]
            out = Output(outcome.topic, outcome.key.encode(), outcome.original, headers)
            if seal is None:
                counted.append(metrics.INTAKE_ACCEPTED.labels(agency_of_topic(source.topic) or "?").inc)
        elif isinstance(outcome, Rejection):
            out = self._rejected(outcome, now, counted if seal is None else None)
        else:
            out = self._examined(outcome, now)
        if seal is None:
            return Result([out], counted=counted)
        return Result([_to_lane(seal, source, out)])

    def _examined(self, acceptance: Acceptance, now: datetime) -> Output:
        value = encode_mixed(self.accepted_schema, accepted_record(acceptance, now, lead_as_model=True), _LEAD_MODEL)
        headers = Examined.headers_of(acceptance)
        return Output(INTAKE_BY_LEAD, headers[0][1], value, headers)  # keyed by the lead id, its first header

    # -- second half: one place per lead id ----------------------------------------------------

    def judge(self, record: Record, state: StateView, now: datetime) -> Result:
        # the headers' fields read as a tuple, no Examined or Seen built per lead (issue #16)
        examined = examined_fields(record.headers)
        if examined is None:  # only intake writes this topic: a bug or tampering, never dropped silently
            raise ValueError(f"a record on {INTAKE_BY_LEAD} lacks its examined-lead headers")
        lead_id, revision, digest, agency = examined
        key = lead_id.encode()
        seen = Seen.from_bytes(state.get(key))
        verdict = judge(seen, revision, digest)
        if verdict == "emit":
            return Result([Output(LEADS_ACCEPTED, key, record.value or b"")], {key: seen_bytes(revision, digest)},
                          [_counter(_ACCEPTED_BY, metrics.INTAKE_ACCEPTED, agency).inc])
        if verdict == "drop":
            return Result(counted=[_counter(_DUPLICATES_BY, metrics.INTAKE_DUPLICATES, agency).inc])
        assert seen is not None
        _, accepted = decode(self.catalog, record.value or b"", self.accepted_schema)
        where = accepted["source"]
        rejection = Rejection(verdict, conflict_message(verdict, lead_id, revision, seen),
                              bytes(accepted.get("original") or b""),
                              Source(where["topic"], where["partition"], where["offset"]),
                              field="revision", lead_id=lead_id, agency=agency)
        result = Result()
        result.outputs.append(self._rejected(rejection, now, result.counted))
        return result

    # -- signed events: the sequence number, in the lane's one place ------------------------------

    def sequence(self, record: Record, state: StateView, now: datetime) -> Result:
        seal = Seal.from_headers(record.headers)
        next_topic, next_key, where = (record.header(h) for h in (_NEXT_TOPIC, _NEXT_KEY, _SOURCE))
        if seal is None or next_topic is None or where is None:  # only intake writes this topic
            raise ValueError(f"a sequence record on {INTAKE_BY_LEAD} lacks its seal or routing headers")
        source = _parse_source(where.decode())
        key = record.key or b""
        verdict = provenance.check_sequence(provenance.Lane.from_bytes(state.get(key)), seal.sequence)
        topic = next_topic.decode()
        value = record.value or b""
        forward = [(k, v) for k, v in record.headers if k not in (PHASE, _NEXT_TOPIC, _NEXT_KEY) and v is not None]
        if topic not in _SEALED_TOPICS:
            forward = [(k, v) for k, v in forward if k != _SOURCE and k not in _SEAL_NAMES]
        result = Result()
        result.state[key] = verdict.lane.to_bytes()
        agency = agency_of_topic(source.topic)
        if not verdict.accepted:
            message = provenance.sequence_message(verdict, seal, source.topic)
            original, lead_id = self._original(topic, value)
            rejection = Rejection(verdict.status, message, original, source, field="headers.leadbus-seq",
                                  lead_id=lead_id, agency=agency)
            result.outputs.append(self._rejected(rejection, now, result.counted))
            return result
        if verdict.status == "GAP":
            message = provenance.sequence_message(verdict, seal, source.topic)
            result.counted.append(metrics.INTAKE_WARNINGS.labels("SEQUENCE_GAP").inc)
            log.warning("sequence gap", extra={"publisher": seal.publisher, "topic": source.topic,
                                                "partition": seal.partition, "gap": verdict.gap})
            if topic == INTAKE_BY_LEAD:
                _, accepted = decode(self.catalog, value, self.accepted_schema)
                accepted["warnings"] = [*accepted["warnings"], {"code": "SEQUENCE_GAP", "field": "headers.leadbus-seq",
                                                                "message": message}]
                value = encode(self.accepted_schema, accepted)
            else:
                assert verdict.gap is not None
                forward.append(("leadbus-sequence-gap", f"{verdict.gap[0]}-{verdict.gap[1]}".encode()))
        if topic == LEADS_REJECTED:
            _, letter = decode(self.catalog, value, self.rejected_schema)
            result.counted.append(
                metrics.INTAKE_REJECTED.labels(letter["reason"], letter.get("publisher_agency") or "?").inc)
        elif topic in _SEALED_TOPICS:
            result.counted.append(metrics.INTAKE_ACCEPTED.labels(agency or "?").inc)
        result.outputs.append(Output(topic, next_key, value, forward))
        return result

    def _original(self, topic: str, value: bytes) -> tuple[bytes, str | None]:
        """The event as published, out of what its examination produced."""
        if topic == INTAKE_BY_LEAD:
            _, accepted = decode(self.catalog, value, self.accepted_schema)
            return bytes(accepted["original"]), str(accepted["lead"]["lead_id"])
        if topic == LEADS_REJECTED:
            _, letter = decode(self.catalog, value, self.rejected_schema)
            return bytes(letter["original"]), letter.get("lead_id")
        return value, None

    def _rejected(self, rejection: Rejection, now: datetime, counted: list[Callable[[], object]] | None) -> Output:
        """The dead letter; its count goes into ``counted`` (None: counted where it is finally emitted, after its
        sequence check)."""
        source = rejection.source
        key = (rejection.lead_id or f"{source.topic}:{source.partition}:{source.offset}").encode()
        if counted is None:
            return Output(LEADS_REJECTED, key[:1024], encode(self.rejected_schema, rejected_record(rejection, now)))
        counted.append(metrics.INTAKE_REJECTED.labels(rejection.reason, rejection.agency or "?").inc)
        log.info(
            "rejected",
            extra={"reason": rejection.reason, "field": rejection.field, "lead_id": rejection.lead_id,
                   "topic": source.topic, "partition": source.partition, "offset": source.offset},
        )
        return Output(LEADS_REJECTED, key[:1024], encode(self.rejected_schema, rejected_record(rejection, now)))


_SEAL_NAMES = frozenset(ALL_SEAL_HEADERS)
# The judge's counters per publisher agency, looked up once (`labels()` takes a lock and builds a key per call);
# agencies are few, and the memo stops growing past a bound whatever the headers say.
_ACCEPTED_BY: dict[str, Any] = {}
_DUPLICATES_BY: dict[str, Any] = {}


def _counter(memo: dict[str, Any], family: Any, agency: str) -> Any:
    child = memo.get(agency)
    if child is None:
        child = family.labels(agency)
        if len(memo) < 256:
            memo[agency] = child
    return child

# Decisions and agency events keep their seal and origin in headers: whoever reads them can re-verify.
_SEALED_TOPICS = frozenset({*_DECISION_TOPICS, *(kind.topic for kind in EVENT_KINDS.values())})


def _source_text(source: Source) -> str:
    return f"{source.partition}:{source.offset}:{source.topic}"


def _parse_source(text: str) -> Source:
    partition, offset, topic = text.split(":", 2)
    return Source(topic, int(partition), int(offset))


def _to_lane(seal: Seal, source: Source, out: Output) -> Output:
    """Wrap what the examination decided in a record for the sequence check in the lane's place."""
    headers = [(PHASE, SEQUENCE_PHASE), (_NEXT_TOPIC, out.topic.encode()), (_SOURCE, _source_text(source).encode()),
               *seal.headers()]
    if out.key is not None:
        headers.append((_NEXT_KEY, out.key))
    headers += [(k, v) for k, v in out.headers if k not in _SEAL_NAMES and k != _SOURCE]
    return Output(INTAKE_BY_LEAD, provenance.lane_key(seal, source.topic), out.value, headers)


__all__ = ["CHANGELOG", "INTAKE_PATTERN", "TOPICS", "IntakeHandler"]
