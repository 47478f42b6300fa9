"""The usual intake record judged in C (`native_intake.quick_seal`, `intake_lead`, `has_stage_seal`) against the Python
path it stands in for (the reference): the replay's loop over the same hostile intake records — a body altered, a
stranger's key id, malformed seal headers, a gap in a chain, a record delivered twice, a revision sent again with
other content, a stage seal's header where none belongs — gives the same findings, tally, signatures and state either
way, and the C path was taken for the untouched records."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from leadbus.audit import intake_runs, native_intake, seals, stage_seals, verification
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import StageSealVerifier, _has_stage_seal
from leadbus.audit.verification import IntakeLeads, ReplayRecord, standard_verifiers
from leadbus.signing import KEY_ID_HEADER, SEQUENCE_HEADER, SIGNATURE_HEADER, key_id_of, public_bytes
from leadbus.stage_seals import CHAIN_HEADER, SIGNER_HEADER, STAGE_SEAL_NAMES
from tests.audit_helpers import replay_records, replayed
from tests.unit.test_audit_native_intake import _hostile, _python_alone
from tests.unit.test_audit_seals_quick import CATALOG, KEYS, STREAM, TOPIC, Rec, _registry, _set, _tamper


def test_the_c_judgement_is_built() -> None:
    """A broken build must not pass as the Python path."""
    assert None not in (native_intake.quick_seal, native_intake.intake_lead, native_intake.has_stage_seal)
    assert seals._native_quick is not None and verification._native_lead is not None
    assert stage_seals._native_has_seal is not None


def _altered(recs: list[Rec], i: int) -> list[Rec]:
    r = recs[i]
    at = len(r.value) - 3  # past the lead's head: the same lead and revision, other bytes
    return [*recs[:i], replace(r, value=r.value[:at] + bytes([r.value[at] ^ 1]) + r.value[at + 1:]), *recs[i + 1:]]


def _stranger(recs: list[Rec], i: int) -> list[Rec]:
    kid = key_id_of(public_bytes(KEYS["stranger"].public_key())).encode()
    return [*recs[:i], _set(recs[i], KEY_ID_HEADER, kid), *recs[i + 1:]]


def _malformed(recs: list[Rec], i: int) -> list[Rec]:
    out = list(recs)
    out[i] = _set(out[i], SEQUENCE_HEADER, b"7 ")
    out[i + 7] = _set(out[i + 7], SIGNATURE_HEADER, b"short")
    out[i + 14] = replace(out[i + 14], headers=list(reversed(out[i + 14].headers)))
    headers: list[Any] = list(out[i + 21].headers)
    headers[2] = list(headers[2])  # a header as a list: not a pair of the usual types
    out[i + 21] = replace(out[i + 21], headers=headers)
    headers = list(out[i + 28].headers)
    headers[1] = (headers[1][0].encode(), headers[1][1])  # a name as bytes
    out[i + 28] = replace(out[i + 28], headers=headers)
    return out


def _gap(recs: list[Rec], i: int) -> list[Rec]:
    return [*recs[:i], *recs[i + 1:]]


def _twice(recs: list[Rec], i: int) -> list[Rec]:
    return [*recs[:i + 5], recs[i], *recs[i + 5:]]


def _conflict(recs: list[Rec], i: int) -> list[Rec]:
    return [*recs[:i + 5], _altered(recs, i)[i], *recs[i + 5:]]


def _stage_header(recs: list[Rec], i: int) -> list[Rec]:
    out = list(recs)
    out[i] = replace(out[i], headers=[*out[i].headers, (SIGNER_HEADER, b"LEADBUS.intake")])
    out[i + 3] = replace(out[i + 3], headers=[(CHAIN_HEADER, None), *out[i + 3].headers])
    return out


HOSTILE = {"altered body": _altered, "wrong key id": _stranger, "malformed headers": _malformed, "gap": _gap,
           "duplicate": _twice, "revision conflict": _conflict, "stage seal header": _stage_header}


class _Counted:
    """A C function and how often it took a record (True, or a link to open a run with)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.taken = fn, 0

    def __call__(self, *args: Any) -> Any:
        got = self.fn(*args)
        self.taken += got is not None
        return got


def _replayed(recs: list[Rec], *, keep_sources: bool) -> list[Any]:
    """The replay's loop as a Kafka replay of the intake topic runs it (the standard verifiers, the seal verifier, the
    stage seal verifier vouching): its findings, tally and count, and what the verifiers keep."""
    stage = StageSealVerifier(_registry())
    stage.vouching = True
    bus = BusSealVerifier(_registry(), window=16)
    verifiers: list[Any] = [*standard_verifiers(), bus, stage]
    intake = next(v for v in verifiers if isinstance(v, IntakeLeads))
    intake.keep_sources = keep_sources
    report = replayed(replay_records(TOPIC, recs, CATALOG), verifiers)
    return [report.findings, sorted(report.by_type_publisher.items()), report.selected, bus.signatures, bus.sealed,
            intake._seen, intake.sources, intake.ranges, stage.first_offsets, stage.sealed]


