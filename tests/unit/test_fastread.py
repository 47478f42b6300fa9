"""The compiled Avro reader (issue #16) reads what fastavro reads, and never accepts what fastavro refuses."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta

import fastavro
import pytest

from leadbus.avro import DecodeError, encode, packaged_catalog
from leadbus.avro.codec import HEADER_SIZE, decode
from leadbus.avro.fastread import compile_reader, read_long_rest
from leadbus.producers.simulator import TrafficGenerator

CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
START = datetime(2026, 11, 1, tzinfo=UTC)


def _fastavro(entry, data: bytes):  # type: ignore[no-untyped-def]
    buf = io.BytesIO(data)
    buf.seek(HEADER_SIZE)
    record = fastavro.schemaless_reader(buf, entry.parsed, None)
    return record, buf.tell()


def test_every_packaged_schema_compiles() -> None:
    missing = [f"{e.name} v{e.version}" for e in CATALOG if e.reader is None]
    assert not missing


def test_simulated_leads_read_as_fastavro_reads_them() -> None:
    leads = list(TrafficGenerator(seed=21, same_suspect_share=0.3).leads(400, START, timedelta(seconds=3)))
    for lead in leads:
        data = encode(LEAD, lead.to_avro())
        assert LEAD.reader is not None
        record, end = LEAD.reader(data, HEADER_SIZE)
        expected, expected_end = _fastavro(LEAD, data)
        assert (record, end) == (expected, expected_end)
        assert repr(record) == repr(expected)  # same types too (datetime, date, bool, bytes)


def test_large_values_blocks_and_unions() -> None:
    entry = CATALOG.add({"type": "record", "name": "Probe", "namespace": "test.fastread", "fields": [
        {"name": "n", "type": "long"}, {"name": "i", "type": "int"}, {"name": "f", "type": "float"},
        {"name": "d", "type": "double"}, {"name": "b", "type": "bytes"}, {"name": "ok", "type": "boolean"},
        {"name": "m", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "a", "type": {"type": "array", "items": "string"}},
        {"name": "t", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    ]})
    assert entry.reader is not None
    for n in (0, 1, -1, 63, 64, -65, 2**31, -(2**63), 2**63 - 1):
        record = {"n": n, "i": -(2**31), "f": 1.5, "d": -2.25, "b": bytes(range(256)) * 3, "ok": n > 0,
                  "m": {"x": n, "y": None}, "a": ["长" * 70, "", "a"] * 30,
                  "t": START + timedelta(milliseconds=n % 10**12), "day": START.date()}
        buf = io.BytesIO()
        buf.write(b"\xc3\x01" + entry.fingerprint)
        fastavro.schemaless_writer(buf, entry.parsed, record)
        data = buf.getvalue()
        assert entry.reader(data, HEADER_SIZE) == _fastavro(entry, data)
    # a writer may split an array in blocks with a negative count and a byte size
    blocked = b"\xc3\x01" + entry.fingerprint + bytes([0, 0]) + b"\x00" * 12 + bytes([0, 0, 0]) + \
        bytes([3, 4]) + b"\x02a\x02b" + bytes([1, 2]) + b"\x02c" + bytes([0, 0, 0])
    assert entry.reader(blocked, HEADER_SIZE) == _fastavro(entry, blocked)
    assert entry.reader(blocked, HEADER_SIZE)[0]["a"] == ["a", "b", "c"]


def test_over_long_varint_is_left_to_fastavro() -> None:
    with pytest.raises(ValueError):
        read_long_rest(b"\xff" * 12, 0, 0xFF)


def _damaged(rng: random.Random, data: bytes, flips: int, cut_share: float) -> bytes:
    """`data` with 1 to `flips` body bytes overwritten at random, and cut short at random in `cut_share` of calls."""
    damaged = bytearray(data)
    for _ in range(rng.randint(1, flips)):
        damaged[rng.randrange(HEADER_SIZE, len(damaged))] = rng.randrange(256)
    if rng.random() < cut_share:
        damaged = damaged[: rng.randrange(HEADER_SIZE, len(damaged))]
    return bytes(damaged)


def test_damaged_bytes_decode_as_fastavro_decides() -> None:
    """Fuzz: every damaged event either decodes to fastavro's record or fails with the error it names."""
    rng = random.Random(16)
    leads = list(TrafficGenerator(seed=5).leads(60, START, timedelta(seconds=3)))
    for lead in leads:
        data = encode(LEAD, lead.to_avro())
        for _ in range(40):
            blob = _damaged(rng, data, flips=4, cut_share=0.3)
            try:
                expected, end = _fastavro(LEAD, blob)
            except Exception:  # noqa: BLE001 - whatever fastavro raises, decode must refuse the bytes
                with pytest.raises(DecodeError):
                    decode(CATALOG, blob, LEAD)
                continue
            if end != len(blob):
                with pytest.raises(DecodeError) as err:
                    decode(CATALOG, blob, LEAD)
                assert err.value.reason == "DECODE_TRAILING_BYTES"
            else:
                assert decode(CATALOG, blob, LEAD)[1] == expected


