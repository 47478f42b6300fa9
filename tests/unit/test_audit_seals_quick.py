"""The seal verifier's quick path (a known signer's chained seal judged without building a `Seal`) finds exactly what
the full judgement finds: the same findings, in the same order, at the same coordinates, with the same signatures
counted — over signed lanes on several partitions, tampered at random in every way we could think of."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.seals import BusSealVerifier, _Fields
from leadbus.audit.verification import Finding, ReplayRecord
from leadbus.avro import encode_object, packaged_catalog
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import (
    KEY_ID_HEADER,
    PARTITION_HEADER,
    PREV_HEADER,
    PUBLISHER_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    KeyRegistry,
    PublisherKey,
    key_id_of,
    public_bytes,
)
from tests.audit_helpers import replay_records

CATALOG = packaged_catalog()
START = datetime(2026, 11, 2, 8, tzinfo=UTC)
TOPIC = "leadbus.intake.SAMR"
KEYS = {name: Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)
        for n, name in enumerate(("SAMR.33", "SAMR.44", "stranger"), 1)}


class _Full(BusSealVerifier):
    """Every record through the full judgement."""

    def _quick(self, record: ReplayRecord, fields: _Fields) -> list[Finding] | None:
        return None

    def _quick_in_c(self, record: ReplayRecord) -> list[Finding] | None:
        return None


@dataclass
class Rec:
    partition: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    ms: int


def _registry() -> KeyRegistry:
    keys = []
    for name in ("SAMR.33", "SAMR.44"):
        raw = public_bytes(KEYS[name].public_key())
        # SAMR.44's key is revoked part of the way through the stream: later records are judged KEY_REVOKED
        revoked = START + timedelta(seconds=150) if name == "SAMR.44" else None
        keys.append(PublisherKey(name, key_id_of(raw), raw, START - timedelta(days=30), START - timedelta(days=30),
                                 revoked_at=revoked))
    return KeyRegistry(keys)


def _stream(n: int, partitions: int = 3, ids: Callable[[int, str], str] | None = None) -> list[Rec]:
    """`n` leads of SAMR.33 and SAMR.44 on `partitions` partitions (three: each partition one publisher's), sealed v2 by
    the SDK's sealer, in order; `ids`: the i-th lead's id from the generator's, when given."""
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    sealers = {p: SigningSealer(p, KEYS[p], MemorySequences()) for p in ("SAMR.33", "SAMR.44")}
    gen = TrafficGenerator(seed=5)
    out = []
    for i in range(n):
        who = "SAMR.33" if i % 3 else "SAMR.44"
        lead = gen.lead(START + timedelta(seconds=i))
        lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": "SAMR",
                                                                                      "province": who[-2:]})})
        if ids is not None:
            lead = lead.model_copy(update={"lead_id": ids(i, lead.lead_id)})
        value = encode_object(schema, lead)
        key = lead.lead_id.encode()
        partition = i % partitions
        headers: list[tuple[str, bytes | None]] = [("content-type", b"application/vnd.leadbus.avro"),
                                                   *sealers[who].seal(TOPIC, key, value, partition)]
        out.append(Rec(partition, key, value, headers, int(START.timestamp() * 1000) + i * 1000))
    return out


def _set(r: Rec, name: str, value: bytes | None) -> Rec:
    return replace(r, headers=[(k, value if k == name else v) for k, v in r.headers])


def _tamper(recs: list[Rec], rng: random.Random) -> list[Rec]:
    recs = list(recs)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(recs))
        r = recs[i]
        kind = rng.randrange(17)
        if kind == 0:  # a byte of the body altered
            at = rng.randrange(10, len(r.value))
            recs[i] = replace(r, value=r.value[:at] + bytes([r.value[at] ^ 1]) + r.value[at + 1:])
        elif kind == 1:
            del recs[i]
        elif kind == 2:
            j = rng.randrange(len(recs))
            recs[i], recs[j] = recs[j], recs[i]
        elif kind == 3:
            recs.insert(rng.randrange(len(recs) + 1), r)
        elif kind == 4:
            recs[i] = replace(r, partition=(r.partition + 1) % 3)
        elif kind == 5:
            recs[i] = replace(r, key=b"another-lead")
        elif kind == 6:
            recs[i] = replace(r, ms=rng.choice([0, -1, int((START - timedelta(days=60)).timestamp() * 1000)]))
        elif kind == 7:  # the same number written otherwise: it reads the same
            seq = dict(r.headers)[SEQUENCE_HEADER] or b""
            recs[i] = _set(r, SEQUENCE_HEADER, b"0" + seq)
        elif kind == 8:
            recs[i] = _set(r, PARTITION_HEADER, b"0" + (dict(r.headers)[PARTITION_HEADER] or b""))
        elif kind == 9:
            recs[i] = _set(r, SIGNATURE_HEADER, bytes(64))
        elif kind == 10:
            recs[i] = _set(r, PREV_HEADER, rng.choice([bytes(32), b"\x01" * 32, b"short"]))
        elif kind == 11:
            recs[i] = _set(r, PUBLISHER_HEADER, rng.choice([b"SAMR.44", b"SAMR.33-gw2", b"MPS.33", b"\xff"]))
        elif kind == 12:
            recs[i] = _set(r, KEY_ID_HEADER, key_id_of(public_bytes(KEYS["stranger"].public_key())).encode())
        elif kind == 13:
            recs[i] = replace(r, headers=[h for h in r.headers if h[0] == "content-type"])  # seal removed
        elif kind == 14:
            recs[i] = replace(r, headers=list(reversed(r.headers)))  # the seal's headers in another order
        elif kind == 15:
            recs[i] = _set(r, SEQUENCE_HEADER, rng.choice([b"0", b"", b"99999999999999999999", b"7 "]))
        else:  # a record signed by a stranger's key under SAMR.33's name
            sealer = SigningSealer("SAMR.33", KEYS["stranger"], MemorySequences())
            recs[i] = replace(r, headers=[("content-type", b"x"), *sealer.seal(TOPIC, r.key, r.value, r.partition)])
    return recs


def _run(verifier: BusSealVerifier, recs: list[Rec]) -> tuple[list[Finding], int, int]:
    found: list[Finding] = []
    for record in replay_records(TOPIC, recs, CATALOG):
        found += verifier.check(record)
    return found + verifier.finish(), verifier.signatures, verifier.sealed


STREAM = _stream(240)


def test_a_clean_stream_takes_the_quick_path_and_finds_only_the_revocation() -> None:
    quick = BusSealVerifier(_registry(), window=16)
    found, signatures, sealed = _run(quick, STREAM)
    assert (found, signatures, sealed) == _run(_Full(_registry(), window=16), STREAM)
    assert quick._quick_signers  # the quick path was taken
    assert {f.check for f in found} == {"KEY_REVOKED"} and sealed == len(STREAM)


@pytest.mark.parametrize("seed", range(60))
def test_tampered_streams_give_the_same_findings_either_way(seed: int) -> None:
    rng = random.Random(seed)
    recs = _tamper(STREAM, rng)
    window = rng.choice([1, 4, 16, 256])
    verifier = BusSealVerifier(_registry(), window=window)
    quick = _run(verifier, recs)
    assert quick == _run(_Full(_registry(), window=window), recs)
    assert verifier._quick_signers  # the untouched records took the quick path
