"""Schemathesis hooks for the gateway run (SCHEMATHESIS_HOOKS=tests.schemathesis_hooks): NDJSON bodies."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """A generated string is sent as it is; anything else as one JSON line per item (or one line)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item, ensure_ascii=False) for item in items).encode()
