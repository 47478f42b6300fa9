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
from datetime import datetime
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
    absorb,
    apply,
    open_handover,
    scan,
    take_over,
    transferring_agency,
)
from leadbus.processors.core.records import Output, RangeView, Record, Result, StateView
from leadbus.processors.core.transfer import assess_transfer
from leadbus.topics import CASES, HANDOVER, HANDOVER_CHANGELOG, LEADS_REJECTED

log = logging.getLogger("leadbus.processors.handover")

CHANGELOG = HANDOVER_CHANGELOG


def _state_key(case_id: str) -> bytes:
    return f"h:{case_id}".encode()


def _moved_key(case_id: str) -> bytes:
    """Marks a case merged into another: its handover now lives in the survivor's state (the value)."""
    return f"m:{case_id}".encode()


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
        if case["merged_into"]:
            return Result()
        raw = state.get(_state_key(case_id))
        merged = self._absorbed(case, state)
        if raw is not None or merged:
            return self._merge(case, raw, merged, state, now)
        opening = assess_transfer(case, now)
        if opening is None:
            return Result()
        transferring = transferring_agency(case["reporters"])
        if transferring is None:
            return Result()  # only police or procuratorate know it: nothing to hand over
        handover, steps = open_handover(case_id, *transferring, at=case["updated_at"], assessment=opening.assessment,
                                        counting=self.counting, economic=opening.economic)
        return self._record(None, handover, steps, now)

    def _on_decision(self, record: Record, state: StateView, now: datetime) -> Result:
        _, event = decode(self.catalog, record.value or b"", self.decision_schema)
        moved = state.get(_moved_key(event["case_id"]))  # a decision about a merged case goes to its survivor
        raw = state.get(_state_key(moved.decode() if moved else event["case_id"]))
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

    def _absorbed(self, case: dict[str, Any], state: StateView) -> list[HandoverState]:
        """Handovers of cases merged into this one that this worker holds and has not yet carried over."""
        found = []
        for other in case.get("merged_from") or []:
            raw = state.get(_state_key(other))
            if raw is not None and state.get(_moved_key(other)) is None:
                found.append(HandoverState.from_json(json.loads(raw)))
        return found

    def _merge(self, case: dict[str, Any], raw: bytes | None, merged: list[HandoverState], state: StateView,
               now: datetime) -> Result:
        """A merge keeps every open duty: the survivor carries the absorbed machines (core `absorb`). Without a
        handover of its own, the survivor continues the first absorbed one (the same transfer goes on)."""
        if not merged:
            return Result()
        at = case["updated_at"]
        current = HandoverState.from_json(json.loads(raw)) if raw is not None else None
        if current is not None:
            new, steps = current, list[Step]()
        else:
            first, merged = merged[0], merged[1:]
            new, steps = take_over(case["case_id"], first, at)
        for other in merged:
            new, more = absorb(new, other, at)
            steps = [*steps, *more]
        result = self._record(current, new, steps, now)
        for other in merged if current is not None else [first, *merged]:
            result.state[_moved_key(other.case_id)] = case["case_id"].encode()
            result.state[_state_key(other.case_id)] = None
            for d in other.open_deadlines():
                result.state[_due_key(d.due_at, other.case_id)] = None
        return result

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
        for d in old.open_deadlines() if old is not None else []:
            result.state[_due_key(d.due_at, old.case_id)] = None  # type: ignore[union-attr]
        for d in new.open_deadlines():  # its own and those of the cases merged into it
            result.state[_due_key(d.due_at, new.case_id)] = b"1"
        result.state[_state_key(new.case_id)] = json.dumps(new.to_json(), ensure_ascii=False).encode()
        for step in steps:
            record = {**step.__dict__, "recorded_at": now}
            result.outputs.append(Output(HANDOVER, new.case_id.encode(), encode(self.step_schema, record)))
        return result

    def _rejected(self, record: Record, reason: str, message: str, now: datetime) -> Output:
        return Output(LEADS_REJECTED, record.key, encode(self.rejected_schema, dead_letter_record(
            reason=reason, message=message, original=record.value or b"", source=record.source, now=now)))
