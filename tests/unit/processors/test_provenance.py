"""Signed, sequenced events, pure: the seal verifier, the sequence lanes, and intake's two halves over them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.intake import (
    Acceptance,
    DecisionAcceptance,
    Rejection,
    Source,
    accepted_record,
    examine,
    seal_of_accepted,
)
from leadbus.processors.core.provenance import Lane, Refused, check_sequence, verify_event
from leadbus.processors.core.records import Record
from leadbus.processors.intake import PHASE, SEQUENCE_PHASE, IntakeHandler
from leadbus.producers.signing import MemorySequences, SequenceFile, SigningSealer
from leadbus.signing import (
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    KeyRegistry,
    PublisherKey,
    Seal,
    key_id_of,
    public_bytes,
    reverify,
    sign,
)
from leadbus.topics import HANDOVER_DECISIONS, INTAKE_BY_LEAD, LEADS_ACCEPTED, LEADS_REJECTED
from tests.unit.processors.seal_keys import NOW, key_of, registered

CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
TOPIC = "leadbus.intake.SAMR"
PUB = "SAMR.33"


KEY, OTHER = key_of(1), key_of(2)


def _registered(key: Ed25519PrivateKey, publisher: str = PUB, **changes: object) -> PublisherKey:
    return registered(key, publisher, **changes)


def _registry(*keys: PublisherKey) -> KeyRegistry:
    return KeyRegistry(keys or (_registered(KEY),))


def _value(make_lead, **overrides: object) -> bytes:
    raw = make_lead(**{"publisher.agency": "SAMR", "publisher.province": "33", **overrides})
    return encode(LEAD, CaseLead.model_validate(raw).to_avro())


def _sealed(value: bytes, sequence: int = 1, key: Ed25519PrivateKey = KEY, partition: int = 1,
            publisher: str = PUB, topic: str = TOPIC) -> list[tuple[str, bytes | None]]:
    return list(sign(key, publisher, topic, partition, sequence, value).headers())


def _replace(headers: list[tuple[str, bytes | None]], name: str, value: bytes) -> list[tuple[str, bytes | None]]:
    return [(k, value if k == name else v) for k, v in headers]


# -- the verifier -------------------------------------------------------------------------------


def test_a_valid_seal_verifies(make_lead) -> None:
    value = _value(make_lead)
    seal = verify_event(_sealed(value, 7), value, TOPIC, 1, _registry(), NOW)
    assert isinstance(seal, Seal) and (seal.publisher, seal.sequence, seal.partition) == (PUB, 7, 1)


def test_no_seal_is_none_not_a_refusal(make_lead) -> None:
    value = _value(make_lead)
    assert verify_event([("content-type", b"application/vnd.leadbus.avro")], value, TOPIC, 1, _registry(), NOW) is None


@pytest.mark.parametrize("case", ["forged", "altered body", "altered sequence header", "altered fingerprint",
                                  "other topic"])
def test_forged_or_altered_is_a_bad_signature(make_lead, case: str) -> None:
    value = _value(make_lead)
    headers, topic = _sealed(value, 3), TOPIC
    if case == "forged":  # signed by a key that is not the one the headers name
        forged = _sealed(value, 3, key=OTHER)
        headers = _replace(headers, SIGNATURE_HEADER, dict(forged)[SIGNATURE_HEADER] or b"")
    elif case == "altered body":
        value = value[:-1] + bytes([value[-1] ^ 1])
    elif case == "altered sequence header":
        headers = _replace(headers, SEQUENCE_HEADER, b"4")
    elif case == "altered fingerprint":
        value = value[:2] + bytes([value[2] ^ 0xFF]) + value[3:]
    else:
        topic = "leadbus.intake.MPS"
    refused = verify_event(headers, value, topic, 1, _registry(), NOW)
    assert isinstance(refused, Refused) and refused.reason == "BAD_SIGNATURE", refused


def test_unknown_key_and_key_of_another_publisher(make_lead) -> None:
    value = _value(make_lead)
    refused = verify_event(_sealed(value, key=OTHER), value, TOPIC, 1, _registry(), NOW)
    assert isinstance(refused, Refused) and refused.reason == "UNKNOWN_KEY"
    # The key exists, but for SAMR.11: SAMR.33's headers cannot borrow it.
    registry = _registry(_registered(KEY, "SAMR.11"))
    refused = verify_event(_sealed(value), value, TOPIC, 1, registry, NOW)
    assert isinstance(refused, Refused) and refused.reason == "UNKNOWN_KEY"


def test_malformed_seals(make_lead) -> None:
    value = _value(make_lead)
    headers = _sealed(value)
    for bad in (headers[:3], _replace(headers, SEQUENCE_HEADER, b"0"), _replace(headers, SEQUENCE_HEADER, b"x"),
                _replace(headers, SIGNATURE_HEADER, b"short"), [*headers, (SEQUENCE_HEADER, b"2")]):
        refused = verify_event(bad, value, TOPIC, 1, _registry(), NOW)
        assert isinstance(refused, Refused) and refused.reason == "SIGNATURE_MALFORMED", bad


def test_revoked_key_refused_from_its_revocation_on(make_lead) -> None:
    value = _value(make_lead)
    registry = _registry(_registered(KEY, revoked_at=NOW, revocation_reason="compromised"))
    assert isinstance(verify_event(_sealed(value), value, TOPIC, 1, registry, NOW - timedelta(seconds=1)), Seal)
    refused = verify_event(_sealed(value), value, TOPIC, 1, registry, NOW)
    assert isinstance(refused, Refused) and refused.reason == "KEY_REVOKED" and "compromised" in refused.message


def test_expired_key(make_lead) -> None:
    value = _value(make_lead)
    registry = _registry(_registered(KEY, valid_until=NOW))
    assert isinstance(verify_event(_sealed(value), value, TOPIC, 1, registry, NOW - timedelta(milliseconds=1)), Seal)
    refused = verify_event(_sealed(value), value, TOPIC, 1, registry, NOW)
    assert isinstance(refused, Refused) and refused.reason == "KEY_EXPIRED"


def test_rotated_key_honoured_from_its_rotation_on(make_lead) -> None:
    value = _value(make_lead)
    rotation, overlap = NOW, timedelta(hours=1)
    old = _registered(KEY).expiring(rotation + overlap)
    new = _registered(OTHER, valid_from=rotation, replaces=old.key_id)
    registry = _registry(old, new)
    before, during, after = rotation - timedelta(seconds=1), rotation + timedelta(minutes=5), rotation + overlap
    refused = verify_event(_sealed(value, key=OTHER), value, TOPIC, 1, registry, before)
    assert isinstance(refused, Refused) and refused.reason == "KEY_NOT_YET_VALID"
    assert isinstance(verify_event(_sealed(value, key=OTHER), value, TOPIC, 1, registry, during), Seal)
    assert isinstance(verify_event(_sealed(value, key=KEY), value, TOPIC, 1, registry, during), Seal), "overlap"
    assert isinstance(verify_event(_sealed(value, key=OTHER), value, TOPIC, 1, registry, after), Seal)
    refused = verify_event(_sealed(value, key=KEY), value, TOPIC, 1, registry, after)
    assert isinstance(refused, Refused) and refused.reason == "KEY_EXPIRED"


def test_copied_to_another_partition_or_agency_topic(make_lead) -> None:
    value = _value(make_lead)
    refused = verify_event(_sealed(value, partition=1), value, TOPIC, 2, _registry(), NOW)
    assert isinstance(refused, Refused) and refused.reason == "WRONG_PARTITION"
    # A SAMR key signing (validly) for the MPS topic: not its topic.
    other_topic = "leadbus.intake.MPS"
    refused = verify_event(_sealed(value, topic=other_topic), value, other_topic, 1, _registry(), NOW)
    assert isinstance(refused, Refused) and refused.reason == "PUBLISHER_MISMATCH"


# -- sequences ----------------------------------------------------------------------------------


def test_sequence_in_order_gap_replay_reorder() -> None:
    lane = Lane()
    for n in (1, 2, 3):
        verdict = check_sequence(lane, n)
        assert verdict.status == "NEXT"
        lane = verdict.lane
    verdict = check_sequence(lane, 7)  # 4–6 never came (yet)
    assert verdict.status == "GAP" and verdict.gap == (4, 6) and verdict.accepted
    lane = verdict.lane
    assert check_sequence(lane, 3).status == "SEQUENCE_REPLAYED"
    assert check_sequence(lane, 7).status == "SEQUENCE_REPLAYED"
    late = check_sequence(lane, 5)
    assert late.status == "SEQUENCE_REORDERED" and not late.accepted
    assert late.lane.gaps == ((4, 4), (6, 6)), "5 is no longer missing"
    assert check_sequence(late.lane, 5).status == "SEQUENCE_REPLAYED", "a second copy of a late one is a replay"
    assert check_sequence(late.lane, 8).status == "NEXT"
    assert Lane.from_bytes(late.lane.to_bytes()) == late.lane


def test_first_number_above_one_is_a_gap_from_one() -> None:
    verdict = check_sequence(Lane(), 3)
    assert verdict.status == "GAP" and verdict.gap == (1, 2)


# -- the core's examine over seals ----------------------------------------------------------------


def test_examine_keeps_the_seal_and_anyone_reverifies_the_accepted_event(make_lead) -> None:
    value = _value(make_lead)
    outcome = examine(value, Source(TOPIC, 1, 9), CATALOG, NOW, headers=_sealed(value, 5), keys=_registry())
    assert isinstance(outcome, Acceptance) and outcome.seal is not None
    schema = CATALOG.latest("cn.leadbus.LeadAccepted")
    _, accepted = decode(CATALOG, encode(schema, accepted_record(outcome, NOW)))
    seal = seal_of_accepted(accepted)
    assert seal is not None and accepted["publisher_sequence"] == 5
    key = _registry().get(seal.publisher, seal.key_id)
    assert key is not None and reverify(key, seal, accepted["source"]["topic"], bytes(accepted["original"]))
    assert not reverify(key, seal, accepted["source"]["topic"], bytes(accepted["original"]) + b"x")


def test_unsigned_refused_only_when_required(make_lead) -> None:
    value = _value(make_lead)
    optional = _registry(_registered(KEY, require_signed=False))
    assert isinstance(examine(value, Source(TOPIC, 0, 1), CATALOG, NOW, keys=optional), Acceptance)
    assert isinstance(examine(value, Source(TOPIC, 0, 1), CATALOG, NOW, keys=KeyRegistry()), Acceptance)
    outcome = examine(value, Source(TOPIC, 0, 1), CATALOG, NOW, keys=_registry())
    assert isinstance(outcome, Rejection) and outcome.reason == "UNSIGNED"
    # A key of SAMR.33 says nothing about SAMR.11; a key of the whole agency covers every province.
    other = _value(make_lead, **{"publisher.province": "11"})
    assert isinstance(examine(other, Source(TOPIC, 0, 1), CATALOG, NOW, keys=_registry()), Acceptance)
    agency_wide = _registry(_registered(KEY, "SAMR"))
    outcome = examine(other, Source(TOPIC, 0, 1), CATALOG, NOW, keys=agency_wide)
    assert isinstance(outcome, Rejection) and outcome.reason == "UNSIGNED"
    # Revoked since: still required (a publisher never falls back to unsigned).
    revoked = _registry(_registered(KEY, revoked_at=NOW - timedelta(days=1)))
    outcome = examine(value, Source(TOPIC, 0, 1), CATALOG, NOW, keys=revoked)
    assert isinstance(outcome, Rejection) and outcome.reason == "UNSIGNED"


def test_signer_must_speak_for_the_content(make_lead) -> None:
    value = _value(make_lead, **{"publisher.province": "11"})  # a SAMR.11 lead signed by SAMR.33
    outcome = examine(value, Source(TOPIC, 1, 1), CATALOG, NOW, headers=_sealed(value), keys=_registry())
    assert isinstance(outcome, Rejection) and outcome.reason == "PUBLISHER_MISMATCH"
    assert outcome.seal is not None, "a valid seal still takes its number through the sequence check"


def test_signed_handover_decision(make_lead) -> None:
    decision = {"decision_id": "5b0c7a53-8a55-4c0e-9f0a-3a1c1c7f6e11", "case_id": "CASE-00000000000000AB",
                "kind": "HEAD_APPROVE", "actor": {"agency": "SAMR", "province": "33", "unit": None, "role": "HEAD"},
                "decided_at": NOW - timedelta(hours=1), "reasons": "", "documents": []}
    value = encode(CATALOG.latest("cn.leadbus.HandoverDecision"), decision)
    outcome = examine(value, Source(TOPIC, 1, 1), CATALOG, NOW, headers=_sealed(value), keys=_registry())
    assert isinstance(outcome, DecisionAcceptance) and outcome.seal is not None
    unsigned = examine(value, Source(TOPIC, 1, 1), CATALOG, NOW, keys=_registry())
    assert isinstance(unsigned, Rejection) and unsigned.reason == "UNSIGNED"


# -- the stage's handler, both hops, over an in-memory state ---------------------------------------


class _State(dict):
    def get(self, key: bytes) -> bytes | None:  # type: ignore[override]
        return super().get(key)


def _run(handler: IntakeHandler, state: _State, topic: str, partition: int, value: bytes,
         headers: list[tuple[str, bytes | None]], offset: int) -> list:
    """One intake record through every hop until it leaves intake; the outputs that leave."""
    pending = [Record(topic, partition, offset, None, value, tuple(headers))]
    done = []
    while pending:
        record = pending.pop(0)
        result = handler.handle(record, state, NOW)
        state.update(result.state)
        for out in result.outputs:
            if out.topic == INTAKE_BY_LEAD:
                pending.append(Record(INTAKE_BY_LEAD, 0, 0, out.key, out.value, tuple(out.headers)))
            else:
                done.append(out)
    return done


def test_handler_accepts_in_order_warns_on_gap_refuses_replay_and_reorder(make_lead) -> None:
    handler, state = IntakeHandler(keys=_registry()), _State()
    values = [_value(make_lead) for _ in range(5)]
    reasons = []

    def send(i: int, sequence: int) -> list:
        outs = _run(handler, state, TOPIC, 1, values[i], _sealed(values[i], sequence), 100 + i)
        reasons.extend(decode(CATALOG, o.value)[1]["reason"] for o in outs if o.topic == LEADS_REJECTED)
        return outs

    (first,) = send(0, 1)
    assert first.topic == LEADS_ACCEPTED
    assert decode(CATALOG, first.value)[1]["seal"]["sequence"] == 1
    (gapped,) = send(1, 4)
    accepted = decode(CATALOG, gapped.value)[1]
    assert [w["code"] for w in accepted["warnings"]] == ["SEQUENCE_GAP"]
    assert "2–3" in accepted["warnings"][0]["message"]
    send(2, 4)  # replayed number (other content)
    send(3, 2)  # a number from the gap, late
    (last,) = send(4, 5)
    assert last.topic == LEADS_ACCEPTED
    assert reasons == ["SEQUENCE_REPLAYED", "SEQUENCE_REORDERED"]
    # The same signed event again, byte for byte: a replay, refused with its original.
    (again,) = _run(handler, state, TOPIC, 1, values[0], _sealed(values[0], 1), 200)
    letter = decode(CATALOG, again.value)[1]
    assert letter["reason"] == "SEQUENCE_REPLAYED" and bytes(letter["original"]) == values[0]
    assert letter["source"]["offset"] == 200


def test_handler_lanes_are_per_partition_and_unsigned_skip_the_sequence_hop(make_lead) -> None:
    handler, state = IntakeHandler(keys=_registry(_registered(KEY, require_signed=False))), _State()
    a, b, c = (_value(make_lead) for _ in range(3))
    assert [o.topic for o in _run(handler, state, TOPIC, 0, a, _sealed(a, 1, partition=0), 1)] == [LEADS_ACCEPTED]
    assert [o.topic for o in _run(handler, state, TOPIC, 2, b, _sealed(b, 1, partition=2), 1)] == [LEADS_ACCEPTED]
    result = handler.handle(Record(TOPIC, 0, 2, None, c, ()), state, NOW)
    assert [(o.topic, dict(o.headers).get(PHASE)) for o in result.outputs] == [(INTAKE_BY_LEAD, None)]
    signed = handler.handle(Record(TOPIC, 0, 3, None, c, tuple(_sealed(c, 2, partition=0))), state, NOW)
    assert dict(signed.outputs[0].headers)[PHASE] == SEQUENCE_PHASE


def test_handler_content_rejection_of_a_signed_event_still_counts_its_number(make_lead) -> None:
    handler, state = IntakeHandler(keys=_registry()), _State()
    bad = _value(make_lead, **{"publisher.province": "11"})
    (letter,) = _run(handler, state, TOPIC, 1, bad, _sealed(bad, 1), 1)
    assert decode(CATALOG, letter.value)[1]["reason"] == "PUBLISHER_MISMATCH"
    good = _value(make_lead)
    (out,) = _run(handler, state, TOPIC, 1, good, _sealed(good, 2), 2)
    assert out.topic == LEADS_ACCEPTED and decode(CATALOG, out.value)[1]["warnings"] == [], "no gap: 1 was seen"


def test_handler_forwards_a_signed_decision_with_its_seal(make_lead) -> None:
    decision = {"decision_id": "5b0c7a53-8a55-4c0e-9f0a-3a1c1c7f6e12", "case_id": "CASE-00000000000000AC",
                "kind": "HEAD_APPROVE", "actor": {"agency": "SAMR", "province": "33", "unit": None, "role": "HEAD"},
                "decided_at": NOW - timedelta(hours=1), "reasons": "", "documents": []}
    value = encode(CATALOG.latest("cn.leadbus.HandoverDecision"), decision)
    handler, state = IntakeHandler(keys=_registry()), _State()
    (out,) = _run(handler, state, TOPIC, 1, value, _sealed(value, 1), 5)
    assert out.topic == HANDOVER_DECISIONS and out.value == value and out.key == b"CASE-00000000000000AC"
    seal = Seal.from_headers(out.headers)
    assert seal is not None and seal.sequence == 1
    assert dict(out.headers)["leadbus-source"] == f"1:5:{TOPIC}".encode()
    (again,) = _run(handler, state, TOPIC, 1, value, _sealed(value, 1), 6)
    assert again.topic == LEADS_REJECTED and decode(CATALOG, again.value)[1]["reason"] == "SEQUENCE_REPLAYED"


# -- the SDK's sealer ---------------------------------------------------------------------------


def test_sealer_numbers_each_partition_and_gives_back_the_last(make_lead) -> None:
    sealer = SigningSealer(PUB, KEY, MemorySequences())
    value = _value(make_lead)
    numbers = [Seal.from_headers(sealer.seal(TOPIC, b"k", value, partition=p)) for p in (0, 1, 0, 0)]
    assert [(s.partition, s.sequence) for s in numbers if s] == [(0, 1), (1, 1), (0, 2), (0, 3)]
    headers = sealer.seal(TOPIC, b"k", value, partition=0)
    sealer.unseal(TOPIC, 0, headers)
    assert Seal.from_headers(sealer.seal(TOPIC, b"k", value, partition=0)).sequence == 4  # type: ignore[union-attr]
    assert isinstance(verify_event(headers, value, TOPIC, 0, _registry(), NOW), Seal)


def test_sequence_file_survives_restarts_and_crashes(tmp_path) -> None:
    path = tmp_path / "SAMR.33.key.seq"
    first = SequenceFile(path, block=100)
    assert [first.next("t:0") for _ in range(3)] == [1, 2, 3]
    with pytest.raises(RuntimeError, match="another publisher"):
        SequenceFile(path)
    first.close()  # clean: exactly what was used
    second = SequenceFile(path, block=100)
    assert second.next("t:0") == 4
    second._lock.close()  # type: ignore[union-attr]  # a crash: nothing written beyond the reservation
    third = SequenceFile(path, block=100)
    assert third.next("t:0") == 104, "after a crash, numbers continue above the reserved block: a gap, never a replay"
    third.close()


# -- the registry and its records -----------------------------------------------------------------


def test_publisher_key_record_round_trip_and_registry_rules() -> None:
    from leadbus.publisher_keys import PUBLISHER_KEY, key_record

    key = _registered(KEY, "SAMR", valid_until=NOW, revoked_at=NOW, revocation_reason="gone", replaces="abc")
    registry_key, value = key_record(key)
    assert registry_key == f"SAMR/{key.key_id}".encode()
    _, record = decode(CATALOG, value, CATALOG.latest(PUBLISHER_KEY))
    assert record["agency"] == "SAMR" and record["province"] is None
    assert PublisherKey.from_avro(record) == key
    registry = KeyRegistry([_registered(KEY, "SAMR.33"), _registered(OTHER, "MPS", require_signed=False)])
    assert registry.requires_signature("SAMR", "33") and not registry.requires_signature("SAMR", "11")
    assert not registry.requires_signature("MPS", "11"), "an optional key requires nothing"
    registry.apply(_registered(OTHER, "MPS"))
    assert registry.requires_signature("MPS", "11"), "the latest record of a key counts"
    registry.remove("MPS", key_id_of(public_bytes(OTHER.public_key())))
    assert not registry.requires_signature("MPS", "11")
    with pytest.raises(ValueError):
        PublisherKey.from_avro({**record, "public_key": b"short"})
