"""A replay reads the records a stage seal vouches for by the fields its checks use (issue #14): the same findings.

Sealed streams of `leadbus.leads.accepted` and `leadbus.cases` as the stages write them (intake's LeadAccepted, the
linking handler's CaseUpdated, sealed by `StageSealer` in transactions) are tampered with at random, as someone with
write access to the topics could, and replayed through the replay's loop twice: with the stage seal check vouching
(records it vouches for are `trusted` and read by the field picker) and without (every record read whole, as before).
The findings (sorted as a Kafka replay sorts them) and the summary must be the same.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit import replay as replay_module
from leadbus.audit.picker import picker
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import (
    ACCEPTED_HEAD,
    AcceptedLeads,
    Finding,
    ReplayRecord,
    standard_verifiers,
)
from leadbus.avro import decode, encode, encode_object, packaged_catalog
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Record, Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of
from leadbus.stage_seals import SIGNATURE_HEADER, STAGE_SEAL_NAMES, StageSealer, partition_for
from leadbus.topics import CASES, LEADS_ACCEPTED, intake_topic

CATALOG = packaged_catalog()
T0 = datetime(2026, 11, 1, tzinfo=UTC)
INTAKE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
LINKING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
CASE_PARTITIONS = 3
STAMP = int((T0 + timedelta(days=1)).timestamp() * 1000)

#: (topic, partition, Kafka key, value, headers) as a topic holds them, in partition order
Row = tuple[str, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


@cache
def streams() -> tuple[tuple[Row, ...], tuple[Row, ...], KeyRegistry]:
    """60 leads' LeadAccepted and the CaseUpdated the linking handler derives from them, sealed in transactions."""
    from leadbus.audit.rebuild import DictState
    from leadbus.processors.linking import LinkingHandler

    lead_schema, accepted_schema = CATALOG.latest("cn.leadbus.CaseLead"), CATALOG.latest("cn.leadbus.LeadAccepted")
    gen = TrafficGenerator(seed=14, same_suspect_share=0.5)
    accepted: list[tuple[bytes, bytes]] = []
    for i, lead in enumerate(gen.leads(60, T0, timedelta(seconds=30))):
        value = encode_object(lead_schema, lead)
        outcome = examine(value, Source(intake_topic(lead.publisher.agency), 0, i), CATALOG, T0 + timedelta(hours=1))
        assert isinstance(outcome, Acceptance)
        event = accepted_record(outcome, T0 + timedelta(hours=1))
        accepted.append((lead.lead_id.encode(), encode(accepted_schema, event)))
    handler, state = LinkingHandler(CATALOG), DictState()
    cases: list[Any] = []
    for i, (key, value) in enumerate(accepted):
        result = handler.handle(Record(LEADS_ACCEPTED, 0, i, key, value, (), STAMP), state, T0 + timedelta(hours=2))
        state.apply(result.state)
        cases.append([(o.topic, partition_for(o.key, CASE_PARTITIONS) if o.key else 0, o.key, o.value,
                       list(o.headers)) for o in result.outputs if o.topic == CASES])
    intake = StageSealer("LEADBUS-intake", INTAKE_KEY, "00000000000000c1")
    linking = StageSealer("LEADBUS-linking", LINKING_KEY, "00000000000000c2")
    accepted_rows: list[Row] = []
    case_rows: list[Row] = []
    for start in range(0, len(accepted), 7):  # transactions of 7 input records
        batch = [(LEADS_ACCEPTED, 0, k, v, []) for k, v in accepted[start:start + 7]]
        accepted_rows += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(batch, intake.seal(batch), strict=True)]
        intake.commit()
        outs = [o for rows in cases[start:start + 7] for o in rows]
        case_rows += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(outs, linking.seal(outs), strict=True)]
        linking.commit()
    registry = KeyRegistry()
    for sealer in (intake, linking):
        raw = sealer.public_key
        registry.apply(PublisherKey(sealer.signer, key_id_of(raw), raw, T0, T0, require_signed=False))
    return tuple(accepted_rows), tuple(sorted(case_rows, key=lambda r: r[1])), registry


