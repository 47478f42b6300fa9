"""A merged case keeps every open duty when the two cases' handovers live on different partitions (issue #15).

Two `DictState`s stand for two partitions of `leadbus.state.handover`; outputs on the stage's own carryover topic
are delivered to the partition of their key, in the order written, as the broker would. The broker-level run of
the same is `tests/integration/test_handover_merge.py`.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from leadbus.audit.rebuild import DictState
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.processors.core.records import Record, Result
from leadbus.processors.handover import HandoverHandler
from leadbus.topics import CASES, HANDOVER, HANDOVER_CARRYOVER, HANDOVER_DECISIONS, LEADS_REJECTED

CATALOG = packaged_catalog()
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
WAN = 1_000_000
_offsets = itertools.count()


def case(case_id: str, *, version: int = 1, gains: int = 6 * WAN, merged_into: str | None = None,
         merged_from: list[str] | None = None, at: datetime = T0) -> dict[str, Any]:  # fmt: skip
    """A CaseUpdated of an ART_218 case (2025 conduct: 5万 of gains meets I2025) reported by SAMR Shanghai."""
    facts = dict.fromkeys(("illegal_business_amount_fen", "sales_amount_fen", "goods_value_fen", "copies", "works",
                           "clicks", "members", "trademark_kinds", "labels", "loss_fen", "labels_sold",
                           "labels_held", "copies_held", "patents", "rights_holder_bankrupt", "labels_made_by",
                           "mark_use"))  # fmt: skip
    return {
        "case_id": case_id, "version": version, "members": [f"lead-{case_id}"],
        "reporters": [{"agency": "SAMR", "province": "31"}], "identifiers": [], "suspect_name": "某音像店",
        "suspect_province": "31", "categories": ["FILM_TV"], "violations": ["ART_218"],
        "facts": {**facts, "illegal_gains_fen": gains}, "first_reported_at": at, "last_reported_at": at,
        "handling": "OPEN", "share_with": [], "cross_border": False, "countries": [],
        "merged_from": merged_from or [], "merged_into": merged_into, "updated_at": at,
        "conduct_from": date(2025, 6, 1), "conduct_to": None, "prior_penalties": [], "police_measures_needed": False,
    }  # fmt: skip


def decision(case_id: str, kind: str, at: datetime, agency: str = "SAMR", role: str = "OFFICER") -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "case_id": case_id, "kind": kind, "decided_at": at,
            "actor": {"agency": agency, "province": "31", "unit": None, "role": role}, "reasons": "理由",
            "documents": []}  # fmt: skip


class Bus:
    """Two partitions of the handover stage; carryovers queue for the partition of their key."""

    def __init__(self, partition_of: dict[str, int]) -> None:
        self.handler = HandoverHandler(CATALOG)
        self.partition_of = partition_of
        self.states = {0: DictState(), 1: DictState()}
        self.carry: dict[int, list[Record]] = {0: [], 1: []}
        self.steps: list[dict[str, Any]] = []
        self.rejected: list[str] = []

    def _run(self, partition: int, record: Record, now: datetime) -> None:
        result: Result = self.handler.handle(record, self.states[partition], now)
        self.states[partition].apply(result.state)
        for out in result.outputs:
            if out.topic == HANDOVER:
                self.steps.append(decode(CATALOG, out.value)[1])
            elif out.topic == HANDOVER_CARRYOVER:
                target = self.partition_of[out.key.decode()]
                self.carry[target].append(Record(HANDOVER_CARRYOVER, target, next(_offsets), out.key, out.value))
            elif out.topic == LEADS_REJECTED:
                self.rejected.append(decode(CATALOG, out.value)[1]["reason"])

    def case(self, record: dict[str, Any], now: datetime = T0) -> None:
        value = encode(CATALOG.latest("cn.leadbus.CaseUpdated"), record)
        partition = self.partition_of[record["case_id"]]
        self._run(partition, Record(CASES, partition, next(_offsets), record["case_id"].encode(), value), now)

    def decide(self, event: dict[str, Any], now: datetime) -> None:
        value = encode(CATALOG.latest("cn.leadbus.HandoverDecision"), event)
        partition = self.partition_of[event["case_id"]]
        self._run(partition, Record(HANDOVER_DECISIONS, partition, next(_offsets), event["case_id"].encode(), value),
                  now)

    def deliver(self, now: datetime = T0) -> None:
        while any(self.carry.values()):
            for partition in (0, 1):
                queued, self.carry[partition] = self.carry[partition], []
                for record in queued:
                    self._run(partition, record, now)

    def tick(self, now: datetime) -> None:
        for state in self.states.values():
            result = self.handler.tick(state, now)
            state.apply(result.state)
            self.steps += [decode(CATALOG, o.value)[1] for o in result.outputs if o.topic == HANDOVER]

    def of(self, case_id: str) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["case_id"] == case_id]


def _comparable(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "recorded_at"} for s in steps]


def test_the_absorbed_duty_moves_to_the_survivors_partition_and_decisions_follow_it() -> None:
    bus = Bus({"CASE-A": 0, "CASE-B": 1})
    bus.case(case("CASE-A"))
    bus.case(case("CASE-B"))
    bus.decide(decision("CASE-B", "HEAD_APPROVE", T0 + timedelta(hours=1), role="HEAD"), T0 + timedelta(hours=1))
    assert [s["to_phase"] for s in bus.of("CASE-B")] == ["ASSESSED", "APPROVED"]
    transfer_due = bus.of("CASE-B")[-1]["due_at"]

    merged_at = T0 + timedelta(hours=2)
    bus.case(case("CASE-B", version=2, merged_into="CASE-A", at=merged_at), merged_at)
    bus.case(case("CASE-A", version=2, merged_from=["CASE-B"], at=merged_at), merged_at)
    assert bus.states[1].range(b"h:", b"h;") == [] and bus.states[1].range(b"d:", b"d;") == []  # left partition 1
    bus.deliver(merged_at)
    merge = bus.of("CASE-A")[-1]
    assert (merge["decision"], merge["due_at"]) == ("MERGE", transfer_due) and "CASE-B" in merge["reasons"]
    assert len(bus.of("CASE-B")) == 2  # nothing more is recorded on the absorbed case

    # a decision still naming the absorbed case arrives on its partition and is forwarded to the survivor's
    at = T0 + timedelta(hours=3)
    bus.decide(decision("CASE-B", "TRANSFER", at), at)
    bus.deliver(at)
    last = bus.of("CASE-A")[-1]
    assert last["to_phase"] == "TRANSFERRED" and "[merged case CASE-B]" in last["reasons"] and not bus.rejected
    # time passes: the survivor's own duty and the absorbed one breach once each, on the survivor
    bus.tick(T0 + timedelta(days=30))
    bus.tick(T0 + timedelta(days=31))
    breaches = [s for s in bus.steps if s["event"] == "DEADLINE_BREACHED"]
    assert {s["case_id"] for s in breaches} == {"CASE-A"}
    assert sorted(s["rule"] for s in breaches) == ["R310 Art.5(2)", "R310 Art.8"]


@pytest.mark.parametrize("absorbed_has_handover", [True, False])
def test_the_outcome_does_not_depend_on_which_arrives_first(absorbed_has_handover: bool) -> None:
    """The survivor had no handover; the merged facts meet the threshold. Whether its own CaseUpdated or the
    absorbed case's carryover reaches its partition first, the steps are the same: a carried handover continues
    as the survivor's; when the absorbed case had none, the survivor opens its own."""
    outcomes = []
    for carry_first in (True, False):
        bus = Bus({"CASE-A": 0, "CASE-B": 1})
        bus.case(case("CASE-A", gains=WAN))  # below every figure: no handover of its own
        bus.case(case("CASE-B", gains=6 * WAN if absorbed_has_handover else WAN))
        merged_at = T0 + timedelta(hours=2)
        bus.case(case("CASE-B", version=2, merged_into="CASE-A", at=merged_at), merged_at)
        if carry_first:
            bus.deliver(merged_at)
        bus.case(case("CASE-A", version=2, gains=7 * WAN, merged_from=["CASE-B"], at=merged_at), merged_at)
        bus.deliver(merged_at)
        outcomes.append(_comparable(bus.of("CASE-A")))
    assert outcomes[0] == outcomes[1]
    events = [(s["event"], s["decision"]) for s in outcomes[0]]
    assert events == ([("DECISION", "MERGE")] if absorbed_has_handover else [("OPENED", None)])


