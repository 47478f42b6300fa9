"""A split after a handover started (issue #19): the handover stays with the case it was opened on and records which
leads left; the new case is assessed on its own facts. Two `DictState`s stand for two partitions (as in
test_handover_merge.py); the broker-level run is `tests/integration/test_handover_split.py`."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from leadbus.processors.core.handover import HandoverState, Phase, note_split, open_handover
from tests.unit.processors.test_handover_merge import T0, WAN, Bus, _comparable, case, decision

SPLIT_AT = T0 + timedelta(hours=2)


def split_entry(lead: str, to: str, decision_id: str | None = None) -> dict[str, Any]:
    return {"decision_id": decision_id or str(uuid.uuid4()), "action": "SPLIT", "agency": "SAMR", "province": "31",
            "user": "li.na", "role": "SUPERVISOR", "reason": "另一家店，仅地址相同", "decided_at": SPLIT_AT,
            "suggestion_id": None, "merged": None, "leads": [lead], "split_from": "CASE-A", "split_to": to}


def kept(version: int, history: list[dict[str, Any]], at: Any = SPLIT_AT) -> dict[str, Any]:
    return {**case("CASE-A", version=version, at=at), "members": ["lead-a1"], "link_history": history}


def new_case(gains: int, entry: dict[str, Any]) -> dict[str, Any]:
    return {**case("CASE-N", gains=gains, at=SPLIT_AT), "members": ["lead-a2"], "link_history": [entry]}


def _run(gains_of_new: int, order: str) -> Bus:
    bus = Bus({"CASE-A": 0, "CASE-N": 1})
    bus.case({**case("CASE-A", gains=12 * WAN), "members": ["lead-a1", "lead-a2"]})
    at = T0 + timedelta(hours=1)
    bus.decide({**decision("CASE-A", "HEAD_APPROVE", at, role="HEAD"),
                "decision_id": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}, at)  # the same input each run
    entry = split_entry("lead-a2", "CASE-N", "2b0e3c1d-5f6a-4b7c-8d9e-0f1a2b3c4d5e")
    events = [kept(2, [entry]), new_case(gains_of_new, entry)]
    for record in events if order == "kept first" else events[::-1]:
        bus.case(record, SPLIT_AT)
    bus.deliver(SPLIT_AT)
    return bus


@pytest.mark.parametrize("order", ["kept first", "new first"])
def test_the_handover_stays_and_records_the_split_and_the_new_case_is_assessed_alone(order: str) -> None:
    bus = _run(6 * WAN, order)
    steps = bus.of("CASE-A")
    assert [(s["event"], s["to_phase"], s["decision"]) for s in steps] == [
        ("OPENED", "ASSESSED", None), ("DECISION", "APPROVED", "HEAD_APPROVE"), ("DECISION", "APPROVED", "SPLIT")]
    approve, split = steps[1], steps[2]
    assert split["due_at"] == approve["due_at"] and split["next_action"] == approve["next_action"], "same duty"
    assert split["at"] == SPLIT_AT and split["actor_role"] == "SUPERVISOR"
    assert "lead-a2" in split["reasons"] and "CASE-N" in split["reasons"] and "li.na" in split["reasons"]
    new = bus.of("CASE-N")  # 6万 of gains alone still meets I2025: its own assessment, its own clock
    assert [(s["event"], s["to_phase"], s["at"]) for s in new] == [("OPENED", "ASSESSED", SPLIT_AT)]
    # the original duty goes on: the agency transfers, under the same case id
    at = T0 + timedelta(hours=3)
    bus.decide(decision("CASE-A", "TRANSFER", at), at)
    assert bus.of("CASE-A")[-1]["to_phase"] == "TRANSFERRED" and not bus.rejected


def test_a_new_case_below_every_threshold_opens_nothing() -> None:
    bus = _run(1 * WAN, "kept first")
    assert bus.of("CASE-N") == []
    assert bus.of("CASE-A")[-1]["decision"] == "SPLIT"


def test_the_split_is_recorded_once_whatever_comes_again() -> None:
    bus = _run(6 * WAN, "kept first")
    before = len(bus.of("CASE-A"))
    entry = split_entry("lead-a2", "CASE-N", "2b0e3c1d-5f6a-4b7c-8d9e-0f1a2b3c4d5e")
    bus.case(kept(2, [entry]), SPLIT_AT)  # a redelivery
    later = SPLIT_AT + timedelta(hours=1)
    bus.case(kept(3, [entry], at=later), later)  # a later version carries the same history
    assert len(bus.of("CASE-A")) == before
    second = split_entry("lead-a3", "CASE-M")
    bus.case(kept(4, [entry, second], at=later), later)  # a second split is recorded
    assert [s["decision"] for s in bus.of("CASE-A")][-2:] == ["SPLIT", "SPLIT"]
    assert bus.of("CASE-A")[-1]["decision_id"] == second["decision_id"]


def test_a_replay_gives_the_same_steps() -> None:
    first, again = _run(6 * WAN, "kept first"), _run(6 * WAN, "kept first")
    assert _comparable(first.steps) == _comparable(again.steps)


def test_note_split_keeps_phase_and_deadline_and_reads_old_states() -> None:
    state, _ = open_handover("CASE-A", "SAMR", "31", T0, "I2025 Art.x")
    doc = state.to_json()
    doc.pop("splits")  # a state stored before splits were recorded
    old = HandoverState.from_json(doc)
    new, steps = note_split(old, split_entry("lead-a2", "CASE-N"))
    assert new.phase == Phase.ASSESSED and new.deadline == old.deadline and len(steps) == 1
    assert HandoverState.from_json(new.to_json()) == new
