"""The routing stage: `leadbus.cases` → jurisdiction feeds, regional bulletins (masked), channels, withdrawals.

The pure core (`core/routing.py`) decides where each version of a case goes; this stage remembers,
per case, the last version routed and every place it reached (state keyed by case id, changelog
`leadbus.state.routing`, partitioned like `leadbus.cases`). When a newer version no longer reaches
a place — a revision to CONFIDENTIAL, a RESTRICTED lead joining, a corrected province, a merge, a
split — a `CaseWithdrawn` (case id, version, reason; no case data) goes to that place, and a copy to
`leadbus.withdrawals` for the registry and the archive, in the same transaction as the new version
and the state change. Jurisdiction, liaison and channel topics carry the CaseUpdated as published;
regional topics carry a `RegionalBulletin`, the only form of a case a regional dashboard receives; the
postal administration's `leadbus.channel.postal` a `CourierTraceRequest` (waybills and couriers, no identities).

Handover steps reach the regions the same way (regional data stays regional): the stage also reads
`leadbus.handover` (co-partitioned with `leadbus.cases`, both keyed by case id) and forwards each
`HandoverStep`, without its free text, to the regional topics the case's last version reached. It keeps
a case's steps with its routing memory, so a region the case reaches later gets the earlier steps right
after the case's bulletin. A dashboard therefore reads one topic, its own region's, and its principal
needs no right on any national topic.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.processors.core.courier import trace_request
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.core.routing import (
    STEPS_KEPT,
    Reached,
    bulletin,
    newly_reached_regions,
    regional_step,
    route_change,
    step_regions,
    withdrawal_record,
)
from leadbus.topics import CASES, HANDOVER, ROUTING_CHANGELOG, WITHDRAWALS

log = logging.getLogger("leadbus.processors.routing")
CHANGELOG = ROUTING_CHANGELOG
TOPICS = [CASES, HANDOVER]


def _state_key(case_id: str) -> bytes:
    return f"r:{case_id}".encode()


def _steps_key(case_id: str) -> bytes:
    return f"s:{case_id}".encode()


def _stored_steps(state: StateView, case_id: str) -> list[tuple[int, bytes]]:
    """The case's steps as regions receive them (seq, encoded), oldest first."""
    raw = state.get(_steps_key(case_id))
    if raw is None:
        return []
    return [(int(seq), base64.b64decode(value)) for seq, value in json.loads(raw)]


class RoutingHandler:
    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or packaged_catalog()
        self.case_schema = self.catalog.latest("cn.leadbus.CaseUpdated")
        self.bulletin_schema = self.catalog.latest("cn.leadbus.RegionalBulletin")
        self.withdrawn_schema = self.catalog.latest("cn.leadbus.CaseWithdrawn")
        self.step_schema = self.catalog.latest("cn.leadbus.HandoverStep")
        self.trace_schema = self.catalog.latest("cn.leadbus.CourierTraceRequest")

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        if record.topic == HANDOVER:
            return self.handle_step(record, state)
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
            elif route.channel == "courier":  # SPB gets the parcels and couriers, not the case
                event = encode(self.trace_schema, {**trace_request(case), "published_at": now})
                result.outputs.append(Output(route.topic, key, event))
            else:
                result.outputs.append(Output(route.topic, key, value))
        reached_now = newly_reached_regions(before, change)
        steps = _stored_steps(state, case_id) if reached_now else []  # most versions reach no new region
        for route in reached_now:  # right after the case's bulletin there
            for _, step in steps:
                result.outputs.append(Output(route.topic, key, step))
        reached = Reached(int(case["version"]), tuple(change.send))
        if before != reached:
            result.state[_state_key(case_id)] = reached.to_json().encode()
        return result

    def handle_step(self, record: Record, state: StateView) -> Result:
        """A HandoverStep: to every region the case's last version reached, and into the case's memory."""
        try:
            _, step = decode(self.catalog, record.value or b"", self.step_schema)
        except DecodeError as exc:  # the handover stage wrote it: a bug or tampering; no region gets it
            log.error("undecodable step at %s[%s]@%s: %s", record.topic, record.partition, record.offset, exc)
            return Result()
        case_id, seq = str(step["case_id"]), int(step["seq"])
        steps = _stored_steps(state, case_id)
        if any(known == seq for known, _ in steps):
            return Result()  # forwarded already
        regional = encode(self.step_schema, regional_step(step))
        result = Result()
        stored = state.get(_state_key(case_id))
        reached = Reached.from_json(stored.decode()) if stored is not None else None
        key = case_id.encode()
        for route in step_regions(reached):
            result.outputs.append(Output(route.topic, key, regional))
        kept = sorted([*steps, (seq, regional)])[-STEPS_KEPT:]
        result.state[_steps_key(case_id)] = json.dumps(
            [[s, base64.b64encode(v).decode()] for s, v in kept], separators=(",", ":")).encode()
        return result
