"""The clocks of the legal review §4 (issue #15): procuratorate supervision without a time limit, the economic-crime
police review (ECON2017 Art.16), materials notice and supplement (PSB_PROC Art.180 ¶2), the procuratorate's 10 days
(SPP_RULES Art.561 ¶2), the agency's 2-month reply to a reverse handover (SPP2021), merged cases keeping every duty."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadbus.processors.core.deadlines import CST, CalendarDays, Limit, WorkingDays, due_at
from leadbus.processors.core.handover import (
    ECONOMIC_CRIME_ARTICLES,
    Decision,
    HandoverState,
    Kind,
    Phase,
    Refusal,
    absorb,
    apply,
    open_handover,
    scan,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
AGENCY, HEAD = ("SAMR", "33", "OFFICER"), ("SAMR", "33", "HEAD")
POLICE, PROC = ("MPS", "33", "POLICE"), ("SPP", "33", "PROCURATOR")
_n = iter(range(10**9))


def _do(state: HandoverState, kind: Kind, actor: tuple[str, str, str], at: datetime, case: str | None = None,
        reasons: str = "理由") -> tuple[HandoverState, list]:  # fmt: skip
    result = apply(state, Decision(f"d{next(_n)}", case or state.case_id, kind, *actor, decided_at=at,
                                   reasons=reasons))
    assert not isinstance(result, Refusal), result
    return result


def _transferred(at: datetime, economic: bool, case: str = "CASE-1") -> HandoverState:
    state, _ = open_handover(case, "SAMR", "33", at, "met", economic=economic)
    state, _ = _do(state, Kind.HEAD_APPROVE, HEAD, at)
    state, _ = _do(state, Kind.TRANSFER, AGENCY, at)
    return state


def _end(at: datetime, days: int) -> datetime:
    day = at.astimezone(CST).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999000, tzinfo=CST)


times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


def test_the_economic_crime_articles_are_the_ip_articles_of_s2() -> None:
    assert {"ART_213", "ART_214", "ART_215", "ART_216", "ART_219"} == ECONOMIC_CRIME_ARTICLES


@settings(max_examples=150, deadline=None)
@given(times, st.booleans())
def test_police_review_3_days_or_10_30_60_for_economic_crimes(at: datetime, economic: bool) -> None:
    state = _transferred(at, economic)
    assert state.deadline is not None
    due = datetime.fromisoformat(state.deadline.due_at)
    assert due == _end(at, 10 if economic else 3)
    assert state.deadline.rule.startswith("ECON2017 Art.16" if economic else "R310 Art.8")
    # no breach on day 4 for an economic crime; a breach the moment after the due time for the others
    assert bool(scan(state, _end(at, 4))[1]) is (not economic)
    extend = apply(state, Decision("x1", state.case_id, Kind.POLICE_EXTEND, *POLICE, decided_at=at, reasons="跨区域"))
    if not economic:
        assert isinstance(extend, Refusal) and extend.reason == "HANDOVER_ILLEGAL_STEP"
        return
    assert not isinstance(extend, Refusal)
    state, _ = extend
    assert datetime.fromisoformat(state.deadline.due_at) == _end(at, 30)  # type: ignore[union-attr]
    state, _ = _do(state, Kind.POLICE_EXTEND, POLICE, at + timedelta(days=20), reasons="案情复杂")
    assert datetime.fromisoformat(state.deadline.due_at) == _end(at, 60)  # type: ignore[union-attr]
    third = apply(state, Decision("x3", state.case_id, Kind.POLICE_EXTEND, *POLICE, decided_at=at, reasons="再延"))
    assert isinstance(third, Refusal)
    state, steps = scan(state, _end(at, 60) + timedelta(milliseconds=1))
    assert [s.event for s in steps] == ["DEADLINE_BREACHED"]


@settings(max_examples=150, deadline=None)
@given(times, st.integers(min_value=0, max_value=5 * 365 * 24), st.booleans())
def test_procuratorate_supervision_has_no_time_limit(at: datetime, hours_later: int, accepted: bool) -> None:
    """CPL Art.113; SPP_RULES Art.557 ¶2: after the agency's 3-day windows, and even after it accepted not filing."""
    state = _transferred(at, economic=False)
    state, _ = _do(state, Kind.POLICE_NOT_FILE, POLICE, at)
    later = at + timedelta(days=4, hours=hours_later)
    state, steps = scan(state, later)
    assert state.phase == Phase.NOT_FILED_FINAL and [s.event for s in steps] == ["WINDOW_CLOSED"]
    if accepted:
        state, _ = _do(state, Kind.ACCEPT_NOT_FILING, AGENCY, later)
        assert state.phase == Phase.CLOSED_NOT_FILED
    state, steps = _do(state, Kind.REQUIRE_EXPLANATION, PROC, later + timedelta(hours=1))
    assert state.phase == Phase.EXPLANATION_DUE and steps[-1].rule == "PSB_PROC Art.182(1)"


