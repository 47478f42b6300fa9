"""The replay's verifier of stage seals (`leadbus.stage_seals`): the chains and signatures of the bus's own records.

Per lane (stage signer, chain, topic, partition), in partition order: each record's `prev` is the link of
the record before it and its number is the next (`STAGE_CHAIN_BROKEN`, `STAGE_SEQUENCE_GAP`,
`STAGE_SEQUENCE_REPLAYED`); a record carrying a signature has it verified over its own link against the
stage's key in the registry, valid at the record's time (`STAGE_BAD_SIGNATURE`, `UNKNOWN_KEY`, `KEY_*`),
which vouches for every record of the lane since the last signature. Records left behind no signature at the
end are `STAGE_UNSIGNED_TAIL` (a notice when the replay stopped before the topic's end: the signature may lie
after the period read). A lane's first record in the replay may link to records before it (the period read
began later); a chain start is sequence 1 with `prev` zeros, and nothing else. An unsealed record in a
partition where a stage sealed before it is `STAGE_UNSEALED` (seal headers removed, or a record written
without the stage). Malformed headers are `STAGE_SEAL_MALFORMED`. Every finding has its coordinates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from leadbus.audit.verification import Finding, Mark, ReplayRecord
from leadbus.signing import CHAIN_START, KeyRegistry, PublisherKey
from leadbus.stage_seals import STAGE_SEAL_NAMES, MalformedStageSeal, StageSeal, head_signed

_Lane = tuple[str, str, str, int]  # signer, chain, topic, partition


@dataclass(slots=True)
class _State:
    sequence: int
    link: bytes
    at: Mark
    unsigned_from: Mark | None  # the first record of the lane not yet vouched for by a signature


class StageSealVerifier:
    name = "stage-seals"

    def __init__(self, registry: KeyRegistry, *, open_end: bool = False) -> None:
        self.registry = registry
        self.open_end = open_end  # the replay stopped before the topics' end (`--to`)
        self.sealed = 0
        self.signatures = 0
        self._lanes: dict[_Lane, _State] = {}
        self._sealed_partitions: dict[tuple[str, int], Mark] = {}
        self._bounds: dict[tuple[str, str], tuple[PublisherKey, int | None, int | None, int | None]] = {}

    def check(self, record: ReplayRecord) -> Iterable[Finding]:
        headers = record.headers
        if not headers or not _has_stage_seal(headers):
            sealed_before = self._sealed_partitions.get((record.topic, record.partition))
            if sealed_before is None:
                return ()
            return [Finding.at(record, "STAGE_UNSEALED", f"no stage seal, on a partition a stage sealed before "
                                                         f"({sealed_before.where()}): its seal removed, or a record "
                                                         "the stage never wrote")]
        try:
            seal = StageSeal.from_headers(headers)
        except MalformedStageSeal as exc:
            return [Finding.at(record, "STAGE_SEAL_MALFORMED", str(exc))]
        assert seal is not None
        self.sealed += 1
        here = Mark.of(record)
        self._sealed_partitions.setdefault((record.topic, record.partition), here)
        found: list[Finding] = []
        key = self.registry.get(seal.signer, seal.key_id)
        fault = self._key_fault(key, seal, record.timestamp_ms)
        if fault is not None:
            found.append(Finding.at(record, fault[0], fault[1]))
        link = seal.link(record.topic, record.partition, record.key, record.value, headers)
        lane = (seal.signer, seal.chain, record.topic, record.partition)
        state = self._lanes.get(lane)
        if state is None:
            if (seal.sequence == 1) != (seal.prev == CHAIN_START):
                found.append(Finding.at(record, "STAGE_CHAIN_BROKEN", f"{seal.signer} chain {seal.chain}: number "
                                        f"{seal.sequence} with {'a zero' if seal.prev == CHAIN_START else 'a'} "
                                        "link before it: a chain starts at 1 with zeros, and only there"))
            state = self._lanes[lane] = _State(seal.sequence, link, here, None)
        else:
            behind = seal.sequence <= state.sequence
            found += self._follows(state, seal, here)
            if behind:  # a copy or a record out of place: the lane goes on from where it was
                return found
            state.sequence, state.link, state.at = seal.sequence, link, here
        if seal.signature is None:
            if state.unsigned_from is None:
                state.unsigned_from = here
        elif key is not None:
            self.signatures += 1
            if head_signed(key.public_key, seal.signature, link):
                state.unsigned_from = None
            else:
                found.append(here.finding("STAGE_BAD_SIGNATURE", f"the signature of {seal.signer} (key "
                                          f"{seal.key_id}) does not match this record and the chain below it: "
                                          "forged, or altered after sealing"))
        return found

    @staticmethod
    def _follows(state: _State, seal: StageSeal, here: Mark) -> list[Finding]:
        expected = state.sequence + 1
        who = f"{seal.signer} chain {seal.chain}"
        if seal.sequence < expected:
            return [here.finding("STAGE_SEQUENCE_REPLAYED", f"{who}: number {seal.sequence} after {state.sequence} "
                                 f"({state.at.where()}): a record replayed, or records swapped")]
        if seal.sequence > expected:
            missing = f"{expected}" if seal.sequence == expected + 1 else f"{expected}–{seal.sequence - 1}"
            return [here.finding("STAGE_SEQUENCE_GAP", f"{who}: number {seal.sequence} after {state.sequence} "
                                 f"({state.at.where()}): {missing} missing (removed, or records swapped)")]
        if seal.prev != state.link:
            return [state.at.finding("STAGE_CHAIN_BROKEN", f"{who}: the next record ({here.where()}, number "
                                     f"{seal.sequence}) names another link than this record's: this record altered "
                                     "after sealing, or replaced by a forged one")]
        return []

    def _key_fault(self, key: PublisherKey | None, seal: StageSeal, ms: int) -> tuple[str, str] | None:
        if key is None:
            return "UNKNOWN_KEY", f"key {seal.key_id} is not registered for stage signer {seal.signer}"
        bounds = self._bounds.get((seal.signer, seal.key_id))
        if bounds is None or bounds[0] is not key:
            bounds = self._bounds[(seal.signer, seal.key_id)] = (key, _ms(key.valid_from), _ms(key.valid_until),
                                                                 _ms(key.revoked_at))
        _, start, until, revoked = bounds
        if ms > 0 and (start is None or ms >= start) and (until is None or ms < until) \
                and (revoked is None or ms < revoked):
            return None  # the usual case, without a datetime per record
        when = datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else datetime.now(UTC)
        status = key.status(when)
        if status != "VALID":
            return status, f"key {seal.key_id} of {seal.signer} is {status.lower().replace('_', ' ')} at the " \
                           f"record's time {when:%Y-%m-%dT%H:%M:%SZ}"
        return None

    def finish(self) -> Iterable[Finding]:
        found = []
        for (signer, chain, _, _), state in self._lanes.items():
            if state.unsigned_from is not None:
                found.append(state.unsigned_from.finding(
                    "STAGE_UNSIGNED_TAIL", f"{signer} chain {chain}: no signature vouches for the records from here "
                    f"to {state.at.where()} (the last of a transaction carries one): it was removed, or records were "
                    "added after it" + (", or it lies after the period read" if self.open_end else ""),
                    failure=not self.open_end))
        return found


def _has_stage_seal(headers: Iterable[tuple[str, bytes | None]]) -> bool:
    for name, _ in headers:  # noqa: SIM110 - a loop, not any(): this runs per record
        if name in STAGE_SEAL_NAMES:
            return True
    return False


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)
