"""The record closing a lane's run (the stage's signature on it) taken in C with its run (`quick_run`'s `closing`,
`StageSealVerifier.check_many`) against the general path (`check`) that judges it without the extension.

`quick_run` gives the closing record's link (the link `record_link` gives, the signature not covered) and signature
only when it is the usual record with the stage's 64-byte signature last; the replay's loop then gives the same
findings, summary, trusted records, counts of sealed records and signatures, and notes for a cut partition's tail, with
or without the C path, over clean runs and over runs whose signed records were made hostile after sealing (signatures
altered, cut, removed, doubled or moved, headers added around them, numbers changed, keys outside their validity).
And the rest of a trusted run taken from the loop's held records in C (`trusted_run`) is what the Python loop takes.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Any, NamedTuple

from leadbus.audit import replay as replay_module
from leadbus.audit.stage_seals import Noted, StageSealVerifier, _take_trusted
from leadbus.audit.verification import AcceptedLeads, ReplayRecord, standard_verifiers
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of
from leadbus.stage_seals import (
    PREV_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    _lane_head,
    lane_hash,
    record_link,
)
from leadbus.topics import CASES
from tests.unit.test_audit_native_picker import python_alone
from tests.unit.test_audit_vouched import CATALOG, LINKING_KEY, STAMP, T0, Row, streams


def judged(rows: list[Row], registry: KeyRegistry, *, noted: bool = False, stamp: int = STAMP) -> tuple[Any, ...]:
    """The replay's loop over `rows` with every verifier (the stage check vouching): what it found and counted."""
    stage = StageSealVerifier(registry)
    stage.vouching = True
    if noted:
        stage.noted = Noted()
    verifiers = [*standard_verifiers(), stage]
    for verifier in verifiers:
        if isinstance(verifier, AcceptedLeads):
            verifier.trust_stage_seals = True
    offsets: Counter[tuple[str, int]] = Counter()
    records = []
    for topic, partition, key, value, headers in rows:
        records.append(ReplayRecord(topic, partition, offsets[(topic, partition)], stamp, key, value, headers, CATALOG))
        offsets[(topic, partition)] += 1
    report = replay_module.ReplayReport("test")
    replay_module._loop(records, verifiers, None, None, None, report, None, None)
    replay_module.finish(verifiers, report)
    report.findings.sort(key=lambda f: (f.topic, f.partition, f.offset, f.check, f.message))
    lanes = {lane: (state.sequence, state.link, state.at, state.unsigned_from) for lane, state in stage._lanes.items()}
    return (report.findings, report.by_type_publisher, [r.trusted for r in records], report.sealed, stage.sealed,
            stage.signatures, lanes, stage.noted)


def signed_at(rows: list[Row]) -> list[int]:
    return [i for i, row in enumerate(rows) if any(name == SIGNATURE_HEADER for name, _ in row[4])]


def hostile_closing(rng: random.Random, rows: list[Row]) -> list[Row]:
    """`rows` with one to three of their signed records made hostile after sealing."""
    out = list(rows)
    signed = signed_at(out)
    for i in rng.sample(signed, rng.randrange(1, 4)):
        topic, partition, key, value, headers = out[i]
        headers = list(headers)
        signature = headers[-1][1] or b""
        how = rng.randrange(12)
        if how == 0:  # a bit of the signature flipped
            at = rng.randrange(64)
            headers[-1] = (SIGNATURE_HEADER, signature[:at] + bytes([signature[at] ^ 1]) + signature[at + 1:])
        elif how == 1:  # cut, or made longer
            headers[-1] = (SIGNATURE_HEADER, rng.choice([signature[:63], signature + b"\x00", b""]))
        elif how == 2:  # no value, or a value of another type
            headers[-1] = (SIGNATURE_HEADER, rng.choice([None, bytearray(signature), signature.hex()]))  # type: ignore[list-item]
        elif how == 3:  # removed
            headers.pop()
        elif how == 4:  # first rather than last
            headers.insert(0, headers.pop())
        elif how == 5:  # twice
            headers.append(headers[-1])
        elif how == 6:  # another header after it, or before the seal
            headers.insert(rng.choice([len(headers), 0]), ("x-extra", b"1"))
        elif how == 7:  # another signed record's signature
            other = out[rng.choice(signed)][4]
            headers[-1] = other[-1] if other and other[-1][0] == SIGNATURE_HEADER else headers[-1]
        elif how == 8:  # its number changed
            headers = [(n, str(int(v or b"1") + rng.choice([-1, 1, 2])).encode() if n == SEQUENCE_HEADER else v)
                       for n, v in headers]
        elif how == 9:  # its prev changed
            headers = [(n, rng.randbytes(32) if n == PREV_HEADER else v) for n, v in headers]
        elif how == 10:  # its value changed (the signature no longer covers it)
            value = (value or b"") + b"\x00"
        else:  # swapped with the record before it
            if i > 0 and out[i - 1][1] == partition:
                out[i - 1], out[i] = out[i], out[i - 1]
                continue
        out[i] = (topic, partition, key, value, headers)
    return out


