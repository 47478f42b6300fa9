"""A trusted run of records goes through each check at once (`leadbus.audit.replay._loop`, `check_run`): the same.

Sealed streams of `leadbus.cases` (the linking handler's CaseUpdated), `leadbus.handover` (steps) and a routed topic
(withdrawals), as stages write them, tampered with (altered bodies, forged, dropped, swapped, replayed records, keys
changed, seals removed or damaged, records re-dated) and made hostile (headers of other types), go through the replay's
loop with trusted runs checked at once and with every record checked one by one (`_RUNS` emptied, as the loop was
before): the findings must be the same list in the same order (not only once sorted), and the summary, the count of
sealed records and the trusted records the same.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit import replay as replay_module
from leadbus.audit import stage_seals as stage_seals_module
from leadbus.audit import verification as verification_module
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import AcceptedLeads, Finding, ReplayRecord, standard_verifiers
from leadbus.avro import decode, encode
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of
from leadbus.stage_seals import StageSealer, partition_for
from leadbus.topics import HANDOVER
from tests.unit import test_audit_vouched as vouched
from tests.unit.test_audit_native_picker import python_alone
from tests.unit.test_audit_native_seal import OTHERS, hostile
from tests.unit.test_audit_vouched import CATALOG, STAMP, T0, Row, random_value, streams, tampered

HANDOVER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
ROUTING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))
WITHDRAWALS = "leadbus.withdrawals"
T0_MS = int(T0.timestamp() * 1000)


@cache
def more_streams() -> tuple[tuple[Row, ...], tuple[Row, ...], KeyRegistry]:
    """Handover steps of 12 cases (numbered 1, 2, 3 … per case) and withdrawals (versions going up per case), sealed
    in transactions of 5 by their stages; the registry holds these stages' keys and those of `streams`."""
    rng = random.Random(13)
    step, withdrawn = CATALOG.latest("cn.leadbus.HandoverStep"), CATALOG.latest("cn.leadbus.CaseWithdrawn")
    steps: list[tuple[bytes, bytes]] = []
    withdrawals: list[tuple[bytes, bytes]] = []
    numbers: Counter[str] = Counter()
    for _ in range(150):
        case = f"CASE-{rng.randrange(12):04d}"
        numbers[case] += 1
        event = random_value(rng, step.parsed)
        event.update(case_id=case, seq=numbers[case])
        steps.append((case.encode(), encode(step, event)))
        event = random_value(rng, withdrawn.parsed)
        event.update(case_id=case, version=numbers[case], merged_into=None)
        withdrawals.append((case.encode(), encode(withdrawn, event)))
    sealers = (StageSealer("LEADBUS-handover", HANDOVER_KEY, "00000000000000c3"),
               StageSealer("LEADBUS-routing", ROUTING_KEY, "00000000000000c4"))
    out: list[list[Row]] = [[], []]
    for topic, events, sealer, rows in zip((HANDOVER, WITHDRAWALS), (steps, withdrawals), sealers, out, strict=True):
        for start in range(0, len(events), 5):
            batch: list[Any] = [(topic, partition_for(k, 3), k, v, []) for k, v in events[start:start + 5]]
            rows += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(batch, sealer.seal(batch), strict=True)]
            sealer.commit()
    registry = KeyRegistry()
    for sealer in sealers:
        registry.apply(PublisherKey(sealer.signer, key_id_of(sealer.public_key), sealer.public_key, T0, T0,
                                    require_signed=False))
    for key in streams()[2]._keys.values():
        registry.apply(key)
    return (tuple(sorted(out[0], key=lambda r: r[1])), tuple(sorted(out[1], key=lambda r: r[1])), registry)


def altered(rng: random.Random, value: bytes) -> bytes:
    """`test_audit_vouched.altered`, and for a step or a withdrawal one of its fields changed."""
    schema, event = decode(CATALOG, value)
    if schema.name not in ("cn.leadbus.HandoverStep", "cn.leadbus.CaseWithdrawn"):
        return vouched_altered(rng, value)
    if rng.random() < 0.3:  # a bit flipped (the body cut or grown: `vouched.altered` does the same to cases)
        i = rng.randrange(10, len(value))
        return value[:i] + bytes([value[i] ^ (1 << rng.randrange(8))]) + value[i + 1:]
    number = "seq" if "seq" in event else "version"
    field = rng.choice([number, "case_id", number])
    event[field] = event[field] + rng.choice([-1, 1, 3]) if field == number else "CASE-FORGED"
    return encode(schema, event)


vouched_altered = vouched.altered


