"""A split after a handover started (issue #19): open duties follow the leads they were assessed on.

Each handover records the leads whose facts opened it. On a split: none of them leaves → the duty stays with the
original case, which records the split; all leave → the duty (phase, clock, deadlines) moves to the new case and the
original, without a duty, is assessed again on its remaining facts; some leave and some stay → both cases carry the
duty with the same clock. Two `DictState`s stand for two partitions (as in test_handover_merge.py); the broker-level
run is `tests/integration/test_handover_split.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from leadbus.processors.core.handover import (
    HandoverState,
    Phase,
    absorb,
    note_split,
    open_handover,
    split_handover,
    split_route,
)
from tests.unit.processors.test_handover_merge import T0, WAN, Bus, _comparable, case, decision

SPLIT_AT = T0 + timedelta(hours=2)
SPLIT_ID = "2b0e3c1d-5f6a-4b7c-8d9e-0f1a2b3c4d5e"


def split_entry(leads: list[str], to: str = "CASE-N", decision_id: str | None = None) -> dict[str, Any]:
    return {"decision_id": decision_id or str(uuid.uuid4()), "action": "SPLIT", "agency": "SAMR", "province": "31",
            "user": "li.na", "role": "SUPERVISOR", "reason": "另一家店，仅地址相同", "decided_at": SPLIT_AT,
            "suggestion_id": None, "merged": None, "leads": leads, "split_from": "CASE-A", "split_to": to}


def of_case(case_id: str, members: list[str], gains: int, version: int, history: list[dict[str, Any]],
            at: Any = T0) -> dict[str, Any]:  # fmt: skip
    return {**case(case_id, gains=gains, version=version, at=at), "members": members, "link_history": history}


def _run(*, opened_on: list[str], later: list[str], moving: list[str], gains_kept: int, gains_new: int,
         order: str = "kept first") -> Bus:
    """CASE-A opens a handover on the leads ``opened_on`` (12万), the head approves, leads ``later`` join, then
    ``moving`` leave for CASE-N."""
    bus = Bus({"CASE-A": 0, "CASE-N": 1})
    bus.case(of_case("CASE-A", opened_on, 12 * WAN, 1, []))
    at = T0 + timedelta(hours=1)
    bus.decide({**decision("CASE-A", "HEAD_APPROVE", at, role="HEAD"),
                "decision_id": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"}, at)  # the same input each run
    version = 1
    if later:
        version = 2
        bus.case(of_case("CASE-A", opened_on + later, 12 * WAN, version, [], at=at), at)
    entry = split_entry(moving, decision_id=SPLIT_ID)
    remaining = [lead for lead in opened_on + later if lead not in moving]
    events = [of_case("CASE-A", remaining, gains_kept, version + 1, [entry], at=SPLIT_AT),
              of_case("CASE-N", moving, gains_new, 1, [entry], at=SPLIT_AT)]
    for record in events if order == "kept first" else events[::-1]:
        bus.case(record, SPLIT_AT)
    bus.deliver(SPLIT_AT)
    return bus


def _kinds(steps: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(s["event"], s["to_phase"], s["decision"]) for s in steps]


# -- the rule, pure ----------------------------------------------------------------------------------------------


def test_split_route_follows_the_assessed_leads() -> None:
    assert split_route(["a1"], ["a2"], ["a1", "a2"]) == "STAY"
    assert split_route(["a1"], ["a1"], ["a1", "a2"]) == "MOVE"
    assert split_route(["a1", "a2"], ["a2"], ["a1", "a2"]) == "BOTH"
    assert split_route(None, ["a2"], ["a1", "a2"]) == "BOTH"  # unknown: every lead then in the case was assessed
    assert split_route([], ["a2"], ["a1", "a2"]) == "STAY"


# -- none of the assessed leads leaves: the duty stays ---------------------------------------------------------------


@pytest.mark.parametrize("order", ["kept first", "new first"])
def test_a_duty_whose_leads_all_stay_stays_and_the_new_case_is_assessed_alone(order: str) -> None:
    bus = _run(opened_on=["lead-a1"], later=["lead-a2"], moving=["lead-a2"], gains_kept=6 * WAN, gains_new=6 * WAN,
               order=order)
    steps = bus.of("CASE-A")
    assert _kinds(steps) == [("OPENED", "ASSESSED", None), ("DECISION", "APPROVED", "HEAD_APPROVE"),
                             ("DECISION", "APPROVED", "SPLIT")]
    approve, split = steps[1], steps[2]
    assert split["due_at"] == approve["due_at"] and split["next_action"] == approve["next_action"], "same duty"
    assert split["at"] == SPLIT_AT and split["actor_role"] == "SUPERVISOR" and split["decision_id"] == SPLIT_ID
    assert "lead-a2" in split["reasons"] and "CASE-N" in split["reasons"] and "li.na" in split["reasons"]
    new = bus.of("CASE-N")  # 6万 of gains alone still meets I2025: its own assessment, its own clock
    assert [(s["event"], s["to_phase"], s["at"]) for s in new] == [("OPENED", "ASSESSED", SPLIT_AT)]
    at = T0 + timedelta(hours=3)
    bus.decide(decision("CASE-A", "TRANSFER", at), at)  # the original duty goes on under the same case id
    assert bus.of("CASE-A")[-1]["to_phase"] == "TRANSFERRED" and not bus.rejected


def test_a_new_case_below_every_threshold_opens_nothing() -> None:
    bus = _run(opened_on=["lead-a1"], later=["lead-a2"], moving=["lead-a2"], gains_kept=6 * WAN, gains_new=WAN)
    assert bus.of("CASE-N") == []
    assert bus.of("CASE-A")[-1]["decision"] == "SPLIT"


# -- all of them leave: the duty moves ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["kept first", "new first"])
def test_a_duty_whose_leads_all_leave_moves_with_its_clock(order: str) -> None:
    bus = _run(opened_on=["lead-a1"], later=["lead-a2"], moving=["lead-a1"], gains_kept=WAN, gains_new=12 * WAN,
               order=order)
    a, n = bus.of("CASE-A"), bus.of("CASE-N")
    approve = a[1]
    assert _kinds(a) == [("OPENED", "ASSESSED", None), ("DECISION", "APPROVED", "HEAD_APPROVE"),
                         ("DECISION", "APPROVED", "SPLIT")]
    assert "moved to case CASE-N" in a[-1]["reasons"] and a[-1]["due_at"] is None  # no duty left here
    # the new case continues the duty: same phase, same deadline; its first step names the case and decision
    assert _kinds(n) == [("DECISION", "APPROVED", "SPLIT")] and n[0]["seq"] == 1
    assert (n[0]["due_at"], n[0]["next_action"]) == (approve["due_at"], approve["next_action"])
    assert "[split from case CASE-A, decision " + SPLIT_ID + "]" in n[0]["reasons"]
    assert bus.states[0].range(b"h:", b"h;") == [] and bus.states[0].range(b"d:", b"d;") == []
    assert [k for k, _ in bus.states[1].range(b"h:", b"h;")] == [b"h:CASE-N"]
    # decisions now name the new case; the old one has no handover
    at = T0 + timedelta(hours=3)
    bus.decide(decision("CASE-N", "TRANSFER", at), at)
    assert bus.of("CASE-N")[-1]["to_phase"] == "TRANSFERRED"
    bus.decide(decision("CASE-A", "TRANSFER", at), at)
    assert bus.rejected == ["HANDOVER_NOT_OPEN"]
    # time: the moved duty breaches on the new case, once
    bus.tick(T0 + timedelta(days=30))
    assert [s["case_id"] for s in bus.steps if s["event"] == "DEADLINE_BREACHED"] == ["CASE-N"]


def test_the_original_case_without_its_duty_is_assessed_again_and_numbers_go_on() -> None:
    bus = _run(opened_on=["lead-a1"], later=["lead-a2"], moving=["lead-a1"], gains_kept=6 * WAN, gains_new=12 * WAN)
    a = bus.of("CASE-A")
    assert _kinds(a)[-2:] == [("DECISION", "APPROVED", "SPLIT"), ("OPENED", "ASSESSED", None)]
    assert [s["seq"] for s in a] == [1, 2, 3, 4] and a[-1]["at"] == SPLIT_AT
    later = SPLIT_AT + timedelta(hours=1)
    bus.case(of_case("CASE-A", ["lead-a2"], 6 * WAN, 4, [split_entry(["lead-a1"], decision_id=SPLIT_ID)],
                     at=later), later)  # a later version carries the same history: nothing new
    assert len(bus.of("CASE-A")) == 4


# -- some leave and some stay: both cases carry it -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["kept first", "new first"])
def test_a_duty_whose_leads_part_goes_on_in_both_cases_with_one_clock(order: str) -> None:
    bus = _run(opened_on=["lead-a1", "lead-a2"], later=[], moving=["lead-a2"], gains_kept=6 * WAN,
               gains_new=6 * WAN, order=order)
    a, n = bus.of("CASE-A"), bus.of("CASE-N")
    approve = a[1]
    assert _kinds(a) == [("OPENED", "ASSESSED", None), ("DECISION", "APPROVED", "HEAD_APPROVE"),
                         ("DECISION", "APPROVED", "SPLIT")]
    assert _kinds(n) == [("DECISION", "APPROVED", "SPLIT")]  # no opening of its own: it carries the duty
    assert a[-1]["due_at"] == n[0]["due_at"] == approve["due_at"]
    assert "continues here and in case CASE-N" in a[-1]["reasons"] and "(and with case CASE-A)" in n[0]["reasons"]
    at = T0 + timedelta(hours=3)
    for c in ("CASE-A", "CASE-N"):
        bus.decide(decision(c, "TRANSFER", at), at)
        assert bus.of(c)[-1]["to_phase"] == "TRANSFERRED"
    assert not bus.rejected


def test_a_state_stored_before_assessed_leads_were_recorded_counts_every_lead() -> None:
    state, _ = open_handover("CASE-A", "SAMR", "31", T0, "I2025 Art.x")  # no assessed leads
    doc = state.to_json()
    doc.pop("splits")
    doc.pop("assessed")  # a state stored before either was recorded
    old = HandoverState.from_json(doc)
    assert old.assessed is None
    outcome = split_handover(old, split_entry(["lead-a2"]), ["lead-a1"])
    assert outcome.routes == {"CASE-A": "BOTH"}
    assert outcome.kept is not None and outcome.moved is not None
    assert outcome.kept.deadline == outcome.moved.deadline == old.deadline
    assert (outcome.kept.assessed, outcome.moved.assessed) == (("lead-a1",), ("lead-a2",))  # each its own now
    assert HandoverState.from_json(outcome.kept.to_json()) == outcome.kept


def test_carried_in_duties_follow_their_own_assessed_leads() -> None:
    """A (opened on a1) absorbed B (opened on b1) and C (opened on c1, c2); moving b1 and c2: B's duty moves, C's goes
    on in both, A's stays."""
    a, _ = open_handover("CASE-A", "SAMR", "31", T0, "x", assessed=["a1"])
    b, _ = open_handover("CASE-B", "SAMR", "31", T0, "x", assessed=["b1"])
    c, _ = open_handover("CASE-C", "SAMR", "31", T0, "x", assessed=["c1", "c2"])
    merged, _ = absorb(a, b, T0)
    merged, _ = absorb(merged, c, T0)
    outcome = split_handover(merged, split_entry(["b1", "c2"]), ["a1", "c1"])
    assert outcome.routes == {"CASE-A": "STAY", "CASE-B": "MOVE", "CASE-C": "BOTH"}
    assert outcome.kept is not None and outcome.moved is not None
    assert outcome.kept.case_ids() == ["CASE-A", "CASE-C"]
    assert outcome.moved.case_id == "CASE-N" and [m.case_id for m in outcome.moved.absorbed] == ["CASE-C"]
    assert outcome.moved.deadline == b.deadline and [s.seq for s in outcome.moved_steps] == [1, 2]
    assert len(outcome.kept_steps) == 1 and "CASE-B" in outcome.kept_steps[0].reasons


