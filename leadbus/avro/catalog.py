"""The schema catalog: every writer schema a reader may meet, by fingerprint.

Sources are the packaged `schemas/<name>/v<N>.avsc` files (every released version is kept)
and schemas registered at run time (those published on the compacted `leadbus.schemas`
topic). A file may reference named types of other schemas with the custom attribute
`"x-leadbus-requires": {"cn.leadbus.CaseLead": 1}`, pinning the version it embeds, so each
version's fingerprint never changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from leadbus.avro.fastread import Reader, compile_reader
from leadbus.avro.fastwrite import Writer, compile_writer
from leadbus.avro.fingerprint import fingerprint_bytes

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


class SchemaError(ValueError):
    """A schema file is malformed or references something the catalog lacks."""


@dataclass(frozen=True)
class SchemaEntry:
    """One writer schema: its full name, version (0 when unknown), parsed form and fingerprint."""

    name: str
    version: int
    source: Mapping[str, Any] = field(repr=False, compare=False)
    parsed: Any = field(repr=False, compare=False)
    canonical: str = field(repr=False)
    fingerprint: bytes = field(repr=False)
    writer: Writer | None = field(default=None, repr=False, compare=False)
    expanded: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    object_writer: Writer | None = field(default=None, repr=False, compare=False)
    # compiled reader of this writer's bytes (no resolution): None when the schema is beyond it
    reader: Reader | None = field(default=None, repr=False, compare=False)

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def _full_name(schema: Mapping[str, Any]) -> str:
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class SchemaCatalog:
    """Fingerprint → schema, plus the latest version of each name for writers and readers."""

    def __init__(self) -> None:
        self._by_fp: dict[bytes, SchemaEntry] = {}
        self._versions: dict[str, dict[int, SchemaEntry]] = {}

    def __len__(self) -> int:
        return len(self._by_fp)

    def __iter__(self) -> Iterator[SchemaEntry]:
        return iter(self._by_fp.values())

    def add(self, source: Mapping[str, Any], version: int = 0) -> SchemaEntry:
        named: dict[str, Any] = {}
        for dep_name, dep_version in dict(source.get("x-leadbus-requires", {})).items():
            dep = self.version(dep_name, int(dep_version))
            fastavro.parse_schema(dict(dep.source), named_schemas=named)
        try:
            parsed = fastavro.parse_schema(dict(source), named_schemas=named, expand=True)
        except Exception as exc:
            raise SchemaError(f"cannot parse schema {source.get('name')!r}: {exc}") from exc
        canonical = to_parsing_canonical_form(parsed)
        # A schema already here (a packaged one met again on `leadbus.schemas`: every reader loads them all) is not
        # compiled again for nothing: its writers and reader took ~10 ms a schema, a replay's load of the topic 0.3 s.
        known = self._by_fp.get(fingerprint_bytes(canonical))
        if known is not None:
            return known
        # Self-contained JSON (named types inlined), for the schemas topic and the archive.
        expanded: dict[str, Any] = dict(
            fastavro.parse_schema(dict(source), named_schemas=dict(named), expand=True, _write_hint=False)  # type: ignore[arg-type]
        )
        expanded.pop("x-leadbus-requires", None)
        entry = SchemaEntry(
            _full_name(source), version, source, parsed, canonical, fingerprint_bytes(canonical),
            compile_writer(parsed), expanded, compile_writer(parsed, from_attributes=True), compile_reader(parsed),
        )
        self._by_fp[entry.fingerprint] = entry
        if version:
            self._versions.setdefault(entry.name, {})[version] = entry
        return entry

    def add_json(self, text: str | bytes) -> SchemaEntry:
        """Register a schema met at run time (e.g. from the `leadbus.schemas` topic)."""
        try:
            source = json.loads(text)
        except ValueError as exc:
            raise SchemaError(f"schema is not JSON: {exc}") from exc
        return self.add(source, int(source.get("x-leadbus-version", 0)) if isinstance(source, dict) else 0)

    def by_fingerprint(self, fingerprint: bytes) -> SchemaEntry | None:
        return self._by_fp.get(fingerprint)

    def version(self, name: str, version: int) -> SchemaEntry:
        try:
            return self._versions[name][version]
        except KeyError:
            raise SchemaError(f"no version {version} of {name} in the catalog") from None

    def versions(self, name: str) -> list[SchemaEntry]:
        return [entry for _, entry in sorted(self._versions.get(name, {}).items())]

    def latest(self, name: str) -> SchemaEntry:
        versions = self._versions.get(name)
        if not versions:
            raise SchemaError(f"no schema named {name} in the catalog")
        return versions[max(versions)]

    def names(self) -> list[str]:
        return sorted(self._versions)


def _packaged_sources() -> list[tuple[int, dict[str, Any]]]:
    found: list[tuple[int, dict[str, Any]]] = []
    root = resources.files("leadbus.schemas")
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            match = _VERSION_FILE.match(item.name)
            if match:
                source = json.loads(item.read_text(encoding="utf-8"))
                source["x-leadbus-version"] = int(match.group(1))
                found.append((int(match.group(1)), source))
    return found


def load_packaged(catalog: SchemaCatalog) -> SchemaCatalog:
    pending = _packaged_sources()
    # Dependencies first: retry until every file whose requirements are present is added.
    while pending:
        progressed = False
        for item in list(pending):
            version, source = item
            requires = dict(source.get("x-leadbus-requires", {}))
            if all(int(v) in {e.version for e in catalog.versions(n)} for n, v in requires.items()):
                catalog.add(source, version)
                pending.remove(item)
                progressed = True
        if not progressed:
            names = [s.get("name") for _, s in pending]
            raise SchemaError(f"unresolvable x-leadbus-requires in {names}")
    return catalog


_PACKAGED: SchemaCatalog | None = None


def packaged_catalog() -> SchemaCatalog:
    """A fresh catalog holding every packaged schema version (parsed once per process)."""
    global _PACKAGED
    if _PACKAGED is None:
        _PACKAGED = load_packaged(SchemaCatalog())
    fresh = SchemaCatalog()
    fresh._by_fp = dict(_PACKAGED._by_fp)
    fresh._versions = {k: dict(v) for k, v in _PACKAGED._versions.items()}
    return fresh