@pytest.fixture(autouse=True)
def _any_event_altered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vouched, "altered", altered)  # `tampered` alters steps and withdrawals too


@contextmanager
def one_by_one() -> Iterator[None]:
    """In the block, the replay's loop checks every record alone (no check by runs, no stage seals judged many at
    once), as it did before."""
    saved = replay_module._RUNS, replay_module._TRUSTED_RUNS, replay_module._PLAIN_RUNS, stage_seals_module.quick_run
    replay_module._RUNS, replay_module._TRUSTED_RUNS, replay_module._PLAIN_RUNS, stage_seals_module.quick_run = \
        (), (), (), None
    try:
        yield
    finally:
        (replay_module._RUNS, replay_module._TRUSTED_RUNS, replay_module._PLAIN_RUNS,
         stage_seals_module.quick_run) = saved


def replayed(rows: list[Row], registry: KeyRegistry, *, key: bytes | None = None, stamps: list[int] | None = None,
             agency_seals: bool = True) -> tuple[list[Finding], Counter[Any], int, int, int]:
    """The replay's loop over `rows` with every verifier (the agency seals' too), stage seals vouching: the findings
    in the order the loop made them, the summary, the records selected, sealed and trusted."""
    stage = StageSealVerifier(registry)
    stage.vouching = True
    verifiers = [*standard_verifiers(), stage]
    if agency_seals:
        verifiers.insert(-1, BusSealVerifier(registry))
    for verifier in verifiers:
        if isinstance(verifier, AcceptedLeads):
            verifier.trust_stage_seals = True
    offsets: Counter[tuple[str, int]] = Counter()
    records = []
    for i, (topic, partition, kafka_key, value, headers) in enumerate(rows):
        records.append(ReplayRecord(topic, partition, offsets[(topic, partition)],
                                    STAMP if stamps is None else stamps[i], kafka_key, value, headers, CATALOG))
        offsets[(topic, partition)] += 1
    report = replay_module.ReplayReport("test")
    _, sealed = replay_module._loop(records, verifiers, None, key, None, report, None, None)
    replay_module.finish(verifiers, report)
    return report.findings, report.by_type_publisher, report.selected, sealed, sum(r.trusted for r in records)


def same_both_ways(rows: list[Row], registry: KeyRegistry, **options: Any) -> tuple[list[Finding], int]:
    """The same findings, summary and counts by runs, with only the checks by runs (the stage seals judged one by one),
    by runs without the C reader of their usual records (`leadbus.audit.native_runs`) and one by one."""
    from leadbus.audit._seal_link import native_sha

    by_runs = replayed(rows, registry, **options)
    saved = stage_seals_module.quick_run
    stage_seals_module.quick_run = None
    try:
        seals_alone = replayed(rows, registry, **options)
    finally:
        stage_seals_module.quick_run = saved
    native_sha(False)
    try:
        hashlib_links = replayed(rows, registry, **options)
    finally:
        native_sha(True)
    reader, verification_module._RUN_READER = verification_module._RUN_READER, None
    try:
        python_runs = replayed(rows, registry, **options)  # runs judged and counted without the C reader
    finally:
        verification_module._RUN_READER = reader
    with one_by_one():
        alone = replayed(rows, registry, **options)
    for other in (seals_alone, hashlib_links, python_runs, alone):
        assert by_runs == other, ([f for f in by_runs[0] if f not in other[0]][:3],
                                  [f for f in other[0] if f not in by_runs[0]][:3], by_runs[1:], other[1:])
    return by_runs[0], by_runs[4]


def test_untampered_streams_are_checked_by_runs_and_verify() -> None:
    _, cases, _ = streams()
    steps, withdrawals, registry = more_streams()
    for rows in (cases, steps, withdrawals, cases + steps + withdrawals):
        found, trusted = same_both_ways(list(rows), registry)
        assert not [f for f in found if f.failure] and trusted == len(rows)


def _redated(rng: random.Random, rows: list[Row]) -> list[int]:
    stamps = [STAMP + i for i in range(len(rows))]
    for _ in range(rng.randrange(1, 3)):  # the timestamp is not sealed: moved back past the skew, or ahead
        stamps[rng.randrange(len(rows))] += rng.choice([-60_000, -20_000, 5_000, 10**9])
    return stamps


