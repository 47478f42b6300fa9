"""The dashboard's link desk checks a supervisor's decision with the contract's own model (issue #19): the same reason
codes intake would give, before anything is signed or published; and a decided pair leaves the review board."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from leadbus.sinks.dashboard_state import SuggestionBoard
from leadbus.sinks.link_desk import DeskRefusal, LinkDesk

T = datetime(2026, 11, 1, 8, tzinfo=UTC)
LEAD = str(uuid.uuid4())


class _NeverPublishes:
    """`build` must not reach the publisher: any call fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the desk published ({name}) while only building")


def _desk() -> LinkDesk:
    return LinkDesk("SAMR", "31", _NeverPublishes(), clock=lambda: T)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, code", [
    ({"reason": "   "}, "REASON_MISSING"),
    ({"reason": ""}, "REASON_MISSING"),
    ({"reason": None}, "REASON_MISSING"),
    ({"reason": ["x"]}, "REASON_MISSING"),
    ({"reason": "长" * 4001}, "REASON_TOO_LONG"),
    ({"reason": "x", "case_b": None}, "LINK_DECISION_SHAPE"),
    ({"reason": "x", "case_b": "CASE-0000000000000001"}, "LINK_DECISION_SHAPE"),  # the same case twice
    ({"reason": "x", "case_b": "<script>"}, "UNKNOWN_CASE"),
])
def test_a_suggestion_decision_is_refused_with_the_models_reason(kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(DeskRefusal) as caught:
        _desk().build("yrd.supervisor", "CONFIRM", "CASE-0000000000000001", **{"case_b": "CASE-0000000000000002",
                                                                                 **kwargs})
    assert (caught.value.status, caught.value.code) == (400, code)
    assert len(caught.value.message) <= 300


def test_a_split_names_leads_by_their_ids() -> None:
    with pytest.raises(DeskRefusal) as caught:
        _desk().build("yrd.supervisor", "SPLIT", "CASE-0000000000000001", lead_ids=["not-a-lead-id"], reason="x")
    assert caught.value.code == "LEAD_ID_FORMAT"
    decision = _desk().build("yrd.supervisor", "SPLIT", "CASE-0000000000000001", lead_ids=[LEAD, LEAD],
                             reason="  另一家店  ")
    assert decision.lead_ids == [LEAD] and decision.reason == "另一家店"
    assert (decision.analyst.user, decision.analyst.role, decision.analyst.agency) == (
        "yrd.supervisor", "SUPERVISOR", "SAMR")


def test_a_decided_pair_leaves_the_board_and_others_stay() -> None:
    board = SuggestionBoard()
    for a, b in (("CASE-A", "CASE-B"), ("CASE-A", "CASE-C")):
        board.add({"suggestion_id": f"SUG-{a}{b}", "case_a": a, "case_b": b, "score": 0.9})
    board.decided("CASE-A", "CASE-B")
    board.decided("CASE-X", "CASE-Y")  # never on this board: nothing happens
    assert [(r["case_a"], r["case_b"]) for r in board.rows(10)] == [("CASE-A", "CASE-C")]
