"""Chained (v2) seals in a replay: one signature per run of links, and every kind of tampering still located.

Records are real CaseLeads sealed by the SDK's `SigningSealer` (v2: each signs the previous link); old v1
events verify one by one as before. Each test tampers the way someone with the topic's bytes could, and
checks the finding's name and its offset — and that a clean lane costs a handful of signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.verification import Finding, ReplayRecord
from leadbus.avro import encode_object, packaged_catalog
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import (
    KEY_ID_HEADER,
    PREV_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    KeyRegistry,
    PublisherKey,
    key_id_of,
    public_bytes,
    sign,
)

CATALOG = packaged_catalog()
START = datetime(2026, 11, 2, 8, tzinfo=UTC)
TOPIC = "leadbus.intake.SAMR"
KEYS = {name: Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)
        for n, name in enumerate(("SAMR.33", "SAMR.44", "MPS.33", "stranger"), 1)}


@dataclass
class Rec:
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    ms: int


def _registry(**changes: object) -> KeyRegistry:
    keys = []
    for name in ("SAMR.33", "SAMR.44", "MPS.33"):
        raw = public_bytes(KEYS[name].public_key())
        keys.append(PublisherKey(name, key_id_of(raw), raw, START - timedelta(days=30), START - timedelta(days=30),
                                 **changes))  # type: ignore[arg-type]
    return KeyRegistry(keys)


def _leads(n: int, province: str = "33") -> list[Rec]:
    """`n` SAMR.<province> leads on partition 0, sealed v2 in order."""
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    sealer = SigningSealer(f"SAMR.{province}", KEYS[f"SAMR.{province}"], MemorySequences())
    out = []
    gen = TrafficGenerator(seed=3)
    for i in range(n):
        lead = gen.lead(START + timedelta(seconds=i))
        lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": "SAMR",
                                                                                      "province": province})})
        value = encode_object(schema, lead)
        key = lead.lead_id.encode()
        out.append(Rec(0, key, value, sealer.seal(TOPIC, key, value, 0), int(START.timestamp() * 1000) + i))
    return out


def _replay(recs: list[Rec], registry: KeyRegistry | None = None, window: int = 256, *,
            first_offset: int = 0, opens_log: bool = False) -> tuple[list[Finding], BusSealVerifier]:
    """`recs` replayed from `first_offset` in each partition (0: from the partition's very first record);
    `opens_log`: the first record read of each partition is its log's first visible one, whatever its offset (a
    Kafka replay reading from offset 0 past aborted transactions)."""
    verifier = BusSealVerifier(registry or _registry(), window=window)
    found: list[Finding] = []
    offsets: dict[int, int] = {}
    for r in recs:
        offset = offsets.get(r.partition, first_offset)
        offsets[r.partition] = offset + 1
        record = ReplayRecord(TOPIC, r.partition, offset, r.ms, r.key, r.value, r.headers, CATALOG)
        record.opens_log = opens_log and offset == first_offset
        found += verifier.check(record)
    return found + verifier.finish(), verifier


def _located(found: list[Finding]) -> set[tuple[str, int | None, int | None]]:
    return {(f.check, f.partition, f.offset) for f in found}


def _header(r: Rec, name: str, value: bytes | None) -> Rec:
    headers = [(k, v) for k, v in r.headers if k != name]
    return replace(r, headers=headers if value is None else [*headers, (name, value)])


def test_a_clean_lane_verifies_with_one_signature_per_window() -> None:
    found, verifier = _replay(_leads(300), window=128)
    assert found == []
    assert verifier.signatures == 3 and verifier.sealed == 300


def test_v1_events_still_verify_one_by_one() -> None:
    recs = _leads(5)
    for i, r in enumerate(recs):  # as the SDK sealed them before chains: no leadbus-prev, the v1 domain
        seal = sign(KEYS["SAMR.33"], "SAMR.33", TOPIC, 0, i + 1, r.value)
        recs[i] = replace(r, headers=seal.headers())
    assert PREV_HEADER not in dict(recs[0].headers)
    found, verifier = _replay(recs)
    assert found == [] and verifier.signatures == 5
    recs[2] = replace(recs[2], value=recs[2].value[:-1] + bytes([recs[2].value[-1] ^ 1]))
    assert _located(_replay(recs)[0]) == {("BAD_SIGNATURE", 0, 2), ("SEQUENCE_GAP", 0, 3)}


def test_an_altered_body_in_the_middle_of_a_chain_is_located() -> None:
    recs = _leads(40)
    body = bytearray(recs[17].value)
    body[-3] ^= 0x01
    recs[17] = replace(recs[17], value=bytes(body))
    assert _located(_replay(recs)[0]) == {("BAD_SIGNATURE", 0, 17), ("SEQUENCE_GAP", 0, 18)}


def test_the_last_record_altered_is_located() -> None:
    recs = _leads(10)
    recs[9] = replace(recs[9], value=recs[9].value[:-2])  # truncated
    assert ("BAD_SIGNATURE", 0, 9) in _located(_replay(recs)[0])


def test_a_whole_run_rewritten_consistently_is_located_record_by_record() -> None:
    """Someone re-chains altered records with a key nobody registered under the publisher's name."""
    recs = _leads(6)
    forged = SigningSealer("SAMR.33", KEYS["stranger"], MemorySequences())
    for i in range(6):
        recs[i] = replace(recs[i], headers=forged.seal(TOPIC, recs[i].key, recs[i].value, 0))
    assert _located(_replay(recs)[0]) == {("UNKNOWN_KEY", 0, i) for i in range(6)}


