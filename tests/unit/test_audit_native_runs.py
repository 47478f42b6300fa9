"""The C reader of a trusted run's usual records (`leadbus.audit.native_runs`) against the Python paths it stands in
for (`CaseVersions.check_run`, `tally_run` with `_RUN_READER` None): over hostile runs of `leadbus.cases` (versions
skipped, swapped, replayed, going back, cases merged away then updated, the same case in several partitions, versions
that are no numbers or past 64 bits, records untrusted, decoded, picked already, of another writer, tombstones, other
topics, agency seal headers, damaged bodies), the same findings in the same order, the same state per case, the same
records' slots and the same summary. The replay's loop over tampered sealed streams compares them too
(`tests/unit/test_audit_runs.py`, `same_both_ways`)."""

from __future__ import annotations

import random
from collections import Counter
from contextlib import nullcontext
from typing import Any

import pytest

from leadbus.audit import native_runs
from leadbus.audit import verification as verification_module
from leadbus.audit.verification import CaseVersions, HandoverSteps, PartitionOrder, ReplayRecord, each, tally_run
from leadbus.avro import decode, encode
from leadbus.topics import CASES, HANDOVER
from tests.audit_helpers import cut_runs, run_reader_off, with_and_without_run_reader
from tests.unit.test_audit_vouched import CATALOG, STAMP, streams

CASE_UPDATED = CATALOG.latest("cn.leadbus.CaseUpdated")


def test_the_run_reader_is_built_and_in_use() -> None:
    assert native_runs.NATIVE, "leadbus.audit._records is not built: run `make install`"
    assert verification_module._RUN_READER is not None


def _events() -> list[dict[str, Any]]:
    _, cases, _ = streams()
    return [decode(CATALOG, value)[1] for _, _, _, value, _ in cases]


def _hostile_events(rng: random.Random, events: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any] | None]]:
    """(partition, event or None: a tombstone) of a few cases' versions, tampered with."""
    cases = [f"CASE-{i:03d}" for i in range(rng.randrange(1, 8))]
    version: Counter[str] = Counter()
    out: list[tuple[int, dict[str, Any] | None]] = []
    for _ in range(rng.randrange(1, 90)):
        case = rng.choice(cases)
        version[case] += 1
        event = dict(rng.choice(events), case_id=case, version=version[case], merged_into=None)
        trick = rng.random()
        if trick < 0.06:
            event["version"] += rng.choice([1, 2, 5])  # a gap
        elif trick < 0.12:
            event["version"] -= rng.choice([1, 2, version[case]])  # replayed, reordered, version 0
        elif trick < 0.16:
            event["merged_into"] = rng.choice(cases)  # absorbed (its version repeated, or not)
            event["version"] -= rng.choice([0, 1])
        elif trick < 0.18:
            event["version"] = rng.choice([2**31 - 1, -(2**31)])
        elif trick < 0.2:
            out.append((rng.randrange(3), None))
            continue
        out.append((rng.choice([0, 0, 0, 1, 2]), event))  # the same case in several partitions
        if rng.random() < 0.05:
            out.append(out[-1])  # a duplicate
        if rng.random() < 0.05 and len(out) > 2:
            out[-1], out[-2] = out[-2], out[-1]  # swapped
    return out


def _records(rng: random.Random, events: list[tuple[int, dict[str, Any] | None]]) -> list[ReplayRecord]:
    offsets: Counter[int] = Counter()
    records = []
    for partition, event in events:
        value = None if event is None else encode(CASE_UPDATED, event)
        if value is not None and rng.random() < 0.04:
            value = value[:rng.randrange(len(value))]  # cut (its writer still named, or not)
        topic = CASES if rng.random() > 0.02 else HANDOVER
        headers: list[tuple[str, bytes | None]] = []
        if rng.random() < 0.05:
            headers = [("leadbus-publisher", b"SAMR.33"), ("leadbus-seq", b"1")]
        elif rng.random() < 0.05:
            headers = [("x-other", b"1")]
        record = ReplayRecord(topic, partition, offsets[partition], STAMP, b"k", value, headers, CATALOG)
        offsets[partition] += 1
        record.trusted = rng.random() > 0.05
        if not headers or rng.random() < 0.5:
            record._sealed = False if not headers or headers[0][0] == "x-other" else None
        if value is not None and rng.random() < 0.03:
            _ = record.event  # decoded already
        elif value is not None and rng.random() < 0.03:
            _ = record.schema  # its writer known
        records.append(record)
    return records


