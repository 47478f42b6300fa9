"""The handover stage: `leadbus.cases` + `leadbus.handover.decisions` → `leadbus.handover` (HandoverStep).

Its state is one `HandoverState` per case, kept with the case's partition (both inputs are
keyed by case id and have the same partition count), plus an index of due deadlines
(`d:<due ms>:<case id>`) that the periodic tick scans up to `now`. Breaches are written in the
same transaction as the state that marks them, so each appears exactly once, also across
restarts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.deadlines import DayCounting
from leadbus.processors.core.handover import (
    Decision,
    HandoverState,
    Kind,
    Refusal,
    Step,
    apply,
    open_handover,
    scan,
    transferring_agency,
)
from leadbus.processors.core.records import Output, RangeView, Record, Result, StateView
from leadbus.processors.core.thresholds import assess_case, should_transfer
from leadbus.topics import CASES, HANDOVER, LEADS_REJECTED

log = logging.getLogger("leadbus.processors.handover")

CHANGELOG = "leadbus.state.handover"
ARTICLE_149_COVERS = frozenset({"ART_141", "ART_142", "ART_142_1", "ART_143", "ART_144", "ART_145", "ART_146",
                                "ART_147", "ART_148"})


def _state_key(case_id: str) -> bytes:
    return f"h:{case_id}".encode()


def _due_key(due: str, case_id: str) -> bytes:
    millis = int(datetime.fromisoformat(due).timestamp() * 1000)
    return f"d:{millis:015d}:{case_id}".encode()


class HandoverHandler:
    def __init__(self, catalog: SchemaCatalog | None = None, counting: DayCounting | None = None,
                 clock_label: Callable[[], str] | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.counting = counting
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.decision_schema = self.catalog.latest("cn.leadbus.HandoverDecision")
        self.step_schema = self.catalog.latest("cn.leadbus.HandoverStep")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")
        self._reported_actions: set[str] = set()

    # -- records --------------------------------------------------------------------------

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        try:
            if record.topic == CASES:
                return self._on_case(decode(self.catalog, record.value or b"", self.case_schema)[1], state, now)
            return self._on_decision(record, state, now)
        except (DecodeError, ValueError, KeyError) as exc:
            log.error("undecodable record at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return Result([self._rejected(record, "HANDOVER_UNDECODABLE", str(exc), now)])

    def _on_case(self, case: dict[str, Any], state: StateView, now: datetime) -> Result:
        case_id = case["case_id"]
        if case["merged_into"] or state.get(_state_key(case_id)) is not None:
            return Result()
        conduct: date = case["first_reported_at"].date()
        violations = list(case["violations"])
        if any(v in ARTICLE_149_COVERS for v in violations):
            # Criminal Law Art.149: goods offences of 141–148 that fall short are still Art.140 at 5万 sales.
            violations.append("ART_140")
        assessments = assess_case(violations, case["facts"], conduct)
        if not should_transfer(assessments):
            return Result()
        transferring = transferring_agency(case["reporters"])
        if transferring is None:
            return Result()  # only police or procuratorate know it: nothing to hand over
        text = "; ".join(a.explanation for a in assessments if a.status in ("MET", "CONDUCT"))
        if any(a.uncertain for a in assessments if a.status in ("MET", "CONDUCT")):
            text += " [uncertain: the applicable table rows are marked U; verify against the official text]"
        handover, steps = open_handover(case_id, *transferring, at=case["updated_at"], assessment=text,
                                        counting=self.counting)
        return self._record(None, handover, steps, now)

    def _on_decision(self, record: Record, state: StateView, now: datetime) -> Result:
        _, event = decode(self.catalog, record.value or b"", self.decision_schema)
        raw = state.get(_state_key(event["case_id"]))
        if raw is None:
            return Result([self._rejected(record, "HANDOVER_NOT_OPEN",
                                          f"case {event['case_id']} has no handover under way", now)])
        current = HandoverState.from_json(json.loads(raw))
        actor = event["actor"]
        decision = Decision(event["decision_id"], event["case_id"], Kind(event["kind"]), actor["agency"],
                            actor["province"], actor["role"], event["decided_at"], event["reasons"])
        outcome = apply(current, decision, self.counting)
        if isinstance(outcome, Refusal):
            return Result([self._rejected(record, outcome.reason, outcome.message, now)])
        new, steps = outcome
        return self._record(current, new, steps, now)

    # -- time -----------------------------------------------------------------------------

    def tick(self, state: RangeView, now: datetime) -> Result:
        result = Result()
        stop = f"d:{int(now.timestamp() * 1000):015d};".encode()
        for key, _ in state.range(b"d:", stop):
            case_id = key.decode().split(":", 2)[2]
            raw = state.get(_state_key(case_id))
            if raw is None:
                continue
            current = HandoverState.from_json(json.loads(raw))
            new, steps = scan(current, now)
            partial = self._record(current, new, steps, now)
            result.outputs += partial.outputs
            result.state.update(partial.state)
        return result

    def overdue(self, views: Sequence[RangeView]) -> tuple[dict[str, int], int]:
        """Duties past due and not yet done, by the action awaited; and the handovers still awaiting something."""
        overdue: dict[str, int] = {}
        waiting = 0
        for view in views:
            for _, raw in view.range(b"h:", b"h;"):
                deadline = json.loads(raw).get("deadline")
                if not deadline:
                    continue
                waiting += 1
                if deadline.get("breached") and deadline.get("duty"):
                    overdue[deadline["action"]] = overdue.get(deadline["action"], 0) + 1
        return overdue, waiting

    def report(self, views: Sequence[RangeView]) -> None:
        """Set the overdue-duty gauges (called by the stage every few ticks, over the partitions it owns)."""
        from leadbus.processors import metrics

        overdue, waiting = self.overdue(views)
        for action in set(self._reported_actions) | set(overdue):
            metrics.HANDOVER_OVERDUE.labels(action).set(overdue.get(action, 0))
        self._reported_actions = set(overdue) | set(self._reported_actions)
        metrics.HANDOVER_OPEN.set(waiting)

    # -- helpers --------------------------------------------------------------------------

    def _record(self, old: HandoverState | None, new: HandoverState, steps: list[Step], now: datetime) -> Result:
        result = Result()
        if old is not None and old.deadline is not None and not old.deadline.breached:
            result.state[_due_key(old.deadline.due_at, old.case_id)] = None
        if new.deadline is not None and not new.deadline.breached:
            result.state[_due_key(new.deadline.due_at, new.case_id)] = b"1"
        result.state[_state_key(new.case_id)] = json.dumps(new.to_json(), ensure_ascii=False).encode()
        for step in steps:
            record = {**step.__dict__, "recorded_at": now}
            result.outputs.append(Output(HANDOVER, new.case_id.encode(), encode(self.step_schema, record)))
        return result

    def _rejected(self, record: Record, reason: str, message: str, now: datetime) -> Output:
        return Output(LEADS_REJECTED, record.key, encode(self.rejected_schema, dead_letter_record(
            reason=reason, message=message, original=record.value or b"", source=record.source, now=now)))
