"""A schema-specialised Avro binary reader, compiled once per schema (the reading twin of `fastwrite`).

fastavro's `schemaless_reader` walks the schema for every record; for the bus's wide records
that walk was a fifth of intake's cost per event. This compiles a writer schema into one Python
function reading the body straight out of the bytes into the same mappings fastavro returns
(a test holds it to that). It reads only what the writer wrote with no schema resolution: an
older writer is still read by fastavro against the reader schema.

It is strict where fastavro may be lenient (a boolean byte other than 0 or 1, an over-long
varint, a negative length or index, an `int` outside 32 bits, a length past the end): it then
raises `Unreadable`, and the codec reads the same bytes with fastavro, whose verdict (a value or
the error the dead letter names) is the one given. So it can only ever agree with fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

#: (data, position after the header) → (record, position after the body)
Reader = Callable[[bytes, int], tuple[Any, int]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS_SHIFT = date(1970, 1, 1).toordinal()


class Unreadable(ValueError):
    """Bytes this reader will not judge: fastavro reads them (and names what is wrong, if anything)."""


class Unsupported(Exception):
    pass


def read_long_rest(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a zig-zag varint whose first byte (`first`, ≥ 0x80) was read; at most 10 bytes."""
    n = first & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise Unreadable("varint longer than 10 bytes")
    return (n >> 1) ^ -(n & 1), pos


def _min_size(schema: Any) -> int:
    """The fewest bytes a value of `schema` takes (an array's items must take at least one)."""
    kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
    if kind == "null":
        return 0
    if kind == "record":
        return sum(_min_size(f["type"]) for f in schema["fields"])
    if kind == "float":
        return 4
    if kind == "double":
        return 8
    return 1


