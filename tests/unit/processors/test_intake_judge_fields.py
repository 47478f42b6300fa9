"""The judge reads an examined lead's headers as a tuple (`examined_fields`) and writes what it remembers with
`seen_bytes`, no `Examined` or `Seen` built per lead: the same as `Examined.from_headers`' comprehension did, and as
`Seen.to_bytes`, on well-formed headers and odd ones (repeated names, headers without a value, missing or unreadable
fields, other headers around them)."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

from leadbus.processors.core.intake import Examined, Seen, examined_fields, seen_bytes


def _reference(headers: Any) -> tuple[str, int, str, str] | None:
    """`Examined.from_headers` as it was written before (a dict comprehension over the valued headers)."""
    found = {k: v for k, v in headers or () if v is not None}
    try:
        return (found["lead_id"].decode(), int(found["revision"]), found["digest"].decode(),
                found["agency"].decode())
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


VALUES: dict[str, list[bytes | None]] = {
    "lead_id": [b"SAMR-33-2026-000001", "线索-1".encode(), b"\xff\xfe", b"", None],
    "revision": [b"0", b"7", b"2147483647", b"-1", b" 3 ", b"x", b"", None],
    "digest": [b"ab" * 32, b"", "é".encode(), b"\xc3", None],
    "agency": [b"SAMR", b"CNIPA", b"", None],
    "other": [b"v", None],
}


def test_examined_fields_are_those_of_the_comprehension_on_any_headers() -> None:
    rng = random.Random(16)
    checked = found = 0
    for _ in range(20000):
        names = [n for n in VALUES for _ in range(rng.choice([0, 1, 1, 1, 2]))]
        rng.shuffle(names)
        headers = [(n, rng.choice(VALUES[n])) for n in names]
        for form in (headers, tuple(headers), iter(headers)):
            expected = _reference(list(headers))
            assert examined_fields(form) == expected, headers
            fields = Examined.from_headers(list(headers))
            assert (fields is None if expected is None else fields == Examined(*expected))
            checked += 1
            found += expected is not None
    assert examined_fields(None) is None and examined_fields(()) is None
    assert checked == 60000 and found > 1000


def test_seen_bytes_are_seen_s() -> None:
    for revision, digest in itertools.product((0, 1, 2**31 - 1), ("ab" * 32, "", 'é"\\\n中')):
        assert seen_bytes(revision, digest) == Seen(revision, digest).to_bytes()
        assert seen_bytes(revision, digest) == json.dumps({"revision": revision, "digest": digest}).encode()
