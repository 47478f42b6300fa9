"""The stages' sealing keys: where they live and how they are registered (as an agency gateway's key is).

Each exactly-once stage seals its outputs with its own Ed25519 key (`leadbus.stage_seals`). The private
half is a file `LEADBUS-<stage>.key` (PEM, mode 0600) in a folder the operator gives the stage
(`leadbus process --seal-keys DIR`, or `$LEADBUS_STAGE_KEYS`), never on the bus; the public half is a
`PublisherKey` of publisher `LEADBUS-<stage>` on `leadbus.publishers`, where auditors read it. `provision`
makes the missing keys and registers them (the admin principal's job: `leadbus keys provision-stages`,
and the demo does it at start). A stage started without a folder runs unsealed and logs so; a stage given
a folder without its key refuses to start (a sealing stage silently turned unsealed would look like seals
removed to every later replay).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from leadbus.clients import KafkaSettings
from leadbus.pki import write_secret
from leadbus.signing import PublisherKey, key_id_of, public_bytes
from leadbus.stage_seals import stage_signer

SEAL_KEYS_ENV = "LEADBUS_STAGE_KEYS"


class MissingStageKey(FileNotFoundError):
    """A seal-key folder was given, but the stage's key is not in it."""


def key_path(directory: Path, stage: str) -> Path:
    return directory / f"{stage_signer(stage)}.key"


def load_stage_key(directory: Path, stage: str) -> Ed25519PrivateKey:
    path = key_path(directory, stage)
    if not path.is_file():
        raise MissingStageKey(f"no seal key for stage {stage} at {path} (leadbus keys provision-stages makes it)")
    key = load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def provision(kafka: KafkaSettings | str, directory: Path, stages: Iterable[str],
              now: datetime | None = None) -> list[PublisherKey]:
    """Make each stage's key in `directory` if it has none; register every public half not yet registered."""
    from leadbus.publisher_keys import read_registry, write_keys

    now = now or datetime.now(UTC)
    registry = read_registry(kafka)
    new: list[PublisherKey] = []
    for stage in stages:
        path = key_path(directory, stage)
        if not path.is_file():
            write_secret(path, Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                                          NoEncryption()))
        raw = public_bytes(load_stage_key(directory, stage).public_key())
        signer, key_id = stage_signer(stage), key_id_of(raw)
        if registry.get(signer, key_id) is None:
            new.append(PublisherKey(signer, key_id, raw, now, now, require_signed=False))
    if new:
        write_keys(kafka, new)
    return new