class FirstLane(NamedTuple):
    """The first partition's rows of `leadbus.cases` and what `quick_run` takes of their lane, from its first record."""

    rows: list[Row]
    partition: int
    signer: bytes
    key_id: bytes
    chain: bytes
    head: Any
    lane: Any
    prev: bytes
    number: int


def first_lane(cases: list[Row]) -> FirstLane:
    partition = cases[0][1]
    rows = [row for row in cases if row[1] == partition]
    seal = dict(rows[0][4])
    signer, key_id, chain = (seal[name] for name in (SIGNER_HEADER, "leadbus-stage-key-id", "leadbus-stage-chain"))
    assert signer is not None and key_id is not None and chain is not None
    names = (signer.decode(), key_id.decode(), chain.decode())
    prev, number = seal[PREV_HEADER], int(seal[SEQUENCE_HEADER] or b"0")
    assert prev is not None
    return FirstLane(rows, partition, signer, key_id, chain, _lane_head(rows[0][0], partition, *names),
                     lane_hash(rows[0][0], partition, *names), prev, number)


def test_quick_run_gives_the_closing_records_link_and_signature_only_for_the_usual_one() -> None:
    from leadbus.audit._seal_link import quick_run

    _, cases, registry = streams()
    rows, partition, signer, key_id, chain, head, lane, prev, number = first_lane(cases)

    def records(of: list[Row], stamp: int = STAMP) -> list[ReplayRecord]:
        return [ReplayRecord(t, p, i, stamp, k, v, h, CATALOG) for i, (t, p, k, v, h) in enumerate(of)]

    first_signed = signed_at(rows)[0]
    assert first_signed > 0

    def run(of: list[Row], stamp: int = STAMP, until: int | None = None) -> tuple[int, bytes, Any]:
        got = quick_run(records(of, stamp), 0, len(of), rows[0][0], partition, signer, key_id, chain, prev, number,
                        lane, 0, until, None, True, head, True)
        assert got[:2] == quick_run(records(of, stamp), 0, len(of), rows[0][0], partition, signer, key_id, chain, prev,
                                    number, lane, 0, until, None, True, head)
        return got

    taken, _, closing = run(rows)
    assert taken == first_signed
    t, p, k, v, h = rows[first_signed]
    seal, names = dict(h), (signer.decode(), key_id.decode(), chain.decode())
    assert closing == (record_link(t, p, *names, int(seal[SEQUENCE_HEADER] or b"0"), k, v, h, seal[PREV_HEADER] or b""),
                       seal[SIGNATURE_HEADER])
    # anything unusual about the closing record: no closing (`check` judges it)
    for how in range(8):
        changed = list(rows)
        headers = list(h)
        if how == 0:
            headers[-1] = (SIGNATURE_HEADER, (headers[-1][1] or b"")[:63])
        elif how == 1:
            headers[-1] = (SIGNATURE_HEADER, None)
        elif how == 2:
            headers.insert(0, headers.pop())
        elif how == 3:
            headers.append(("x-extra", b"1"))
        elif how == 4:
            headers.append(headers[-1])
        elif how == 5:
            headers = [(n, b"0" + (x or b"") if n == SEQUENCE_HEADER else x) for n, x in headers]
        elif how == 6:
            headers[-1] = (SIGNATURE_HEADER, bytearray(headers[-1][1] or b""))  # type: ignore[assignment]
        else:
            headers = tuple(headers)  # type: ignore[assignment]  # a tuple is read as a list is
        changed[first_signed] = (t, p, k, v, headers)
        assert run(changed)[:1] == (first_signed,), how
        assert (run(changed)[2] is None) == (how != 7), how
    # the closing record at a time its key is not valid, or the run's end before it
    assert run(rows, until=STAMP + 1)[2] is not None
    late = records(rows)
    late[first_signed].timestamp_ms = STAMP + 5
    assert quick_run(late, 0, len(rows), rows[0][0], partition, signer, key_id, chain, prev, number, lane, 0, STAMP + 1,
                     None, True, head, True)[2] is None
    assert quick_run(records(rows), 0, first_signed, rows[0][0], partition, signer, key_id, chain, prev, number, lane,
                     0, None, None, True, head, True)[2] is None
    assert registry  # the stream's keys (used by the loop tests below)


def test_the_loop_takes_clean_closing_records_in_c_and_judges_them_as_check_does() -> None:
    _, cases, registry = streams()
    rows = list(cases)
    native = judged(rows, registry, noted=True)
    with python_alone():
        reference = judged(rows, registry, noted=True)
    assert native == reference
    assert not native[0] and all(native[2]) and native[5] == len(signed_at(rows))
    # with the C path, `check` sees no closing record but a lane's first ones
    calls: list[ReplayRecord] = []
    check = StageSealVerifier.check

    def counted(self: StageSealVerifier, record: ReplayRecord) -> Any:
        calls.append(record)
        return check(self, record)

    StageSealVerifier.check = counted  # type: ignore[method-assign]
    try:
        judged(rows, registry)
    finally:
        StageSealVerifier.check = check  # type: ignore[method-assign]
    assert len(calls) <= 2 * len({row[1] for row in rows}), len(calls)