def run(rows: list[Row], registry: KeyRegistry, *, vouching: bool) -> tuple[list[Finding], Counter[Any], int]:
    """The replay's loop over `rows` (offsets by partition) with every verifier; findings sorted as a Kafka replay's."""
    stage = StageSealVerifier(registry)
    stage.vouching = vouching
    verifiers = [*standard_verifiers(), stage]
    for verifier in verifiers:
        if isinstance(verifier, AcceptedLeads):
            verifier.trust_stage_seals = True
    offsets: Counter[tuple[str, int]] = Counter()
    records = []
    for topic, partition, key, value, headers in rows:
        records.append(ReplayRecord(topic, partition, offsets[(topic, partition)], STAMP, key, value, headers, CATALOG))
        offsets[(topic, partition)] += 1
    report = replay_module.ReplayReport("test")
    replay_module._loop(records, verifiers, None, None, None, report, None, None)
    replay_module.finish(verifiers, report)
    report.findings.sort(key=lambda f: (f.topic, f.partition, f.offset, f.check, f.message))
    return report.findings, report.by_type_publisher, sum(r.trusted for r in records)


def altered(rng: random.Random, value: bytes) -> bytes:
    """The event re-encoded with one field changed (a version, a case id, a digest …), or its bytes damaged."""
    how = rng.randrange(5)
    if how == 0:
        return value[:rng.randrange(10, len(value))]  # cut
    if how == 1:
        i = rng.randrange(10, len(value))
        return value[:i] + bytes([value[i] ^ (1 << rng.randrange(8))]) + value[i + 1:]  # a bit flipped
    if how == 2:
        return value + rng.randbytes(rng.randrange(1, 4))  # trailing bytes
    schema, event = decode(CATALOG, value)
    if schema.name == "cn.leadbus.CaseUpdated":
        field = rng.choice(["version", "case_id", "merged_into"])
        event[field] = {"version": event["version"] + rng.choice([-1, 1, 5]), "case_id": "CASE-FORGED",
                        "merged_into": None if event["merged_into"] else "CASE-OTHER"}[field]
    else:
        field = rng.choice(["digest", "revision", "source"])
        if field == "digest":
            event["digest"] = "0" * 64
        elif field == "revision":
            event["lead"]["revision"] += 1
        else:
            event["source"]["offset"] += 1
    return encode(schema, event)


def tampered(rng: random.Random, rows: list[Row], others: tuple[Row, ...]) -> list[Row]:
    out = list(rows)
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(out))
        topic, partition, key, value, headers = out[i]
        how = rng.randrange(9)
        if how == 0 and value:  # the body altered, the seal kept
            out[i] = (topic, partition, key, altered(rng, value), headers)
        elif how == 1:  # dropped
            del out[i]
        elif how == 2 and i + 1 < len(out) and out[i + 1][1] == partition:  # swapped with the next
            out[i], out[i + 1] = out[i + 1], out[i]
        elif how == 3:  # replayed
            out.insert(rng.randrange(i, len(out) + 1), out[i])
        elif how == 4:  # the seal removed
            out[i] = (topic, partition, key, value, [(n, v) for n, v in headers if n not in STAGE_SEAL_NAMES])
        elif how == 5:  # the signature removed
            out[i] = (topic, partition, key, value, [(n, v) for n, v in headers if n != SIGNATURE_HEADER])
        elif how == 6:  # a seal header damaged
            j = rng.randrange(len(headers)) if headers else 0
            if headers:
                name, old = headers[j]
                out[i] = (topic, partition, key, value, [*headers[:j], (name, rng.choice(
                    [None, b"", rng.randbytes(len(old or b"x"))])), *headers[j + 1:]])
        elif how == 7:  # another record of the same kind put in its place, its seal kept
            other = rng.choice(others)
            out[i] = (topic, partition, key, other[3], headers)
        else:  # the Kafka key changed
            out[i] = (topic, partition, b"CASE-ELSEWHERE", value, headers)
    return out


def test_untampered_streams_are_read_by_their_fields_and_verify() -> None:
    accepted, cases, registry = streams()
    for rows in (list(accepted), list(cases)):
        fast, tally, trusted = run(rows, registry, vouching=True)
        full, full_tally, none_trusted = run(rows, registry, vouching=False)
        assert fast == full == [] and tally == full_tally
        assert trusted == len(rows) and none_trusted == 0  # the fast path was taken, every record vouched for