def test_a_chain_of_merges_and_redeliveries() -> None:
    """B merges into A, then A into C (three partitions' worth on two): every duty ends on C, each once."""
    bus = Bus({"CASE-A": 0, "CASE-B": 1, "CASE-C": 1})
    for c in ("CASE-A", "CASE-B", "CASE-C"):
        bus.case(case(c))
    at = T0 + timedelta(hours=1)
    b_merged = case("CASE-B", version=2, merged_into="CASE-A", at=at)
    bus.case(b_merged, at)
    bus.case(b_merged, at)  # redelivered: carried once
    at2 = T0 + timedelta(hours=2)
    bus.case(case("CASE-A", version=3, merged_into="CASE-C", merged_from=["CASE-B"], at=at2), at2)
    bus.deliver(at2)  # B's carryover reaches A's partition after A has moved on: it follows to C
    bus.case(case("CASE-C", version=2, merged_from=["CASE-A", "CASE-B"], at=at2), at2)
    bus.deliver(at2)
    merges = [s for s in bus.of("CASE-C") if s["decision"] == "MERGE"]
    assert sorted(m["reasons"].split("]")[0] for m in merges) == ["[merged case CASE-A", "[merged case CASE-B"]
    holders = [k for state in bus.states.values() for k, _ in state.range(b"h:", b"h;")]
    assert holders == [b"h:CASE-C"]
    bus.decide(decision("CASE-B", "HEAD_APPROVE", at2, role="HEAD"), at2)  # named B, on B's partition
    bus.deliver(at2)
    assert bus.of("CASE-C")[-1]["to_phase"] == "APPROVED" and "CASE-B" in bus.of("CASE-C")[-1]["reasons"]


