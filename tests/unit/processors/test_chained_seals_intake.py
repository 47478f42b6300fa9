"""Intake verifies a batch's chained seals (v2) with one signature per run: the outcome of every event stays the one
it gets verified alone — clean runs, broken links, bad signatures in the middle or at the end of a run, v1 seals,
unsigned and malformed ones, keys revoked, expired or not yet valid, lanes interleaved across partitions, records
swapped, dropped, replayed, moved — checked per event against `verify_event` alone on randomly tampered batches."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus import signing
from leadbus.avro import encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.provenance import Vouched, verify_event, vouched_by_chains
from leadbus.processors.core.records import Record
from leadbus.processors.intake import IntakeHandler
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.signing import (
    PREV_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    KeyRegistry,
    Seal,
    public_bytes,
    sign,
)
from tests.unit.processors.seal_keys import NOW, key_of, registered

CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
SAMR, MPS = "leadbus.intake.SAMR", "leadbus.intake.MPS"
KEYS = {"SAMR.33": key_of(11), "SAMR.11": key_of(12), "MPS.33": key_of(13)}
ROTATED = key_of(14)  # SAMR.33's second registered key
STRANGER = key_of(15)  # registered for nobody
TOPIC_OF = {"SAMR.33": SAMR, "SAMR.11": SAMR, "MPS.33": MPS}


def _registry(status: str = "VALID") -> KeyRegistry:
    """Every publisher's key; SAMR.33's first key in `status` at NOW."""
    changes: dict[str, object] = {
        "VALID": {}, "KEY_REVOKED": {"revoked_at": NOW - timedelta(hours=1), "revocation_reason": "lost"},
        "KEY_EXPIRED": {"valid_until": NOW - timedelta(hours=1)},
        "KEY_NOT_YET_VALID": {"valid_from": NOW + timedelta(hours=1)}}[status]
    keys = [registered(k, p, **(changes if p == "SAMR.33" else {})) for p, k in KEYS.items()]
    return KeyRegistry([*keys, registered(ROTATED, "SAMR.33")])


def _values(make_lead, n: int) -> list[bytes]:
    return [encode(LEAD, CaseLead.model_validate(make_lead(**{"publisher.agency": agency, "publisher.province": "33"}))
                   .to_avro()) for agency in ("SAMR", "MPS") for _ in range(n)]


def _clean_batch(rng: random.Random, values: list[bytes], n: int) -> list[Record]:
    """`n` events of three publishers on two topics, three partitions each, interleaved, sealed by the SDK (v2)."""
    sealers = {p: SigningSealer(p, k, MemorySequences()) for p, k in KEYS.items()}
    records = []
    for offset in range(n):
        publisher = rng.choice(list(KEYS))
        partition = rng.randrange(3)
        value = values[rng.randrange(len(values))]
        topic = TOPIC_OF[publisher]
        headers = sealers[publisher].seal(topic, b"", value, partition)
        records.append(Record(topic, partition, offset, None, value, tuple(headers)))
    return records


def _with(record: Record, **changes: object) -> Record:
    return replace(record, **changes)  # type: ignore[arg-type]


def _header(record: Record, name: str, value: bytes | None) -> Record:
    headers = [(k, value if k == name else v) for k, v in record.headers]
    return _with(record, headers=tuple((k, v) for k, v in headers if v is not None))


def _flip(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]


def _resealed(record: Record, key: Ed25519PrivateKey, chained: bool = True) -> Record:
    """The event signed again with `key` under its own publisher, lane and number; `prev` kept or (v1) dropped."""
    seal = Seal.from_headers(record.headers)
    assert seal is not None
    again = sign(key, seal.publisher, record.topic, seal.partition, seal.sequence, record.value or b"",
                 seal.prev if chained else None)
    return _with(record, headers=(("content-type", b"application/vnd.leadbus.avro"), *again.headers()))


def _tamper(records: list[Record], rng: random.Random) -> str:
    i = rng.randrange(len(records))
    r = records[i]
    kind = rng.choice(["value", "signature", "prev", "sequence", "swap", "drop", "replay", "unsigned", "malformed",
                       "v1", "stranger", "rotated", "partition", "topic", "chain start"])
    if kind == "value":
        records[i] = _with(r, value=_flip(r.value or b"", rng))
    elif kind == "signature":
        records[i] = _header(r, SIGNATURE_HEADER, _flip(dict(r.headers)[SIGNATURE_HEADER] or b"", rng))
    elif kind == "prev":
        records[i] = _header(r, PREV_HEADER, _flip(dict(r.headers)[PREV_HEADER] or b"", rng))
    elif kind == "sequence":
        records[i] = _header(r, SEQUENCE_HEADER, str(rng.randrange(1, 99)).encode())
    elif kind == "swap":
        j = rng.randrange(len(records))
        records[i], records[j] = records[j], records[i]
    elif kind == "drop" and len(records) > 2:
        del records[i]
    elif kind == "replay":
        records.insert(rng.randrange(i, len(records) + 1), r)
    elif kind == "unsigned":
        records[i] = _with(r, headers=(("content-type", b"application/vnd.leadbus.avro"),))
    elif kind == "malformed":
        records[i] = _header(r, SEQUENCE_HEADER, None)
    elif kind == "v1":
        records[i] = _resealed(r, KEYS[dict(r.headers)["leadbus-publisher"].decode()], chained=False)
    elif kind == "stranger":
        records[i] = _resealed(r, STRANGER)
    elif kind == "rotated" and TOPIC_OF.get("SAMR.33") == r.topic:
        records[i] = _resealed(r, ROTATED)  # a valid signature by another key of the lane: the run breaks
    elif kind == "partition":
        records[i] = _with(r, partition=(r.partition + 1) % 3)
    elif kind == "topic":
        records[i] = _with(r, topic=MPS if r.topic == SAMR else SAMR)
    elif kind == "chain start":
        records[i] = _resealed(_header(r, PREV_HEADER, signing.CHAIN_START), KEYS[
            dict(r.headers)["leadbus-publisher"].decode()])
    return kind


def _alone(records: list[Record], registry: KeyRegistry) -> list[object]:
    return [verify_event(r.headers, r.value or b"", r.topic, r.partition, registry, NOW) for r in records]


def _batched(records: list[Record], registry: KeyRegistry) -> tuple[list[object], dict[int, Vouched]]:
    vouched = vouched_by_chains(records, registry)
    return [verify_event(r.headers, r.value or b"", r.topic, r.partition, registry, NOW, vouched.get(i))
            for i, r in enumerate(records)], vouched


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many Ed25519 verifications are made."""
    calls = [0]
    verified = signing._verified

    def counting(public_key: bytes, signature: bytes, message: bytes) -> bool:
        calls[0] += 1
        return verified(public_key, signature, message)

    monkeypatch.setattr(signing, "_verified", counting)
    return calls


