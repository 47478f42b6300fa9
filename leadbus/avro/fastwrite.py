"""A schema-specialised Avro binary writer, compiled once per schema.

fastavro's generic `schemaless_writer` walks the schema for every record and resolves every
union by validating the datum against each branch; for the bus's wide, mostly-optional
records that dominated the publisher's cost. This compiles a schema into one Python function
that writes the record straight into a bytearray. Output is byte-for-byte what fastavro writes
(a test holds it to that); schemas using constructs it does not cover return None, and the
codec falls back to fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime
from itertools import chain
from operator import itemgetter
from typing import Any

from leadbus.avro.fastread import nullable

Writer = Callable[[bytearray, Any], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Unsupported(Exception):
    pass


_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def write_long(out: bytearray, value: int) -> None:
    if not _LONG_MIN <= value <= _LONG_MAX:  # fastavro refuses what does not fit 64 bits: so do we
        raise OverflowError(f"{value} does not fit an Avro long")
    n = (value << 1) ^ (value >> 63)
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_string(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    write_long(out, len(data))
    out += data


def write_bytes(out: bytearray, value: bytes) -> None:
    write_long(out, len(value))
    out += value


class _EncodedStrings(dict[str, bytes]):
    """Strings as Avro writes them (length, then UTF-8), remembered: a case's `CaseUpdated` repeats its thousands of
    member ids, weak signals and waybills for every lead that joins it (issue #16), and ``b"".join(map(...))`` over
    this dict writes such an array without a Python step per known string. Emptied when full."""

    def __missing__(self, value: str) -> bytes:
        data = value.encode("utf-8")
        buf = bytearray()
        write_long(buf, len(data))
        buf += data
        encoded = bytes(buf)
        if len(self) >= ENCODED_STRINGS:
            self.clear()
        self[value] = encoded
        return encoded


#: Strings `_EncodedStrings` remembers at most (~100 B each).
ENCODED_STRINGS = 200_000
#: Arrays of strings at least this long are written through `_EncodedStrings`; shorter ones (a lead's own, mostly
#: never seen again) string by string.
LONG_ARRAY = 64
_ENCODED = _EncodedStrings()

_EPOCH_DAY = date(1970, 1, 1).toordinal()


def days_since_epoch(value: date | int) -> int:
    """Avro `date`: days since 1970-01-01."""
    return value if isinstance(value, int) else value.toordinal() - _EPOCH_DAY


def timestamp_millis(value: datetime | int) -> int:
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


#: Zig-zag timestamps (milliseconds, 2n) of 1971-02 to 2039-09: six varint bytes, written in one step.
_SIX_BYTES_LOW, _SIX_BYTES_HIGH = 1 << 35, 1 << 42
_NOTHING = object()  # what no value is: a timestamp site's memo before its first write


def write_timestamp(out: bytearray, value: datetime | int) -> None:
    """`write_long(out, timestamp_millis(value))` in one call: a UTC time of these decades (every event's) is
    written as its six varint bytes without the loop; any other value as `write_long` writes it."""
    if type(value) is datetime and value.tzinfo is UTC:
        delta = value - _EPOCH
        n = ((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000) << 1
        if _SIX_BYTES_LOW <= n < _SIX_BYTES_HIGH:
            out += bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14 & 0x7F | 0x80, n >> 21 & 0x7F | 0x80,
                          n >> 28 & 0x7F | 0x80, n >> 35))
            return
    write_long(out, timestamp_millis(value))


class _Compiler:
    def __init__(self, from_attributes: bool, object_records: frozenset[str] = frozenset()) -> None:
        self.from_attributes = from_attributes
        self.object_records = object_records
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "write_long": write_long,
            "write_string": write_string,
            "write_bytes": write_bytes,
            "timestamp_millis": timestamp_millis,
            "write_timestamp": write_timestamp,
            "days_since_epoch": days_since_epoch,
            "encoded_string": _ENCODED.__getitem__,
            "join": b"".join,
            "chain": chain.from_iterable,
            "pack_float": struct.Struct("<f").pack,
            "pack_double": struct.Struct("<d").pack,
            "str": str,
        }
        self.counter = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def value(self, schema: Any, expr: str, indent: int) -> None:
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        if kind == "null":
            self.emit(indent, "pass")  # nothing written; a statement still, as the body of an array's or map's loop
            return
        if kind == "boolean":
            self.emit(indent, f"out.append(1 if {expr} else 0)")
        elif kind in ("int", "long"):
            if logical == "timestamp-millis":
                # The bytes of the time last written here are kept with it: a stage stamps every event of a batch
                # with one `now` (`accepted_at`), the same object each time, written again from its bytes.
                # (One pair in a list, read and replaced whole: a writer shared by threads never mixes two pairs.)
                memo, kept, stamp, start = self.var("stamped"), self.var("kept"), self.var("t"), self.var("at")
                self.consts[memo] = [(_NOTHING, b"")]
                self.emit(indent, f"{stamp} = {expr}")
                self.emit(indent, f"{kept} = {memo}[0]")
                self.emit(indent, f"if {stamp} is {kept}[0]:")
                self.emit(indent + 1, f"out += {kept}[1]")
                self.emit(indent, "else:")
                self.emit(indent + 1, f"{start} = len(out)")
                self.emit(indent + 1, f"write_timestamp(out, {stamp})")
                self.emit(indent + 1, f"{memo}[0] = ({stamp}, bytes(out[{start}:]))")
            elif logical == "date":
                self.emit(indent, f"write_long(out, days_since_epoch({expr}))")
            elif logical is None:
                # Inlined for the usual small value (one byte, zig-zag 2n; two below 8192).
                number = self.var("n")
                self.emit(indent, f"{number} = {expr}")
                self.emit(indent, f"if 0 <= {number} < 64:")
                self.emit(indent + 1, f"out.append({number} << 1)")
                self._two_bytes(number, indent, f"64 <= {number} < 8192")
                self.emit(indent, "else:")
                self.emit(indent + 1, f"write_long(out, {number})")
            else:
                raise Unsupported(logical)
        elif kind == "float":
            self.emit(indent, f"out += pack_float({expr})")
        elif kind == "double":
            self.emit(indent, f"out += pack_double({expr})")
        elif kind == "string":
            # Inlined: most strings are short, and a call per string dominated the cost.
            data = self.var("s")
            source = f"str({expr})" if logical == "uuid" else expr
            self.emit(indent, f"{data} = {source}.encode('utf-8')")
            self._sized(data, indent)
        elif kind == "bytes":
            # Inlined as strings are (an accepted lead carries its original, ~1-2 kB: a two-byte length)
            data = self.var("b")
            self.emit(indent, f"{data} = {expr}")
            self._sized(data, indent)
        elif kind == "enum":
            table = self.var("enum")
            # Each symbol's index, already as its encoded bytes.
            encoded = {}
            for index, symbol in enumerate(schema["symbols"]):
                buf = bytearray()
                write_long(buf, index)
                encoded[symbol] = bytes(buf)
            self.consts[table] = encoded
            self.emit(indent, f"out += {table}[{expr}]")
        elif kind == "record":
            rec = self.var("r")
            self.emit(indent, f"{rec} = {expr}")
            outer = self.from_attributes
            self.from_attributes = outer or schema.get("name") in self.object_records
            for field in schema["fields"]:
                if self.from_attributes:
                    if not str(field["name"]).isidentifier():
                        raise Unsupported(field["name"])
                    sub = f"{rec}.{field['name']}"
                elif "default" in field:
                    dflt = self.var("default")
                    self.consts[dflt] = field["default"]
                    sub = f"{rec}.get({field['name']!r}, {dflt})"
                else:
                    sub = f"{rec}[{field['name']!r}]"
                self.value(field["type"], sub, indent)
            self.from_attributes = outer
        elif kind == "array":
            items = self.var("items")
            item = self.var("item")
            self.emit(indent, f"{items} = {expr}")
            self.emit(indent, f"if {items}:")
            self.emit(indent + 1, f"if len({items}) < 64:")
            self.emit(indent + 2, f"out.append(len({items}) << 1)")
            self.emit(indent + 1, "else:")
            self.emit(indent + 2, f"write_long(out, len({items}))")
            if schema["items"] == "string":  # a plain string: a long array through the remembered encodings
                self.emit(indent + 1, f"if len({items}) >= {LONG_ARRAY}:")
                self.emit(indent + 2, f"out += join(map(encoded_string, {items}))")
                self.emit(indent + 1, "else:")
                self.emit(indent + 2, f"for {item} in {items}:")
                self.value(schema["items"], item, indent + 3)
            elif (names := self._string_fields(schema["items"])) is not None:  # records of strings alone, likewise
                getter = self.var("fields")
                self.consts[getter] = itemgetter(*names)
                self.emit(indent + 1, f"if len({items}) >= {LONG_ARRAY}:")
                self.emit(indent + 2, f"out += join(map(encoded_string, chain(map({getter}, {items}))))")
                self.emit(indent + 1, "else:")
                self.emit(indent + 2, f"for {item} in {items}:")
                self.value(schema["items"], item, indent + 3)
            else:
                self.emit(indent + 1, f"for {item} in {items}:")
                self.value(schema["items"], item, indent + 2)
            self.emit(indent, "out.append(0)")
        elif kind == "map":
            items = self.var("items")
            key, val = self.var("k"), self.var("v")
            self.emit(indent, f"{items} = {expr}")
            self.emit(indent, f"if {items}:")
            self.emit(indent + 1, f"write_long(out, len({items}))")
            self.emit(indent + 1, f"for {key}, {val} in {items}.items():")
            self.emit(indent + 2, f"write_string(out, {key})")
            self.value(schema["values"], val, indent + 2)
            self.emit(indent, "out.append(0)")
        elif kind == "union":
            self.union(schema, expr, indent)
        else:
            raise Unsupported(str(kind))

    def _sized(self, data: str, indent: int) -> None:
        """`data` (bytes) with its length before it, a length under 8192 written inline."""
        self.emit(indent, f"if len({data}) < 64:")
        self.emit(indent + 1, f"out.append(len({data}) << 1)")
        self._two_bytes(f"len({data})", indent, f"len({data}) < 8192")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"write_long(out, len({data}))")
        self.emit(indent, f"out += {data}")

    def _two_bytes(self, number: str, indent: int, test: str) -> None:
        """The ``elif`` writing ``number`` as its two varint bytes when ``test`` says it is in [64, 8192) (zig-zag 2n
        < 2**14): long strings (a lead's description, linking's member record) and counts skip a call."""
        self.emit(indent, f"elif {test}:")
        self.emit(indent + 1, f"out.append((({number} << 1) & 0x7F) | 0x80)")
        self.emit(indent + 1, f"out.append({number} >> 6)")

    def _string_fields(self, schema: Any) -> list[str] | None:
        """The field names of a record (read as a mapping) of two or more plain strings without defaults, else None."""
        if not isinstance(schema, dict) or schema.get("type") != "record" or self.from_attributes \
                or schema.get("name") in self.object_records:
            return None
        fields = schema["fields"]
        if len(fields) < 2 or any(f["type"] != "string" or "default" in f for f in fields):
            return None
        return [f["name"] for f in fields]

    def union(self, branches: list[Any], expr: str, indent: int) -> None:
        # Only the nullable form ["null", X] / [X, "null"] is compiled; others fall back.
        form = nullable(branches)
        if form is None:
            raise Unsupported("general union")
        null_index, other = form
        val = self.var("u")
        self.emit(indent, f"{val} = {expr}")
        self.emit(indent, f"if {val} is None:")
        self.emit(indent + 1, f"out.append({2 * null_index})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"out.append({2 * (1 - null_index)})")
        self.value(other, val, indent + 1)


def compile_writer(parsed_schema: Any, *, from_attributes: bool = False,
                   object_records: frozenset[str] = frozenset()) -> Writer | None:
    """A writer for the (expanded, parsed) schema, or None when it uses unsupported constructs.

    With `from_attributes`, records are read as objects (`datum.field`, e.g. pydantic models
    mirroring the schema) instead of mappings, which spares building a dict per event;
    `object_records` names the record types read so (with all they contain) in an otherwise
    mapping-shaped datum (a `LeadAccepted` dict carrying its `CaseLead` model).
    """
    compiler = _Compiler(from_attributes, object_records)
    compiler.emit(0, "def write(out, datum):")
    compiler.emit(1, "append = out.append")  # a local: ~100 appends per wide record
    try:
        compiler.value(parsed_schema, "datum", 1)
    except Unsupported:
        return None
    compiler.emit(1, "return None")
    compiler.lines[2:] = [line.replace("out.append(", "append(") for line in compiler.lines[2:]]
    namespace = dict(compiler.consts)
    exec("\n".join(compiler.lines), namespace)
    writer: Writer = namespace["write"]
    return writer