@settings(max_examples=150, deadline=None)
@given(times, st.integers(min_value=0, max_value=72))
def test_materials_notice_within_24_hours_and_supplement_within_3_days(at: datetime, hours: int) -> None:
    state = _transferred(at, economic=False)
    notice = at + timedelta(hours=hours)
    state, steps = _do(state, Kind.POLICE_REQUEST_MATERIALS, POLICE, notice)
    assert state.phase == Phase.MATERIALS_REQUESTED
    assert steps[-1].late is (hours > 24)
    assert steps[-1].rule == "PSB_PROC Art.180 ¶2" and steps[-1].due_at == _end(notice, 3)
    breached = scan(state, _end(notice, 3) + timedelta(seconds=1))[1]
    assert [s.event for s in breached] == ["DEADLINE_BREACHED"]
    state, _ = _do(state, Kind.MATERIALS_SUPPLEMENTED, AGENCY, notice + timedelta(days=1))
    assert state.phase == Phase.TRANSFERRED
    assert datetime.fromisoformat(state.deadline.due_at) == _end(notice + timedelta(days=1), 3)  # type: ignore[union-attr]


def test_the_procuratorate_informs_the_agency_within_10_days() -> None:
    state = _transferred(T0, economic=False)
    state, _ = _do(state, Kind.REQUIRE_EXPLANATION, PROC, T0)
    state, steps = _do(state, Kind.POLICE_EXPLAIN, POLICE, T0 + timedelta(days=2))
    assert state.phase == Phase.EXPLAINED and steps[-1].rule == "SPP_RULES Art.561 ¶2"
    assert steps[-1].due_at == _end(T0 + timedelta(days=2), 10)
    _, breach = scan(state, _end(T0 + timedelta(days=2), 10) + timedelta(seconds=1))
    assert breach[0].escalated_to == "SPP/00"  # the procuratorate's own breach goes above it


@settings(max_examples=200, deadline=None)
@given(times)
def test_the_agency_replies_to_a_reverse_handover_within_two_months(at: datetime) -> None:
    state = _transferred(at, economic=False)
    state, _ = _do(state, Kind.POLICE_FILE, POLICE, at)
    by_police, _ = _do(state, Kind.REVERSE_HANDOVER, POLICE, at)
    assert by_police.phase == Phase.RETURNED and by_police.deadline is None  # R310 Art.13: 及时, no figure
    state, steps = _do(state, Kind.REVERSE_HANDOVER, PROC, at)
    due = steps[-1].due_at
    start = at.astimezone(CST).date()
    month = (start.month + 1) % 12 + 1
    assert due.month == month and due.day <= start.day and (due.day == start.day or due.day >= 28)
    assert steps[-1].rule.startswith("SPP2021")
    state, _ = _do(state, Kind.AGENCY_REPLY, AGENCY, at + timedelta(days=30))
    assert state.phase == Phase.RETURN_ANSWERED and state.deadline is None


