"""The pure intake core: decode, validate, normalise, dedupe — and never raise on any bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from leadbus.avro import encode, packaged_catalog
from leadbus.avro.codec import MAGIC
from leadbus.models import CaseLead
from leadbus.processors.core.intake import (
    Acceptance,
    Rejection,
    Seen,
    Source,
    accepted_record,
    dedupe,
    examine,
    rejected_record,
)

CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
NOW = datetime(2026, 11, 2, tzinfo=UTC)
SRC = Source("leadbus.intake.SAMR", 1, 42)


def _bytes(raw: dict) -> bytes:
    return encode(LEAD, CaseLead.model_validate(raw).to_avro())


def test_valid_lead_is_accepted_normalised(make_lead) -> None:
    raw = make_lead(**{"subject.name": "浙江杭州美丽日化有限公司", "subject.id_number": "110105491231002",
                       "online.urls": ["http://WWW.Meili-Shop.cn/item/3/?utm_source=x"]})
    outcome = examine(_bytes(raw), SRC, CATALOG, NOW)
    assert isinstance(outcome, Acceptance)
    lead = outcome.lead
    assert lead.subject.id_number == "11010519491231002X"  # 15-digit form upgraded
    assert lead.subject.phones == ["+8613812345678"]
    assert lead.payment_accounts == ["6222021234567890128"]
    assert lead.online.urls == ["https://meili-shop.cn/item/3"]
    assert outcome.normalised.domains == ("meili-shop.cn",)
    name = outcome.normalised.name
    assert (name.prefix, name.core, name.legal_form) == ("浙江杭州", "美丽日化", "有限公司")
    assert lead.subject.name == "浙江杭州美丽日化有限公司"  # the published name is kept whole
    assert [w.code for w in outcome.warnings] == ["LEGACY_RESIDENT_ID"]


def test_failing_uscc_is_a_warning(make_lead) -> None:
    outcome = examine(_bytes(make_lead(**{"subject.uscc": "91350211M0000XUF46"})), SRC, CATALOG, NOW)
    assert isinstance(outcome, Acceptance)
    assert [w.code for w in outcome.warnings] == ["USCC_CHECKSUM"]


def test_wrong_topic_is_rejected(make_lead) -> None:
    outcome = examine(_bytes(make_lead()), Source("leadbus.intake.GACC", 0, 1), CATALOG, NOW)
    assert isinstance(outcome, Rejection)
    assert (outcome.reason, outcome.field) == ("WRONG_TOPIC", "publisher.agency")


def test_rejections_carry_original_bytes_and_source() -> None:
    data = MAGIC + b"\x01" * 12
    outcome = examine(data, SRC, CATALOG, NOW)
    assert isinstance(outcome, Rejection)
    assert outcome.reason == "DECODE_UNKNOWN_SCHEMA"
    assert outcome.original == data and outcome.source == SRC
    record = rejected_record(outcome, NOW)
    assert record["source"] == {"topic": SRC.topic, "partition": 1, "offset": 42}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_yield_an_outcome_never_an_exception(data: bytes) -> None:
    outcome = examine(data, SRC, CATALOG, NOW)
    assert isinstance(outcome, Acceptance | Rejection)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_body_behind_a_valid_header_yields_an_outcome(body: bytes) -> None:
    outcome = examine(MAGIC + LEAD.fingerprint + body, SRC, CATALOG, NOW)
    assert isinstance(outcome, Acceptance | Rejection)


def test_dedupe_drops_redeliveries_supersedes_and_rejects_conflicts(make_lead) -> None:
    raw = make_lead()
    first = examine(_bytes(raw), SRC, CATALOG, NOW)
    assert isinstance(first, Acceptance)
    emit = dedupe(None, first)
    assert emit.action == "emit" and emit.remember == Seen(0, first.digest)
    assert dedupe(emit.remember, first).action == "drop"

    changed = examine(_bytes({**raw, "description": "更正后的描述"}), SRC, CATALOG, NOW)
    conflict = dedupe(emit.remember, changed)
    assert conflict.action == "reject"
    assert isinstance(conflict.outcome, Rejection) and conflict.outcome.reason == "REVISION_CONFLICT"
    assert conflict.outcome.original  # the conflicting bytes are kept for the auditor

    newer = examine(_bytes({**raw, "revision": 1, "description": "更正后的描述"}), SRC, CATALOG, NOW)
    superseding = dedupe(emit.remember, newer)
    assert superseding.action == "emit" and superseding.remember is not None
    stale = dedupe(superseding.remember, first)
    assert isinstance(stale.outcome, Rejection) and stale.outcome.reason == "STALE_REVISION"


def test_accepted_record_encodes_as_lead_accepted(make_lead) -> None:
    outcome = examine(_bytes(make_lead()), SRC, CATALOG, NOW)
    assert isinstance(outcome, Acceptance)
    schema = CATALOG.latest("cn.leadbus.LeadAccepted")
    data = encode(schema, accepted_record(outcome, NOW))
    assert data[2:10] == schema.fingerprint


def test_normalised_leads_validate_again_and_read_back_equal() -> None:
    """What intake writes must itself be a valid lead: linking and audits re-read it."""
    from datetime import timedelta

    from leadbus.producers.labelled import labelled_leads

    for lead, _ in labelled_leads(1500, seed=3):
        outcome = examine(_bytes(lead.model_dump(mode="json")), Source(f"leadbus.intake.{lead.publisher.agency}", 0, 0),
                          CATALOG, lead.reported_at + timedelta(minutes=1))
        assert isinstance(outcome, Acceptance), outcome
        again = CaseLead.model_validate(outcome.lead.to_avro())
        assert again == outcome.lead
        assert CaseLead.model_validate_json(outcome.lead.to_json()) == outcome.lead
