"""The replay's C field picker (`leadbus.audit.native_picker`) against its reference, the Python picker (and the
replay's loop with both C paths, the picker and the stage seal's link, against the Python paths alone).

Both paths over the same bytes give the same outcome (the same values, or the same exception): bodies of every version
of the picked schemas, random and damaged (cut, trailing bytes, bytes flipped), and the replay's loop over sealed
simulated traffic — tampered after sealing, and hostile bodies sealed by the stage itself (so that the picker reads
them) — gives the same findings, summary and trusted records with the C picker as with the Python one alone. And the
extension is built and in use (`make install` builds it): a broken build cannot pass as the Python fallback.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastavro import schemaless_writer

from leadbus.audit import native_picker, picker
from leadbus.audit import stage_seals as stage_seals_module
from leadbus.audit import verification as verification_module
from leadbus.audit.verification import _CASE_HEAD, _STEP_HEAD, ACCEPTED_HEAD, ACCEPTED_REVISION
from leadbus.avro import SchemaCatalog, decode
from leadbus.stage_seals import STAGE_SEAL_NAMES, StageSealer
from tests.unit.test_audit_vouched import (
    CATALOG,
    INTAKE_KEY,
    LINKING_KEY,
    Row,
    random_value,
    run,
    streams,
    tampered,
)

PICKED = (("cn.leadbus.CaseUpdated", _CASE_HEAD), ("cn.leadbus.HandoverStep", _STEP_HEAD),
          ("cn.leadbus.LeadAccepted", ACCEPTED_HEAD), ("cn.leadbus.LeadAccepted", ACCEPTED_REVISION))


@contextmanager
def python_alone() -> Iterator[None]:
    """In the block, every picker made is the Python one and stage seals are linked in Python (the extensions left
    unused), as without `make install`."""
    saved, saved_link, saved_run = native_picker.NATIVE, stage_seals_module.quick_link, stage_seals_module.quick_run
    saved_trusted = stage_seals_module.trusted_run
    native_picker.NATIVE = False
    stage_seals_module.quick_link = stage_seals_module.quick_run = stage_seals_module.trusted_run = None
    picker._PICKERS.clear()
    verification_module._LAST_PICKER[:] = [None, None, None]
    try:
        yield
    finally:
        native_picker.NATIVE, stage_seals_module.quick_link = saved, saved_link
        stage_seals_module.quick_run, stage_seals_module.trusted_run = saved_run, saved_trusted
        picker._PICKERS.clear()
        verification_module._LAST_PICKER[:] = [None, None, None]


def outcome(pick: Any, data: bytes) -> Any:
    try:
        return ("values", pick(data))
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        return ("refused", type(exc), str(exc))


def test_the_native_picker_and_seal_link_are_built_and_in_use() -> None:
    """`make install` compiles `leadbus.audit._picker` and `_seal_link`; the replay's pickers of the bus's topics are
    the C ones, and the stage seals' check links in C."""
    from leadbus.audit._picker import Picker
    from leadbus.audit._seal_link import quick_link

    assert native_picker.NATIVE
    assert stage_seals_module.quick_link is quick_link
    for name, paths in PICKED:
        made = picker.picker(CATALOG.latest(name), paths)
        assert isinstance(made, Picker), name
        assert made.fallback is not None


