"""`leadbus audit rebuild` applies analysts' link decisions (issue #19) where linking applied them among the leads.

A linking stage is played here in memory with the stage's own handler: leads and `LinkDecision`s in one order, its
`CaseUpdated` outputs recorded as they would stand on `leadbus.cases` (the stage's clock as the record time). The
rebuild, given the accepted leads, the decisions and the recorded cases, must find no case difference; moved or
dropped outcomes must be reported with their case ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.audit.rebuild import rebuild
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import decode, encode, encode_object, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Record, Source
from leadbus.processors.linking import LinkingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import CASES, LEADS_ACCEPTED, LEADS_REJECTED, LINK_DECISIONS, intake_topic

CATALOG = packaged_catalog()
START = datetime(2026, 3, 2, 8, tzinfo=UTC)


def _lead(name: str, detail: str, phones: tuple[str, ...] = ()) -> CaseLead:
    doc = next(iter(TrafficGenerator(seed=5).leads(1, START, timedelta(seconds=1)))).model_dump(mode="json")
    doc.update(lead_id=str(uuid.uuid4()), payment_accounts=[], waybills=[], rights_holder=None,
               publisher={"agency": "NCAC", "province": "31", "unit": None},
               subject={"name": name, "kind": "ENTERPRISE", "uscc": None, "id_number": None, "phones": list(phones),
                        "address": {"province": "31", "city": "上海市", "detail": detail}},
               online={"platform": None, "shop_id": None, "urls": [], "ips": [], "icp_filings": []})
    return CaseLead.model_validate(doc)


def _decision(action: str, a: str, b: str | None = None, leads: list[str] | None = None) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "action": action, "case_a": a, "case_b": b, "lead_ids": leads or [],
            "analyst": {"agency": "SAMR", "province": "31", "user": "zhang.wei", "role": "ANALYST"},
            "reason": "the same flat on three reports", "decided_at": START, "suggestion_id": None}


@dataclass
class Stage:
    """The linking stage in memory: what it read, in order, and what it wrote to `leadbus.cases`."""

    handler: LinkingHandler = field(default_factory=lambda: LinkingHandler(CATALOG))
    state: dict[bytes, bytes] = field(default_factory=dict)
    clock: datetime = START
    inputs: list[ReplayRecord] = field(default_factory=list)
    cases: list[ReplayRecord] = field(default_factory=list)
    rejected: list[ReplayRecord] = field(default_factory=list)
    decisions: int = 0

    def _tick(self) -> int:
        self.clock += timedelta(seconds=1)
        return int(self.clock.timestamp() * 1000)

    def lead(self, lead: CaseLead) -> list[dict[str, Any]]:
        value = encode_object(CATALOG.latest("cn.leadbus.CaseLead"), lead)
        ms = self._tick()
        outcome = examine(value, Source(intake_topic("NCAC"), 0, len(self.inputs)), CATALOG, self.clock)
        assert isinstance(outcome, Acceptance), outcome
        accepted = encode(CATALOG.latest("cn.leadbus.LeadAccepted"), accepted_record(outcome, self.clock))
        offset = sum(1 for r in self.inputs if r.topic == LEADS_ACCEPTED)
        record = ReplayRecord(LEADS_ACCEPTED, 0, offset, ms, lead.lead_id.encode(), accepted, (), CATALOG)
        return self._handle(record)

    def decide(self, decision: dict[str, Any]) -> list[dict[str, Any]]:
        value = encode(CATALOG.latest("cn.leadbus.LinkDecision"), decision)
        record = ReplayRecord(LINK_DECISIONS, 0, self.decisions, self._tick(), decision["case_a"].encode(), value, (),
                              CATALOG)
        self.decisions += 1
        return self._handle(record)

    def _handle(self, r: ReplayRecord) -> list[dict[str, Any]]:
        self.inputs.append(r)
        ms = self._tick()  # linking takes it in after it was written
        view = _View(self.state)
        result = self.handler.handle(Record(r.topic, r.partition, r.offset, r.key, r.value, (), r.timestamp_ms),
                                     view, self.clock)
        for key, value in result.state.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        out = []
        for o in result.outputs:
            if o.topic == CASES:
                self.cases.append(ReplayRecord(CASES, 0, len(self.cases), ms, o.key, o.value, (), CATALOG))
                out.append(decode(CATALOG, o.value)[1])
            elif o.topic == LEADS_REJECTED:
                self.rejected.append(ReplayRecord(LEADS_REJECTED, 0, len(self.rejected), ms, o.key, o.value, (),
                                                  CATALOG))
        return out

    def records(self) -> list[ReplayRecord]:
        return [*self.inputs, *self.cases, *self.rejected]


class _View:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if start <= k < stop)


def _case_differences(records: list[ReplayRecord]) -> list[str]:
    return [d.line() for d in rebuild(records, catalog=CATALOG).differences if d.kind == "case"]


def _played() -> tuple[Stage, dict[str, Any]]:
    """Two weak leads confirmed as one; a lead with a phone, a second joining it, split off; a third joining."""
    stage = Stage()
    (c1,) = stage.lead(_lead("上海锐丰贸易有限公司", "浦东新区张杨路1188号3栋502室"))
    (c2,) = stage.lead(_lead("上海锐丰贸易商行", "浦东新区张杨路1188号3栋502室"))
    confirm = _decision("CONFIRM", c2["case_id"], c1["case_id"])
    merged = stage.decide(confirm)
    assert {c["merged_into"] for c in merged} - {None}, "the confirm merged the pair"
    (c3,) = stage.lead(_lead("上海永盛商贸有限公司", "徐汇区漕溪北路1号", phones=("13912345678",)))
    l4 = _lead("上海永盛商贸商行", "徐汇区漕溪北路1号", phones=("13912345678",))
    (c4,) = stage.lead(l4)
    assert c4["case_id"] == c3["case_id"], "a shared phone links"
    split = _decision("SPLIT", c3["case_id"], leads=[l4.lead_id])
    assert len(stage.decide(split)) == 2, "the split made a new case"
    stage.lead(_lead("上海永盛商贸", "徐汇区漕溪北路1号", phones=("13912345678",)))
    stage.decide(dict(confirm))  # the same decision again: linking does nothing
    stage.decide(_decision("CONFIRM", "CASE-0000000000000001", c3["case_id"]))  # refused: no such case
    return stage, {"confirm": confirm, "split": split, "kept": c3["case_id"]}


def test_rebuild_applies_confirm_and_split_where_linking_did() -> None:
    stage, _ = _played()
    assert len(stage.rejected) == 1
    assert _case_differences(stage.records()) == []


def test_rebuild_without_the_decisions_topic_reports_the_merge_and_split_as_differences() -> None:
    stage, played = _played()
    records = [r for r in stage.records() if r.topic != LINK_DECISIONS]
    lines = _case_differences(records)
    assert any(played["kept"] in line for line in lines)
    assert lines


def test_a_dropped_decision_outcome_is_reported_with_its_case_id() -> None:
    stage, played = _played()
    split_id = played["split"]["decision_id"]
    kept = [r for r in stage.cases
            if not any(e["decision_id"] == split_id for e in r.event["link_history"]) or r.event["version"] > 3]
    records = [*stage.inputs, *kept, *stage.rejected]
    lines = _case_differences(records)
    assert any(played["kept"] in line and "missing" in line for line in lines), lines


def test_a_decision_recorded_as_refused_but_applicable_is_a_difference() -> None:
    stage, played = _played()
    # Say linking refused the split (a forged dead letter), and drop what it wrote: the rebuild applies it.
    split_id = played["split"]["decision_id"]
    letter = dict(decode(CATALOG, stage.rejected[0].value or b"")[1])
    offset = next(r.offset for r in stage.inputs if r.topic == LINK_DECISIONS and split_id.encode() in (r.value or b""))
    letter["source"] = {**letter["source"], "topic": LINK_DECISIONS, "partition": 0, "offset": offset}
    forged = ReplayRecord(LEADS_REJECTED, 0, 1, stage.rejected[0].timestamp_ms, None,
                          encode(CATALOG.latest("cn.leadbus.LeadRejected"), letter), (), CATALOG)
    lines = _case_differences([*stage.records(), forged])
    assert any(split_id in line and "refused as" in line for line in lines), lines


def _rewritten(stage: Stage, change: Any) -> list[ReplayRecord]:
    """The stage's records with each recorded case re-encoded as ``change`` gives (schema entry, event)."""
    cases = []
    for r in stage.cases:
        entry, event = change(dict(decode(CATALOG, r.value or b"")[1]))
        cases.append(ReplayRecord(CASES, 0, r.offset, r.timestamp_ms, r.key, encode(entry, event), (), CATALOG))
    return [*stage.inputs, *cases, *stage.rejected]


def test_cases_recorded_before_v5_are_not_differences_for_lacking_weak_signals() -> None:
    """Linking writes CaseUpdated v5 (weak signals and provinces, for the suggesting stage: issue #16); an archive
    reaching back before it holds v4 records, which the rebuild compares on the fields they carry."""
    stage, _ = _played()
    latest = CATALOG.latest("cn.leadbus.CaseUpdated")
    v4 = [e for e in CATALOG.versions("cn.leadbus.CaseUpdated") if e is not latest][-1]
    assert _case_differences(_rewritten(stage, lambda event: (v4, event))) == []

    def forged(event: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return latest, {**event, "weak_signals": ["addr:forged"]}

    lines = _case_differences(_rewritten(stage, forged))
    assert lines and all("weak_signals" in line for line in lines), lines
