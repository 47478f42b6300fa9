"""A plain intake stretch's usual records judged and counted in one C pass (`intake_runs.PlainIntake`, `native_intake`'s
`plain_run`) against the path it stands in for (the reference: each check's `check_run`, then the tally): the replay's
loop over the same hostile intake records — seals tampered with, headers of odd types, bodies cut, leads sent twice,
offsets and timestamps out of order, records of odd shapes — gives the same findings, tally, signatures and state
either way, and the C pass took the untouched records."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit import intake_runs, native_intake
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import IntakeLeads, PartitionOrder, ReplayRecord, standard_verifiers
from leadbus.avro import encode_object
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes
from tests.audit_helpers import replay_records, replayed
from tests.unit.test_audit_native_intake import _hostile, _python_alone
from tests.unit.test_audit_native_intake_quick import HOSTILE
from tests.unit.test_audit_seals_quick import CATALOG, START, STREAM, TOPIC, Rec, _registry, _stream, _tamper


def test_the_c_pass_is_built() -> None:
    """A broken build must not pass as the Python path."""
    assert native_intake.plain_run is not None and intake_runs._native_plain is not None


def _odd(records: list[ReplayRecord], rng: random.Random) -> list[ReplayRecord]:
    """Records made odd after they were read: offsets and timestamps out of order, a log's first record, a tombstone,
    an equal topic of another object, a partition or offset of another type, a body cut to its fingerprint."""
    for _ in range(rng.randint(1, 4)):
        r = records[rng.randrange(len(records))]
        how = rng.randrange(9)
        if how == 0:
            r.timestamp_ms -= rng.choice([1, 20_000, 10**9])
        elif how == 1:
            r.offset = rng.choice([0, -1, r.offset - 1, r.offset + 5])
        elif how == 2:
            r.opens_log = True
        elif how == 3:
            r.value = None
        elif how == 4:
            r.topic = "".join(TOPIC)
        elif how == 5:
            r.partition = rng.choice([True, float(r.partition)])
        elif how == 6:
            r.offset = float(r.offset)
        elif how == 7:
            r.value = (r.value or b"")[:10]
        else:
            r.trusted = True
    return records


def _replayed(recs: list[Rec], *, keep_sources: bool, seed: int | None = None,
              registry: KeyRegistry | None = None) -> list[Any]:
    """The replay's loop as a Kafka replay of the intake topic runs it (the standard verifiers, the seal verifier, the
    stage seal verifier vouching): its findings, tally and count, and what the verifiers keep."""
    stage = StageSealVerifier(registry or _registry())
    stage.vouching = True
    bus = BusSealVerifier(registry or _registry(), window=16)
    verifiers: list[Any] = [*standard_verifiers(), bus, stage]
    intake = next(v for v in verifiers if isinstance(v, IntakeLeads))
    order = next(v for v in verifiers if isinstance(v, PartitionOrder))
    intake.keep_sources = keep_sources
    records = replay_records(TOPIC, recs, CATALOG)
    if seed is not None:
        records = _odd(records, random.Random(seed))
    report = replayed(records, verifiers)
    return [report.findings, sorted(report.by_type_publisher.items()), report.selected, report.sealed, bus.signatures,
            bus.sealed, intake._seen, intake.sources, intake.ranges, order._last, bus.lanes.__dict__]


def _both(recs: list[Rec], monkeypatch: pytest.MonkeyPatch, *, keep_sources: bool, seed: int | None = None,
          registry: KeyRegistry | None = None) -> int:
    """The replay with the C pass, without it, and by the Python paths alone: the same; how many records it took."""
    take, taken = intake_runs.PlainIntake.take, [0]

    def counted(quick: intake_runs.PlainIntake, records: list[ReplayRecord], start: int, tally: Any,
                findings: Any) -> int:
        got = take(quick, records, start, tally, findings)
        taken[0] += got
        return got

    with monkeypatch.context() as patch:
        patch.setattr(intake_runs.PlainIntake, "take", counted)
        fast = _replayed(recs, keep_sources=keep_sources, seed=seed, registry=registry)
    with monkeypatch.context() as patch:
        patch.setattr(intake_runs, "_native_plain", None)
        assert fast == _replayed(recs, keep_sources=keep_sources, seed=seed, registry=registry)
        _python_alone(patch)
        assert fast == _replayed(recs, keep_sources=keep_sources, seed=seed, registry=registry)
    return taken[0]


def test_an_untouched_stream_is_taken_by_the_c_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _both(STREAM, monkeypatch, keep_sources=False) > len(STREAM) // 2


@pytest.mark.parametrize("keep_sources", [False, True])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_intake_records_give_the_same_replay_with_the_c_pass_or_without(
        case: str, keep_sources: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = HOSTILE[case](STREAM, 40)
    assert _both(recs, monkeypatch, keep_sources=keep_sources) > len(recs) // 2, case


#: Both publishers on each of two partitions: a signer's first record on the second partition it writes to is not
#: the partition's first.
SHARED = _stream(240, partitions=2)


@pytest.mark.parametrize(("stream", "seeds", "seed"),
                         [pytest.param(STREAM, 1300, seed, id=f"one-lane-a-partition-{seed}") for seed in range(24)]
                         + [pytest.param(SHARED, 1700, seed, id=f"lanes-sharing-partitions-{seed}")
                            for seed in range(12)])
def test_tampered_and_odd_records_give_the_same_replay_with_the_c_pass_or_without(
        stream: list[Rec], seeds: int, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seeds + seed)
    recs = _tamper(stream, rng) if seed % 3 else _hostile(_tamper(stream, rng), rng)
    _both(recs, monkeypatch, keep_sources=bool(seed % 2), seed=seed if seed % 4 else None)


def test_the_pass_stands_in_only_for_the_four_checks_of_an_intake_topic() -> None:
    applying = [v for v in [*standard_verifiers(), BusSealVerifier(_registry())] if getattr(v, "applies", None) is None
                or v.applies(TOPIC)]
    assert intake_runs.PlainIntake.of(TOPIC, applying) is not None
    assert intake_runs.PlainIntake.of("leadbus.cases", applying) is None
    assert intake_runs.PlainIntake.of(TOPIC, applying[:-1]) is None
    assert intake_runs.PlainIntake.of(TOPIC, [*applying, IntakeLeads()]) is None


def test_the_c_pass_takes_nothing_of_an_odd_shape_and_refuses_an_odd_state() -> None:
    run = native_intake.plain_run
    assert run is not None
    bare = ReplayRecord.__new__(ReplayRecord)  # no slot set
    state = (ReplayRecord, CATALOG, TOPIC, {}, {}, {}, {}, {}, 16, {}, None, None, {}, intake_runs.LeadHead, [])
    assert run([bare, "not a record", None], 0, state) == 0
    assert run([], 5, state) == 0 and run(["x"], -3, state) == 0
    for odd in [state[:-1], (*state[:3], [], *state[4:]), (*state[:10], {}, None, *state[12:]), (*state[:14], [1]),
                (*state[:14], ())]:
        with pytest.raises(TypeError):
            run([bare], 0, odd)
    with pytest.raises(TypeError):
        run((bare,), 0, state)  # type: ignore[arg-type]


def test_a_lanes_first_record_and_a_run_that_fills_its_window_are_taken_by_the_c_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The seal verifier's window is 16 here: of 240 records of two publishers on two partitions, the Python path
    judges only each partition's first record (at offset 0: the order check's), which is each publisher's first on the
    topic (its key judged there), and SAMR.44's records after its key's revocation (KEY_REVOKED each); neither a record
    that ends a full run nor a publisher's first record on the other partition."""
    take, left = intake_runs.PlainIntake.take, []

    def logged(quick: intake_runs.PlainIntake, records: list[ReplayRecord], start: int, tally: Any,
               findings: Any) -> int:
        got = take(quick, records, start, tally, findings)
        if start + got < len(records) and not quick.ended:
            left.append(records[start + got])
        return got

    monkeypatch.setattr(intake_runs.PlainIntake, "take", logged)
    findings = _replayed(SHARED, keep_sources=False)[0]
    revoked = {(f.partition, f.offset) for f in findings if f.check == "KEY_REVOKED"}
    assert len(revoked) == len(findings) == 30
    firsts = [(r.partition, r.offset) for r in left if (r.partition, r.offset) not in revoked]
    assert firsts == [(0, 0), (1, 0)]  # SAMR.44's first, SAMR.33's first: each then known on the other partition


