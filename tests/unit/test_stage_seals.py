"""Stage output seals (issue #14): the chain a stage writes per transaction, and what a replay's check of it finds.

Records are sealed by `StageSealer` as the engine does (a transaction's outputs at once, then commit or abort)
and fed to `StageSealVerifier` as a replay reads them; tampering is done to the records as someone with
write access to the topic could, and every finding is expected at its coordinates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.agencies import is_agency_code
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import Finding, ReplayRecord
from leadbus.avro import packaged_catalog
from leadbus.signing import CHAIN_START, KeyRegistry, PublisherKey, covers, key_id_of, public_bytes
from leadbus.stage_seals import (
    CHAIN_HEADER,
    PREV_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    STAGE_SEAL_NAMES,
    MalformedStageSeal,
    StageSeal,
    StageSealer,
    is_stage_signer,
    murmur2,
    partition_for,
    stage_signer,
)

CATALOG = packaged_catalog()
T0 = datetime(2026, 11, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TOPIC = "leadbus.cases"


@dataclass(frozen=True)
class Written:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def registry(*keys: Ed25519PrivateKey, signer: str = "LEADBUS-linking", **kw: object) -> KeyRegistry:
    out = KeyRegistry()
    for k in keys:
        raw = public_bytes(k.public_key())
        out.apply(PublisherKey(signer, key_id_of(raw), raw, T0, T0, require_signed=False, **kw))  # type: ignore[arg-type]
    return out


def transaction(sealer: StageSealer, outputs: list[tuple[int, bytes, bytes]], *, commit: bool = True,
                topic: str = TOPIC) -> list[Written]:
    rows = [(topic, p, k, v, [("content-type", b"application/vnd.leadbus.avro")]) for p, k, v in outputs]
    sealed = sealer.seal(rows)
    if commit:
        sealer.commit()
    else:
        sealer.abort()
    return [Written(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(rows, sealed, strict=True)]


def day(sealer: StageSealer, transactions: int = 5, per: int = 7, partitions: int = 2) -> list[Written]:
    out: list[Written] = []
    n = 0
    for _ in range(transactions):
        rows = []
        for _ in range(per):
            n += 1
            rows.append((n % partitions, f"case-{n % 5}".encode(), f"version {n}".encode()))
        out += transaction(sealer, rows)
    return out


def replay(written: list[Written], reg: KeyRegistry, *, open_end: bool = False) -> list[Finding]:
    """Partition by partition, offsets as the records' places, as a replay reads them."""
    verifier = StageSealVerifier(reg, open_end=open_end)
    found: list[Finding] = []
    partitions = sorted({w.partition for w in written})
    for p in partitions:
        for offset, w in enumerate(x for x in written if x.partition == p):
            stamp = int((T0 + timedelta(hours=1)).timestamp() * 1000)
            found += verifier.check(ReplayRecord(w.topic, p, offset, stamp, w.key, w.value, w.headers, CATALOG))
    return found + list(verifier.finish())


def where(found: list[Finding], check: str) -> set[tuple[int | None, int | None]]:
    return {(f.partition, f.offset) for f in found if f.check == check and f.failure}


def in_partition(written: list[Written], partition: int) -> list[int]:
    return [i for i, w in enumerate(written) if w.partition == partition]


def sealer(chain: str = "00000000000000a1") -> StageSealer:
    return StageSealer("LEADBUS-linking", KEY, chain)


# -- what a stage writes --------------------------------------------------------------------------------------


def test_one_signature_per_partition_per_transaction_and_a_link_on_every_record() -> None:
    s = sealer()
    written = transaction(s, [(0, b"a", b"1"), (1, b"b", b"2"), (0, b"c", b"3"), (0, b"d", b"4"), (1, b"e", b"5")])
    signed = [i for i, w in enumerate(written) if any(n == SIGNATURE_HEADER for n, _ in w.headers)]
    assert signed == [3, 4] and s.signatures == 2
    seals = [StageSeal.from_headers(w.headers) for w in written]
    assert [(x.sequence if x else 0) for x in seals] == [1, 1, 2, 3, 2]
    assert seals[0] is not None and seals[0].prev == CHAIN_START and seals[2] is not None
    assert seals[2].prev == seals[0].link(TOPIC, 0, b"a", b"1", written[0].headers)
    assert replay(written, registry(KEY)) == []