def _without(record: dict, paths: frozenset[str], prefix: str = "") -> dict:
    out = {}
    for name, value in record.items():
        path = prefix + name
        if path in paths:
            continue
        out[name] = _without(value, paths, path + ".") if isinstance(value, dict) else value
    return out


def test_a_reader_dropping_fields_reads_the_rest_as_the_whole_reader_and_refuses_the_same_bytes() -> None:
    """`compile_reader(schema, dropped)` (the linking stage's reader of LeadAccepted): the record without those
    fields, and for damaged bytes the same refusal (an exception of the same kind) or the same end."""
    accepted = CATALOG.latest("cn.leadbus.LeadAccepted")
    dropped = frozenset({"lead.evidence", "lead.description", "lead.grading", "original", "seal", "source",
                         "identity.name_core", "accepted_at", "warnings"})
    reader = compile_reader(accepted.parsed, dropped)
    assert reader is not None and accepted.reader is not None
    rng = random.Random(17)
    from tests.unit.processors.linking_golden import NOW, _accepted

    leads = list(TrafficGenerator(seed=9, same_suspect_share=0.3).leads(40, NOW - timedelta(hours=3),
                                                                         timedelta(seconds=10)))
    checked = refused = with_evidence = 0
    for offset, lead in enumerate(leads):
        data = _accepted(lead.to_avro(), offset)
        whole, end = accepted.reader(data, HEADER_SIZE)
        assert reader(data, HEADER_SIZE) == (_without(whole, dropped), end)
        assert "evidence" not in reader(data, HEADER_SIZE)[0]["lead"] and "evidence" in whole["lead"]
        with_evidence += bool(whole["lead"]["evidence"])
        for _ in range(60):
            blob = _damaged(rng, data, flips=3, cut_share=0.2)
            try:
                expected = accepted.reader(blob, HEADER_SIZE)
            except Exception as exc:  # noqa: BLE001 - the dropping reader must refuse it with the same kind
                with pytest.raises(type(exc)):
                    reader(blob, HEADER_SIZE)
                refused += 1
                continue
            assert reader(blob, HEADER_SIZE) == (_without(expected[0], dropped), expected[1])
            checked += 1
    assert checked > 100 and refused > 100 and with_evidence > 5


_SYMBOLS = [f"S{i}" for i in range(70)]  # indexes of one varint byte (0-63) and of two (64-69)


