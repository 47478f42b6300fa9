"""The Decree 310 state machine: every transition, every illegal one, deadlines, breaches once."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadbus.processors.core.deadlines import CST, CalendarDays, Limit, WorkingDays, due_at
from leadbus.processors.core.handover import (
    TERMINAL,
    TRANSITIONS,
    WAITS,
    Decision,
    HandoverState,
    Kind,
    Phase,
    Refusal,
    apply,
    open_handover,
    scan,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing
ACTORS = {
    "head": ("SAMR", "33", "HEAD"),
    "agency": ("SAMR", "33", "OFFICER"),
    "police": ("MPS", "33", "POLICE"),
    "procuratorate": ("SPP", "33", "PROCURATOR"),
    "police_or_procuratorate": ("SPP", "33", "PROCURATOR"),
}


def _state(phase: Phase) -> HandoverState:
    state, _ = open_handover("CASE-1", "SAMR", "33", T0, "ART_214 met")
    return HandoverState(state.case_id, phase, "SAMR", "33", T0.isoformat(), deadline=None, economic=True)


def _decide(kind: Kind, actor: tuple[str, str, str], at: datetime = T0, n: int = 0, reasons: str = "理由") -> Decision:
    return Decision(f"d-{kind}-{n}-{actor[0]}-{actor[2]}", "CASE-1", kind, *actor, decided_at=at, reasons=reasons)


@pytest.mark.parametrize(("phase", "kind"), sorted(TRANSITIONS), ids=lambda x: str(x))
def test_every_transition_by_its_actor(phase: Phase, kind: Kind) -> None:
    target, who = TRANSITIONS[(phase, kind)]
    result = apply(_state(phase), _decide(kind, ACTORS[who]))
    assert not isinstance(result, Refusal), result
    state, steps = result
    assert state.phase == target
    assert steps[-1].event == "DECISION" and steps[-1].to_phase == target
    waits = WAITS.get(target)
    assert (state.deadline is not None) == (waits is not None)


@pytest.mark.parametrize(("phase", "kind"), sorted(TRANSITIONS), ids=lambda x: str(x))
def test_every_transition_refuses_other_actors(phase: Phase, kind: Kind) -> None:
    _, who = TRANSITIONS[(phase, kind)]
    allowed = {"head": {"head"}, "agency": {"head", "agency"}, "police": {"police"},
               "procuratorate": {"procuratorate", "police_or_procuratorate"},
               "police_or_procuratorate": {"police", "procuratorate", "police_or_procuratorate"}}[who]
    for name, actor in [*ACTORS.items(), ("other agency", ("GACC", "44", "HEAD"))]:
        if name in allowed:
            continue
        result = apply(_state(phase), _decide(kind, actor))
        assert isinstance(result, Refusal) and result.reason == "HANDOVER_WRONG_ACTOR", (name, result)


ILLEGAL = [(p, k) for p, k in itertools.product(Phase, Kind) if (p, k) not in TRANSITIONS]


@pytest.mark.parametrize(("phase", "kind"), ILLEGAL, ids=lambda x: str(x))
def test_every_illegal_step_is_refused(phase: Phase, kind: Kind) -> None:
    result = apply(_state(phase), _decide(kind, ACTORS["procuratorate"]))
    assert isinstance(result, Refusal) and result.reason == "HANDOVER_ILLEGAL_STEP"


def test_reasons_are_required_for_refusals() -> None:
    result = apply(_state(Phase.TRANSFERRED), _decide(Kind.POLICE_NOT_FILE, ACTORS["police"], reasons=" "))
    assert isinstance(result, Refusal) and result.reason == "HANDOVER_REASONS_REQUIRED"


def test_happy_path_due_times() -> None:
    state, steps = open_handover("CASE-1", "SAMR", "33", T0, "ART_214 met")
    assert steps[0].due_at == datetime(2026, 3, 5, 23, 59, 59, 999000, tzinfo=CST)  # 3 days, start day excluded
    approve_at = T0 + timedelta(days=1)
    result = apply(state, _decide(Kind.HEAD_APPROVE, ACTORS["head"], approve_at))
    assert not isinstance(result, Refusal)
    state, steps = result
    assert steps[0].due_at == approve_at + timedelta(hours=24)  # transfer within 24 hours
    transfer_at = approve_at + timedelta(hours=20)
    state, steps = apply(state, _decide(Kind.TRANSFER, ACTORS["agency"], transfer_at))  # type: ignore[misc]
    assert steps[0].due_at == datetime(2026, 3, 7, 23, 59, 59, 999000, tzinfo=CST)  # received 03-04 06:00 CST
    state, steps = apply(state, _decide(Kind.POLICE_FILE, ACTORS["police"], transfer_at + timedelta(days=2)))  # type: ignore[misc]
    assert state.phase == Phase.FILED and steps[0].rule == "R310 Art.12"
    assert not any(s.late for s in steps)


def test_a_missed_duty_breaches_once_and_escalates() -> None:
    state, _ = open_handover("CASE-2", "SAMR", "33", T0, "ART_140 met")
    due = datetime.fromisoformat(state.deadline.due_at)  # type: ignore[union-attr]
    assert scan(state, due)[1] == []
    state, steps = scan(state, due + timedelta(seconds=1))
    assert [s.event for s in steps] == ["DEADLINE_BREACHED"]
    assert steps[0].escalated_to == "SPP/33" and steps[0].rule == "R310 Art.5(2)"
    assert scan(state, due + timedelta(days=30))[1] == []  # exactly once
    # acting late still works, and is marked late without a second breach
    _, late_steps = apply(state, _decide(Kind.HEAD_APPROVE, ACTORS["head"], due + timedelta(days=1)))  # type: ignore[misc]
    assert [s.event for s in late_steps] == ["DECISION"] and late_steps[0].late


def test_late_decision_before_any_scan_records_the_breach_first() -> None:
    state, _ = open_handover("CASE-3", "SAMR", "33", T0, "")
    result = apply(state, _decide(Kind.HEAD_APPROVE, ACTORS["head"], T0 + timedelta(days=10)))
    assert not isinstance(result, Refusal)
    assert [s.event for s in result[1]] == ["DEADLINE_BREACHED", "DECISION"]


def test_an_unused_window_closes_without_escalation() -> None:
    state = _state(Phase.TRANSFERRED)
    state, _ = apply(state, _decide(Kind.POLICE_NOT_FILE, ACTORS["police"]))  # type: ignore[misc]
    state, steps = scan(state, T0 + timedelta(days=5))
    assert state.phase == Phase.NOT_FILED_FINAL  # the agency's right lapsed; supervision did not
    assert [s.event for s in steps] == ["WINDOW_CLOSED"] and steps[0].escalated_to is None


def test_redelivered_decision_changes_nothing() -> None:
    state, _ = open_handover("CASE-1", "SAMR", "33", T0, "")
    decision = _decide(Kind.HEAD_APPROVE, ACTORS["head"])
    state, _ = apply(state, decision)  # type: ignore[misc]
    assert apply(state, decision) == (state, [])


def test_state_round_trips_through_json() -> None:
    state, _ = open_handover("CASE-1", "SAMR", "33", T0, "")
    assert HandoverState.from_json(state.to_json()) == state


def test_forward_within_24_hours_of_receipt() -> None:
    state = _state(Phase.APPROVED)
    state, _ = apply(state, _decide(Kind.TRANSFER, ACTORS["agency"], T0))  # type: ignore[misc]
    state, steps = apply(state, _decide(Kind.POLICE_FORWARD, ACTORS["police"], T0 + timedelta(hours=30), 1))  # type: ignore[misc]
    assert steps[-1].late and state.phase == Phase.TRANSFERRED


def test_day_counting_calendars() -> None:
    friday = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)
    assert due_at(friday, Limit(3, "day", "x")).date() == date(2026, 3, 9)
    assert due_at(friday, Limit(3, "day", "x"), WorkingDays()).date() == date(2026, 3, 11)
    holiday = CalendarDays(frozenset({date(2026, 3, 9)}))
    assert due_at(friday, Limit(3, "day", "x"), holiday).date() == date(2026, 3, 10)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Kind)), st.sampled_from(sorted(ACTORS)),
                          st.integers(min_value=0, max_value=20 * 24)), max_size=25))
def test_no_sequence_reaches_an_invalid_state_or_loses_a_deadline(moves) -> None:
    state, _ = open_handover("CASE-P", "SAMR", "33", T0, "")
    clock = T0
    breaches: dict[tuple[str, str], int] = {}
    for n, (kind, who, hours) in enumerate(moves):
        clock = clock + timedelta(hours=hours)
        state, steps = scan(state, clock)
        result = apply(state, _decide(kind, ACTORS[who], clock, n))
        if not isinstance(result, Refusal):
            state, more = result
            steps = steps + more
        for step in steps:
            if step.event == "DEADLINE_BREACHED":
                key = (step.rule or "", str(step.due_at))
                breaches[key] = breaches.get(key, 0) + 1
        assert state.phase in Phase
        assert (state.deadline is not None) == (state.phase in WAITS) or state.phase in TERMINAL
        if state.phase in TERMINAL:
            # only a closing the procuratorate may still reopen, or a return awaiting the agency's reply, keeps a clock
            assert state.deadline is None or state.phase in (Phase.CLOSED_NOT_FILED, Phase.RETURNED)
        seqs = [s.seq for s in steps]
        assert seqs == sorted(seqs)
    assert all(count == 1 for count in breaches.values()), breaches
    # once time runs far ahead, every open duty has been breached exactly once
    state, steps = scan(state, clock + timedelta(days=60))
    if state.deadline is not None:
        assert state.deadline.breached


def test_the_transferring_agency_is_the_first_administrative_reporter() -> None:
    from leadbus.processors.core.handover import transferring_agency

    reporters = [{"agency": "MPS", "province": "44"}, {"agency": "GACC", "province": "44"},
                 {"agency": "SAMR", "province": "33"}]
    assert transferring_agency(reporters) == ("GACC", "44")
    assert transferring_agency([{"agency": "SPP", "province": "11"}]) is None