def test_a_normal_day_and_a_restart_into_a_new_chain_verify_without_a_finding() -> None:
    written = day(sealer()) + day(sealer("00000000000000b2"), transactions=3)
    assert replay(written, registry(KEY)) == []


def test_an_aborted_transaction_leaves_the_chain_at_the_last_committed_record() -> None:
    s = sealer()
    first = transaction(s, [(0, b"a", b"1"), (0, b"b", b"2")])
    aborted = transaction(s, [(0, b"c", b"3"), (0, b"d", b"4")], commit=False)
    again = transaction(s, [(0, b"c", b"3"), (0, b"d", b"4")])
    assert StageSeal.from_headers(again[0].headers).sequence == 3  # type: ignore[union-attr]
    assert replay(first + again, registry(KEY)) == []  # what read_committed readers see
    # Had the aborted records been visible, the chain would not hold: they are not part of it.
    assert replay(first + aborted + again, registry(KEY))


# -- tampering, each found where it is ------------------------------------------------------------------------


def test_a_record_altered_with_its_seal_kept_is_located() -> None:
    written = day(sealer())
    p0 = in_partition(written, 0)
    middle = p0[1]  # not the last of its transaction in partition 0: it carries the link only
    assert not any(n == SIGNATURE_HEADER for n, _ in written[middle].headers)
    tampered = list(written)
    tampered[middle] = replace(written[middle], value=b"version 999")
    assert (0, 1) in where(replay(tampered, registry(KEY)), "STAGE_CHAIN_BROKEN")
    last = p0[-1]  # the signed head of the last transaction
    tampered = list(written)
    tampered[last] = replace(written[last], value=b"version 999")
    assert (0, len(p0) - 1) in where(replay(tampered, registry(KEY)), "STAGE_BAD_SIGNATURE")
    tampered = list(written)
    tampered[middle] = replace(written[middle], key=b"case-other")  # moved to another case
    assert (0, 1) in where(replay(tampered, registry(KEY)), "STAGE_CHAIN_BROKEN")
    tampered = list(written)  # another header (e.g. a lead's source) changed
    tampered[middle] = replace(written[middle], headers=[("content-type", b"text/plain"),
                                                          *written[middle].headers[1:]])
    assert (0, 1) in where(replay(tampered, registry(KEY)), "STAGE_CHAIN_BROKEN")


def test_dropped_swapped_and_replayed_records_are_located() -> None:
    written = day(sealer())
    p0 = in_partition(written, 0)
    dropped = [w for i, w in enumerate(written) if i != p0[4]]
    assert (0, 4) in where(replay(dropped, registry(KEY)), "STAGE_SEQUENCE_GAP")
    swapped = list(written)
    swapped[p0[3]], swapped[p0[4]] = swapped[p0[4]], swapped[p0[3]]
    found = replay(swapped, registry(KEY))
    assert (0, 3) in where(found, "STAGE_SEQUENCE_GAP") and (0, 4) in where(found, "STAGE_SEQUENCE_REPLAYED")
    replayed = list(written)
    replayed.insert(p0[5] + 1, written[p0[5]])
    assert where(replay(replayed, registry(KEY)), "STAGE_SEQUENCE_REPLAYED") == {(0, 6)}
    tail = [w for i, w in enumerate(written) if i != p0[-1]]  # the last transaction's signed record removed
    first_of_last = len(p0) - 3  # the last transaction wrote 3 records to partition 0: 2 are left, unsigned
    assert where(replay(tail, registry(KEY)), "STAGE_UNSIGNED_TAIL") == {(0, first_of_last)}


def test_forged_records_are_located() -> None:
    written = day(sealer())
    p0 = in_partition(written, 0)
    # A record appended with the next number and the right link, but nobody's signature.
    last = StageSeal.from_headers(written[p0[-1]].headers)
    assert last is not None
    head = last.link(TOPIC, 0, written[p0[-1]].key, written[p0[-1]].value, written[p0[-1]].headers)
    forged = replace(written[p0[-1]], value=b"forged", headers=[
        ("content-type", b"application/vnd.leadbus.avro"), *[(n, v) for n, v in written[p0[-1]].headers
                                                             if n in STAGE_SEAL_NAMES and n not in
                                                             (SEQUENCE_HEADER, PREV_HEADER, SIGNATURE_HEADER)],
        (SEQUENCE_HEADER, str(last.sequence + 1).encode()), (PREV_HEADER, head)])
    found = replay([*written, forged], registry(KEY))
    assert (0, len(p0)) in where(found, "STAGE_UNSIGNED_TAIL")
    assert replay([*written, forged], registry(KEY), open_end=True)[0].failure is False  # maybe after the period
    # Signed by a key of its own making: not the stage's.
    other = Ed25519PrivateKey.generate()
    fake = transaction(StageSealer("LEADBUS-linking", other, "00000000000000f0"), [(0, b"x", b"forged")])
    assert (0, len(p0)) in where(replay([*written, *fake], registry(KEY)), "UNKNOWN_KEY")
    # The seal removed from a record: unsealed where the stage sealed before.
    stripped = list(written)
    stripped[p0[2]] = replace(written[p0[2]], headers=[("content-type", b"application/vnd.leadbus.avro")])
    found = replay(stripped, registry(KEY))
    assert (0, 2) in where(found, "STAGE_UNSEALED") and (0, 3) in where(found, "STAGE_SEQUENCE_GAP")


