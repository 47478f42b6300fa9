"""An intake record's body, which the replay reads by its header: where no signature covers the bytes it is passed over
by its lengths (`picker.body_end`), and a body that does not end where its bytes do is read whole, which judges it.

A trailing byte after a valid body on an unsigned intake topic used to pass unseen (intake dead-letters it:
DECODE_TRAILING_BYTES). Whatever the pass finds, the finding is the whole read's own; where a signature the replay
verifies covers the bytes, the seal check judges them and the body is not passed over."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.picker import body_end
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.verification import Decodes, Finding, ReplayRecord, standard_verifiers
from leadbus.avro import encode_object, packaged_catalog
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes
from leadbus.topics import intake_topic

CATALOG = packaged_catalog()
START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
MS = int(START.timestamp() * 1000)
TOPIC = intake_topic("SAMR")


def _bodies(n: int = 40) -> list[bytes]:
    entry = CATALOG.latest("cn.leadbus.CaseLead")
    return [encode_object(entry, lead) for lead in TrafficGenerator(seed=7).leads(n, START, timedelta(seconds=5))]


def _record(value: bytes, offset: int = 0, headers: tuple[tuple[str, bytes], ...] = ()) -> ReplayRecord:
    return ReplayRecord(TOPIC, 1, offset, MS + offset, b"key", value, headers, CATALOG)


def _whole_read(value: bytes, offset: int = 0) -> list[Finding]:
    """What the check found when it read every intake body whole: the reference."""
    record = _record(value, offset)
    error = record.decode_error
    if error is None:
        return []
    return [Finding.at(record, "UNDECODABLE", f"{error} (intake dead-letters it)", failure=False)]


def test_a_trailing_byte_after_a_valid_body_on_an_unsigned_intake_topic_is_noticed() -> None:
    value = _bodies(1)[0] + b"\x00"
    found = list(Decodes().check(_record(value, 5)))
    assert [(f.check, f.topic, f.partition, f.offset, f.failure) for f in found] == [
        ("UNDECODABLE", TOPIC, 1, 5, False)]
    assert "DECODE_TRAILING_BYTES" in found[0].message and found == _whole_read(value, 5)


def test_a_valid_body_passes_without_being_read_whole() -> None:
    for value in _bodies():
        record = _record(value)
        assert list(Decodes().check(record)) == []
        assert record._decoded is False  # passed over by its lengths alone


def test_the_pass_ends_exactly_where_every_valid_body_ends() -> None:
    for value in _bodies():
        end_of = body_end(_record(value).schema)  # type: ignore[arg-type]
        assert end_of is not None and end_of(value) == len(value)


def test_every_finding_on_a_damaged_body_is_the_whole_reads_own() -> None:
    # Cut, extended, bytes flipped: whatever the check finds is what the whole read finds, at the same place; what it
    # lets pass either reads whole, or is a body of the right length whose content alone is wrong (a string's UTF-8:
    # not what the pass judges, as before it)
    rng = random.Random(14)
    bodies = _bodies()
    noticed = 0
    for i in range(600):
        value = bytearray(rng.choice(bodies))
        kind = i % 3
        if kind == 0:
            value = value[:rng.randrange(10, len(value))]
        elif kind == 1:
            value += rng.randbytes(rng.randrange(1, 4))
        else:
            for _ in range(rng.randrange(1, 4)):
                value[rng.randrange(10, len(value))] = rng.randrange(256)
        found = list(Decodes().check(_record(bytes(value), i)))
        reference = _whole_read(bytes(value), i)
        if found:
            noticed += 1
            assert found == reference
        elif reference:
            assert kind == 2, (i, reference)
            end_of = body_end(_record(bytes(value)).schema)  # type: ignore[arg-type]
            assert end_of is not None and end_of(bytes(value)) == len(value)
        if kind in (0, 1):
            assert found == reference and found, i  # a body cut short or extended is always noticed
    assert noticed > 400


def _sealed(value: bytes) -> tuple[ReplayRecord, KeyRegistry]:
    """`value` sealed by its own publisher as the SDK seals it, on its agency's topic under its id, and the registry."""
    head = _record(value).lead_head()
    assert head is not None
    publisher, topic = f"{head.agency}.{head.province}", intake_topic(head.agency)
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    raw = public_bytes(private.public_key())
    registry = KeyRegistry([PublisherKey(publisher, key_id_of(raw), raw, START - timedelta(days=1),
                                         START - timedelta(days=1))])
    headers = SigningSealer(publisher, private, MemorySequences()).seal(topic, head.lead_id.encode(), value, 1)
    return ReplayRecord(topic, 1, 0, MS, head.lead_id.encode(), value, tuple(headers), CATALOG), registry


def _altered(record: ReplayRecord, value: bytes, offset: int) -> ReplayRecord:
    return ReplayRecord(record.topic, record.partition, offset, MS, record.key, value, record.headers, CATALOG)


def test_a_sealed_body_is_the_seal_checks_to_judge_when_the_replay_verifies_seals() -> None:
    value = _bodies(1)[0]
    sealed, registry = _sealed(value)
    seals = BusSealVerifier(registry)
    assert [*seals.check(sealed), *seals.finish()] == []  # as signed
    altered = _altered(sealed, value + b"\x00", 0)
    decodes = Decodes()
    decodes.seals_verified = True  # as `replay` sets it when a seal verifier is installed
    assert list(decodes.check(altered)) == []
    seals = BusSealVerifier(registry)
    found = [*seals.check(altered), *seals.finish()]
    assert [(f.check, f.offset) for f in found] == [("BAD_SIGNATURE", 0)]


def test_without_a_seal_verifier_a_sealed_body_is_passed_over_too() -> None:
    value = _bodies(1)[0]
    sealed, _ = _sealed(value)
    found = list(Decodes().check(_altered(sealed, value + b"\x00", 3)))
    assert [(f.check, f.offset, f.failure) for f in found] == [("UNDECODABLE", 3, False)]


@pytest.mark.parametrize("seals_verified", [False, True])
def test_the_standard_checks_of_an_unsigned_intake_topic_notice_the_trailing_byte(seals_verified: bool) -> None:
    bodies = _bodies(5)
    records = [_record(v + (b"\x07" if i == 3 else b""), i) for i, v in enumerate(bodies)]
    found: list[Finding] = []
    for verifier in standard_verifiers():
        if isinstance(verifier, Decodes):
            verifier.seals_verified = seals_verified  # no seal on these records: the pass runs either way
        for record in records:
            found += verifier.check(record)
        found += verifier.finish()
    assert [(f.check, f.offset) for f in found] == [("UNDECODABLE", 3)]
