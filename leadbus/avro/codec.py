"""Avro single-object encoding: `C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint + body.

`decode` resolves the writer's fingerprint in the catalog and applies Avro schema resolution
to the reader schema, so old and new writers both read.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from leadbus.avro.catalog import SchemaCatalog, SchemaEntry
from leadbus.avro.fastwrite import compile_writer

MAGIC = b"\xc3\x01"
# what the compiled reader raises on bytes it will not judge (Unreadable is a ValueError, as a bad UTF-8 is)
_UNREADABLE = (ValueError, IndexError, OverflowError, struct.error)
HEADER_SIZE = 10
# what a writer (compiled or fastavro) raises on a value that does not fit the schema: an int beyond 64 bits is an
# OverflowError, a float field given text a struct.error, neither a ValueError
_UNFIT = (KeyError, TypeError, AttributeError, ValueError, OverflowError, struct.error)


class DecodeError(ValueError):
    """Bytes that cannot be read as an event; `reason` is a stable code for dead-letter topics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EncodeError(ValueError):
    """The record does not fit the writer schema (a programming error on the writer's side)."""


def _framed(entry: SchemaEntry, writer: Any, value: Any, what: str = "record") -> bytes:
    """The single-object encoding of `value` written by a compiled `writer` of the entry's schema."""
    out = bytearray(MAGIC)
    out += entry.fingerprint
    try:
        writer(out, value)
    except _UNFIT as exc:
        raise EncodeError(f"{what} does not fit {entry.name}: {type(exc).__name__}: {exc}") from exc
    return bytes(out)


def encode(entry: SchemaEntry, record: Any) -> bytes:
    if entry.writer is not None:
        return _framed(entry, entry.writer, record)
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(entry.fingerprint)
    try:
        schemaless_writer(buf, entry.parsed, record)
    except _UNFIT as exc:
        raise EncodeError(f"record does not fit {entry.name}: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def encode_object(entry: SchemaEntry, obj: Any) -> bytes:
    """Encode an object whose attributes mirror the schema (a pydantic model of the contract)."""
    if entry.object_writer is None:
        raise EncodeError(f"{entry.name} cannot be written from attributes")
    return _framed(entry, entry.object_writer, obj, "object")


_MIXED: dict[tuple[bytes, frozenset[str]], Any] = {}


def encode_mixed(entry: SchemaEntry, record: Any, object_records: frozenset[str]) -> bytes:
    """Encode a mapping whose records named in `object_records` are objects (their attributes mirror the schema).

    Byte for byte what `encode` writes for the same record with those objects dumped to mappings.
    """
    key = (entry.fingerprint, object_records)
    writer = _MIXED.get(key)
    if writer is None:
        writer = _MIXED[key] = compile_writer(entry.parsed, object_records=object_records)
        if writer is None:
            raise EncodeError(f"{entry.name} cannot be written from attributes")
    return _framed(entry, writer, record)


def writer_of(catalog: SchemaCatalog, data: bytes) -> SchemaEntry:
    if not data:
        raise DecodeError("DECODE_EMPTY", "empty message")
    if len(data) < HEADER_SIZE or data[:2] != MAGIC:
        raise DecodeError("DECODE_NOT_AVRO", "not Avro single-object encoding (no C3 01 header)")
    entry = catalog.by_fingerprint(data[2:HEADER_SIZE])
    if entry is None:
        raise DecodeError("DECODE_UNKNOWN_SCHEMA", f"unknown writer schema fingerprint {data[2:HEADER_SIZE].hex()}")
    return entry


def decode(catalog: SchemaCatalog, data: bytes, reader: SchemaEntry | None = None) -> tuple[SchemaEntry, Any]:
    """Return (writer schema, record). With `reader`, the writer must be a version of the same name."""
    return read_body(writer_of(catalog, data), data, reader)


def read_body(writer: SchemaEntry, data: bytes, reader: SchemaEntry | None = None) -> tuple[SchemaEntry, Any]:
    """`decode` once the writer is known (`writer_of`)."""
    if reader is not None and writer.name != reader.name:
        raise DecodeError("DECODE_WRONG_TYPE", f"expected a {reader.name}, got a {writer.name}")
    # the compiled reader when no resolution is needed (and on bytes, so that `bytes` fields come out as bytes)
    if writer.reader is not None and (reader is None or reader is writer) and type(data) is bytes:
        try:
            record, end = writer.reader(data, HEADER_SIZE)
        except _UNREADABLE:
            pass  # fastavro reads it again below: its record or the error it names stands
        else:
            if end != len(data):
                raise DecodeError("DECODE_TRAILING_BYTES", f"{len(data) - end} bytes after the {writer.name} body")
            return writer, record
    buf = io.BytesIO(data)
    buf.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(
            buf, writer.parsed, reader.parsed if reader is not None and reader is not writer else None
        )
    except (EOFError, StopIteration) as exc:
        raise DecodeError("DECODE_TRUNCATED", f"truncated Avro body for {writer.name}: {exc}") from exc
    except Exception as exc:
        if buf.tell() >= len(data):  # the reader ran off the end: a truncated body, whatever it raised
            raise DecodeError("DECODE_TRUNCATED", f"truncated Avro body for {writer.name}: {exc}") from exc
        reason = f"corrupt Avro body for {writer.name}: {type(exc).__name__}: {exc}"
        raise DecodeError("DECODE_CORRUPT", reason) from exc
    if buf.tell() != len(data):
        raise DecodeError("DECODE_TRAILING_BYTES", f"{len(data) - buf.tell()} bytes after the {writer.name} body")
    return writer, record
