"""The regional dashboard's state, pure: what it keeps of bulletins and handover steps, counts and finds.

No Kafka, no web, no clock (`now_ms` is passed in): `leadbus.sinks.dashboard` feeds it under one lock.

    case_view(bulletin) -> dict      the whitelist of (already masked) bulletin fields the page may show;
                                     a personal identifier arriving unmasked is withheld
    step_view(step) -> dict          phase, deadline and escalation of a HandoverStep; never its free text
    RegionBoard                      the latest bulletin per case (merged cases leave), counts by province
                                     and category, the handover board of this region's cases, search
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from leadbus.geography import NATIONAL

Event = tuple[str, dict[str, Any]]  # (SSE event name, data)
MASKED_KINDS = frozenset({"rid", "phone", "acct"})
TERMINAL_PHASES = frozenset({"COMPLETED", "CLOSED_NOT_FILED", "RETURNED"})
SEARCH_LIMIT = 50
STEP_HISTORY = 8  # recent steps kept per case for the board
PARKED_LIMIT = 100_000  # cases whose steps wait for a bulletin of this region, oldest forgotten first
_LONG_DIGITS = re.compile(r"\d{15,}")  # an unmasked resident ID (18) or bank card (16-19)


def _ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value) if isinstance(value, int) else None


def yuan(fen: int) -> str:
    """6000000 → '60,000.00' (integer arithmetic: money is never a float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def looks_unmasked(kind: str, value: str) -> bool:
    """True when a value that must be masked is not, or any value carries an ID- or card-length number."""
    return bool(_LONG_DIGITS.search(value)) or (kind in MASKED_KINDS and bool(value) and "*" not in value)


def case_view(record: Mapping[str, Any], on_withheld: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The dashboard's view of a RegionalBulletin: a whitelist of its (already masked) fields."""
    identifiers = []
    for ident in record["identifiers"]:
        kind, value = str(ident["kind"]), str(ident["value"])
        if looks_unmasked(kind, value):
            on_withheld()
            continue
        identifiers.append({"kind": kind, "value": value})
    name = str(record["suspect_name"])
    if looks_unmasked("name", name):
        on_withheld()
        name = "***"
    reporters = [{"agency": str(r["agency"]), "province": str(r["province"])} for r in record["reporters"]]
    suspect = record.get("suspect_province")
    provinces = [p for p in dict.fromkeys([*([suspect] if suspect else []), *(r["province"] for r in reporters)])
                 if p != NATIONAL]
    sales, business = record.get("sales_amount_fen"), record.get("illegal_business_amount_fen")
    amount = business if business is not None else sales
    return {
        "case_id": str(record["case_id"]),
        "version": int(record["version"]),
        "suspect_name": name,
        "suspect_province": suspect,
        "provinces": provinces,
        "reporters": reporters,
        "identifiers": identifiers,
        "categories": [str(c) for c in record["categories"]],
        "violations": [str(v) for v in record["violations"]],
        "sales_amount_fen": sales,
        "illegal_business_amount_fen": business,
        "amount_fen": amount,
        "amount_yuan": yuan(amount) if amount is not None else None,
        "amount_kind": None if amount is None else ("illegal_business" if business is not None else "sales"),
        "members": int(record["members"]),
        "cross_border": bool(record.get("cross_border")),
        "handling": str(record["handling"]),
        "first_reported_at": _ms(record["first_reported_at"]),
        "last_reported_at": _ms(record["last_reported_at"]),
        "published_at": _ms(record.get("published_at")),
    }


def step_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the board shows of a HandoverStep: phase, deadline, escalation; no free text."""
    return {
        "seq": int(record["seq"]),
        "event": str(record["event"]),
        "from_phase": record.get("from_phase"),
        "to_phase": str(record["to_phase"]),
        "at": _ms(record["at"]),
        "actor_agency": record.get("actor_agency"),
        "actor_role": record.get("actor_role"),
        "decision": record.get("decision"),
        "due_at": _ms(record.get("due_at")),
        "next_action": record.get("next_action"),
        "next_actor": record.get("next_actor"),
        "rule": record.get("rule"),
        "late": bool(record.get("late")),
        "escalated_to": record.get("escalated_to"),
    }


class HandoverRow:
    """One case on the deadline board, folded from its steps in `seq` order."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self.last_seq = 0
        self.phase = ""
        self.due_at: int | None = None
        self.next_action: str | None = None
        self.next_actor: str | None = None
        self.rule: str | None = None
        self.breached = False
        self.escalated_to: str | None = None
        self.updated_at: int | None = None
        self.history: list[dict[str, Any]] = []

    def apply(self, step: dict[str, Any]) -> bool:
        if step["seq"] <= self.last_seq:
            return False  # redelivered or out of date
        self.last_seq, self.phase, self.updated_at = step["seq"], step["to_phase"], step["at"]
        if step["event"] == "DEADLINE_BREACHED":
            self.breached, self.escalated_to = True, step["escalated_to"]
            self.due_at = step["due_at"] or self.due_at
        else:  # OPENED, DECISION: a new deadline (or none); WINDOW_CLOSED: none
            self.breached, self.escalated_to = False, None
            self.due_at = step["due_at"] if step["event"] != "WINDOW_CLOSED" else None
            self.next_action, self.next_actor, self.rule = step["next_action"], step["next_actor"], step["rule"]
        if step["event"] == "WINDOW_CLOSED":
            self.next_action = self.next_actor = None
        self.history = [*self.history, step][-STEP_HISTORY:]
        return True

    def overdue(self, now_ms: int) -> bool:
        if self.breached:
            return True
        return self.due_at is not None and self.due_at < now_ms and self.phase not in TERMINAL_PHASES

    def view(self, now_ms: int) -> dict[str, Any]:
        return {"case_id": self.case_id, "phase": self.phase, "due_at": self.due_at,
                "next_action": self.next_action, "next_actor": self.next_actor, "rule": self.rule,
                "breached": self.breached, "escalated_to": self.escalated_to, "overdue": self.overdue(now_ms),
                "terminal": self.phase in TERMINAL_PHASES, "updated_at": self.updated_at, "steps": self.history}


class RegionBoard:
    """The state of one region's dashboard; not thread-safe by itself (`Dashboard` holds its lock)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.cases: dict[str, dict[str, Any]] = {}
        self.gone: dict[str, int] = {}  # case id → version of the bulletin that merged it away
        self.board: dict[str, HandoverRow] = {}
        self.parked: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.by_province: Counter[str] = Counter()
        self.by_category: Counter[str] = Counter()

    def _count(self, case: Mapping[str, Any], sign: int) -> None:
        for counter, keys in ((self.by_province, case["provinces"]), (self.by_category, case["categories"])):
            for key in dict.fromkeys(keys):
                counter[key] += sign
                if counter[key] <= 0:
                    del counter[key]

    def counts(self) -> dict[str, Any]:
        return {"total": len(self.cases), "by_province": dict(self.by_province.most_common()),
                "by_category": dict(self.by_category.most_common())}

    def bulletin(self, record: Mapping[str, Any], view: dict[str, Any], now_ms: int) -> list[Event]:
        """Apply one bulletin (`view` is its `case_view`); return the events to push."""
        case_id, version = view["case_id"], view["version"]
        old = self.cases.get(case_id)
        if (old is not None and version < old["version"]) or version < self.gone.get(case_id, -1):
            return []
        if old is not None:
            self._count(old, -1)
        if record.get("merged_into"):
            self.cases.pop(case_id, None)
            self.gone[case_id] = version
            self.board.pop(case_id, None)
            self.parked.pop(case_id, None)
            return [("removed", {"case_id": case_id, "counts": self.counts()})] if old is not None else []
        self.gone.pop(case_id, None)
        self.cases[case_id] = view
        self._count(view, +1)
        events: list[Event] = [("bulletin", {"case": view, "counts": self.counts()})]
        parked = self.parked.pop(case_id, None)
        if parked:
            row = self.board.setdefault(case_id, HandoverRow(case_id))
            if any([row.apply(step) for step in sorted(parked, key=lambda s: s["seq"])]):
                events.append(("handover", {"row": row.view(now_ms)}))
        return events

    def step(self, case_id: str, step: dict[str, Any], now_ms: int) -> list[Event]:
        """Apply one step (a `step_view`); return the events to push."""
        if case_id not in self.cases:  # another region's case, or one whose bulletin has not come yet
            if case_id in self.gone:
                return []
            self.parked.setdefault(case_id, []).append(step)
            self.parked.move_to_end(case_id)
            self.parked[case_id] = self.parked[case_id][-STEP_HISTORY * 4:]
            while len(self.parked) > PARKED_LIMIT:
                self.parked.popitem(last=False)
            return []
        row = self.board.setdefault(case_id, HandoverRow(case_id))
        return [("handover", {"row": row.view(now_ms)})] if row.apply(step) else []

    def newest(self, limit: int) -> list[dict[str, Any]]:
        return sorted(self.cases.values(), key=lambda c: (c["published_at"] or 0, c["case_id"]), reverse=True)[:limit]

    def board_rows(self, limit: int, now_ms: int) -> list[dict[str, Any]]:
        rows = [row.view(now_ms) for row in self.board.values()]
        rows.sort(key=lambda r: (not r["overdue"], r["terminal"], r["due_at"] or 2**62, r["case_id"]))
        return rows[:limit]

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
        q = query.strip().casefold()
        compact = re.sub(r"[\s\-]", "", q)
        if not q:
            return []
        hits = []
        for case in self.cases.values():
            texts = [case["case_id"].casefold(), case["suspect_name"].casefold()]
            values = [i["value"].casefold() for i in case["identifiers"]]
            if any(q in t for t in texts) or any(q in v or (compact and compact in v) for v in values):
                hits.append(case)
        hits.sort(key=lambda c: (c["published_at"] or 0, c["case_id"]), reverse=True)
        return hits[:limit]