def test_a_revoked_stage_key_fails_what_it_signed_after_revocation() -> None:
    written = day(sealer())
    reg = registry(KEY, revoked_at=T0 + timedelta(minutes=30), revocation_reason="compromised")
    assert where(replay(written, reg), "KEY_REVOKED")


# -- hostile headers ------------------------------------------------------------------------------------------


def test_hostile_headers_are_malformed_seals_never_a_crash() -> None:
    good = transaction(sealer(), [(0, b"a", b"1")])[0].headers
    bad_cases: list[list[tuple[str, bytes | None]]] = [
        [*good, (SIGNER_HEADER, b"LEADBUS-linking")],  # a header twice
        [(n, v) for n, v in good if n != CHAIN_HEADER],  # one missing
        [(n, None if n == PREV_HEADER else v) for n, v in good],
        [(n, b"x" * 31 if n == PREV_HEADER else v) for n, v in good],
        [(n, b"0001" if n == SEQUENCE_HEADER else v) for n, v in good],
        [(n, b"-1" if n == SEQUENCE_HEADER else v) for n, v in good],
        [(n, b"9" * 40 if n == SEQUENCE_HEADER else v) for n, v in good],
        [(n, "LEADBUS-链".encode() if n == SIGNER_HEADER else v) for n, v in good],
        [(n, b"SAMR.33" if n == SIGNER_HEADER else v) for n, v in good],  # an agency is no stage signer
        [(n, b"ZZZZZZZZZZZZZZZZ" if n == CHAIN_HEADER else v) for n, v in good],
        [(n, b"00000000000000a1\n" if n == CHAIN_HEADER else v) for n, v in good],
        [(n, b"\x00" * 63 if n == SIGNATURE_HEADER else v) for n, v in good],
    ]
    for headers in bad_cases:
        with pytest.raises(MalformedStageSeal):
            StageSeal.from_headers(headers)
        found = replay([Written(TOPIC, 0, b"a", b"1", headers)], registry(KEY))
        assert where(found, "STAGE_SEAL_MALFORMED") == {(0, 0)}, headers
    rng = random.Random(14)
    names = [*STAGE_SEAL_NAMES, "content-type", "leadbus-source"]
    for _ in range(2000):  # random headers: a finding or nothing, never an exception
        headers = [(rng.choice(names), rng.choice([None, b"", rng.randbytes(rng.choice([0, 1, 16, 32, 64, 300]))]))
                   for _ in range(rng.randrange(8))]
        replay([Written(TOPIC, 0, None, rng.randbytes(5), headers)], registry(KEY))


def test_a_stage_signer_never_speaks_for_an_agency() -> None:
    assert stage_signer("intake") == "LEADBUS-intake" and is_stage_signer("LEADBUS-intake")
    assert not is_agency_code("LEADBUS")
    assert not covers("LEADBUS-intake", "SAMR", "33") and not covers("LEADBUS-intake", "SAMR", None)
    assert not is_stage_signer("SAMR-gw") and not is_stage_signer("LEADBUS") and not is_stage_signer("LEADBUS.33-x")
    with pytest.raises(ValueError):
        StageSealer("SAMR-gw", KEY, "00000000000000a1")


def test_murmur2_is_kafkas() -> None:
    # The Java client's test vectors (org.apache.kafka.common.utils.UtilsTest).
    assert murmur2(b"21") == -973932308 and murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107 and murmur2(b"") == 275646681
    assert all(0 <= partition_for(bytes([i]) * i, 6) < 6 for i in range(50))