def test_hostile_closing_records_are_found_alike_with_the_c_path_or_without() -> None:
    _, cases, registry = streams()
    rng = random.Random(1616)
    failing = 0
    for round_ in range(80):
        rows = hostile_closing(rng, list(cases))
        noted = round_ % 2 == 0
        native = judged(rows, registry, noted=noted)
        with python_alone():
            reference = judged(rows, registry, noted=noted)
        assert native == reference, round_
        failing += any(f.failure for f in native[0])
    assert failing >= 60, failing


def test_closing_records_outside_their_keys_validity_are_found_alike() -> None:
    _, cases, _ = streams()
    public = LINKING_KEY.public_key().public_bytes_raw()
    registry = KeyRegistry()
    registry.apply(PublisherKey("LEADBUS-linking", key_id_of(public), public, T0, T0, require_signed=False))
    for stamp in (STAMP, 0, int(T0.timestamp() * 1000) - 1):  # valid; no time (judged now); before the key's start
        native = judged(list(cases), registry, stamp=stamp)
        with python_alone():
            reference = judged(list(cases), registry, stamp=stamp)
        assert native == reference, stamp


class Held:
    """A record as `take_trusted` reads it, with attributes of any kind (truthy numbers, other topics, no value)."""

    def __init__(self, rng: random.Random, n: int) -> None:
        self.n = n
        self.pending: object = rng.choice([False, False, False, True, 0, 1, None, ""])
        self.trusted: object = rng.choice([True, True, True, False, 1, 0, None, "y"])
        self.value: object = rng.choice([b"v", b"v", b"", None])
        self.topic: object = rng.choice(["leadbus.cases", "leadbus.cases", "leadbus.cases2", "leadbus.case", 7])


def test_the_c_trusted_run_pops_what_the_python_loop_pops() -> None:
    from leadbus.audit._seal_link import trusted_run

    rng = random.Random(16)
    for _ in range(2000):
        records = [Held(rng, n) for n in range(rng.randrange(0, 12))]
        if rng.random() < 0.5:  # mostly a clean run, as the replay holds them
            for record in records[:rng.randrange(len(records) + 1)]:
                record.pending, record.trusted, record.value, record.topic = False, True, b"v", "leadbus.cases"
        native, reference = deque(records), deque(records)
        got = trusted_run(native, "leadbus.cases")
        assert [r.n for r in got] == [r.n for r in _take_trusted(reference, "leadbus.cases")]  # type: ignore[arg-type]
        assert list(native) == list(reference)
    assert trusted_run(deque(), "leadbus.cases") == []


class _Subclassed(ReplayRecord):
    """A record class the C run does not read by its slots: by getattr and setattr, as any object."""

    __slots__ = ()


def test_the_c_run_reads_and_sets_a_records_slots_as_getattr_and_setattr_do() -> None:
    """`quick_run` and `trusted_run` over ReplayRecords (their slots read and set directly, `record_class`) give what
    they give over the same records of a subclass (getattr and setattr); a slot never set raises as getattr does."""
    from leadbus.audit._seal_link import quick_run, trusted_run

    _, cases, _ = streams()
    rows, partition, signer, key_id, chain, head, lane, prev, number = first_lane(cases)
    rng = random.Random(21)
    taken = 0
    for _ in range(60):
        start, vouching = rng.randrange(len(rows)), rng.random() < 0.8
        got = []
        for cls in (ReplayRecord, _Subclassed):
            records = [cls(t, p, i, STAMP, k, v, h, CATALOG) for i, (t, p, k, v, h) in enumerate(rows)]
            for record in records[start:]:
                record.pending = False
            run = quick_run(records, 0, len(rows), rows[0][0], partition, signer, key_id, chain, prev, number, lane, 0,
                            None, None, vouching, head, True)
            held: deque[ReplayRecord] = deque(records)
            for record in records:
                record.trusted = True
            got.append((run, [(r.pending, r._sealed) for r in records], [r.offset for r in trusted_run(held, CASES)],
                        len(held)))
        assert got[0] == got[1]
        taken += got[0][0][0]
    assert taken > 100, taken
    bare = ReplayRecord.__new__(ReplayRecord)
    for fails in (lambda: quick_run([bare], 0, 1, rows[0][0], partition, signer, key_id, chain, prev, number, lane, 0,
                                    None, None, True, head, True),
                  lambda: trusted_run(deque([bare]), CASES)):
        try:
            fails()
        except AttributeError as exc:
            assert "topic" in str(exc) or "pending" in str(exc)
        else:
            raise AssertionError("a slot never set reads as set")
