"""The usual stage seal's headers judged and its link computed in C (`leadbus.audit._seal_link`, built by
`make install`) for `StageSealVerifier._quick`; None without the extension (the Python path alone).

`quick_link(headers, signer, key_id, chain, link, number, lane, key, value)` gives the record's link when the seal's
five headers come last, in the stage's order, with the signer, key id and chain given, the number `number` and `prev`
`link`, and no other header is a seal's; None for anything else or anything of an unusual type, which `_quick` then
judges in Python as before. Tests hold it to the same verdicts and links as the Python path.

`quick_run(records, start, stop, topic, partition, signer, key_id, chain, link, number, lane, start_ms, until_ms,
revoked_ms, vouching, head, signed)` judges so the records of a list from `start` on, one after the other on one lane
(each also of the lane's topic and partition, at a time its key is valid), until the first that is not such a record:
how many were, and the last one's link (`StageSealVerifier.check_many`); with `signed`, also whether that first record
is the one closing the run (usual, the stage's signature last): its link and signature, which the caller verifies.
Without `signed` (an argument fewer) it gives the count and link alone. With the CPU's SHA instructions it hashes the
links itself from `head` (the lane head's bytes) rather than by copies of `lane` (hashlib); `native_sha(False)` turns
that off (tests compare both).

`verified(public_key, signature, message)` is the Ed25519 verdict of libsodium's `crypto_sign_verify_detached`, looked
up in the copy PyNaCl loaded: the function PyNaCl's `crypto_sign_open` (`leadbus.signing`) verifies by, called without
building the signed message, its buffers and the copy back (a tenth of a stage signature's cost). None here when
that libsodium is not found; the call gives None for arguments that are not all bytes (the caller then verifies).

`trusted_run(held, topic)` pops from the left of a deque the records of `topic` let go trusted, with a value, one after
the other (`leadbus.audit.stage_seals.take_trusted`, the reference): the rest of a run the replay's loop checks at once.

`record_class(cls)` names the record class (`ReplayRecord`, by `leadbus.audit.stage_seals`) whose slots `quick_run`
and `trusted_run` read and set directly (any other object's attributes by getattr and setattr, as before).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

QuickLink = Callable[[Sequence[tuple[str, bytes | None]], bytes | None, bytes | None, bytes | None, bytes, int, object,
                      bytes | None, bytes | None], bytes | None]
QuickRun = Callable[[list[Any], int, int, str, int, bytes | None, bytes | None, bytes | None, bytes, int, object,
                     int | None, int | None, int | None, bool, bytes | None, bool],
                    tuple[int, bytes, tuple[bytes, bytes] | None]]

TrustedRun = Callable[[Any, str], list[Any]]
Verified = Callable[[bytes, bytes, bytes], bool | None]

quick_link: QuickLink | None
quick_run: QuickRun | None
trusted_run: TrustedRun | None
verified: Verified | None
record_class: Callable[[type], None] | None
try:
    from leadbus.audit._seal_link import quick_link, quick_run, record_class, trusted_run, use_sodium, verified
except ImportError:  # not built: the Python path alone
    quick_link = quick_run = trusted_run = verified = record_class = None


def _sodium_path() -> str | None:
    """The shared object of PyNaCl's libsodium (loaded by `leadbus.signing`'s import of PyNaCl)."""
    try:
        import nacl.bindings  # noqa: F401 - loads it
        from nacl import _sodium
    except ImportError:
        return None
    path = getattr(_sodium, "__file__", None)
    return path if isinstance(path, str) else None


if verified is not None:
    _path = _sodium_path()
    if _path is None or not use_sodium(_path):
        verified = None  # PyNaCl's own call (`leadbus.signing`) verifies
