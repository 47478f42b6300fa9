"""CaseLead v2 (issue #15): new fields round-trip, v1 writers are read by v2 readers (and back), ICP filings."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from leadbus.avro import decode, encode, encode_object, packaged_catalog
from leadbus.identifiers import IdentifierError, normalize_icp_filing
from leadbus.models import CaseLead

CATALOG = packaged_catalog()
V1 = CATALOG.version("cn.leadbus.CaseLead", 1)
V2 = CATALOG.version("cn.leadbus.CaseLead", 2)

V2_FIELDS = {
    "conduct_from": "2024-03-01", "conduct_to": "2024-11-30",
    "prior_penalties": [{"kind": "ADMINISTRATIVE", "decided_on": "2023-05-10", "decided_by": "杭州市市场监督管理局",
                         "violation": "ART_218", "reference": "杭市监罚〔2023〕12号"}],
    "police_measures_needed": True,
}  # fmt: skip


def _v2(make_lead) -> CaseLead:
    data = make_lead()
    data.update(V2_FIELDS)
    data["online"] = {**data.get("online", {}), "icp_filings": ["京ICP备05070286号-1"]}
    data["facts"] = {**data.get("facts", {}), "labels_sold": 10, "labels_held": 20, "labels_made_by": "OTHERS",
                     "copies_held": 5, "patents": 2, "rights_holder_bankrupt": False, "mark_use": "SERVICES"}
    return CaseLead.model_validate(data)


def test_v2_fields_round_trip_through_avro_both_writers(make_lead) -> None:
    lead = _v2(make_lead)
    for data in (encode(V2, lead.to_avro()), encode_object(V2, lead)):
        writer, record = decode(CATALOG, data, V2)
        assert writer is V2 and CaseLead.model_validate(record) == lead
    assert lead.conduct_from == date(2024, 3, 1) and lead.prior_penalties[0].violation == "ART_218"


def test_a_v1_writer_is_read_by_the_v2_reader_with_defaults(make_lead) -> None:
    lead = CaseLead.model_validate(make_lead())
    _, record = decode(CATALOG, encode_object(V1, lead), V2)
    read = CaseLead.model_validate(record)
    assert read == lead
    assert (read.conduct_from, read.prior_penalties, read.police_measures_needed) == (None, [], False)
    assert read.online.icp_filings == [] and read.facts.labels_held is None


def test_a_v2_writer_is_read_by_a_v1_reader(make_lead) -> None:
    lead = _v2(make_lead)
    _, record = decode(CATALOG, encode_object(V2, lead), V1)
    assert "conduct_from" not in record and record["lead_id"] == lead.lead_id


def test_conduct_period_must_be_ordered_and_not_after_the_report(make_lead) -> None:
    data = make_lead()
    with pytest.raises(ValidationError, match=r"CONDUCT_PERIOD|conduct_to is before"):
        CaseLead.model_validate({**data, "conduct_from": "2024-05-01", "conduct_to": "2024-04-01"})
    with pytest.raises(ValidationError, match="after the report"):
        CaseLead.model_validate({**data, "conduct_from": "2099-01-01"})


@pytest.mark.parametrize(("raw", "full", "subject"), [
    ("京ICP备05070286号-1", "京ICP备05070286号-1", "京ICP备05070286号"),
    ("浙ICP备 2023012345号", "浙ICP备2023012345号", "浙ICP备2023012345号"),
    ("粤icp备１２３４５６７８号-02", "粤ICP备12345678号-2", "粤ICP备12345678号"),
    ("京ICP证030173号", "京ICP证030173号", "京ICP证030173号"),
])  # fmt: skip
def test_icp_filing_numbers_normalise(raw: str, full: str, subject: str) -> None:
    assert normalize_icp_filing(raw) == (full, subject)


@pytest.mark.parametrize("raw", ["ICP备05070286号", "京ICP05070286号", "京ICP备0507号", "港ICP备05070286号",
                                 "京ICP备05070286", "沪B2-20050020"])
def test_malformed_icp_filing_numbers_are_refused(raw: str, make_lead) -> None:
    with pytest.raises(IdentifierError) as err:
        normalize_icp_filing(raw)
    assert err.value.code == "ICP_FILING_FORMAT"
    data = make_lead()
    with pytest.raises(ValidationError, match=r"ICP_FILING_FORMAT|ICP filing"):
        CaseLead.model_validate({**data, "online": {**data.get("online", {}), "icp_filings": [raw]}})