def test_tampered_streams_give_the_same_findings_in_the_same_order_by_runs_or_one_by_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    accepted, cases, _ = streams()
    steps, withdrawals, registry = more_streams()
    rng = random.Random(1313)
    failing = trusted = 0
    for round_ in range(120):
        source = (cases, steps, withdrawals, cases + steps, cases + accepted)[round_ % 5]
        rows = tampered(rng, list(source), source)
        if round_ % 3 == 0:
            rows = hostile(rng, rows)
        monkeypatch.setattr(replay_module, "_HOLD_MAX", rng.choice([3, 50, 20_000]))
        monkeypatch.setattr(replay_module, "_CHUNK", rng.choice([1, 7, 512]))
        stamps = _redated(rng, rows) if round_ % 4 == 1 else None
        found, vouched = same_both_ways(rows, registry, stamps=stamps, agency_seals=round_ % 2 == 0)
        failing += any(f.failure for f in found)
        trusted += vouched
    assert failing >= 100 and trusted > 10_000, (failing, trusted)


def test_records_stamped_oddly_are_judged_as_one_by_one() -> None:
    """Timestamps a broker does not give (zero, negative, past 64 bits, not an int) inside sealed runs: the stage check
    judges those records alone, as before (the C path takes exact ints within the key's validity only)."""
    _, cases, _ = streams()
    steps, _, registry = more_streams()
    rows = list(cases + steps)
    rng = random.Random(8)
    for _ in range(6):
        stamps: list[Any] = [STAMP + i for i in range(len(rows))]
        for i in rng.sample(range(len(rows)), 12):
            stamps[i] = rng.choice([0, -5, STAMP + 0.5, 2**70, -(2**70), True, STAMP - 10**9])
        same_both_ways(rows, registry, stamps=stamps)


def test_a_run_selected_by_key_counts_as_one_by_one() -> None:
    _, cases, _ = streams()
    steps, _, registry = more_streams()
    rows = list(cases + steps)
    for key in (rows[3][2], rows[-1][2], b"CASE-NONE"):
        same_both_ways(rows, registry, key=key)


def test_a_check_that_raises_inside_a_run_is_located_as_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check raising on some records of a run (as a hostile writer schema or timestamp could make it: a version that
    is no number, a timestamp that is none) gives its located failure at the same place among the other checks'
    findings, and the run's other records are still checked."""
    _, cases, _ = streams()
    steps, _, registry = more_streams()
    rows = tampered(random.Random(3), list(cases + steps), cases)
    made = verification_module.picker

    def hostile_picker(schema: Any, paths: tuple[str, ...]) -> Any:
        pick = made(schema, paths)
        if pick is None:
            return None

        def picked(value: bytes) -> Any:
            values = pick(value)
            return (values[0], "no number", *values[2:]) if sum(value) % 4 == 0 else values
        return picked

    monkeypatch.setattr(verification_module, "picker", hostile_picker)
    verification_module._LAST_PICKER[:] = [None, None, None]
    try:
        for stamps in (None, [None if i % 11 == 4 else STAMP for i in range(len(rows))]):
            found, _ = same_both_ways(rows, registry, stamps=stamps)  # type: ignore[arg-type]
            assert sum(f.check == "UNREADABLE" for f in found) > 10
    finally:
        verification_module._LAST_PICKER[:] = [None, None, None]


def test_the_c_run_links_as_python_links_with_the_sha_instructions_or_hashlib() -> None:
    """`quick_run` over records of one lane (with other headers, keys and values of every size, none): each link is
    `link_after`'s, hashed by the CPU's SHA instructions (where it has them) or by hashlib; it stops at the first
    record that does not follow (another number, another link, another partition), and marks those it took pending."""
    from leadbus.audit._seal_link import native_sha, quick_run
    from leadbus.stage_seals import _lane_head, lane_hash, link_after

    rng = random.Random(21)
    topic, partition = "leadbus.cases", 2
    signer, key_id, chain = "LEADBUS-linking", "00000000000000aa", "00000000000000c2"
    lane, head = lane_hash(topic, partition, signer, key_id, chain), _lane_head(topic, partition, signer, key_id, chain)
    for native in (True, False):
        native_sha(native)
        try:
            for _ in range(40):
                prev, first = rng.randbytes(32), rng.choice([1, 9, 99, 10**18 - 3])
                link, number, links, records = prev, first, [], []
                for _ in range(rng.randrange(1, 12)):
                    others = rng.choice(OTHERS)
                    key = rng.choice([None, b"", rng.randbytes(rng.randrange(40))])
                    value = rng.choice([None, b"", rng.randbytes(rng.randrange(3000)), rng.randbytes(55)])
                    seal = [("leadbus-stage-signer", signer.encode()), ("leadbus-stage-key-id", key_id.encode()),
                            ("leadbus-stage-chain", chain.encode()), ("leadbus-stage-seq", str(number).encode()),
                            ("leadbus-stage-prev", link)]
                    records.append(ReplayRecord(topic, partition, number, STAMP, key, value, [*others, *seal], CATALOG))
                    link = link_after(lane.copy(), str(number).encode(), key, value, others, link)
                    links.append(link)
                    number += 1
                stray = rng.randrange(len(records) + 1)  # a record that does not follow, from here on
                if stray < len(records):
                    records[stray].partition = rng.choice([1, 3]) if rng.random() < 0.5 else partition
                    records[stray].offset = -1
                    if records[stray].partition == partition:
                        records[stray].headers = [*records[stray].headers[:-1], ("leadbus-stage-prev", bytes(32))]
                taken, last = quick_run(records, 0, len(records), topic, partition, signer.encode(), key_id.encode(),
                                        chain.encode(), prev, first, lane, T0_MS, None, None, True, head)
                expected = stray if stray < len(records) else len(records)
                assert taken == expected and last == (links[taken - 1] if taken else prev)
                assert [r.pending for r in records] == [i < taken for i in range(len(records))]
        finally:
            native_sha(True)