@settings(max_examples=200, deadline=None)
@given(times, st.integers(min_value=1, max_value=24))
def test_month_periods_end_on_the_corresponding_day(at: datetime, months: int) -> None:
    for calendar in (CalendarDays(), WorkingDays()):
        due = due_at(at, Limit(months, "month", "x"), calendar)
        start = at.astimezone(CST).date()
        index = start.month - 1 + months
        assert (due.year, due.month) == (start.year + index // 12, index % 12 + 1) or isinstance(calendar, WorkingDays)
        assert due.time().hour == 23 and due > at


@settings(max_examples=200, deadline=None)
@given(times, st.integers(min_value=1, max_value=60), st.sets(st.dates(date(2020, 1, 1), date(2030, 12, 31)),
                                                                max_size=20))
def test_day_periods_exclude_the_start_day_and_roll_past_holidays(at: datetime, days: int, holidays: set) -> None:
    due = due_at(at, Limit(days, "day", "x"), CalendarDays(frozenset(holidays)))
    first = at.astimezone(CST).date() + timedelta(days=days)
    assert due.date() >= first and due.date() not in holidays
    assert all(first + timedelta(days=k) in holidays for k in range((due.date() - first).days))


def test_a_merged_case_keeps_every_open_duty() -> None:
    survivor, _ = open_handover("CASE-A", "SAMR", "33", T0, "met")
    other = _transferred(T0, economic=True, case="CASE-B")
    state, steps = absorb(survivor, other, T0 + timedelta(hours=1))
    assert [s.decision for s in steps] == ["MERGE"] and steps[0].case_id == "CASE-A"
    assert steps[0].due_at == _end(T0, 10) and "CASE-B" in steps[0].reasons
    actions = {d.action for d in state.open_deadlines()}
    assert actions == {"head decides on the transfer", "police decide to file or not"}
    assert HandoverState.from_json(state.to_json()) == state
    assert absorb(state, other, T0)[1] == []  # once
    # a decision for the absorbed case still applies to its machine, recorded on the survivor
    state, steps = _do(state, Kind.POLICE_FILE, POLICE, T0 + timedelta(days=1), case="CASE-B")
    assert state.absorbed[0].phase == Phase.FILED and steps[0].case_id == "CASE-A"
    assert state.phase == Phase.ASSESSED
    # time passes: both machines' duties breach, once each
    state, steps = scan(state, T0 + timedelta(days=30))
    assert sorted(s.rule for s in steps if s.event == "DEADLINE_BREACHED") == ["R310 Art.12", "R310 Art.5(2)"]
    assert scan(state, T0 + timedelta(days=60))[1] == []
    assert [s.seq for s in steps] == sorted(s.seq for s in steps)


# Every clock of the review's §4 table: (path of decisions from a non-economic transfer, phase reached, rule, due).
HOUR = timedelta(hours=1)
CLOCKS = [
    ("§4 ASSESSED: head decides, 3 days (R310 Art.5(2))", [], "ASSESSED", "R310 Art.5(2)", lambda at: _end(at, 3)),
    ("§4 APPROVED: transfer within 24 h (R310 Art.5(2))", [(Kind.HEAD_APPROVE, HEAD)], "APPROVED", "R310 Art.5(2)",
     lambda at: at + 24 * HOUR),
    ("§4 TRANSFERRED: police decide, 3 days (R310 Art.8)", [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY)],
     "TRANSFERRED", "R310 Art.8", lambda at: _end(at, 3)),
    ("§4 FILED: items handed over, 3 days (R310 Art.12)",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_FILE, POLICE)], "FILED", "R310 Art.12",
     lambda at: _end(at, 3)),
    ("§4 NOT_FILED: reconsideration window, 3 days (R310 Art.9(1))",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_NOT_FILE, POLICE)], "NOT_FILED",
     "R310 Art.9(1)", lambda at: _end(at, 3)),
    ("§4 RECONSIDERING: police decide, 3 days (R310 Art.9(2))",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_NOT_FILE, POLICE),
      (Kind.REQUEST_RECONSIDERATION, AGENCY)], "RECONSIDERING", "R310 Art.9(2)", lambda at: _end(at, 3)),
    ("§4 UPHELD: propose 立案监督, 3 days (R310 Art.9(2))",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_NOT_FILE, POLICE),
      (Kind.REQUEST_RECONSIDERATION, AGENCY), (Kind.RECONSIDERATION_UPHOLD, POLICE)], "UPHELD", "R310 Art.9(2)",
     lambda at: _end(at, 3)),
    ("§4 EXPLANATION_DUE: police explain, 7 days (PSB_PROC Art.182(1))",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_NOT_FILE, POLICE),
      (Kind.REQUIRE_EXPLANATION, PROC)], "EXPLANATION_DUE", "PSB_PROC Art.182(1)", lambda at: _end(at, 7)),
    ("§4 EXPLAINED: procuratorate informs the agency, 10 days (SPP_RULES Art.561 ¶2)",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_NOT_FILE, POLICE),
      (Kind.REQUIRE_EXPLANATION, PROC), (Kind.POLICE_EXPLAIN, POLICE)], "EXPLAINED", "SPP_RULES Art.561 ¶2",
     lambda at: _end(at, 10)),
    ("§4 FILING_ORDERED: police file, 15 days (PSB_PROC Art.182(2))",
     [(Kind.HEAD_APPROVE, HEAD), (Kind.TRANSFER, AGENCY), (Kind.POLICE_NOT_FILE, POLICE),
      (Kind.REQUIRE_EXPLANATION, PROC), (Kind.ORDER_FILING, PROC)], "FILING_ORDERED", "PSB_PROC Art.182(2)",
     lambda at: _end(at, 15)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "phase", "rule", "due"), CLOCKS, ids=[c[0] for c in CLOCKS])
def test_every_clock_of_the_review(name: str, path: list, phase: str, rule: str, due: Any) -> None:
    state, steps = open_handover("CASE-1", "SAMR", "33", T0, "met")
    at = T0
    for kind, actor in path:
        at += HOUR
        state, steps = _do(state, kind, actor, at)
    assert state.phase == Phase(phase)
    assert steps[-1].rule == rule and steps[-1].due_at == due(at), (steps[-1].rule, steps[-1].due_at)
    # the moment after its due time the duty breaches, once; the moment before it does not
    assert scan(state, due(at) - timedelta(milliseconds=1))[1] == []
    later, found = scan(state, due(at) + timedelta(milliseconds=1))
    if phase in ("NOT_FILED", "UPHELD"):  # an agency's window: it closes, supervision stays open (CPL Art.113)
        assert [s.event for s in found] == ["WINDOW_CLOSED"] and later.phase == Phase.NOT_FILED_FINAL
    else:
        assert [s.event for s in found] == ["DEADLINE_BREACHED"] and found[0].escalated_to
    assert scan(later, due(at) + timedelta(days=1))[1] == []
