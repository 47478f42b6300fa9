"""The replay's hot path over intake records in C (`leadbus.audit._intake`, built by `make install` where OpenSSL's
headers are installed); None without the extension (the Python paths alone, the references).

* `chained_fields(headers)`: what `seals._chained_fields` gives for headers of the usual types (a tuple or list of
  (str, bytes or None) pairs), False for any other (the Python reference then reads them).
* `link_digest(head, sequence, value, prev, signature)`: the link digest of a v2 agency seal's signed message (`head`,
  its lane's shared head) and signature, without joining the message; None for arguments it does not take.
* `peek_usual(value, LeadHead)`: what `verification._peek_usual` gives, None for anything that is not bytes.
* `sha256(value)`: `hashlib.sha256(value).digest()` without hashlib's object and calls, None for anything but bytes.

Tests hold all four to the Python paths' values over sealed, tampered, forged, cut and hostile records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

ChainedFields = Callable[[Sequence[tuple[str, bytes | None]]],
                         "tuple[bytes, bytes, bytes, bytes, bytes, bytes] | Literal[False] | None"]
LinkDigest = Callable[[bytes, bytes, bytes, bytes, bytes], "bytes | None"]
PeekUsual = Callable[[bytes, Any], Any]
Sha256 = Callable[[bytes], "bytes | None"]

chained_fields: ChainedFields | None
link_digest: LinkDigest | None
peek_usual: PeekUsual | None
sha256: Sha256 | None
try:
    from leadbus.audit._intake import chained_fields, link_digest, peek_usual, sha256
except ImportError:  # not built (no compiler, or no OpenSSL headers): the Python paths alone
    chained_fields = link_digest = peek_usual = sha256 = None
