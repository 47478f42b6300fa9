"""The replay's field picker in C (`leadbus.audit._picker`, built by `make install`), for the schemas it covers.

`leadbus.audit.picker` is the reference: a native picker is made only where the Python one was, from the same walk
of the writer schema (the fields passed over, then each wanted one read), as a program of ints its C interpreter
runs. It reads the wanted values when the bytes are of the usual shape and hands anything else to the Python picker
it wraps (a varint over nine bytes, bytes that end early, a string that is not UTF-8, any error): its answer, values
or exception, is then the one given. The C side is only ever stricter than the Python one, never more lenient, so the
two give the same values for the same bytes (tests hold them to that over simulated traffic and hostile bytes).

Values it reads: strings, bytes, booleans, ints, longs and enums without a logical type, and a union of null and one
of these; a wanted field of any other type (a timestamp, a record) leaves the schema to the Python picker alone.
Without the extension (`NATIVE` False: not built) every picker is the Python one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from leadbus.avro.fastread import Unsupported, nullable

try:
    from leadbus.audit._picker import Picker, end_of
except ImportError:  # not built (a source tree without `make install`): the Python picker alone
    NATIVE = False
else:
    NATIVE = True

_END, _VARINT, _FIXED, _SIZED, _UNION, _ARRAY = 0, 1, 2, 3, 4, 5
_OPT_VARINT, _OPT_SIZED, _OPT_FIXED = 6, 7, 8  # null or one value of one skip: no nested program (most optional fields)
_STRING, _BYTES, _INT, _LONG, _BOOL, _ENUM, _NULLABLE, _NONE = 10, 11, 12, 13, 14, 15, 16, 17
_SCALARS = {"string": _STRING, "bytes": _BYTES, "int": _INT, "long": _LONG, "boolean": _BOOL}


class _Program:
    def __init__(self) -> None:
        self.ops: list[int] = []
        self.consts: list[tuple[str, ...]] = []
        self.depth = 0

    def skip(self, schema: Any) -> None:
        """Pass over one value of `schema` (as `Compiler.skip` does: by lengths, counts and union indexes)."""
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        if kind == "null":
            return
        if kind == "boolean":
            self.ops += [_FIXED, 1]
        elif kind in ("int", "long", "enum"):
            self.ops.append(_VARINT)
        elif kind in ("float", "double", "fixed"):
            self.ops += [_FIXED, 4 if kind == "float" else 8 if kind == "double" else int(schema["size"])]
        elif kind in ("string", "bytes"):
            self.ops.append(_SIZED)
        elif kind == "record":
            self.depth += 1
            if self.depth > 32:
                raise Unsupported("recursive record")
            for f in schema["fields"]:
                self.skip(f["type"])
            self.depth -= 1
        elif kind in ("array", "map"):
            self.ops += [_ARRAY, 0]
            at = len(self.ops)
            if kind == "map":
                self.ops.append(_SIZED)
            self.skip(schema["items"] if kind == "array" else schema["values"])
            self.ops.append(_END)
            self.ops[at - 1] = len(self.ops) - at
        elif kind == "union":
            if len(schema) > 64:
                raise Unsupported("union of more than 64 branches")
            if len(schema) == 2 and "null" in schema:
                null_index = schema.index("null")
                if self._optional(null_index, schema[1 - null_index]):
                    return
            self.ops += [_UNION, len(schema)]
            for option in schema:
                self.ops.append(0)
                at = len(self.ops)
                self.skip(option)
                self.ops.append(_END)
                self.ops[at - 1] = len(self.ops) - at
        else:
            raise Unsupported(str(kind))

    def _optional(self, null_index: int, other: Any) -> bool:
        """A union of null and `other` as one op, when `other` is passed over by a single skip."""
        at = len(self.ops)
        self.skip(other)
        single = self.ops[at:]
        if single == [_VARINT] or single == [_SIZED]:
            self.ops[at:] = [_OPT_VARINT if single[0] == _VARINT else _OPT_SIZED, null_index]
        elif len(single) == 2 and single[0] == _FIXED:
            self.ops[at:] = [_OPT_FIXED, null_index, single[1]]
        else:
            del self.ops[at:]
            return False
        return True

    def value(self, schema: Any, slot: int, *, inner: bool = False) -> None:
        """Read one value of `schema` into `slot` (as `Compiler.value` reads it), for the types covered."""
        kind = schema if isinstance(schema, str) else ("union" if isinstance(schema, list) else schema["type"])
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        if logical is not None:
            raise Unsupported(f"native: {logical}")
        if kind in _SCALARS:
            self.ops += [_SCALARS[kind], slot]
        elif kind == "enum":
            self.ops += [_ENUM, slot, len(self.consts)]
            self.consts.append(tuple(schema["symbols"]))
        elif kind == "null" and not inner:
            self.ops += [_NONE, slot]
        elif kind == "union" and not inner:
            form = nullable(schema)
            if form is None:
                raise Unsupported("general union")
            self.ops += [_NULLABLE, form[0]]
            self.value(form[1], slot, inner=True)
        else:
            raise Unsupported(f"native: {kind}")


def native_picker(parsed: Any, paths: tuple[str, ...], fallback: Callable[[bytes], tuple[Any, ...]]
                  ) -> Callable[[bytes], tuple[Any, ...]] | None:
    """The C picker of `paths` in bodies of the writer schema `parsed`, handing what it does not read to `fallback`
    (the Python picker of the same); None without the extension or for a schema it does not cover."""
    if not NATIVE or len(paths) > 64:
        return None
    program = _Program()
    slots = {p: i for i, p in enumerate(paths)}
    left = set(paths)
    passed: list[Any] = []

    def record(schema: Any, prefix: str) -> None:  # the walk of `leadbus.audit.picker._compile`
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise Unsupported(prefix)
        for f in schema["fields"]:
            if not left:
                return
            name = prefix + f["name"]
            if name in left:
                for t in passed:
                    program.skip(t)
                passed.clear()
                program.value(f["type"], slots[name])
                left.discard(name)
            elif any(p.startswith(name + ".") for p in left):
                record(f["type"], name + ".")
            else:
                passed.append(f["type"])

    try:
        record(parsed, "")
    except (Unsupported, KeyError, TypeError, ValueError):
        return None
    if left:
        return None
    return Picker(tuple(program.ops), tuple(program.consts), len(paths), fallback)


def native_body_end(parsed: Any, fallback: Callable[[bytes], int]) -> Callable[[bytes], int] | None:
    """The C pass over a whole body of the writer schema `parsed` by its lengths (`picker.body_end`'s, by the same
    skips), handing what it is unsure of to `fallback` (the Python pass): (value bytes) → the position after the body;
    None without the extension or for a schema it does not cover."""
    if not NATIVE:
        return None
    program = _Program()
    try:
        program.skip(parsed)
    except (Unsupported, KeyError, TypeError, ValueError):
        return None
    made: Callable[[bytes], int] = partial(end_of, Picker(tuple(program.ops), tuple(program.consts), 0, fallback))
    return made
