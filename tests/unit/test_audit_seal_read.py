"""The replay's quick read of seal headers gives what `Seal.from_headers` gives, for any headers: the same seal,
or the same `MalformedSeal` — well-formed chained seals, and each of them damaged in every way we could think of."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.seals import read_seal
from leadbus.signing import MalformedSeal, Seal, sign

KEY = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)


def _headers(sequence: int = 5, publisher: str = "SAMR.33") -> list[tuple[str, bytes | None]]:
    return list(sign(KEY, publisher, "leadbus.intake.SAMR", 1, sequence, b"\xc3\x01v", prev=b"\x01" * 32).headers())


def _outcome(read: object, headers: list[tuple[str, bytes | None]]) -> object:
    try:
        return read(headers)  # type: ignore[operator]
    except MalformedSeal as exc:
        return ("MalformedSeal", str(exc))


def _damaged(rng: random.Random) -> list[tuple[str, bytes | None]]:
    headers = _headers(rng.randint(1, 10**6), rng.choice(["SAMR.33", "CAC", "SAMR.33-gw2"]))
    i = rng.randrange(len(headers))
    name, value = headers[i]
    kind = rng.randrange(9)
    if kind == 0:
        headers[i] = (name, None)
    elif kind == 1:
        headers[i] = (name, (value or b"")[:-1])
    elif kind == 2:
        headers[i] = (name, (value or b"") + b"0")
    elif kind == 3:
        headers[i] = (name, rng.choice([b"0", b"-1", b"\xff\xfe", b"", b"1e3", b" 7", "٣".encode(), b"9" * 20]))
    elif kind == 4:
        del headers[i]
    elif kind == 5:
        headers.append(headers[i])
    elif kind == 6:
        j = rng.randrange(len(headers))
        headers[i], headers[j] = headers[j], headers[i]
    elif kind == 7:
        headers.insert(rng.randrange(len(headers) + 1), ("traceparent", b"00-abc"))
    else:
        headers[i] = (name.upper(), value)
    return headers


def test_a_well_formed_chained_seal_reads_as_from_headers() -> None:
    headers = _headers()
    assert read_seal(headers) == Seal.from_headers(headers)
    assert read_seal(headers) == read_seal(tuple(headers))  # as a consumer hands them over: a tuple of tuples


@pytest.mark.parametrize("seed", range(6))
def test_damaged_seal_headers_read_as_from_headers(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        headers = _damaged(rng)
        assert _outcome(read_seal, headers) == _outcome(Seal.from_headers, headers), headers


def test_no_seal_and_a_v1_seal_read_as_from_headers() -> None:
    v1 = list(sign(KEY, "SAMR.33", "leadbus.intake.SAMR", 1, 3, b"\xc3\x01v").headers())
    for headers in ([], [("traceparent", b"x")], v1):
        assert _outcome(read_seal, headers) == _outcome(Seal.from_headers, headers)


def test_the_sdks_headers_read_directly_and_as_from_headers() -> None:
    from leadbus.producers.signing import MemorySequences, SigningSealer

    sealer = SigningSealer("SAMR.33", KEY, MemorySequences())
    for n in range(3):
        headers = list(sealer.seal("leadbus.intake.SAMR", b"k", b"\xc3\x01v%d" % n, 1))
        assert headers[0][0] == "content-type"  # the SDK's own header before the seal's six
        assert read_seal(headers) == Seal.from_headers(headers)
        moved = [*headers[1:], headers[0], ("leadbus-seq", b"9")]  # a seal header again, after the six
        assert _outcome(read_seal, moved) == _outcome(Seal.from_headers, moved)
