"""Callers of the gateway: per-system API tokens, stored hashed, each mapped to the agency's principal.

The tokens file (JSON, 0600) holds no token, only its SHA-256:

    {"agency": "SAMR", "tokens": [{"system": "hz-case-system", "sha256": "…", "created": "…"}]}

A token is 32 random bytes (`lbt_` + base64url), so a single fast hash is enough: there is nothing to
brute-force, unlike a password (dashboard passwords get argon2). A lookup compares digests in
constant time. The file is re-read when it changes, so `leadbus gateway token add|revoke` takes effect
without a restart. Every caller acts as the agency's principal (`publisher-<AGENCY>`): the gateway
speaks for one agency and one province, and the caller's system name goes into the access log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TOKEN_PREFIX = "lbt_"


@dataclass(frozen=True)
class Caller:
    system: str
    principal: str


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=2, sort_keys=True, ensure_ascii=False)
        out.write("\n")
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"tokens": []}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("tokens"), list):
        raise ValueError(f"{path}: not a gateway tokens file")
    return doc


def add_token(path: Path, system: str, agency: str, token: str | None = None) -> str:
    """Create a token for `system` (printed once by the CLI; only its digest is kept) and return it."""
    if not system or any(c.isspace() for c in system):
        raise ValueError("a system name is one word, e.g. hz-case-system")
    doc = _read(path)
    if doc.get("agency") not in (None, agency):
        raise ValueError(f"{path} holds tokens of {doc['agency']}, not {agency}")
    token = token or new_token()
    doc["agency"] = agency
    doc["tokens"].append({"system": system, "sha256": token_digest(token),
                          "created": datetime.now(UTC).isoformat(timespec="seconds")})
    _write(path, doc)
    return token


def revoke_tokens(path: Path, system: str) -> int:
    doc = _read(path)
    kept = [t for t in doc["tokens"] if t.get("system") != system]
    removed = len(doc["tokens"]) - len(kept)
    doc["tokens"] = kept
    _write(path, doc)
    return removed


class TokenStore:
    """The tokens file, re-read when its modification time changes."""

    def __init__(self, path: Path, agency: str) -> None:
        self.path, self.agency = path, agency
        self.principal = f"publisher-{agency}"
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._digests: list[tuple[bytes, str]] = []
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._digests = None, []
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        doc = _read(self.path)
        if doc.get("agency") not in (None, self.agency):
            raise ValueError(f"{self.path} holds tokens of {doc['agency']}, not {self.agency}")
        self._digests = [(bytes.fromhex(t["sha256"]), str(t["system"])) for t in doc["tokens"]]
        self._stamp = stamp

    def caller(self, token: str | None) -> Caller | None:
        if not token:
            return None
        with self._lock:
            self._load()
            digests = list(self._digests)
        digest = hashlib.sha256(token.encode()).digest()
        found: str | None = None
        for known, system in digests:  # every entry compared, in constant time
            if hmac.compare_digest(known, digest):
                found = system
        return Caller(found, self.principal) if found is not None else None
