"""Every reason a stage can put on a dead letter is documented in docs/reason-codes.md."""

from __future__ import annotations

import re
from pathlib import Path

from leadbus.models import _BUILTIN_CODES

ROOT = Path(__file__).resolve().parents[2]
_EMITTED = re.compile(r"(?:_fail|IdentifierError|reject|Rejection|DecodeError|_dead_result\(\s*record,|"
                      r"_rejected\(record,|Refusal|Refused|_uuid_text\(value,)\(?\s*\"([A-Z][A-Z0-9_]+)\"")
_NAMED = re.compile(r"\b(?:reason|verdict)\s*=\s*\"([A-Z][A-Z0-9_]+)\"")


def _emitted() -> set[str]:
    codes: set[str] = set(_BUILTIN_CODES.values()) | {"INVALID_FIELD", "REVISION_CONFLICT", "STALE_REVISION",
                                                       "STAGE_FAILED"}
    for folder in ("leadbus", "processors", "sinks", "producers"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            codes |= set(_EMITTED.findall(text)) | set(_NAMED.findall(text))
    return codes


def _documented() -> set[str]:
    text = (ROOT / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    codes: set[str] = set()
    for cell in re.findall(r"^\| (`[^|]+) \|", text, re.MULTILINE):
        names = re.findall(r"`([A-Z0-9_]+)`", cell)
        stem = names[0].rsplit("_", 1)[0] if names else ""
        codes |= {f"{stem}{n}" if n.startswith("_") else n for n in names}
    return codes


def test_every_emitted_reason_is_documented() -> None:
    emitted = _emitted()
    assert {"OVERSIZED", "STAGE_ERROR", "OUTPUT_OVERSIZED", "REVISION_CONFLICT", "DECODE_NOT_AVRO"} <= emitted
    missing = emitted - _documented()
    assert not missing, f"undocumented reason codes: {sorted(missing)}"
