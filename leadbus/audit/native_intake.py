"""The replay's hot path over intake records in C (`leadbus.audit._intake`, built by `make install` where OpenSSL's
headers are installed); None without the extension (the Python paths alone, the references).

* `chained_fields(headers)`: what `seals._chained_fields` gives for headers of the usual types (a tuple or list of
  (str, bytes or None) pairs), False for any other (the Python reference then reads them).
* `link_digest(head, sequence, value, prev, signature)`: the link digest of a v2 agency seal's signed message (`head`,
  its lane's shared head) and signature, without joining the message; None for arguments it does not take.
* `peek_usual(value, LeadHead)`: what `verification._peek_usual` gives, None for anything that is not bytes.
* `sha256(value)`: `hashlib.sha256(value).digest()` without hashlib's object and calls, None for anything but bytes.
* `quick_seal(record, lead, signers, covers, runs, window)`: `BusSealVerifier._quick` of a lead whose head was read, in
  one call: True (its link went on the lane's open run), (lane, link) (the run to close, and the link opening the next),
  or None for anything that is not the usual record (nothing done: the Python path judges it).
* `intake_lead(record, lead, seen, sources, ranges)`: `IntakeLeads.check` of a lead met for the first time (True: kept,
  nothing found); None for a lead seen before or anything unusual (the Python path judges it).
* `has_stage_seal(headers, names)`: `stage_seals._has_stage_seal` (a name among `names`), None for headers of an unusual
  shape before any such name (the reference reads them).
* `unsealed_run(records, start, stop, names)`: how many records of a list from `start` on are of the first one's topic
  and partition with headers, (str, value) pairs, naming nothing in `names` (`StageSealVerifier.unsealed_many`; the
  reference is `stage_seals._unsealed_run`).

* `plain_run(records, start, state)`: how many usual records of a stretch of one intake topic no stage seal covers were
  judged by its four checks and counted, from `start` on (`leadbus.audit.intake_runs.PlainIntake`, whose reference is
  the replay's loop over the same records, each check's `check_run` then the tally).

Tests hold all nine to the Python paths' values over sealed, tampered, forged, cut and hostile records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

ChainedFields = Callable[[Sequence[tuple[str, bytes | None]]],
                         "tuple[bytes, bytes, bytes, bytes, bytes, bytes] | Literal[False] | None"]
LinkDigest = Callable[[bytes, bytes, bytes, bytes, bytes], "bytes | None"]
PeekUsual = Callable[[bytes, Any], Any]
Sha256 = Callable[[bytes], "bytes | None"]
QuickSeal = Callable[[Any, Any, dict[Any, Any], dict[Any, bool], dict[Any, list[Any]], int], Any]
IntakeLead = Callable[[Any, Any, dict[Any, Any], "dict[Any, Any] | None", "dict[Any, Any] | None"], "bool | None"]
HasStageSeal = Callable[[Sequence[tuple[str, bytes | None]], frozenset[str]], "bool | None"]
UnsealedRun = Callable[[list[Any], int, int, frozenset[str]], int]
PlainRun = Callable[[list[Any], int, tuple[Any, ...]], int]

chained_fields: ChainedFields | None
link_digest: LinkDigest | None
peek_usual: PeekUsual | None
sha256: Sha256 | None
quick_seal: QuickSeal | None
has_stage_seal: HasStageSeal | None
intake_lead: IntakeLead | None
unsealed_run: UnsealedRun | None
plain_run: PlainRun | None
try:
    from leadbus.audit._intake import (
        chained_fields,
        has_stage_seal,
        intake_lead,
        link_digest,
        peek_usual,
        plain_run,
        quick_seal,
        sha256,
        unsealed_run,
    )
except ImportError:  # not built (no compiler, or no OpenSSL headers): the Python paths alone
    chained_fields = link_digest = peek_usual = sha256 = quick_seal = has_stage_seal = intake_lead = unsealed_run = None
    plain_run = None
