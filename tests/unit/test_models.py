"""The pydantic contract and the SDK's validation (no broker needed: the producer is lazy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadbus.models import CaseLead
from leadbus.producers import InvalidLead, Publisher

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def publisher() -> Publisher:
    return Publisher("SAMR", "33", bootstrap_servers="127.0.0.1:1", clock=lambda: NOW)


def test_valid_lead_passes_and_json_form_reads_back_equal(make_lead, publisher: Publisher) -> None:
    lead = publisher.validate(make_lead())
    assert CaseLead.from_json(lead.to_json()) == lead
    assert lead.reported_at.tzinfo is not None


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"subject.id_number": "110105194912310021"}, "subject.id_number", "RESIDENT_ID_CHECKSUM"),
        ({"subject.address.province": "99"}, "subject.address.province", "UNKNOWN_PROVINCE"),
        ({"publisher.province": "72"}, "publisher.province", "UNKNOWN_PROVINCE"),
        ({"facts.sales_amount_fen": -1}, "facts.sales_amount_fen", "OUT_OF_RANGE"),
        ({"payment_accounts": ["6222021234567890129"]}, "payment_accounts", "BANK_CARD_LUHN"),
        ({"subject.phones": ["12345"]}, "subject.phones", "PHONE_FORMAT"),
        ({"publisher.agency": "SAIC"}, "publisher.agency", "UNKNOWN_AGENCY"),
        ({"channel": "TELEPATHY"}, "channel", "UNKNOWN_ENUM"),
        ({"reported_at": "2026-11-02T09:00:00Z"}, "reported_at", "TIME_IN_FUTURE"),
        ({"grading.accuracy": 7}, "grading.accuracy", "OUT_OF_RANGE"),
        ({"countries": ["usa"]}, "countries", "COUNTRY_CODE"),
    ],
)
def test_invalid_leads_raise_errors_naming_the_field(make_lead, publisher, overrides, field, code) -> None:
    with pytest.raises(InvalidLead) as err:
        publisher.validate(make_lead(**overrides))
    assert any(e.field == field and e.code == code for e in err.value.errors), err.value.errors
    assert field in str(err.value)


def test_missing_field_is_named(make_lead, publisher: Publisher) -> None:
    raw = make_lead()
    del raw["subject"]["name"]
    with pytest.raises(InvalidLead) as err:
        publisher.validate(raw)
    assert [(e.field, e.code) for e in err.value.errors] == [("subject.name", "MISSING_FIELD")]


def test_failing_uscc_check_digit_is_not_an_error(make_lead, publisher: Publisher) -> None:
    # 91350211M0000XUF46: an early pilot code that fails GB 32100's check; intake warns, never rejects.
    lead = publisher.validate(make_lead(**{"subject.uscc": "91350211M0000XUF46"}))
    assert lead.subject.uscc == "91350211M0000XUF46"


def test_lead_of_another_agency_is_refused(make_lead, publisher: Publisher) -> None:
    with pytest.raises(InvalidLead) as err:
        publisher.validate(make_lead(**{"publisher.agency": "GACC"}))
    assert err.value.errors[0].code == "WRONG_PUBLISHER"


def test_invalid_lead_in_a_batch_publishes_nothing(make_lead, publisher: Publisher) -> None:
    batch = [make_lead(), make_lead(**{"facts.goods_value_fen": -5})]
    with pytest.raises(InvalidLead):
        publisher.publish_many(batch)
    assert publisher._producer is None  # nothing reached the producer; it was never even built


def test_reported_at_is_truncated_to_milliseconds(make_lead) -> None:
    lead = CaseLead.model_validate(make_lead(reported_at="2026-11-01T08:00:00.123456+08:00"))
    assert lead.reported_at == datetime(2026, 11, 1, 0, 0, 0, 123000, tzinfo=UTC)


def test_future_check_has_a_tolerance(make_lead, publisher: Publisher) -> None:
    ahead = (NOW + timedelta(minutes=2)).isoformat()
    assert publisher.validate(make_lead(reported_at=ahead)).reported_at > NOW
