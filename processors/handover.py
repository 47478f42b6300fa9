"""The handover stage: `leadbus.cases` + `leadbus.handover.decisions` → `leadbus.handover` (HandoverStep).

Its state is one `HandoverState` per case, kept with the case's partition (both inputs are
keyed by case id and have the same partition count), plus an index of due deadlines
(`d:<due ms>:<case id>`) that the periodic tick scans up to `now`. Breaches are written in the
same transaction as the state that marks them, so each appears exactly once, also across
restarts.

A split (issue #19): open duties follow the leads (`core.handover.split_handover`: why). The original case's
CaseUpdated carrying a new SPLIT entry is met on its partition, once per decision (marker `s:<decision id>`): its
machine records the split, keeps the duties that stay (or leaves, with a step saying where its duty went; the case is
then assessed again on its remaining facts, its step numbers going on from `q:<case>`), and a `HandoverCarryover`
with ``split`` set, keyed by the new case, carries the duties that followed the leads (or none) to the new case's
partition. The new case's own opening waits for that report (as a survivor's waits for its merged cases'), so the
outcome never depends on which arrives first: a carried duty becomes the new case's; only when none came is the
new case assessed on its own facts.

Merges keep every open duty, wherever the two cases' states live. The absorbed case's `CaseUpdated`
(`merged_into` set) arrives on the absorbed case's partition: the worker holding its handover writes a
`HandoverCarryover` with the whole state to `leadbus.internal.handover-carryover`, keyed by the surviving
case, and in the same transaction drops the state, its deadlines, and leaves a marker `m:<absorbed>` →
survivor. The carryover reaches the survivor's partition (the topic is co-partitioned with `leadbus.cases`),
where the survivor absorbs the machine (or continues it, when it had no handover of its own). A decision
that still names the absorbed case arrives on the absorbed case's partition, finds the marker and is
forwarded the same way, keyed by the survivor; markers are followed along chains of merges. When both
cases share a partition, the survivor's own `CaseUpdated` may absorb the state directly (the marker then
makes the carryover a no-op). Every step is in the stage's exactly-once transactions: the state leaves one
partition in the transaction that writes the carryover, and arrives in the one that consumes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.processors.case_stages import pending_key, rejected, state_key, time_key
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
    split_handover,
    take_over,
    transferring_agency,
)
from leadbus.processors.core.records import Output, RangeView, Record, Result, StateView
from leadbus.processors.core.transfer import assess_transfer
from leadbus.topics import CASES, HANDOVER, HANDOVER_CARRYOVER, HANDOVER_CHANGELOG, HANDOVER_DECISIONS

log = logging.getLogger("leadbus.processors.handover")

CHANGELOG = HANDOVER_CHANGELOG
TOPICS = [CASES, HANDOVER_DECISIONS, HANDOVER_CARRYOVER]
MAX_CHAIN = 64  # merges followed from a marker before a decision is refused (a cycle would be a linking fault)


_state_key = partial(state_key, "h")  # the case's HandoverState
_moved_key = partial(state_key, "m")  # a merged case: its handover lives in the survivor's state (the value)
_reported_key = partial(state_key, "r")  # with the survivor: a merged case's carryover arrived (with a handover?)
_pending_key = pending_key  # a survivor's own opening, waiting for the carryovers of the cases merged into it


_split_key = partial(state_key, "s")  # a split (by decision id) already carried out on the original case's partition
_seq_key = partial(state_key, "q")  # the last step number of a case whose duty left it at a split


def _split_report(decision_id: str) -> str:
    """What a new case's opening waits for, beside merged cases: the report of the split that made it."""
    return f"split:{decision_id}"


_due_key = partial(time_key, "d")  # the index of due deadlines the tick scans: d:<due ms>:<case id>


