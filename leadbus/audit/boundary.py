"""A partition cut in two for a replay: its tail's findings judged again against its head, pure.

`leadbus.leads.accepted` has one partition: one process would read it all while the other core waits. A replay cuts it
at an offset; a forked process reads the tail with fresh verifiers that `note` what the parent needs
(`note_tail`), while the parent reads the head. The tail's first records were judged as if nothing came before them;
`join` judges them again against the head's state (a stage lane's chain, the highest timestamp, a partition sealed
before), corrects the tail's findings and leaves the head's verifiers as one process would have left them after the
last record: their `finish` then runs once, in the parent. The accepted leads' revisions are not judged in the tail at
all: it notes each lead's id, revision, digest and offset (a few bytes to send back), which the parent judges after
the head's, in order. The findings are the same as one process's.

What goes back of those notes (`settle_tail`, in the tail's process): the hash of each note's lead, in order (8 bytes a
note). A revision is judged against its own lead's earlier ones alone, so only a lead the head read too, or the tail
read more than once, can have a finding: the parent asks back the notes of the leads whose hash its head holds too or
that comes twice (`join`'s `ask`) and judges those after the head's, in order; every other note is a lead's first
revision, which one process takes without a finding. Sent whole, the notes were 5.9 MB for 50,000 leads: 24-62 ms to
pickle in the tail, 19-33 to read back and 28-43 to carry over in the parent, after its head; judged in the tail (the
leads the head did not read), 35-51 ms CPU after its read, which the parent, done with its head, waited out.

Where the tail's first records cannot be judged again from what it noted (a record behind its stage lane's head at
the cut: replayed or swapped; timestamps that stay below the head's highest past the noted records; a verifier of
another kind holding state), `join` answers None and the parent reads the tail itself, after its head, as one process.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from leadbus.audit import verification as _verification
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import Noted, StageSealVerifier, headless, unsealed
from leadbus.audit.verification import (
    AcceptedLeads,
    CaseVersions,
    Decodes,
    Finding,
    HandoverSteps,
    IntakeLeads,
    Mark,
    PartitionOrder,
    RoutedVersions,
)
from leadbus.signing import KeyRegistry
from leadbus.topics import LEADS_ACCEPTED

#: The verifiers whose state `join` knows how to carry over the cut.
_JOINED = (PartitionOrder, Decodes, AcceptedLeads, BusSealVerifier, StageSealVerifier)
#: Verifiers that must see nothing of the cut topic (they keep state of other topics only).
_ELSEWHERE = (IntakeLeads, CaseVersions, HandoverSteps, RoutedVersions)


def can_cut(verifiers: Sequence[Any], topic: str) -> bool:
    """Whether a replay of `topic` alone with these verifiers may be cut in two."""
    for verifier in verifiers:
        if isinstance(verifier, _JOINED):
            continue
        if isinstance(verifier, _ELSEWHERE) and not verifier.applies(topic):
            continue
        return False
    return True


def note_tail(verifiers: Sequence[Any]) -> None:
    """In the tail's process, before its first record: the verifiers note what `join` needs."""
    for verifier in verifiers:
        if isinstance(verifier, PartitionOrder):
            verifier.noted = {}
        elif isinstance(verifier, AcceptedLeads):
            verifier.noted = []
            verifier.noted_hashes = bytearray()
        elif isinstance(verifier, StageSealVerifier):
            verifier.noted = Noted()


#: The bytes of a note's hash in `TailLeads.hashes` (array('q'))
_HASH_SIZE = array("q").itemsize

#: A lead a cut's tail noted: (lead id, revision, digest, partition, offset), as `AcceptedLeads.noted` holds it.
Noted_ = tuple[str, int, str, int, int]
#: Asks the tail's process for the notes of the leads of these hashes, in order; None when it cannot answer.
Ask = Callable[[set[int]], "list[Noted_] | None"]


@dataclass
class TailLeads:
    """What a cut's tail hands back of its accepted leads' notes (`settle_tail`)."""

    hashes: bytes  # array('q') of hash(lead id) of each note, in order


def settle_tail(verifiers: Sequence[Any]) -> tuple[TailLeads, list[Noted_]] | None:
    """In the tail's process, after its last record: its notes' leads as hashes (`TailLeads`, handed back), the notes
    kept here for the parent's question (`join`'s `ask`) and taken off the verifier; None when it noted no leads. The
    agency seals' registry of keys is taken off too: `join` never reads the tail's, and it was most of what the
    verifiers cost to hand back without the notes (8-10 ms to pickle, 6-8 to read)."""
    for verifier in verifiers:
        if isinstance(verifier, BusSealVerifier):
            verifier.registry = KeyRegistry()  # empty: what the parent's own holds is not sent back
    leads = next((v for v in verifiers if isinstance(v, AcceptedLeads) and v.noted is not None and not v._revisions),
                 None)
    if leads is None or leads.noted is None:
        return None
    rows, noted = leads.noted, leads.noted_hashes
    leads.noted, leads.noted_hashes = None, None
    if noted is not None and len(noted) == _HASH_SIZE * len(rows):  # every note hashed as it was made
        return TailLeads(bytes(noted)), rows
    return TailLeads(array("q", map(hash, map(itemgetter(0), rows))).tobytes()), rows


