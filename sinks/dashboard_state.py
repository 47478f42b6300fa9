"""The regional dashboard's state, pure: what it keeps of bulletins and handover steps, counts and finds.

No Kafka, no web, no clock (`now_ms` is passed in): `leadbus.sinks.dashboard` feeds it under one lock.

    case_view(bulletin) -> dict      the whitelist of (already masked) bulletin fields the page may show;
                                     a personal identifier arriving unmasked is withheld
    step_view(step) -> dict          phase, deadline and escalation of a HandoverStep; never its free text
    RegionBoard                      the latest bulletin per case (merged and withdrawn cases leave), counts
                                     by province and category, the handover board of this region's cases,
                                     search

A `CaseWithdrawn` on the region's topic removes the case, its handover row and its search entries
at once; the row is kept out of sight (its steps still folded in) so that a case that comes back
shows exactly what a dashboard replaying the topic from the start would show.

Enterprise identifiers (统一社会信用代码, ICP filing numbers) are public and shown; only personal data
that arrives unmasked is withheld and counted.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from leadbus.geography import NATIONAL
from leadbus.identifiers import IdentifierError, check_uscc, normalize_resident_id

Event = tuple[str, dict[str, Any]]  # (SSE event name, data)
MASKED_KINDS = frozenset({"rid", "phone", "acct"})
PUBLIC_KINDS = frozenset({"uscc", "icp"})  # enterprise registrations, public by law: shown whole
TERMINAL_PHASES = frozenset({"COMPLETED", "CLOSED_NOT_FILED", "RETURNED"})
SEARCH_LIMIT = 50
STEP_HISTORY = 8  # recent steps kept per case for the board
PARKED_LIMIT = 100_000  # cases whose steps wait for a bulletin of this region, oldest forgotten first
_LONG_DIGITS = re.compile(r"\d{15,}")  # an unmasked resident ID (18) or bank card (16-19)
_ICP = re.compile(r"^[\u4e00-\u9fff]ICP[备证]\d{5,10}号(?:-\d{1,4})?$")  # 浙ICP备12345678号-1, 京ICP证030173号


def _ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value) if isinstance(value, int) else None


def yuan(fen: int) -> str:
    """6000000 → '60,000.00' (integer arithmetic: money is never a float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def _is_resident_id(value: str) -> bool:
    try:
        normalize_resident_id(value)
    except IdentifierError:
        return False
    return True


def public_identifier(kind: str, value: str) -> bool:
    """A well-formed enterprise identifier: a 统一社会信用代码 (GB 32100) or an ICP filing number.

    An 18-digit value that is a valid resident ID number and not a valid USCC is a person's, whatever
    its label says.
    """
    if kind == "uscc":
        try:
            check = check_uscc(value)
        except IdentifierError:
            return False
        return check.checksum_ok or not _is_resident_id(value)
    return kind == "icp" and bool(_ICP.match(value))


def looks_unmasked(kind: str, value: str) -> bool:
    """True when a value that must be masked is not, or any value carries an ID- or card-length number.

    Public enterprise identifiers are not personal data: a well-formed one is never a leak.
    """
    if kind in PUBLIC_KINDS and public_identifier(kind, value):
        return False
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
        **law_view(record, identifiers),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else None


def law_view(record: Mapping[str, Any], identifiers: list[dict[str, str]]) -> dict[str, Any]:
    """What the thresholds turn on (RegionalBulletin v2, CaseLead v2): conduct period, prior penalties, ICP filing
    numbers, labels sold / held and who made them, goods or services. A v1 bulletin shows none of it."""
    made_by, mark_use = record.get("labels_made_by"), record.get("mark_use")
    return {
        "conduct_from": _iso(record.get("conduct_from")),
        "conduct_to": _iso(record.get("conduct_to")),
        "prior_penalties": [{"kind": str(p["kind"]), "decided_on": _iso(p["decided_on"]),
                             "decided_by": str(p["decided_by"]), "violation": str(p["violation"])}
                            for p in record.get("prior_penalties") or []],
        "icp_filings": [i["value"] for i in identifiers if i["kind"] == "icp"],
        "labels_sold": record.get("labels_sold"),
        "labels_held": record.get("labels_held"),
        "labels_made_by": str(made_by) if made_by in ("SELF", "OTHERS") else None,
        "mark_use": str(mark_use) if mark_use in ("GOODS", "SERVICES") else None,
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
        self.withdrawn: dict[str, int] = {}  # case id → version of the withdrawal that took it off this page
        self.board: dict[str, HandoverRow] = {}
        # Rows of withdrawn cases, out of sight: their steps are still folded in, so a case that comes
        # back shows the same row as on a dashboard that replays the topics from the start.
        self.hidden: OrderedDict[str, HandoverRow] = OrderedDict()
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

    def _remove(self, case_id: str) -> list[Event]:
        old = self.cases.pop(case_id, None)
        if old is not None:
            self._count(old, -1)
        had_row = self.board.pop(case_id, None) is not None
        if old is None and not had_row:
            return []
        return [("removed", {"case_id": case_id, "counts": self.counts()})]

    def bulletin(self, record: Mapping[str, Any], view: dict[str, Any], now_ms: int) -> list[Event]:
        """Apply one bulletin (`view` is its `case_view`); return the events to push."""
        case_id, version = view["case_id"], view["version"]
        old = self.cases.get(case_id)
        if (old is not None and version < old["version"]) or version < self.gone.get(case_id, -1):
            return []
        if version <= self.withdrawn.get(case_id, -1):
            return []  # older than (or as old as) the withdrawal that took it off this page
        if record.get("merged_into"):
            self.gone[case_id] = version
            self.withdrawn.pop(case_id, None)
            self.hidden.pop(case_id, None)
            self.parked.pop(case_id, None)
            return self._remove(case_id)
        if old is not None:
            self._count(old, -1)
        self.gone.pop(case_id, None)
        self.withdrawn.pop(case_id, None)
        self.cases[case_id] = view
        self._count(view, +1)
        events: list[Event] = [("bulletin", {"case": view, "counts": self.counts()})]
        row = self.hidden.pop(case_id, None)
        if row is not None:  # a case that comes back: its row as it stands now
            self.board[case_id] = row
        parked = self.parked.pop(case_id, None)
        if parked:
            row = self.board.setdefault(case_id, HandoverRow(case_id))
            for step in sorted(parked, key=lambda s: s["seq"]):
                row.apply(step)
        if case_id in self.board and (row is not None or parked):
            events.append(("handover", {"row": self.board[case_id].view(now_ms)}))
        return events

    def withdraw(self, case_id: str, version: int, merged_into: str | None = None) -> list[Event]:
        """Apply a `CaseWithdrawn`: the case, its handover row and its search entries leave at once."""
        old = self.cases.get(case_id)
        if old is not None and old["version"] > version:
            return []  # a newer bulletin already stands
        if version < max(self.withdrawn.get(case_id, -1), self.gone.get(case_id, -1)):
            return []
        if merged_into:
            self.gone[case_id] = version
            self.withdrawn.pop(case_id, None)
            self.hidden.pop(case_id, None)
            self.parked.pop(case_id, None)
            return self._remove(case_id)
        self.withdrawn[case_id] = version
        row = self.board.get(case_id)
        if row is not None:
            self.hidden[case_id] = row
            self.hidden.move_to_end(case_id)
            while len(self.hidden) > PARKED_LIMIT:
                self.hidden.popitem(last=False)
        return self._remove(case_id)

    def step(self, case_id: str, step: dict[str, Any], now_ms: int) -> list[Event]:
        """Apply one step (a `step_view`); return the events to push."""
        if case_id not in self.cases:  # another region's case, one withdrawn, or one whose bulletin has not come
            if case_id in self.gone:
                return []
            hidden = self.hidden.get(case_id)
            if hidden is not None:
                hidden.apply(step)
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


# -- suggested links (issue #19): supervisors only -------------------------------------------------------

_MASKED_SIGNALS = {"person": lambda v: v[:1] + "*" * max(len(v) - 1, 1),  # a person's name: the surname only
                   "ip": lambda v: v.rsplit(".", 1)[0] + ".*" if "." in v else v.rsplit(":", 1)[0] + ":*"}


def suggestion_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a supervisor sees of a `LinkSuggested`: the pair, the score, each signal with its weight (a person's
    name shows only its surname, an IP address only its network)."""
    evidence = []
    for item in record.get("evidence") or ():
        value = item.get("value")
        if value is not None and item["signal"] in _MASKED_SIGNALS:
            value = _MASKED_SIGNALS[item["signal"]](str(value))
        evidence.append({"signal": str(item["signal"]), "value": value, "bits": round(float(item["bits"]), 1)})
    return {"suggestion_id": str(record["suggestion_id"]), "case_a": str(record["case_a"]),
            "case_b": str(record["case_b"]), "score": round(float(record["score"]), 4),
            "provinces": list(record.get("provinces") or ()), "evidence": evidence,
            "suggested_at": _ms(record.get("suggested_at"))}


class SuggestionBoard:
    """The open suggestions of a region, newest per pair; a pair leaves when either case leaves the region."""

    def __init__(self) -> None:
        self.pairs: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def add(self, view: dict[str, Any]) -> None:
        pair = (view["case_a"], view["case_b"])
        self.pairs.pop(pair, None)
        self.pairs[pair] = view

    def drop_case(self, case_id: str) -> None:
        for pair in [p for p in self.pairs if case_id in p]:
            del self.pairs[pair]

    def decided(self, case_a: str, case_b: str) -> None:
        """An analyst's confirm or reject of the pair was carried out (`LinkDecided`): it is not open any more."""
        self.pairs.pop((case_a, case_b), None)

    def rows(self, limit: int) -> list[dict[str, Any]]:
        return sorted(self.pairs.values(), key=lambda v: (-v["score"], v["case_a"], v["case_b"]))[:limit]
