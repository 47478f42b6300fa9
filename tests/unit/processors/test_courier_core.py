"""The courier channel (寄递渠道): couriers named from waybill formats, cases with waybills routed to SPB only."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadbus.processors.core.courier import (
    POSTAL_TOPIC,
    UNKNOWN,
    identify_courier,
    s10_check_digit,
    trace_request,
)
from leadbus.processors.core.routing import CHANNEL_NO_LONGER_APPLIES, HANDLING_CHANGED, Reached, route_change, routes
from leadbus.producers.simulator import _waybill
from tests.unit.processors.test_routing_core import _case


@pytest.mark.parametrize(("waybill", "code"), [
    ("SF1234567890123", "SF"), ("sf 1234 5678 9012 3", "SF"), ("YT1234567890123", "YTO"),
    ("751234567890", "ZTO"), ("781234567890", "ZTO"), ("JT1234567890123", "JT"), ("JDVA12345678901", "JD"),
    ("EA123456785CN", "EMS"), ("RR123456785CN", "CHINAPOST"), ("EA123456785US", "UPU-US"),
    ("YUNDA:4312345678901", "YUNDA"),  # named by the reporter
])
def test_couriers_from_waybill_formats(waybill: str, code: str) -> None:
    assert identify_courier(waybill).code == code


@pytest.mark.parametrize("waybill", ["EA123456789CN", "SF12", "12345", "", "NOPE:SF1234567890123",
                                     "<script>", "x" * 500])
def test_what_fits_no_format_is_unknown_never_guessed(waybill: str) -> None:
    found = identify_courier(waybill)
    assert found.code == UNKNOWN and found.named_by == "none" and len(found.waybill) <= 64


def test_s10_check_digit_matches_the_upu_example() -> None:
    assert s10_check_digit("47312482") == 9  # UPU S10 worked example: RR473124829GB


def test_every_simulated_waybill_is_identified() -> None:
    rng = random.Random(18)
    for _ in range(500):
        waybill = _waybill(rng, cross_border=rng.random() < 0.5)
        assert identify_courier(waybill).code != UNKNOWN, waybill


@given(st.text(max_size=200))
def test_any_text_yields_a_courier(text: str) -> None:
    assert identify_courier(text).code


def _with_waybills(*waybills: str, **overrides: Any) -> dict[str, Any]:
    return _case(waybills=list(waybills), identifiers=[{"kind": "rid", "value": "11010519491231002X"},
                                                       {"kind": "phone", "value": "+8613812345678"}],
                 suspect_name="王小明", **overrides)


def test_a_case_with_waybills_reaches_spb_and_one_without_does_not() -> None:
    assert POSTAL_TOPIC in {r.topic for r in routes(_with_waybills("SF1234567890123"))}
    assert POSTAL_TOPIC not in {r.topic for r in routes(_case())}
    assert POSTAL_TOPIC not in {r.topic for r in routes(_with_waybills())}


def test_handling_holds_for_spb() -> None:
    assert POSTAL_TOPIC not in {r.topic for r in routes(_with_waybills("SF1234567890123", handling="RESTRICTED"))}
    assert POSTAL_TOPIC in {r.topic for r in routes(
        _with_waybills("SF1234567890123", handling="RESTRICTED", share_with=["SPB"]))}
    assert POSTAL_TOPIC not in {r.topic for r in routes(_with_waybills("SF1234567890123", handling="CONFIDENTIAL"))}
    assert POSTAL_TOPIC in {r.topic for r in routes(
        _with_waybills("SF1234567890123", handling="CONFIDENTIAL", share_with=["SPB"]))}


def test_spb_is_told_when_a_case_no_longer_concerns_it() -> None:
    first = _with_waybills("SF1234567890123")
    reached = Reached(1, tuple(routes(first)))
    confidential = route_change(reached, {**first, "version": 2, "handling": "CONFIDENTIAL"})
    assert [(w.route.topic, w.reason) for w in confidential.withdraw if w.route.topic == POSTAL_TOPIC] == [
        (POSTAL_TOPIC, HANDLING_CHANGED)]
    gone = route_change(reached, {**first, "version": 2, "waybills": []})
    assert [(w.route.topic, w.reason) for w in gone.withdraw] == [(POSTAL_TOPIC, CHANNEL_NO_LONGER_APPLIES)]


def test_the_trace_request_names_couriers_and_carries_no_identity() -> None:
    request = trace_request(_with_waybills("SF1234567890123", "sf1234567890123", "EA123456785CN", "??"))
    assert [(p["waybill"], p["courier"]) for p in request["parcels"]] == [
        ("SF1234567890123", "SF"), ("EA123456785CN", "EMS"), ("??", UNKNOWN)]
    text = repr(request)
    for secret in ("11010519491231002X", "13812345678", "王小明", "sales_amount"):
        assert secret not in text
