"""The joint-punishment blacklist of dishonest enterprises (失信企业"黑名单", 国办发〔2015〕77号), pure.

An entry names an entity by its strong identifiers — 统一社会信用代码 (`uscc:`), resident ID number
(`rid:`), online shop (`shop:<platform>:<id>`), domain (`domain:`) — and records the cases behind it,
the reason, and every dated step of its life:

    (none) ─final decision the policy treats as listable→ PROPOSED ─agency LIST→ LISTED
    PROPOSED ─agency DECLINE→ DECLINED
    LISTED ─agency DELIST→ DELISTED          LISTED ─listing period over (`expire`)→ EXPIRED
    DECLINED / DELISTED / EXPIRED ─a new listable final decision→ PROPOSED  (reversible, dated)

The bus only *proposes* (`propose`, on a handover step reaching a listable phase); an entry becomes
LISTED only on an agency's decision (`decide`), and a listing decision for an entity without a
proposal — without a final decision behind it — is refused. Nothing here reads a clock or touches
Kafka: `now` and every event time are arguments, so the same events folded again give the same
blacklist (`replay`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

#: The identifier kinds that name an entity on the blacklist, strongest first (the entry's key is the first found).
ENTITY_KINDS: tuple[str, ...] = ("uscc", "rid", "shop", "domain")


class Status(StrEnum):
    PROPOSED = "PROPOSED"
    LISTED = "LISTED"
    DECLINED = "DECLINED"
    DELISTED = "DELISTED"
    EXPIRED = "EXPIRED"


ACTIVE = frozenset({Status.LISTED})
_REOPENABLE = frozenset({Status.DECLINED, Status.DELISTED, Status.EXPIRED})

DecisionKind = Literal["LIST", "DECLINE", "DELIST"]


@dataclass(frozen=True)
class Policy:
    """What the configured policy treats as listable, and for how long a listing lasts by default.

    `listable` maps a handover phase (a final decision of `processors/core/handover.py`) to the reason
    recorded: FILED — public security filed a criminal case (刑事立案); COMPLETED — filed and the
    materials handed over. The default listing period (three years) is a policy setting, not a rule
    taken from a statute: an agency's LIST decision may give its own period.
    """

    listable: Mapping[str, str] = field(default_factory=lambda: {
        "FILED": "CRIMINAL_CASE_FILED",
        "COMPLETED": "CRIMINAL_CASE_FILED",
    })
    period_days: int = 3 * 365
    max_period_days: int = 10 * 365


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Event:
    """One dated step in an entry's history."""

    at: str  # ISO 8601
    what: str  # PROPOSED | LISTED | DECLINED | DELISTED | EXPIRED
    by: str | None = None  # the deciding agency; None for the bus (proposal, expiry)
    case_id: str | None = None
    decision_id: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Entry:
    entry_id: str
    identifiers: tuple[str, ...]
    status: Status
    reason: str
    cases: tuple[str, ...]
    proposed_at: str
    listed_at: str | None = None
    listed_until: str | None = None
    delisted_at: str | None = None
    deciding_agency: str | None = None
    decision_id: str | None = None
    enterprise_name: str | None = None  # only for an entity with a USCC; never a natural person's name
    history: tuple[Event, ...] = ()

    @property
    def listed(self) -> bool:
        return self.status in ACTIVE

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["status"] = str(self.status)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Entry:
        return cls(**{**doc, "status": Status(doc["status"]), "identifiers": tuple(doc["identifiers"]),
                      "cases": tuple(doc["cases"]), "history": tuple(Event(**e) for e in doc["history"])})


@dataclass(frozen=True)
class Decision:
    """An agency's blacklist decision (失信名单列入/移出决定), as published through intake."""

    decision_id: str
    entry_id: str
    kind: DecisionKind
    agency: str
    decided_at: datetime
    reasons: str = ""
    period_days: int | None = None


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def entity_identifiers(identifiers: Iterable[str]) -> tuple[str, ...]:
    """The case's identifiers that name an entity on the blacklist (`kind:value`), sorted, strongest kind first."""
    found = {i for i in identifiers if i.split(":", 1)[0] in ENTITY_KINDS and ":" in i}
    return tuple(sorted(found, key=lambda i: (ENTITY_KINDS.index(i.split(":", 1)[0]), i)))


def entry_id_of(identifiers: Sequence[str]) -> str | None:
    """An opaque, stable id for the entity: a digest of its strongest identifier (no personal data in keys)."""
    named = entity_identifiers(identifiers)
    if not named:
        return None
    return "BL-" + hashlib.sha256(named[0].encode()).hexdigest()[:20]


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("times must carry a timezone")
    return at.isoformat()


