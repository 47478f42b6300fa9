"""What the stages that follow a case's handover share (blacklist, disclosure; handover's keys and dead letters).

Their state keys are a one-letter prefix and a name (`c:<case id>`, `p:<case id>`…), or a prefix, a time in
milliseconds and a name for an index a tick scans in order (`x:<until ms>:<entry id>`). The blacklist and the
disclosure stages read `leadbus.cases`, `leadbus.handover` and one topic of their own; a step read before its
case's first version (two topics: no order between them) waits in state (`p:<case id>`) until the case arrives.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from leadbus.avro import DecodeError, SchemaCatalog, SchemaEntry, encode, packaged_catalog
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.topics import CASES, HANDOVER, LEADS_REJECTED


def state_key(prefix: str, name: str) -> bytes:
    return f"{prefix}:{name}".encode()


def time_key(prefix: str, at: str, name: str) -> bytes:
    """A key that sorts by `at` (an ISO time): `prefix:<ms, 15 digits>:name`."""
    return f"{prefix}:{int(datetime.fromisoformat(at).timestamp() * 1000):015d}:{name}".encode()


def case_key(case_id: str) -> bytes:
    return state_key("c", case_id)


def pending_key(case_id: str) -> bytes:
    return state_key("p", case_id)


def rejected(schema: SchemaEntry, record: Record, reason: str, message: str, now: datetime) -> Output:
    """The dead letter (`LeadRejected` on `leadbus.leads.rejected`) of a record a stage refuses."""
    return Output(LEADS_REJECTED, record.key, encode(schema, dead_letter_record(
        reason=reason, message=message, original=record.value or b"", source=record.source, now=now)))


class CaseStepHandler:
    """Dispatches a case version, a handover step or a record of the stage's own topic to `_on_case`, `_on_step`
    and `_on_own`; a record none can read is logged and handed to `_unusable`."""

    log: logging.Logger

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.step_schema = self.catalog.latest("cn.leadbus.HandoverStep")
        self.entry_schema = self.catalog.latest("cn.leadbus.BlacklistEntry")

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        try:
            if record.topic == CASES:
                return self._on_case(record, state, now)
            if record.topic == HANDOVER:
                return self._on_step(record, state, now)
            return self._on_own(record, state, now)
        except (DecodeError, ValueError, KeyError) as exc:
            self.log.error("unusable record at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return self._unusable(record, str(exc), now)

    def _on_case(self, record: Record, state: StateView, now: datetime) -> Result:
        raise NotImplementedError

    def _on_step(self, record: Record, state: StateView, now: datetime) -> Result:
        raise NotImplementedError

    def _on_own(self, record: Record, state: StateView, now: datetime) -> Result:
        raise NotImplementedError

    def _unusable(self, record: Record, message: str, now: datetime) -> Result:
        raise NotImplementedError

    @staticmethod
    def _hold(case_id: str, phase: str, at: datetime) -> Result:
        """The step reached `phase` before its case arrived: keep it for then."""
        result = Result()
        result.state[pending_key(case_id)] = json.dumps([phase, at.isoformat()]).encode()
        return result

    @staticmethod
    def _release(state: StateView, case_id: str, result: Result, act: Callable[[str, datetime], Result]) -> None:
        """The case arrived: act on its held step, if any, into `result`."""
        pending = state.get(pending_key(case_id))
        if pending is None:
            return
        result.state[pending_key(case_id)] = None
        phase, at = json.loads(pending)
        more = act(phase, datetime.fromisoformat(at))
        result.outputs += more.outputs
        result.state.update(more.state)