def test_when_only_a_carried_in_duty_stays_the_original_case_continues_it() -> None:
    a, _ = open_handover("CASE-A", "SAMR", "31", T0, "x", assessed=["a1"])
    b, _ = open_handover("CASE-B", "SAMR", "31", T0 + timedelta(hours=1), "x", assessed=["b1"])
    merged, _ = absorb(a, b, T0)
    outcome = split_handover(merged, split_entry(["a1"]), ["b1"])
    assert outcome.kept is not None and outcome.moved is not None
    assert (outcome.kept.case_id, outcome.kept.deadline, outcome.kept.absorbed) == ("CASE-A", b.deadline, ())
    assert outcome.kept.step == merged.step + 1  # its step numbers go on
    assert (outcome.moved.case_id, outcome.moved.deadline) == ("CASE-N", a.deadline)


# -- once, and the same on replay ------------------------------------------------------------------------------


def test_the_split_is_recorded_once_whatever_comes_again() -> None:
    bus = _run(opened_on=["lead-a1"], later=["lead-a2"], moving=["lead-a2"], gains_kept=6 * WAN, gains_new=6 * WAN)
    before = len(bus.of("CASE-A")), len(bus.of("CASE-N"))
    entry = split_entry(["lead-a2"], decision_id=SPLIT_ID)
    bus.case(of_case("CASE-A", ["lead-a1"], 6 * WAN, 3, [entry], at=SPLIT_AT), SPLIT_AT)  # a redelivery
    later = SPLIT_AT + timedelta(hours=1)
    bus.case(of_case("CASE-A", ["lead-a1"], 6 * WAN, 4, [entry], at=later), later)
    bus.deliver(later)
    assert (len(bus.of("CASE-A")), len(bus.of("CASE-N"))) == before
    second = split_entry(["lead-a3"], to="CASE-M")
    bus.partition_of["CASE-M"] = 1
    bus.case(of_case("CASE-A", ["lead-a1"], 6 * WAN, 5, [entry, second], at=later), later)  # a second split
    bus.deliver(later)
    assert [s["decision"] for s in bus.of("CASE-A")][-2:] == ["SPLIT", "SPLIT"]
    assert bus.of("CASE-A")[-1]["decision_id"] == second["decision_id"]


