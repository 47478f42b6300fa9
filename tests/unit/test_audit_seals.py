"""The bus's seal verifier in the replay slot: intake's own check, judged at each record's time, and lanes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import packaged_catalog
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes, sign

CATALOG = packaged_catalog()
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)
TOPIC, PUB = "leadbus.intake.SAMR", "SAMR.33"
KEY, STRANGER = (Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32) for n in (1, 2))


def _registry(**changes: object) -> KeyRegistry:
    raw = public_bytes(KEY.public_key())
    key = PublisherKey(PUB, key_id_of(raw), raw, NOW - timedelta(days=30), NOW - timedelta(days=30))
    return KeyRegistry((PublisherKey(**{**key.__dict__, **changes}),))  # type: ignore[arg-type]


def _record(offset: int, sequence: int, *, key: Ed25519PrivateKey = KEY, value: bytes = b"\xc3\x01event",
            signed: bytes | None = None, at: datetime = NOW) -> ReplayRecord:
    headers = list(sign(key, PUB, TOPIC, 0, sequence, signed or value).headers())
    return ReplayRecord(TOPIC, 0, offset, int(at.timestamp() * 1000), b"k", value, headers, CATALOG)


def test_valid_lanes_pass_and_each_tampering_is_located() -> None:
    verifier = BusSealVerifier(_registry())
    records = [_record(0, 1), _record(1, 2), _record(2, 3, key=STRANGER), _record(3, 4, value=b"\xc3\x01other",
                                                                                  signed=b"\xc3\x01event"),
               _record(4, 6), _record(5, 2)]
    findings = [f for r in records for f in verifier.check(r)] + list(verifier.finish())
    located = sorted((f.check, f.offset) for f in findings)
    assert located == [("BAD_SIGNATURE", 3), ("SEQUENCE_GAP", 4), ("SEQUENCE_REPLAYED", 5), ("UNKNOWN_KEY", 2)]
    assert all(f.failure for f in findings)


def test_a_key_revoked_later_does_not_fail_what_it_signed_while_valid() -> None:
    verifier = BusSealVerifier(_registry(revoked_at=NOW + timedelta(days=1)))
    assert list(verifier.check(_record(0, 1, at=NOW))) == []
    (late,) = verifier.check(_record(1, 2, at=NOW + timedelta(days=2)))
    assert late.check == "KEY_REVOKED" and late.offset == 1


def test_a_known_signer_moved_to_another_partition_or_revoked_mid_lane_is_still_named() -> None:
    # The verifier remembers a signer once judged valid for a topic; a later record must still be judged itself.
    verifier = BusSealVerifier(_registry(revoked_at=NOW + timedelta(hours=1)))
    moved = _record(1, 2)
    moved.partition = 1
    records = [_record(0, 1), moved, _record(2, 3, at=NOW + timedelta(hours=2))]
    findings = [f for r in records for f in verifier.check(r)]
    assert sorted((f.check, f.offset) for f in findings) == [("KEY_REVOKED", 2), ("WRONG_PARTITION", 1)]
