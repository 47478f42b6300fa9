"""The one builder of dead letters (`LeadRejected`), for intake's rejections and every stage's failures.

A dead letter carries the reason, a human message, the original record value with its size and
SHA-256, and its source coordinates. An original too big to carry (an oversized record) is cut to
a bounded prefix; its size and digest still identify it, and the archive keeps the whole record.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from leadbus.limits import DEAD_LETTER_MAX_MESSAGE, DEAD_LETTER_MAX_ORIGINAL, DEAD_LETTER_PREFIX_BYTES
from leadbus.processors.core.records import Source


def carried_original(original: bytes, *, oversized: bool = False) -> tuple[bytes, bool]:
    """What a dead letter keeps of `original`, and whether that is only a prefix."""
    if oversized or len(original) > DEAD_LETTER_MAX_ORIGINAL:
        return original[:DEAD_LETTER_PREFIX_BYTES], True
    return original, False


def bounded_text(text: str, limit: int = DEAD_LETTER_MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dead_letter_record(
    *,
    reason: str,
    message: str,
    original: bytes,
    source: Source,
    now: datetime,
    field: str | None = None,
    lead_id: str | None = None,
    agency: str | None = None,
    oversized: bool = False,
) -> dict[str, Any]:
    """The `LeadRejected` event (Avro record form)."""
    carried, truncated = carried_original(original, oversized=oversized)
    return {
        "reason": reason,
        "message": bounded_text(message),
        "field": bounded_text(field, 200) if field is not None else None,
        "lead_id": bounded_text(lead_id, 200) if lead_id is not None else None,
        "publisher_agency": agency,
        "original": carried,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        "rejected_at": now,
        "original_size": len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "original_truncated": truncated,
    }
