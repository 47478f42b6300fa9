"""The stage seal's link, byte for byte as `leadbus.stage_seals` documents it: built here the plain way, part by part,
and compared with what the sealer and the replay's quick path compute (`record_link`, `lane_hash` + `link_after`)."""

from __future__ import annotations

import hashlib
import struct

import pytest

from leadbus.stage_seals import lane_hash, link_after, record_link


def _part(data: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if data is None else struct.pack(">I", len(data)) + data


def _documented(topic: str, partition: int, signer: str, key_id: str, chain: str, sequence: int, key: bytes | None,
                value: bytes | None, headers: list[tuple[str, bytes | None]], prev: bytes) -> bytes:
    others = b"".join(_part(name.encode()) + _part(v or b"") for name, v in headers
                      if not name.startswith("leadbus-stage-"))
    parts = [topic.encode(), str(partition).encode(), signer.encode(), key_id.encode(), chain.encode(),
             str(sequence).encode()]
    message = b"leadbus-stage-link-v1\x00" + b"".join(_part(p) for p in parts) + _part(key) + _part(value) \
        + _part(others) + _part(prev)
    return hashlib.sha256(message).digest()


CASES = [
    (b"case-1", b"\xc3\x01" + bytes(range(256)) * 3, [], bytes(32)),
    (None, None, [], b"\x01" * 32),
    (b"", b"", [("content-type", b"avro"), ("empty", None)], b"\x02" * 32),
    (b"k", b"v" * 70_000, [("leadbus-stage-chain", b"00000000000000b2"), ("x", b"y")], b"\x03" * 32),
]


@pytest.mark.parametrize(("key", "value", "headers", "prev"), CASES)
def test_the_link_is_the_documented_hash(key: bytes | None, value: bytes | None,
                                         headers: list[tuple[str, bytes | None]], prev: bytes) -> None:
    lane = ("leadbus.cases", 4, "LEADBUS-linking", "0123456789abcdef", "00000000000000b2")
    expected = _documented(*lane, 123, key, value, headers, prev)
    assert record_link(*lane, 123, key, value, headers, prev) == expected
    assert link_after(lane_hash(*lane), b"123", key, value, headers, prev) == expected
    assert link_after(lane_hash(*lane), b"123", key, value, iter(headers), prev) == expected  # any iterable
