"""The replay's intake path in C (`leadbus.audit.native_intake`) against its Python references: a chained seal's
fields (`seals._chained_fields`), its link digest (`leadbus.signing`), a lead's head (`verification._peek_usual`) —
the same values for the same inputs, over sealed, tampered, forged, cut and hostile records — and the verifiers give
the same findings, signatures and counts with the C path or without it."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from leadbus.audit import native_intake, seals, stage_seals, verification
from leadbus.audit.seals import BusSealVerifier, _chained_fields, _link_of
from leadbus.audit.verification import LeadHead, _peek_usual, standard_verifiers
from leadbus.signing import _message_head, link_digest, signed_message
from tests.audit_helpers import replay_records, replayed
from tests.unit.test_audit_chained_fields import _sdk
from tests.unit.test_audit_peek import LEADS
from tests.unit.test_audit_seals_quick import CATALOG, STREAM, TOPIC, Rec, _registry, _run, _tamper


def test_the_intake_extension_is_built_and_in_use() -> None:
    """`make install` builds it (deploy/install-build-deps.sh puts OpenSSL's headers in place): a broken build must
    not pass as the Python fallback, as for the picker and the seal link."""
    assert None not in (native_intake.chained_fields, native_intake.link_digest, native_intake.peek_usual,
                        native_intake.sha256, native_intake.quick_seal, native_intake.intake_lead,
                        native_intake.has_stage_seal)


def _outcome(read: Any, *args: Any) -> object:
    try:
        return read(*args)
    except Exception as exc:  # noqa: BLE001 - the same exception either way is part of the same outcome
        return (type(exc).__name__, str(exc))


def _usual(headers: Any) -> bool:
    """Headers the C reader reads itself: a list or tuple of (str, bytes or None) pairs, at most 64."""
    return (type(headers) in (list, tuple) and len(headers) <= 64
            and all(type(h) is tuple and len(h) == 2 and type(h[0]) is str and (h[1] is None or type(h[1]) is bytes)
                    for h in headers))


@pytest.mark.parametrize("seed", range(8))
def test_the_c_fields_are_the_python_fields(seed: int) -> None:
    rng = random.Random(seed)
    fast = native_intake.chained_fields
    assert fast is not None
    read = 0
    for _ in range(500):
        headers = _sdk(rng)
        for shape in (headers, tuple(headers)):
            got = fast(shape)
            if got is False:  # the reference decides: only for headers of unusual types
                assert not _usual(shape), shape
                continue
            read += 1
            assert _usual(shape) and got == _outcome(_chained_fields, shape), shape
    assert read > 600
    assert fast([("leadbus-publisher", b"x")] * 65) is False and fast("not headers") is False  # type: ignore[arg-type]


def test_the_sdks_headers_read_in_c() -> None:
    for r in STREAM:
        got = native_intake.chained_fields(tuple(r.headers)) if native_intake.chained_fields else None
        assert got is not None and got is not False and got == _chained_fields(r.headers)


def test_the_c_link_is_the_signing_link() -> None:
    fast = native_intake.link_digest
    assert fast is not None
    rng = random.Random(3)
    for n in range(300):
        topic, partition = rng.choice([TOPIC, "leadbus.intake.MPS", "t" * 200]), rng.randrange(1000)
        publisher, key_id = rng.choice(["SAMR.33", "MPS", "省"]), rng.choice(["k" * 16, ""])
        sequence = rng.choice([1, 9, 10, 2**63 - 1, rng.randrange(1, 10**6)])
        value = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 55, 700, 5000])))
        prev, signature = bytes(rng.randrange(256) for _ in range(32)), bytes(rng.randrange(256) for _ in range(64))
        head = _message_head(topic, partition, publisher, key_id, True)
        expected = link_digest(signed_message(topic, partition, publisher, key_id, sequence, value, prev), signature)
        raw = str(sequence).encode()
        assert fast(head, raw, value, prev, signature) == expected == _link_of(head, raw, value, prev, signature), n
    for odd in (bytearray(b"ab"), memoryview(b"ab"), "ab", None):
        assert fast(b"h", b"1", odd, bytes(32), bytes(64)) is None  # type: ignore[arg-type]


def _damaged(value: bytes, rng: random.Random) -> bytes:
    data = bytearray(value)
    kind = rng.randrange(6)
    if kind == 0:  # cut short anywhere
        data = data[:rng.randrange(0, 80)]
    elif kind == 1:
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(10, min(len(data), 90))] = rng.randrange(256)
    elif kind == 2:
        data[10:10] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
    elif kind == 3:
        data = bytearray(value[:10]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
    elif kind == 4:
        at = rng.randrange(10, 60)
        data[at:at] = b"\xff" * rng.randint(1, 14)  # a long run of varint continuation bytes
    else:  # a name that is not UTF-8, or a surrogate's encoding
        at = rng.randrange(11, 60)
        data[at:at + 3] = rng.choice([b"\xff\xfe\xfd", b"\xed\xa0\x80", b"\xc0\xaf\x00"])
    return bytes(data)


@pytest.mark.parametrize("seed", range(10))
def test_the_c_head_is_the_python_head(seed: int) -> None:
    fast = native_intake.peek_usual
    assert fast is not None
    rng = random.Random(seed)
    for value in LEADS:
        for data in (value, _damaged(value, rng), _damaged(value, rng)):
            got = fast(data, LeadHead)
            assert got == _peek_usual(data), data[:80]
            assert got is None or type(got) is LeadHead
    for odd in (bytearray(LEADS[0]), memoryview(LEADS[0]), None, 7):
        assert fast(odd, LeadHead) is None  # not bytes: the general reader decides  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast(LEADS[0], dict)


def _python_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seals, "_native_fields", None)
    monkeypatch.setattr(seals, "_native_link", None)
    monkeypatch.setattr(verification, "_native_peek", None)
    monkeypatch.setattr(verification, "_native_sha256", None)
    monkeypatch.setattr(seals, "_native_quick", None)
    monkeypatch.setattr(verification, "_native_lead", None)
    monkeypatch.setattr(stage_seals, "_native_has_seal", None)


def _hostile(recs: list[Rec], rng: random.Random) -> list[Rec]:
    """Headers made hostile after sealing: values of other types, names that are not str, a header as a list, headers
    as a tuple, a body cut short."""
    out = list(recs)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(out))
        r = out[i]
        headers: list[Any] = list(r.headers)
        j = rng.randrange(len(headers))
        how = rng.randrange(5)
        if how == 0:
            headers[j] = (headers[j][0], rng.choice([bytearray(headers[j][1] or b""), "text", 7, None]))
        elif how == 1:
            headers[j] = (rng.choice([headers[j][0].encode(), 3, None]), headers[j][1])
        elif how == 2:
            headers[j] = list(headers[j])
        elif how == 3:
            headers = headers * rng.choice([2, 10])  # a seal's headers twice, or more than 64 headers
        else:
            out[i] = Rec(r.partition, r.key, r.value[:rng.randrange(0, len(r.value))], r.headers, r.ms)
            continue
        out[i] = Rec(r.partition, r.key, r.value, headers, r.ms)
    return out


@pytest.mark.parametrize("seed", range(30))
def test_the_seal_verifier_finds_the_same_with_the_c_path_or_without(seed: int, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    rng = random.Random(seed)
    recs = _tamper(STREAM, rng) if seed % 3 else _hostile(_tamper(STREAM, rng), rng)
    window = rng.choice([1, 4, 16, 256])
    fast = _outcome(_run, BusSealVerifier(_registry(), window=window), recs)
    _python_alone(monkeypatch)
    assert fast == _outcome(_run, BusSealVerifier(_registry(), window=window), recs)


def _replayed(recs: list[Rec]) -> list[Any]:
    """The replay's loop over the records with every standard verifier and the seal verifier: its findings and tally."""
    report = replayed(replay_records(TOPIC, recs, CATALOG), [*standard_verifiers(), BusSealVerifier(_registry(),
                                                                                                   window=16)])
    return [report.findings, sorted(report.by_type_publisher.items()), report.selected]


@pytest.mark.parametrize("seed", range(12))
def test_the_replay_finds_the_same_with_the_c_path_or_without(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(100 + seed)
    recs = _hostile(_tamper(STREAM, rng), rng) if seed % 2 else _tamper(STREAM, rng)
    fast = _replayed(recs)
    assert fast[0]  # tampered: something is found
    _python_alone(monkeypatch)
    assert fast == _replayed(recs)


def test_the_c_sha256_is_hashlibs() -> None:
    fast = native_intake.sha256
    assert fast is not None
    rng = random.Random(4)
    for size in (0, 1, 55, 56, 63, 64, 65, 700, 2300, 100_000):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert fast(data) == hashlib.sha256(data).digest()
    for odd in (bytearray(b"ab"), memoryview(b"ab"), "ab", None):
        assert fast(odd) is None  # type: ignore[arg-type]