def propose(entry: Entry | None, case_id: str, identifiers: Sequence[str], phase: str, at: datetime,
            policy: Policy = DEFAULT_POLICY, enterprise_name: str | None = None) -> Entry | None:
    """The bus proposes (or adds a case to) an entry when a case reaches a phase the policy treats as listable.

    None when nothing changes: the phase is not listable, the case names no entity, or the case is known already.
    """
    reason = policy.listable.get(phase)
    named = entity_identifiers(identifiers)
    entry_id = entry_id_of(named)
    if reason is None or entry_id is None:
        return None
    if entry is not None and entry.entry_id != entry_id:
        raise ValueError(f"case {case_id} names entity {entry_id}, not {entry.entry_id}")
    name = enterprise_name if any(i.startswith("uscc:") for i in named) else None
    event = Event(_iso(at), "PROPOSED", None, case_id, None, reason)
    if entry is None:
        return Entry(entry_id, named, Status.PROPOSED, reason, (case_id,), _iso(at), enterprise_name=name,
                     history=(event,))
    known = case_id in entry.cases
    identifiers_now = entity_identifiers({*entry.identifiers, *named})
    if entry.status in _REOPENABLE:
        if known:
            return None  # the same case again (a replayed step) does not reopen what an agency closed
        return replace(entry, status=Status.PROPOSED, reason=reason, cases=(*entry.cases, case_id),
                       identifiers=identifiers_now, proposed_at=_iso(at), enterprise_name=name or entry.enterprise_name,
                       history=(*entry.history, event))
    if known and identifiers_now == entry.identifiers:
        return None
    return replace(entry, cases=entry.cases if known else (*entry.cases, case_id), identifiers=identifiers_now,
                   enterprise_name=entry.enterprise_name or name,
                   history=entry.history if known else (*entry.history, event))


def decide(entry: Entry | None, decision: Decision, policy: Policy = DEFAULT_POLICY) -> Entry | Refusal:
    """Apply an agency's LIST / DECLINE / DELIST decision; a Refusal says why it cannot apply."""
    if entry is None:
        return Refusal("BLACKLIST_NO_FINAL_DECISION",
                       f"{decision.entry_id} has no proposal: no case behind it reached a listable final decision")
    if any(e.decision_id == decision.decision_id for e in entry.history):
        return entry  # the same decision again: idempotent
    at = _iso(decision.decided_at)
    event = Event(at, {"LIST": "LISTED", "DECLINE": "DECLINED", "DELIST": "DELISTED"}[decision.kind],
                  decision.agency, None, decision.decision_id, decision.reasons)
    if decision.kind in ("LIST", "DECLINE") and entry.status != Status.PROPOSED:
        return Refusal("BLACKLIST_NO_FINAL_DECISION" if entry.status in _REOPENABLE else "BLACKLIST_WRONG_STATE",
                       f"{entry.entry_id} is {entry.status}: only a proposed entry (a listable final decision "
                       f"not yet decided on) can be {'listed' if decision.kind == 'LIST' else 'declined'}")
    if decision.kind == "DELIST" and entry.status != Status.LISTED:
        return Refusal("BLACKLIST_WRONG_STATE", f"{entry.entry_id} is {entry.status}, not listed")
    if decision.kind == "LIST":
        days = policy.period_days if decision.period_days is None else decision.period_days
        if not 1 <= days <= policy.max_period_days:
            return Refusal("BLACKLIST_PERIOD", f"a listing period of {days} days is outside 1–{policy.max_period_days}")
        if decision.decided_at < datetime.fromisoformat(entry.proposed_at):
            return Refusal("BLACKLIST_BEFORE_PROPOSAL", "a listing cannot be decided before the final decision "
                                                        f"it rests on ({entry.proposed_at})")
        until = _iso(decision.decided_at + timedelta(days=days))
        return replace(entry, status=Status.LISTED, listed_at=at, listed_until=until, delisted_at=None,
                       deciding_agency=decision.agency, decision_id=decision.decision_id,
                       history=(*entry.history, event))
    if decision.kind == "DECLINE":
        return replace(entry, status=Status.DECLINED, deciding_agency=decision.agency,
                       decision_id=decision.decision_id, history=(*entry.history, event))
    return replace(entry, status=Status.DELISTED, delisted_at=at, deciding_agency=decision.agency,
                   decision_id=decision.decision_id, history=(*entry.history, event))


def expire(entry: Entry, now: datetime) -> Entry | None:
    """A listing whose period is over (移出名单 on expiry); None when it is not due (or not listed)."""
    if entry.status != Status.LISTED or entry.listed_until is None:
        return None
    until = datetime.fromisoformat(entry.listed_until)
    if now < until:
        return None
    return replace(entry, status=Status.EXPIRED, delisted_at=entry.listed_until,
                   history=(*entry.history, Event(entry.listed_until, "EXPIRED", None, None, None,
                                                  "listing period over")))


# -- replay ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FinalDecision:
    """A case reached a handover phase (from a `HandoverStep`), with what the case says of its entity."""

    case_id: str
    identifiers: tuple[str, ...]
    phase: str
    at: datetime
    enterprise_name: str | None = None


def replay(events: Iterable[FinalDecision | Decision | datetime], policy: Policy = DEFAULT_POLICY
           ) -> dict[str, Entry]:
    """The blacklist that a sequence of final decisions, agency decisions and clock ticks gives."""
    entries: dict[str, Entry] = {}
    for event in events:
        if isinstance(event, FinalDecision):
            entry_id = entry_id_of(event.identifiers)
            if entry_id is None:
                continue
            new = propose(entries.get(entry_id), event.case_id, event.identifiers, event.phase, event.at, policy,
                          event.enterprise_name)
            if new is not None:
                entries[entry_id] = new
        elif isinstance(event, Decision):
            outcome = decide(entries.get(event.entry_id), event, policy)
            if isinstance(outcome, Entry):
                entries[event.entry_id] = outcome
        else:
            for entry_id, entry in list(entries.items()):
                expired = expire(entry, event)
                if expired is not None:
                    entries[entry_id] = expired
    return entries


def canonical(entries: Mapping[str, Entry]) -> str:
    """A byte-stable text of a blacklist, to compare two replays."""
    return json.dumps({k: entries[k].to_json() for k in sorted(entries)}, sort_keys=True, ensure_ascii=False)


def matches(entry: Entry, identifier: str) -> bool:
    return identifier in entry.identifiers
