"""The SDK's edge (#16): what validation lets through but UTF-8 cannot write is refused as invalid, and the
publish path's shortcuts (fixed headers of the default sealer, the delivery noted in the callback) change nothing
a caller sees."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from leadbus.models import CaseLead
from leadbus.producers import InvalidLead, Publisher
from leadbus.producers.publisher import Delivery, PendingDelivery, UnsealedEvents
from leadbus.producers.simulator import TrafficGenerator
from tests.unit.test_sdk_dict_path import AGENCY, NOW, RecordingProducer, _publisher


def _lead() -> CaseLead:
    for lead in TrafficGenerator(seed=7).leads(200, NOW - timedelta(days=1), timedelta(seconds=30)):
        if lead.publisher.agency == AGENCY and lead.subject.phones:
            return lead
    raise AssertionError("no lead of the agency with phones")


def _with(lead: CaseLead, **update: Any) -> CaseLead:
    return lead.model_copy(update=update)  # as a caller may build one: model_copy does not validate


@pytest.mark.parametrize(("build", "field", "char"), [
    (lambda lead: _with(lead, description="线索 \ud800 描述"), "description", "U+D800"),
    (lambda lead: _with(lead, description="\udfff"), "description", "U+DFFF"),
    (lambda lead: _with(lead, subject=lead.subject.model_copy(update={"phones": ["13812345678", "138\udc00"]})),
     "subject.phones.1", "U+DC00"),
    (lambda lead: _with(lead, waybills=["SF1", "SF\ud83d"]), "waybills.1", "U+D83D"),
    (lambda lead: _with(lead, publisher=lead.publisher.model_copy(update={"unit": "局\udcff"})), "publisher.unit",
     "U+DCFF"),
])
def test_a_lone_surrogate_is_a_validation_error_naming_the_field(build, field, char) -> None:
    pub, producer = _publisher()
    lead = build(_lead())
    with pytest.raises(InvalidLead) as err:
        pub.publish(lead)
    (error,) = err.value.errors
    assert (error.field, error.code) == (field, "INVALID_FIELD")
    assert "lone surrogate" in error.message and char in error.message
    assert producer.records == []


def test_every_field_with_a_lone_surrogate_is_named_and_publish_many_publishes_nothing() -> None:
    pub, producer = _publisher()
    good = _lead()
    bad = _with(good, description="\ud800", waybills=["\udfff"])
    with pytest.raises(InvalidLead) as err:
        pub.publish_many([good, bad])
    assert err.value.fields == ["waybills.0", "description"]  # in the contract's field order
    assert producer.records == []


@pytest.mark.parametrize("text", ["\ud800", "ok\udfff", "\ud83d\ude00"])
def test_a_dict_with_a_lone_surrogate_is_refused_before_encoding(text: str) -> None:
    pub, producer = _publisher()
    doc = json.loads(_lead().to_json())
    doc["description"] = text
    with pytest.raises(InvalidLead) as err:
        pub.publish(doc)
    assert err.value.fields == ["description"] and err.value.errors[0].code == "INVALID_FIELD"
    assert producer.records == []


def test_a_surrogate_escape_in_json_text_is_refused_and_a_real_pair_is_published() -> None:
    pub, producer = _publisher()
    text = _lead().to_json()
    with pytest.raises(InvalidLead):
        pub.publish(json.loads(text.replace('"description":"', '"description":"\\ud800', 1)))
    pub.publish(json.loads(text.replace('"description":"', '"description":"\\ud83d\\udca5', 1)))  # 💥: a pair
    assert len(producer.records) == 1


class _Stamped(UnsealedEvents):
    def seal(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> list[tuple[str, bytes]]:
        return [("content-type", b"application/vnd.leadbus.avro"), ("stamp", key)]


def test_a_sealer_of_its_own_gets_every_event_even_when_it_is_an_unsealed_kind() -> None:
    pub = Publisher(AGENCY, "33", bootstrap_servers="127.0.0.1:1", clock=lambda: NOW, sealer=_Stamped())
    producer = RecordingProducer()
    pub._producer = producer
    lead = _lead()
    pub.publish(lead)
    pub.publish(json.loads(lead.to_json()))
    assert [r[2] for r in producer.records] == [[("content-type", b"application/vnd.leadbus.avro"),
                                                 ("stamp", lead.lead_id.encode())]] * 2


class _Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


def test_a_pending_delivery_resolves_to_the_same_delivery_as_before() -> None:
    pending = PendingDelivery("lead-1", "leadbus.intake.SAMR")
    assert not pending.done()
    pending._on_delivery(None, _Message("leadbus.intake.SAMR", 2, 41))
    assert pending.done() and pending.exception() is None
    assert pending.result() == Delivery("lead-1", "leadbus.intake.SAMR", 2, 41)
    assert pending.result() is pending.result()
    bare = PendingDelivery("lead-2")  # made without a topic: the message's
    bare._on_delivery(None, _Message("leadbus.intake.MPS", 0, 7))
    assert bare.result() == Delivery("lead-2", "leadbus.intake.MPS", 0, 7)
    failed = PendingDelivery("lead-3", "t")
    failed._on_delivery("Broker: timed out", None)
    assert failed.done() and "not delivered" in str(failed.exception())
