"""The accepted-lead check with its content checks in worker processes (what `leadbus replay` does for a large
`leadbus.leads.accepted`): the same findings, with the same messages at the same coordinates, as in one process —
tampered leads, digests and originals, garbage, replays and reorderings in every chunk; and when the workers are
gone, the records are checked in the parent."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from leadbus.audit.replay import _unreadable
from leadbus.audit.verification import AcceptedLeads, Finding, IntakeLeads, ReplayRecord, use_catalog
from leadbus.avro import encode
from leadbus.models import CaseLead
from leadbus.topics import LEADS_ACCEPTED
from tests.unit.test_audit_accepted import ACCEPTED, CATALOG, NOW, _events


def _tampered(seed: int) -> list[ReplayRecord]:
    rng = random.Random(seed)
    events = _events(24)
    values: list[bytes | None] = []
    for i, event in enumerate(events):
        kind = rng.randrange(8)
        if kind == 1:
            event = {**event, "digest": "0" * 64}
        elif kind == 2:
            lead = {**event["lead"], "description": event["lead"]["description"] + "（改）"}
            event = {**event, "lead": lead,
                     "digest": hashlib.sha256(CaseLead.model_validate(lead).to_json().encode()).hexdigest()}
        elif kind == 3:
            event = {**event, "original": events[(i + 1) % len(events)]["original"]}
        elif kind == 4:
            event = {**event, "original": b"\xc3\x01" + bytes(8) + b"garbage"}
        elif kind == 5:
            event = {**event, "lead": {**event["lead"], "revision": event["lead"]["revision"] + 3}}
        values.append(encode(ACCEPTED, event))
        if kind == 6:
            values.append(values[rng.randrange(len(values))])  # an earlier accepted lead again
        if kind == 7:
            raw = bytearray(values[-1] or b"")
            raw[rng.randrange(10, len(raw))] ^= 0xFF  # a flipped byte: unreadable, or read as something else
            values.append(bytes(raw))
    ms = int(NOW.timestamp() * 1000)
    return [ReplayRecord(LEADS_ACCEPTED, 0, i, ms, b"k", v, (), CATALOG) for i, v in enumerate(values)]


def _findings(verifier: AcceptedLeads, records: list[ReplayRecord]) -> list[tuple[str, int | None, str]]:
    found: list[Finding] = []
    for record in records:
        try:
            found += verifier.check(record)
        except Exception as exc:  # noqa: BLE001 - as the replay's loop reports it
            found.append(_unreadable(record, verifier.name, exc))
    found += verifier.finish()
    return sorted((f.check, f.offset, f.message) for f in found)


@pytest.fixture(scope="module")
def executor() -> Any:
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), initializer=use_catalog,
                               initargs=(CATALOG,))
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("seed", range(4))
def test_findings_from_workers_are_those_of_one_process(seed: int, executor: ProcessPoolExecutor) -> None:
    records = _tampered(seed)
    alone = _findings(AcceptedLeads(IntakeLeads()), records)
    assert {c for c, _, _ in alone} & {"DIGEST_MISMATCH", "ORIGINAL_MISMATCH", "REPLAYED"}, alone  # not vacuous
    sharing = AcceptedLeads(IntakeLeads(), executor=executor)
    sharing.chunk, sharing.in_flight = 5, 2
    assert _findings(sharing, records) == alone


def test_with_the_workers_gone_the_parent_checks_every_record() -> None:
    records = _tampered(7)
    alone = _findings(AcceptedLeads(), records)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"), initializer=use_catalog,
                               initargs=(CATALOG,))
    verifier = AcceptedLeads(executor=pool)
    verifier.chunk, verifier.in_flight = 3, 4
    half = len(records) // 2
    found = [f for r in records[:half] for f in verifier.check(r)]
    for process in list(pool._processes.values()):  # a worker killed mid-replay (out of memory, an operator)
        process.kill()
    found += [f for r in records[half:] for f in verifier.check(r)] + list(verifier.finish())
    pool.shutdown(wait=True, cancel_futures=True)
    assert sorted((f.check, f.offset, f.message) for f in found) == alone
