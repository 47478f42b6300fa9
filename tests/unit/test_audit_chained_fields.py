"""`_chained_fields` reads the SDK's own headers (its `content-type`, then the seal's six) at once: for any headers it
gives what the header-by-header reading gave before (kept here as the reference) — the same six values, None, or the
same exception — over the SDK's headers damaged in every way `test_audit_seal_read` damages them, and a few more."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from leadbus.audit.seals import _CHAINED, _SEAL_NAMES, _chained_fields
from leadbus.producers.signing import CONTENT_TYPE
from leadbus.signing import PUBLISHER_HEADER
from tests.unit.test_audit_seal_read import _damaged, _headers


def _reference(headers: Sequence[Any]) -> object:
    """`_chained_fields` as it read every shape, header by header."""
    n = len(headers)
    if n < 6:
        return None
    at = 0
    for name, _ in headers:
        if name == PUBLISHER_HEADER:
            break
        if name in _SEAL_NAMES:
            return None
        at += 1
    if at + 6 > n:
        return None
    try:
        (n0, publisher), (n1, key_id), (n2, partition), (n3, sequence), (n4, signature), (n5, prev) = \
            headers[at:at + 6]
    except (TypeError, ValueError):
        return None
    if ((n0, n1, n2, n3, n4, n5) == _CHAINED and type(partition) is bytes and type(sequence) is bytes
            and type(signature) is bytes and type(prev) is bytes and type(publisher) is bytes
            and type(key_id) is bytes and partition.isdigit() and len(partition) <= 9 and sequence.isdigit()
            and len(sequence) <= 19 and len(signature) == 64 and len(prev) == 32
            and (at + 6 == n or not any(h[0] in _SEAL_NAMES for h in headers[at + 6:]))):
        return publisher, key_id, partition, sequence, signature, prev
    return None


def _outcome(read: Any, headers: Sequence[Any]) -> object:
    try:
        return read(headers)
    except Exception as exc:  # noqa: BLE001 - the same exception either way is part of the same outcome
        return (type(exc).__name__, str(exc))


def _sdk(rng: random.Random) -> list[Any]:
    """The SDK's seven headers (`SigningSealer.seal`), damaged in one way or another."""
    headers: list[Any] = [CONTENT_TYPE, *_damaged(rng)]
    kind = rng.randrange(8)
    if kind == 0:
        headers[0] = (rng.choice([*_SEAL_NAMES, "content-type", 7, None]), b"x")  # its first header a seal's, or odd
    elif kind == 1:
        headers[rng.randrange(len(headers))] = rng.choice([("only-a-name",), ("a", b"b", b"c"), b"ab", None, 5])
    elif kind == 2:
        headers = headers[:7] if len(headers) >= 7 else headers
    elif kind == 3:
        headers.reverse()
    return headers


def test_the_sdks_headers_read_as_before() -> None:
    headers = (CONTENT_TYPE, *_headers())
    assert len(headers) == 7 and _chained_fields(headers) == _reference(headers) is not None


@pytest.mark.parametrize("seed", range(6))
def test_damaged_headers_read_as_before(seed: int) -> None:
    rng = random.Random(seed)
    sevens = 0
    for _ in range(500):
        headers = _sdk(rng)
        sevens += len(headers) == 7
        for shape in (headers, tuple(headers)):
            assert _outcome(_chained_fields, shape) == _outcome(_reference, shape), headers
    assert sevens > 150  # the shape read at once, damaged, is tried many times
