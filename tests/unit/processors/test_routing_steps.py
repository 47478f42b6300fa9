"""Handover steps reach each region through its own topic (routing), never the national one.

The routing step is driven here without Kafka: records in, outputs and state writes out, the state
kept in a dict the way the stage keeps it per partition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.processors.core.handover import open_handover
from leadbus.processors.core.records import Record, Result
from leadbus.processors.routing import TOPICS, RoutingHandler
from leadbus.topics import CASES, HANDOVER, region_topic
from tests.memory_state import MemoryState as State

CATALOG = packaged_catalog()
CASE = CATALOG.latest("cn.leadbus.CaseUpdated")
STEP = CATALOG.latest("cn.leadbus.HandoverStep")
T = datetime(2026, 11, 1, tzinfo=UTC)
_FACTS = ["illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen", "goods_value_fen", "copies",
          "works", "clicks", "members", "trademark_kinds", "labels", "loss_fen"]


def _case(version: int, provinces: list[str], handling: str = "OPEN") -> bytes:
    case: dict[str, Any] = {
        "case_id": "CASE-STEPS0000000001", "version": version, "members": ["l1"], "suspect_name": "某某贸易有限公司",
        "reporters": [{"agency": "SAMR", "province": p} for p in provinces], "identifiers": [],
        "suspect_province": provinces[0], "categories": ["FOOD"], "violations": ["ART_140"],
        "facts": dict.fromkeys(_FACTS), "first_reported_at": T, "last_reported_at": T, "handling": handling,
        "share_with": [], "cross_border": False, "countries": [], "merged_from": [], "merged_into": None,
        "updated_at": T,
    }
    return encode(CASE, case)


def _steps() -> list[bytes]:
    _, steps = open_handover("CASE-STEPS0000000001", "SAMR", "33", at=T - timedelta(days=5),
                             assessment="王小明 11010519491231002X 销售金额六万元")
    return [encode(STEP, {**s.__dict__, "reasons": "负责人: 李四 13812345678", "recorded_at": T}) for s in steps]


def _run(handler: RoutingHandler, state: State, topic: str, value: bytes, offset: int = 0) -> Result:
    result = handler.handle(Record(topic, 0, offset, b"CASE-STEPS0000000001", value), state, T)
    state.apply(result)
    return result


def _regional_steps(result: Result) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in result.outputs:
        writer, record = decode(CATALOG, o.value)
        if writer.name == "cn.leadbus.HandoverStep":
            out.setdefault(o.topic, []).append(record)
    return out


def test_the_stage_reads_the_handover_topic_too() -> None:
    assert TOPICS == [CASES, HANDOVER]


def test_steps_go_to_the_regions_the_case_reached_without_free_text() -> None:
    handler, state = RoutingHandler(CATALOG), State()
    _run(handler, state, CASES, _case(1, ["33"]))  # Zhejiang: 长三角 only
    step = _steps()[0]
    sent = _regional_steps(_run(handler, state, HANDOVER, step))
    assert list(sent) == [region_topic("yrd")]
    assert sent[region_topic("yrd")][0]["reasons"] == "" and sent[region_topic("yrd")][0]["assessment"] == ""
    assert _regional_steps(_run(handler, state, HANDOVER, step)) == {}, "a step is forwarded once"


def test_a_step_before_its_case_waits_and_a_region_reached_later_gets_earlier_steps() -> None:
    handler, state = RoutingHandler(CATALOG), State()
    steps = _steps()
    assert _run(handler, state, HANDOVER, steps[0]).outputs == []  # the case was not routed yet: nowhere
    first = _run(handler, state, CASES, _case(1, ["33"]))
    topics = [o.topic for o in first.outputs if o.topic.startswith("leadbus.region.")]
    assert topics == [region_topic("yrd"), region_topic("yrd")], "the bulletin, then the step"
    for later in steps[1:]:
        assert list(_regional_steps(_run(handler, state, HANDOVER, later))) == [region_topic("yrd")]
    # a reporter in Guangdong joins: 泛珠三角 now gets the bulletin and every step so far, in order
    second = _run(handler, state, CASES, _case(2, ["33", "44"]))
    got = _regional_steps(second)
    assert list(got) == [region_topic("pprd")]
    assert [s["seq"] for s in got[region_topic("pprd")]] == sorted(decode(CATALOG, s)[1]["seq"] for s in steps)


def test_a_case_withdrawn_from_a_region_gets_no_more_steps_there() -> None:
    handler, state = RoutingHandler(CATALOG), State()
    steps = _steps()
    _run(handler, state, CASES, _case(1, ["33"]))
    _run(handler, state, CASES, _case(2, ["33"], handling="CONFIDENTIAL"))
    assert _regional_steps(_run(handler, state, HANDOVER, steps[0])) == {}
