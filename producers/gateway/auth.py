"""Callers of the gateway: per-system API tokens (stored hashed) or client certificates, each mapped to the
agency's principal.

The tokens file (JSON, 0600) holds no token, only its SHA-256:

    {"agency": "SAMR", "tokens": [{"system": "hz-case-system", "sha256": "…", "created": "…"}]}

A token is 32 random bytes (`lbt_` + base64url), so a single fast hash is enough: there is nothing to
brute-force, unlike a password (dashboard passwords get argon2). A lookup compares digests in
constant time. The file is re-read when it changes, so `leadbus gateway token add|revoke` takes effect
without a restart. Every caller acts as the agency's principal (`publisher-<AGENCY>`): the gateway
speaks for one agency and one province, and the caller's system name goes into the access log.

Client certificates (mutual TLS) are the other way in. The TLS layer only lets through certificates issued
by the callers' CA (`--client-ca`); which of those may call, and as which system, is the certificates file
beside the tokens file (JSON, 0600), one SHA-256 fingerprint of a certificate's DER per entry:

    {"agency": "SAMR", "certificates": [{"system": "nb-case-system", "sha256": "…", "subject": "CN=…",
                                          "not_after": "…", "created": "…"}]}

Pinning the certificate itself, not its subject, means a certificate the CA issued for anyone else (or
re-issued under the same name) gets nothing until it is added with `leadbus gateway-cert`.
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

from cryptography import x509
from cryptography.hazmat.primitives import serialization

TOKEN_PREFIX = "lbt_"


@dataclass(frozen=True)
class Caller:
    system: str
    principal: str
    via: str = "token"  # token | certificate
    certificate: str | None = None  # the client certificate's SHA-256 fingerprint, when it came in by one


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


def _read(path: Path, entries: str = "tokens") -> dict[str, Any]:
    if not path.exists():
        return {entries: []}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get(entries), list):
        raise ValueError(f"{path}: not a gateway {entries} file")
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


def _revoke(path: Path, system: str, entries: str) -> int:
    doc = _read(path, entries)
    kept = [t for t in doc[entries] if t.get("system") != system]
    removed = len(doc[entries]) - len(kept)
    doc[entries] = kept
    _write(path, doc)
    return removed


def revoke_tokens(path: Path, system: str) -> int:
    return _revoke(path, system, "tokens")


class _SystemsFile:
    """A tokens or certificates file of one agency: SHA-256 digests → systems, re-read when it changes."""

    entries = "tokens"

    def __init__(self, path: Path, agency: str) -> None:
        self.path, self.agency = path, agency
        self.principal = f"publisher-{agency}"
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._systems: dict[str, str] = {}
        with self._lock:
            self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._systems = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        doc = _read(self.path, self.entries)
        if doc.get("agency") not in (None, self.agency):
            raise ValueError(f"{self.path} holds {self.entries} of {doc['agency']}, not {self.agency}")
        self._systems = {str(t["sha256"]).lower(): str(t["system"]) for t in doc[self.entries]}
        self._stamp = stamp

    def systems(self) -> dict[str, str]:
        with self._lock:
            self._load()
            return self._systems


class TokenStore(_SystemsFile):
    """The tokens file: a presented token → its caller."""

    def caller(self, token: str | None) -> Caller | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found: str | None = None
        for known, system in self.systems().items():  # every entry compared, in constant time
            if hmac.compare_digest(bytes.fromhex(known), digest):
                found = system
        return Caller(found, self.principal) if found is not None else None


# -- client certificates ---------------------------------------------------------------------------

def certificate_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def add_certificate(path: Path, system: str, agency: str, pem: bytes) -> str:
    """Let the holder of this certificate (PEM) call as `system`; returns its SHA-256 fingerprint."""
    if not system or any(c.isspace() for c in system):
        raise ValueError("a system name is one word, e.g. hz-case-system")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"not a PEM certificate: {exc}") from None
    doc = _read(path, "certificates")
    if doc.get("agency") not in (None, agency):
        raise ValueError(f"{path} holds certificates of {doc['agency']}, not {agency}")
    fingerprint = certificate_fingerprint(cert.public_bytes(serialization.Encoding.DER))
    if any(c.get("sha256") == fingerprint for c in doc["certificates"]):
        raise ValueError(f"this certificate is already mapped ({fingerprint[:16]}…)")
    doc["agency"] = agency
    doc["certificates"].append({"system": system, "sha256": fingerprint, "subject": cert.subject.rfc4514_string(),
                                "not_after": cert.not_valid_after_utc.isoformat(timespec="seconds"),
                                "created": datetime.now(UTC).isoformat(timespec="seconds")})
    _write(path, doc)
    return fingerprint


def revoke_certificates(path: Path, system: str) -> int:
    return _revoke(path, system, "certificates")


class CertificateStore(_SystemsFile):
    """The certificates file: a verified client certificate (DER) → its caller."""

    entries = "certificates"

    def caller(self, der: bytes | None) -> Caller | None:
        """`der` is a certificate the TLS layer already verified against the callers' CA (or None)."""
        if not der:
            return None
        fingerprint = certificate_fingerprint(der)
        system = self.systems().get(fingerprint)
        return Caller(system, self.principal, "certificate", fingerprint) if system is not None else None