def test_a_clean_batch_costs_one_signature_per_lane(make_lead, counted: list[int]) -> None:
    records = _clean_batch(random.Random(1), _values(make_lead, 3), 60)
    registry = _registry()
    outcomes, vouched = _batched(records, registry)
    lanes = {(r.topic, r.partition, dict(r.headers)["leadbus-publisher"]) for r in records}
    assert len(vouched) == len(records) and all(isinstance(o, Seal) for o in outcomes)
    assert counted[0] == len(lanes) < len(records)
    assert outcomes == _alone(records, registry)


def test_a_bad_signature_at_the_end_or_in_the_middle_of_a_run(make_lead, counted: list[int]) -> None:
    values = _values(make_lead, 2)
    sealer = SigningSealer("SAMR.33", KEYS["SAMR.33"], MemorySequences())
    records = [Record(SAMR, 0, i, None, values[0], tuple(sealer.seal(SAMR, b"", values[0], 0))) for i in range(6)]
    registry = _registry()
    forged = _header(records[5], SIGNATURE_HEADER, bytes(64))  # the run's last: its signature vouches for none
    outcomes, vouched = _batched([*records[:5], forged], registry)
    assert vouched == {} and counted[0] == 7  # the run's last, then each of the six alone
    assert [getattr(o, "reason", "ok") for o in outcomes] == ["ok"] * 5 + ["BAD_SIGNATURE"]
    counted[0] = 0
    middle = _header(records[2], SIGNATURE_HEADER, bytes(64))  # breaks the link of the one after it too
    outcomes, vouched = _batched([*records[:2], middle, *records[3:]], registry)
    # two runs: 0-2 (2 still names 1's link; its signature fails: each of 0-2 verified alone), then 3-5
    assert sorted(vouched) == [3, 4, 5]
    assert [getattr(o, "reason", "ok") for o in outcomes] == ["ok", "ok", "BAD_SIGNATURE", "ok", "ok", "ok"]
    assert counted[0] == 1 + 3 + 1


@pytest.mark.parametrize("status", ["VALID", "KEY_REVOKED", "KEY_EXPIRED", "KEY_NOT_YET_VALID"])
def test_randomly_tampered_batches_judged_as_alone(make_lead, status: str) -> None:
    values = _values(make_lead, 3)
    registry = _registry(status)
    kinds = set()
    for seed in range(60):
        rng = random.Random(seed)
        records = _clean_batch(rng, values, rng.randrange(2, 40))
        for _ in range(rng.randrange(0, 5)):
            kinds.add(_tamper(records, rng))
        outcomes, vouched = _batched(records, registry)
        assert outcomes == _alone(records, registry), (seed, kinds)
        # a vouched event is one whose signature holds alone
        for i in vouched:
            seal = Seal.from_headers(records[i].headers)
            assert seal is not None and seal == vouched[i].seal
            key = registry.get(seal.publisher, seal.key_id)
            assert key is not None and signing.signature_valid(key.public_key, seal, records[i].topic,
                                                               records[i].value or b"")
    assert len(kinds) >= 14


