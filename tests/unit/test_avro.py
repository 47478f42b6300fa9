"""The event contract: fingerprints, single-object encoding, decoding errors, schema resolution."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from datetime import UTC, datetime

import fastavro
import pytest

from leadbus.avro import DecodeError, SchemaCatalog, crc64_avro, decode, encode, packaged_catalog
from leadbus.avro.codec import MAGIC
from leadbus.models import CaseLead

CASE_LEAD = "cn.leadbus.CaseLead"


def test_crc64_avro_matches_the_spec_and_fastavro() -> None:
    # Avro spec: fingerprint64 of an empty byte string is the EMPTY constant.
    assert crc64_avro(b"") == 0xC15D213AA4D7A795
    canonical = '"string"'
    ours = crc64_avro(canonical.encode()).to_bytes(8, "little").hex()
    assert ours == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")


def test_packaged_catalog_holds_the_three_contract_schemas() -> None:
    catalog = packaged_catalog()
    assert {"cn.leadbus.CaseLead", "cn.leadbus.LeadAccepted", "cn.leadbus.LeadRejected"} <= set(catalog.names())
    lead = catalog.latest(CASE_LEAD)
    names = [f["name"] for f in lead.source["fields"]]
    assert names == [
        "lead_id", "revision", "reported_at", "publisher", "channel", "category", "violation", "subject", "online",
        "payment_accounts", "waybills", "facts", "cross_border", "countries", "rights_holder", "handling",
        "share_with", "grading", "description", "evidence",
        # v2 (issue #15): the conduct period, prior penalties, R310 Art.3 ¶2
        "conduct_from", "conduct_to", "prior_penalties", "police_measures_needed",
        # v3 (issue #19): what analysts compare across reports, weak signals for suggested links
        "products", "senders", "return_addresses", "operator",
    ]
    assert [e.version for e in catalog.versions(CASE_LEAD)] == [1, 2, 3]


def test_single_object_encoding_header_and_round_trip(make_lead) -> None:
    catalog = packaged_catalog()
    entry = catalog.latest(CASE_LEAD)
    lead = CaseLead.model_validate(make_lead())
    data = encode(entry, lead.to_avro())
    assert data[:2] == MAGIC
    assert data[2:10] == crc64_avro(entry.canonical.encode()).to_bytes(8, "little")
    writer, record = decode(catalog, data, entry)
    assert writer is entry
    assert CaseLead.from_avro(record) == lead


def test_compiled_writer_is_byte_identical_to_fastavro(make_lead) -> None:
    entry = packaged_catalog().latest(CASE_LEAD)
    variants = [
        make_lead(),
        make_lead(**{"subject.address": None, "rights_holder": None, "facts": {}, "evidence": []}),
        make_lead(**{"cross_border": True, "countries": ["US", "DE"], "online.urls": []}),
    ]
    for raw in variants:
        record = CaseLead.model_validate(raw).to_avro()
        buf = io.BytesIO()
        buf.write(MAGIC + entry.fingerprint)
        fastavro.schemaless_writer(buf, entry.parsed, record)
        assert encode(entry, record) == buf.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "DECODE_EMPTY"),
        (b"hello world, not avro", "DECODE_NOT_AVRO"),
        (MAGIC + b"\x00" * 8 + b"\x02", "DECODE_UNKNOWN_SCHEMA"),
    ],
)
def test_undecodable_bytes_have_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode(packaged_catalog(), data)
    assert err.value.reason == reason


def test_truncated_and_trailing_bytes_are_reported(make_lead) -> None:
    catalog = packaged_catalog()
    entry = catalog.latest(CASE_LEAD)
    data = encode(entry, CaseLead.model_validate(make_lead()).to_avro())
    with pytest.raises(DecodeError) as err:
        decode(catalog, data[: len(data) // 2])
    assert err.value.reason in {"DECODE_TRUNCATED", "DECODE_CORRUPT"}
    with pytest.raises(DecodeError) as err:
        decode(catalog, data + b"\x00")
    assert err.value.reason == "DECODE_TRAILING_BYTES"


def test_wrong_record_type_is_reported(make_lead) -> None:
    catalog = packaged_catalog()
    rejected = catalog.latest("cn.leadbus.LeadRejected")
    data = encode(rejected, {
        "reason": "X", "message": "m", "field": None, "lead_id": None, "publisher_agency": None,
        "original": b"", "source": {"topic": "t", "partition": 0, "offset": 1},
        "rejected_at": datetime(2026, 1, 1, tzinfo=UTC),
    })
    with pytest.raises(DecodeError) as err:
        decode(catalog, data, catalog.latest(CASE_LEAD))
    assert err.value.reason == "DECODE_WRONG_TYPE"


def _evolved(source: dict) -> dict:
    """A compatible v2: a new optional field with a default and a new enum symbol."""
    v2 = copy.deepcopy(dict(source))
    v2["fields"].append({"name": "platform_ticket", "type": ["null", "string"], "default": None})
    for field in v2["fields"]:
        if field["name"] == "channel":
            field["type"]["symbols"].append("HOTLINE_12315")
    return v2


def test_old_reader_reads_new_writer_and_new_reader_reads_old(make_lead) -> None:
    catalog = packaged_catalog()
    v1 = catalog.latest(CASE_LEAD)
    v2 = SchemaCatalog().add(json.loads(json.dumps(_evolved(dict(v1.source)))), v1.version + 1)
    catalog.add(dict(v2.source), v1.version + 1)
    record = CaseLead.model_validate(make_lead(channel="COMPLAINT")).to_avro()

    new_bytes = encode(v2, {**record, "platform_ticket": "T-1", "channel": "HOTLINE_12315"})
    _, as_v1 = decode(catalog, new_bytes, v1)
    assert "platform_ticket" not in as_v1
    assert as_v1["channel"] == "OTHER"  # unknown symbol → the reader enum's default
    assert str(as_v1["lead_id"]) == record["lead_id"]

    old_bytes = encode(v1, record)
    _, as_v2 = decode(catalog, old_bytes, catalog.latest(CASE_LEAD))
    assert as_v2["platform_ticket"] is None
    assert as_v2["subject"]["name"] == record["subject"]["name"]


def test_object_writer_matches_the_dict_writer_on_simulated_leads() -> None:
    from datetime import timedelta

    from leadbus.avro import encode_object
    from leadbus.producers.simulator import TrafficGenerator

    entry = packaged_catalog().latest(CASE_LEAD)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for lead in TrafficGenerator(seed=9).leads(500, start, timedelta(seconds=1)):
        assert encode_object(entry, lead) == encode(entry, lead.to_avro())


#: (field type, value): hostile values for one field; the compiled writer must never write what fastavro refuses
_HOSTILE_FIELDS = [
    ("long", 2**63), ("long", -(2**63) - 1), ("long", 2**63 - 1), ("long", -(2**63)), ("long", 10**30),
    ("int", 2**31), ("long", True), ("long", "3"), ("long", None), ("long", [1]),
    (["null", "long"], 2**63), (["null", "long"], -(2**64)), (["null", "long"], "1"),
    ({"type": "long", "logicalType": "timestamp-millis"}, "2020-01-01"),
    ({"type": "long", "logicalType": "timestamp-millis"}, 2**63),
    ({"type": "array", "items": "long"}, [1, 2**63]), ({"type": "array", "items": "long"}, "ab"),
    ({"type": "map", "values": "long"}, {"a": 2**64}),
    ("string", b"bytes"), ("string", 3), ("string", None), ("string", "\ud800"), ("string", "ok \udfff"),
    ("string", "\U0001f4a5 fine"), (["null", "string"], "\udc80"), (["null", "string"], 3),
    ({"type": "array", "items": "string"}, ["ok", "\ud83d"]), ("bytes", "text"), ("double", "1"), ("float", None),
    ({"type": "enum", "name": "E", "symbols": ["A"]}, "B"), ({"type": "enum", "name": "E", "symbols": ["A"]}, None),
]


@pytest.mark.parametrize(("kind", "value"), _HOSTILE_FIELDS, ids=[f"{k}={v!r:.20}" for k, v in _HOSTILE_FIELDS])
def test_compiled_writer_refuses_what_fastavro_refuses(kind, value) -> None:
    from leadbus.avro import EncodeError

    catalog = SchemaCatalog()
    entry = catalog.add({"type": "record", "name": "Hostile", "namespace": "test",
                         "fields": [{"name": "f", "type": kind}]})
    assert entry.writer is not None  # the compiled writer is what is tested
    buf = io.BytesIO()
    try:
        fastavro.schemaless_writer(buf, entry.parsed, {"f": value})
    except Exception:  # noqa: BLE001 - whatever fastavro raises, the codec must refuse with EncodeError
        with pytest.raises(EncodeError):
            encode(entry, {"f": value})
    else:  # what fastavro writes, the compiled writer writes alike or refuses ("1" as 1.0): never other bytes
        with contextlib.suppress(EncodeError):
            assert encode(entry, {"f": value})[10:] == buf.getvalue()


def test_a_schema_with_arrays_and_maps_of_nulls_compiles_and_round_trips() -> None:
    # A schema met on leadbus.schemas may carry any legal shape: the generated writer once had an empty loop body
    # for items that take no byte (IndentationError from the catalog instead of a writer).
    catalog = SchemaCatalog()
    entry = catalog.add({"type": "record", "name": "Nulls", "namespace": "test.leadbus", "fields": [
        {"name": "a", "type": {"type": "array", "items": "null"}},
        {"name": "m", "type": {"type": "map", "values": "null"}},
        {"name": "n", "type": "null"}]})
    datum = {"a": [None, None, None], "m": {"x": None, "y": None}, "n": None}
    assert entry.writer is not None
    data = encode(entry, datum)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, entry.parsed, datum)
    assert data.endswith(body.getvalue())
    assert decode(catalog, data)[1] == datum


_BOUNDARY_NUMBERS = [0, 1, 63, 64, 65, 127, 128, 4095, 4096, 8191, 8192, 8193, 16383, 16384, 2**31 - 1, 2**63 - 1,
                     -1, -63, -64, -65, -8191, -8192, -8193, -(2**63)]


@pytest.mark.parametrize("value", _BOUNDARY_NUMBERS)
def test_compiled_writer_writes_numbers_and_lengths_at_every_varint_boundary_as_fastavro(value: int) -> None:
    # one byte below 64, two inlined below 8192, write_long beyond: the same bytes either side of each bound
    # (numbers, and the lengths of strings and bytes)
    catalog = SchemaCatalog()
    entry = catalog.add({"type": "record", "name": "Bounds", "namespace": "test", "fields": [
        {"name": "i", "type": "int" if -(2**31) <= value < 2**31 else "long"}, {"name": "l", "type": "long"},
        {"name": "n", "type": ["null", "long"]}, {"name": "s", "type": "string"}, {"name": "u", "type": "string"},
        {"name": "a", "type": {"type": "array", "items": "long"}}, {"name": "b", "type": "bytes"},
        {"name": "nb", "type": ["null", "bytes"]}]})
    assert entry.writer is not None
    length = abs(int(value)) % 20000
    datum = {"i": value, "l": value, "n": value, "s": "x" * length, "u": "中" * (length // 3),
             "a": [value, length, -length], "b": b"\xc3" * length, "nb": bytes(range(256)) * (length // 256)}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, entry.parsed, datum)
    assert encode(entry, datum)[10:] == body.getvalue()
    assert decode(catalog, encode(entry, datum))[1]["s"] == "x" * length


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
#: Milliseconds either side of where a zig-zag timestamp takes six varint bytes (2**34 ms: 1970-07; 2**41 ms:
#: 2039-09), the epoch, negative times, and the ends of a long.
_BOUNDARY_MILLIS = [0, 1, -1, 2**34 - 1, 2**34, 2**41 - 1, 2**41, 1_763_625_000_900, -(2**34), -(2**34) - 1,
                    2**63 - 1, -(2**63)]


def _times_at(millis: int) -> list[object]:
    """The ways a time of `millis` reaches a writer: the int, and as datetimes (UTC, another zone, naive, with
    microseconds the writer truncates) where a datetime can hold it."""
    from datetime import timedelta, timezone

    values: list[object] = [millis]
    with contextlib.suppress(OverflowError):
        utc = _EPOCH_UTC + timedelta(milliseconds=millis)
        values += [utc, utc.replace(microsecond=utc.microsecond + 999) if utc.microsecond < 999_000 else utc,
                   utc.astimezone(timezone(timedelta(hours=8))), utc.replace(tzinfo=None)]
    return values


@pytest.mark.parametrize("millis", _BOUNDARY_MILLIS)
def test_compiled_writer_writes_timestamps_at_every_varint_boundary_as_fastavro(millis: int) -> None:
    # six bytes written in one step, the rest by write_long; each site keeps the bytes of the time it wrote last
    catalog = SchemaCatalog()
    stamp = {"type": "long", "logicalType": "timestamp-millis"}
    entry = catalog.add({"type": "record", "name": "Stamps", "namespace": "test", "fields": [
        {"name": "t", "type": stamp}, {"name": "n", "type": ["null", stamp]}]})
    assert entry.writer is not None
    for value in _times_at(millis):
        for datum in ({"t": value, "n": value}, {"t": value, "n": None}, {"t": value, "n": value}):
            body = io.BytesIO()
            fastavro.schemaless_writer(body, entry.parsed, datum)
            assert encode(entry, datum)[10:] == body.getvalue(), (value, datum)


def test_a_timestamp_site_written_again_with_other_times_writes_each_its_own() -> None:
    # the bytes kept per site are the last object's: the same object again reuses them, an equal or other one not
    catalog = SchemaCatalog()
    entry = catalog.add({"type": "record", "name": "Stamp", "namespace": "test", "fields": [
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})
    now = datetime(2026, 11, 20, 9, 30, 0, 123000, tzinfo=UTC)
    later = datetime(2026, 11, 20, 9, 30, 0, 124000, tzinfo=UTC)
    sequence = [now, now, later, now, 5, 5, -5, now.replace(tzinfo=None), now]
    for value in sequence:
        body = io.BytesIO()
        fastavro.schemaless_writer(body, entry.parsed, {"t": value})
        assert encode(entry, {"t": value})[10:] == body.getvalue(), value
    from leadbus.avro import EncodeError

    with pytest.raises(EncodeError):  # nothing is kept for None: refused as before, never written as the last time
        encode(entry, {"t": None})


def test_a_schema_met_again_is_the_one_known_and_is_not_compiled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from leadbus.avro import catalog as catalog_module
    from leadbus.schema_topic import schema_record

    catalog = packaged_catalog()
    bodies = [json.loads(schema_record(entry)[1]) for entry in catalog]  # as `leadbus.schemas` holds them

    def never(*_: object, **__: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(catalog_module, "compile_writer", never)
    monkeypatch.setattr(catalog_module, "compile_reader", never)
    again = [catalog.add(body["schema"], int(body.get("version") or 0)) for body in bodies]
    assert again == list(catalog) and all(a is b for a, b in zip(again, catalog, strict=True))
