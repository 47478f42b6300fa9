"""Phones as waybills and shop pages show them: full, or masked (隐私面单) down to their last four digits.

Since 2019 couriers print privacy waybills (隐私面单): the sender's and recipient's phone appear as
``138****5678``; shop pages and complaint records often give only "尾号5678" (the last four digits). Such a
phone is a *weak* signal: the last four digits are compared by the suggestion scorer, never linked on.
Pure; cheap (compiled patterns, one pass).
"""

from __future__ import annotations

import re
from functools import lru_cache

from leadbus.identifiers import IdentifierError, normalize_mobile, to_halfwidth

_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212().·/]+")
_TAIL_WORDS = re.compile(r"^(?:手机|电话|联系电话|手机号)?(?:尾号|后四位|tail)[:：]?", re.IGNORECASE)
_MASK = re.compile(r"[*xX＊●•#?？]")
# Optional country code, up to 7 leading digits, the masked middle (at least one mask character unless only the
# tail is given), and at least four digits at the end.
_MASKED = re.compile(r"^(?:\+?86)?(\d{0,7})(\**)(\d{4,8})$")
_LANDLINE = re.compile(r"^(?:\+?86|0086)?0?(\d{2,3})(\d{7,8})$")


@lru_cache(maxsize=65536)
def canonical_contact_phone(value: str) -> str | None:
    """``+8613812345678`` for a full mobile, ``138****5678`` / ``****5678`` for a masked one, the digits of a
    landline; None when it is none of these (the model refuses such a value, see `contact_phone_ok`)."""
    text = _SEPARATORS.sub("", to_halfwidth(value))
    text = _TAIL_WORDS.sub("", text)
    if not text:
        return None
    if "*" not in text and not _MASK.search(text):
        try:
            return normalize_mobile(text)
        except IdentifierError:
            pass
        if _LANDLINE.match(text.removeprefix("0086")) and len(text) >= 10:
            return re.sub(r"\D", "", text)
    masked = _MASK.sub("*", text)
    match = _MASKED.match(masked)
    if match is None:
        return None
    head, stars, tail = match.groups()
    if not stars and head:  # digits only, too short for a full number and not masked
        return None
    return f"{head}{stars or '****'}{tail[-4:]}" if len(tail) > 4 and stars else f"{head}{stars}{tail}"


def contact_phone_ok(value: str) -> bool:
    return canonical_contact_phone(value) is not None


def phone_tail(value: str) -> str | None:
    """The last four digits of a contact phone in any form (the part a privacy waybill keeps), or None."""
    canonical = canonical_contact_phone(value)
    if canonical is None:
        return None
    digits = canonical[-4:]
    return digits if digits.isdigit() else None