def _state(records: list[ReplayRecord]) -> list[tuple[Any, ...]]:
    return [(r._schema, r._picked, r._decoded, r._sealed) for r in records]


def _checked(runs: list[list[ReplayRecord]]) -> tuple[list[Any], dict[str, Any], list[Any], Counter[Any], int]:
    verifier, tally = CaseVersions(), Counter[Any]()
    found, sealed = [], 0
    for run in runs:
        found.append([(i, list(judged)) for i, judged in verifier.check_run(run)])
        sealed += tally_run(run, tally)
    return found, verifier._last, [_state(run) for run in runs], tally, sealed


def _cut_and_checked(seed: int, made: list[tuple[int, dict[str, Any] | None]]) -> tuple[Any, ...]:
    return _checked(cut_runs(_records(random.Random(seed), made), random.Random(seed)))


def _trusted_and_checked(seed: int, made: list[tuple[int, dict[str, Any] | None]]) -> tuple[Any, ...]:
    records = _records(random.Random(seed), made)
    for record in records:
        record.trusted = True
    return _checked([records[:5], records[5:]])


def _in_order(rows: list[tuple[Any, ...]], cut_seed: int) -> tuple[Any, ...]:
    records = [ReplayRecord(t, p, o, s, None, None, (), CATALOG) for t, p, o, s in rows]
    verifier = PartitionOrder(skew_ms=15_000)
    runs = cut_runs(records, random.Random(cut_seed))
    return [[(i, list(judged)) for i, judged in verifier.check_run(run)] for run in runs], verifier._last


def test_the_c_reader_judges_and_counts_hostile_runs_as_the_python_paths() -> None:
    events = _events()
    rng = random.Random(1414)
    findings = 0
    for _ in range(300):
        seed = rng.randrange(2**32)
        made = _hostile_events(random.Random(seed), events)
        fast, alone = with_and_without_run_reader(_cut_and_checked, seed, made)
        assert fast == alone
        findings += sum(len(f) for f in fast[0])
    assert findings > 300, findings


