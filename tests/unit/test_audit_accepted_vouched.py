"""An accepted lead a stage seal vouched for takes one step (`AcceptedLeads._vouched`): the same findings and state.

Trusted LeadAccepted records (the bytes intake sealed, read by their fields) go through `AcceptedLeads.check` twice:
by its one-step path, and by the general path it replaces (`sealed_facts`, then `_account`), with leads accepted again
(identical, other content), revisions going back and up, a record whose fields cannot be picked, with and without the
sources kept, and in the tail of a cut (noted for the parent). Findings, revisions, sources and what is noted must be
the same.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadbus.audit.verification import AcceptedLeads, Finding, IntakeLeads, ReplayRecord, _plain
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.stage_seals import CHAIN_HEADER
from leadbus.topics import LEADS_ACCEPTED, intake_topic

CATALOG = packaged_catalog()
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
ACCEPTED = CATALOG.latest("cn.leadbus.LeadAccepted")
STAMP = int(NOW.timestamp() * 1000)
#: the stage seal's chain header: what the general path looks for (the others do not matter to this check)
SEALED = ((CHAIN_HEADER, b"00000000000000c1"),)


class _General(AcceptedLeads):
    """The check as it was before the one-step path: every trusted record by `sealed_facts` and `_account`."""

    def _vouched(self, record: ReplayRecord) -> list[Finding] | None:
        return None


def _events(n: int) -> list[dict[str, Any]]:
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    out = []
    for i, lead in enumerate(TrafficGenerator(seed=7).leads(n, NOW - timedelta(days=1), timedelta(minutes=1))):
        value = encode(lead_schema, lead.to_avro())
        outcome = examine(value, Source(intake_topic(lead.publisher.agency), 0, i), CATALOG, NOW)
        assert isinstance(outcome, Acceptance), outcome
        _, event = decode(CATALOG, encode(ACCEPTED, accepted_record(outcome, NOW)))
        out.append(event)
    return out


def _stream(seed: int) -> list[bytes]:
    """Values of a topic where leads come again: the same record, the same revision with another digest, a lower and a
    higher revision, and bytes cut short (not picked: read whole)."""
    rng = random.Random(seed)
    events = _events(12)
    values = [encode(ACCEPTED, e) for e in events]
    for _ in range(30):
        e = rng.choice(events)
        kind = rng.randrange(4)
        if kind == 0:
            values.append(encode(ACCEPTED, e))
        elif kind == 1:
            values.append(encode(ACCEPTED, {**e, "digest": f"{rng.getrandbits(256):064x}"}))
        else:
            revision = e["lead"]["revision"] + (-1 if kind == 2 else rng.randrange(1, 3))
            values.append(encode(ACCEPTED, {**e, "lead": {**e["lead"], "revision": revision}}))
    rng.shuffle(values)
    values.insert(rng.randrange(len(values)), values[0][:40])  # cut short: neither picked nor decoded
    return values


def _run(verifier: AcceptedLeads, values: list[bytes]) -> tuple[Any, ...]:
    found: list[Finding] = []
    for offset, value in enumerate(values):
        record = ReplayRecord(LEADS_ACCEPTED, 0, offset, STAMP, b"k", value, SEALED, CATALOG)
        record.trusted = True
        try:
            found += verifier.check(record)
        except Exception as exc:  # noqa: BLE001 - as the replay's loop reports it (the record cut short)
            found.append(Finding.at(record, "UNREADABLE", type(exc).__name__))
    found += verifier.finish()
    return (found, {k: (r, d, _plain(m)) for k, (r, d, m) in verifier._revisions.items()},
            [(c, d, _plain(m)) for c, d, m in verifier._sources], verifier.noted)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sources", [True, False])
@pytest.mark.parametrize("tail", [False, True])
def test_a_vouched_accepted_lead_in_one_step_gives_what_the_general_path_gives(seed: int, sources: bool,
                                                                               tail: bool) -> None:
    values = _stream(seed)
    results = []
    for kind in (AcceptedLeads, _General):
        verifier = kind(IntakeLeads())
        verifier.trust_stage_seals = True
        verifier.keep_sources = sources
        if tail:
            verifier.noted = []
        results.append(_run(verifier, values))
    assert results[0] == results[1]
    found = results[0][0]
    if not tail:  # the stream holds every kind of repeat: the comparison is not between two empty lists
        assert {f.check for f in found} >= {"REPLAYED", "REORDERED"}
        assert any("identical" in f.message for f in found) and any("other content" in f.message for f in found)
    else:
        assert results[0][3] and len(results[0][3]) == len(values) - 1