def test_a_forged_chain_signed_with_a_registered_key_id_but_the_wrong_signature() -> None:
    recs = _leads(6)
    for i in (2, 3, 4):  # signatures replaced, links left: the run's last signature fails, then each alone
        recs[i] = _header(recs[i], SIGNATURE_HEADER, bytes(64))
    assert _located(_replay(recs)[0]) == {("BAD_SIGNATURE", 0, 2), ("BAD_SIGNATURE", 0, 3), ("BAD_SIGNATURE", 0, 4),
                                          ("SEQUENCE_GAP", 0, 5)}


def test_dropped_swapped_and_replayed_records_are_located() -> None:
    recs = _leads(30)
    dropped = recs[:10] + recs[11:]
    assert _located(_replay(dropped)[0]) == {("SEQUENCE_GAP", 0, 10)}
    swapped = list(recs)
    swapped[5], swapped[6] = swapped[6], swapped[5]
    assert _located(_replay(swapped)[0]) == {("SEQUENCE_REORDERED", 0, 6)}
    replayed = recs[:20] + [recs[4]] + recs[20:]
    assert _located(_replay(replayed)[0]) == {("SEQUENCE_REPLAYED", 0, 20)}


@pytest.mark.parametrize("header", [SIGNATURE_HEADER, KEY_ID_HEADER, SEQUENCE_HEADER, PREV_HEADER,
                                    "leadbus-publisher", "leadbus-partition"])
def test_one_seal_header_removed_is_malformed(header: str) -> None:
    recs = _leads(8)
    recs[3] = _header(recs[3], header, None)
    found = _located(_replay(recs)[0])
    if header == PREV_HEADER:  # a v2 signature read as v1: it does not verify
        assert ("BAD_SIGNATURE", 0, 3) in found
    else:
        assert ("SIGNATURE_MALFORMED", 0, 3) in found
    assert all(f[0] != "SEQUENCE_REPLAYED" for f in found)


def test_every_seal_header_removed_is_unsigned_once_the_publisher_must_sign() -> None:
    recs = _leads(8)
    recs[3] = replace(recs[3], headers=[])
    assert _located(_replay(recs)[0]) == {("UNSIGNED", 0, 3), ("SEQUENCE_GAP", 0, 4)}
    # Before the publisher registered a key that requires signing, unsigned events were the rule.
    early = replace(recs[3], ms=int((START - timedelta(days=40)).timestamp() * 1000))
    assert _replay([early])[0] == []


@pytest.mark.parametrize("header,value", [(SEQUENCE_HEADER, b"99"), (KEY_ID_HEADER, b"0123456789abcdef"),
                                          (PREV_HEADER, bytes(32)), ("leadbus-partition", b"1"),
                                          (SIGNATURE_HEADER, b"\x01" * 64), (SEQUENCE_HEADER, b"-1"),
                                          (SEQUENCE_HEADER, "七".encode()), (PREV_HEADER, b"short")])