def _shouted(i: int, lead_id: str) -> str:
    """Lead ids in capitals (ASCII, and not), and a lead sent again under its id in capitals: the C pass keeps a lead
    by its id in lower case as `IntakeLeads.check` does, without a call where lower() changes nothing."""
    if i % 5 == 1:
        return lead_id.upper()
    if i % 5 == 2:
        return "Éclair-" + lead_id
    if i % 5 == 3:
        return "ÉCLAIR-" + lead_id[:-1] + "Ω"
    return lead_id


@pytest.mark.parametrize("seed", range(4))
def test_lead_ids_in_capitals_are_kept_by_their_lower_case_with_the_c_pass_or_without(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = _stream(60, partitions=2, ids=_shouted)
    again = recs[seed * 5 + 1]  # a lead whose id is in capitals, sent again under its id in lower case
    lower = again.key.decode().lower() if again.key else ""
    recs.append(replace(again, key=lower.encode(), value=again.value.replace(again.key or b"", lower.encode())))
    assert _both(recs, monkeypatch, keep_sources=bool(seed % 2)) > len(recs) // 2
    replay = _replayed(recs, keep_sources=False)
    seen = replay[6]
    assert lower in {ident[0] for ident in seen} and all(ident[0] == ident[0].lower() for ident in seen)
    assert any(f.check in ("REDELIVERED", "REVISION_CONFLICT") and lower in f.message for f in replay[0])


#: 34 provinces' publishers of SAMR, each with its key: as many (type, publisher) pairs of the tally in one C pass.
PROVINCES = ["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
             "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82"]


def _many(rounds: int) -> tuple[list[Rec], KeyRegistry]:
    """Each province's publisher once, then `rounds` times each in turn, on one partition, sealed v2; their registry."""
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    keys = {f"SAMR.{p}": Ed25519PrivateKey.from_private_bytes(bytes([100 + n]) * 32) for n, p in enumerate(PROVINCES)}
    sealers = {who: SigningSealer(who, key, MemorySequences()) for who, key in keys.items()}
    since = START - timedelta(days=30)
    registry = KeyRegistry([PublisherKey(who, key_id_of(public_bytes(k.public_key())), public_bytes(k.public_key()),
                                         since, since) for who, k in keys.items()])
    gen, out = TrafficGenerator(seed=9), []
    for i in range(len(PROVINCES) * (rounds + 1)):
        who = f"SAMR.{PROVINCES[i % len(PROVINCES)]}"
        lead = gen.lead(START + timedelta(seconds=i))
        lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": "SAMR",
                                                                                      "province": who[-2:]})})
        value, key = encode_object(schema, lead), lead.lead_id.encode()
        headers: list[tuple[str, bytes | None]] = [("content-type", b"application/vnd.leadbus.avro"),
                                                   *sealers[who].seal(TOPIC, key, value, 0)]
        out.append(Rec(0, key, value, headers, int(START.timestamp() * 1000) + i * 1000))
    return out, registry


def test_the_lanes_of_many_publishers_in_one_pass_are_tallied_as_without_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    recs, registry = _many(3)
    assert _both(recs, monkeypatch, keep_sources=False, registry=registry) == 3 * len(PROVINCES)
    tally = dict(_replayed(recs, keep_sources=False, registry=registry)[1])
    assert tally == {("cn.leadbus.CaseLead", f"SAMR.{p}"): 4 for p in PROVINCES}
