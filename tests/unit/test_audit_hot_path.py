"""The replay's per-record shortcuts read what the long way reads: headers read once, the stage link without a scan for
other headers when the seal's are all there is."""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import packaged_catalog
from leadbus.signing import ALL_SEAL_HEADERS, PUBLISHER_HEADER, KeyRegistry, PublisherKey, key_id_of
from leadbus.stage_seals import STAGE_SEAL_HEADERS, StageSealer
from leadbus.topics import CASES
from tests.unit.test_audit_vouched import STAMP, T0

CATALOG = packaged_catalog()


def test_the_seal_headers_read_once_give_what_a_scan_gives() -> None:
    rng = random.Random(5)
    names = [*ALL_SEAL_HEADERS, *STAGE_SEAL_HEADERS, "content-type", "x"]
    for _ in range(500):
        headers = tuple((rng.choice(names), rng.choice([None, b"", b"MPS.11"])) for _ in range(rng.randrange(0, 8)))
        record = ReplayRecord(CASES, 0, 0, STAMP, None, b"", headers, CATALOG)
        scanned = any(name in ALL_SEAL_HEADERS for name, _ in headers)
        for _ in range(2):  # asked again: the same answer
            assert record.has_seal() is scanned
            assert record.sealed_publisher() == record.header(PUBLISHER_HEADER)


def test_a_header_added_to_a_sealed_record_breaks_its_chain_and_sealed_other_headers_verify() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
    sealer = StageSealer("LEADBUS-linking", key, "00000000000000d1")
    registry = KeyRegistry()
    registry.apply(PublisherKey(sealer.signer, key_id_of(sealer.public_key), sealer.public_key, T0, T0,
                                require_signed=False))
    outputs = [(CASES, 0, b"C-%d" % i, b"v%d" % i, [("content-type", b"avro")] if i % 2 else []) for i in range(6)]
    sealed = sealer.seal(outputs)
    rows = [(k, v, list(h)) for (_, _, k, v, _), h in zip(outputs, sealed, strict=True)]

    def check(rows: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> list[tuple[str, int | None]]:
        verifier = StageSealVerifier(registry)
        found = []
        for offset, (k, v, h) in enumerate(rows):
            found += verifier.check(ReplayRecord(CASES, 0, offset, STAMP, k, v, tuple(h), CATALOG))
        found += verifier.finish()
        return [(f.check, f.offset) for f in found]

    assert check(rows) == []
    added = list(rows)
    added[2] = (rows[2][0], rows[2][1], [*rows[2][2], ("x-added", b"1")])  # a header of no seal, after sealing
    assert ("STAGE_CHAIN_BROKEN", 2) in check(added)
    removed = list(rows)
    removed[1] = (rows[1][0], rows[1][1], [h for h in rows[1][2] if h[0] != "content-type"])
    assert ("STAGE_CHAIN_BROKEN", 1) in check(removed)