class HandoverHandler:
    def __init__(self, catalog: SchemaCatalog | None = None, counting: DayCounting | None = None,
                 clock_label: Callable[[], str] | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.counting = counting
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.decision_schema = self.catalog.latest("cn.leadbus.HandoverDecision")
        self.step_schema = self.catalog.latest("cn.leadbus.HandoverStep")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")
        self.carry_schema = self.catalog.latest("cn.leadbus.HandoverCarryover")
        self._reported_actions: set[str] = set()

    # -- records --------------------------------------------------------------------------

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        try:
            if record.topic == CASES:
                return self._on_case(decode(self.catalog, record.value or b"", self.case_schema)[1], state, now)
            if record.topic == HANDOVER_CARRYOVER:
                return self._on_carryover(record, state, now)
            return self._on_decision(record, state, now, None)
        except (DecodeError, ValueError, KeyError) as exc:
            log.error("undecodable record at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return Result([self._rejected(record, "HANDOVER_UNDECODABLE", str(exc), now)])

    def _on_case(self, case: dict[str, Any], state: StateView, now: datetime) -> Result:
        case_id = case["case_id"]
        if case["merged_into"]:
            return self._carry_away(case, state)
        result = self._splits(case, state, now)
        key = _state_key(case_id)
        if (result.state[key] is not None) if key in result.state else (state.get(key) is not None):
            return result  # a handover is under way; merged cases' machines arrive as carryovers
        opening = self._opening(case, now)
        if opening is None:
            if state.get(_pending_key(case_id)) is not None:
                result.state[_pending_key(case_id)] = None
            return result
        # A merge: the absorbed cases' handovers (if any) come as carryovers; a split: the duties that followed the
        # leads (if any) come from the case split. Until every one has reported, this case's own opening waits, so
        # that the outcome never depends on which arrives first: a carried handover continues as this case's; only
        # when none came does the case open its own.
        awaiting = [c for c in case.get("merged_from") or [] if state.get(_reported_key(c)) is None]
        awaiting += [_split_report(e["decision_id"]) for e in case.get("link_history") or ()
                     if e["action"] == "SPLIT" and e.get("split_to") == case_id
                     and state.get(_reported_key(_split_report(e["decision_id"]))) is None]
        last = result.state[_seq_key(case_id)] if _seq_key(case_id) in result.state else state.get(_seq_key(case_id))
        opening["after"] = int(last or b"0")  # its duty left at a split: step numbers go on
        if awaiting:
            result.state[_pending_key(case_id)] = json.dumps({**opening, "awaiting": awaiting}).encode()
            return result
        result.state[_pending_key(case_id)] = None
        return self._open(case_id, opening, now, result)

    def _splits(self, case: dict[str, Any], state: StateView, now: datetime) -> Result:
        """Leads an analyst split off this case (issue #19), each split once: the duties follow their assessed leads
        (`split_handover`); the new case's partition hears, by a carryover keyed by it, which duties came along (or
        that none did)."""
        case_id = case["case_id"]
        result = Result()
        if not any(e["action"] == "SPLIT" and e.get("split_from") == case_id for e in case.get("link_history") or ()):
            return result  # nearly every version: no split to carry out, and no need to parse the machine
        raw = state.get(_state_key(case_id))
        current = HandoverState.from_json(json.loads(raw)) if raw is not None else None
        original = current
        steps: list[Step] = []
        for entry in case.get("link_history") or ():
            if entry["action"] != "SPLIT" or entry.get("split_from") != case_id:
                continue
            decision_id, to = str(entry["decision_id"]), str(entry["split_to"])
            if state.get(_split_key(decision_id)) is not None or _split_key(decision_id) in result.state:
                continue
            result.state[_split_key(decision_id)] = to.encode()
            moved = None
            if current is not None:
                outcome = split_handover(current, entry, case["members"])
                steps += outcome.kept_steps
                if outcome.kept is None:
                    result.state[_seq_key(case_id)] = str(outcome.kept_steps[-1].seq).encode()
                current, moved = outcome.kept, outcome.moved
                for step in outcome.moved_steps:
                    result.outputs.append(self._step_output(step, now))
            result.outputs.append(self._carry(to, case_id, entry["decided_at"], state=moved, split=decision_id))
        if original is None or not steps:
            return result
        if current is None:  # no duty stays: the state and its deadlines go, the steps say where
            recorded = self._record(original, original, steps, now)
            recorded.state[_state_key(case_id)] = None
            for d in original.open_deadlines():
                recorded.state[_due_key(d.due_at, case_id)] = None
        else:
            recorded = self._record(original, current, steps, now)
        recorded.outputs += result.outputs
        recorded.state = {**result.state, **recorded.state}
        return recorded

    def _opening(self, case: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        """The handover this case's own facts call for (R310 Art.3, processors/core/transfer.py), or None."""
        opening = assess_transfer(case, now)
        if opening is None:
            return None
        transferring = transferring_agency(case["reporters"])
        if transferring is None:
            return None  # only police or procuratorate know it: nothing to hand over
        return {"agency": transferring[0], "province": transferring[1], "at": case["updated_at"].isoformat(),
                "assessment": opening.assessment, "economic": opening.economic,
                "assessed": sorted(case["members"])}  # fmt: skip

    def _open(self, case_id: str, opening: dict[str, Any], now: datetime, result: Result) -> Result:
        handover, steps = open_handover(case_id, opening["agency"], opening["province"],
                                        at=datetime.fromisoformat(opening["at"]), assessment=opening["assessment"],
                                        counting=self.counting, economic=opening["economic"],
                                        assessed=opening.get("assessed"), after=opening.get("after", 0))  # fmt: skip
        opened = self._record(None, handover, steps, now)
        opened.state = {**result.state, **opened.state}
        opened.outputs = [*result.outputs, *opened.outputs]
        return opened

    def _on_decision(self, record: Record, state: StateView, now: datetime, survivor: str | None) -> Result:
        """A decision as published, or (`survivor`) forwarded here because it names a case merged into that one."""
        _, event = decode(self.catalog, record.value or b"", self.decision_schema)
        named = event["case_id"]
        holder, followed = self._holder(survivor or named, state)
        here = holder is not None and state.get(_state_key(holder)) is not None
        if holder is not None and followed and (survivor is None or not here):
            # the case was merged: forward, keyed by the case that holds it now (ordered after its carryover)
            return Result([self._carry(holder, named, now, decision=record.value or b"")])
        raw = state.get(_state_key(holder)) if holder is not None else None
        if raw is not None and survivor is not None and named != holder:
            reported = state.get(_reported_key(named))
            if reported is None or not json.loads(reported).get("machine"):
                raw = None  # the merged case brought no handover of its own
        if raw is None:
            return Result([self._rejected(record, "HANDOVER_NOT_OPEN",
                                          f"case {named} has no handover under way", now)])
        current = HandoverState.from_json(json.loads(raw))
        actor = event["actor"]
        decision = Decision(event["decision_id"], event["case_id"], Kind(event["kind"]), actor["agency"],
                            actor["province"], actor["role"], event["decided_at"], event["reasons"])
        outcome = apply(current, decision, self.counting)
        if isinstance(outcome, Refusal):
            return Result([self._rejected(record, outcome.reason, outcome.message, now)])
        new, steps = outcome
        return self._record(current, new, steps, now)

    # -- merges across partitions ---------------------------------------------------------

    def _holder(self, case_id: str, state: StateView) -> tuple[str | None, bool]:
        """The case whose handover carries `case_id`'s, following merge markers held here; and whether any was
        followed. None when the markers loop (never written by a sound linker)."""
        current, followed = case_id, False
        for _ in range(MAX_CHAIN):
            if state.get(_state_key(current)) is not None:
                return current, followed
            moved = state.get(_moved_key(current))
            if moved is None:
                return current, followed
            current, followed = moved.decode(), True
        return None, followed

    def _carry(self, survivor: str, absorbed: str, at: datetime, *, state: HandoverState | None = None,
               decision: bytes | None = None, covers: list[str] | None = None,
               split: str | None = None) -> Output:  # fmt: skip
        record = {"survivor": survivor, "absorbed": absorbed, "carried_at": at,
                  "state": None if state is None else json.dumps(state.to_json(), ensure_ascii=False),
                  "decision": decision, "covers": covers or [], "split": split}  # fmt: skip
        return Output(HANDOVER_CARRYOVER, survivor.encode(), encode(self.carry_schema, record))

    def _carry_away(self, case: dict[str, Any], state: StateView) -> Result:
        """This case was merged into another: its handover (or the news that it has none) leaves for the survivor's
        partition, keyed by the survivor, and a marker sends later decisions naming it after it."""
        case_id, survivor = case["case_id"], case["merged_into"]
        result = Result()
        if state.get(_moved_key(case_id)) is not None:
            return result  # carried already (a redelivered CaseUpdated)
        result.state[_moved_key(case_id)] = survivor.encode()
        result.state[_pending_key(case_id)] = None  # its own opening, if waiting, is the survivor's to decide now
        raw = state.get(_state_key(case_id))
        machine = HandoverState.from_json(json.loads(raw)) if raw is not None else None
        covers = [case_id, *(case.get("merged_from") or [])]
        result.outputs.append(self._carry(survivor, case_id, case["updated_at"], state=machine, covers=covers))
        if machine is not None:
            result.state[_state_key(case_id)] = None
            for d in machine.open_deadlines():
                result.state[_due_key(d.due_at, case_id)] = None
        return result

    def _on_carryover(self, record: Record, state: StateView, now: datetime) -> Result:
        _, event = decode(self.catalog, record.value or b"", self.carry_schema)
        if event["decision"] is not None:
            forwarded = replace(record, value=event["decision"])
            return self._on_decision(forwarded, state, now, event["survivor"])
        other = HandoverState.from_json(json.loads(event["state"])) if event["state"] else None
        if event.get("split"):
            return self._on_split_report(event, other, state, now)
        covers = list(event["covers"])
        holder, _ = self._holder(event["survivor"], state)
        if holder is None:
            log.error("merge markers loop at %s: carryover of %s kept waiting", event["survivor"], event["absorbed"])
            return Result()
        if holder != event["survivor"] and state.get(_state_key(holder)) is None:
            # the survivor was itself merged on: carry on to the case that holds it now
            return Result([self._carry(holder, event["absorbed"], event["carried_at"], state=other, covers=covers)])
        result = Result()
        for c in covers:
            result.state[_reported_key(c)] = json.dumps({"to": holder, "machine": other is not None and
                                                         c in other.case_ids()}).encode()  # fmt: skip
        raw = state.get(_state_key(holder))
        pending_raw = state.get(_pending_key(holder))
        if other is None:  # no absorbed case brought a handover: its own opens once nothing else is awaited
            return self._stop_awaiting(holder, set(covers), raw, pending_raw, now, result)
        current = HandoverState.from_json(json.loads(raw)) if raw is not None else None
        if current is not None and other.case_id in current.case_ids():
            return result  # absorbed already
        at = event["carried_at"]
        new, steps = absorb(current, other, at) if current is not None else take_over(holder, other, at)
        recorded = self._record(current, new, steps, now)
        recorded.state = {**result.state, **recorded.state, _pending_key(holder): None}
        return recorded

    def _stop_awaiting(self, case_id: str, heard: set[str], raw: bytes | None, pending_raw: bytes | None,
                       now: datetime, result: Result) -> Result:
        """Reports ``heard`` brought no duty to the case: it waits no more for them, and opens its own handover
        when it waits for nothing else (a case already holding a handover, or waiting for nothing, is left)."""
        if pending_raw is None or raw is not None:
            return result
        pending = json.loads(pending_raw)
        pending["awaiting"] = [c for c in pending["awaiting"] if c not in heard]
        if pending["awaiting"]:
            result.state[_pending_key(case_id)] = json.dumps(pending).encode()
            return result
        result.state[_pending_key(case_id)] = None
        return self._open(case_id, pending, now, result)

    def _on_split_report(self, event: dict[str, Any], moved: HandoverState | None, state: StateView,
                         now: datetime) -> Result:
        """The case a split came from reported, on the new case's partition, the duties that followed the leads (its
        steps are written already) or that none did: the new case continues them, or opens its own if it waits."""
        new_case, report = event["survivor"], _split_report(event["split"])
        if state.get(_reported_key(report)) is not None:
            return Result()  # heard already
        result = Result()
        result.state[_reported_key(report)] = json.dumps({"to": new_case, "machine": moved is not None}).encode()
        holder, _ = self._holder(new_case, state)
        if moved is not None and holder is not None and holder != new_case:
            # the new case was merged on before its report came: the duties go on to the case that holds it now
            result.outputs.append(self._carry(holder, new_case, event["carried_at"], state=moved, covers=[new_case]))
            return result
        pending_raw = state.get(_pending_key(new_case))
        raw = state.get(_state_key(new_case))
        if moved is None:
            return self._stop_awaiting(new_case, {report}, raw, pending_raw, now, result)
        current = HandoverState.from_json(json.loads(raw)) if raw is not None else None
        if current is None:
            recorded = self._record(None, moved, [], now)
        else:  # (not met: a new case waits for its report before it opens anything)
            new, steps = absorb(current, moved, event["carried_at"])
            recorded = self._record(current, new, steps, now)
        recorded.state = {**result.state, **recorded.state, _pending_key(new_case): None}
        return recorded

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
        result.outputs += [self._step_output(step, now) for step in steps]
        return result

    def _step_output(self, step: Step, now: datetime) -> Output:
        record = {**step.__dict__, "recorded_at": now}
        return Output(HANDOVER, step.case_id.encode(), encode(self.step_schema, record))

    def _rejected(self, record: Record, reason: str, message: str, now: datetime) -> Output:
        return rejected(self.rejected_schema, record, reason, message, now)
