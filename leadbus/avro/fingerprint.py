"""CRC-64-AVRO (Rabin) fingerprints of schemas' Parsing Canonical Form (Avro spec §Schema Fingerprints)."""

from __future__ import annotations

_EMPTY = 0xC15D213AA4D7A795


def _table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def fingerprint_bytes(canonical_form: str) -> bytes:
    """The 8 bytes that follow `C3 01` in single-object encoding: little-endian, as the spec says."""
    return crc64_avro(canonical_form.encode("utf-8")).to_bytes(8, "little")