def test_runs_read_by_the_python_picker_and_link_give_the_same_findings() -> None:
    _, cases, _ = streams()
    steps, _withdrawals, registry = more_streams()
    rng = random.Random(99)
    with python_alone():
        for _ in range(20):
            same_both_ways(tampered(rng, list(cases + steps), cases), registry)


def test_the_c_run_over_long_runs_links_as_python_with_the_sha_instructions_or_hashlib() -> None:
    """`quick_run` hashing from the records' own bytes (the SHA instructions) and by hashlib, against `link_after`:
    long runs of records of every size, lanes whose heads fill a block to different depths, a record that does not
    follow anywhere (another `prev`, partition or number, a `prev` of another length); the same count, last link, and
    records marked pending, both ways."""
    from leadbus.audit._seal_link import native_sha, quick_run
    from leadbus.stage_seals import _lane_head, lane_hash, link_after

    rng = random.Random(16)
    signer, key_id, chain = "LEADBUS-linking", "00000000000000aa", "00000000000000c2"
    long_runs = 0
    for round_ in range(60):
        topic, partition = rng.choice([("leadbus.cases", 2), ("leadbus.leads.accepted", 0),
                                       ("x" * rng.randrange(90), 3)])  # lane heads of every partial block
        lane = lane_hash(topic, partition, signer, key_id, chain)
        head = _lane_head(topic, partition, signer, key_id, chain)
        prev, first = rng.randbytes(32), rng.choice([1, 9, 99, 10**18 - 40])
        link, number, links, rows = prev, first, [], []
        size = rng.choice([0, 60, 2300, 9000])
        for _ in range(rng.randrange(1, 60)):
            others = rng.choice(OTHERS)
            key = rng.choice([None, b"", rng.randbytes(rng.randrange(40))])
            value = rng.choice([None, rng.randbytes(rng.randrange(size + 1)), rng.randbytes(size), rng.randbytes(55)])
            seal = [("leadbus-stage-signer", signer.encode()), ("leadbus-stage-key-id", key_id.encode()),
                    ("leadbus-stage-chain", chain.encode()), ("leadbus-stage-seq", str(number).encode()),
                    ("leadbus-stage-prev", link)]
            rows.append((number, key, value, [*others, *seal]))
            link = link_after(lane.copy(), str(number).encode(), key, value, others, link)
            links.append(link)
            number += 1
        stray = rng.randrange(len(rows) + 1) if round_ % 3 else len(rows)  # a record that does not follow, from here
        how = rng.randrange(4)
        outcomes = []
        for native in (True, False):
            records = [ReplayRecord(topic, partition, n, STAMP, k, v, list(h), CATALOG) for n, k, v, h in rows]
            if stray < len(records):
                odd = records[stray]
                if how == 0:
                    odd.headers = [*odd.headers[:-1], ("leadbus-stage-prev", bytes(32))]
                elif how == 1:
                    odd.headers = [*odd.headers[:-1], ("leadbus-stage-prev", rng.randbytes(31))]
                elif how == 2:
                    odd.partition = partition + 1
                else:
                    odd.headers = [*odd.headers[:-2], ("leadbus-stage-seq", b"7"), odd.headers[-1]]
            native_sha(native)
            try:
                taken, last = quick_run(records, 0, len(records), topic, partition, signer.encode(), key_id.encode(),
                                        chain.encode(), prev, first, lane, T0_MS, None, None, True, head)
            finally:
                native_sha(True)
            outcomes.append((taken, last, [r.pending for r in records]))
        expected = stray if stray < len(rows) else len(rows)
        assert outcomes[0][0] == expected and outcomes[0][1] == (links[expected - 1] if expected else prev), round_
        assert outcomes[0] == outcomes[1], round_
        long_runs += expected >= 10
    assert long_runs > 10, long_runs


