"""The accepted-lead check: digest, re-normalisation of `original`, one (lead id, revision) — every tampering named.

The verifier takes a short path when the event's lead is field for field what normalising `original` gives;
these tests pin that the short path never hides a change to the lead, the digest or `original`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadbus.audit.verification import AcceptedLeads, ReplayRecord
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import LEADS_ACCEPTED, intake_topic

CATALOG = packaged_catalog()
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
ACCEPTED = CATALOG.latest("cn.leadbus.LeadAccepted")


def _events(n: int = 3) -> list[dict[str, Any]]:
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    out = []
    for i, lead in enumerate(TrafficGenerator(seed=5).leads(n, NOW - timedelta(days=1), timedelta(minutes=1))):
        value = encode(lead_schema, lead.to_avro())
        outcome = examine(value, Source(intake_topic(lead.publisher.agency), 0, i), CATALOG, NOW)
        assert isinstance(outcome, Acceptance), outcome
        _, event = decode(CATALOG, encode(ACCEPTED, accepted_record(outcome, NOW)))
        out.append(event)
    return out


def _record(offset: int, event: dict[str, Any]) -> ReplayRecord:
    return ReplayRecord(LEADS_ACCEPTED, 0, offset, int(NOW.timestamp() * 1000), b"k", encode(ACCEPTED, event), (),
                        CATALOG)


def _checks(events: list[dict[str, Any]], *, renormalise: bool = True) -> list[tuple[str, int]]:
    verifier = AcceptedLeads(renormalise=renormalise)
    found = [f for i, e in enumerate(events) for f in verifier.check(_record(i, e))] + list(verifier.finish())
    return sorted((f.check, f.offset or 0) for f in found)


@pytest.mark.parametrize("renormalise", [True, False])
def test_honest_accepted_leads_pass(renormalise: bool) -> None:
    assert _checks(_events(), renormalise=renormalise) == []


def test_a_lead_altered_with_its_digest_recomputed_is_an_original_mismatch() -> None:
    events = _events()
    lead = {**events[1]["lead"], "description": events[1]["lead"]["description"] + "（已核实）"}
    events[1] = {**events[1], "lead": lead, "digest": hashlib.sha256(CaseLead.model_validate(lead).to_json()
                                                                      .encode()).hexdigest()}
    assert _checks(events) == [("ORIGINAL_MISMATCH", 1)]


def test_a_lead_altered_under_its_old_digest_is_a_digest_mismatch_too() -> None:
    events = _events()
    events[2] = {**events[2], "lead": {**events[2]["lead"], "cross_border": not events[2]["lead"]["cross_border"]}}
    assert _checks(events) == [("DIGEST_MISMATCH", 2), ("ORIGINAL_MISMATCH", 2)]
    assert _checks(events, renormalise=False) == [("DIGEST_MISMATCH", 2)]


def test_an_altered_digest_or_original_is_named() -> None:
    events = _events()
    events[0] = {**events[0], "digest": "0" * 64}
    events[1] = {**events[1], "original": events[2]["original"]}  # another lead's bytes as published
    assert _checks(events) == [("DIGEST_MISMATCH", 0), ("ORIGINAL_MISMATCH", 1)]


def test_garbage_as_original_is_named_not_a_crash() -> None:
    events = _events()
    events[0] = {**events[0], "original": b"\xc3\x01" + bytes(8) + b"garbage"}
    assert _checks(events) == [("ORIGINAL_MISMATCH", 0)]


def test_an_accepted_lead_replayed_is_named() -> None:
    events = _events(2)
    assert _checks([*events, events[0]]) == [("REPLAYED", 2)]
