"""The usual stage seal judged and linked in C (`leadbus.audit.native_seal`) against the Python path of
`StageSealVerifier._quick` and `leadbus.stage_seals.link_after`: the same links, and the same findings, summary and
trusted records over sealed traffic whose records carry other headers, and over headers made hostile after sealing
(values of other types, names that are not str or not UTF-8, seal headers among the others, None values, a tuple of
headers, a header as a list)."""

from __future__ import annotations

import random
from typing import Any

from leadbus.audit import stage_seals as stage_seals_module
from leadbus.stage_seals import STAGE_SEAL_HEADERS, StageSealer, lane_hash, link_after
from tests.unit.test_audit_native_picker import python_alone
from tests.unit.test_audit_vouched import LINKING_KEY, Row, run, streams

OTHERS: list[list[tuple[str, bytes | None]]] = [
    [], [("trace", b"abc")], [("empty", None), ("blank", b"")], [("名字", "值".encode()), ("x", b"\x00" * 40)]]


def sealed_with_headers(rng: random.Random) -> list[Row]:
    """The case stream sealed again, each record with other headers before its seal (covered by its link)."""
    _, cases, _ = streams()
    sealer = StageSealer("LEADBUS-linking", LINKING_KEY, "00000000000000c2")
    bare = [(t, p, k, v, rng.choice(OTHERS)) for t, p, k, v, _ in cases]
    out: list[Row] = []
    for start in range(0, len(bare), 7):
        batch: list[Any] = bare[start:start + 7]
        out += [(t, p, k, v, list(headers)) for (t, p, k, v, _), headers in zip(batch, sealer.seal(batch), strict=True)]
        sealer.commit()
    return sorted(out, key=lambda r: r[1])


def hostile(rng: random.Random, rows: list[Row]) -> list[Row]:
    out = list(rows)
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(out))
        topic, partition, key, value, headers = out[i]
        headers = list(headers)
        j = rng.randrange(len(headers)) if headers else 0
        how = rng.randrange(8)
        if how == 0 and headers:  # a value of another type
            headers[j] = (headers[j][0], rng.choice([headers[j][1].decode("latin-1") if headers[j][1] else "",
                                                     bytearray(headers[j][1] or b""), 7]))
        elif how == 1 and headers:  # a name of another type, or not UTF-8
            headers[j] = (rng.choice([headers[j][0].encode(), "\udcff", 3]), headers[j][1])
        elif how == 2:  # a seal header among the others
            headers.insert(0, (rng.choice(STAGE_SEAL_HEADERS), b"00000000000000c2"))
        elif how == 3 and headers:  # a value removed
            headers[j] = (headers[j][0], None)
        elif how == 4:  # the headers as a tuple
            out[i] = (topic, partition, key, value, tuple(headers))  # type: ignore[assignment]
            continue
        elif how == 5 and headers:  # a header as a list, not a tuple
            headers[j] = list(headers[j])  # type: ignore[assignment]
        elif how == 6:  # a key or value of another type
            key = rng.choice([None, b"", bytearray(key or b"")])  # type: ignore[assignment]
        else:  # the number with a leading zero or a sign
            headers = [(n, (b"0" + v if rng.random() < 0.5 else b"+" + v) if n == "leadbus-stage-seq" and v else v)
                       for n, v in headers]
        out[i] = (topic, partition, key, value, headers)
    return out


def test_the_c_link_is_the_python_link() -> None:
    from leadbus.audit._seal_link import quick_link

    rng = random.Random(5)
    lane = lane_hash("leadbus.cases", 2, "LEADBUS-linking", "00000000000000aa", "00000000000000c2")
    for _ in range(300):
        prev = rng.randbytes(32)
        others = rng.choice(OTHERS)
        key = rng.choice([None, b"", rng.randbytes(rng.randrange(40))])
        value = rng.choice([None, b"", rng.randbytes(rng.randrange(2000))])
        number = rng.choice([1, 9, 10, 123456, 10**18, 10**19 - 1])
        seal = [("leadbus-stage-signer", b"LEADBUS-linking"), ("leadbus-stage-key-id", b"00000000000000aa"),
                ("leadbus-stage-chain", b"00000000000000c2"), ("leadbus-stage-seq", str(number).encode()),
                ("leadbus-stage-prev", prev)]
        got = quick_link([*others, *seal], b"LEADBUS-linking", b"00000000000000aa", b"00000000000000c2", prev, number,
                         lane, key, value)
        assert got == link_after(lane.copy(), str(number).encode(), key, value, others, prev)
        assert quick_link([*others, *seal], b"LEADBUS-linking", b"00000000000000aa", b"00000000000000c2", prev,
                          number + 1, lane, key, value) is None
    assert quick_link([("a", b"")] * 4, b"", b"", b"", b"", 1, lane, None, None) is None  # fewer than five


def test_the_loop_gives_the_same_findings_with_the_c_seal_link_or_without() -> None:
    _, _, registry = streams()
    rng = random.Random(77)
    assert stage_seals_module.quick_link is not None
    failing = trusted = 0
    for round_ in range(60):
        rows = sealed_with_headers(rng)
        if round_:
            rows = hostile(rng, rows)
        native = run(rows, registry, vouching=True)
        with python_alone():
            reference = run(rows, registry, vouching=True)
        assert native == reference, round_
        failing += any(f.failure for f in native[0])
        trusted += native[2]
    assert failing >= 40 and trusted > 1000, (failing, trusted)


def test_seal_names_are_known_by_the_same_str_or_by_an_equal_one_never_by_another() -> None:
    """The C link knows the seal's header names by the str it met last (the records' reader hands the same one with
    every record): an equal str of its own is known too, a name differing in one letter never."""
    from leadbus.audit._seal_link import quick_link

    lane = lane_hash("leadbus.cases", 2, "LEADBUS-linking", "00000000000000aa", "00000000000000c2")
    prev = bytes(range(32))
    values = [b"LEADBUS-linking", b"00000000000000aa", b"00000000000000c2", b"7", prev]
    canonical = ["leadbus-stage-signer", "leadbus-stage-key-id", "leadbus-stage-chain", "leadbus-stage-seq",
                 "leadbus-stage-prev"]
    copies = ["".join(list(name)) for name in canonical]
    assert all(a == b and a is not b for a, b in zip(canonical, copies, strict=True))

    def link(names: list[str]) -> bytes | None:
        return quick_link(list(zip(names, values, strict=True)), values[0], values[1], values[2], prev, 7, lane, b"k",
                          b"v")

    expected = link_after(lane.copy(), b"7", b"k", b"v", [], prev)
    for names in (canonical, copies, canonical, copies):
        assert link(names) == expected
        for k in range(5):
            wrong = list(names)
            wrong[k] = names[k][:-1] + names[k][-1].upper()
            assert link(wrong) is None