@pytest.mark.parametrize("opened_on, later, moving", [
    (["lead-a1"], ["lead-a2"], ["lead-a2"]),  # stays
    (["lead-a1"], ["lead-a2"], ["lead-a1"]),  # moves
    (["lead-a1", "lead-a2"], [], ["lead-a2"]),  # both
])
def test_a_replay_and_either_order_give_the_same_steps(opened_on: list[str], later: list[str],
                                                       moving: list[str]) -> None:
    runs = [_run(opened_on=opened_on, later=later, moving=moving, gains_kept=6 * WAN, gains_new=6 * WAN,
                 order=order) for order in ("kept first", "kept first", "new first")]
    by_case = [sorted(_comparable(r.steps), key=lambda s: (s["case_id"], s["seq"])) for r in runs]
    assert by_case[0] == by_case[1] == by_case[2]


def test_note_split_keeps_phase_and_deadline_and_reads_old_states() -> None:
    state, _ = open_handover("CASE-A", "SAMR", "31", T0, "I2025 Art.x")
    doc = state.to_json()
    doc.pop("splits")  # a state stored before splits were recorded
    old = HandoverState.from_json(doc)
    new, steps = note_split(old, split_entry(["lead-a2"]))
    assert new.phase == Phase.ASSESSED and new.deadline == old.deadline and len(steps) == 1
    assert HandoverState.from_json(new.to_json()) == new
    assert replace(new, splits=()) == replace(old, step=old.step + 1)
