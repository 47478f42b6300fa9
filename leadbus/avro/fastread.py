"""A schema-specialised Avro binary reader, compiled once per schema (the reading twin of `fastwrite`).

fastavro's `schemaless_reader` walks the schema for every record; for the bus's wide records
that walk was a fifth of intake's cost per event. This compiles a writer schema into one Python
function reading the body straight out of the bytes into the same mappings fastavro returns
(a test holds it to that). It reads only what the writer wrote with no schema resolution: an
older writer is still read by fastavro against the reader schema.

`Compiler` is public for the replay's field picker (`leadbus.audit.picker`), which reads a few fields of a body and
passes over the rest (`Compiler.skip`) with the same guarded loops.

It is strict where fastavro may be lenient (a boolean byte other than 0 or 1, an over-long
varint, a negative length or index, an `int` outside 32 bits, a length past the end): it then
raises `Unreadable`, and the codec reads the same bytes with fastavro, whose verdict (a value or
the error the dead letter names) is the one given. So it can only ever agree with fastavro.
"""

from __future__ import annotations

import re
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


def nullable(branches: list[Any]) -> tuple[int, Any] | None:
    """For a union of null and one other schema (either order): the null branch's index and the other schema;
    None for any other union (the compilers cover only this form and fall back on the rest)."""
    kinds = [b if isinstance(b, str) else b.get("type") for b in branches]
    if len(branches) != 2 or "null" not in kinds:
        return None
    null_index = kinds.index("null")
    return null_index, branches[1 - null_index]


def _nullable(branches: list[Any]) -> tuple[int, Any]:
    form = nullable(branches)
    if form is None:
        raise Unsupported("general union")
    return form


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


#: Per first byte of a string's or bytes' length: the bytes the length and the value span when the length is one byte
#: (a zig-zag varint under 128, even: 0 to 63), else 0 (read in full).
_SMALL_SIZED = tuple(1 + (b >> 1) if b < 128 and not b & 1 else 0 for b in range(256))
#: Per first byte of a block count: 0 for the closing zero count, the count when it is one positive byte (1 to 63),
#: else -1 (a negative count with its block size, or a longer varint: read in full).
_SMALL_COUNT = tuple(b >> 1 if b < 128 and not b & 1 else -1 for b in range(256))

#: The pattern of one varint: any bytes with the high bit set, then one without.
_VARINT = rb"[\x80-\xff]*[\x00-\x7f]"