def asked(rows: list[Noted_], hashes: set[int]) -> list[Noted_]:
    """The notes of the leads whose hash is asked for, in order."""
    return [row for row in rows if hash(row[0]) in hashes] if hashes else []


def _judged(leads: AcceptedLeads, rows: list[Noted_], judged: Callable[[str, list[Finding]], Any]) -> None:
    """Each note accounted on `leads`, in order, as its loop accounts a record: `judged` is given a lead's findings."""
    revision, revisions = leads.revision, leads._revisions
    # the C reader keeps the leads' first records from i on, and stops at any other, judged here
    reader = _verification._RUN_READER if type(rows) is list else None
    i, size = 0, len(rows)
    while i < size:
        if reader is not None:
            i = reader.noted_firsts(rows, i, revisions, LEADS_ACCEPTED, Mark)
            if i == size:
                break
        lead, number, digest, partition, offset = rows[i]
        i += 1
        if lead not in revisions:  # the lead's first record (what `revision` does then, without a call)
            revisions[lead] = (number, digest, Mark(LEADS_ACCEPTED, partition, offset))
            continue
        found = revision([], lead, number, digest, Mark(LEADS_ACCEPTED, partition, offset))
        if found:
            judged(lead, found)


def head_hashes(head: Sequence[Any]) -> set[int] | None:
    """The hashes of the leads the head's accepted leads' check holds, for `join` (`own`): made by a parent that waits
    for its tail's process anyway (what `join` would make after the wait, 4-6 ms for 50,000 leads)."""
    leads = next((v for v in head if isinstance(v, AcceptedLeads)), None)
    return set(map(hash, leads._revisions)) if leads is not None else None


def join(head: Sequence[Any], tail: Sequence[Any], found: list[Finding], leads: TailLeads | None = None,
         ask: Ask | None = None, own: set[int] | None = None) -> list[Finding] | None:
    """The tail's findings as one process reading head then tail finds them, the head's verifiers carried to the
    tail's end; None when the tail must be read again after the head (nothing of `head` changed then). `leads`: what
    the tail settled of its accepted leads (`settle_tail`), whose notes `ask` fetches from it where the head read the
    same leads; `own`, where given, the head's leads' hashes (`head_hashes`), made before."""
    if len(head) != len(tail):
        return None
    drop: list[Finding] = []
    add: list[Finding] = []
    steps = []
    for mine, theirs in zip(head, tail, strict=True):
        if type(mine) is not type(theirs):
            return None
        if isinstance(mine, PartitionOrder):
            step = _order(mine, theirs, drop, add)
        elif isinstance(mine, AcceptedLeads):
            step = _accepted(mine, theirs, add) if leads is None else _settled(mine, theirs, leads, ask, add, own)
        elif isinstance(mine, StageSealVerifier):
            step = _stage(mine, theirs, found, drop, add)
        elif isinstance(mine, BusSealVerifier):
            step = _seals(mine, theirs)
        elif isinstance(mine, Decodes):
            continue
        elif isinstance(mine, _ELSEWHERE):
            step = (lambda: None) if _untouched(theirs) else None
        else:
            return None
        if step is None:
            return None
        steps.append(step)
    left = Counter(found)
    left.subtract(drop)
    if any(n < 0 for n in left.values()):
        return None  # a finding to take back that the tail did not make: judge nothing from it
    for step in steps:  # only once every verifier can be carried over: else the head stays as it was
        step()
    kept: list[Finding] = []
    for finding in found:
        if left[finding] > 0:
            left[finding] -= 1
            kept.append(finding)
    return kept + add


def _untouched(verifier: Any) -> bool:
    if isinstance(verifier, IntakeLeads):
        return not verifier._seen and not verifier.sources
    return not getattr(verifier, "_last", None) and not getattr(verifier, "_seen", None)


def _order(head: PartitionOrder, tail: PartitionOrder, drop: list[Finding], add: list[Finding]) -> Any:
    """Each tail record is judged against the highest timestamp before it: the head's too, until the tail's own
    highest reaches the head's (from there on both judge alike)."""
    noted = tail.noted or {}
    merged: dict[tuple[str, int], list[Any]] = {}
    skew = head.skew_ms
    for key, last in tail._last.items():
        before = head._last.get(key)
        if before is None:
            merged[key] = last
            continue
        records = noted.get(key, [])
        if not records or records[0][0] <= before[0]:
            return None  # offsets that do not follow the head's: judged in one process
        highest_before, set_by = before[1], before[2]
        at_before = Mark(key[0], key[1], *set_by)
        mine: int | None = None  # the tail's own highest so far
        mine_at: Mark | None = None
        synced = False
        for offset, stamp in records:
            if mine is not None and mine >= highest_before:
                synced = True
                break
            here = Mark(key[0], key[1], offset)
            if mine is not None and mine_at is not None and stamp < mine - skew:
                drop.append(PartitionOrder.backwards(here, stamp, mine, mine_at))
            if stamp < highest_before - skew:
                add.append(PartitionOrder.backwards(here, stamp, highest_before, at_before))
            if mine is None or stamp >= mine:
                mine, mine_at = stamp, here
        if not synced and (mine is None or mine < highest_before):
            if len(records) >= tail.noted_max:
                return None  # the tail stays below the head's highest past what it noted
            merged[key] = [last[0], highest_before, set_by]
        else:
            merged[key] = last

    def carry() -> None:
        head._last.update(merged)
    return carry