def test_randomly_tampered_sealed_streams_give_the_same_findings_read_by_fields_or_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    accepted, cases, registry = streams()
    rng = random.Random(1414)
    caught = changed = 0
    for round_ in range(160):
        source = accepted if round_ % 2 else cases
        rows = tampered(rng, list(source), source)
        changed += rows != list(source)  # (a swap across partitions, say, changes nothing: not counted)
        # sometimes few records may wait for a signature: the rest are let go and read whole
        monkeypatch.setattr(replay_module, "_HOLD_MAX", rng.choice([3, 20_000]))
        fast, tally, _ = run(rows, registry, vouching=True)
        full, full_tally, _ = run(rows, registry, vouching=False)
        assert fast == full, (round_, [f for f in fast if f not in full][:3], [f for f in full if f not in fast][:3])
        assert tally == full_tally, round_
        caught += any(f.failure for f in fast)
    # nearly every tampering is a failure (a swap of two records of one case may not be): counted over the rounds that
    # changed something, since how many do depends on the records' lengths (LeadAccepted v7: 151 of 160, 148 caught)
    assert changed > 140 and caught >= 0.97 * changed


def test_the_picker_reads_what_a_full_decode_reads() -> None:
    accepted, cases, _ = streams()
    for _, _, _, value, _ in accepted:
        assert value is not None
        schema, event = decode(CATALOG, value)
        pick = picker(schema, ACCEPTED_HEAD)
        assert pick is not None
        lead, source = event["lead"], event["source"]
        assert pick(value) == (lead["lead_id"], lead["revision"], lead["publisher"]["agency"],
                               lead["publisher"]["province"], event["digest"], source["topic"], source["partition"],
                               source["offset"], event["original"])
    for _, _, _, value, _ in cases:
        assert value is not None
        schema, event = decode(CATALOG, value)
        pick = picker(schema, ("case_id", "version", "merged_into"))
        assert pick is not None and pick(value) == (event["case_id"], event["version"], event["merged_into"])
    assert picker(schema, ("no_such_field",)) is None  # a writer schema without the field: read whole instead


def test_a_replay_without_verification_names_the_same_publishers() -> None:
    accepted, _, registry = streams()
    _, verified_tally, _ = run(list(accepted), registry, vouching=True)
    records = [ReplayRecord(t, p, i, STAMP, k, v, h, CATALOG) for i, (t, p, k, v, h) in enumerate(accepted)]
    report = replay_module.ReplayReport("test")
    replay_module._loop(records, [], None, None, None, report, None, None)
    assert report.by_type_publisher == verified_tally
    assert all(not r._decoded for r in records)  # the publisher read from the front, never the whole record


def random_value(rng: random.Random, schema: Any) -> Any:
    """A random value of a parsed Avro schema (for the picker's check against the full decode)."""
    if isinstance(schema, list):
        return random_value(rng, rng.choice(schema))
    kind = schema if isinstance(schema, str) else schema["type"]
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if kind == "null":
        return None
    if kind == "boolean":
        return rng.random() < 0.5
    if kind in ("int", "long"):
        if logical == "timestamp-millis":
            return T0 + timedelta(milliseconds=rng.randrange(-10**10, 10**10))
        if logical == "date":
            return (T0 + timedelta(days=rng.randrange(-3000, 3000))).date()
        return rng.randrange(-2**31, 2**31) if kind == "int" else rng.randrange(-2**63, 2**63)
    if kind in ("float", "double"):
        return float(rng.randrange(-1000, 1000))
    if kind == "string":
        return "".join(rng.choice("ab案件线索 -_09") for _ in range(rng.choice([0, 1, 5, 70, 200])))
    if kind == "bytes":
        return rng.randbytes(rng.choice([0, 3, 200]))
    if kind == "fixed":
        return rng.randbytes(schema["size"])
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [random_value(rng, schema["items"]) for _ in range(rng.choice([0, 1, 3, 70]))]
    if kind == "map":
        return {f"k{i}": random_value(rng, schema["values"]) for i in range(rng.choice([0, 2, 70]))}
    if kind == "record":
        return {f["name"]: random_value(rng, f["type"]) for f in schema["fields"]}
    raise AssertionError(kind)


def _at_paths(event: dict[str, Any], paths: tuple[str, ...]) -> tuple[Any, ...]:
    """The values at dotted `paths` of a decoded event, as the picker returns them."""
    values = []
    for path in paths:
        here: Any = event
        for part in path.split("."):
            here = here[part]
        values.append(here)
    return tuple(values)


