"""A stretch of one intake topic that no stage seal covers, its usual records judged and counted in one C pass.

The replay's loop takes such a stretch through each check's `check_run`, then counts it (`replay._loop`'s
`process_plain`): on an intake topic the checks that apply are the partition order, the decode check, the intake
leads' and the agency seal verifier, each reading the record again (its lead's head, its seal headers, its publisher).
`PlainIntake.take` judges the usual record by all four and counts it in one C call per stretch (`native_intake`'s
`plain_run`), and stops at the first record one of them would not take its usual way: the caller's Python path judges
that one (the reference), then hands the rest back here. A usual record gives no finding, and each check keeps its own
state, read by no other check's: the findings, the state and the tally are those of the checks one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any

from leadbus.audit.native_intake import plain_run as _native_plain
from leadbus.audit.seals import QUICK_SIGNERS, BusSealVerifier, quick_signer
from leadbus.audit.verification import (
    _PLANS,
    _USUAL,
    CASE_LEAD,
    Decodes,
    Finding,
    IntakeLeads,
    LeadHead,
    PartitionOrder,
    ReplayRecord,
    unreadable,
)
from leadbus.topics import INTAKE_PREFIX


class PlainIntake:
    """The C pass over a plain stretch of `topic` for its four checks (see the module); `of` gives None where it does
    not stand in for them."""

    def __init__(self, topic: str, order: PartitionOrder, decodes: Decodes, intake: IntakeLeads,
                 seals: BusSealVerifier) -> None:
        self.topic = topic
        self.order, self.decodes, self.intake, self.seals = order, decodes, intake, seals
        self.catalog: Any = None  # the records' catalog, once a usual lead's schema is known
        #: fingerprint → (schema, its name) of the CaseLead schemas whose head the C peek reads (`verification._PLANS`)
        self.heads: dict[bytes, tuple[Any, str]] = {}
        #: Whether the last `take` stopped after a record that ended its lane's run (the next record is not refused)
        self.ended = False
        #: The signers judged valid on this topic (`BusSealVerifier._signers` read up to `_read` entries), and per
        #: partition how many of them `_quick` was told of there (`_prime`)
        self.signers: list[tuple[str, str]] = []
        self._read = 0
        self.primed: dict[int, int] = {}

    @classmethod
    def of(cls, topic: str, applying: Sequence[Any]) -> PlainIntake | None:
        """The pass for `topic` when the checks that apply to it are exactly these four (in any order) and the C pass is
        built; else None (the checks one after the other)."""
        if _native_plain is None or not topic.startswith(INTAKE_PREFIX):
            return None
        kinds = {type(v): v for v in applying}
        if len(applying) != 4 or set(kinds) != {PartitionOrder, Decodes, IntakeLeads, BusSealVerifier}:
            return None
        return cls(topic, kinds[PartitionOrder], kinds[Decodes], kinds[IntakeLeads], kinds[BusSealVerifier])

    def take(self, records: list[ReplayRecord], start: int, tally: dict[tuple[str, str], int],
             findings: list[Finding]) -> int:
        """How many records from `start` on were judged and counted here (0: the record at `start` is for the Python
        path, as is the record after the last one taken unless `ended`); each of them is sealed and counted in `tally`.
        A record whose seal opens its lane's next run (the open one full, or its chain broken) is the last taken: the
        run it ends is verified here, what that finds put in `findings`, as the seal check finds it at that record (the
        other three find nothing in a record taken)."""
        self.ended = False
        if (_native_plain is None or self.catalog is None or self.order.noted is not None
                or not self.decodes.seals_verified or not self.seals._quick_signers):
            return 0
        intake, seals = self.intake, self.seals
        self._prime(records[start].partition)
        keep = intake.keep_sources
        closing: list[tuple[tuple[str, str, int], list[Any]]] = []
        state = (ReplayRecord, self.catalog, self.topic, self.heads, self.order._last, seals._quick_signers,
                 seals._covers, seals._runs, seals.window, intake._seen, intake.sources if keep else None,
                 intake.ranges if keep else None, tally, LeadHead, closing)
        taken = _native_plain(records, start, state)
        seals.sealed += taken
        self.ended = bool(closing)
        for lane, links in closing:
            try:
                findings += seals._close_links(lane, links)
            except Exception as exc:  # noqa: BLE001 - as the seal check's `check_run` locates a check that raised
                findings.append(unreadable(records[start + taken - 1], seals.name, exc))
        return taken

    def _prime(self, partition: Any) -> None:
        """`_quick` told of each signer judged valid on this topic on `partition` too, as `_remember` does after the
        first record of the signer's lane there: a lane's first record is then judged as the rest of it (`_refused`'s
        path for a signer known on the topic, then `_content`: what `_quick` checks again), here instead of the
        Python path (~70 µs a record; 1,141 of the replay bench's 100,000, one per lane)."""
        seals, topic = self.seals, self.topic
        known = seals._signers
        if len(known) > self._read:  # entries are added, never taken off: the new ones are at the end
            self.signers += [(who, key_id) for who, key_id, on in islice(known, self._read, None) if on == topic]
            self._read = len(known)
        done = self.primed.get(partition, 0) if type(partition) is int else None
        if done is None or done == len(self.signers):
            return
        quick = seals._quick_signers
        for who, key_id in self.signers[done:]:
            signer = known[(who, key_id, topic)]
            if not signer[4] or len(quick) >= QUICK_SIGNERS or not (who.isascii() and key_id.isascii()):
                continue  # (a header's bytes are the id's UTF-8: ASCII alone is read back as it was written)
            at = (who.encode(), key_id.encode(), topic, partition)
            if at not in quick:
                quick[at] = quick_signer(who, key_id, signer, topic, partition)
        self.primed[partition] = len(self.signers)

    def learn(self, record: ReplayRecord) -> None:
        """After the Python path judged `record`: its schema, when a usual lead's, for the records to come."""
        schema = record._schema
        if (schema is None or schema.name != CASE_LEAD or _PLANS.get(schema.fingerprint) is not _USUAL
                or schema.fingerprint in self.heads or len(schema.fingerprint) != 8):
            return
        if self.catalog is None:
            self.catalog = record.catalog
        elif record.catalog is not self.catalog:
            return
        self.heads[schema.fingerprint] = (schema, schema.name)