def _accepted(head: AcceptedLeads, tail: AcceptedLeads, add: list[Finding]) -> Any:
    """The tail's process noted its leads without judging their revisions: judged here, after the head's, in order."""
    noted = tail.noted
    if noted is None or tail._revisions:
        return None

    def carry() -> None:
        _judged(head, noted, lambda lead, judged: add.extend(judged))
        head._sources.extend(tail._sources)
    return carry


def _settled(head: AcceptedLeads, tail: AcceptedLeads, leads: TailLeads, ask: Ask | None, add: list[Finding],
             own: set[int] | None = None) -> Any:
    """The notes of the leads the head read too, or the tail more than once (by their hashes: one shared by another
    lead only asks for its notes as well, judged to the same), are asked back and judged here, after the head's, in
    order; every other note is a lead's first revision, which one process takes without a finding."""
    if tail.noted is not None or tail._revisions:
        return None
    theirs = array("q")
    theirs.frombytes(leads.hashes)
    once = set(theirs)
    both = once & own if own is not None else once.intersection(map(hash, head._revisions))
    if len(once) < len(theirs):
        both.update(lead for lead, n in Counter(theirs).items() if n > 1)
    again: list[Noted_] = []
    if both:
        rows = ask(both) if ask is not None else None
        if rows is None:
            return None  # the tail's process cannot answer: the tail is read here
        again = rows

    def carry() -> None:
        _judged(head, again, lambda lead, judged: add.extend(judged))
        head._sources.extend(tail._sources)
    return carry


def _stage(head: StageSealVerifier, tail: StageSealVerifier, found: list[Finding], drop: list[Finding],
           add: list[Finding]) -> Any:
    """A lane the head read goes on at the tail's first record; a partition the head sealed makes the tail's unsealed
    records findings from its first record on."""
    noted = tail.noted
    if noted is None:
        return None
    lanes = {}
    for lane, state in tail._lanes.items():
        before = head._lanes.get(lane)
        if before is None:
            first = noted.first.get(lane)
            if first is None:
                return None
            sequence, prev, here, start = first
            if start is None and sequence != 1 and head.first_offsets.get((lane[2], lane[3])) == 0:
                add.append(headless(here, lane[0], lane[1], sequence))  # the head read the partition from offset 0
            lanes[lane] = state
            continue
        first = noted.first.get(lane)
        if first is None:
            return None
        sequence, prev, here, start = first
        if sequence != before.sequence + 1 or prev != before.link or before.detour is not None:
            # not the head's next: which record is to blame shows only in reading on from the head's lane
            return None
        if start is not None:
            drop.append(start)
        if lane not in noted.signed:
            state.unsigned_from = before.unsigned_from or state.unsigned_from
        lanes[lane] = state
    partitions: dict[tuple[str, int], Mark] = {}
    for where, first_sealed in tail._sealed_partitions.items():
        sealed_before = head._sealed_partitions.get(where)
        if sealed_before is None:
            partitions[where] = first_sealed
    for where, offsets in noted.unsealed.items():
        sealed_before = head._sealed_partitions.get(where)
        if sealed_before is not None:
            add.extend(unsealed(Mark(where[0], where[1], offset), sealed_before) for offset in offsets)
    for finding in found:  # they name the tail's first sealed record, one process names the head's
        if finding.check == "STAGE_UNSEALED" and finding.partition is not None and finding.offset is not None:
            sealed_before = head._sealed_partitions.get((finding.topic, finding.partition))
            if sealed_before is not None:
                drop.append(finding)
                add.append(unsealed(Mark(finding.topic, finding.partition, finding.offset, finding.file,
                                         finding.index), sealed_before))

    def carry() -> None:
        head._hot.clear()  # its quick path's lanes are the head's states, which the tail's replace
        for lane, state in lanes.items():
            state.run, state.clean = None, True
            head._lanes[lane] = state
        head._sealed_partitions.update(partitions)
        head.sealed += tail.sealed
        head.signatures += tail.signatures
        for stray, at in tail._strays.items():
            head._strays.setdefault(stray, at)
        head._holes.update(tail._holes)
    return carry


def _seals(head: BusSealVerifier, tail: BusSealVerifier) -> Any:
    """The agency seals' verifier keeps lanes of intake topics only: on the cut topic it keeps nothing to carry."""
    if tail._runs or tail.lanes._lanes:
        return None

    def carry() -> None:
        head.signatures += tail.signatures
        head.sealed += tail.sealed
    return carry
