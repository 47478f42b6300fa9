"""A lead's head read from the front of its body (`peek_lead`): its quick reader gives what the step-by-step reader
gives for any bytes (the same head, or None), and on whole leads what decoding them gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from leadbus.audit.verification import _USUAL, LeadHead, _peek_planned, _plan, peek_lead
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.producers.simulator import TrafficGenerator

CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
START = datetime(2026, 11, 2, 8, tzinfo=UTC)


def _leads() -> list[bytes]:
    out = []
    gen = TrafficGenerator(seed=9)
    for i, lead in enumerate(gen.leads(120, START, timedelta(seconds=1))):
        event = lead.to_avro()
        if i % 4 == 1:
            event["lead_id"] = "案" * (i % 50) + "x" * (i % 90)  # lengths of one byte and of two
        if i % 4 == 2:
            event["revision"] = [0, 63, 64, 200, 2**31 - 1][i % 5]
        if i % 4 == 3:
            event["publisher"] = {**event["publisher"], "agency": "A" * (i % 70), "province": "省" * (i % 30)}
        if i % 8 == 5:
            event["reported_at"] = [datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)][i % 2]
        out.append(encode(LEAD, event))
    return out


LEADS = _leads()


def test_every_caselead_version_reads_by_the_usual_plan() -> None:
    assert all(_plan(entry) is _USUAL for entry in CATALOG.versions("cn.leadbus.CaseLead"))


def test_whole_leads_read_as_decoding_gives() -> None:
    for value in LEADS:
        event = decode(CATALOG, value)[1]
        assert peek_lead(LEAD, value) == LeadHead(event["lead_id"], event["revision"],
                                                  event["publisher"]["agency"], event["publisher"]["province"])


@pytest.mark.parametrize("seed", range(20))
def test_damaged_bodies_read_as_the_step_by_step_reader(seed: int) -> None:
    rng = random.Random(seed)
    for value in LEADS:
        data = bytearray(value)
        kind = rng.randrange(5)
        if kind == 0:
            data = data[:rng.randrange(10, 80)]
        elif kind == 1:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(10, min(len(data), 90))] = rng.randrange(256)
        elif kind == 2:
            data[10:10] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
        elif kind == 3:
            data = bytearray(value[:10]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
        else:
            at = rng.randrange(10, 60)
            data[at:at] = b"\xff" * rng.randint(1, 14)  # a long run of varint continuation bytes
        damaged = bytes(data)
        assert peek_lead(LEAD, damaged) == _peek_planned(_USUAL, damaged), damaged[:80]
