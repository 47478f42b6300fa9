"""A split after a handover started, on a real broker (issue #19): open duties follow the leads; and its replay.

Intake, linking and handover run as workers. Two NCAC Shanghai reports about one pirate video shop (one phone:
one case) reach the threshold of 立案追诉标准 I2025 together (6万 of illegal gains, 3万 each), so the handover opens on
both and the head approves the transfer report. An analyst then splits the second report off (another shop):
some of the leads assessed leave and some stay, so both cases carry the open duty with the same clock (the new
case's first step says from which case and decision), and the agency transfers each. In a second case, a report
of 12万 opens a handover alone, a 1万 report joins later, and the first report is split off: the duty moves with
it to the new case (same phase, same deadline), the original records where it went and, with 1万 left, opens
nothing. Replaying the recorded inputs through the same handlers gives the same cases and the same handover
steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from leadbus.audit.rebuild import DictState
from leadbus.avro import decode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.records import Record
from leadbus.processors.handover import HandoverHandler
from leadbus.processors.linking import LinkingHandler
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import (
    CASES,
    HANDOVER,
    HANDOVER_CARRYOVER,
    HANDOVER_DECISIONS,
    LEADS_ACCEPTED,
    LEADS_REJECTED,
    LINK_DECISIONS,
)
from tests.kafka_helpers import decoded, live_case_of, read_all
from tests.link_bus import link_bus
from tests.processes import wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
WAN = 1_000_000


@pytest.fixture(scope="module")
def bus(tmp_path_factory) -> Iterator[dict[str, Any]]:
    with link_bus(tmp_path_factory.mktemp("handover-split"), "split", ("intake", "linking", "handover")) as lb:
        analysts = lb.analysts()
        agency = Publisher("NCAC", "31", bootstrap_servers=lb.bootstrap)
        try:
            yield {"bootstrap": lb.bootstrap, "analysts": analysts, "agency": agency}
        finally:
            analysts.close()
            agency.close()


def _lead(phone: str, gains: int) -> CaseLead:
    doc = next(iter(TrafficGenerator(seed=5).leads(1, datetime.now(UTC) - timedelta(hours=1),
                                                    timedelta(seconds=1)))).model_dump(mode="json")
    doc.update(lead_id=str(uuid.uuid4()), category="FILM_TV", violation="ART_218", payment_accounts=[], waybills=[],
               publisher={"agency": "NCAC", "province": "31", "unit": None}, handling="OPEN", share_with=[],
               cross_border=False, countries=[], conduct_from=date(2025, 6, 1).isoformat(), conduct_to=None,
               prior_penalties=[],
               subject={"name": "上海某音像店", "kind": "INDIVIDUAL", "uscc": None, "id_number": None,
                        "phones": [phone],
                        "address": {"province": "31", "city": "上海市", "detail": "黄浦区福州路400号"}},
               online={"platform": None, "shop_id": None, "urls": [], "ips": [], "icp_filings": []},
               facts={"illegal_gains_fen": gains})
    return CaseLead.model_validate(doc)


def _steps(bootstrap: str, case_id: str) -> list[dict[str, Any]]:
    return sorted((s for s in decoded(bootstrap, HANDOVER) if s["case_id"] == case_id), key=lambda s: s["seq"])


def _handover_decision(case_id: str, kind: str, role: str) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "case_id": case_id, "kind": kind, "reasons": "",
            "decided_at": datetime.now(UTC) - timedelta(seconds=2), "documents": [],
            "actor": {"agency": "NCAC", "province": "31", "unit": None, "role": role}}


def _split(bus: dict[str, Any], case_id: str, lead_id: str, reason: str) -> tuple[dict[str, Any], str]:
    """An analyst splits ``lead_id`` off ``case_id``; the decision and the new case."""
    split = {"decision_id": str(uuid.uuid4()), "action": "SPLIT", "case_a": case_id, "case_b": None,
             "lead_ids": [lead_id], "suggestion_id": None, "reason": reason,
             "analyst": {"agency": "SAMR", "province": "31", "user": "li.na", "role": "ANALYST"},
             "decided_at": datetime.now(UTC) - timedelta(seconds=2)}
    bus["analysts"].wait([bus["analysts"].publish_link_decision(split)])
    wait_until(lambda: live_case_of(bus["bootstrap"], lead_id) not in (None, case_id), 120, "the split")
    return split, str(live_case_of(bus["bootstrap"], lead_id))


def _one_case(bus: dict[str, Any], *leads: CaseLead) -> str:
    bootstrap, agency = bus["bootstrap"], bus["agency"]
    def together(lead: CaseLead) -> bool:
        case_id = live_case_of(bootstrap, lead.lead_id)
        return case_id is not None and case_id == live_case_of(bootstrap, leads[0].lead_id)

    for lead in leads:
        agency.wait([agency.publish(lead)])
        wait_until(lambda lead=lead: together(lead), 180, "one case for the reports")
    return str(live_case_of(bootstrap, leads[0].lead_id))


def _approved(bus: dict[str, Any], case_id: str) -> dict[str, Any]:
    bootstrap, agency = bus["bootstrap"], bus["agency"]
    wait_until(lambda: _steps(bootstrap, case_id), 120, "the handover to open")
    agency.wait([agency.publish_decision(_handover_decision(case_id, "HEAD_APPROVE", "HEAD"))])
    wait_until(lambda: _steps(bootstrap, case_id)[-1]["to_phase"] == "APPROVED", 120, "the head's approval")
    return _steps(bootstrap, case_id)[-1]


def _transfer(bus: dict[str, Any], case_id: str) -> None:
    bus["agency"].wait([bus["agency"].publish_decision(_handover_decision(case_id, "TRANSFER", "OFFICER"))])
    wait_until(lambda: _steps(bus["bootstrap"], case_id)[-1]["to_phase"] == "TRANSFERRED", 120, "the transfer")


def test_a_duty_assessed_on_leads_that_part_goes_on_in_both_cases(bus) -> None:
    bootstrap = bus["bootstrap"]
    first, second = _lead("13812345670", 3 * WAN), _lead("13812345670", 3 * WAN)  # 5万 is the figure
    case_id = _one_case(bus, first, second)
    approved = _approved(bus, case_id)  # opened on both reports together: 6万

    split, new = _split(bus, case_id, second.lead_id, "第二份报告是同一电话的另一家店")
    wait_until(lambda: _steps(bootstrap, case_id)[-1]["decision"] == "SPLIT", 120, "the split on the handover")
    noted = _steps(bootstrap, case_id)[-1]
    assert (noted["to_phase"], noted["due_at"], noted["next_action"]) == (
        "APPROVED", approved["due_at"], approved["next_action"]), "the duty and its clock stay"
    assert second.lead_id in noted["reasons"] and new in noted["reasons"] and noted["decision_id"] == split[
        "decision_id"]
    assert "continues here and in case" in noted["reasons"]
    # the new case carries the same duty with the same clock, and says where it came from
    wait_until(lambda: _steps(bootstrap, new), 120, "the duty on the new case")
    carried = _steps(bootstrap, new)
    assert [(s["event"], s["to_phase"], s["decision"]) for s in carried] == [("DECISION", "APPROVED", "SPLIT")]
    assert (carried[0]["due_at"], carried[0]["next_action"]) == (approved["due_at"], approved["next_action"])
    assert f"[split from case {case_id}, decision {split['decision_id']}]" in carried[0]["reasons"]

    for c in (case_id, new):
        _transfer(bus, c)
    assert [s["decision"] for s in _steps(bootstrap, case_id)] == [None, "HEAD_APPROVE", "SPLIT", "TRANSFER"]
    assert [s["seq"] for s in _steps(bootstrap, case_id)] == [1, 2, 3, 4]
    assert [s["decision"] for s in _steps(bootstrap, new)] == ["SPLIT", "TRANSFER"]
    assert not decoded(bootstrap, LEADS_REJECTED)


def test_a_duty_whose_assessed_leads_all_leave_moves_to_the_new_case(bus) -> None:
    bootstrap = bus["bootstrap"]
    first = _lead("13812345671", 12 * WAN)
    case_id = _one_case(bus, first)
    approved = _approved(bus, case_id)  # opened on the first report alone
    joined = _lead("13812345671", 1 * WAN)
    assert _one_case(bus, first, joined) == case_id

    split, new = _split(bus, case_id, first.lead_id, "第一份报告才是这家店，后一份是隔壁")
    wait_until(lambda: _steps(bootstrap, case_id)[-1]["decision"] == "SPLIT", 120, "the split on the handover")
    wait_until(lambda: _steps(bootstrap, new), 120, "the duty on the new case")
    left = _steps(bootstrap, case_id)[-1]
    assert f"moved to case {new}" in left["reasons"] and left["due_at"] is None
    moved = _steps(bootstrap, new)
    assert [(s["event"], s["to_phase"], s["decision"]) for s in moved] == [("DECISION", "APPROVED", "SPLIT")]
    assert (moved[0]["due_at"], moved[0]["next_action"]) == (approved["due_at"], approved["next_action"])
    assert split["decision_id"] in moved[0]["reasons"] and moved[0]["decision_id"] == split["decision_id"]
    _transfer(bus, new)  # decisions now name the new case
    assert [s["decision"] for s in _steps(bootstrap, case_id)] == [None, "HEAD_APPROVE", "SPLIT"], \
        "1万 left: the original case opens nothing"
    assert not decoded(bootstrap, LEADS_REJECTED)


def test_replay_gives_the_same_cases_and_steps(bus) -> None:
    """The recorded inputs of both splits above, through the same handlers."""
    bootstrap = bus["bootstrap"]
    assert any(h["action"] == "SPLIT" for c in decoded(bootstrap, CASES) for h in c["link_history"])
    cases = _replay_cases(bootstrap)
    recorded = [_case_key(c) for c in decoded(bootstrap, CASES)]
    assert sorted(cases) == sorted(recorded)  # partitions are read one after another: compare as sets of versions
    # each case's steps in the same order; steps of different cases interleave as the stage's batches fell
    assert _by_case(_replay_handover(bootstrap)) == _by_case([_step_key(s) for s in decoded(bootstrap, HANDOVER)])


def _case_key(case: dict[str, Any]) -> tuple[Any, ...]:
    history = [(h["action"], h["decision_id"], tuple(h["leads"]), h["split_from"], h["split_to"])
               for h in case["link_history"]]
    return case["case_id"], case["version"], tuple(case["members"]), case["merged_into"], tuple(history)


def _by_case(steps: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for step in steps:
        grouped.setdefault(dict(step)["case_id"], []).append(step)
    return grouped


def _step_key(step: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((k, v) for k, v in sorted(step.items()) if k != "recorded_at")


def _records(bootstrap: str, *topics: str) -> list[Record]:
    """The topics' records in the order the stage met them (by log append time across topics)."""
    found = [(m.timestamp()[1], t, m) for t in topics for m in read_all(bootstrap, t)]
    return [Record(t, m.partition(), m.offset(), m.key(), m.value())
            for _, t, m in sorted(found, key=lambda x: (x[0], x[1] != topics[0], x[2].offset()))]


