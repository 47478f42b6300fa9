"""Exports of a replay: JSON Lines with the contract's field names, or one Avro object container file.

Both carry each record's coordinates (topic, partition, offset, timestamp), key and headers, the writer
schema (name, version, fingerprint), who it is from, and the event. Nothing says which source it was
read from, so a replay of a topic and of the archive of the same period export the same lines.

JSON Lines: one object per record; the event under `event` with the field names of its Avro schema
(DESIGN §3), times as ISO 8601 UTC with milliseconds, bytes as base64; key as text (`key_base64` when it
is not UTF-8); header values base64; an undecodable value as `value_base64`.

Avro: one container file (deflate), schema `cn.leadbus.audit.ReplayedEvent`, readable by any Avro
library. `value` holds the event's bytes exactly as published (signatures stay checkable); `event` is a
union of the latest version of every event type of the contract, each event read into it with Avro schema
resolution from whatever version wrote it (null for a value no known schema reads).
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

import fastavro
from fastavro.write import Writer

from leadbus.audit.verification import ReplayRecord
from leadbus.avro import DecodeError, SchemaCatalog, decode


class Exporter(Protocol):
    def write(self, record: ReplayRecord, publisher: str) -> None: ...

    def close(self) -> None: ...


def json_form(value: Any) -> Any:
    """An Avro-read value in JSON: datetimes ISO 8601 UTC (ms), bytes base64, the rest as is."""
    if isinstance(value, dict):
        return {k: json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_form(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return value


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_line(record: ReplayRecord, publisher: str) -> dict[str, Any]:
    line: dict[str, Any] = {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                            "timestamp": _iso_ms(record.timestamp_ms)}
    key = record.key
    if key is None:
        line["key"] = None
    else:
        try:
            line["key"] = key.decode()
        except UnicodeDecodeError:
            line["key"] = None
            line["key_base64"] = base64.b64encode(key).decode()
    line["headers"] = [{"name": name, "value_base64": None if value is None else base64.b64encode(value).decode()}
                       for name, value in record.headers]
    schema = record.schema
    event = record.event
    line["type"] = record.type_name
    line["schema_version"] = schema.version if schema is not None else None
    line["fingerprint"] = schema.fingerprint_hex if schema is not None else None
    line["publisher"] = publisher
    if event is not None or record.value is None:
        line["event"] = json_form(event)
    else:
        line["event"] = None
        line["value_base64"] = base64.b64encode(record.value).decode()
    return line


class JsonLinesExporter:
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, record: ReplayRecord, publisher: str) -> None:
        self.out.write(json.dumps(json_line(record, publisher), ensure_ascii=False, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.out.flush()


def _inline_once(schema: Any, seen: set[str]) -> Any:
    """A copy of an expanded schema where a named type already defined elsewhere is referred to by name."""
    if isinstance(schema, list):
        return [_inline_once(s, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed") and "name" in schema:
        name = schema["name"]
        full = name if "." in name or not schema.get("namespace") else f"{schema['namespace']}.{name}"
        if full in seen:
            return full
        seen.add(full)
        out = dict(schema)
        if kind == "record":
            out["fields"] = [{**f, "type": _inline_once(f["type"], seen)} for f in schema["fields"]]
        return out
    out = dict(schema)
    for part in ("items", "values"):
        if part in out:
            out[part] = _inline_once(out[part], seen)
    if isinstance(kind, dict | list):
        out["type"] = _inline_once(kind, seen)
    return out


def export_schema(catalog: SchemaCatalog) -> dict[str, Any]:
    seen: set[str] = set()
    branches: list[Any] = ["null"]
    for name in catalog.names():
        branches.append(_inline_once(dict(catalog.latest(name).expanded), seen))
    return {
        "type": "record", "name": "cn.leadbus.audit.ReplayedEvent",
        "doc": "A record replayed from the bus or its archive: coordinates, key, headers, the bytes as published "
               "and the event read into the latest version of its type.",
        "fields": [
            {"name": "topic", "type": "string"},
            {"name": "partition", "type": "int"},
            {"name": "offset", "type": "long"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "key", "type": ["null", "bytes"]},
            {"name": "headers", "type": {"type": "array", "items": {
                "type": "record", "name": "cn.leadbus.audit.Header",
                "fields": [{"name": "key", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}]}}},
            {"name": "type", "type": "string"},
            {"name": "schema_version", "type": ["null", "int"]},
            {"name": "fingerprint", "type": ["null", "string"]},
            {"name": "publisher", "type": "string"},
            {"name": "value", "type": ["null", "bytes"], "doc": "the event exactly as published"},
            {"name": "event", "type": branches},
        ],
    }


class AvroExporter:
    def __init__(self, out: IO[bytes], catalog: SchemaCatalog, codec: str = "deflate") -> None:
        self.catalog = catalog
        self.latest = {name: catalog.latest(name) for name in catalog.names()}
        self.out = out
        self.writer = Writer(out, fastavro.parse_schema(export_schema(catalog)), codec=codec,
                             metadata={"leadbus.export": "replay"})

    def write(self, record: ReplayRecord, publisher: str) -> None:
        schema = record.schema
        event: Any = None
        if schema is not None and record.event is not None:
            latest = self.latest.get(schema.name)
            if latest is not None and latest.fingerprint == schema.fingerprint:
                event = (schema.name, record.event)
            elif latest is not None and record.value is not None:
                try:
                    event = (schema.name, decode(self.catalog, record.value, latest)[1])
                except DecodeError:
                    event = None
        self.writer.write({
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "timestamp": record.timestamp_ms, "key": record.key,
            "headers": [{"key": k, "value": v} for k, v in record.headers],
            "type": record.type_name, "schema_version": schema.version if schema is not None else None,
            "fingerprint": schema.fingerprint_hex if schema is not None else None, "publisher": publisher,
            "value": record.value, "event": event,
        })

    def close(self) -> None:
        self.writer.flush()
        self.out.flush()


def partial_path(out: Path) -> Path:
    """Where an export to `out` is written until the replay ends: a replay stopped (Ctrl-C, an error) leaves no file
    at `out` that looks complete — an Avro file flushed at a block's end reads as a whole one."""
    return out.with_name(f"{out.name}.partial")


def finish_export(out: Path, completed: bool) -> None:
    """The export moved to `out` once the replay read its whole period; else its partial file removed."""
    partial = partial_path(out)
    if completed:
        os.replace(partial, out)
    else:
        partial.unlink(missing_ok=True)


def open_exporter(fmt: str, out: Path | None, catalog: SchemaCatalog,
                  stdout: IO[str]) -> tuple[Exporter, IO[Any] | None]:
    """The exporter for `fmt` writing to `out`'s partial file (`finish_export` moves it; JSON Lines may go to stdout);
    returns it and the file to close."""
    if fmt not in ("jsonl", "avro"):
        raise ValueError(f"--format is jsonl or avro, not {fmt!r}")
    if out is None:
        if fmt == "avro":
            raise ValueError("--format avro needs --out FILE")
        return JsonLinesExporter(stdout), None
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder")
    if fmt == "jsonl":
        handle = partial_path(out).open("w", encoding="utf-8")
        return JsonLinesExporter(handle), handle
    binary = partial_path(out).open("wb")
    return AvroExporter(binary, catalog), binary
