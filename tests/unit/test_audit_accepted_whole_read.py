"""A replay of `leadbus.leads.accepted` whose content workers read each record whole (the parent decodes none of them):
the same findings — checks, messages, coordinates, and their order in the report — and the same summary (records
selected, by type and publisher, under --key and --publisher) as when the parent reads every record itself, over
tampered accepted records: an altered lead, an altered digest, an altered original, a record duplicated, a revision
going back, garbage bytes in every shape, a step back in time on an undecodable record, a tombstone."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from leadbus.audit.replay import ReplayReport, _loop, _ReadByWorkers, finish
from leadbus.audit.verification import AcceptedLeads, Finding, ReplayRecord, standard_verifiers, use_catalog
from leadbus.avro import decode, encode, encode_object
from leadbus.models import CaseLead
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import PUBLISHER_HEADER
from leadbus.topics import LEADS_ACCEPTED, intake_topic
from tests.unit.test_audit_accepted import ACCEPTED, CATALOG, NOW

LEAD = CATALOG.latest("cn.leadbus.CaseLead")
MS = int(NOW.timestamp() * 1000)


def _accepted(lead: CaseLead, offset: int) -> bytes:
    outcome = examine(encode_object(LEAD, lead), Source(intake_topic(lead.publisher.agency), 0, offset), CATALOG, NOW)
    assert isinstance(outcome, Acceptance), outcome
    return encode(ACCEPTED, accepted_record(outcome, NOW))


def _stream() -> list[tuple[bytes | None, bytes | None, int, list[tuple[str, bytes | None]]]]:
    """(key, value, timestamp, headers) of each record, in the order of the topic."""
    leads = list(TrafficGenerator(seed=9).leads(14, NOW - timedelta(days=1), timedelta(minutes=1)))
    honest = [_accepted(lead, i) for i, lead in enumerate(leads)]
    def altered(value: bytes, **change: Any) -> bytes:
        _, event = decode(CATALOG, value)
        return encode(ACCEPTED, {**event, **change})

    _, second = decode(CATALOG, honest[1])
    newer = leads[3].model_copy(update={"revision": leads[3].revision + 1})
    out: list[tuple[bytes | None, bytes | None, int, list[tuple[str, bytes | None]]]] = []
    values: list[bytes | None] = [
        honest[0],
        altered(honest[1], lead={**second["lead"], "description": second["lead"]["description"] + "（改）"}),
        altered(honest[2], digest="0" * 64),
        _accepted(newer, 3),  # revision r+1 of lead 3 …
        honest[3],  # … then revision r: a revision going back
        altered(honest[4], original=honest[5][:40]),  # another record's bytes as `original`
        altered(honest[5], original=b"\xc3\x01" + bytes(8) + b"garbage"),
        honest[0],  # duplicated
        b"\xc3\x01" + ACCEPTED.fingerprint + b"\x00\x01garbage",  # a LeadAccepted by its fingerprint, then garbage
        honest[6][:-7],  # cut short
        honest[7] + b"\x00\x00",  # trailing bytes
        bytes(b ^ 0xFF if i == 60 else b for i, b in enumerate(honest[8])),  # one byte flipped
        b"not avro at all",
        None,  # a tombstone
        honest[9],
        honest[10],
    ]
    for i, value in enumerate(values):
        stamp = MS + i * 1000 - (60_000 if i == 9 else 0)  # the cut record also steps back a minute
        key = b"k" if i % 3 == 0 else (f"lead-{i}".encode())
        headers: list[tuple[str, bytes | None]] = [(PUBLISHER_HEADER, b"SAMR.33-gw1")] if i == 14 else []
        out.append((key, value, stamp, headers))
    return out


STREAM = _stream()


def _records(made: list[ReplayRecord]) -> Iterator[ReplayRecord]:
    for i, (key, value, stamp, headers) in enumerate(STREAM):
        # as an archive replay gives them: the findings are left in the order they were made (no sort by coordinates)
        made.append(ReplayRecord(LEADS_ACCEPTED, 0, i, stamp, key, value, headers, CATALOG, file="f.avro", index=i))
        yield made[-1]


@pytest.fixture(scope="module")
def executor() -> Any:
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), initializer=use_catalog,
                               initargs=(CATALOG,))
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def _replay(executor: ProcessPoolExecutor | None, whole_read: bool, key: bytes | None,
            publisher: str | None) -> tuple[list[Finding], ReplayReport]:
    verifiers = standard_verifiers()
    accepted = next(v for v in verifiers if isinstance(v, AcceptedLeads))
    accepted.executor = executor
    accepted.chunk, accepted.in_flight = 3, 2  # answers come back while later records are still being read
    report = ReplayReport("test")
    reads = _ReadByWorkers(accepted, report, publisher) if whole_read else None
    made: list[ReplayRecord] = []
    count, _ = _loop(_records(made), verifiers, None, key, publisher, report, None, None, reads)
    assert count == len(STREAM)
    finish(verifiers, report, reads)
    if reads is not None:  # the point: the parent decoded none of the records the workers read
        sent = [r for r in made if r.schema is not None and r.schema.name == ACCEPTED.name]
        assert len(sent) == len(STREAM) - 2 and not any(r._decoded for r in sent)
    return report.findings, report


def _summary(report: ReplayReport) -> tuple[int, dict[tuple[str, str], int]]:
    return report.selected, dict(report.by_type_publisher)


@pytest.mark.parametrize(("key", "publisher"), [(None, None), (b"k", None), (None, "SAMR")])
def test_workers_reading_whole_give_the_findings_and_summary_of_the_parent_reading(
        executor: ProcessPoolExecutor, key: bytes | None, publisher: str | None) -> None:
    parent_reads, before = _replay(executor, False, key, publisher)
    workers_read, after = _replay(executor, True, key, publisher)
    assert workers_read == parent_reads  # the same findings in the same order
    assert _summary(after) == _summary(before)
    alone, one = _replay(None, False, key, publisher)  # no workers at all: the same findings, found sooner
    assert sorted(workers_read, key=repr) == sorted(alone, key=repr)
    assert _summary(after) == _summary(one)
    checks = {(f.check, f.offset) for f in workers_read}
    # not vacuous: every tampering is named where it is
    assert {("DIGEST_MISMATCH", 1), ("ORIGINAL_MISMATCH", 1), ("DIGEST_MISMATCH", 2), ("REORDERED", 4),
            ("ORIGINAL_MISMATCH", 5), ("ORIGINAL_MISMATCH", 6), ("REPLAYED", 7), ("UNDECODABLE", 8),
            ("UNDECODABLE", 9), ("TIMESTAMP_BACKWARDS", 9), ("UNDECODABLE", 10), ("UNDECODABLE", 12)} <= checks
    # the cut record's step back (found at once) comes before its undecodable body (found by a worker), as ever
    ninth = [f.check for f in workers_read if f.offset == 9]
    assert ninth == ["TIMESTAMP_BACKWARDS", "UNDECODABLE"]


def test_the_summary_names_each_publisher_as_the_parent_did(executor: ProcessPoolExecutor) -> None:
    _, report = _replay(executor, True, None, None)
    tally = report.by_type_publisher
    assert tally[("cn.leadbus.LeadAccepted", "SAMR.33-gw1")] == 1  # a seal's publisher header first
    assert tally[("cn.leadbus.LeadAccepted", "leadbus:intake")] >= 4  # undecodable: the stage that writes the topic
    assert report.selected == len(STREAM)