def test_a_key_replaced_after_the_batch_was_prepared_is_verified_again(make_lead) -> None:
    values = _values(make_lead, 1)
    sealer = SigningSealer("SAMR.33", KEYS["SAMR.33"], MemorySequences())
    records = [Record(SAMR, 0, i, None, values[0], tuple(sealer.seal(SAMR, b"", values[0], 0))) for i in range(3)]
    registry = _registry()
    vouched = vouched_by_chains(records, registry)
    assert len(vouched) == 3
    # The registry now holds another public key under the same (publisher, key id): the vouch no longer applies.
    old = registry.get("SAMR.33", vouched[0].seal.key_id)
    assert old is not None
    registry.apply(replace(old, public_key=public_bytes(STRANGER.public_key())))
    refused = verify_event(records[0].headers, values[0], SAMR, 0, registry, NOW, vouched[0])
    assert getattr(refused, "reason", None) == "BAD_SIGNATURE"


def _outputs(result: object) -> list[tuple[object, ...]]:
    return [(o.topic, o.key, o.value, list(o.headers)) for o in result.outputs]  # type: ignore[attr-defined]


def test_the_handler_with_a_prepared_batch_gives_the_same_outputs(make_lead, counted: list[int]) -> None:
    values = _values(make_lead, 3)
    for status in ("VALID", "KEY_REVOKED"):
        registry = _registry(status)
        alone, batched = IntakeHandler(keys=registry), IntakeHandler(keys=registry)
        spent = {"alone": 0, "batched": 0}
        for seed in range(12):
            rng = random.Random(100 + seed)
            records = _clean_batch(rng, values, 30)
            for _ in range(rng.randrange(0, 4)):
                _tamper(records, rng)
            counted[0] = 0
            expected = [_outputs(alone.examine(r, NOW)) for r in records]
            spent["alone"] += counted[0]
            counted[0] = 0
            batched.prepare(records)
            assert [_outputs(batched.examine(r, NOW)) for r in records] == expected, seed
            spent["batched"] += counted[0]
        assert spent["batched"] * 2 < spent["alone"], spent  # 30 events over 9 lanes: runs of ~3


def test_the_handler_uses_a_vouch_only_for_the_very_record_it_was_made_for(make_lead) -> None:
    values = _values(make_lead, 1)
    sealer = SigningSealer("SAMR.33", KEYS["SAMR.33"], MemorySequences())
    records = [Record(SAMR, 0, i, None, values[0], tuple(sealer.seal(SAMR, b"", values[0], 0))) for i in range(3)]
    handler = IntakeHandler(keys=_registry())
    handler.prepare(records)
    # Same coordinates, altered value: another object, verified alone, refused.
    altered = _with(records[0], value=values[0][:-1] + bytes([values[0][-1] ^ 1]))
    (out,) = handler.examine(altered, NOW).outputs
    assert out.topic == "leadbus.leads.rejected"
    from leadbus.avro import decode

    assert decode(CATALOG, out.value)[1]["reason"] == "BAD_SIGNATURE"
    # A later batch forgets the earlier one's vouches.
    handler.prepare(records[:1])
    assert handler._vouched == {}


def test_a_lane_is_written_byte_for_byte_as_json_dumps_wrote_it() -> None:
    import json

    from leadbus.processors.core.provenance import MAX_OPEN_GAPS, Lane, check_sequence

    rng = random.Random(7)
    lane = Lane()
    for _ in range(3000):  # next numbers, gaps, late ones and replays: every shape a lane takes
        lane = check_sequence(lane, max(1, lane.last + rng.choice([1, 1, 1, 2, 5, -3, 0, 10 ** 12]))).lane
        expected = json.dumps({"last": lane.last, "gaps": [list(g) for g in lane.gaps]}).encode()
        assert lane.to_bytes() == expected
        assert Lane.from_bytes(lane.to_bytes()) == lane
    assert len(lane.gaps) >= MAX_OPEN_GAPS // 2, "the walk must reach lanes with many gaps"


def test_a_lane_never_holds_more_than_its_bound_of_open_gaps() -> None:
    from leadbus.processors.core.provenance import MAX_OPEN_GAPS, Lane, check_sequence

    rng = random.Random(11)
    lane = Lane()
    for _ in range(MAX_OPEN_GAPS):  # a full lane of gaps 3 wide
        lane = check_sequence(lane, lane.last + 4).lane
    assert len(lane.gaps) == MAX_OPEN_GAPS
    splits = 0
    for _ in range(2000):  # late numbers from the middle of gaps split them; replays and new gaps mixed in
        if lane.gaps and rng.random() < 0.7:
            low, high = rng.choice(lane.gaps)
            verdict = check_sequence(lane, (low + high) // 2)
            splits += verdict.status == "SEQUENCE_REORDERED" and low < (low + high) // 2 < high
        else:
            verdict = check_sequence(lane, lane.last + rng.choice([1, 4, 9]))
        lane = verdict.lane
        assert len(lane.gaps) <= MAX_OPEN_GAPS
    assert splits > 50, "the walk must split gaps"