def test_a_picker_that_raises_or_reads_oddly_is_judged_as_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Picks that raise, read nothing, or read a case id that is no string, a version that is no int, a bool, past 64
    bits, a head too short: the C reader leaves them to the Python path, with the same findings and state."""
    real = verification_module.picker(CASE_UPDATED, ("case_id", "version", "merged_into"))
    assert real is not None

    def odd(value: bytes) -> Any:
        head = real(value)
        trick = value[-1] % 9
        if trick == 0:
            raise ValueError("not read")
        return (None, (b"CASE-001", *head[1:]), (head[0], 10**30, None), (head[0], True, None), head[:2],
                (head[0], float(head[1]), None), (head[0], head[1] + 2**63, None), head, head)[trick - 1]

    monkeypatch.setattr(verification_module, "picker", lambda schema, paths: odd)
    verification_module._LAST_PICKER[:] = [None, None, None]
    events = _events()
    rng = random.Random(77)
    try:
        for _ in range(60):
            seed = rng.randrange(2**32)
            made = _hostile_events(random.Random(seed), events)
            fast, alone = with_and_without_run_reader(_trusted_and_checked, seed, made)
            assert fast == alone
    finally:
        verification_module._LAST_PICKER[:] = [None, None, None]


def test_the_c_reader_passes_a_run_in_partition_order_as_the_python_path() -> None:
    """Offsets going back, repeated, skipping; timestamps going back within and past the skew; partitions and topics
    changing inside a run; offsets and timestamps that are no int, a bool, past 64 bits: the same findings and the
    same state per partition as `PartitionOrder.check_run` without the reader."""
    rng = random.Random(5)
    odd: list[Any] = [True, 2**64, -(2**70), 1.5, None, "7"]
    for _ in range(300):
        rows = []
        offsets: Counter[tuple[str, int]] = Counter()
        for _ in range(rng.randrange(1, 60)):
            topic = rng.choice([CASES, CASES, CASES, HANDOVER])
            partition = rng.choice([0, 0, 0, 1])
            offsets[(topic, partition)] += rng.choice([1, 1, 1, 1, 2, 0, -1])
            offset: Any = offsets[(topic, partition)]
            stamp: Any = STAMP + offset * 10 + rng.choice([0, 0, 0, -5, -20_000, 3])
            if rng.random() < 0.03:
                offset = rng.choice(odd)
            if rng.random() < 0.03:
                stamp = rng.choice(odd)
            rows.append((topic, rng.choice(odd) if rng.random() < 0.01 else partition, offset, stamp))
        fast, alone = with_and_without_run_reader(_in_order, rows, rng.randrange(2**32))
        assert fast == alone


def test_the_c_reader_judges_hostile_handover_steps_as_the_python_path_and_one_by_one() -> None:
    """Steps skipped, repeated, going back, several cases and partitions, cut bodies, untrusted or decoded records, a
    case record among them: `HandoverSteps.check_run` with the reader, without it, and `check` record by record."""
    from tests.unit.test_audit_runs import more_streams

    step = CATALOG.latest("cn.leadbus.HandoverStep")
    events = [decode(CATALOG, value)[1] for _, _, _, value, _ in more_streams()[0]]
    case_body = encode(CASE_UPDATED, _events()[0])
    rng = random.Random(23)
    findings = 0
    for _ in range(200):
        seed = rng.randrange(2**32)
        numbers: Counter[str] = Counter()
        made: list[tuple[int, bytes | None]] = []
        for _ in range(rng.randrange(1, 70)):
            case = f"CASE-{rng.randrange(5):03d}"
            numbers[case] += 1
            seq = numbers[case] + rng.choice([0] * 12 + [1, 3, -1, -2, -numbers[case]])
            value = encode(step, dict(rng.choice(events), case_id=case, seq=seq))
            value = rng.choice([value] * 25 + [value[:rng.randrange(len(value))], case_body, None])
            made.append((rng.choice([0, 0, 1]), value))
        out = []
        for how in ("c", "python", "alone"):
            pick = random.Random(seed)
            offsets: Counter[int] = Counter()
            records = []
            for partition, value in made:
                record = ReplayRecord(HANDOVER, partition, offsets[partition], STAMP, b"k", value, (), CATALOG)
                offsets[partition] += 1
                record.trusted = pick.random() > 0.05
                if value is not None and pick.random() < 0.03:
                    _ = record.event
                records.append(record)
            verifier = HandoverSteps()
            if how == "alone":
                found = [(i, list(judged)) for i, judged in each(verifier, records)]
            else:
                with run_reader_off() if how == "python" else nullcontext():
                    found = [(i, list(judged)) for i, judged in verifier.check_run(records)]
            out.append((found, verifier._last, _state(records)))
        assert out[0] == out[1] and out[0][:2] == out[2][:2]
        findings += len(out[0][0])
    assert findings > 100, findings


def _bus_checked(seed: int, rows: tuple[Any, ...], registry: Any) -> tuple[Any, ...]:
    """`BusSealVerifier.check_run` over runs of records that carry no agency seal, known so or not, at offset 0 or not
    (or an offset of another type), opening their log or not (or a flag of another type), of the bus's topics or an
    intake topic: what it finds, its state and the records' after it."""
    from leadbus.audit.seals import BusSealVerifier

    rng = random.Random(seed)
    records = []
    for offset in range(rng.randrange(1, 80)):
        topic, partition, key, value, headers = rng.choice(rows)
        topic = rng.choice([topic, topic, topic, CASES, "leadbus.intake.SAMR", "leadbus.intakeX"])
        where: Any = rng.choice([offset, offset, offset, 0, True, 2**70, -1])
        seal = rng.choice([[], [], [], headers, [("leadbus-publisher", b"SAMR.33"), ("leadbus-seq", b"1")]])
        record = ReplayRecord(topic, partition, where, STAMP, key, value, seal, CATALOG)
        record.trusted = rng.random() > 0.1
        record._sealed = rng.choice([False, False, False, None, True])
        record.opens_log = rng.choice([False, False, False, True, 0, 1])
        records.append(record)
    verifier = BusSealVerifier(registry)
    found = [verifier.check_run(run) for run in cut_runs(records, rng, cuts=4)]
    return found, verifier.sealed, verifier.signatures, sorted(verifier.lanes.from_start), _state(records)


def test_the_c_reader_passes_over_unsealed_bus_records_as_the_agency_seals_check() -> None:
    accepted, cases, registry = streams()
    rows = accepted + cases
    rng = random.Random(4242)
    findings = 0
    for _ in range(200):
        fast, alone = with_and_without_run_reader(_bus_checked, rng.randrange(2**32), rows, registry)
        assert fast == alone
        findings += sum(len(f) for run in fast[0] for _, f in run)
    assert findings > 200, findings
