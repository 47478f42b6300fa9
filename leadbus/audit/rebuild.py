"""`leadbus audit rebuild`: re-derive what the bus decided from what it received, with the same code, and diff.

The stages' step handlers take a neutral `Record` and a state view (`processors/core/records.py`), so
they run here over an in-memory state exactly as in the stream:

1. **Intake.** Every lead and decision on an intake topic is accounted for: accepted (the accepted
   lead's `source` holds exactly its `original`), rejected (a dead letter names its coordinates), an
   exact redelivery of an accepted revision (dropped), or — decisions — forwarded as published to
   `leadbus.handover.decisions`.
2. **Cases.** `LinkingHandler` over `leadbus.leads.accepted` in its one partition's order, and analysts'
   `LinkDecision`s (`leadbus.links.decisions`, one partition) in theirs, each applied where the stage applied
   it among the leads (`_LinkDecisions`); each `CaseUpdated` it derives must be on `leadbus.cases` as
   recorded, equal in every field but `updated_at` (the stage's clock, taken as recorded), and nothing else
   may be there; a decision linking refused must be refused again, for the same reason.
3. **Handover.** `HandoverHandler` over the derived cases and `leadbus.handover.decisions`, at the
   recorded times: a decision is applied when the stage recorded applying it (its step's
   `recorded_at`), a tick happens at each time the stage's scan recorded a breach or a closed window,
   and a last tick at the last time the stage is known to have reached (minus `tick_grace`) finds
   breaches the record lacks. Thresholds are evaluated as of the conduct date by the same code.
   Steps must equal `leadbus.handover` in every field but `recorded_at`; refusals must be dead letters.
4. **Routes.** `RoutingHandler` over the derived cases; every jurisdiction, liaison, region, channel,
   takedown and withdrawal record must be as recorded (but for `published_at` / `withdrawn_at`), per
   topic and case, in order.

Every difference names its case id (or lead id) and where the recorded record is. `--from/--to` bound
the differences reported by the time of the recorded (or derived) event; derivation always starts at
the beginning of the inputs, since state does.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadbus.audit.verification import (
    ACCEPTED,
    BULLETIN,
    CASE_LEAD,
    CASE_UPDATED,
    DECISION,
    REJECTED,
    STEP,
    WITHDRAWN,
    ReplayRecord,
    is_intake,
    is_routed,
)
from leadbus.avro import DecodeError, SchemaCatalog, decode, packaged_catalog
from leadbus.processors.core.deadlines import DayCounting
from leadbus.processors.core.records import Record
from leadbus.processors.handover import HandoverHandler
from leadbus.processors.linking import LinkingHandler
from leadbus.processors.routing import RoutingHandler
from leadbus.topics import (
    BLACKLIST_DECISIONS,
    CASES,
    HANDOVER,
    HANDOVER_CARRYOVER,
    HANDOVER_DECISIONS,
    LEADS_ACCEPTED,
    LEADS_REJECTED,
    LINK_DECISIONS,
)

BLACKLIST_DECISION = "cn.leadbus.BlacklistDecision"  # issue #18: intake forwards these to BLACKLIST_DECISIONS
LINK_DECISION = "cn.leadbus.LinkDecision"  # issue #19: intake forwards these to LINK_DECISIONS, linking applies them
INPUT_TOPICS = ["^leadbus\\.intake\\..*", LEADS_ACCEPTED, LEADS_REJECTED, CASES, HANDOVER_DECISIONS, HANDOVER,
                BLACKLIST_DECISIONS, "^" + LINK_DECISIONS.replace(".", "\\.") + "$",  # absent on a bus before #19
                "^leadbus\\.(jurisdiction|liaison|region|channel)\\..*", "leadbus.takedown.notices",
                "leadbus.withdrawals"]
CLOCK_FIELDS = frozenset({"updated_at", "recorded_at", "published_at", "withdrawn_at"})
#: The fields CaseUpdated v5 added for the suggesting stage.
SUGGESTING_FIELDS = frozenset({"weak_signals", "provinces"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Difference:
    kind: str  # intake | case | handover | route
    case_id: str  # the case id (or, for intake, the lead id)
    message: str
    where: str = ""

    def line(self) -> str:
        return f"{self.kind:8} {self.case_id}  {self.message}" + (f"  [{self.where}]" if self.where else "")


@dataclass
class RebuildReport:
    leads: int = 0
    intake_records: int = 0
    cases: int = 0
    steps: int = 0
    routed: int = 0
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> int:
        return 1 if self.differences else 0


class DictState:
    """A stage's state view over a dict: get, range, and the writes of a result. ``generation`` moves when a result
    is dropped unapplied (`discard`): the linking handler keeps what it read and wrote in memory while it stays."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._keys: list[bytes] | None = None
        self.generation = 0

    def discard(self) -> None:
        """A result handled on this state will not be applied."""
        self.generation += 1

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        if self._keys is None:
            self._keys = sorted(self.data)
        keys = self._keys
        lo, hi = bisect.bisect_left(keys, start), bisect.bisect_left(keys, stop)
        return [(k, self.data[k]) for k in keys[lo:hi]]

    def apply(self, writes: Mapping[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                if self.data.pop(key, None) is not None and self._keys is not None:
                    self._keys = None
            else:
                if key not in self.data:
                    self._keys = None
                self.data[key] = value


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // _MS


_MS = datetime.fromtimestamp(0.001, UTC) - _EPOCH


def _dt(ms: int) -> datetime:
    return _EPOCH + _MS * ms


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def compare(derived: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """Fields that differ (the stages' clock fields aside), as `field: derived X, recorded Y`."""
    out = []
    for name in sorted(set(derived) | set(recorded)):
        if name in CLOCK_FIELDS:
            continue
        a, b = derived.get(name), recorded.get(name)
        if a != b:
            out.append(f"{name}: derived {_short(a)}, recorded {_short(b)}")
    return out


def _record_of(r: ReplayRecord) -> Record:
    return Record(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp_ms)


class Rebuild:
    def __init__(self, records: Iterable[ReplayRecord], *, catalog: SchemaCatalog | None = None,
                 counting: DayCounting | None = None, start: datetime | None = None, end: datetime | None = None,
                 tick_grace: float = 3.0, ends: Mapping[tuple[str, int], int] | None = None) -> None:
        self.records = records
        self.ends = dict(ends or {})  # (topic, partition) → one past the last offset read, when the source knows
        self.catalog = catalog or packaged_catalog()
        self.counting = counting
        self.start_ms = _ms(start) if start else None
        self.end_ms = _ms(end) if end else None
        self.tick_grace_ms = int(tick_grace * 1000)
        self.report = RebuildReport()

    def _in_period(self, ms: int | None) -> bool:
        if ms is None:
            return True
        return (self.start_ms is None or ms >= self.start_ms) and (self.end_ms is None or ms < self.end_ms)

    def _diff(self, kind: str, case_id: str, message: str, where: str = "", at_ms: int | None = None) -> None:
        if self._in_period(at_ms):
            self.report.differences.append(Difference(kind, case_id, message, where))

    def _events(self, records: list[ReplayRecord], name: str, kind: str,
                topic: str) -> Iterator[tuple[ReplayRecord, Any]]:
        """The records of `topic` that hold a `name` event, with it; any other is a difference of `kind`."""
        for r in records:
            if isinstance(r.event, dict) and r.schema is not None and r.schema.name == name:
                yield r, r.event
            else:
                self._diff(kind, "?", f"{topic} holds a record that is no {name.rsplit('.', 1)[-1]}", r.where(),
                           r.timestamp_ms)

    def _keyed(self, r: ReplayRecord, event: Mapping[str, Any], kind: str) -> None:
        """The stages key every case event, step and routed record by its case id (consumers, compaction and the
        co-partitioning of cases and steps go by it): one recorded under another key is not what the stage wrote,
        however equal its event."""
        case_id = str(event["case_id"])
        if r.key != case_id.encode():
            shown = "no key" if r.key is None else f"key {r.key[:64]!r}"
            self._diff(kind, case_id, f"{r.topic} holds it under {shown}, not its case id", r.where(), r.timestamp_ms)

    # -- reading --------------------------------------------------------------------------------------------

    def _load(self) -> None:
        self.intake: list[ReplayRecord] = []
        self.accepted: list[ReplayRecord] = []
        self.rejected: list[ReplayRecord] = []
        self.cases: list[ReplayRecord] = []
        self.decisions: list[ReplayRecord] = []
        self.steps: list[ReplayRecord] = []
        self.routed: list[ReplayRecord] = []
        self.blacklist_decisions: list[ReplayRecord] = []
        self.link_decisions: list[ReplayRecord] = []
        by_topic = {LEADS_ACCEPTED: self.accepted, LEADS_REJECTED: self.rejected, CASES: self.cases,
                    HANDOVER_DECISIONS: self.decisions, HANDOVER: self.steps,
                    BLACKLIST_DECISIONS: self.blacklist_decisions, LINK_DECISIONS: self.link_decisions}
        for r in self.records:
            if is_intake(r.topic):
                self.intake.append(r)
            elif r.topic in by_topic:
                by_topic[r.topic].append(r)
            elif is_routed(r.topic):
                self.routed.append(r)
        self.accepted.sort(key=lambda r: (r.partition, r.offset))
        self.link_decisions.sort(key=lambda r: (r.partition, r.offset))

    def run(self) -> RebuildReport:
        began = time.monotonic()
        self._load()
        self.report.leads = len(self.accepted)
        self.report.intake_records = len(self.intake)
        self._check_intake()
        derived_cases = self._derive_cases()
        self._derive_handover(derived_cases)
        self._derive_routes(derived_cases)
        self.report.seconds = time.monotonic() - began
        return self.report

    # -- 1. intake ------------------------------------------------------------------------------------------

    def _check_intake(self) -> None:
        by_coords = {(r.topic, r.partition, r.offset): r for r in self.intake}
        # Intake topics are kept forever and read from their start: every offset up to the end read must be there.
        spans: dict[tuple[str, int], tuple[int, int]] = {
            key: (0, end - 1) for key, end in self.ends.items() if is_intake(key[0])}
        for r in self.intake:
            hi = spans.get((r.topic, r.partition), (0, r.offset))[1]
            spans[(r.topic, r.partition)] = (0, max(hi, r.offset))
        accounted: set[tuple[str, int, int]] = set()
        originals: dict[tuple[str, int], bytes] = {}  # (lead id, revision) → the accepted original
        for r, event in self._events(self.accepted, ACCEPTED, "intake", LEADS_ACCEPTED):
            lead = event["lead"]
            src = event["source"]
            coords = (src["topic"], src["partition"], src["offset"])
            accounted.add(coords)
            original = bytes(event.get("original") or b"")
            originals[(str(lead["lead_id"]).lower(), int(lead["revision"]))] = original
            span = spans.get(coords[:2])
            if span is None or not span[0] <= coords[2] <= span[1]:
                continue
            there = by_coords.get(coords)
            if there is None:
                self._diff("intake", lead["lead_id"], f"accepted from {coords[0]}[{coords[1]}]@{coords[2]}, which "
                                                      "holds no record", r.where(), r.timestamp_ms)
            elif there.value != original:
                self._diff("intake", lead["lead_id"], f"accepted from {coords[0]}[{coords[1]}]@{coords[2]}, which "
                                                      "holds other bytes than the accepted `original`", r.where(),
                           r.timestamp_ms)
        for r in self.rejected:
            event = r.event
            if isinstance(event, dict) and r.schema is not None and r.schema.name == REJECTED:
                src = event["source"]
                coords = (src["topic"], src["partition"], src["offset"])
                accounted.add(coords)
                span = spans.get(coords[:2])
                if span is None or not span[0] <= coords[2] <= span[1]:
                    continue
                there = by_coords.get(coords)
                who = str(event.get("lead_id") or "?")
                if there is None:
                    self._diff("intake", who, f"rejected ({event['reason']}) from {coords[0]}[{coords[1]}]@{coords[2]}"
                                              ", which holds no record", r.where(), r.timestamp_ms)
                elif event.get("original_sha256") and hashlib.sha256(there.value or b"").hexdigest() != \
                        event["original_sha256"]:
                    self._diff("intake", who, f"rejected ({event['reason']}) from {coords[0]}[{coords[1]}]@{coords[2]}"
                                              ", which holds other bytes than the dead letter's original", r.where(),
                               r.timestamp_ms)
        forwarded = {hashlib.sha256(r.value or b"").digest() for r in self.decisions}
        blacklisted = {hashlib.sha256(r.value or b"").digest() for r in self.blacklist_decisions}
        linked = {hashlib.sha256(r.value or b"").digest() for r in self.link_decisions}
        for r in self.intake:
            coords = (r.topic, r.partition, r.offset)
            if coords in accounted or r.value is None:
                continue
            schema = r.schema
            if schema is not None and schema.name == DECISION:
                if hashlib.sha256(r.value).digest() not in forwarded:
                    event = r.event
                    case_id = event["case_id"] if isinstance(event, dict) else "?"
                    self._diff("intake", case_id, "a handover decision neither forwarded to "
                                                  f"{HANDOVER_DECISIONS} nor rejected", r.where(), r.timestamp_ms)
                continue
            if schema is not None and schema.name == BLACKLIST_DECISION:
                if hashlib.sha256(r.value).digest() not in blacklisted:
                    self._diff("intake", "?", "a blacklist decision neither forwarded to "
                                              f"{BLACKLIST_DECISIONS} nor rejected", r.where(), r.timestamp_ms)
                continue
            if schema is not None and schema.name == LINK_DECISION:
                if hashlib.sha256(r.value).digest() not in linked:
                    event = r.event
                    case_id = str(event["case_a"]) if isinstance(event, dict) else "?"
                    self._diff("intake", case_id, "a link decision neither forwarded to "
                                                  f"{LINK_DECISIONS} nor rejected", r.where(), r.timestamp_ms)
                continue
            event = r.event if schema is not None and schema.name == CASE_LEAD else None
            if not isinstance(event, dict):
                self._diff("intake", "?", "a record intake neither accepted nor rejected", r.where(), r.timestamp_ms)
                continue
            ident = (str(event["lead_id"]).lower(), int(event["revision"]))
            accepted_original = originals.get(ident)
            if accepted_original is not None and (
                    accepted_original == r.value or self._same_lead(accepted_original, r.value)):
                continue  # an exact redelivery, which intake drops
            self._diff("intake", str(event["lead_id"]), f"revision {ident[1]} was neither accepted nor rejected",
                       r.where(), r.timestamp_ms)

    def _same_lead(self, a: bytes, b: bytes) -> bool:
        from leadbus.models import CaseLead
        from leadbus.processors.core.normalize import normalise

        try:
            leads = [normalise(CaseLead.model_validate(decode(self.catalog, v)[1])).lead.to_json() for v in (a, b)]
        except (DecodeError, ValueError):
            return False
        return leads[0] == leads[1]

    # -- 2. cases -------------------------------------------------------------------------------------------

    def _derive_cases(self) -> list[tuple[dict[str, Any], int]]:
        """Linking over the accepted leads and the analysts' link decisions, each where the stage applied it; returns
        every derived CaseUpdated (updated_at as recorded) and its time."""
        recorded: dict[tuple[str, int, bool], list[tuple[ReplayRecord, dict[str, Any]]]] = defaultdict(list)
        for r, event in self._events(self.cases, CASE_UPDATED, "case", CASES):
            self._keyed(r, event, "case")
            recorded[(event["case_id"], int(event["version"]), event["merged_into"] is not None)].append((r, event))
        # Every lead derived from its lead, never from the view intake wrote beside it (`LeadAccepted` v7's
        # ``linking``, which the stage links by): a view that is not its lead's is a difference here, and the cases
        # the stage made of it differ from those derived.
        handler = LinkingHandler(self.catalog, use_views=False)
        state = DictState()
        self._derived: list[tuple[dict[str, Any], int]] = []
        self._used: set[tuple[str, int, bool]] = set()
        self._versions: dict[str, int] = {}  # case id → the last version derived; -1 once merged away
        pending = self._pending_link_decisions(recorded)
        for r in self.accepted:
            event = r.event
            now = event["accepted_at"] if isinstance(event, dict) else _dt(r.timestamp_ms)
            record = _record_of(r)
            result = handler.handle(record, state, now)
            cases = self._cases_out(result)
            while pending and pending[0].due(self._versions, self._lead_time(cases, recorded, r),
                                             {c["case_id"] for c in cases}):
                state.discard()  # the lead's result is dropped: it meets the decision's outcome below
                self._apply_link_decision(pending.pop(0), handler, state, recorded)
                result = handler.handle(record, state, now)  # the decision came first: the lead meets its outcome
                cases = self._cases_out(result)
            state.apply(result.state)
            for lead_id, parts in dict.fromkeys((m[1], tuple(m[2])) for m in handler.view_mismatches):  # once a lead
                self._diff("intake", lead_id, f"the linking view of the accepted lead differs from its lead in "
                                              f"{', '.join(parts)}: linking links by the view", r.where(),
                           r.timestamp_ms)
            handler.view_mismatches.clear()
            for case in cases:
                self._take(case, r.timestamp_ms, recorded,
                           f"lead {case['members'][-1] if case['members'] else '?'}")
        for decision in pending:  # decisions after the last lead (or whose cases the leads never reached)
            self._apply_link_decision(decision, handler, state, recorded)
        derived = self._derived
        self._check_case_order(derived, recorded)
        for key, found in recorded.items():
            if key not in self._used:
                for rec, _ in found:
                    self._diff("case", key[0], f"version {key[1]} is recorded but not derived from the accepted leads "
                                               "and link decisions", rec.where(), rec.timestamp_ms)
        self.report.cases = len(derived)
        return derived

    def _cases_out(self, result: Any) -> list[dict[str, Any]]:
        return [decode(self.catalog, out.value)[1] for out in result.outputs if out.topic == CASES]

    @staticmethod
    def _lead_time(cases: list[dict[str, Any]], recorded: Mapping[tuple[str, int, bool], list[Any]],
                   r: ReplayRecord) -> int:
        """When linking took the lead in: the time of its recorded case events (else the lead's acceptance, which
        was earlier)."""
        times = [found[0][0].timestamp_ms for c in cases
                 if (found := recorded.get((c["case_id"], int(c["version"]), c["merged_into"] is not None)))]
        return min(times) if times else r.timestamp_ms

    def _take(self, case: dict[str, Any], at_ms: int,
              recorded: Mapping[tuple[str, int, bool], list[tuple[ReplayRecord, dict[str, Any]]]], origin: str) -> None:
        """A derived CaseUpdated against the record."""
        key = (case["case_id"], int(case["version"]), case["merged_into"] is not None)
        self._versions[key[0]] = -1 if key[2] else key[1]
        found = recorded.get(key)
        if not found:
            self._diff("case", case["case_id"], f"version {key[1]}{' (merged)' if key[2] else ''} derived "
                                                f"from {origin} is missing from {CASES}", at_ms=at_ms)
        else:
            rec, recorded_case = found[0]
            at_ms = rec.timestamp_ms
            case["updated_at"] = recorded_case["updated_at"]
            # A case recorded before CaseUpdated v5 has no weak signals or provinces (what the suggesting stage
            # indexes, issue #16): the derived ones are compared only with a record that carries them.
            derived = case if "weak_signals" in recorded_case else {
                k: v for k, v in case.items() if k not in SUGGESTING_FIELDS}
            for text in compare(derived, recorded_case):
                self._diff("case", case["case_id"], f"version {key[1]}: {text}", rec.where(), at_ms)
            if len(found) > 1:
                for extra, _ in found[1:]:
                    self._diff("case", case["case_id"], f"version {key[1]} recorded again", extra.where(),
                               extra.timestamp_ms)
            self._used.add(key)
        self._derived.append((case, at_ms))

    def _pending_link_decisions(
            self, recorded: Mapping[tuple[str, int, bool], list[tuple[ReplayRecord, dict[str, Any]]]],
    ) -> list[_LinkDecision]:
        """The analysts' decisions in their topic's order, each with when and on what state the stage applied it."""
        refused: dict[tuple[int, int], tuple[str, int]] = {}
        for r in self.rejected:
            e = r.event
            if isinstance(e, dict) and r.schema is not None and r.schema.name == REJECTED \
                    and e["source"]["topic"] == LINK_DECISIONS:
                refused[(e["source"]["partition"], e["source"]["offset"])] = (str(e["reason"]), r.timestamp_ms)
        # decision id → (case id → the first recorded version whose history holds it, and that record's time)
        outputs: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        closing: dict[str, int] = {}  # an absorbed case → the version its closing (merged) event repeats
        for (case_id, version, merged), found in recorded.items():
            rec, event = found[0]
            if merged:
                closing.setdefault(case_id, version)
                continue
            for entry in event.get("link_history") or ():
                mine = outputs[str(entry["decision_id"])]
                if case_id not in mine or version < mine[case_id][0]:
                    mine[case_id] = (version, rec.timestamp_ms)
        out = []
        for r in self.link_decisions:
            event = r.event
            if not isinstance(event, dict) or r.schema is None or r.schema.name != LINK_DECISION:
                self._diff("case", "?", f"{LINK_DECISIONS} holds a record that is no LinkDecision", r.where(),
                           r.timestamp_ms)
                continue
            decision_id, action = str(event["decision_id"]), str(event["action"])
            case_a, case_b = str(event["case_a"]), event.get("case_b")
            refusal = refused.get((r.partition, r.offset))
            if refusal is not None:
                out.append(_LinkDecision(r, decision_id, refusal[1], None, refusal[0]))
                continue
            seen = outputs.get(decision_id, {})
            pre: dict[str, int | None] | None = None
            at = r.timestamp_ms  # on its topic before linking read it: the earliest it can have been applied
            if action == "CONFIRM" and case_b is not None and seen.keys() & {case_a, case_b}:
                survivor = next(c for c in (case_a, str(case_b)) if c in seen)
                absorbed = str(case_b) if survivor == case_a else case_a
                pre = {survivor: seen[survivor][0] - 1, absorbed: closing.get(absorbed)}
                at = seen[survivor][1]
            elif action == "SPLIT" and case_a in seen:
                pre = {case_a: seen[case_a][0] - 1}
                pre.update({c: 0 for c in seen if c != case_a and seen[c][0] == 1})  # the new case: not there yet
                at = min(t for _, t in seen.values())
            elif action == "REJECT" and case_b is not None:
                pre = {case_a: None, str(case_b): None}  # both exist (nothing recorded says when: no new version)
            out.append(_LinkDecision(r, decision_id, at, pre, None))
        return out

    def _apply_link_decision(self, decision: _LinkDecision, handler: LinkingHandler, state: DictState,
                             recorded: Mapping[tuple[str, int, bool], list[tuple[ReplayRecord, dict[str, Any]]]],
                             ) -> None:
        r = decision.record
        result = handler.handle(_record_of(r), state, _dt(decision.at))
        state.apply(result.state)
        event = r.event
        case_a = str(event["case_a"]) if isinstance(event, dict) else "?"
        refused_as = None
        for out in result.outputs:
            if out.topic == CASES:
                self._take(decode(self.catalog, out.value)[1], decision.at, recorded,
                           f"link decision {decision.decision_id}")
            elif out.topic == LEADS_REJECTED:
                refused_as = str(decode(self.catalog, out.value)[1]["reason"])
        if refused_as != decision.refused:
            derived = "applied it" if refused_as is None else f"refuses it as {refused_as}"
            was = "applied" if decision.refused is None else f"refused as {decision.refused}"
            self._diff("case", case_a, f"link decision {decision.decision_id}: the rebuild {derived}, linking {was}",
                       r.where(), decision.at)

    def _check_case_order(self, derived: list[tuple[dict[str, Any], int]],
                          recorded: Mapping[tuple[str, int, bool], list[tuple[ReplayRecord, dict[str, Any]]]]) -> None:
        """Each case's versions must stand on `leadbus.cases` in the order linking derived them."""
        last: dict[str, tuple[int, int, ReplayRecord]] = {}  # case id → (partition, offset, record) of the last
        for case, _ in derived:
            key = (case["case_id"], int(case["version"]), case["merged_into"] is not None)
            found = recorded.get(key)
            if not found:
                continue
            rec = found[0][0]
            before = last.get(key[0])
            if before is not None and before[0] == rec.partition and rec.offset < before[1]:
                self._diff("case", key[0], f"version {key[1]} stands before {before[2].where()}, which linking "
                                           "derived earlier: records were moved", rec.where(), rec.timestamp_ms)
            last[key[0]] = (rec.partition, rec.offset, rec)

    # -- 3. handover ----------------------------------------------------------------------------------------

    def _derive_handover(self, cases: list[tuple[dict[str, Any], int]]) -> None:
        recorded: dict[tuple[str, int], list[tuple[ReplayRecord, dict[str, Any]]]] = defaultdict(list)
        applied_at: dict[str, int] = {}
        ticks: set[int] = set()
        last_seen = 0
        for r, step in self._events(self.steps, STEP, "handover", HANDOVER):
            self._keyed(r, step, "handover")
            recorded[(step["case_id"], int(step["seq"]))].append((r, step))
            recorded_ms = _ms(step["recorded_at"])
            last_seen = max(last_seen, recorded_ms)
            if step["decision_id"]:
                applied_at.setdefault(step["decision_id"], recorded_ms)
            scan_step = step["event"] == "WINDOW_CLOSED" or (
                step["event"] == "DEADLINE_BREACHED" and (step["due_at"] is None or step["at"] != step["due_at"]))
            if scan_step:
                ticks.add(_ms(step["at"]))
        if last_seen:
            ticks.add(last_seen - self.tick_grace_ms)
        # Everything the stage acted on, at the time it acted: (time, order, kind, payload).
        items: list[tuple[int, int, str, Any]] = []
        for i, (case, at_ms) in enumerate(cases):
            items.append((at_ms, i, "case", case))
        for i, r in enumerate(self.decisions):
            event = r.event
            decision_id = event.get("decision_id") if isinstance(event, dict) else None
            items.append((applied_at.get(str(decision_id), r.timestamp_ms), len(cases) + i, "decision", r))
        for tick in ticks:
            items.append((tick, -1, "tick", None))
        items.sort(key=lambda item: (item[0], item[1]))
        refused = {(e["source"]["partition"], e["source"]["offset"]): e["reason"]
                   for r in self.rejected if isinstance(e := r.event, dict) and r.schema is not None
                   and r.schema.name == REJECTED and e["source"]["topic"] == HANDOVER_DECISIONS}
        handler = HandoverHandler(self.catalog, counting=self.counting)
        state = DictState()
        case_schema = handler.case_schema
        from leadbus.avro import encode

        derived: dict[tuple[str, int], dict[str, Any]] = {}
        for at_ms, _, kind, payload in items:
            now = _dt(at_ms)
            if kind == "tick":
                result = handler.tick(state, now)
                source = None
            elif kind == "case":
                value = encode(case_schema, payload)
                result = handler.handle(Record(CASES, 0, 0, payload["case_id"].encode(), value), state, now)
                source = None
            else:
                source = payload
                result = handler.handle(_record_of(payload), state, now)
            state.apply(result.state)
            outputs = list(result.outputs)
            # The stage's own carryovers (merges across partitions) come back to it: the rebuild holds every
            # partition in one state, and the handler's outcome does not depend on when they arrive.
            while carried := [o for o in outputs if o.topic == HANDOVER_CARRYOVER]:
                outputs = [o for o in outputs if o.topic != HANDOVER_CARRYOVER]
                for out in carried:
                    more = handler.handle(Record(HANDOVER_CARRYOVER, 0, 0, out.key, out.value), state, now)
                    state.apply(more.state)
                    # a forwarded decision refused there is dead-lettered with the carryover as its source
                    outputs += [o for o in more.outputs if o.topic != LEADS_REJECTED]
            for out in outputs:
                if out.topic == HANDOVER:
                    step = decode(self.catalog, out.value)[1]
                    derived[(step["case_id"], int(step["seq"]))] = step
                elif out.topic == LEADS_REJECTED and source is not None:
                    dead = decode(self.catalog, out.value)[1]
                    event = source.event
                    case_id = event.get("case_id", "?") if isinstance(event, dict) else "?"
                    got = refused.pop((source.partition, source.offset), None)
                    if got != dead["reason"]:
                        self._diff("handover", case_id, f"decision refused as {dead['reason']}, recorded "
                                                        f"{'nothing' if got is None else got}", source.where(),
                                   source.timestamp_ms)
        self.report.steps = len(derived)
        for key, step in derived.items():
            found = recorded.get(key)
            at_ms = _ms(step["recorded_at"])
            if not found:
                self._diff("handover", key[0], f"step {key[1]} ({step['event']} {step['to_phase']}, at "
                                               f"{step['at']:%Y-%m-%dT%H:%M:%S}) is missing from {HANDOVER}",
                           at_ms=at_ms)
                continue
            rec, recorded_step = found[0]
            step = self._breach_at_scan(step, recorded_step)
            for text in compare(step, recorded_step):
                self._diff("handover", key[0], f"step {key[1]}: {text}", rec.where(), rec.timestamp_ms)
            for extra, _ in found[1:]:
                self._diff("handover", key[0], f"step {key[1]} recorded again", extra.where(), extra.timestamp_ms)
        for key, found in recorded.items():
            if key not in derived:
                rec, step = found[0]
                raw = state.get(f"h:{key[0]}".encode())
                mine = json.loads(raw) if raw is not None else None
                known = (f"the rebuild's case is in {mine['phase']}, deadline {mine['deadline']}" if mine
                         else "the rebuild opened no handover")
                self._diff("handover", key[0], f"step {key[1]} ({step['event']} at {step['at']:%H:%M:%S.%f}, due "
                                               f"{step['due_at']}) is recorded but not derived; {known}",
                           rec.where(), rec.timestamp_ms)
        for (partition, offset), reason in refused.items():
            self._diff("handover", "?", f"a decision dead-lettered as {reason} was not refused by the rebuild",
                       f"{HANDOVER_DECISIONS}[{partition}]@{offset}")

    def _breach_at_scan(self, step: dict[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
        """A breach is stamped by the scan that found it; the rebuild knows the scans' times only to within the
        tick grace, so a breach found at another scan within that grace is the same breach (its due time and
        everything else must still agree)."""
        if step.get("event") != "DEADLINE_BREACHED" or recorded.get("event") != "DEADLINE_BREACHED":
            return step
        mine, theirs = step.get("at"), recorded.get("at")
        if isinstance(mine, datetime) and isinstance(theirs, datetime) and \
                abs((mine - theirs).total_seconds()) * 1000 <= self.tick_grace_ms:
            return {**step, "at": theirs}
        return step

    # -- 4. routes ------------------------------------------------------------------------------------------

    def _derive_routes(self, cases: list[tuple[dict[str, Any], int]]) -> None:
        from leadbus.avro import encode

        handler = RoutingHandler(self.catalog)
        state = DictState()
        derived: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        # Routing reads the cases and the recorded handover steps (it forwards steps to the regions a case
        # reached): both in the order of their time, a case before a step of the same instant.
        inputs: list[tuple[int, int, str, bytes, bytes]] = [
            (at_ms, 0, CASES, case["case_id"].encode(), encode(handler.case_schema, case)) for case, at_ms in cases]
        inputs += [(r.timestamp_ms, 1, HANDOVER, r.key or b"", r.value or b"") for r in self.steps]
        for at_ms, _, source, source_key, value in sorted(inputs, key=lambda item: (item[0], item[1])):
            result = handler.handle(Record(source, 0, 0, source_key, value), state, _dt(at_ms))
            state.apply(result.state)
            for out in result.outputs:
                event = decode(self.catalog, out.value)[1]
                derived[(out.topic, str(event["case_id"]))].append(event)
        recorded: dict[tuple[str, str], list[tuple[ReplayRecord, dict[str, Any]]]] = defaultdict(list)
        for r in sorted(self.routed, key=lambda r: (r.topic, r.partition, r.offset)):
            event = r.event
            if not isinstance(event, dict) or r.schema is None or r.schema.name not in (
                    CASE_UPDATED, BULLETIN, WITHDRAWN, STEP, COURIER_TRACE):
                self._diff("route", "?", f"{r.topic} holds a record routing does not write", r.where(),
                           r.timestamp_ms)
                continue
            self._keyed(r, event, "route")
            recorded[(r.topic, str(event["case_id"]))].append((r, event))
        self.report.routed = sum(len(v) for v in derived.values())
        for key in sorted(set(derived) | set(recorded)):
            topic, case_id = key
            # Matched by what each record is (type, version, where a withdrawal was from), in order of appearance.
            theirs: dict[tuple[Any, ...], list[tuple[ReplayRecord, dict[str, Any]]]] = defaultdict(list)
            for rec, event in recorded.get(key, []):
                theirs[_route_ident(event)].append((rec, event))
            for mine in derived.get(key, []):
                ident = _route_ident(mine)
                if not theirs.get(ident):
                    self._diff("route", case_id, f"{ident[0]} version {ident[1]} to {topic} is missing")
                    continue
                rec, event = theirs[ident].pop(0)
                for text in compare(mine, event):
                    self._diff("route", case_id, f"{ident[0]} version {ident[1]} on {topic}: {text}", rec.where(),
                               rec.timestamp_ms)
            for ident, left in theirs.items():
                for rec, _ in left:
                    self._diff("route", case_id, f"{ident[0]} version {ident[1]} on {topic} is recorded but not "
                                                 "derived", rec.where(), rec.timestamp_ms)


@dataclass
class _LinkDecision:
    """An analyst's decision on `leadbus.links.decisions` and where linking applied it among the leads.

    Linking reads the leads and the decisions (two topics, one worker) in the order they reach it; the record
    tells that order: a decision that changed cases is applied when the rebuild's cases stand where its recorded
    case events say they stood (`pre`: case id → the version before it, 0 not yet made, None any) and, among the
    leads, before the first whose recorded case events are later than its own — or that would change a case it
    names. A refused decision is placed by its dead letter's time; a reject (no case event) by its own.
    """

    record: ReplayRecord
    decision_id: str
    at: int  # ms
    pre: dict[str, int | None] | None
    refused: str | None  # the reason linking refused it with, as recorded

    def due(self, versions: Mapping[str, int], lead_at: int, lead_cases: set[str]) -> bool:
        if self.pre is not None:
            for case_id, version in self.pre.items():
                now = versions.get(case_id, 0)
                if (now <= 0) if version is None else now != version:
                    return False
        return self.at <= lead_at or (self.pre is not None and bool(lead_cases & self.pre.keys()))


#: What routing sends the postal administration instead of the case (寄递渠道, processors/core/courier.py).
COURIER_TRACE = "cn.leadbus.CourierTraceRequest"


def _route_ident(event: Mapping[str, Any]) -> tuple[Any, ...]:
    if _kind(event) == "HandoverStep":
        return ("HandoverStep", int(event["seq"]), None, None)
    return (_kind(event), int(event["version"]), event.get("topic"), event.get("merged_into"))


def _kind(event: Mapping[str, Any]) -> str:
    if "seq" in event and "to_phase" in event:
        return "HandoverStep"
    if "reason" in event and "channel" in event:
        return "CaseWithdrawn"
    if "region" in event:
        return "RegionalBulletin"
    if "parcels" in event:
        return "CourierTraceRequest"
    return "CaseUpdated"


def rebuild(records: Iterable[ReplayRecord], **options: Any) -> RebuildReport:
    """Re-derive and compare, with the cyclic collector off: the state grows with every lead (cases, links,
    steps, routes), and the collector's full collections walked all of it again and again (about a quarter of
    the rebuild's CPU). Nothing the rebuild makes and drops is cyclic (measured: no cyclic garbage left after a
    rebuild of 3,000 leads); refcounting frees it, and the collector is back after."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return Rebuild(records, **options).run()
    finally:
        if collecting:
            gc.enable()


def report_json(report: RebuildReport) -> dict[str, Any]:
    return {"leads": report.leads, "intake_records": report.intake_records, "cases": report.cases,
            "steps": report.steps, "routed": report.routed, "seconds": report.seconds,
            "differences": [d.__dict__ for d in report.differences]}


__all__ = ["INPUT_TOPICS", "Difference", "RebuildReport", "compare", "rebuild", "report_json"]
