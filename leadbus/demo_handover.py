"""The demo's simulated officials: they act on most handovers in time and leave some to go overdue."""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.table import Table

from leadbus.clients import settings_from_env
from leadbus.producers import Publisher

# The happy path: which phase waits for which decision by whom.
NEXT_STEP = {
    "ASSESSED": ("HEAD_APPROVE", "agency", "HEAD"),
    "APPROVED": ("TRANSFER", "agency", "OFFICER"),
    "TRANSFERRED": ("POLICE_FILE", "MPS", "POLICE"),
    "FILED": ("MATERIALS_HANDED", "agency", "OFFICER"),
}


@dataclass
class Handover:
    case_id: str
    phase: str
    agency: str
    province: str
    due_at: datetime | None
    overdue: bool = False
    acted_phase: str | None = None


class HandoverBoard:
    """Follows `leadbus.handover` and plays the officials; every fourth case is left alone."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.cases: dict[str, Handover] = {}
        self.breaches = 0
        self.breached_in: dict[str, int] = {}
        self.publishers: dict[str, Publisher] = {}

    def on_step(self, step: dict[str, Any]) -> None:
        case = self.cases.get(step["case_id"])
        if case is None:
            case = Handover(step["case_id"], step["to_phase"], step["actor_agency"] or "", "", None)
            self.cases[step["case_id"]] = case
        if step["event"] == "OPENED":
            case.agency, case.province = (step["next_actor"] or "").split(" ")[0], step.get("actor_province") or "00"
        if step["event"] == "DEADLINE_BREACHED":
            case.overdue = True
            self.breaches += 1
            self.breached_in[step["to_phase"]] = self.breached_in.get(step["to_phase"], 0) + 1
        else:
            case.phase, case.due_at, case.overdue = step["to_phase"], step["due_at"], False

    def act(self, opened_province: dict[str, str]) -> None:
        for case in self.cases.values():
            nxt = NEXT_STEP.get(case.phase)
            if nxt is None or case.acted_phase == case.phase or zlib.crc32(case.case_id.encode()) % 4 == 0:
                continue
            kind, who, role = nxt
            agency = case.agency if who == "agency" else who
            if not agency:  # its OPENED step was not seen (the board joined late): no official to play
                continue
            province = opened_province.get(case.case_id, "00")
            pub = self.publishers.setdefault(agency, Publisher(
                agency, province, bootstrap_servers=settings_from_env(f"publisher-{agency}", self.bootstrap)))
            pub.publish_decision({
                "decision_id": str(uuid.uuid4()), "case_id": case.case_id, "kind": kind,
                "decided_at": datetime.now(UTC), "reasons": "演示",
                "actor": {"agency": agency, "province": province, "role": role},
            })
            case.acted_phase = case.phase

    def render(self) -> Table:
        where = ", ".join(f"{phase} {n}" for phase, n in sorted(self.breached_in.items()))
        table = Table(title=f"handover board (移交) — {len(self.cases)} cases, {self.breaches} overdue steps ({where})")
        for col in ("case", "phase", "transferring", "due (CST, demo calendar)", ""):
            table.add_column(col)
        rows = sorted(self.cases.values(), key=lambda c: (not c.overdue, c.due_at or datetime.max.replace(tzinfo=UTC)))
        for case in rows[:10]:
            due = case.due_at.astimezone(UTC) + timedelta(hours=8) if case.due_at else None
            flag = "[bold red]OVERDUE[/bold red]" if case.overdue else ""
            table.add_row(case.case_id, case.phase, case.agency, due.strftime("%m-%d %H:%M:%S") if due else "—", flag)
        return table

    def close(self) -> None:
        for pub in self.publishers.values():
            pub.flush(10)
