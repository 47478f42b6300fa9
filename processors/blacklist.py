"""The blacklist stage: `leadbus.cases` + `leadbus.handover` + `leadbus.blacklist.decisions` → `leadbus.blacklist`.

It keeps, per case, the entity identifiers the case names (from its last version) and, per entity, the
`Entry` of the pure policy (`core/blacklist.py`). A handover step reaching a listable phase proposes an
entry; an agency's decision (verified and validated by intake) lists, declines or delists it; the tick
expires listings whose period is over. Every change of an entry is written to the compacted
`leadbus.blacklist` as a `BlacklistEntry`, in the same transaction as the state change; a refused
decision becomes a dead letter with its reason. Any case may name any entity, so the state is global
(partition 0, like linking's), with an index of listing ends (`x:<until ms>:<entry id>`) for the tick.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import partial
from typing import Any

from leadbus.avro import SchemaCatalog, decode, encode
from leadbus.processors.case_stages import CaseStepHandler, case_key, rejected, state_key, time_key
from leadbus.processors.core.blacklist import (
    DEFAULT_POLICY,
    Decision,
    Entry,
    Policy,
    Refusal,
    decide,
    entity_identifiers,
    entry_id_of,
    expire,
    propose,
)
from leadbus.processors.core.records import Output, RangeView, Record, Result, StateView
from leadbus.topics import BLACKLIST, BLACKLIST_CHANGELOG, BLACKLIST_DECISIONS, CASES, HANDOVER

log = logging.getLogger("leadbus.processors.blacklist")

CHANGELOG = BLACKLIST_CHANGELOG
TOPICS = [CASES, HANDOVER, BLACKLIST_DECISIONS]


_entry_key = partial(state_key, "e")  # an entity's Entry, by entry id


_until_key = partial(time_key, "x")  # the index of listing ends the tick scans: x:<until ms>:<entry id>


def entry_record(entry: Entry, now: datetime) -> dict[str, Any]:
    """The `BlacklistEntry` of an entry."""
    doc = entry.to_json()
    times = ("proposed_at", "listed_at", "listed_until", "delisted_at")
    for name in times:
        doc[name] = datetime.fromisoformat(doc[name]) if doc[name] else None
    doc["history"] = [{**e, "at": datetime.fromisoformat(e["at"])} for e in doc["history"]]
    return {**doc, "recorded_at": now}


class BlacklistHandler(CaseStepHandler):
    log = log

    def __init__(self, catalog: SchemaCatalog | None = None, policy: Policy = DEFAULT_POLICY) -> None:
        super().__init__(catalog)
        self.policy = policy
        self.decision_schema = self.catalog.latest("cn.leadbus.BlacklistDecision")
        self.rejected_schema = self.catalog.latest("cn.leadbus.LeadRejected")

    def _unusable(self, record: Record, message: str, now: datetime) -> Result:
        return Result([rejected(self.rejected_schema, record, "BLACKLIST_UNDECODABLE", message, now)])

    def _on_case(self, record: Record, state: StateView, now: datetime) -> Result:
        _, case = decode(self.catalog, record.value or b"", self.case_schema)
        named = entity_identifiers(f"{i['kind']}:{i['value']}" for i in case["identifiers"])
        doc = {"identifiers": list(named), "enterprise_name": case["suspect_name"] if any(
            i.startswith("uscc:") for i in named) else None, "merged_into": case["merged_into"]}
        raw = json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()
        result = Result()
        case_id = case["case_id"]
        if state.get(case_key(case_id)) != raw:
            result.state[case_key(case_id)] = raw
        self._release(state, case_id, result, lambda phase, at: self._propose(state, case_id, doc, phase, at, now))
        return result

    def _on_step(self, record: Record, state: StateView, now: datetime) -> Result:
        _, step = decode(self.catalog, record.value or b"", self.step_schema)
        phase = str(step["to_phase"])
        if phase not in self.policy.listable:
            return Result()
        known = state.get(case_key(step["case_id"]))
        if known is None:  # the case's version is still on its way: propose when it arrives
            return self._hold(step["case_id"], phase, step["at"])
        return self._propose(state, step["case_id"], json.loads(known), phase, step["at"], now)

    def _propose(self, state: StateView, case_id: str, case: dict[str, Any], phase: str, at: datetime,
                 now: datetime) -> Result:
        entry_id = entry_id_of(case["identifiers"])
        if entry_id is None:
            return Result()  # a case naming no entity cannot be listed
        before = self._entry(state, entry_id)
        new = propose(before, case_id, case["identifiers"], phase, at, self.policy, case.get("enterprise_name"))
        return self._store(before, new, now) if new is not None else Result()

    def _on_own(self, record: Record, state: StateView, now: datetime) -> Result:  # an agency's decision
        _, event = decode(self.catalog, record.value or b"", self.decision_schema)
        decision = Decision(event["decision_id"], event["entry_id"], event["kind"], event["actor"]["agency"],
                            event["decided_at"], event["reasons"], event["period_days"])
        before = self._entry(state, decision.entry_id)
        outcome = decide(before, decision, self.policy)
        if isinstance(outcome, Refusal):
            return Result([rejected(self.rejected_schema, record, outcome.reason, outcome.message, now)])
        if outcome == before:
            return Result()
        return self._store(before, outcome, now)

    def tick(self, state: RangeView, now: datetime) -> Result:
        result = Result()
        stop = f"x:{int(now.timestamp() * 1000):015d};".encode()
        for key, _ in state.range(b"x:", stop):
            entry_id = key.decode().split(":", 2)[2]
            before = self._entry(state, entry_id)
            expired = expire(before, now) if before is not None else None
            if before is None or expired is None:
                result.state[key] = None
                continue
            partial = self._store(before, expired, now)
            result.outputs += partial.outputs
            result.state.update(partial.state)
        return result

    def _entry(self, state: StateView, entry_id: str) -> Entry | None:
        raw = state.get(_entry_key(entry_id))
        return Entry.from_json(json.loads(raw)) if raw is not None else None

    def _store(self, before: Entry | None, entry: Entry, now: datetime) -> Result:
        result = Result()
        if before is not None and before.listed and before.listed_until:
            result.state[_until_key(before.listed_until, before.entry_id)] = None
        if entry.listed and entry.listed_until:
            result.state[_until_key(entry.listed_until, entry.entry_id)] = b"1"
        result.state[_entry_key(entry.entry_id)] = json.dumps(entry.to_json(), ensure_ascii=False).encode()
        result.outputs.append(Output(BLACKLIST, entry.entry_id.encode(),
                                     encode(self.entry_schema, entry_record(entry, now))))
        return result
