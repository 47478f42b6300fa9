"""The intake step without a broker: both halves over an in-memory state, as every engine hosts them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.limits import MAX_EVENT_BYTES
from leadbus.models import CaseLead
from leadbus.processors.core.records import Record
from leadbus.processors.intake import IntakeHandler
from leadbus.topics import INTAKE_BY_LEAD, LEADS_ACCEPTED, LEADS_REJECTED

CATALOG = packaged_catalog()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class _State(dict):
    def get(self, key: bytes) -> bytes | None:  # type: ignore[override]
        return super().get(key)


def _through(handler: IntakeHandler, state: _State, value: bytes, *, topic: str = "leadbus.intake.SAMR",
             partition: int = 0, key: bytes | None = None) -> list:
    first = handler.handle(Record(topic, partition, 7, key, value), state, NOW)
    assert not first.state, "the first half owns no state"
    out = []
    for o in first.outputs:
        if o.topic != INTAKE_BY_LEAD:
            out.append(o)
            continue
        second = handler.handle(Record(INTAKE_BY_LEAD, 3, 9, o.key, o.value, tuple(o.headers)), state, NOW)
        state.update(second.state)
        out += second.outputs
    return out


def _lead(make_lead, **changes) -> bytes:
    lead = CaseLead.model_validate(make_lead(**changes), context={"now": NOW})
    return encode(CATALOG.latest("cn.leadbus.CaseLead"), lead.to_avro())


def test_a_lead_goes_through_the_repartition_keyed_by_its_normalised_id(make_lead) -> None:
    handler = IntakeHandler()
    value = _lead(make_lead, lead_id="0F1E2D3C-4B5A-4978-8877-665544332211")
    first = handler.handle(Record("leadbus.intake.SAMR", 2, 5, b"whatever-key", value), _State(), NOW)
    (examined,) = first.outputs
    assert examined.topic == INTAKE_BY_LEAD and examined.key == b"0f1e2d3c-4b5a-4978-8877-665544332211"
    assert dict(examined.headers)[("lead_id")] == b"0f1e2d3c-4b5a-4978-8877-665544332211"


def test_once_then_dropped_then_a_conflict_whatever_the_partition(make_lead) -> None:
    handler, state = IntakeHandler(), _State()
    lead = make_lead()
    value = _lead(make_lead, lead_id=lead["lead_id"])
    (accepted,) = _through(handler, state, value, partition=0)
    assert accepted.topic == LEADS_ACCEPTED
    event = decode(CATALOG, accepted.value)[1]
    assert bytes(event["original"]) == value and event["source"]["partition"] == 0
    assert _through(handler, state, value, partition=2, key=None) == []  # a redelivery elsewhere: dropped
    changed = _lead(make_lead, lead_id=lead["lead_id"].upper(), description="另一个内容")
    (refused,) = _through(handler, state, changed, partition=1)
    letter = decode(CATALOG, refused.value)[1]
    assert refused.topic == LEADS_REJECTED and letter["reason"] == "REVISION_CONFLICT"
    assert bytes(letter["original"]) == changed and letter["source"]["partition"] == 1


def test_an_oversized_record_is_refused_in_the_first_half_with_a_prefix() -> None:
    value = b"\xc3\x01" + bytes(8) + b"z" * MAX_EVENT_BYTES
    (out,) = _through(IntakeHandler(), _State(), value)
    letter = decode(CATALOG, out.value)[1]
    assert letter["reason"] == "OVERSIZED" and letter["original_truncated"]
    assert letter["original_size"] == len(value) and len(letter["original"]) == 4096


def test_a_repartition_record_without_its_headers_raises_for_the_stage_to_dead_letter(make_lead) -> None:
    with pytest.raises(ValueError, match="lacks its examined-lead headers"):
        IntakeHandler().handle(Record(INTAKE_BY_LEAD, 0, 0, b"k", _lead(make_lead)), _State(), NOW)