def test_the_picker_reads_random_bodies_of_every_version_as_a_full_decode_does() -> None:
    import io

    from fastavro import schemaless_writer

    from leadbus.audit.verification import _CASE_HEAD, _STEP_HEAD

    rng = random.Random(7)
    for name, paths in (("cn.leadbus.CaseUpdated", _CASE_HEAD), ("cn.leadbus.HandoverStep", _STEP_HEAD),
                        ("cn.leadbus.LeadAccepted", ACCEPTED_HEAD)):
        for schema in CATALOG.versions(name):
            pick = picker(schema, paths)
            if pick is None:  # a version without one of the fields: such records are read whole
                continue
            for _ in range(40):
                body = io.BytesIO()
                schemaless_writer(body, schema.parsed, random_value(rng, schema.parsed))
                value = b"\xc3\x01" + schema.fingerprint + body.getvalue()
                _, event = decode(CATALOG, value)
                assert pick(value) == _at_paths(event, paths), (name, schema.version)


def test_the_picker_refuses_a_block_count_beyond_the_bytes_left_as_the_full_reader_does() -> None:
    """A hostile count in a field the picker passes over (an array of nulls-or-longs, a map) is refused at once, as
    `fastread` refuses it, instead of looping a quintillion times; an array of items that take no byte is not
    picked at all (the record is read whole)."""
    import time

    from leadbus.avro import SchemaCatalog

    catalog = SchemaCatalog()
    entry = catalog.add({"type": "record", "name": "cn.leadbus.test.Blocks", "fields": [
        {"name": "tags", "type": {"type": "array", "items": ["null", "long"]}},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "wanted", "type": "string"}]})
    pick = picker(entry, ("wanted",))
    assert pick is not None
    head = b"\xc3\x01" + entry.fingerprint
    assert pick(head + b"\x04\x02\x06\x00\x00" + b"\x02\x02a\x02b\x00" + b"\x02z") == ("z",)  # [3, None], {a: b}
    huge = b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # the largest positive zig-zag long
    began = time.process_time()
    for body in (huge + b"\x00", b"\x00" + huge + b"\x00", b"\x01\x02\x00\x02z"):  # the last: a negative count
        with pytest.raises(ValueError):  # fastread's Unreadable
            pick(head + body)
    assert time.process_time() - began < 5  # refused at the count, not after walking it

    # An array whose items take no byte (nulls): a count of 2**62 would loop for ever over nothing. (The catalog's
    # writer compiler fails on such a schema, so the entry is made by hand: the picker reads its fingerprint and form.)
    from types import SimpleNamespace

    import fastavro

    parsed = fastavro.parse_schema({"type": "record", "name": "cn.leadbus.test.Empty", "fields": [
        {"name": "nothing", "type": {"type": "array", "items": "null"}}, {"name": "wanted", "type": "string"}]})
    empty: Any = SimpleNamespace(fingerprint=b"\x01" * 8, parsed=parsed, name="cn.leadbus.test.Empty")
    assert picker(empty, ("wanted",)) is None  # not picked: the record is read whole


def test_the_picker_on_damaged_bodies_refuses_them_or_reads_what_a_full_decode_reads() -> None:
    """Bodies of every version with bytes flipped, cut or inserted (as a hostile writer could, were it ever handed bytes
    no seal vouched for): the picker either refuses (the caller then reads the record whole, which judges it) or gives
    the values the full decode gives of the same bytes, when that decode reads them — never other values, never a hang.
    """
    import io

    from fastavro import schemaless_writer

    from leadbus.audit.verification import _CASE_HEAD, _STEP_HEAD
    from leadbus.avro import DecodeError

    rng = random.Random(23)
    agreed = refused = 0
    for name, paths in (("cn.leadbus.CaseUpdated", _CASE_HEAD), ("cn.leadbus.HandoverStep", _STEP_HEAD),
                        ("cn.leadbus.LeadAccepted", ACCEPTED_HEAD)):
        for schema in CATALOG.versions(name):
            pick = picker(schema, paths)
            if pick is None:
                continue
            for _ in range(30):
                body = io.BytesIO()
                schemaless_writer(body, schema.parsed, random_value(rng, schema.parsed))
                data = bytearray(body.getvalue())
                for _ in range(rng.choice([1, 1, 3])):
                    at = rng.randrange(len(data))
                    what = rng.random()
                    if what < 0.8:
                        data[at] = rng.choice([0, 1, 2, 3, 0x7F, 0x80, 0xFF, rng.randrange(256)])
                    elif what < 0.9:
                        del data[at:at + rng.choice([1, 4, 50])]
                    else:
                        data[at:at] = rng.randbytes(rng.choice([1, 3]))
                value = b"\xc3\x01" + schema.fingerprint + bytes(data)
                try:
                    got = pick(value)
                except Exception:  # noqa: BLE001 - refused: `ReplayRecord.picked` then reads the record whole
                    refused += 1
                    continue
                try:
                    _, event = decode(CATALOG, value)
                except DecodeError:
                    continue  # the bytes do not decode whole (the picker stops at its last field): the seal decides
                assert got == _at_paths(event, paths), (name, schema.version)
                agreed += 1
    assert agreed > 40 and refused > 40, (agreed, refused)