def _replay_cases(bootstrap: str) -> list[tuple[Any, ...]]:
    handler, state, out = LinkingHandler(CATALOG), DictState(), []
    for record in _records(bootstrap, LEADS_ACCEPTED, LINK_DECISIONS):
        result = handler.handle(record, state, datetime.now(UTC))
        state.apply(result.state)
        out += [_case_key(decode(CATALOG, o.value)[1]) for o in result.outputs if o.topic == CASES]
    return out


def _replay_handover(bootstrap: str) -> list[tuple[Any, ...]]:
    """The stage's inputs as recorded; its own carryovers (merges, splits) go back in as it writes them."""
    handler, state, out = HandoverHandler(CATALOG), DictState(), []
    queue = _records(bootstrap, CASES, HANDOVER_DECISIONS)
    while queue:
        record = queue.pop(0)
        now = decode(CATALOG, record.value)[1].get("updated_at") or datetime.now(UTC)
        result = handler.handle(record, state, now)
        state.apply(result.state)
        out += [_step_key(decode(CATALOG, o.value)[1]) for o in result.outputs if o.topic == HANDOVER]
        queue[:0] = [Record(o.topic, 0, 0, o.key, o.value) for o in result.outputs if o.topic == HANDOVER_CARRYOVER]
    return out
