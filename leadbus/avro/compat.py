"""Avro schema-resolution compatibility: can a reader schema read what a writer schema wrote?

Follows the resolution rules of the Avro specification on parsed (expanded) schemas.
FULL_TRANSITIVE means every pair of released versions is compatible in both directions.
"""

from __future__ import annotations

from typing import Any

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _name(schema: Any) -> str:
    return str(schema.get("name", "")).rsplit(".", 1)[-1]


def incompatibilities(reader: Any, writer: Any, path: str = "") -> list[str]:
    """Every reason the reader cannot read the writer's data; empty when compatible."""
    here = path or "<root>"
    w_type, r_type = _type_name(writer), _type_name(reader)
    if w_type == "union":
        return [p for i, branch in enumerate(writer) for p in incompatibilities(reader, branch, f"{path}[{i}]")]
    if r_type == "union":
        for branch in reader:
            if not incompatibilities(branch, writer, path):
                return []
        return [f"{here}: writer type {w_type} matches no branch of the reader's union"]
    if w_type != r_type:
        if r_type in _PROMOTIONS.get(w_type, set()):
            return []
        return [f"{here}: writer type {w_type} cannot be read as {r_type}"]
    if r_type == "record":
        return _records(reader, writer, path)
    if r_type == "enum":
        if _name(reader) != _name(writer):
            return [f"{here}: enum name {_name(writer)} != {_name(reader)}"]
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and reader.get("default") is None:
            return [f"{here}: reader enum lacks symbols {missing} and has no default"]
        return []
    if r_type == "fixed":
        if _name(reader) != _name(writer) or reader["size"] != writer["size"]:
            return [f"{here}: fixed {_name(writer)}({writer['size']}) != {_name(reader)}({reader['size']})"]
        return []
    if r_type == "array":
        return incompatibilities(reader["items"], writer["items"], f"{path}[]")
    if r_type == "map":
        return incompatibilities(reader["values"], writer["values"], f"{path}{{}}")
    return []


def _records(reader: Any, writer: Any, path: str) -> list[str]:
    here = path or "<root>"
    if _name(reader) != _name(writer):
        return [f"{here}: record name {_name(writer)} != {_name(reader)}"]
    problems: list[str] = []
    writer_fields = {f["name"]: f for f in writer["fields"]}
    for field in reader["fields"]:
        names = [field["name"], *field.get("aliases", [])]
        match = next((writer_fields[n] for n in names if n in writer_fields), None)
        sub = f"{path}.{field['name']}" if path else field["name"]
        if match is None:
            if "default" not in field:
                problems.append(f"{sub}: reader field has no default and the writer lacks it")
            continue
        problems.extend(incompatibilities(field["type"], match["type"], sub))
    return problems


def full_incompatibilities(old: Any, new: Any) -> list[str]:
    """Both directions: new readers read old data (backward) and old readers read new data (forward)."""
    backward = [f"backward: {p}" for p in incompatibilities(new, old)]
    forward = [f"forward: {p}" for p in incompatibilities(old, new)]
    return backward + forward