def damaged(rng: random.Random, value: bytes) -> bytes:
    data = bytearray(value)
    how = rng.randrange(4)
    if how == 0:
        return bytes(data[:rng.randrange(len(data) + 1)])  # cut anywhere, the header too
    if how == 1:
        return bytes(data) + rng.randbytes(rng.randrange(1, 5))  # trailing bytes
    for _ in range(rng.choice([1, 1, 3])):
        at = rng.randrange(10, len(data)) if len(data) > 10 else 0
        if how == 2:
            data[at] = rng.choice([0, 1, 2, 3, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        else:
            data[at:at] = rng.randbytes(rng.choice([1, 3]))
    return bytes(data)


def test_the_native_and_python_pickers_agree_on_random_and_damaged_bodies_of_every_version() -> None:
    rng = random.Random(12)
    compared = refused = 0
    for name, paths in PICKED:
        for schema in CATALOG.versions(name):
            with python_alone():
                reference = picker.picker(schema, paths)
            made = picker.picker(schema, paths)
            assert (made is None) == (reference is None), (name, schema.version)
            if made is None or reference is None:
                continue
            for _ in range(60):
                body = io.BytesIO()
                schemaless_writer(body, schema.parsed, random_value(rng, schema.parsed))
                value = b"\xc3\x01" + schema.fingerprint + body.getvalue()
                for data in (value, damaged(rng, value), damaged(rng, value)):
                    got = outcome(made, data)
                    assert got == outcome(reference, data), (name, schema.version, data)
                    compared += 1
                    refused += got[0] == "refused"
    assert compared > 1000 and refused > 100, (compared, refused)


def test_the_native_picker_agrees_on_every_cut_and_every_flipped_byte_of_a_body() -> None:
    accepted, cases, _ = streams()
    for rows, paths in ((accepted, ACCEPTED_HEAD), (cases, _CASE_HEAD)):
        value = rows[0][3]
        assert value is not None
        schema, _ = decode(CATALOG, value)
        made = picker.picker(schema, paths)
        with python_alone():
            reference = picker.picker(schema, paths)
        for end in range(len(value) + 1):
            assert outcome(made, value[:end]) == outcome(reference, value[:end]), end
        for at in range(len(value)):
            for bits in (0x01, 0x80, 0xFF):
                data = value[:at] + bytes([value[at] ^ bits]) + value[at + 1:]
                assert outcome(made, data) == outcome(reference, data), (at, bits)


def test_the_native_picker_hands_long_varints_and_odd_input_to_the_python_picker() -> None:
    """Lengths, counts and numbers of ten bytes (which the C reader leaves to Python), a bytearray, an int that
    overflows 32 bits: the same outcome as the Python picker's."""

    def z(n: int) -> bytes:
        v, out = (n << 1) ^ (n >> 127), bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    entry = SchemaCatalog().add({"type": "record", "name": "cn.leadbus.test.Native", "fields": [
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "n", "type": "long"},
        {"name": "small", "type": "int"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "flag", "type": "boolean"},
        {"name": "maybe", "type": ["string", "null"]},
        {"name": "raw", "type": "bytes"}]})
    paths = ("n", "small", "kind", "flag", "maybe", "raw")
    made = picker.picker(entry, paths)
    with python_alone():
        reference = picker.picker(entry, paths)
    from leadbus.audit._picker import Picker

    assert isinstance(made, Picker)
    head = b"\xc3\x01" + entry.fingerprint
    bodies = [
        z(1) + z(1) + b"a" + z(0) + z(2**62) + z(-5) + z(1) + b"\x01" + b"\x00" + z(1) + b"x" + z(0),
        z(1) + z(1) + b"a" + z(0) + z(-2**63) + z(7) + z(0) + b"\x00" + b"\x02" + z(0),  # ten-byte long, null
        z(-1) + z(1) + z(1) + b"a" + z(0) + z(3) + z(2**31) + z(0) + b"\x00" + b"\x02" + z(0),  # int overflow
        z(1) + z(1) + b"a" + z(0) + z(3) + z(0) + z(2) + b"\x00" + b"\x02" + z(0),  # an enum index past the symbols
        z(1) + z(1) + b"a" + z(0) + z(3) + z(0) + z(0) + b"\x02" + b"\x02" + z(0),  # a boolean byte of 2
        z(1) + b"\x80" * 9 + b"\x00" + z(0) + z(3) + z(0) + z(0) + b"\x00" + b"\x02" + z(0),  # an over-long length
        z(1) + z(1) + b"a" + z(0) + z(3) + z(0) + z(0) + b"\x00" + b"\x00" + z(2) + b"\xff\xfe" + z(0),  # not UTF-8
        z(1) + z(1) + b"a" + z(0) + z(3) + z(0) + z(0) + b"\x00" + b"\x04" + z(0),  # a union index past its branches
    ]
    for body in bodies:
        for data in (head + body, head + body[:-1], head + body + b"\x00"):
            assert outcome(made, data) == outcome(reference, data), data
    assert outcome(made, bytearray(head + bodies[0])) == outcome(reference, bytearray(head + bodies[0]))
    with pytest.raises(TypeError):
        made(head, head)  # type: ignore[call-arg]


def sealed_again(rows: tuple[Row, ...], key: Any, signer: str, chain: str, rng: random.Random) -> list[Row]:
    """`rows` with some bodies made hostile (cut, trailing bytes, bytes flipped) and sealed by the stage as they are:
    a signature vouches for them, so the replay reads them by the picker."""
    sealer = StageSealer(signer, key, chain)
    bare = [(t, p, k, damaged(rng, v) if v and rng.random() < 0.3 else v,
             [(n, h) for n, h in headers if n not in STAGE_SEAL_NAMES]) for t, p, k, v, headers in rows]
    out: list[Row] = []
    for start in range(0, len(bare), 7):
        batch: list[Any] = bare[start:start + 7]
        out += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(batch, sealer.seal(batch), strict=True)]
        sealer.commit()
    return sorted(out, key=lambda r: r[1])


