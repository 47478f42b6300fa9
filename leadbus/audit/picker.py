"""Read a few fields of an Avro body without decoding the rest: the replay's reader of records a stage seal vouches for.

A record whose stage seal verifies holds the bytes the stage wrote (`leadbus.audit.stage_seals`): the replay need not
read it whole to know that it decodes, and reads only the fields its summary and checks use (a case's id, version and
`merged_into`; an accepted lead's id, revision, publisher, digest, source and `original`). `picker(schema, paths)`
compiles, once per (writer schema, paths), one function that passes over what is not wanted by its lengths alone and
reads each wanted field as `leadbus.avro.fastread` does (the same values a full decode gives), stopping after the last:
it is made by fastread's own `Compiler` (`value`, `skip`, and their guarded loops over blocks).
It is used on vouched bytes only, and anything it cannot read (a schema it does not cover, a field the writer schema
lacks, bytes that end early) makes the caller decode the record whole instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leadbus.audit.native_picker import native_body_end, native_picker
from leadbus.avro import SchemaEntry
from leadbus.avro.fastread import Compiler, Unsupported

#: (value bytes) → the wanted fields' values, in the order asked
Picker = Callable[[bytes], tuple[Any, ...]]

_PICKERS: dict[tuple[bytes, tuple[str, ...]], Picker | None] = {}


class _Unpickable(Exception):
    pass


def picker(schema: SchemaEntry, paths: tuple[str, ...]) -> Picker | None:
    """The compiled reader of `paths` (dotted field names) in bodies of `schema`; None when it cannot be made.

    The C picker (`leadbus.audit.native_picker`) when it covers the schema, wrapping this module's, which it hands
    what it does not read: the same values either way."""
    key = (schema.fingerprint, paths)
    if key in _PICKERS:
        return _PICKERS[key]
    made = python_picker(schema, paths)
    if made is not None:
        made = native_picker(schema.parsed, paths, made) or made
    _PICKERS[key] = made
    return made


def python_picker(schema: SchemaEntry, paths: tuple[str, ...]) -> Picker | None:
    """The reference: the picker compiled to Python alone."""
    try:
        return _compile(schema.parsed, paths)
    except (Unsupported, _Unpickable, KeyError, TypeError):
        return None


def _compile(parsed: Any, paths: tuple[str, ...]) -> Picker:
    comp = Compiler()
    comp.emit(0, "def pick(data):")
    comp.emit(1, "end = len(data)")
    comp.emit(1, "pos = 10")
    targets = {p: f"w{i}" for i, p in enumerate(paths)}
    left = set(paths)

    passed: list[Any] = []  # the fields passed over since the last one read: one run (numbers in a row share a pattern)

    def pass_over() -> None:
        if passed:
            comp.skip({"type": "record", "name": "passed", "fields": [{"name": "_", "type": t} for t in passed]}, 1)
            passed.clear()

    def record(schema: Any, prefix: str) -> None:
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise _Unpickable(prefix)
        for f in schema["fields"]:
            if not left:
                return
            name = prefix + f["name"]
            if name in left:
                pass_over()
                comp.value(f["type"], targets[name], 1)
                left.discard(name)
            elif any(p.startswith(name + ".") for p in left):
                record(f["type"], name + ".")
            else:
                passed.append(f["type"])

    record(parsed, "")
    if left:
        raise _Unpickable(", ".join(sorted(left)))  # the writer schema lacks a wanted field: decode whole
    comp.emit(1, "if pos > end:")
    comp.emit(2, "raise Unreadable('end')")
    comp.emit(1, "return (" + "".join(f"{targets[p]}, " for p in paths) + ")")
    made: Picker = comp.function("pick")
    return made


#: Per writer schema (fingerprint): the compiled pass over a whole body, or None when the schema is not covered.
_ENDS: dict[bytes, Callable[[bytes], int] | None] = {}


def body_end(schema: SchemaEntry) -> Callable[[bytes], int] | None:
    """The compiled pass over a whole body of `schema` by its lengths alone (`Compiler.skip`): (value bytes) → the
    position after the body, which a body that ends where its bytes do gives as their length. It builds nothing and
    judges no content (a string's UTF-8, an enum's index): it tells a body cut short or followed by more bytes, and
    raises on what it cannot pass over; whoever asks reads such bytes whole. None when the schema is not covered.
    Run in C where `leadbus.audit._picker` is built (`native_picker.native_body_end`), this pass being its fallback."""
    fingerprint = schema.fingerprint
    if fingerprint in _ENDS:
        return _ENDS[fingerprint]
    comp = Compiler()
    comp.emit(0, "def end_of(data):")
    comp.emit(1, "end = len(data)")
    comp.emit(1, "pos = 10")
    made: Callable[[bytes], int] | None
    try:
        comp.skip(schema.parsed, 1)
        comp.emit(1, "return pos")
        made = comp.function("end_of")
    except (Unsupported, KeyError, TypeError):
        made = None
    if made is not None:  # the same pass in C where it is built, handing it what it is unsure of
        made = native_body_end(schema.parsed, made) or made
    _ENDS[fingerprint] = made
    return made
