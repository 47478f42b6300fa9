"""The stage seal check's quick path (`StageSealVerifier._quick`) against its general path, record for record.

The quick path judges a partition's usual record (the seal's five headers last, in the stage's order, from the lane and
key of the record before it, its next number and link, the key valid) without reading the seal in general; anything
else goes the general way. Each case here feeds the same records to a verifier as the replay builds it and to one whose
quick path is off, and expects the same findings, the same records trusted, the same state at the end.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import Finding, ReplayRecord
from leadbus.signing import KeyRegistry
from leadbus.stage_seals import KEY_ID_HEADER, SEQUENCE_HEADER, SIGNATURE_HEADER, StageSealer
from tests.unit.test_stage_seals import CATALOG, KEY, T0, Written, day, registry, sealer, transaction

OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def judged(written: list[Written], reg: KeyRegistry, *, quick: bool,
           stamp: int | None = None) -> tuple[list[Finding], list[bool], int, dict[object, tuple[int, bytes]]]:
    verifier = StageSealVerifier(reg)
    verifier.vouching = True
    if not quick:
        verifier._remember = lambda *args: None  # type: ignore[method-assign]  # no lane is ever hot
    ms = stamp if stamp is not None else int((T0 + timedelta(hours=1)).timestamp() * 1000)
    records: list[ReplayRecord] = []
    found: list[Finding] = []
    for p in sorted({w.partition for w in written}):
        for offset, w in enumerate(x for x in written if x.partition == p):
            record = ReplayRecord(w.topic, p, offset, ms, w.key, w.value, w.headers, CATALOG)
            records.append(record)
            found += verifier.check(record)
    verifier.let_go()
    found += verifier.finish()
    lanes = {lane: (state.sequence, state.link) for lane, state in verifier._lanes.items()}
    return found, [r.trusted for r in records], verifier.sealed, lanes


def same(written: list[Written], reg: KeyRegistry, **kw: int) -> list[Finding]:
    fast, slow = judged(written, reg, quick=True, **kw), judged(written, reg, quick=False, **kw)
    assert fast == slow
    return fast[0]


def test_a_normal_day_is_judged_alike_and_every_record_trusted() -> None:
    written = day(sealer(), transactions=6, per=9)
    assert same(written, registry(KEY)) == []
    assert all(judged(written, registry(KEY), quick=True)[1])
    verifier = StageSealVerifier(registry(KEY))
    quick = verifier._quick
    taken = []
    verifier._quick = lambda *args: taken.append(quick(*args)) or taken[-1]  # type: ignore[method-assign]
    ms = int((T0 + timedelta(hours=1)).timestamp() * 1000)
    for offset, w in enumerate(x for x in written if x.partition == 0):
        assert not verifier.check(ReplayRecord(w.topic, 0, offset, ms, w.key, w.value, w.headers, CATALOG))
    assert sum(taken) >= len(taken) - 6  # all but a transaction's signed records (and the lane's first) go quick


def plain_day(s: StageSealer, transactions: int, per: int, partitions: int = 2) -> list[Written]:
    """As `day`, the outputs without headers of their own (as intake writes the accepted leads)."""
    out: list[Written] = []
    n = 0
    for _ in range(transactions):
        rows = []
        for _ in range(per):
            n += 1
            rows.append(("leadbus.cases", n % partitions, f"case-{n % 5}".encode(), f"version {n}".encode(), []))
        sealed = s.seal(rows)  # type: ignore[arg-type]
        s.commit()
        out += [Written(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(rows, sealed, strict=True)]
    return out


@pytest.mark.parametrize("own_headers", [True, False])
def test_unusual_headers_fall_back_and_are_found_alike(own_headers: bool) -> None:
    written = day(sealer(), transactions=4, per=8) if own_headers else plain_day(sealer(), 4, 8)
    reg = registry(KEY)
    middle = next(i for i, w in enumerate(written)
                  if w.partition == 0 and i > 4 and not any(n == SIGNATURE_HEADER for n, _ in w.headers))

    def changed(headers: list[tuple[str, bytes | None]]) -> list[Written]:
        out = list(written)
        out[middle] = replace(written[middle], headers=headers)
        return out

    h = written[middle].headers
    cases = {
        "extra header after the seal": [*h, ("x-extra", b"1")],
        "extra header before the seal": [("x-extra", b"1"), *h],
        "order changed": [*h[:-2], h[-1], h[-2]],
        "sequence header twice": [*h[:-2], h[-2], h[-2], h[-1]],
        "key id twice": [*h[:-4], h[-4], *h[-4:]],
        "signature added at the end": [*h, (SIGNATURE_HEADER, bytes(64))],
        "sequence with a leading zero": [*h[:-2], (SEQUENCE_HEADER, b"0" + (h[-2][1] or b"")), h[-1]],
        "sequence not a number": [*h[:-2], (SEQUENCE_HEADER, b"x"), h[-1]],
        "key id changed": [*h[:-4], (KEY_ID_HEADER, b"0123456789abcdef"), *h[-3:]],
        "prev of None": [*h[:-1], (h[-1][0], None)],
    }
    for name, headers in cases.items():
        found = same(changed(headers), reg)
        # the seal's own headers are not linked (their order is no part of the chain): the rest is found, alike
        assert bool(found) == (name != "order changed"), name


def test_a_missing_signature_at_the_end_and_dropped_or_swapped_records_are_found_alike() -> None:
    written = plain_day(sealer(), 4, 8)
    reg = registry(KEY)
    p0 = [i for i, w in enumerate(written) if w.partition == 0]
    last = written[p0[-1]]
    unsigned = list(written)
    unsigned[p0[-1]] = replace(last, headers=[h for h in last.headers if h[0] != SIGNATURE_HEADER])
    assert any(f.check == "STAGE_CHAIN_BROKEN" or f.check == "STAGE_UNSIGNED_TAIL" for f in same(unsigned, reg))
    assert [f.check for f in same([w for i, w in enumerate(written) if i != p0[-1]], reg)] == ["STAGE_UNSIGNED_TAIL"]
    dropped = [w for i, w in enumerate(written) if i != p0[4]]
    assert [f.check for f in same(dropped, reg)] == ["STAGE_SEQUENCE_GAP"]
    swapped = list(written)
    swapped[p0[3]], swapped[p0[4]] = swapped[p0[4]], swapped[p0[3]]
    assert {f.check for f in same(swapped, reg)} >= {"STAGE_SEQUENCE_GAP", "STAGE_SEQUENCE_REPLAYED"}
    replayed = list(written)
    replayed.insert(p0[5] + 1, written[p0[5]])
    assert "STAGE_SEQUENCE_REPLAYED" in {f.check for f in same(replayed, reg)}
    altered = list(written)
    altered[p0[2]] = replace(written[p0[2]], value=b"version 999")
    assert "STAGE_CHAIN_BROKEN" in {f.check for f in same(altered, reg)}
    moved = list(written)
    moved[p0[2]] = replace(written[p0[2]], key=None)
    assert "STAGE_CHAIN_BROKEN" in {f.check for f in same(moved, reg)}


def test_a_key_changed_mid_lane_is_judged_alike_registered_or_not() -> None:
    first = sealer()
    written = plain_day(first, 2, 8)
    second = StageSealer("LEADBUS-linking", OTHER_KEY, first.chain)  # the same lane goes on under another key
    second._committed = dict(first._committed)
    written += plain_day(second, 2, 8)
    assert same(written, registry(KEY, OTHER_KEY)) == []
    unknown = same(written, registry(KEY))
    assert unknown and {f.check for f in unknown} >= {"UNKNOWN_KEY"}


def test_a_key_outside_its_validity_is_judged_alike() -> None:
    written = plain_day(sealer(), 3, 8)
    before = int((T0 - timedelta(hours=1)).timestamp() * 1000)
    found = same(written, registry(KEY), stamp=before)
    assert found and {f.check for f in found} == {"KEY_NOT_YET_VALID"}
    revoked = registry(KEY, revoked_at=T0 + timedelta(minutes=30))
    found = same(written, revoked)
    assert found and {f.check for f in found} == {"KEY_REVOKED"}
    assert same(written, registry(KEY), stamp=0) == []  # no broker time: the key judged now, the general way


def test_a_transaction_across_partitions_and_a_new_chain_are_judged_alike() -> None:
    written = day(sealer(), transactions=3, per=10, partitions=3) + day(sealer("00000000000000c3"), transactions=2)
    written += transaction(sealer("00000000000000c4"), [(1, b"k", b"v")])
    assert same(written, registry(KEY)) == []
