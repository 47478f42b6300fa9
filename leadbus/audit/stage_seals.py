"""The replay's verifier of stage seals (`leadbus.stage_seals`): the chains and signatures of the bus's own records.

Per lane (stage signer, chain, topic, partition), in partition order: each record's `prev` is the link of
the record before it and its number is the next (`STAGE_CHAIN_BROKEN`, `STAGE_SEQUENCE_GAP`,
`STAGE_SEQUENCE_REPLAYED`); a record carrying a signature has it verified over its own link against the
stage's key in the registry, valid at the record's time (`STAGE_BAD_SIGNATURE`, `UNKNOWN_KEY`, `KEY_*`),
which vouches for every record of the lane since the last signature. Records left behind no signature at the
end are `STAGE_UNSIGNED_TAIL` (a notice when the replay stopped before the topic's end: the signature may lie
after the period read). A lane's first record in the replay may link to records before it (the period read
began later, or retention trimmed the partition) — except in a partition read from offset 0, where every chain starts
in what is read (`STAGE_SEQUENCE_GAP`: its first records removed); a chain start is sequence 1 with `prev` zeros, and
nothing else. An unsealed record in a
partition where a stage sealed before it is `STAGE_UNSEALED` (seal headers removed, or a record written
without the stage). Malformed headers are `STAGE_SEAL_MALFORMED`. Every finding has its coordinates.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from leadbus.audit.native_intake import has_stage_seal as _native_has_seal
from leadbus.audit.native_intake import unsealed_run as _native_unsealed_run
from leadbus.audit.native_seal import quick_link, quick_run, record_class, trusted_run, verified
from leadbus.audit.registration import REGISTERED_LATER, as_judged, honoured_from, registered_later, undone
from leadbus.audit.verification import Finding, Mark, ReplayRecord
from leadbus.audit.verification import ms_of as _ms
from leadbus.signing import CHAIN_START, KeyRegistry, PublisherKey
from leadbus.stage_seals import (
    CHAIN_HEADER,
    KEY_ID_HEADER,
    PREV_HEADER,
    SEQUENCE_HEADER,
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    STAGE_SEAL_NAMES,
    MalformedStageSeal,
    StageSeal,
    _lane_head,
    _signer,
    head_message,
    head_signed,
    lane_hash,
    link_after,
    record_link,
)

if record_class is not None:  # the C run reads and sets the records' slots directly
    record_class(ReplayRecord)

_Lane = tuple[str, str, str, int]  # signer, chain, topic, partition
#: What `StageSealVerifier._quick` keeps per partition: the seal's raw signer, key id and chain, the lane's state, the
#: key and its validity in ms (start, until, revoked), the SHA-256 over the lane's head, (signer, key id, chain), and
#: the head's bytes (`check_many` hashes them in C).
_Hot = tuple[bytes | None, bytes | None, bytes | None, "_State", PublisherKey, int | None, int | None, int | None,
             "hashlib._Hash", tuple[str, str, str], bytes]


@dataclass(slots=True)
class _State:
    sequence: int
    link: bytes
    at: Mark
    unsigned_from: Mark | None  # the first record of the lane not yet vouched for by a signature
    run: list[ReplayRecord] | None = None  # with `vouching`: the records since the last signature, held back
    clean: bool = True  # nothing found on the lane since its last signature
    #: After a record that does not follow the lane (its number jumped ahead, or it has the next number and another
    #: link): the lane as it was before it (number, link, place), that record's number, `prev` and place, and the
    #: finding held back for the next record (a link broken: which record is to blame). The next record tells a gap or
    #: an altered record (it follows this one) from a record out of place (the lane goes on below it, or links past
    #: it: it was copied or moved in, and the lane is judged from where it was).
    detour: tuple[int, bytes, Mark, int, bytes, Mark, Finding] | None = None


class StageSealVerifier:
    """The stage seals' check (see the module's docstring).

    With `vouching` set (by a replay that defers the other checks of sealed records, `leadbus.audit.replay`), each
    sealed record of a lane is held back (`ReplayRecord.pending`) until the signature that closes its run: when that
    signature verifies and nothing was found on the lane since the last one, the run's records are `trusted` (their
    bytes are the stage's own, and the other checks read only the fields they need); otherwise, or at the end, they are
    let go untrusted (read whole, as without vouching).
    """

    name = "stage-seals"

    def __init__(self, registry: KeyRegistry, *, open_end: bool = False) -> None:
        self.registry = registry
        self.open_end = open_end  # the replay stopped before the topics' end (`--to`)
        self.sealed = 0
        self.signatures = 0
        self.vouching = False
        self._lanes: dict[_Lane, _State] = {}
        self._sealed_partitions: dict[tuple[str, int], Mark] = {}
        #: per partition, the offset of the first record read: 0 means from the partition's very first record (nothing
        #: ever removed by retention), where every chain's start lies in what is read
        self.first_offsets: dict[tuple[str, int], int] = {}
        self._bounds: dict[tuple[str, str], tuple[PublisherKey, int | None, int | None, int | None]] = {}
        #: Set in the process reading the tail of a partition cut in two (`leadbus.audit.boundary`): what the parent
        #: needs to judge the tail's first records against what came before.
        self.noted: Noted | None = None
        #: Per (topic, partition): the lane its last usual record went on (see `_quick`), with what judging the next
        #: one needs: the seal's raw signer, key id and chain, the lane's state, the key and its validity in ms, and
        #: the link's hash over the lane's shared head (copied per record).
        self._hot: dict[tuple[str, int], _Hot] = {}
        #: Records met out of place (behind their lane, or a jump the lane went back below), by (signer, chain, their
        #: `prev`): their number and place; and the lanes' gaps, by (signer, chain, the link before the gap): the
        #: number missing and the record before it. A stray whose `prev` is a gap's link, with the missing number, is
        #: that record, moved (`STAGE_RECORD_MOVED` at the end names both places). Anomalies only: a few entries.
        self._strays: dict[tuple[str, str, bytes], tuple[int, Mark]] = {}
        self._holes: dict[tuple[str, str, bytes], tuple[int, Mark]] = {}

    def __getstate__(self) -> dict[str, object]:
        """Pickled (a cut replay's tail process sends it back): no registry (the parent has it), no record held."""
        state = {name: getattr(self, name) for name in self.__dict__}
        state["registry"], state["_bounds"], state["_hot"] = None, {}, {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        headers = record.headers
        place = (record.topic, record.partition)
        if len(headers) >= 5:
            hot = self._hot.get(place)
            if hot is not None and self._quick(record, headers, hot):
                return ()
        first_offset = self.first_offsets.get(place)
        if first_offset is None:
            first_offset = self.first_offsets[place] = 0 if record.opens_log else record.offset
        # an agency's record on its intake topic (no stage seal) is the usual one here: its names looked up in C
        stage_sealed = _native_has_seal(headers, STAGE_SEAL_NAMES) if headers and _native_has_seal else None
        if not headers or not (_has_stage_seal(headers) if stage_sealed is None else stage_sealed):
            sealed_before = self._sealed_partitions.get(place)
            if sealed_before is None:
                if self.noted is not None:
                    self.noted.unsealed.setdefault(place, []).append(record.offset)
                return ()
            return [unsealed(record, sealed_before)]
        try:
            seal = _read_seal(headers)
        except MalformedStageSeal as exc:
            return [Finding.at(record, "STAGE_SEAL_MALFORMED", str(exc))]
        signer, key_id, chain, sequence, prev, signature = seal
        self.sealed += 1
        here = Mark(record.topic, record.partition, record.offset, record.file, record.index)
        if (record.topic, record.partition) not in self._sealed_partitions:
            self._sealed_partitions[(record.topic, record.partition)] = here
        found: list[Finding] = []
        key = self.registry.get(signer, key_id)
        fault = self._key_fault(key, signer, key_id, record.timestamp_ms)
        if fault is not None:
            found.append(Finding.at(record, fault[0], fault[1]))
        # the other headers are linked too: none when the seal's (distinct names) are all there is
        others = headers if len(headers) != (5 if signature is None else 6) else ()
        link = record_link(record.topic, record.partition, signer, key_id, chain, sequence, record.key, record.value,
                           others, prev)
        lane = (signer, chain, record.topic, record.partition)
        state = self._lanes.get(lane)
        if state is None:
            start = None
            if (sequence == 1) != (prev == CHAIN_START):
                start = Finding.at(record, "STAGE_CHAIN_BROKEN", f"{signer} chain {chain}: number "
                                   f"{sequence} with {'a zero' if prev == CHAIN_START else 'a'} "
                                   "link before it: a chain starts at 1 with zeros, and only there")
                found.append(start)
            elif sequence != 1 and first_offset == 0:
                start = headless(here, signer, chain, sequence)
                found.append(start)
            state = self._lanes[lane] = _State(sequence, link, here, None)
            if self.noted is not None:
                self.noted.first[lane] = (sequence, prev, here, start)
        else:
            detour, state.detour = state.detour, None
            if detour is not None:
                if state.sequence == detour[3] and detour[0] < sequence <= detour[3] and link != detour[4] and (
                        sequence != detour[3] or detour[3] != detour[0] + 1 or prev == detour[1]):
                    # the lane goes on below the record before, or links past it, and that one does not follow this
                    # one (two records of the lane swapped, as before): that one was out of place
                    self._holes.pop((signer, chain, detour[1]), None)
                    self._strays[(signer, chain, detour[4])] = (detour[3], detour[5])
                    state.sequence, state.link, state.at = detour[0], detour[1], detour[2]
                    found.append(detour[5].finding(
                        "STAGE_OUT_OF_PLACE", f"{signer} chain {chain}: number {detour[3]} where {detour[0] + 1} was "
                        f"due after {detour[2].where()}, and the lane goes on at {here.where()} as if it were not "
                        "there: a record of another partition, topic or chain put here (copied or moved)"))
                else:
                    if detour[3] == detour[0] + 1 and sequence == detour[3] + 1 and prev != state.link:
                        # the lane's own number there with another link, and the record after it links to neither:
                        # a record put in its place (of another partition's lane at the same number, say), which a
                        # gap of the lane it was sealed for pairs with (`moved`) as for a stray behind its lane
                        self._strays.setdefault((signer, chain, detour[4]), (detour[3], detour[5]))
                        self._holes.setdefault((signer, chain, detour[1]), (detour[3], detour[2]))
                    found.append(detour[6])
            behind = sequence <= state.sequence
            if sequence != state.sequence + 1 or prev != state.link:
                follows = self._follows(state, signer, chain, sequence, prev, here)
                if not behind:
                    # which record is to blame shows at the next one: it goes the general way (not `_quick`)
                    self._hot.pop((record.topic, record.partition), None)  # and `_remember` keeps it out
                    if sequence > state.sequence + 1:
                        self._holes[(signer, chain, state.link)] = (state.sequence + 1, state.at)
                    state.detour = (state.sequence, state.link, state.at, sequence, prev, here, follows[0])
                    state.clean = False  # found, only not yet told: the lane's run is not vouched for
                else:
                    found += follows
            if behind:  # a copy or a record out of place: the lane goes on from where it was
                self._strays.setdefault((signer, chain, prev), (sequence, here))
                state.clean = False
                return found
            state.sequence, state.link, state.at = sequence, link, here
        if found:
            state.clean = False
        if self.vouching:
            record.pending = True
            if state.run is None:
                state.run = [record]
            else:
                state.run.append(record)
        if fault is None and key is not None:
            self._remember(record, headers, state, key, (signer, key_id, chain))
        if signature is None:
            if state.unsigned_from is None:
                state.unsigned_from = here
        elif key is not None:
            self.signatures += 1
            if head_signed(key.public_key, signature, link):
                state.unsigned_from = None
                if self.noted is not None:
                    self.noted.signed.add(lane)
                self._let_go(state, trusted=state.clean)
            else:
                found.append(here.finding("STAGE_BAD_SIGNATURE", f"the signature of {signer} (key "
                                          f"{key_id}) does not match this record and the chain below it: "
                                          "forged, or altered after sealing"))
                self._let_go(state, trusted=False)
        else:
            self._let_go(state, trusted=False)
        return found

    def _quick(self, record: ReplayRecord, headers: Sequence[tuple[str, bytes | None]], hot: _Hot) -> bool:
        """The usual record, judged without reading its seal in general: no signature, the seal's five headers last
        and in the stage's order (none before them), the signer, key and chain of the partition's last usual record,
        the next number, linking to that record, at a time its key was valid. Then nothing is found, and what the
        general path does is done here (the same state after it); False for anything else (nothing done: the general
        path judges it)."""
        if quick_link is not None:  # the headers' checks and the link in C, when the headers are of the usual types
            state = hot[3]
            link = quick_link(headers, hot[0], hot[1], hot[2], state.link, state.sequence + 1, hot[8], record.key,
                              record.value)
            if link is not None:
                ms = record.timestamp_ms
                start, until, revoked = hot[5], hot[6], hot[7]
                if (ms <= 0 or (start is not None and ms < start) or (until is not None and ms >= until)
                        or (revoked is not None and ms >= revoked)
                        or self.registry.get(hot[9][0], hot[9][1]) is not hot[4]):
                    return False
                self._goes_on(record, state, link)
                return True
        n = len(headers)
        base = n - 5
        (n0, signer_raw), (n1, key_raw), (n2, chain_raw), (n3, number), (n4, prev) = headers[base:]
        if (n4 != PREV_HEADER or n3 != SEQUENCE_HEADER or n2 != CHAIN_HEADER or n1 != KEY_ID_HEADER
                or n0 != SIGNER_HEADER or signer_raw != hot[0] or key_raw != hot[1] or chain_raw != hot[2]):
            return False
        state = hot[3]
        ms = record.timestamp_ms
        start, until, revoked = hot[5], hot[6], hot[7]
        if (prev != state.link or type(number) is not bytes or not number.isdigit() or len(number) > 19
                or number[:1] == b"0" or int(number) != state.sequence + 1 or ms <= 0
                or (start is not None and ms < start) or (until is not None and ms >= until)
                or (revoked is not None and ms >= revoked)):
            return False
        if base:
            for name, _ in headers[:base]:
                if name in STAGE_SEAL_NAMES:
                    return False
        if self.registry.get(hot[9][0], hot[9][1]) is not hot[4]:
            return False
        link = link_after(hot[8].copy(), number, record.key, record.value, headers[:base], prev)  # = record_link
        self._goes_on(record, state, link)
        return True

    def check_many(self, records: list[ReplayRecord], start: int, stop: int) -> int:
        """How many of `records[start:stop]`, from `start` on, are usual records (as `_quick` takes them) of the lane
        the first one goes on, one after the other, with the record closing their run when it is usual too (the same
        seal with the stage's signature last) and its signature verifies: they are judged at once, each as `check`
        judges it (nothing found, the lane goes on, each held back for its signature when vouching, and the run let go
        at its signature). 0 when the first is not one (or without the C extension): `check` judges it."""
        if quick_run is None or start >= stop:
            return 0
        record = records[start]
        hot = self._hot.get((record.topic, record.partition))
        if hot is None or self.registry.get(hot[9][0], hot[9][1]) is not hot[4]:
            return 0
        state = hot[3]
        taken, link, closing = quick_run(records, start, stop, record.topic, record.partition, hot[0], hot[1], hot[2],
                                         state.link, state.sequence + 1, hot[8], hot[5], hot[6], hot[7], self.vouching,
                                         hot[10], True)
        if taken:
            last = records[start + taken - 1]
            self.sealed += taken
            if state.unsigned_from is None:
                state.unsigned_from = Mark(record.topic, record.partition, record.offset, record.file, record.index)
            state.sequence += taken
            state.link = link
            state.at = Mark(last.topic, last.partition, last.offset, last.file, last.index)
            if self.vouching:
                if state.run is None:
                    state.run = records[start:start + taken]
                else:
                    state.run += records[start:start + taken]
        if closing is not None and self._closes(records[start + taken], state, hot, closing[0], closing[1]):
            taken += 1
        return taken

    def _closes(self, record: ReplayRecord, state: _State, hot: _Hot, link: bytes, signature: bytes) -> bool:
        """`check_many`'s record closing the run (usual, signed, `link` its link): when its signature verifies, what
        `check` does with it is done here (the lane goes on, its run let go); else False and nothing done (`check`
        judges it, and finds the signature bad)."""
        key = hot[4].public_key
        ok = verified(key, signature, head_message(link)) if verified is not None else None
        if not (head_signed(key, signature, link) if ok is None else ok):
            return False
        here = Mark(record.topic, record.partition, record.offset, record.file, record.index)
        self.sealed += 1
        self.signatures += 1
        state.sequence, state.link, state.at, state.unsigned_from = state.sequence + 1, link, here, None
        if self.noted is not None:
            self.noted.signed.add((hot[9][0], hot[9][2], record.topic, record.partition))
        if self.vouching:
            if state.run is None:
                state.run = [record]
            else:
                state.run.append(record)
        self._let_go(state, trusted=state.clean)
        return True

    def unsealed_many(self, records: list[ReplayRecord], start: int, stop: int) -> int:
        """How many of `records[start:stop]`, from `start` on, are records of the first one's partition without a stage
        seal header, on a partition where none was met and no lane is open: `check` finds nothing in each and notes
        only the partition's first offset, done here (an agency's intake records, the usual ones). 0 when the first is
        not one, or where a cut partition's tail notes them (`noted`): `check` judges it."""
        if start >= stop or self.noted is not None:
            return 0
        record = records[start]
        place = (record.topic, record.partition)
        if place in self._hot or place in self._sealed_partitions:
            return 0
        taken = (_native_unsealed_run(records, start, stop, STAGE_SEAL_NAMES) if _native_unsealed_run is not None
                 else _unsealed_run(records, start, stop))
        if taken and place not in self.first_offsets:
            self.first_offsets[place] = 0 if record.opens_log else record.offset
        return taken

    def _goes_on(self, record: ReplayRecord, state: _State, link: bytes) -> None:
        """`_quick`'s record, judged usual: the lane goes on (as the general path leaves it)."""
        here = Mark(record.topic, record.partition, record.offset, record.file, record.index)
        self.sealed += 1
        state.sequence, state.link, state.at = state.sequence + 1, link, here
        if self.vouching:
            record.pending = True
            if state.run is None:
                state.run = [record]
            else:
                state.run.append(record)
        if state.unsigned_from is None:
            state.unsigned_from = here

    def _remember(self, record: ReplayRecord, headers: Sequence[tuple[str, bytes | None]], state: _State,
                  key: PublisherKey, names: tuple[str, str, str]) -> None:
        """The partition's lane for `_quick`, after a record the general path judged with its key valid."""
        n = len(headers)
        base = n - (5 if headers[n - 1][0] != SIGNATURE_HEADER else 6)
        if base < 0 or len(self._hot) >= 4096 or state.detour is not None:  # the next one judged in general
            return
        signer, key_id, chain = names
        bounds = self._bounds.get((signer, key_id))
        if bounds is None or bounds[0] is not key:
            return
        prefix = lane_hash(record.topic, record.partition, signer, key_id, chain)
        self._hot[(record.topic, record.partition)] = (
            headers[base][1], headers[base + 1][1], headers[base + 2][1], state, key, bounds[1], bounds[2], bounds[3],
            prefix, names, _lane_head(record.topic, record.partition, signer, key_id, chain))

    @staticmethod
    def _let_go(state: _State, *, trusted: bool) -> None:
        """The records held for this lane's signature go on: trusted when it vouched for all of them."""
        run, state.run, state.clean = state.run, None, True
        if run is None:
            return
        for held in run:
            held.trusted = trusted
            held.pending = False

    def let_go(self) -> None:
        """The replay's end: every record still held goes on untrusted (no signature came for it)."""
        for state in self._lanes.values():
            self._let_go(state, trusted=False)

    @staticmethod
    def _follows(state: _State, signer: str, chain: str, sequence: int, prev: bytes, here: Mark) -> list[Finding]:
        expected = state.sequence + 1
        who = f"{signer} chain {chain}"
        if sequence < expected:
            return [here.finding("STAGE_SEQUENCE_REPLAYED", f"{who}: number {sequence} after {state.sequence} "
                                 f"({state.at.where()}): a record replayed, or records swapped")]
        if sequence > expected:
            missing = f"{expected}" if sequence == expected + 1 else f"{expected}–{sequence - 1}"
            return [here.finding("STAGE_SEQUENCE_GAP", f"{who}: number {sequence} after {state.sequence} "
                                 f"({state.at.where()}): {missing} missing (removed, or records swapped)")]
        if prev != state.link:
            return [state.at.finding("STAGE_CHAIN_BROKEN", f"{who}: the next record ({here.where()}, number "
                                     f"{sequence}) names another link than this record's: this record altered "
                                     "after sealing, or replaced by a forged one")]
        return []

    def _key_fault(self, key: PublisherKey | None, signer: str, key_id: str, ms: int) -> tuple[str, str] | None:
        if key is None:
            return "UNKNOWN_KEY", f"key {key_id} is not registered for stage signer {signer}"
        bounds = self._bounds.get((signer, key_id))
        if bounds is None or bounds[0] is not key:
            # honoured from its registration as the registry's log shows it, if later than it claims
            judged = as_judged(self.registry, key)  # revoked as early as any of its records said
            bounds = self._bounds[(signer, key_id)] = (key, honoured_from(self.registry, key)[0],
                                                       _ms(judged.valid_until), _ms(judged.revoked_at))
        _, start, until, revoked = bounds
        if ms > 0 and (start is None or ms >= start) and (until is None or ms < until) \
                and (revoked is None or ms < revoked):
            return None  # the usual case, without a datetime per record
        when = datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else datetime.now(UTC)
        status = as_judged(self.registry, key).status(when)
        later = registered_later(self.registry, key, ms) if status in ("VALID", "KEY_NOT_YET_VALID") else None
        if later is not None:
            return REGISTERED_LATER, later
        if status != "VALID":
            return status, f"key {key_id} of {signer} is {status.lower().replace('_', ' ')} at the " \
                           f"record's time {when:%Y-%m-%dT%H:%M:%SZ}" + undone(self.registry, key, status)
        return None

    def lanes(self) -> list[_Lane]:
        return list(self._lanes)

    def open_partitions(self, among: set[_Lane] | None = None) -> set[tuple[str, int]]:
        """The partitions with a lane (of `among`, if given) whose last records no signature vouched for yet."""
        return {(lane[2], lane[3]) for lane, state in self._lanes.items()
                if state.unsigned_from is not None and (among is None or lane in among)}

    def forget_lanes_but(self, kept: set[_Lane]) -> None:
        for lane in [lane for lane in self._lanes if lane not in kept]:
            del self._lanes[lane]

    def finish(self) -> Iterable[Finding]:
        found = []
        for (signer, chain, _, _), state in self._lanes.items():
            if state.detour is not None:  # the lane ends after a record that did not follow it
                self._strays.setdefault((signer, chain, state.detour[4]), (state.detour[3], state.detour[5]))
                found.append(state.detour[6])
            if state.unsigned_from is not None:
                found.append(state.unsigned_from.finding(
                    "STAGE_UNSIGNED_TAIL", f"{signer} chain {chain}: no signature vouches for the records from here "
                    f"to {state.at.where()} (the last of a transaction carries one): it was removed, or records were "
                    "added after it" + (", or it lies after the period read" if self.open_end else ""),
                    failure=not self.open_end))
        found.extend(moved(self._strays, self._holes))
        return found

    def out_of_place(self) -> OutOfPlace:
        """The strays and gaps met (after `finish`), for a replay split between processes: a record moved from a
        partition one process read to one another read is paired in the parent (`moved_across`)."""
        return dict(self._strays), dict(self._holes)


#: A verifier's strays and gaps (`StageSealVerifier._strays`, `_holes`).
OutOfPlace = tuple[dict[tuple[str, str, bytes], tuple[int, Mark]], dict[tuple[str, str, bytes], tuple[int, Mark]]]


def moved(strays: dict[tuple[str, str, bytes], tuple[int, Mark]],
          holes: dict[tuple[str, str, bytes], tuple[int, Mark]]) -> list[Finding]:
    """Each stray whose `prev` is a gap's link, with the number missing there: that record, moved."""
    found = []
    for (signer, chain, prev), (sequence, at) in strays.items():
        hole = holes.get((signer, chain, prev))
        if hole is not None and hole[0] == sequence:
            found.append(at.finding("STAGE_RECORD_MOVED", f"{signer} chain {chain}: number {sequence} was sealed "
                                    f"to follow {hole[1].where()}, where it is missing: moved here from there"))
    return found


def moved_across(parts: list[list[OutOfPlace]]) -> list[Finding]:
    """`moved` over the strays and gaps of processes that each read some partitions: only the pairs whose two places
    two different processes read (each process named those it read both places of)."""
    found = []
    for i, mine in enumerate(parts):
        for strays, _ in mine:
            for j, theirs in enumerate(parts):
                if i != j:
                    for _, holes in theirs:
                        found.extend(moved(strays, holes))
    return found


def headless(here: Mark, signer: str, chain: str, sequence: int) -> Finding:
    """A chain's first record in a partition read from its very first offset is not the chain's start: the records
    before it were removed (retention removes none there: a partition it trimmed does not start at offset 0)."""
    missing = "1" if sequence == 2 else f"1–{sequence - 1}"
    return here.finding("STAGE_SEQUENCE_GAP", f"{signer} chain {chain}: its first record in {here.topic}"
                        f"[{here.partition}], read from the partition's first offset, is number {sequence}: "
                        f"{missing} missing (removed)")


def unsealed(record: ReplayRecord | Mark, sealed_before: Mark) -> Finding:
    return Finding.at(record, "STAGE_UNSEALED", f"no stage seal, on a partition a stage sealed before "
                                                f"({sealed_before.where()}): its seal removed, or a record "
                                                "the stage never wrote")


@dataclass(slots=True)
class Noted:
    """What the process reading the tail of a cut partition notes for the parent (`leadbus.audit.boundary`)."""

    #: per lane: the sequence number, `prev` and place of its first record, and the chain-start finding made there
    first: dict[_Lane, tuple[int, bytes, Mark, Finding | None]] = field(default_factory=dict)
    signed: set[_Lane] = field(default_factory=set)  # lanes on which a signature verified
    #: per partition: the offsets of the unsealed records before its first sealed one (a Kafka replay's: no archive
    #: file or index; plain numbers, cheap to send back when a whole partition is unsealed)
    unsealed: dict[tuple[str, int], list[int]] = field(default_factory=dict)


_Seal = tuple[str, str, str, int, bytes, "bytes | None"]  # signer, key id, chain, sequence, prev, signature


def _read_seal(headers: Sequence[tuple[str, bytes | None]]) -> _Seal:
    """`StageSeal.from_headers` as a tuple, in one pass over the headers for a usual seal; anything unusual is read by
    `from_headers` itself (its error, word for word)."""
    signer = key_id = chain = number = prev = signature = None
    seen = 0
    for name, value in headers:
        if name in STAGE_SEAL_NAMES:
            seen += 1
            if name == SIGNER_HEADER:
                signer = value
            elif name == KEY_ID_HEADER:
                key_id = value
            elif name == CHAIN_HEADER:
                chain = value
            elif name == SEQUENCE_HEADER:
                number = value
            elif name == PREV_HEADER:
                prev = value
            else:
                signature = value
    if (signer is not None and key_id is not None and chain is not None and number is not None and prev is not None
            and seen == (5 if signature is None else 6) and len(prev) == 32
            and (signature is None or len(signature) == 64)
            and number.isdigit() and len(number) <= 19 and number[:1] != b"0"):
        who, kid, lane = _signer(signer, key_id, chain)
        return who, kid, lane, int(number), prev, signature
    seal = StageSeal.from_headers(headers)
    assert seal is not None
    return seal.signer, seal.key_id, seal.chain, seal.sequence, seal.prev, seal.signature


def _unsealed_run(records: list[ReplayRecord], start: int, stop: int) -> int:
    """`native_intake.unsealed_run` in Python (the reference): records of the first one's topic and partition whose
    headers are a list or tuple of (str, value) pairs naming no stage seal header, one after the other."""
    start = max(start, 0)
    place: tuple[str, int] | None = None
    end = min(stop, len(records))
    for k in range(start, end):
        record = records[k]
        topic, partition, headers = record.topic, record.partition, record.headers
        if type(topic) is not str or type(partition) is not int or type(headers) not in (list, tuple) or (
                place is not None and (topic != place[0] or partition != place[1])):
            return k - start
        for item in headers:
            if type(item) is not tuple or len(item) != 2 or type(item[0]) is not str or item[0] in STAGE_SEAL_NAMES:
                return k - start
        place = (topic, partition)
    return max(end - start, 0)


def take_trusted(held: deque[ReplayRecord], topic: str) -> list[ReplayRecord]:
    """The records popped from the left of `held` while the first is let go (not `pending`), `trusted`, with a value,
    of `topic`: the rest of a trusted run that the replay's loop checks at once (in C when built, `trusted_run`)."""
    if trusted_run is not None:
        return trusted_run(held, topic)
    return _take_trusted(held, topic)


def _take_trusted(held: deque[ReplayRecord], topic: str) -> list[ReplayRecord]:
    """`take_trusted` in Python (the reference)."""
    run = []
    while held:
        head = held[0]
        if head.pending or not head.trusted or head.value is None or head.topic != topic:
            break
        run.append(held.popleft())
    return run


def _has_stage_seal(headers: Iterable[tuple[str, bytes | None]]) -> bool:
    for name, _ in headers:  # noqa: SIM110 - a loop, not any(): this runs per record
        if name in STAGE_SEAL_NAMES:
            return True
    return False