def test_the_replay_loop_gives_the_same_findings_summary_and_trust_with_the_native_picker_or_without() -> None:
    accepted, cases, registry = streams()
    rng = random.Random(1212)
    streams_run: list[list[Row]] = [list(accepted), list(cases)]
    streams_run += [sealed_again(accepted, INTAKE_KEY, "LEADBUS-intake", "00000000000000c1", rng) for _ in range(4)]
    streams_run += [sealed_again(cases, LINKING_KEY, "LEADBUS-linking", "00000000000000c2", rng) for _ in range(4)]
    streams_run += [tampered(rng, list(s), s) for s in (accepted, cases) for _ in range(10)]
    failing = 0
    for rows in streams_run:
        native = run(rows, registry, vouching=True)
        with python_alone():
            reference = run(rows, registry, vouching=True)
        assert native == reference
        failing += any(f.failure for f in native[0])
    assert failing >= 20  # the hostile streams were judged (not all read whole and passed)


def test_optional_fields_and_string_arrays_passed_over_in_one_op_agree_with_the_python_picker() -> None:
    """A union of null and a value of one skip (a string, a long, a double, null first or second) is one op of the
    C program, and an array of strings is passed over without a nested run per item: on every union byte, short and
    long lengths, arrays in blocks with sizes, cut and flipped bytes, the same outcome as the Python picker's."""

    def z(n: int) -> bytes:
        v, out = (n << 1) ^ (n >> 127), bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    entry = SchemaCatalog().add({"type": "record", "name": "cn.leadbus.test.Optional", "fields": [
        {"name": "s", "type": ["null", "string"]},
        {"name": "n", "type": ["long", "null"]},
        {"name": "d", "type": ["null", "double"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "b", "type": ["bytes", "null"]},
        {"name": "wanted", "type": "string"}]})
    program = native_picker._Program()
    program.skip(entry.parsed)
    assert program.ops == [native_picker._OPT_SIZED, 0, native_picker._OPT_VARINT, 1, native_picker._OPT_FIXED, 0, 8,
                           native_picker._ARRAY, 2, native_picker._SIZED, native_picker._END,
                           native_picker._OPT_SIZED, 1, native_picker._SIZED]
    paths = ("wanted",)
    made = picker.picker(entry, paths)
    with python_alone():
        reference = picker.picker(entry, paths)
    from leadbus.audit._picker import Picker

    assert isinstance(made, Picker)
    head = b"\xc3\x01" + entry.fingerprint
    long_text = z(200) + b"y" * 200  # a length of two bytes
    nulls = z(1) + z(0) + z(0) + z(1) + z(1) + b"w"  # what follows `s`: n, d, tags, b null or empty; `wanted`
    bodies = [
        z(1) + z(1) + b"a" + z(0) + z(2**62) + z(1) + b"\x00" * 8 + z(2) + z(1) + b"a" + long_text + z(0) + z(0)
        + long_text + z(1) + b"w",
        z(0) + nulls,  # every optional null
        z(1) + long_text + z(1) + z(0) + z(-2) + z(4) + z(1) + b"a" + z(1) + b"b" + z(0) + z(1) + z(1) + b"w",  # a
        # block with its size
        z(2) + nulls,  # a union index past its branches
        b"\x01" + nulls,  # an odd union index
        b"\x80\x00" + nulls,  # an index of two bytes
        z(1) + z(-1) + nulls,  # a negative length
        z(1) + z(5) + b"ab",  # a length past the bytes
        z(0) + z(0) + b"\xff" * 12 + b"\x01" + z(0) + z(0) + z(1) + z(1) + b"w",  # a long of many bytes
        z(0) + z(1) + z(1) + b"\x00" * 7,  # a double cut short
        z(0) + z(1) + z(0) + z(3) + z(1) + b"a" + z(1) + b"b" + z(0) + z(1) + z(1) + b"w",  # fewer items than counted
        z(0) + z(1) + z(0) + z(1) + b"\x80" * 9 + b"\x01" + z(0) + z(1) + z(1) + b"w",  # an item's ten-byte length
    ]
    rng = random.Random(14)
    compared = refused = 0
    for body in bodies:
        value = head + body
        cases = [value, value[:-1], value + b"\x00", *(value[:end] for end in range(10, len(value)))]
        for _ in range(40):
            at = rng.randrange(10, len(value))
            cases.append(value[:at] + bytes([rng.choice([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF])]) + value[at + 1:])
        for data in cases:
            got = outcome(made, data)
            assert got == outcome(reference, data), data
            compared += 1
            refused += got[0] == "refused"
    assert compared > 500 and refused > 100 and compared - refused > 100, (compared, refused)


def test_the_strings_a_picker_keeps_give_the_python_pickers_values_whatever_comes_next() -> None:
    """The C picker gives again a short ASCII string it read before when the same bytes come (a publisher's agency
    and province, record after record): over a hostile sequence (the same bytes, the same length but other bytes, a
    prefix, a longer string, non-ASCII, not UTF-8 where an ASCII string of that length is kept, empty, 16 and 17
    bytes, a NUL, cut bodies, then hundreds of strings sharing the kept places) each outcome is the Python picker's,
    and a repeat is the very string kept."""

    def z(n: int) -> bytes:
        return bytes([(n << 1) ^ (n >> 63)]) if -64 <= n < 64 else bytes([((n << 1) & 0x7F) | 0x80, n >> 6])

    def text(raw: bytes) -> bytes:
        return z(len(raw)) + raw

    entry = SchemaCatalog().add({"type": "record", "name": "cn.leadbus.test.Kept", "fields": [
        {"name": "agency", "type": "string"}, {"name": "skip", "type": "string"},
        {"name": "province", "type": ["null", "string"]}]})
    made = picker.picker(entry, ("agency", "province"))
    with python_alone():
        reference = picker.picker(entry, ("agency", "province"))
    from leadbus.audit._picker import Picker

    assert isinstance(made, Picker)
    head = b"\xc3\x01" + entry.fingerprint
    sequence = [b"abc", b"abc", b"abd", b"ab", b"abcd", b"abc", "é".encode(), "é".encode(), b"ab", b"\xff\xfe",
                b"\xff\xfe", b"", b"", b"x" * 16, b"x" * 16, b"x" * 17, b"x" * 17, b"ab\x00", b"ab\x00", b"abc"]
    rng = random.Random(5)
    names = [bytes(rng.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(rng.randrange(1, 5)))
             for _ in range(300)] + ["é".encode(), b"\xe9", b"\xc3"]
    sequence += [rng.choice(names) for _ in range(3000)]
    kept_again = 0
    for k, raw in enumerate(sequence):
        province = [b"\x00", b"\x02" + text(raw)][k % 2]
        body = text(raw) + text(b"-") + province
        got = outcome(made, head + body)
        assert got == outcome(reference, head + body), raw
        if k and raw == sequence[k - 1] and got[0] == "values" and raw.isascii() and len(raw) <= 16:
            previous = made(head + text(raw) + text(b"-") + b"\x00")
            again = made(head + text(raw) + text(b"-") + b"\x00")
            assert again[0] is previous[0]  # the string kept, not one made again
            kept_again += 1
        for end in (len(head) + 1, len(head) + len(body) - 1):
            assert outcome(made, (head + body)[:end]) == outcome(reference, (head + body)[:end]), (raw, end)
    assert kept_again >= 5