def test_a_decision_naming_a_merged_case_without_a_handover_is_refused() -> None:
    bus = Bus({"CASE-A": 0, "CASE-B": 1})
    bus.case(case("CASE-A"))
    bus.case(case("CASE-B", gains=WAN))
    bus.case(case("CASE-B", version=2, merged_into="CASE-A"))
    bus.case(case("CASE-A", version=2, merged_from=["CASE-B"]))
    bus.deliver()
    before = len(bus.of("CASE-A"))
    bus.decide(decision("CASE-B", "HEAD_APPROVE", T0, role="HEAD"), T0)
    bus.deliver()
    assert bus.rejected == ["HANDOVER_NOT_OPEN"] and len(bus.of("CASE-A")) == before


def test_two_absorbed_cases_in_every_order_give_the_same_steps() -> None:
    """B (with a handover) and D (without) merge into A (without): whatever the order of A's CaseUpdated and the
    two carryovers, B's handover continues as A's and A opens nothing of its own."""
    outcomes = []
    for order in itertools.permutations(("A", "B", "D")):
        bus = Bus({"CASE-A": 0, "CASE-B": 1, "CASE-D": 1})
        bus.case(case("CASE-A", gains=WAN))
        bus.case(case("CASE-B"))
        bus.case(case("CASE-D", gains=WAN))
        at = T0 + timedelta(hours=2)
        for c in ("CASE-B", "CASE-D"):
            bus.case(case(c, version=2, merged_into="CASE-A", at=at), at)
        carried = {r.key.decode(): r for r in bus.carry[0]}  # both keyed CASE-A: tell them apart by what they carry
        by_absorbed = {decode(CATALOG, r.value)[1]["absorbed"]: r for r in bus.carry[0]}
        assert len(carried) == 1 and set(by_absorbed) == {"CASE-B", "CASE-D"}
        bus.carry[0] = []
        for step in order:
            if step == "A":
                bus.case(case("CASE-A", version=2, gains=9 * WAN, merged_from=["CASE-B", "CASE-D"], at=at), at)
            else:
                bus._run(0, by_absorbed[f"CASE-{step}"], at)
        bus.deliver(at)
        outcomes.append(_comparable(bus.of("CASE-A")))
    assert all(o == outcomes[0] for o in outcomes)
    assert [(s["event"], s["decision"]) for s in outcomes[0]] == [("DECISION", "MERGE")]
