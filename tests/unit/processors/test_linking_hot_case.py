"""A case that keeps growing (issue #16): a big case is summarised from totals kept lead by lead
(`core/case_totals.py`), and what the stage writes — every output's bytes and every state write — equals what the
full summary of every member gives, on a hub case with revisions, leads reported at the same time, automatic merges
either way, analysts' confirms and splits, and on the golden corpus with every case summarised from its totals."""

from __future__ import annotations

import copy
import os
from datetime import timedelta
from typing import Any

import pytest

from leadbus.processors.core import case_totals
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import CASES, LEADS_ACCEPTED, LINK_DECISIONS
from tests.unit.processors.linking_golden import BATCH, GOLDEN, NOW, MemoryState, _accepted, _decision, dumps, run

HUB = "13800138000"
#: leads in the hub test (LEADBUS_HOT_LEADS=3000 for a longer run)
LEADS = int(os.environ.get("LEADBUS_HOT_LEADS", "900"))


def _hub_traffic(n: int) -> list[tuple[str, bytes]]:
    """Leads sharing one phone; every 7th revises an earlier lead (facts, time, handling, waybills changed), every
    11th is reported at the very time of an earlier one, every 97th reports a new shop alone and the next lead links
    that shop to the hub (a small case absorbed), and an older case the hub is absorbed into; analysts confirm and
    split now and then."""
    generator = TrafficGenerator(seed=23, same_suspect_share=0.3)
    start = NOW - timedelta(days=2)
    records = [lead.to_avro() for lead in generator.leads(n, start, timedelta(seconds=3))]
    out: list[tuple[str, bytes]] = []
    older = copy.deepcopy(records[0])  # the oldest case: a lead of a shop the hub reaches later
    older["lead_id"] = "00000000-0000-4000-8000-00000000aaaa"
    older["subject"] = {**older["subject"], "phones": []}
    older["online"] = {**older["online"], "platform": "淘宝", "shop_id": "TB777000111"}
    out.append((LEADS_ACCEPTED, _accepted(older, 0)))
    hubbed: list[dict[str, Any]] = []
    decisions = 0
    for i, record in enumerate(records):
        record["subject"] = {**record["subject"], "phones": [HUB]}
        if i % 11 == 5 and hubbed:
            record["reported_at"] = hubbed[i // 2]["reported_at"]  # a tie with a member
        if i % 97 == 50:
            alone = copy.deepcopy(record)
            alone["lead_id"] = f"00000000-0000-4000-8000-{i:012d}"
            alone["subject"] = {**alone["subject"], "phones": []}
            alone["online"] = {**alone["online"], "platform": "京东", "shop_id": f"JD{9000 + i}"}
            out.append((LEADS_ACCEPTED, _accepted(alone, i)))
            record["online"] = {**record["online"], "platform": "京东", "shop_id": f"JD{9000 + i}"}
        if i == n // 2:  # the hub reaches the oldest case's shop: the hub case is absorbed into it
            record["online"] = {**record["online"], "platform": "淘宝", "shop_id": "TB777000111"}
        hubbed.append(record)
        out.append((LEADS_ACCEPTED, _accepted(record, i)))
        if i % 7 == 3 and i > 10:
            revised = copy.deepcopy(hubbed[(i * 5) % len(hubbed)])
            revised["revision"] += 1 + i % 3
            revised["facts"] = {**revised["facts"], "sales_amount_fen": 1000 * i, "trademark_kinds": i % 5}
            if i % 3 == 0:
                revised["reported_at"] = revised["reported_at"] + timedelta(minutes=i % 50)
            elif i % 3 == 1:
                revised["reported_at"] = start - timedelta(minutes=i)  # earlier than every member
            revised["handling"] = ("OPEN", "RESTRICTED", "CONFIDENTIAL")[i % 3]
            revised["share_with"] = [] if revised["handling"] == "OPEN" else revised["share_with"]
            revised["waybills"] = hubbed[i // 3]["waybills"] + revised["waybills"][:1]
            out.append((LEADS_ACCEPTED, _accepted(revised, i)))
        if i % 301 == 300:  # analysts split two leads off the hub case, then confirm them back
            decisions += 1
            moved = sorted(r["lead_id"] for r in hubbed[i - 40:i - 38])
            out.append((LINK_DECISIONS, ("split", moved)))  # type: ignore[arg-type]
    return out


def _run(items: list[tuple[str, Any]], handler: LinkingHandler) -> tuple[list[list[tuple[str, bytes, bytes]]],
                                                                           list[dict[bytes, bytes | None]]]:
    """Outputs and state writes per record; a split names the case its first lead is in when it comes."""
    state = MemoryState()
    outputs, writes = [], []
    case_of: dict[str, str] = {}
    n = 0
    for offset, (topic, value) in enumerate(items):
        if topic == LINK_DECISIONS:
            n += 1
            moved = value[1]
            case_id = case_of[moved[0]]
            value = _decision(n, "SPLIT", case_id, None, moved)
            result = handler.handle(Record(topic, 0, offset, None, value), state, NOW)
            new = next(o.key.decode() for o in result.outputs if o.topic == CASES and o.key.decode() != case_id)
            n += 1
            confirm = _decision(n, "CONFIRM", case_id, new)
            outputs.append([(o.topic, o.key, o.value) for o in result.outputs])
            writes.append(result.state)
            state.pending.update(result.state)
            result = handler.handle(Record(topic, 0, offset, None, confirm), state, NOW)
        else:
            result = handler.handle(Record(topic, 0, offset, None, value), state, NOW)
        outputs.append([(o.topic, o.key, o.value) for o in result.outputs])
        writes.append(result.state)
        state.pending.update(result.state)
        for key, written in result.state.items():
            if key.startswith(b"l:") and written is not None:
                case_of[key[2:].decode()] = written.decode()
        if offset % BATCH == 0:
            state.commit()
    return outputs, writes


def test_a_hub_case_summarised_from_its_totals_writes_what_the_full_summary_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    items = _hub_traffic(LEADS)
    joined = []
    join = case_totals.HotLinker._join

    def counted(self: case_totals.HotLinker, *args: Any) -> Any:
        outcome = join(self, *args)
        joined.append(outcome is not None)
        return outcome

    monkeypatch.setattr(case_totals.HotLinker, "_join", counted)
    hot = _run(items, LinkingHandler())
    monkeypatch.setattr(case_totals, "HOT_MEMBERS", 10**9)  # every case summarised from all its members
    full = _run(items, LinkingHandler())
    assert len(hot[0]) == len(full[0])
    for offset, (a, b) in enumerate(zip(hot[0], full[0], strict=True)):
        assert a == b, f"outputs differ at {offset}"
    for offset, (a, b) in enumerate(zip(hot[1], full[1], strict=True)):
        assert list(a.items()) == list(b.items()), f"state writes differ at {offset}"  # in the changelog's order
    # most leads took the quick path; the fallbacks (ties, revisions taking an earliest carrier away) were taken too
    assert sum(joined) > 0.8 * LEADS and joined.count(False) >= 5


def test_the_golden_corpus_with_every_case_summarised_from_its_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, reference_state = run()
    monkeypatch.setattr(case_totals, "HOT_MEMBERS", 1)
    lines, state = run()
    assert dumps(lines) == GOLDEN.read_text(encoding="utf-8").splitlines() == dumps(reference)
    assert state.committed == reference_state.committed


def _with_a_failing_step(items: list[tuple[str, Any]], failing: set[int]) -> list[list[tuple[str, bytes, bytes]]]:
    """Outputs per record of a host that drops the writes of a step that raised (as the stage does)."""
    from leadbus.processors import linking as linking_stage

    handler, state, outputs = LinkingHandler(), MemoryState(), []
    summarise = linking_stage.case_updated_record
    for offset, (topic, value) in enumerate(items):
        if offset in failing:
            def broken(*_: Any, **__: Any) -> Any:
                raise RuntimeError("a step that fails after linking")

            linking_stage.case_updated_record = broken  # type: ignore[assignment]
            try:
                with pytest.raises(RuntimeError):
                    handler.handle(Record(topic, 0, offset, None, value), state, NOW)
            finally:
                linking_stage.case_updated_record = summarise
            continue
        result = handler.handle(Record(topic, 0, offset, None, value), state, NOW)
        outputs.append([(o.topic, o.key, o.value) for o in result.outputs])
        state.pending.update(result.state)
    return outputs


def test_a_step_that_fails_on_a_hub_case_leaves_no_totals_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [item for item in _hub_traffic(160) if item[0] == LEADS_ACCEPTED]
    failing = {100, 101, 130}  # the hub case's totals were taken for these and changed: never used again
    hot = _with_a_failing_step(items, failing)
    monkeypatch.setattr(case_totals, "HOT_MEMBERS", 10**9)
    assert hot == _with_a_failing_step(items, failing)
