"""The lead's JSON form (what intake's content digest is taken over) written by orjson equals pydantic's serializer
byte for byte (issue #16): on simulated leads, normalised, with every mix of v3 fields, and with hostile text."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic_core import PydanticSerializationError

from leadbus.models import V3_FIELDS, CaseLead
from leadbus.processors.core.normalize import normalise
from leadbus.producers.simulator import TrafficGenerator

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
HOSTILE = [
    "".join(chr(c) for c in range(1, 0x80)), 'quote " and \\ backslash \\" /', "\u2028\u2029\x7f\u0085\ufeff",
    "中文 全角１２３ 😀 e\u0301", "a\x00b", "x" * 5000, "</script>&<>'",
]
V3_PARTS: dict[str, Any] = {
    "products": [{"name": '款式 "AJ1"', "brand": "耐克\\"}], "senders": [{"name": "王**", "phone": "138****5678"}],
    "return_addresses": [{"province": "33", "detail": "义乌\t国际商贸城"}], "operator": {"name": "王\n小明"},
}


def _simulated(n: int) -> list[dict[str, Any]]:
    leads = TrafficGenerator(seed=11).leads(n, NOW - timedelta(hours=3), timedelta(seconds=1))
    return [lead.to_avro() for lead in leads]


def _same(lead: CaseLead) -> None:
    assert lead.json_bytes() == lead.serializer_json_bytes()
    assert lead.to_json() == lead.serializer_json_bytes().decode()


def test_simulated_leads_as_published_and_normalised() -> None:
    for record in _simulated(400):
        lead = CaseLead.model_validate(record, context={"now": NOW})
        _same(lead)
        _same(normalise(lead).lead)


def test_every_mix_of_v3_fields() -> None:
    base = _simulated(1)[0]
    for mask in range(16):
        parts = {name: V3_PARTS[name] for bit, name in enumerate(V3_FIELDS) if mask >> bit & 1}
        lead = CaseLead.model_validate({**base, **parts})
        _same(lead)
        _same(normalise(lead).lead)
        assert (b'"products"' in lead.json_bytes()) == (mask != 0)


def test_hostile_text_numbers_and_dates() -> None:
    rng = random.Random(5)
    for record in _simulated(60):
        text = rng.choice(HOSTILE)
        record["description"] = text
        record["subject"]["name"] = "x" + text[:150]
        record["publisher"]["unit"] = text
        record["rights_holder"] = {"name": text, "registration": None}
        record["facts"]["sales_amount_fen"] = rng.choice([0, 1, 2**31, 2**63 - 1])
        record["revision"] = rng.choice([0, 2**31 - 1])
        record["conduct_from"] = date(2000, 1, 1)
        record["reported_at"] = datetime(2026, 11, 20, 1, 2, 3, rng.choice([0, 1000, 999000]), tzinfo=UTC)
        record["evidence"] = [{"kind": text, "uri": text, "sha256": "0" * 64}]
        _same(CaseLead.model_validate(record))


def test_what_orjson_refuses_is_refused_as_before() -> None:
    record = _simulated(1)[0]
    lead = CaseLead.model_validate(record).model_copy(update={"description": "lone \ud800 surrogate"})
    with pytest.raises(PydanticSerializationError):
        lead.serializer_json_bytes()
    with pytest.raises(PydanticSerializationError):
        lead.json_bytes()