def test_a_seal_header_altered_is_located(header: str, value: bytes) -> None:
    recs = _leads(8)
    recs[3] = _header(recs[3], header, value)
    found = _located(_replay(recs)[0])
    assert any(f[1:] == (0, 3) and f[0] in ("BAD_SIGNATURE", "UNKNOWN_KEY", "SIGNATURE_MALFORMED", "WRONG_PARTITION")
               for f in found), found


def test_a_record_moved_to_another_partition_or_key() -> None:
    recs = _leads(8)
    moved = [*recs[:3], *recs[4:], replace(recs[3], partition=1)]
    assert _located(_replay(moved)[0]) == {("SEQUENCE_GAP", 0, 3), ("WRONG_PARTITION", 1, 0)}
    rekeyed = list(recs)
    rekeyed[3] = replace(recs[3], key=recs[4].key)
    assert _located(_replay(rekeyed)[0]) == {("KEY_MISMATCH", 0, 3), ("SEQUENCE_GAP", 0, 4)}
    unkeyed = list(recs)  # the key removed (the signature covers the value, not the Kafka key): no key is another key
    unkeyed[3] = replace(recs[3], key=None)  # type: ignore[arg-type]
    found = _replay(unkeyed)[0]
    assert _located(found) == {("KEY_MISMATCH", 0, 3), ("SEQUENCE_GAP", 0, 4)}
    assert "Kafka key none" in next(f.message for f in found if f.check == "KEY_MISMATCH")


def test_signed_by_a_valid_key_of_another_publisher() -> None:
    recs = _leads(8)
    other = sign(KEYS["SAMR.44"], "SAMR.33", TOPIC, 0, 4, recs[3].value)  # claims SAMR.33, signed by SAMR.44's key
    recs[3] = replace(recs[3], headers=other.headers())
    found = _replay(recs)[0]
    assert ("UNKNOWN_KEY", 0, 3) in _located(found)
    assert any("SAMR.44" in f.message for f in found if f.check == "UNKNOWN_KEY")
    # SAMR.44 signing honestly as itself, a lead of SAMR.33: not its to sign.
    honest = sign(KEYS["SAMR.44"], "SAMR.44", TOPIC, 0, 1, recs[2].value)
    recs[2] = replace(recs[2], headers=honest.headers())
    assert ("PUBLISHER_MISMATCH", 0, 2) in _located(_replay(recs)[0])
    # MPS.33 signing for SAMR's topic.
    mps = sign(KEYS["MPS.33"], "MPS.33", TOPIC, 0, 1, recs[5].value)
    recs[5] = replace(recs[5], headers=mps.headers())
    assert ("PUBLISHER_MISMATCH", 0, 5) in _located(_replay(recs)[0])


def test_revoked_and_expired_keys_at_the_records_time() -> None:
    recs = _leads(4)
    revoked = _registry(revoked_at=START + timedelta(milliseconds=2), revocation_reason="compromised")
    assert _located(_replay(recs, revoked)[0]) == {("KEY_REVOKED", 0, 2), ("KEY_REVOKED", 0, 3)}
    expired = _registry(valid_until=START + timedelta(milliseconds=1))
    assert _located(_replay(recs, expired)[0]) == {("KEY_EXPIRED", 0, 1), ("KEY_EXPIRED", 0, 2),
                                                   ("KEY_EXPIRED", 0, 3)}


@pytest.mark.parametrize("value", [b"", b"\x00", b"garbage" * 10, b"\xc3\x01" + bytes(8), b"\xc3\x01\xff\xff"])
def test_garbage_or_an_unknown_schema_id_under_a_seal(value: bytes) -> None:
    recs = _leads(5)
    recs[2] = replace(recs[2], value=value)
    assert _located(_replay(recs)[0]) == {("BAD_SIGNATURE", 0, 2), ("SEQUENCE_GAP", 0, 3)}


def test_a_restart_starts_a_new_chain_without_a_finding() -> None:
    first, second = _leads(5), _leads(5)
    # the second sealer's numbers continue (its sequence file said so); its chain starts again
    second = [replace(r, headers=sign(KEYS["SAMR.33"], "SAMR.33", TOPIC, 0, 6 + i, r.value,
                                      prev=bytes(32) if i == 0 else None).headers()) for i, r in enumerate(second)]
    found, verifier = _replay(first + second)
    assert found == [] and verifier.signatures == 6  # the first chain's end; v1-style single seals after
