"""Signing in the publisher SDK: the private key (a file or the environment, never the bus) and the sequences.

    sealer = SigningSealer.from_file("SAMR.33", "/etc/leadbus/SAMR.33.key")   # or .from_env("SAMR.33")
    with Publisher("SAMR", "33", bootstrap_servers=..., sealer=sealer) as pub:
        pub.publish(lead)

The publisher chooses each event's partition itself (the SDK does it for a sealer with
`per_partition = True`) and numbers each partition of its topic from 1: a *lane* of the publisher
id, whatever key signs it. The numbers survive restarts in a small sequence file next to the key
(`<publisher>.seq` in the key's folder, locked while a publisher holds it): a block of numbers is
reserved ahead and written down before any is used, so a crash skips at most one block — a gap
intake reports as a warning, never a replay. A key rotation keeps the sequence file: numbering
goes on under the new key.

Seals are v2 (`leadbus.signing`): each event also signs the link digest of the previous event the
sealer sealed in its lane (`leadbus-prev`), so an auditor verifies one signature per chain instead of
one per event. The last digest lives in memory only: after a restart the chain starts again from
zeros (`CHAIN_START`), which an auditor's check takes as a new chain, never as tampering.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from leadbus.pki import write_secret
from leadbus.signing import CHAIN_START, SEQUENCE_HEADER, Seal, link_digest, parse_publisher_id, public_bytes, sign

KEY_ENV = "LEADBUS_SIGNING_KEY"
CONTENT_TYPE = ("content-type", b"application/vnd.leadbus.avro")


def load_private_key(data: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, or the 32-byte seed in base64."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = load_pem_private_key(text, password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the signing key is not an Ed25519 key")
        return key
    seed = base64.b64decode(text, validate=True)
    if len(seed) != 32:
        raise ValueError("a base64 Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(data: bytes) -> bytes:
    """A PEM public key, or the 32 raw bytes in base64 → the raw public key."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = load_pem_public_key(text)
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if len(raw) != 32:
            raise ValueError("not an Ed25519 public key")
        return raw
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return raw


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


class MemorySequences:
    """Lane counters in memory only: for tests and one-shot tools (a restart would replay numbers)."""

    def __init__(self) -> None:
        self.issued: dict[str, int] = {}

    def next(self, lane: str) -> int:
        n = self.issued.get(lane, 0) + 1
        self.issued[lane] = n
        return n

    def give_back(self, lane: str, number: int) -> bool:
        if self.issued.get(lane) != number:
            return False
        self.issued[lane] = number - 1
        return True

    def close(self) -> None:
        return None


class SequenceFile(MemorySequences):
    """Lane counters kept in a file, reserving `block` numbers ahead; exclusive to one process (flock)."""

    def __init__(self, path: Path | str, block: int = 1000) -> None:
        super().__init__()
        self.path = Path(path)
        self.block = max(1, block)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock: IO[bytes] | None = open(self.path.with_suffix(self.path.suffix + ".lock"), "ab")  # noqa: SIM115
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RuntimeError(f"{self.path} is held by another publisher process: one signer per file") from None
        self.reserved: dict[str, int] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.issued = dict(self.reserved)  # after a crash, start above everything that may have been used

    def next(self, lane: str) -> int:
        if self._lock is None:
            raise RuntimeError(f"{self.path} is closed")
        n = super().next(lane)
        if n > self.reserved.get(lane, 0):
            self.reserved[lane] = n + self.block - 1
            self._write(self.reserved)
        return n

    def _write(self, counters: dict[str, int]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as out:
            json.dump(counters, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def close(self) -> None:
        """A clean stop records exactly what was used: the next start continues without a gap."""
        if self._lock is None:
            return
        self._write(self.issued)
        self.reserved = dict(self.issued)
        self._lock.close()
        self._lock = None


class SigningSealer:
    """Seals each event for one publisher id: its lane's next number and an Ed25519 signature (`EventSealer`)."""

    per_partition = True

    def __init__(self, publisher: str, private_key: Ed25519PrivateKey,
                 sequences: MemorySequences | None = None) -> None:
        parse_publisher_id(publisher)
        self.publisher = publisher
        self.private_key = private_key
        self.public_key = public_bytes(private_key.public_key())
        self.sequences = sequences if sequences is not None else MemorySequences()
        self._links: dict[str, tuple[bytes, bytes]] = {}  # lane → (this chain's last link digest, the one before)

    @classmethod
    def from_file(cls, publisher: str, key_path: Path | str, sequence_path: Path | str | None = None,
                  block: int = 1000) -> SigningSealer:
        key_path = Path(key_path)
        key = load_private_key(key_path.read_bytes())
        return cls(publisher, key, SequenceFile(sequence_path or key_path.parent / f"{publisher}.seq", block))

    @classmethod
    def from_env(cls, publisher: str, sequence_path: Path | str, variable: str = KEY_ENV,
                 block: int = 1000) -> SigningSealer:
        data = os.environ.get(variable)
        if not data:
            raise RuntimeError(f"set {variable} to the publisher's Ed25519 private key (PEM or base64 seed)")
        return cls(publisher, load_private_key(data.encode()), SequenceFile(sequence_path, block))

    def seal(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> list[tuple[str, bytes]]:
        if partition is None:
            raise ValueError("a signing sealer needs the partition the event goes to (lanes are per partition)")
        lane = f"{topic}:{partition}"
        number = self.sequences.next(lane)
        prev = self._links[lane][0] if lane in self._links else CHAIN_START
        seal = sign(self.private_key, self.publisher, topic, partition, number, value, prev)
        self._links[lane] = (link_digest(seal.message(topic, value), seal.signature), prev)
        return [CONTENT_TYPE, *seal.headers()]

    def unseal(self, topic: str, partition: int | None, headers: list[tuple[str, bytes]]) -> None:
        """The event was not sent after all (refused as oversized): give its number (and chain link) back if last."""
        found = Seal.from_headers(headers)
        if found is not None and partition is not None:
            lane = f"{topic}:{partition}"
            if self.sequences.give_back(lane, found.sequence) and lane in self._links:
                self._links[lane] = (self._links[lane][1], self._links[lane][1])

    def close(self) -> None:
        self.sequences.close()


__all__ = ["KEY_ENV", "SEQUENCE_HEADER", "MemorySequences", "SequenceFile", "SigningSealer", "load_private_key",
           "load_public_key", "private_pem", "public_pem", "write_secret"]
