"""Intake judges a BlacklistDecision like a handover decision (issue #18): provenance, the one model, the topic's
agency; a valid one goes on, with its seal, to `leadbus.blacklist.decisions` keyed by entry id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from leadbus.avro import encode
from leadbus.processors.core.intake import EventAcceptance, Rejection, Source, examine
from leadbus.processors.intake import IntakeHandler
from leadbus.signing import KeyRegistry
from leadbus.topics import BLACKLIST_DECISIONS, LEADS_REJECTED
from tests.unit.processors.test_provenance import CATALOG, NOW, TOPIC, _registry, _run, _sealed, _State

ENTRY = "BL-0123456789abcdef0123"


def _decision(**changes: Any) -> bytes:
    doc = {"decision_id": "5b0c7a53-8a55-4c0e-9f0a-3a1c1c7f6e11", "entry_id": ENTRY, "kind": "LIST",
           "actor": {"agency": "SAMR", "province": "33", "unit": None}, "decided_at": NOW - timedelta(hours=1),
           "period_days": 365, "reasons": "依法认定", **changes}
    return encode(CATALOG.latest("cn.leadbus.BlacklistDecision"), doc)


def test_a_signed_decision_goes_to_the_blacklist_decisions_keyed_by_entry() -> None:
    value = _decision()
    outcome = examine(value, Source(TOPIC, 1, 1), CATALOG, NOW, headers=_sealed(value), keys=_registry())
    assert isinstance(outcome, EventAcceptance) and outcome.seal is not None
    assert (outcome.topic, outcome.key, outcome.schema) == (BLACKLIST_DECISIONS, ENTRY, "cn.leadbus.BlacklistDecision")
    out = _run(IntakeHandler(keys=_registry()), _State(), TOPIC, 1, value, _sealed(value), 7)
    assert [(o.topic, o.key) for o in out] == [(BLACKLIST_DECISIONS, ENTRY.encode())]
    assert dict(out[0].headers)["leadbus-publisher"] == b"SAMR.33"  # the seal travels on


def test_unsigned_from_a_signing_agency_is_refused() -> None:
    outcome = examine(_decision(), Source(TOPIC, 1, 1), CATALOG, NOW, keys=_registry())
    assert isinstance(outcome, Rejection) and outcome.reason == "UNSIGNED"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"entry_id": "BL-x"}, None),
    ({"entry_id": "'; DROP TABLE blacklist; --"}, None),
    ({"period_days": 0}, None),
    ({"period_days": 100_000}, None),
    ({"decision_id": "not-a-uuid"}, "DECISION_ID_FORMAT"),
    ({"decided_at": NOW + timedelta(days=2)}, "TIME_IN_FUTURE"),
    ({"kind": "UNSPECIFIED"}, None),
    ({"actor": {"agency": "GACC", "province": "33", "unit": None}}, "WRONG_TOPIC"),
    ({"reasons": "理" * 3000}, None),
])
def test_malformed_decisions_are_dead_letters_with_a_reason(changes: dict[str, Any], reason: str | None) -> None:
    outcome = examine(_decision(**changes), Source(TOPIC, 1, 1), CATALOG, NOW, keys=KeyRegistry())
    assert isinstance(outcome, Rejection)
    if reason is not None:
        assert outcome.reason == reason
    out = _run(IntakeHandler(), _State(), TOPIC, 1, _decision(**changes), [], 3)
    assert [o.topic for o in out] == [LEADS_REJECTED]