class Compiler:
    """Emits the lines of one function reading `data` from `pos` (`end` is `len(data)`), then makes it (`function`)."""

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
            "SMALL_SIZED": _SMALL_SIZED,
            "SMALL_COUNT": _SMALL_COUNT,
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

    def checked_skip(self, schema: Any, indent: int) -> None:
        """Emit code passing over one value of `schema` with every check `value` makes (so that bytes one refuses the
        other refuses too), without building it: strings are still decoded, enums looked up, times computed."""
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        if kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            for field in schema["fields"]:
                self.checked_skip(field["type"], indent)
            self.depth -= 1
        elif kind in ("array", "map"):
            inner = schema["items"] if kind == "array" else schema["values"]

            def item(at: int) -> None:
                if kind == "map":
                    self.value("string", "_", at)
                self.checked_skip(inner, at)

            self.blocks(kind, inner, indent, item)
        elif kind == "union":
            null_index, other = _nullable(schema)
            self.emit(indent, "b = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if b == {2 * (1 - null_index)}:")
            self.checked_skip(other, indent + 1)
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
            if logical == "timestamp-millis":  # milliseconds as timedelta's positional argument: no keyword to parse
                self.emit(indent, f"{target} = EPOCH + timedelta(0, 0, 0, {target})")
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
            # A length of one byte (under 64, the usual) looked up in `SMALL_SIZED`, the span checked against the end;
            # any other length read and checked in full
            size = self.var("n")
            tail = ".decode('utf-8')" if kind == "string" else ""
            self.emit(indent, f"{size} = SMALL_SIZED[data[pos]]")
            self.emit(indent, f"if {size} and pos + {size} <= end:")
            self.emit(indent + 1, f"{target} = data[pos + 1:pos + {size}]{tail}")
            self.emit(indent + 1, f"pos += {size}")
            self.emit(indent, "else:")
            self.length(indent + 1, size)
            self.emit(indent + 1, f"{target} = data[pos:pos + {size}]{tail}")
            self.emit(indent + 1, f"pos += {size}")
        elif kind == "enum":
            symbols, table = self.var("symbols"), self.var("enum")
            self.consts[symbols] = tuple(schema["symbols"])
            # Per first byte: the symbol of a one-byte index (the usual), else None (read in full, as it was)
            self.consts[table] = tuple(schema["symbols"][b >> 1] if b < 128 and not b & 1
                                       and b >> 1 < len(schema["symbols"]) else None for b in range(256))
            index = self.var("i")
            self.emit(indent, f"{target} = {table}[data[pos]]")
            self.emit(indent, f"if {target} is not None:")
            self.emit(indent + 1, "pos += 1")
            self.emit(indent, "else:")
            self.long(indent + 1, index)
            self.emit(indent + 1, f"if {index} < 0:")
            self.emit(indent + 2, "raise Unreadable('enum')")
            self.emit(indent + 1, f"{target} = {symbols}[{index}]")
        elif kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            names = []
            path = self.path
            for field in schema["fields"]:
                self.path = f"{path}.{field['name']}" if path else field["name"]
                if self.path in self.dropped:
                    self.checked_skip(field["type"], indent)
                    continue
                name = self.var("f")
                self.value(field["type"], name, indent)
                names.append((field["name"], name))
            self.path = path
            self.emit(indent, f"{target} = {{" + ", ".join(f"{k!r}: {v}" for k, v in names) + "}")
            self.depth -= 1
        elif kind in ("array", "map"):
            inner = schema["items"] if kind == "array" else schema["values"]
            item, key = self.var("x"), self.var("k")
            self.emit(indent, f"{target} = {'[]' if kind == 'array' else '{}'}")

            def read_item(at: int) -> None:
                if kind == "map":
                    self.value("string", key, at)
                self.value(inner, item, at)
                self.emit(at, f"{target}.append({item})" if kind == "array" else f"{target}[{key}] = {item}")

            self.blocks(kind, inner, indent, read_item)
        elif kind == "union":  # the null branch (most optional fields) tested on the byte in place: one step less
            null_index, other = _nullable(schema)
            self.emit(indent, f"if data[pos] == {2 * null_index}:")
            self.emit(indent + 1, "pos += 1")
            self.emit(indent + 1, f"{target} = None")
            self.emit(indent, "else:")
            self.emit(indent + 1, "b = data[pos]")
            self.emit(indent + 1, "pos += 1")
            self.emit(indent + 1, f"if b != {2 * (1 - null_index)}:")
            self.emit(indent + 2, "raise Unreadable('union')")
            self.value(other, target, indent + 1)
        else:
            raise Unsupported(str(kind))


    def blocks(self, kind: str, inner: Any, indent: int, item: Callable[[int], None]) -> None:
        """The blocks of an array or map (`kind`) of `inner` values: each block's count (a negative count is followed
        by the block's size in bytes), `item(indent)` emitting the reading of one item (a map's key too) per count,
        until a zero count. A count above the bytes left is `Unreadable` (each item takes a byte at least: an array
        of items that may take none is `Unsupported`), so hostile counts never loop for long."""
        self._counted_blocks(kind, inner, indent, item, small_checked=True)

    def skip(self, schema: Any, indent: int) -> None:
        """Emit code passing over one value of `schema` by its lengths alone (nothing is built).

        Runs of values whose bytes follow a fixed shape (numbers, booleans, enums, fixed sizes, unions and records of
        these: no length to read) are passed over by one compiled pattern each; strings, bytes, arrays and maps by
        their lengths and counts. A union index must be one byte (what every writer writes for fewer than 64
        branches) and anything that does not fit the shape raises `Unreadable`: the caller then reads the bytes with
        the full reader, which judges them."""
        pending: list[bytes] = []
        for step in self._skips(schema):
            if isinstance(step, bytes):
                pending.append(step)
                continue
            self._skip_pattern(pending, indent)
            pending = []
            step(indent)
        self._skip_pattern(pending, indent)

    def _skip_pattern(self, parts: list[bytes], indent: int) -> None:
        pattern = b"".join(parts)
        if not pattern:
            return
        if pattern == b".":  # one byte (a boolean): past it; bytes that end early are refused by a later read or the
            self.emit(indent, "pos += 1")  # picker's last check (`pos > end`), as the pattern refuses them
            return
        numbers = len(pattern) // len(_VARINT)
        if pattern == _VARINT * numbers and numbers <= 8:
            # Numbers alone (an int, a long, an enum's index): one-byte varints (the usual) are passed over inline, a
            # call of a compiled pattern each cost several times as much; from the first longer one (a timestamp) the
            # rest of the run is matched by one pattern.
            def number(i: int, at: int) -> None:
                if i == numbers:
                    return
                self.emit(at, "if data[pos] < 128:")
                self.emit(at + 1, "pos += 1")
                number(i + 1, at + 1)
                self.emit(at, "else:")
                self._match(_VARINT * (numbers - i), at + 1)

            number(0, indent)
            return
        self._match(pattern, indent)

    def _match(self, pattern: bytes, indent: int) -> None:
        name = self.var("shape")
        self.consts[name] = re.compile(pattern, re.DOTALL).match
        found = self.var("m")
        self.emit(indent, f"{found} = {name}(data, pos)")
        self.emit(indent, f"if {found} is None:")
        self.emit(indent + 1, "raise Unreadable('shape')")
        self.emit(indent, f"pos = {found}.end()")

    def _shape(self, schema: Any) -> bytes | None:
        """The pattern of a value of `schema` when its bytes have a fixed shape (no length in them), else None."""
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        if kind == "null":
            return b""
        if kind == "boolean":
            return b"."
        if kind in ("int", "long", "enum"):
            return _VARINT
        if kind in ("float", "double", "fixed"):
            size = 4 if kind == "float" else 8 if kind == "double" else int(schema["size"])
            return b".{%d}" % size
        if kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            parts = [self._shape(field["type"]) for field in schema["fields"]]
            self.depth -= 1
            return None if any(part is None for part in parts) else b"".join(parts)  # type: ignore[arg-type]
        if kind == "union" and len(schema) <= 64:
            branches = [self._shape(option) for option in schema]
            if any(branch is None for branch in branches):
                return None
            return b"(?:" + b"|".join(re.escape(bytes([2 * i])) + branch  # type: ignore[operator]
                                      for i, branch in enumerate(branches)) + b")"
        return None

    def _skips(self, schema: Any) -> list[bytes | Callable[[int], None]]:
        """Passing over `schema` as steps: patterns (bytes) and emitters of code (strings, bytes, arrays, maps)."""
        shape = self._shape(schema)
        if shape is not None:
            return [shape]
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        if kind in ("string", "bytes"):
            return [self._skip_sized]
        if kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            steps = [step for field in schema["fields"] for step in self._skips(field["type"])]
            self.depth -= 1
            return steps
        if kind in ("array", "map"):
            inner = schema["items"] if kind == "array" else schema["values"]

            def skip_item(at: int) -> None:
                if kind == "map":
                    self.skip("string", at)
                self.skip(inner, at)

            return [lambda at: self._skip_blocks(kind, inner, at, skip_item)]
        if kind == "union":
            return [lambda at: self._skip_union(schema, at)]
        raise Unsupported(str(kind))

    def _skip_blocks(self, kind: str, inner: Any, indent: int, item: Callable[[int], None]) -> None:
        """The blocks of an array or map passed over: a count of one byte (fewer than 64 items, the usual) is looked up
        in `SMALL_COUNT` (0: the end, -1: any other count, read as `blocks` reads it); a small count needs no check
        against the bytes left, since each item takes a byte at least (a count past the end meets the end within 63
        items: the next read or the function's last check refuses the bytes)."""
        self._counted_blocks(kind, inner, indent, item, small_checked=False)

    def _counted_blocks(self, kind: str, inner: Any, indent: int, item: Callable[[int], None], *,
                        small_checked: bool) -> None:
        """The loop over an array's or map's blocks, for `blocks` (`small_checked`: every count checked against the
        bytes left) and `_skip_blocks` (a count of one byte is not). A count of one byte (the closing zero, or 1 to 63
        items: the usual) is looked up in `SMALL_COUNT`; any other (-1 there) is read in full from its first byte, as
        `long` reads it (one under 128 is odd there: a negative count, its block's size in bytes after it)."""
        if kind == "array" and _min_size(inner) < 1:
            raise Unsupported("array of empty items")
        count = self.var("c")
        self.emit(indent, "while True:")
        self.emit(indent + 1, f"{count} = SMALL_COUNT[data[pos]]")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent + 1, f"if {count} == 0:")
        self.emit(indent + 2, "break")
        self.emit(indent + 1, f"if {count} < 0:")
        self.emit(indent + 2, "b = data[pos - 1]")
        self.emit(indent + 2, f"{count}, pos = read_long_rest(data, pos, b) if b >= 128 else (-(b >> 1) - 1, pos)")
        self.emit(indent + 2, f"if {count} == 0:")
        self.emit(indent + 3, "break")
        self.emit(indent + 2, f"if {count} < 0:")
        self.emit(indent + 3, f"{count} = -{count}")
        self.long(indent + 3, self.var("blocksize"))
        checked = indent + 1 if small_checked else indent + 2
        self.emit(checked, f"if {count} > end - pos:")
        self.emit(checked + 1, "raise Unreadable('count')")
        self.emit(indent + 1, f"for _ in range({count}):")
        before = len(self.lines)
        item(indent + 2)
        if len(self.lines) == before:
            self.emit(indent + 2, "pass")

    def _skip_sized(self, indent: int) -> None:
        """A string's or bytes' length, then past them: a length of one byte (under 64, the usual) is looked up in
        `SMALL_SIZED` (the bytes it spans, 0 for any other byte), one of two bytes read inline (past the end, the next
        read or the function's last check refuses the bytes)."""
        size = self.var("n")
        self.emit(indent, f"{size} = SMALL_SIZED[data[pos]]")
        self.emit(indent, f"if {size}:")
        self.emit(indent + 1, f"pos += {size}")
        self.emit(indent, "else:")
        indent += 1
        self.emit(indent, f"{size} = data[pos]")
        self.emit(indent, f"if {size} >= 128 and data[pos + 1] < 128 and not {size} & 1:")
        self.emit(indent + 1, f"pos += 2 + ((({size} & 127) | (data[pos + 1] << 7)) >> 1)")
        self.emit(indent, "else:")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent + 1, f"{size}, pos = read_long_rest(data, pos, {size}) if {size} >= 128 else (-1, pos)")
        self.emit(indent + 1, f"if {size} < 0 or pos + {size} > end:")
        self.emit(indent + 2, "raise Unreadable('length')")
        self.emit(indent + 1, f"pos += {size}")

    def _skip_union(self, schema: list[Any], indent: int) -> None:
        if len(schema) > 64:
            raise Unsupported("union of more than 64 branches")
        branch = self.var("u")
        self.emit(indent, f"{branch} = data[pos]")
        self.emit(indent, "pos += 1")
        for i, option in enumerate(schema):
            self.emit(indent, f"{'if' if i == 0 else 'elif'} {branch} == {2 * i}:")
            before = len(self.lines)
            self.skip(option, indent + 1)
            if len(self.lines) == before:
                self.emit(indent + 1, "pass")
        self.emit(indent, "else:")
        self.emit(indent + 1, "raise Unreadable('union')")

    def function(self, name: str) -> Callable[..., Any]:
        """The function the emitted lines define under `name` (code generated from a schema of the catalog)."""
        namespace = dict(self.consts)
        exec("\n".join(self.lines), namespace)
        made: Callable[..., Any] = namespace[name]
        return made


def compile_reader(parsed_schema: Any, dropped: frozenset[str] = frozenset()) -> Reader | None:
    """A reader for the (expanded, parsed) writer schema, or None when it uses constructs it does not cover.

    ``dropped``: dotted paths of record fields (``lead.evidence``) that the reader checks as it checks the rest but
    leaves out of the records it returns (for a consumer that never reads them: the linking stage)."""
    compiler = Compiler(dropped)
    compiler.emit(0, "def read(data, pos):")
    compiler.emit(1, "end = len(data)")
    try:
        compiler.value(parsed_schema, "result", 1)
    except Unsupported:
        return None
    compiler.emit(1, "return result, pos")
    reader: Reader = compiler.function("read")
    return reader
