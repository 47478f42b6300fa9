"""A schema on `leadbus.schemas` with the fingerprint of a known one but reading otherwise (issue #14, round 4): the
fingerprint is a CRC-64 of the Parsing Canonical Form, which leaves logical types out, so `timestamp-millis` made
`timestamp-micros` keeps it. The catalog keeps the first (packaged) and the replay names the record (SCHEMA_ALTERED);
every packaged schema as `leadbus schemas publish` writes it reads the same (no false finding)."""

from __future__ import annotations

import json
from typing import Any

from leadbus.avro import packaged_catalog
from leadbus.schema_topic import _reads, schema_record


def _micros(schema: Any) -> bool:
    """Turn the first timestamp-millis in `schema` into timestamp-micros, in place; whether there was one."""
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            schema["logicalType"] = "timestamp-micros"
            return True
        return any(_micros(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_micros(v) for v in schema)
    return False


def test_every_packaged_schema_as_published_reads_as_itself_and_one_made_micros_does_not() -> None:
    catalog = packaged_catalog()
    altered = 0
    for entry in list(catalog):
        body = json.loads(schema_record(entry)[1])
        known = len(catalog)
        again = catalog.add(body["schema"], int(body.get("version") or 0))
        assert len(catalog) == known and again is entry and _reads(again.expanded) == _reads(body["schema"])
        if _micros(body["schema"]):
            again = catalog.add(body["schema"], 0)
            assert again is entry and _reads(again.expanded) != _reads(body["schema"]), entry.name
            altered += 1
    assert altered > 5
