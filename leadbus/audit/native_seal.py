"""The usual stage seal's headers judged and its link computed in C (`leadbus.audit._seal_link`, built by
`make install`) for `StageSealVerifier._quick`; None without the extension (the Python path alone).

`quick_link(headers, signer, key_id, chain, link, number, lane, key, value)` gives the record's link when the seal's
five headers come last, in the stage's order, with the signer, key id and chain given, the number `number` and `prev`
`link`, and no other header is a seal's; None for anything else or anything of an unusual type, which `_quick` then
judges in Python as before. Tests hold it to the same verdicts and links as the Python path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

QuickLink = Callable[[Sequence[tuple[str, bytes | None]], bytes | None, bytes | None, bytes | None, bytes, int, object,
                      bytes | None, bytes | None], bytes | None]

quick_link: QuickLink | None
try:
    from leadbus.audit._seal_link import quick_link
except ImportError:  # not built: the Python path alone
    quick_link = None
