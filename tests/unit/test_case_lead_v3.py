"""CaseLead v3 (issue #19): products, waybill senders, warehouse or return addresses, the shop operator's contact —
round trips, v1/v2 writers read by the v3 reader (and back), masked phones, unchanged digests of older leads."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from leadbus.avro import decode, encode, encode_object, packaged_catalog
from leadbus.contact_phones import canonical_contact_phone, phone_tail
from leadbus.models import CaseLead
from leadbus.processors.core.normalize import normalise

CATALOG = packaged_catalog()
V1, V2, V3 = (CATALOG.version("cn.leadbus.CaseLead", n) for n in (1, 2, 3))
ACCEPTED = CATALOG.latest("cn.leadbus.LeadAccepted")

V3_FIELDS = {
    "products": [{"name": "AJ1 高帮运动鞋", "brand": "耐克"}, {"name": "羽绒服"}],
    "senders": [{"name": "王**", "phone": "138 **** 5678"}, {"name": "王先生", "phone": "尾号５６７８"}, {}],
    "return_addresses": [{"province": "33", "city": "金华市", "detail": "义乌国际商贸城B区3楼1201号"}],
    "operator": {"name": "王小明", "phone": "+86 138-1234-5678"},
}  # fmt: skip


def _v3(make_lead) -> CaseLead:
    return CaseLead.model_validate({**make_lead(), **V3_FIELDS})


def test_v3_fields_round_trip_through_avro_both_writers(make_lead) -> None:
    lead = _v3(make_lead)
    for data in (encode(V3, lead.to_avro()), encode_object(V3, lead)):
        writer, record = decode(CATALOG, data, V3)
        assert writer is V3 and CaseLead.model_validate(record) == lead
    assert lead.senders[2].name is None and lead.products[1].brand is None


@pytest.mark.parametrize("old", [V1, V2])
def test_older_writers_are_read_by_the_v3_reader_with_defaults(make_lead, old) -> None:
    lead = CaseLead.model_validate(make_lead())
    _, record = decode(CATALOG, encode_object(old, lead), V3)
    read = CaseLead.model_validate(record)
    assert read == lead
    assert (read.products, read.senders, read.return_addresses, read.operator) == ([], [], [], None)


def test_a_v3_writer_is_read_by_v1_and_v2_readers(make_lead) -> None:
    lead = _v3(make_lead)
    for old in (V1, V2):
        _, record = decode(CATALOG, encode_object(V3, lead), old)
        assert "senders" not in record and "operator" not in record and record["lead_id"] == lead.lead_id


def test_lead_accepted_embeds_v3() -> None:
    assert ACCEPTED.version >= 6 and ACCEPTED.source["x-leadbus-requires"] == {"cn.leadbus.CaseLead": 3}
    assert CATALOG.versions(ACCEPTED.name)[5].source["x-leadbus-requires"] == {"cn.leadbus.CaseLead": 3}


def test_a_lead_without_v3_fields_keeps_its_json_form_and_digest(make_lead) -> None:
    lead = CaseLead.model_validate(make_lead())
    assert "products" not in lead.to_json() and "operator" not in lead.to_json()
    assert CaseLead.from_json(lead.to_json()) == lead
    with_v3 = _v3(make_lead)
    assert '"senders"' in with_v3.to_json() and CaseLead.from_json(with_v3.to_json()) == with_v3
    # The v2 JSON form, byte for byte (the golden intake file holds the digests of many more).
    norm = normalise(lead).lead
    v2_form = norm.model_dump_json(exclude={"products", "senders", "return_addresses", "operator"})
    assert hashlib.sha256(norm.to_json().encode()).digest() == hashlib.sha256(v2_form.encode()).digest()


def test_normalise_puts_contact_phones_in_one_form_and_keeps_names_as_written(make_lead) -> None:
    norm = normalise(_v3(make_lead)).lead
    assert [s.phone for s in norm.senders] == ["138****5678", "5678", None]
    assert norm.operator is not None and norm.operator.phone == "+8613812345678"
    assert norm.senders[0].name == "王**" and norm.products[0].name == "AJ1 高帮运动鞋"
    plain = CaseLead.model_validate(make_lead())
    assert normalise(plain).lead.senders == []


@pytest.mark.parametrize(("raw", "canonical", "tail"), [
    ("138****5678", "138****5678", "5678"), ("138 xxxx 5678", "138****5678", "5678"),
    ("尾号5678", "5678", "5678"), ("手机尾号：5678", "5678", "5678"), ("*******5678", "*******5678", "5678"),
    ("86138****5678", "138****5678", "5678"), ("13812345678", "+8613812345678", "5678"),
    ("0571-87654321", "057187654321", "4321"), ("５６７８", "5678", "5678"),
])  # fmt: skip
def test_masked_phones(raw: str, canonical: str, tail: str) -> None:
    assert canonical_contact_phone(raw) == canonical and phone_tail(raw) == tail


@pytest.mark.parametrize("raw", ["abc", "12", "138123", "1381234567890", "王先生", "5678abc", "*" * 30])
def test_a_phone_that_is_no_phone_is_refused_with_a_reason(raw: str, make_lead) -> None:
    assert phone_tail(raw) is None
    with pytest.raises(ValidationError, match=r"PHONE_FORMAT|masked"):
        CaseLead.model_validate({**make_lead(), "senders": [{"name": "王", "phone": raw}]})


def test_v3_limits_and_provinces_are_checked(make_lead) -> None:
    with pytest.raises(ValidationError, match=r"UNKNOWN_PROVINCE|province"):
        CaseLead.model_validate({**make_lead(), "return_addresses": [{"province": "99"}]})
    with pytest.raises(ValidationError):
        CaseLead.model_validate({**make_lead(), "products": [{"name": ""}]})
    with pytest.raises(ValidationError):
        CaseLead.model_validate({**make_lead(), "senders": [{"name": "x"}] * 51})
    with pytest.raises(ValidationError):
        CaseLead.model_validate({**make_lead(), "operator": {"name": "王", "wechat": "x"}})
