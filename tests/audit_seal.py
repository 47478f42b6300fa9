"""A small seal verifier for tests: Ed25519 over the record, sequence numbers per lane, through the replay's slot.

It implements `leadbus.audit.verification.Verifier` with the header names of DESIGN §7 (`leadbus-publisher`,
`leadbus-key-id`, `leadbus-partition`, `leadbus-seq`, `leadbus-signature`), so the plumbing from a record's
headers to a located finding is proven end to end before the bus's own verifier is wired into the slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from leadbus.audit.verification import Finding, LaneTracker, ReplayRecord
from leadbus.signing import KEY_ID_HEADER, PARTITION_HEADER, PUBLISHER_HEADER, SEQUENCE_HEADER, SIGNATURE_HEADER

_DOMAIN = b"leadbus-event-signature-v1\x00"


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def message(topic: str, partition: int, publisher: str, kid: str, sequence: int, value: bytes) -> bytes:
    parts = (topic.encode(), str(partition).encode(), publisher.encode(), kid.encode(), str(sequence).encode(), value)
    return _DOMAIN + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def seal(private: Ed25519PrivateKey, publisher: str, topic: str, partition: int, sequence: int,
         value: bytes) -> list[tuple[str, bytes]]:
    kid = key_id(private.public_key())
    signature = private.sign(message(topic, partition, publisher, kid, sequence, value))
    return [(PUBLISHER_HEADER, publisher.encode()), (KEY_ID_HEADER, kid.encode()),
            (PARTITION_HEADER, str(partition).encode()), (SEQUENCE_HEADER, str(sequence).encode()),
            (SIGNATURE_HEADER, signature)]


class TestSealVerifier:
    """Signatures against a {(publisher, key id): public key} registry; sequences per (publisher, topic, partition)."""

    name = "seals (test)"
    __test__ = False

    def __init__(self, keys: Mapping[tuple[str, str], Ed25519PublicKey]) -> None:
        self.keys = keys
        self.lanes = LaneTracker()

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        found = {k: v or b"" for k, v in record.headers if k.startswith("leadbus-")}
        if SIGNATURE_HEADER not in found:
            return [Finding.at(record, "UNSIGNED", "no seal")]
        publisher, kid = found[PUBLISHER_HEADER].decode(), found[KEY_ID_HEADER].decode()
        partition, sequence = int(found[PARTITION_HEADER]), int(found[SEQUENCE_HEADER])
        key = self.keys.get((publisher, kid))
        if key is None:
            return [Finding.at(record, "UNKNOWN_KEY", f"key {kid} of {publisher} is not registered")]
        try:
            key.verify(found[SIGNATURE_HEADER], message(record.topic, partition, publisher, kid, sequence,
                                                        record.value or b""))
        except InvalidSignature:
            return [Finding.at(record, "BAD_SIGNATURE", f"the signature of {publisher} does not match: forged or "
                                                        "altered")]
        if partition != record.partition:
            return [Finding.at(record, "WRONG_PARTITION", f"signed for partition {partition}")]
        return self.lanes.observe((publisher, record.topic, partition), sequence, record)

    def finish(self) -> Iterable[Finding]:
        return self.lanes.finish()