def _zigzag(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def test_the_picker_passes_over_blocks_long_lengths_and_numbers_in_a_row_as_a_full_decode_reads_them() -> None:
    """What the picker passes over by table (one-byte counts and lengths) and by the general reads (negative counts
    with block sizes, several blocks, counts and lengths of two bytes and more, an over-long zero count, timestamps in a
    row): the wanted field read as fastavro reads it; and bytes damaged before it are refused or read as fastavro
    reads them, never otherwise."""
    import io

    import fastavro

    from leadbus.avro import SchemaCatalog

    entry = SchemaCatalog().add({"type": "record", "name": "cn.leadbus.test.Passed", "fields": [
        {"name": "names", "type": {"type": "array", "items": "string"}},
        {"name": "pairs", "type": {"type": "array", "items": {"type": "record", "name": "Pair", "fields": [
            {"name": "kind", "type": "string"}, {"name": "value", "type": "bytes"}]}}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "first", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "count", "type": "int"},
        {"name": "last", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "wanted", "type": ["null", "string"]},
        {"name": "after", "type": "string"}]})
    pick = picker(entry, ("wanted",))
    assert pick is not None
    head = b"\xc3\x01" + entry.fingerprint

    def string(text: str | bytes) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return _zigzag(len(raw)) + raw

    def blocks(items: list[bytes], rng: random.Random) -> bytes:
        """`items` (encoded) in blocks as a writer may cut them: plain counts, negative counts with sizes, and a zero
        count of one byte or of two (over-long)."""
        out, i = bytearray(), 0
        while i < len(items):
            take = rng.randint(1, len(items) - i)
            chunk = b"".join(items[i:i + take])
            out += (_zigzag(-take) + _zigzag(len(chunk))) if rng.random() < 0.4 else _zigzag(take)
            out += chunk
            i += take
        return bytes(out) + (b"\x80\x00" if rng.random() < 0.2 else b"\x00")

    def full(data: bytes) -> Any:
        buf = io.BytesIO(data)
        buf.seek(10)
        return fastavro.schemaless_reader(buf, entry.parsed, None)

    rng = random.Random(3)
    refused = 0
    for _ in range(400):
        sizes = [0, 1, 5, 63, 64, 200, 9000]
        names = [string("名" * rng.choice(sizes)) for _ in range(rng.choice([0, 1, 3, 63, 64, 150]))]
        pairs = [string("k" * rng.choice(sizes)) + string(rng.randbytes(rng.choice(sizes)))
                 for _ in range(rng.choice([0, 1, 2, 70]))]
        tags = [string(f"t{i}") + string("v" * rng.choice(sizes)) for i in range(rng.choice([0, 2, 65]))]
        wanted = rng.choice([None, "CASE-" + "x" * rng.choice(sizes)])
        body = (blocks(names, rng) + blocks(pairs, rng) + blocks(tags, rng)
                + _zigzag(rng.choice([1_764_000_000_000, 5, -3])) + _zigzag(rng.choice([0, 7, 2**31 - 1]))
                + _zigzag(rng.choice([1_764_000_000_000, 0]))
                + (b"\x00" if wanted is None else b"\x02" + string(wanted)) + string("after"))
        assert pick(head + body) == (wanted,) == (full(head + body)["wanted"],)
        damaged = bytearray(head + body)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(10, len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[:rng.randrange(10, len(damaged))]
        try:
            got = pick(bytes(damaged))
        except Exception:  # noqa: BLE001 - refused: the caller reads the record whole, which judges it
            refused += 1
            continue
        try:
            expected = full(bytes(damaged))
        except Exception:  # noqa: BLE001 - damage past the wanted field, or in a value passed over by its length
            continue
        assert got == (expected["wanted"],)
    assert refused > 50
