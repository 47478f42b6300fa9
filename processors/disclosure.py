"""The disclosure stage: `leadbus.cases` + `leadbus.handover` + `leadbus.blacklist` → `leadbus.disclosure` (信息公开).

It keeps of each case only what a public record may be built from (`core/disclosure.public_case`); when the
case's handover reaches a closing phase it writes the case's `DisclosedCase`. An enterprise's name appears
in its closed cases' records while an agency's listing keeps it on the blacklist: a listing re-publishes
them with the name, a delisting or expiry without it (the topic is compacted by disclosure id). State is
global (partition 0): a blacklist entry concerns cases of any partition.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import partial
from typing import Any

from leadbus.avro import SchemaCatalog, decode, encode
from leadbus.processors.case_stages import CaseStepHandler, case_key, state_key
from leadbus.processors.core.disclosure import CLOSING_PHASES, disclosed_record, public_case
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.topics import BLACKLIST, CASES, DISCLOSURE, DISCLOSURE_CHANGELOG, HANDOVER

log = logging.getLogger("leadbus.processors.disclosure")

CHANGELOG = DISCLOSURE_CHANGELOG
TOPICS = [CASES, HANDOVER, BLACKLIST]


_closed_key = partial(state_key, "d")  # a closed case: what its public record is built from
_listed_key = partial(state_key, "l")  # an enterprise (uscc:…) a listing keeps on the blacklist
_by_entity_key = partial(state_key, "k")  # the closed cases naming an enterprise


class DisclosureHandler(CaseStepHandler):
    log = log

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        super().__init__(catalog)
        self.disclosed_schema = self.catalog.latest("cn.leadbus.DisclosedCase")

    def _unusable(self, record: Record, message: str, now: datetime) -> Result:
        return Result()  # written by our own stages: a defect; nothing published

    def _on_case(self, record: Record, state: StateView, now: datetime) -> Result:
        _, case = decode(self.catalog, record.value or b"", self.case_schema)
        case_id = case["case_id"]
        result = Result()
        if state.get(_closed_key(case_id)) is not None:
            return result  # closed and published: later versions do not change the public record
        kept = public_case(case)
        result.state[case_key(case_id)] = json.dumps(kept, ensure_ascii=False, sort_keys=True).encode()
        self._release(state, case_id, result, lambda phase, at: self._close(state, case_id, kept, phase, at, now))
        return result

    def _on_step(self, record: Record, state: StateView, now: datetime) -> Result:
        _, step = decode(self.catalog, record.value or b"", self.step_schema)
        phase, case_id = str(step["to_phase"]), str(step["case_id"])
        result = Result()
        if phase not in CLOSING_PHASES or state.get(_closed_key(case_id)) is not None:
            return result
        raw = state.get(case_key(case_id))
        if raw is None:
            return self._hold(case_id, phase, step["at"])
        return self._close(state, case_id, json.loads(raw), phase, step["at"], now)

    def _close(self, state: StateView, case_id: str, case: dict[str, Any], phase: str, at: datetime,
               now: datetime) -> Result:
        result = Result()
        if case.get("merged_into"):
            return result  # its survivor's handover closes it
        entity = case.get("entity")
        listed = entity is not None and state.get(_listed_key(entity)) is not None
        disclosed = disclosed_record(case_id, case, phase, at, listed)
        if disclosed is None:
            return result
        result.state[_closed_key(case_id)] = json.dumps({"case": case, "phase": phase, "at": at.isoformat()},
                                                        ensure_ascii=False).encode()
        result.state[case_key(case_id)] = None
        if entity is not None:
            known = json.loads(state.get(_by_entity_key(entity)) or b"[]")
            result.state[_by_entity_key(entity)] = json.dumps(sorted({*known, case_id})).encode()
        result.outputs.append(self._output(disclosed, now))
        return result

    def _on_own(self, record: Record, state: StateView, now: datetime) -> Result:  # a blacklist entry
        if not record.value:
            return Result()
        _, entry = decode(self.catalog, record.value, self.entry_schema)
        result = Result()
        listed = str(entry["status"]) == "LISTED"
        for entity in (i for i in entry["identifiers"] if i.startswith("uscc:")):
            was = state.get(_listed_key(entity)) is not None
            if was == listed:
                continue
            result.state[_listed_key(entity)] = b"1" if listed else None
            for case_id in json.loads(state.get(_by_entity_key(entity)) or b"[]"):
                raw = state.get(_closed_key(case_id))
                if raw is None:
                    continue
                closed = json.loads(raw)
                disclosed = disclosed_record(case_id, closed["case"], closed["phase"],
                                             datetime.fromisoformat(closed["at"]), listed)
                if disclosed is not None:
                    result.outputs.append(self._output(disclosed, now))
        return result

    def _output(self, disclosed: dict[str, Any], now: datetime) -> Output:
        return Output(DISCLOSURE, disclosed["disclosure_id"].encode(),
                      encode(self.disclosed_schema, {**disclosed, "published_at": now}))
