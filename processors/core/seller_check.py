"""Platform seller checks (平台资格审查), pure: the query's one identifier, the index, the signed minimal answer.

An e-commerce platform asks about one seller by one identifier — 统一社会信用代码 (`uscc`), resident ID
number (`rid`), shop (`shop`, with the platform) or domain (`domain`) — normalised here the way linking
normalises a lead's, so that `91330100ＭＡ…` and a lower-case code find the same entity. The answer says
only whether the seller is blacklisted now and whether a case about it is open; it repeats the query
as sent and carries nothing else: no case id, no name, no other identifier. It is signed with the bus's
Ed25519 key over its canonical JSON, so the platform can keep it as evidence of what it was told.

`SellerIndex` is what the API holds: which identifiers a listed entry names, and which open cases
name which identifiers, fed from `leadbus.blacklist`, `leadbus.cases` and `leadbus.handover`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from leadbus.identifiers import IdentifierError, check_uscc, normalize_resident_id
from leadbus.processors.core.linking import canonical_shop_id, platform_code
from leadbus.processors.core.normalize import registrable_domain
from leadbus.signing import key_id_of

KINDS = ("uscc", "rid", "shop", "domain")
#: Handover phases after which the case is no longer open at the agency (closed for the check and disclosure).
CLOSING_PHASES = frozenset({"COMPLETED", "CLOSED_NOT_FILED", "RETURN_ANSWERED"})
MAX_VALUE = 200


class QueryError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def identifier_of(kind: str, value: str, platform: str | None = None) -> str:
    """The `kind:value` identifier of the bus for a platform's query; QueryError when it cannot be one."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE:
        raise QueryError("QUERY_VALUE", f"value is 1–{MAX_VALUE} characters")
    try:
        if kind == "uscc":
            return f"uscc:{check_uscc(value).value}"
        if kind == "rid":
            return f"rid:{normalize_resident_id(value)}"
    except IdentifierError as exc:
        raise QueryError(exc.code, exc.message) from None
    if kind == "shop":
        code = platform_code(platform)
        if not code or len(code) > 40 or not code.replace("-", "").replace("_", "").isalnum():
            raise QueryError("QUERY_PLATFORM", "a shop query names its platform (e.g. taobao, jd, pinduoduo)")
        return f"shop:{code}:{canonical_shop_id(code, value)}"
    if kind == "domain":
        domain = registrable_domain(value.strip())
        if domain is None or "." not in domain:
            raise QueryError("QUERY_DOMAIN", f"{value!r} has no registrable domain")
        return f"domain:{domain}"
    raise QueryError("QUERY_KIND", f"kind is one of {', '.join(KINDS)}")


@dataclass
class SellerIndex:
    """Listed identifiers and the open cases naming each identifier (in memory, rebuilt from the topics)."""

    listed: dict[str, frozenset[str]] = field(default_factory=dict)  # entry id → identifiers, while LISTED
    case_ids: dict[str, frozenset[str]] = field(default_factory=dict)  # case id → identifiers, while open
    closed: set[str] = field(default_factory=set)
    _by_listed: dict[str, set[str]] = field(default_factory=dict)
    _by_case: dict[str, set[str]] = field(default_factory=dict)

    def on_entry(self, entry_id: str, identifiers: Iterable[str], status: str) -> None:
        for ident in self.listed.pop(entry_id, frozenset()):
            self._by_listed.get(ident, set()).discard(entry_id)
        if status == "LISTED":
            ids = frozenset(identifiers)
            self.listed[entry_id] = ids
            for ident in ids:
                self._by_listed.setdefault(ident, set()).add(entry_id)

    def on_case(self, case_id: str, identifiers: Iterable[str], merged_into: str | None) -> None:
        for ident in self.case_ids.pop(case_id, frozenset()):
            self._by_case.get(ident, set()).discard(case_id)
        if merged_into is None and case_id not in self.closed:
            ids = frozenset(i for i in identifiers if i.split(":", 1)[0] in KINDS)
            self.case_ids[case_id] = ids
            for ident in ids:
                self._by_case.setdefault(ident, set()).add(case_id)

    def on_step(self, case_id: str, phase: str) -> None:
        if phase in CLOSING_PHASES:
            self.closed.add(case_id)
            self.on_case(case_id, (), None)

    def lookup(self, identifier: str) -> tuple[bool, bool]:
        """(blacklisted, under an open case)."""
        return bool(self._by_listed.get(identifier)), bool(self._by_case.get(identifier))


def canonical_bytes(answer: Mapping[str, Any]) -> bytes:
    """What is signed: the answer without its signature, as sorted, compact UTF-8 JSON."""
    body = {k: v for k, v in answer.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def signed_answer(query: Mapping[str, str], blacklisted: bool, open_case: bool, checked_at: datetime,
                  answer_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The minimal answer: the query as sent, two booleans, when, an id for the audit log, and the signature."""
    public = key.public_key().public_bytes_raw()
    answer: dict[str, Any] = {"answer_id": answer_id, "query": dict(query), "blacklisted": blacklisted,
                              "open_case": open_case, "checked_at": checked_at.isoformat(timespec="milliseconds"),
                              "key_id": key_id_of(public), "algorithm": "Ed25519"}
    answer["signature"] = base64.b64encode(key.sign(canonical_bytes(answer))).decode()
    return answer


def verify_answer(answer: Mapping[str, Any], public_key: bytes) -> bool:
    """True when the answer is exactly what the holder of `public_key` signed."""
    try:
        signature = base64.b64decode(str(answer["signature"]), validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, canonical_bytes(answer))
    except (KeyError, ValueError, InvalidSignature):
        return False
    return answer.get("key_id") == key_id_of(public_key)