class _Compiler:
    def __init__(self, dropped: frozenset[str] = frozenset()) -> None:
        self.dropped = dropped  # dotted paths of fields read as strictly as the rest but left out of the record
        self.path = ""
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "read_long_rest": read_long_rest,
            "Unreadable": Unreadable,
            "EPOCH": _EPOCH,
            "DAYS_SHIFT": _DAYS_SHIFT,
            "timedelta": timedelta,
            "fromordinal": date.fromordinal,
            "unpack_float": struct.Struct("<f").unpack_from,
            "unpack_double": struct.Struct("<d").unpack_from,
        }
        self.counter = 0
        self.depth = 0

    def var(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def long(self, indent: int, target: str) -> None:
        """Read a zig-zag varint into `target` (one byte inline, the rest in a call)."""
        self.emit(indent, "b = data[pos]")
        self.emit(indent, "pos += 1")
        self.emit(indent, "if b < 128:")
        self.emit(indent + 1, f"{target} = (b >> 1) ^ -(b & 1)")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{target}, pos = read_long_rest(data, pos, b)")

    def length(self, indent: int, target: str) -> None:
        self.long(indent, target)
        self.emit(indent, f"if {target} < 0 or pos + {target} > end:")
        self.emit(indent + 1, "raise Unreadable('length')")

    def skip(self, schema: Any, indent: int) -> None:
        """Emit code passing over one value of `schema` with every check `value` makes (so that bytes one refuses the
        other refuses too), without building it: strings are still decoded, enums looked up, times computed."""
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        if kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            for field in schema["fields"]:
                self.skip(field["type"], indent)
            self.depth -= 1
        elif kind in ("array", "map"):
            inner = schema["items"] if kind == "array" else schema["values"]
            if kind == "array" and _min_size(inner) < 1:
                raise Unsupported("array of empty items")
            count = self.var("c")
            self.emit(indent, "while True:")
            self.long(indent + 1, count)
            self.emit(indent + 1, f"if {count} == 0:")
            self.emit(indent + 2, "break")
            self.emit(indent + 1, f"if {count} < 0:")
            self.emit(indent + 2, f"{count} = -{count}")
            self.long(indent + 2, self.var("blocksize"))
            self.emit(indent + 1, f"if {count} > end - pos:")
            self.emit(indent + 2, "raise Unreadable('count')")
            self.emit(indent + 1, f"for _ in range({count}):")
            if kind == "map":
                self.value("string", "_", indent + 2)
            self.skip(inner, indent + 2)
        elif kind == "union":
            kinds = [b if isinstance(b, str) else b.get("type") for b in schema]
            if len(schema) != 2 or "null" not in kinds:
                raise Unsupported("general union")
            null_index = kinds.index("null")
            self.emit(indent, "b = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if b == {2 * (1 - null_index)}:")
            self.skip(schema[1 - null_index], indent + 1)
            self.emit(indent, f"elif b != {2 * null_index}:")
            self.emit(indent + 1, "raise Unreadable('union')")
        else:  # a scalar: read as `value` reads it, into a name nobody uses
            self.value(schema, "_", indent)

    def value(self, schema: Any, target: str, indent: int) -> None:
        """Emit code reading one value of `schema` into the local `target`."""
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        if kind == "null":
            self.emit(indent, f"{target} = None")
        elif kind == "boolean":
            self.emit(indent, "b = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, "if b > 1:")
            self.emit(indent + 1, "raise Unreadable('boolean')")
            self.emit(indent, f"{target} = b == 1")
        elif kind in ("int", "long"):
            if logical not in (None, "timestamp-millis", "date"):
                raise Unsupported(logical)
            self.long(indent, target)
            if kind == "int":
                self.emit(indent, f"if not -2147483648 <= {target} <= 2147483647:")
                self.emit(indent + 1, "raise Unreadable('int')")
            if logical == "timestamp-millis":
                self.emit(indent, f"{target} = EPOCH + timedelta(microseconds={target} * 1000)")
            elif logical == "date":
                self.emit(indent, f"{target} = fromordinal({target} + DAYS_SHIFT)")
        elif kind in ("float", "double"):
            if logical is not None:
                raise Unsupported(logical)
            self.emit(indent, f"{target} = unpack_{kind}(data, pos)[0]")
            self.emit(indent, f"pos += {4 if kind == 'float' else 8}")
        elif kind in ("string", "bytes"):
            if logical is not None:
                raise Unsupported(logical)
            size = self.var("n")
            self.length(indent, size)
            tail = ".decode('utf-8')" if kind == "string" else ""
            self.emit(indent, f"{target} = data[pos:pos + {size}]{tail}")
            self.emit(indent, f"pos += {size}")
        elif kind == "enum":
            symbols = self.var("symbols")
            self.consts[symbols] = tuple(schema["symbols"])
            index = self.var("i")
            self.long(indent, index)
            self.emit(indent, f"if {index} < 0:")
            self.emit(indent + 1, "raise Unreadable('enum')")
            self.emit(indent, f"{target} = {symbols}[{index}]")
        elif kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            names = []
            path = self.path
            for field in schema["fields"]:
                self.path = f"{path}.{field['name']}" if path else field["name"]
                if self.path in self.dropped:
                    self.skip(field["type"], indent)
                    continue
                name = self.var("f")
                self.value(field["type"], name, indent)
                names.append((field["name"], name))
            self.path = path
            self.emit(indent, f"{target} = {{" + ", ".join(f"{k!r}: {v}" for k, v in names) + "}")
            self.depth -= 1
        elif kind in ("array", "map"):
            inner = schema["items"] if kind == "array" else schema["values"]
            if kind == "array" and _min_size(inner) < 1:
                raise Unsupported("array of empty items")
            count, item, key = self.var("c"), self.var("x"), self.var("k")
            self.emit(indent, f"{target} = {'[]' if kind == 'array' else '{}'}")
            self.emit(indent, "while True:")
            self.long(indent + 1, count)
            self.emit(indent + 1, f"if {count} == 0:")
            self.emit(indent + 2, "break")
            self.emit(indent + 1, f"if {count} < 0:")
            self.emit(indent + 2, f"{count} = -{count}")
            self.long(indent + 2, self.var("blocksize"))
            self.emit(indent + 1, f"if {count} > end - pos:")
            self.emit(indent + 2, "raise Unreadable('count')")
            self.emit(indent + 1, f"for _ in range({count}):")
            if kind == "map":
                self.value("string", key, indent + 2)
            self.value(inner, item, indent + 2)
            if kind == "array":
                self.emit(indent + 2, f"{target}.append({item})")
            else:
                self.emit(indent + 2, f"{target}[{key}] = {item}")
        elif kind == "union":
            kinds = [b if isinstance(b, str) else b.get("type") for b in schema]
            if len(schema) != 2 or "null" not in kinds:
                raise Unsupported("general union")
            null_index = kinds.index("null")
            self.emit(indent, "b = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if b == {2 * null_index}:")
            self.emit(indent + 1, f"{target} = None")
            self.emit(indent, f"elif b == {2 * (1 - null_index)}:")
            self.value(schema[1 - null_index], target, indent + 1)
            self.emit(indent, "else:")
            self.emit(indent + 1, "raise Unreadable('union')")
        else:
            raise Unsupported(str(kind))


def compile_reader(parsed_schema: Any, dropped: frozenset[str] = frozenset()) -> Reader | None:
    """A reader for the (expanded, parsed) writer schema, or None when it uses constructs it does not cover.

    ``dropped``: dotted paths of record fields (``lead.evidence``) that the reader checks as it checks the rest but
    leaves out of the records it returns (for a consumer that never reads them: the linking stage)."""
    compiler = _Compiler(dropped)
    compiler.emit(0, "def read(data, pos):")
    compiler.emit(1, "end = len(data)")
    try:
        compiler.value(parsed_schema, "result", 1)
    except Unsupported:
        return None
    compiler.emit(1, "return result, pos")
    namespace = dict(compiler.consts)
    exec("\n".join(compiler.lines), namespace)
    reader: Reader = namespace["read"]
    return reader