@cache
def routed() -> tuple[tuple[Row, ...], tuple[Row, ...]]:
    """`streams`' CaseUpdated as routing forwards them to a jurisdiction topic (no `topic` field), each case closed by
    an event of its last version with `merged_into` (the same version, another event), and withdrawals of each case
    from two routes (the same version, another `topic`): sealed by routing's key (registered in `more_streams`)."""
    _, cases, _ = streams()
    case_schema, withdrawn = CATALOG.latest("cn.leadbus.CaseUpdated"), CATALOG.latest("cn.leadbus.CaseWithdrawn")
    last: dict[bytes, tuple[int, bytes]] = {}
    for _, partition, key, value, _ in cases:
        last[key] = (partition, value)
    closing, withdrawals = [], []
    rng = random.Random(17)
    for key, (partition, value) in sorted(last.items()):
        _, event = decode(CATALOG, value)
        if event["merged_into"] is None:
            closing.append((partition, key, encode(case_schema, dict(event, merged_into="CASE-OTHER"))))
        for route in ("leadbus.jurisdiction.11", "leadbus.liaison.HK"):
            body = dict(random_value(rng, withdrawn.parsed), case_id=event["case_id"], version=event["version"],
                        merged_into=None, topic=route)
            withdrawals.append((partition, key, encode(withdrawn, body)))
    out = []
    for topic, chain, events in ((JURISDICTION, "00000000000000c5", [(p, k, v) for _, p, k, v, _ in cases] + closing),
                                 (WITHDRAWALS, "00000000000000c6", withdrawals)):
        sealer = StageSealer("LEADBUS-routing", ROUTING_KEY, chain)
        rows: list[Row] = []
        for start in range(0, len(events), 5):
            batch: list[Any] = [(topic, p, k, v, []) for p, k, v in events[start:start + 5]]
            rows += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(batch, sealer.seal(batch), strict=True)]
            sealer.commit()
        out.append(tuple(sorted(rows, key=lambda r: r[1])))
    return out[0], out[1]


JURISDICTION = "leadbus.jurisdiction.11"


def test_routed_records_vouched_for_are_read_by_their_fields_with_the_findings_of_a_full_decode(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`RoutedVersions` reads a trusted record's case id, version, `merged_into` and `topic` by the picker: the events
    that differ by these alone are no repeats; tampered withdrawals and routed cases (replayed, dropped, swapped,
    altered, seals removed) give the findings read whole."""
    _, _, registry = more_streams()
    jurisdiction, withdrawals = routed()
    made, reads = verification_module.picker, Counter[str]()

    def counting(schema: Any, paths: tuple[str, ...]) -> Any:
        pick = made(schema, paths)
        if pick is None:
            return None

        def picked(value: bytes) -> Any:
            reads[schema.name] += 1
            return pick(value)
        return picked

    monkeypatch.setattr(verification_module, "picker", counting)
    verification_module._LAST_PICKER[:] = [None, None, None]
    try:
        for rows in (withdrawals, jurisdiction):
            fast, tally, trusted = vouched.run(list(rows), registry, vouching=True)
            assert fast == vouched.run(list(rows), registry, vouching=False)[0] == [] and trusted == len(rows)
        assert reads["cn.leadbus.CaseWithdrawn"] >= len(withdrawals)
        assert reads["cn.leadbus.CaseUpdated"] >= len(jurisdiction)
        rng = random.Random(1515)
        failing = 0
        for round_ in range(90):
            source = (withdrawals, jurisdiction, withdrawals + jurisdiction)[round_ % 3]
            rows = tampered(rng, list(source), source)
            monkeypatch.setattr(replay_module, "_HOLD_MAX", rng.choice([3, 20_000]))
            fast, tally, _ = vouched.run(rows, registry, vouching=True)
            full, full_tally, _ = vouched.run(rows, registry, vouching=False)
            assert fast == full, (round_, [f for f in fast if f not in full][:3],
                                  [f for f in full if f not in fast][:3])
            assert tally == full_tally
            failing += any(f.check in ("REPLAYED", "REORDERED") for f in fast)
        assert failing >= 20, failing
    finally:
        verification_module._LAST_PICKER[:] = [None, None, None]
