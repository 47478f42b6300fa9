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
from typing import Any

from leadbus.audit.native_intake import plain_run as _native_plain
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.verification import (
    _PLANS,
    _USUAL,
    CASE_LEAD,
    Decodes,
    IntakeLeads,
    LeadHead,
    PartitionOrder,
    ReplayRecord,
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

    def take(self, records: list[ReplayRecord], start: int, tally: dict[tuple[str, str], int]) -> int:
        """How many records from `start` on were judged and counted here (0: the record at `start` is for the Python
        path); each of them is sealed and counted in `tally`."""
        if (_native_plain is None or self.catalog is None or self.order.noted is not None
                or not self.decodes.seals_verified or not self.seals._quick_signers):
            return 0
        intake, seals = self.intake, self.seals
        keep = intake.keep_sources
        state = (ReplayRecord, self.catalog, self.topic, self.heads, self.order._last, seals._quick_signers,
                 seals._covers, seals._runs, seals.window, intake._seen, intake.sources if keep else None,
                 intake.ranges if keep else None, tally, LeadHead)
        taken = _native_plain(records, start, state)
        seals.sealed += taken
        return taken

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
