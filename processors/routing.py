"""The routing stage: `leadbus.cases` → jurisdiction feeds, regional bulletins (masked), channels, withdrawals.

The pure core (`core/routing.py`) decides where each version of a case goes; this stage remembers,
per case, the last version routed and every place it reached (state keyed by case id, changelog
`leadbus.state.routing`, partitioned like `leadbus.cases`). When a newer version no longer reaches
a place — a revision to CONFIDENTIAL, a RESTRICTED lead joining, a corrected province, a merge, a
split — a `CaseWithdrawn` (case id, version, reason; no case data) goes to that place, and a copy to
`leadbus.withdrawals` for the registry and the archive, in the same transaction as the new version
and the state change. Jurisdiction, liaison and channel topics carry the CaseUpdated as published;
regional topics carry a `RegionalBulletin`, the only form of a case a regional dashboard receives.
"""

from __future__ import annotations

import logging
from datetime import datetime

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.core.routing import Reached, bulletin, route_change, withdrawal_record
from leadbus.topics import ROUTING_CHANGELOG, WITHDRAWALS

log = logging.getLogger("leadbus.processors.routing")
CHANGELOG = ROUTING_CHANGELOG


def _state_key(case_id: str) -> bytes:
    return f"r:{case_id}".encode()


class RoutingHandler:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.bulletin_schema = self.catalog.latest("cn.leadbus.RegionalBulletin")
        self.withdrawn_schema = self.catalog.latest("cn.leadbus.CaseWithdrawn")

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        value = record.value or b""
        try:
            _, case = decode(self.catalog, value, self.case_schema)
        except DecodeError as exc:  # linking wrote it: a bug or tampering, and the case is not routed
            log.error("undecodable case at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return Result()
        case_id = str(case["case_id"])
        stored = state.get(_state_key(case_id))
        before = Reached.from_json(stored.decode()) if stored is not None else None
        change = route_change(before, case)
        result = Result()
        if change.stale:
            log.info("stale version %s of %s (routed %s already); ignored", case["version"], case_id,
                     before.version if before else None)
            return result
        key = case_id.encode()
        for withdrawal in change.withdraw:
            event = encode(self.withdrawn_schema, {**withdrawal_record(case, withdrawal), "withdrawn_at": now})
            result.outputs.append(Output(withdrawal.route.topic, key, event))
            result.outputs.append(Output(WITHDRAWALS, key, event))
        for route in change.send:
            if route.channel == "region":
                event = encode(self.bulletin_schema, {**bulletin(case, route.recipient), "published_at": now})
                result.outputs.append(Output(route.topic, key, event))
            else:
                result.outputs.append(Output(route.topic, key, value))
        reached = Reached(int(case["version"]), tuple(change.send))
        if before != reached:
            result.state[_state_key(case_id)] = reached.to_json().encode()
        return result
