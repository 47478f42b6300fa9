"""One list of handover kinds: the contract's enum, the model's field and the state machine agree."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from pydantic import ValidationError

from leadbus.models import HandoverDecision, HandoverKind
from leadbus.processors.core.handover import Kind


def _symbols(version: str) -> list[str]:
    doc = json.loads(resources.files("leadbus.schemas").joinpath(f"handover_decision/{version}.avsc").read_text())
    (kind,) = [f for f in doc["fields"] if f["name"] == "kind"]
    # UNSPECIFIED is the enum's default: what a reader of an older version sees for a kind it does not know
    assert kind["type"].get("default") in (None, "UNSPECIFIED")
    return [s for s in kind["type"]["symbols"] if s != "UNSPECIFIED"]


def test_the_latest_schema_the_model_and_the_machine_list_the_same_kinds() -> None:
    assert Kind is HandoverKind
    assert _symbols("v2") == [k.value for k in HandoverKind]


def test_every_kind_of_v1_is_still_a_kind() -> None:
    assert set(_symbols("v1")) <= {k.value for k in HandoverKind}


def test_an_unknown_kind_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="kind"):
        HandoverDecision.model_validate({
            "decision_id": "d-1", "case_id": "CASE-0123456789ABCDEF", "kind": "APPROVE_EVERYTHING",
            "actor": {"agency": "SAMR", "province": "33", "role": "AGENCY"},
            "decided_at": "2026-11-29T08:00:00+08:00"})
