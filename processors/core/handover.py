"""The administrative-to-criminal handover (行政执法与刑事司法衔接) of State Council Decree 310, pure.

A sans-I/O state machine per case: `open_handover` when a case reaches a criminal threshold,
`apply` for each `HandoverDecision` an agency publishes, `scan` for the passing of time. Each
returns the new state and the `Step`s to record; nothing here reads a clock or touches Kafka.

    ASSESSED ─head approves→ APPROVED ─agency transfers→ TRANSFERRED ─police file→ FILED ─materials→ COMPLETED
        └head refuses→ NOT_APPROVED ─procuratorate requires transfer→ APPROVED
    TRANSFERRED ─police do not file→ NOT_FILED ─agency asks reconsideration→ RECONSIDERING ─police uphold→ UPHELD
    NOT_FILED / UPHELD ─agency proposes 立案监督→ SUPERVISION_PROPOSED ─procuratorate asks reasons→ EXPLANATION_DUE
    EXPLANATION_DUE ─police explain→ EXPLAINED ─procuratorate orders filing→ FILING_ORDERED ─police file→ FILED
    FILED / COMPLETED / CLOSED_NOT_FILED / EXPLAINED ─反向衔接 (reverse handover)→ RETURNED

Every waiting state has one deadline. A duty missed (head, agency, police) yields one
DEADLINE_BREACHED step with an escalation to the procuratorate (R310 Art.14, 17; CPL Art.113);
a right not used in time (reconsideration, supervision proposal) closes its window instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from leadbus.processors.core.deadlines import DayCounting, Limit, due_at


class Phase(StrEnum):
    ASSESSED = "ASSESSED"
    APPROVED = "APPROVED"
    NOT_APPROVED = "NOT_APPROVED"
    TRANSFERRED = "TRANSFERRED"
    FILED = "FILED"
    NOT_FILED = "NOT_FILED"
    RECONSIDERING = "RECONSIDERING"
    UPHELD = "UPHELD"
    SUPERVISION_PROPOSED = "SUPERVISION_PROPOSED"
    EXPLANATION_DUE = "EXPLANATION_DUE"
    EXPLAINED = "EXPLAINED"
    FILING_ORDERED = "FILING_ORDERED"
    COMPLETED = "COMPLETED"
    CLOSED_NOT_FILED = "CLOSED_NOT_FILED"
    RETURNED = "RETURNED"


TERMINAL = frozenset({Phase.COMPLETED, Phase.CLOSED_NOT_FILED, Phase.RETURNED})


class Kind(StrEnum):
    """What a `HandoverDecision` says."""

    HEAD_APPROVE = "HEAD_APPROVE"
    HEAD_REFUSE = "HEAD_REFUSE"
    TRANSFER = "TRANSFER"
    POLICE_FORWARD = "POLICE_FORWARD"
    POLICE_FILE = "POLICE_FILE"
    POLICE_NOT_FILE = "POLICE_NOT_FILE"
    MATERIALS_HANDED = "MATERIALS_HANDED"
    REQUEST_RECONSIDERATION = "REQUEST_RECONSIDERATION"
    RECONSIDERATION_FILE = "RECONSIDERATION_FILE"
    RECONSIDERATION_UPHOLD = "RECONSIDERATION_UPHOLD"
    PROPOSE_SUPERVISION = "PROPOSE_SUPERVISION"
    ACCEPT_NOT_FILING = "ACCEPT_NOT_FILING"
    REQUIRE_EXPLANATION = "REQUIRE_EXPLANATION"
    POLICE_EXPLAIN = "POLICE_EXPLAIN"
    ORDER_FILING = "ORDER_FILING"
    ACCEPT_REASONS = "ACCEPT_REASONS"
    REQUIRE_TRANSFER = "REQUIRE_TRANSFER"
    REVERSE_HANDOVER = "REVERSE_HANDOVER"


Who = Literal["head", "agency", "police", "procuratorate", "police_or_procuratorate"]
P, K = Phase, Kind

TRANSITIONS: dict[tuple[Phase, Kind], tuple[Phase, Who]] = {
    (P.ASSESSED, K.HEAD_APPROVE): (P.APPROVED, "head"),
    (P.ASSESSED, K.HEAD_REFUSE): (P.NOT_APPROVED, "head"),
    (P.NOT_APPROVED, K.REQUIRE_TRANSFER): (P.APPROVED, "procuratorate"),
    (P.APPROVED, K.TRANSFER): (P.TRANSFERRED, "agency"),
    (P.TRANSFERRED, K.POLICE_FORWARD): (P.TRANSFERRED, "police"),
    (P.TRANSFERRED, K.POLICE_FILE): (P.FILED, "police"),
    (P.TRANSFERRED, K.POLICE_NOT_FILE): (P.NOT_FILED, "police"),
    (P.TRANSFERRED, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.FILED, K.MATERIALS_HANDED): (P.COMPLETED, "agency"),
    (P.NOT_FILED, K.REQUEST_RECONSIDERATION): (P.RECONSIDERING, "agency"),
    (P.NOT_FILED, K.PROPOSE_SUPERVISION): (P.SUPERVISION_PROPOSED, "agency"),
    (P.NOT_FILED, K.ACCEPT_NOT_FILING): (P.CLOSED_NOT_FILED, "agency"),
    (P.NOT_FILED, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.RECONSIDERING, K.RECONSIDERATION_FILE): (P.FILED, "police"),
    (P.RECONSIDERING, K.RECONSIDERATION_UPHOLD): (P.UPHELD, "police"),
    (P.UPHELD, K.PROPOSE_SUPERVISION): (P.SUPERVISION_PROPOSED, "agency"),
    (P.UPHELD, K.ACCEPT_NOT_FILING): (P.CLOSED_NOT_FILED, "agency"),
    (P.UPHELD, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.SUPERVISION_PROPOSED, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.EXPLANATION_DUE, K.POLICE_EXPLAIN): (P.EXPLAINED, "police"),
    (P.EXPLANATION_DUE, K.ORDER_FILING): (P.FILING_ORDERED, "procuratorate"),
    (P.EXPLAINED, K.ORDER_FILING): (P.FILING_ORDERED, "procuratorate"),
    (P.EXPLAINED, K.ACCEPT_REASONS): (P.CLOSED_NOT_FILED, "procuratorate"),
    (P.FILING_ORDERED, K.POLICE_FILE): (P.FILED, "police"),
    (P.FILED, K.REVERSE_HANDOVER): (P.RETURNED, "police_or_procuratorate"),
    (P.COMPLETED, K.REVERSE_HANDOVER): (P.RETURNED, "police_or_procuratorate"),
    (P.CLOSED_NOT_FILED, K.REVERSE_HANDOVER): (P.RETURNED, "police_or_procuratorate"),
    (P.EXPLAINED, K.REVERSE_HANDOVER): (P.RETURNED, "police_or_procuratorate"),
}

# What each waiting phase waits for: (action, who, limit, duty=True / window=False).
WAITS: dict[Phase, tuple[str, Who, Limit, bool]] = {
    P.ASSESSED: ("head decides on the transfer", "head", Limit(3, "day", "R310 Art.5(2)"), True),
    P.APPROVED: ("agency transfers to public security", "agency", Limit(24, "hour", "R310 Art.5(2)"), True),
    P.TRANSFERRED: ("police decide to file or not", "police", Limit(3, "day", "R310 Art.8"), True),
    P.FILED: ("agency hands over items and materials", "agency", Limit(3, "day", "R310 Art.12"), True),
    P.NOT_FILED: ("agency may request reconsideration", "agency", Limit(3, "day", "R310 Art.9(1)"), False),
    P.RECONSIDERING: ("police decide on reconsideration", "police", Limit(3, "day", "R310 Art.9(2)"), True),
    P.UPHELD: ("agency may propose 立案监督", "agency", Limit(3, "day", "R310 Art.9(2)"), False),
    P.EXPLANATION_DUE: ("police explain not filing", "police", Limit(7, "day", "PSB_PROC Art.182(1)"), True),
    P.FILING_ORDERED: ("police file the case", "police", Limit(15, "day", "PSB_PROC Art.182(2)"), True),
}
FORWARD_LIMIT = Limit(24, "hour", "R310 Art.7")
_REASONS_REQUIRED = frozenset({K.HEAD_REFUSE, K.POLICE_NOT_FILE, K.RECONSIDERATION_UPHOLD, K.POLICE_EXPLAIN,
                               K.REVERSE_HANDOVER})
POLICE, PROCURATORATE = "MPS", "SPP"
NOT_TRANSFERRING = frozenset({POLICE, PROCURATORATE, "SPC"})  # they receive or supervise; they do not transfer


def transferring_agency(reporters: list[dict[str, str]]) -> tuple[str, str] | None:
    """The first administrative agency that reported the case (移送机关), with its province."""
    for reporter in reporters:
        if reporter["agency"] not in NOT_TRANSFERRING:
            return reporter["agency"], reporter["province"]
    return None


@dataclass(frozen=True)
class Decision:
    decision_id: str
    case_id: str
    kind: Kind
    agency: str
    province: str
    role: str  # HEAD | OFFICER | POLICE | PROCURATOR
    decided_at: datetime
    reasons: str = ""


@dataclass(frozen=True)
class Deadline:
    due_at: str  # ISO 8601; states are stored as JSON
    action: str
    who: str
    rule: str
    duty: bool
    started_at: str
    breached: bool = False


@dataclass(frozen=True)
class HandoverState:
    case_id: str
    phase: Phase
    agency: str  # the transferring agency (移送机关) and its province
    province: str
    opened_at: str
    step: int = 0
    deadline: Deadline | None = None
    received_at: str | None = None  # when police received the transfer (R310 Art.7 clock)
    seen: tuple[str, ...] = ()  # recent decision ids, for idempotence

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["phase"] = str(self.phase)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HandoverState:
        deadline = Deadline(**doc["deadline"]) if doc.get("deadline") else None
        return cls(**{**doc, "phase": Phase(doc["phase"]), "deadline": deadline, "seen": tuple(doc["seen"])})


@dataclass(frozen=True)
class Step:
    """One record of `leadbus.handover`."""

    case_id: str
    seq: int
    event: Literal["OPENED", "DECISION", "DEADLINE_BREACHED", "WINDOW_CLOSED"]
    from_phase: str | None
    to_phase: str
    at: datetime
    actor_agency: str | None = None
    actor_province: str | None = None
    actor_role: str | None = None
    decision: str | None = None
    decision_id: str | None = None
    reasons: str = ""
    due_at: datetime | None = None
    next_action: str | None = None
    next_actor: str | None = None
    rule: str | None = None
    late: bool = False
    escalated_to: str | None = None
    assessment: str = ""


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


@dataclass
class _Builder:
    state: HandoverState
    steps: list[Step] = field(default_factory=list)

    def add(self, **fields: Any) -> None:
        seq = self.state.step + 1
        self.state = replace(self.state, step=seq)
        self.steps.append(Step(case_id=self.state.case_id, seq=seq, **fields))


def _who_label(who: str, state: HandoverState) -> str:
    return {"head": f"{state.agency} head", "agency": state.agency, "police": POLICE,
            "procuratorate": PROCURATORATE}.get(who, who)


def _deadline(phase: Phase, start: datetime, counting: DayCounting | None) -> Deadline | None:
    wait = WAITS.get(phase)
    if wait is None:
        return None
    action, who, limit, duty = wait
    return Deadline(due_at(start, limit, counting).isoformat(), action, who, limit.rule, duty, start.isoformat())


def _next(b: _Builder) -> dict[str, Any]:
    d = b.state.deadline
    if d is None:
        return {}
    return {"due_at": datetime.fromisoformat(d.due_at), "next_action": d.action,
            "next_actor": _who_label(d.who, b.state), "rule": d.rule}


def open_handover(case_id: str, agency: str, province: str, at: datetime, assessment: str,
                  counting: DayCounting | None = None) -> tuple[HandoverState, list[Step]]:
    """A case met a threshold: the written transfer report goes to the agency head (R310 Art.5(1))."""
    state = HandoverState(case_id, Phase.ASSESSED, agency, province, at.isoformat(),
                          deadline=_deadline(Phase.ASSESSED, at, counting))
    b = _Builder(state)
    b.add(event="OPENED", from_phase=None, to_phase=str(Phase.ASSESSED), at=at, assessment=assessment, **_next(b))
    return b.state, b.steps


def _authorised(who: Who, decision: Decision, state: HandoverState) -> bool:
    if who == "head":
        return decision.agency == state.agency and decision.role == "HEAD"
    if who == "agency":
        return decision.agency == state.agency
    if who == "police":
        return decision.agency == POLICE
    if who == "procuratorate":
        return decision.agency == PROCURATORATE
    return decision.agency in (POLICE, PROCURATORATE)


def apply(state: HandoverState, decision: Decision,
          counting: DayCounting | None = None) -> tuple[HandoverState, list[Step]] | Refusal:
    """A decision by an agency, public security or the procuratorate; a wrong one is refused with a reason."""
    if decision.decision_id in state.seen:
        return state, []  # a redelivered decision changes nothing
    target = TRANSITIONS.get((state.phase, decision.kind))
    if target is None:
        return Refusal("HANDOVER_ILLEGAL_STEP", f"{decision.kind} is not possible in phase {state.phase}")
    phase, who = target
    if not _authorised(who, decision, state):
        return Refusal("HANDOVER_WRONG_ACTOR",
                       f"{decision.kind} is for {_who_label(who, state)}, not {decision.agency}/{decision.role}")
    if decision.kind in _REASONS_REQUIRED and not decision.reasons.strip():
        return Refusal("HANDOVER_REASONS_REQUIRED", f"{decision.kind} must state its reasons")
    b = _Builder(state)
    late = False
    deadline = state.deadline
    if deadline is not None and decision.decided_at > datetime.fromisoformat(deadline.due_at):
        late = deadline.duty
        if not deadline.breached and deadline.duty:
            _breach(b, datetime.fromisoformat(deadline.due_at))
    if decision.kind == K.POLICE_FORWARD and state.received_at:
        forward_due = due_at(datetime.fromisoformat(state.received_at), FORWARD_LIMIT, counting)
        late = late or decision.decided_at > forward_due
    received = state.received_at
    if decision.kind in (K.TRANSFER, K.POLICE_FORWARD):
        received = decision.decided_at.isoformat()  # the police review clock (re)starts on receipt
    seen = (*state.seen, decision.decision_id)[-50:]
    b.state = replace(b.state, phase=phase, deadline=_deadline(phase, decision.decided_at, counting),
                      received_at=received, seen=seen)
    b.add(event="DECISION", from_phase=str(state.phase), to_phase=str(phase), at=decision.decided_at,
          actor_agency=decision.agency, actor_province=decision.province, actor_role=decision.role,
          decision=str(decision.kind), decision_id=decision.decision_id, reasons=decision.reasons, late=late,
          **_next(b))
    return b.state, b.steps


def _breach(b: _Builder, at: datetime) -> None:
    d = b.state.deadline
    assert d is not None
    b.state = replace(b.state, deadline=replace(d, breached=True))
    b.add(event="DEADLINE_BREACHED", from_phase=str(b.state.phase), to_phase=str(b.state.phase), at=at,
          due_at=datetime.fromisoformat(d.due_at), next_action=d.action, next_actor=_who_label(d.who, b.state),
          rule=d.rule, escalated_to=f"{PROCURATORATE}/{b.state.province}",
          reasons=f"overdue: {d.action} ({d.rule})")


def scan(state: HandoverState, now: datetime) -> tuple[HandoverState, list[Step]]:
    """The passing of time: one breach per missed duty, or the close of an unused window."""
    d = state.deadline
    if d is None or d.breached or now <= datetime.fromisoformat(d.due_at):
        return state, []
    b = _Builder(state)
    if d.duty:
        _breach(b, now)
    else:
        b.state = replace(b.state, phase=Phase.CLOSED_NOT_FILED, deadline=None)
        b.add(event="WINDOW_CLOSED", from_phase=str(state.phase), to_phase=str(Phase.CLOSED_NOT_FILED), at=now,
              rule=d.rule, reasons=f"not used in time: {d.action}")
    return b.state, b.steps