@pytest.mark.parametrize("keep_sources", [False, True])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_intake_records_give_the_same_findings_in_c_or_python(case: str, keep_sources: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    recs = HOSTILE[case](STREAM, 40)
    quick, lead = _Counted(seals._native_quick), _Counted(verification._native_lead)
    monkeypatch.setattr(intake_runs, "_native_plain", None)  # each check's C (the C pass: test_audit_intake_runs)
    monkeypatch.setattr(seals, "_native_quick", quick)
    monkeypatch.setattr(verification, "_native_lead", lead)
    fast = _replayed(recs, keep_sources=keep_sources)
    assert fast[0], case  # something is found (the revocation part of the way through, at least)
    assert quick.taken > len(recs) // 2 and lead.taken > len(recs) // 2  # the untouched records went through C
    _python_alone(monkeypatch)
    assert fast == _replayed(recs, keep_sources=keep_sources), case


@pytest.mark.parametrize("seed", range(16))
def test_tampered_streams_give_the_same_replay_in_c_or_python(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(700 + seed)
    recs = _tamper(STREAM, rng)
    recs = _hostile(recs, rng) if seed % 2 else HOSTILE[rng.choice(sorted(HOSTILE))](recs, rng.randrange(60))
    keep = bool(seed % 3)
    fast = _replayed(recs, keep_sources=keep)
    _python_alone(monkeypatch)
    assert fast == _replayed(recs, keep_sources=keep)


def _stage_headers(rng: random.Random) -> Any:
    headers: list[Any] = list(rng.choice(STREAM).headers)
    for _ in range(rng.randint(0, 3)):
        kind = rng.randrange(6)
        at = rng.randrange(len(headers) + 1)
        if kind == 0:
            headers.insert(at, (rng.choice(sorted(STAGE_SEAL_NAMES)), rng.choice([b"x", None])))
        elif kind == 1 and headers:
            headers[rng.randrange(len(headers))] = rng.choice([("only-a-name",), ("a", b"b", b"c"), b"ab", None,
                                                               ["leadbus-stage-signer", b"x"], (7, b"x")])
        elif kind == 2:
            headers.insert(at, ("leadbus-stage-signer-not", b"x"))  # a name that only begins as a stage seal's
        elif kind == 3:
            headers = headers[:at]
    return headers if rng.randrange(2) else tuple(headers)


def _outcome(read: Any, *args: Any) -> object:
    try:
        return read(*args)
    except Exception as exc:  # noqa: BLE001 - the same exception either way is part of the same outcome
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("seed", range(4))
def test_the_c_stage_seal_scan_is_the_python_scan(seed: int) -> None:
    fast = native_intake.has_stage_seal
    assert fast is not None
    rng = random.Random(seed)
    read = 0
    for _ in range(600):
        headers = _stage_headers(rng)
        got = fast(headers, STAGE_SEAL_NAMES)
        if got is None:  # a header of an unusual shape before any stage seal's name: the reference reads them
            continue
        read += 1
        assert got == _outcome(_has_stage_seal, headers), headers
    assert read > 400
    assert fast("not headers", STAGE_SEAL_NAMES) is None and fast([], STAGE_SEAL_NAMES) is False  # type: ignore[arg-type]


def test_the_c_unsealed_run_is_built() -> None:
    assert native_intake.unsealed_run is not None and stage_seals._native_unsealed_run is not None


def _stretch(rng: random.Random) -> list[ReplayRecord]:
    """Records of one or two partitions and topics, some of them with hostile or stage-sealed headers."""
    out = []
    for k in range(rng.randint(0, 12)):
        headers = _stage_headers(rng) if rng.randrange(8) == 0 else rng.choice(STREAM).headers
        topic = rng.choice([TOPIC] * 6 + ["leadbus.intake.MPS", TOPIC[:-1] + TOPIC[-1]])  # an equal str, another object
        partition = rng.choice([0] * 12 + [1, True, 0.0])
        out.append(ReplayRecord(topic, partition, k, 1, b"k", b"v", rng.choice([headers, tuple(headers)]), CATALOG))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_the_c_unsealed_run_is_the_python_run(seed: int) -> None:
    fast = native_intake.unsealed_run
    assert fast is not None
    rng = random.Random(900 + seed)
    runs = 0
    for _ in range(500):
        records = _stretch(rng)
        start, stop = rng.randint(-1, len(records) + 1), rng.randint(-1, len(records) + 2)
        got = fast(records, start, stop, STAGE_SEAL_NAMES)
        assert got == stage_seals._unsealed_run(records, start, stop), (start, stop)
        runs += got > 1
    assert runs > 40
    with pytest.raises(TypeError):
        fast(tuple(records), 0, 1, STAGE_SEAL_NAMES)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(8))
def test_unsealed_stretches_give_the_same_replay_as_one_record_after_the_other(seed: int,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay's loop takes a stretch no stage seal covers at once (`StageSealVerifier.unsealed_many`, each check
    over the stretch): the same findings, tally, signatures and state as each record through `check` one by one, with
    the C scan or its Python reference."""
    rng = random.Random(1300 + seed)
    recs = _tamper(STREAM, rng)
    recs = _hostile(recs, rng) if seed % 2 else HOSTILE[rng.choice(sorted(HOSTILE))](recs, rng.randrange(60))
    keep = bool(seed % 3)
    scan, taken = stage_seals._native_unsealed_run, []
    assert scan is not None
    monkeypatch.setattr(stage_seals, "_native_unsealed_run", lambda *args: taken.append(scan(*args)) or taken[-1])
    at_once = _replayed(recs, keep_sources=keep)
    assert sum(taken) > len(recs) // 2  # most records went by stretches
    monkeypatch.setattr(stage_seals, "_native_unsealed_run", None)
    assert at_once == _replayed(recs, keep_sources=keep)
    monkeypatch.setattr(StageSealVerifier, "unsealed_many", lambda self, records, start, stop: 0)
    assert at_once == _replayed(recs, keep_sources=keep)
