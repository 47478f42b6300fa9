"""A cut's tail's notes of accepted leads packed into one buffer for the pipe back to the parent (the reference of
`leadbus.audit._records.RunReader.pack_notes` and `packed_firsts`, which must agree with it).

The process reading the tail of `leadbus.leads.accepted` cut in two notes (lead id, revision, digest, partition,
offset) of each lead it meets (`AcceptedLeads.noted`), and the parent judges them after the head's
(`leadbus.audit.boundary`). Pickled as a list, 50,000 of those tuples cost ~80 ms in the tail (the pickler's memo of
150,000 objects) and ~40 ms to load in the parent, both on a 2-process replay's critical path; packed, one buffer is
copied, and the parent's C reader makes the rows' objects straight from it.

A row: the lead id's and the digest's UTF-8 sizes (u32), the revision, partition and offset (i64), all little-endian,
then the lead id's and the digest's UTF-8 bytes. Notes holding any other row (a str that is no UTF-8, an int past 64
bits, a row of another shape) are not packed: the list goes as it is.
"""

from __future__ import annotations

import struct
from typing import Any

Note = tuple[str, int, str, int, int]

_HEAD = struct.Struct("<IIqqq")


def pack(noted: list[Any], reader: Any = None) -> bytes | None:
    """The notes packed (by `reader`, the C run reader, when given), or None when a row cannot be."""
    if reader is not None:
        packed: bytes | None = reader.pack_notes(noted)
        return packed
    parts: list[bytes] = []
    for row in noted:
        if type(row) is not tuple or len(row) != 5:
            return None
        lead, revision, digest, partition, offset = row
        if (type(lead) is not str or type(digest) is not str or type(revision) is not int
                or type(partition) is not int or type(offset) is not int):
            return None
        try:
            lead_bytes, digest_bytes = lead.encode(), digest.encode()
            parts.append(_HEAD.pack(len(lead_bytes), len(digest_bytes), revision, partition, offset))
        except (UnicodeEncodeError, struct.error):
            return None
        parts += (lead_bytes, digest_bytes)
    return b"".join(parts)


def row_at(packed: bytes, at: int) -> tuple[Note, int]:
    """The row beginning at byte `at`, and where the next begins. ValueError for a row that is not whole."""
    if len(packed) - at < _HEAD.size:
        raise ValueError(f"packed notes cut short at byte {at}")
    lead_size, digest_size, revision, partition, offset = _HEAD.unpack_from(packed, at)
    start = at + _HEAD.size
    end = start + lead_size + digest_size
    if end > len(packed):
        raise ValueError(f"packed notes cut short at byte {at}")
    lead = packed[start:start + lead_size].decode()
    return (lead, revision, packed[start + lead_size:end].decode(), partition, offset), end
