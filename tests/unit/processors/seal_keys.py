"""Publisher keys for the unit tests of signed intake: fixed seeds, registered a month before `NOW`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.signing import PublisherKey, key_id_of, public_bytes

NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


def key_of(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def registered(key: Ed25519PrivateKey, publisher: str, **changes: object) -> PublisherKey:
    """`key` registered for `publisher` since 30 days before NOW, with `changes` (revocation, validity…)."""
    raw = public_bytes(key.public_key())
    return replace(PublisherKey(publisher, key_id_of(raw), raw, NOW - timedelta(days=30), NOW - timedelta(days=30)),
                   **changes)  # type: ignore[arg-type]