@pytest.mark.parametrize("length", [0, 1, 62, 63, 64, 65, 8191, 8192])
def test_strings_and_enums_at_their_length_and_index_boundaries_read_as_fastavro_reads_them(length: int) -> None:
    # one-byte lengths and enum indexes are looked up in tables, the rest read in full: both sides of each bound,
    # ASCII and multi-byte text, and the same bytes cut short anywhere in the last value
    entry = CATALOG.add({"type": "record", "name": "Sized", "namespace": "test.fastread", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "Many", "symbols": _SYMBOLS}},
        {"name": "s", "type": "string"}, {"name": "u", "type": ["null", "string"]}, {"name": "b", "type": "bytes"},
        {"name": "few", "type": {"type": "enum", "name": "Few", "symbols": ["A", "B"]}}]})
    text = CATALOG.add({"type": "record", "name": "Text", "namespace": "test.fastread",
                        "fields": [{"name": "s", "type": "string"}]})
    assert entry.reader is not None and text.reader is not None
    for index in (0, 31, 63, 64, 69):
        record = {"e": _SYMBOLS[index], "s": "x" * length, "u": "长" * length, "b": b"\xff" * length,
                  "few": "B"}
        buf = io.BytesIO()
        buf.write(b"\xc3\x01" + entry.fingerprint)
        fastavro.schemaless_writer(buf, entry.parsed, record)
        data = buf.getvalue()
        assert entry.reader(data, HEADER_SIZE) == _fastavro(entry, data)
        for cut in range(max(HEADER_SIZE, len(data) - 4), len(data)):
            with pytest.raises(DecodeError):
                decode(CATALOG, data[:cut], entry)
    last = {"s": "x" * length}  # a string last, cut short: the compiled reader itself refuses it
    data = encode(text, last)
    assert text.reader(data, HEADER_SIZE) == (last, len(data))
    for cut in range(max(HEADER_SIZE, len(data) - 3), len(data)):
        with pytest.raises((ValueError, IndexError)):
            text.reader(data[:cut], HEADER_SIZE)
    # an enum index past the symbols in one byte (2 for Few's index 1 is fine, 4 is index 2): fastavro's verdict
    body = b"\xc3\x01" + entry.fingerprint + b"\x00" + b"\x00" + b"\x00" + b"\x00"
    for last in (b"\x02", b"\x04", b"\x01"):
        try:
            expected = _fastavro(entry, body + last)
        except Exception:  # noqa: BLE001 - whatever fastavro raises, decode must refuse the bytes
            with pytest.raises(DecodeError):
                decode(CATALOG, body + last, entry)
        else:  # the compiled reader leaves what it will not judge (index -1) to fastavro: its record stands
            assert decode(CATALOG, body + last, entry)[1] == expected[0]


@pytest.mark.parametrize("items", [0, 1, 63, 64, 65, 300])
def test_array_and_map_counts_at_their_varint_boundary_read_as_fastavro_reads_them(items: int) -> None:
    # a one-byte count (1-63) is looked up in SMALL_COUNT, a longer or negative one read in full; a count past the
    # bytes left is refused by the compiled reader whatever its form
    entry = CATALOG.add({"type": "record", "name": "Counted", "namespace": "test.fastread", "fields": [
        {"name": "a", "type": {"type": "array", "items": "long"}},
        {"name": "m", "type": {"type": "map", "values": "string"}}]})
    assert entry.reader is not None
    record = {"a": list(range(-items, items, 2)) if items else [], "m": {f"k{i}": "v" * i for i in range(items)}}
    data = encode(entry, record)
    assert entry.reader(data, HEADER_SIZE) == _fastavro(entry, data) == (record, len(data))
    header = data[:HEADER_SIZE]
    for count in (b"\x02", b"\x7e", b"\x80\x01", b"\x01\x02"):  # 1, 63, 64 items, and -1 with a block size of 1
        with pytest.raises((ValueError, IndexError)):
            entry.reader(header + count, HEADER_SIZE)  # no item follows
        with pytest.raises(DecodeError):
            decode(CATALOG, header + count, entry)


def _varint(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), b""
    while z >= 128:
        out, z = out + bytes([z & 127 | 128]), z >> 7
    return out + bytes([z])


@pytest.mark.parametrize("items", [1, 2, 31, 63, 64])
def test_a_negative_one_byte_block_count_is_read_and_passed_over_as_fastavro_reads_it(items: int) -> None:
    # a negative count of one byte (an odd byte under 128: -1 to -64) is not in SMALL_COUNT: the reader and the
    # skipper read it by one emitted form (`Compiler._counted_blocks`), then the block's size in bytes
    from leadbus.avro.fastread import Compiler

    entry = CATALOG.add({"type": "record", "name": "Blocked", "namespace": "test.fastread", "fields": [
        {"name": "a", "type": {"type": "array", "items": "long"}}, {"name": "z", "type": "long"}]})
    assert entry.reader is not None
    block = b"".join(_varint(i) for i in range(items))
    assert len(_varint(-items)) == 1
    data = encode(entry, {"a": [], "z": 0})[:HEADER_SIZE] + _varint(-items) + _varint(len(block)) + block + b"\x00\x06"
    expected = ({"a": list(range(items)), "z": 3}, len(data))
    assert entry.reader(data, HEADER_SIZE) == _fastavro(entry, data) == expected
    skipper = Compiler()
    skipper.emit(0, "def end_of(data, pos):")
    skipper.emit(1, "end = len(data)")
    skipper.skip(entry.parsed, 1)
    skipper.emit(1, "return pos")
    assert skipper.function("end_of")(data, HEADER_SIZE) == len(data)
