"""Schemas evolve FULL_TRANSITIVE: every released version pair reads both ways."""

from __future__ import annotations

import copy
import itertools

import pytest

from leadbus.avro import packaged_catalog
from leadbus.avro.compat import full_incompatibilities, incompatibilities

CATALOG = packaged_catalog()


@pytest.mark.parametrize("name", CATALOG.names())
def test_every_released_version_pair_is_full_transitive(name: str) -> None:
    versions = CATALOG.versions(name)
    assert versions, f"no released version of {name}"
    assert [v.version for v in versions] == list(range(1, len(versions) + 1)), "versions must be v1..vN"
    for old, new in itertools.combinations(versions, 2):
        assert full_incompatibilities(old.parsed, new.parsed) == [], f"{name} v{old.version} → v{new.version}"


def _lead_schema() -> dict:
    return copy.deepcopy(dict(CATALOG.latest("cn.leadbus.CaseLead").expanded))


def test_removing_a_field_without_default_is_caught() -> None:
    old = _lead_schema()
    new = _lead_schema()
    new["fields"] = [f for f in new["fields"] if f["name"] != "reported_at"]
    problems = full_incompatibilities(old, new)
    assert any("reported_at" in p and p.startswith("forward") for p in problems)


def test_retyping_a_field_is_caught() -> None:
    old = _lead_schema()
    new = _lead_schema()
    for field in new["fields"]:
        if field["name"] == "revision":
            field["type"] = "string"
    assert any("revision" in p for p in full_incompatibilities(old, new))


def test_adding_a_field_without_default_is_caught_backward() -> None:
    old = _lead_schema()
    new = _lead_schema()
    new["fields"].append({"name": "priority", "type": "int"})
    assert any(p.startswith("backward") and "priority" in p for p in full_incompatibilities(old, new))


def test_int_to_long_promotion_is_one_way() -> None:
    assert incompatibilities("long", "int") == []
    assert incompatibilities("int", "long") != []


def test_enum_without_default_cannot_gain_symbols() -> None:
    old = {"type": "enum", "name": "E", "symbols": ["A"]}
    new = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    assert incompatibilities(old, new) != []
    assert incompatibilities({**old, "default": "A"}, new) == []
