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
    RETURNED (by the procuratorate) ─agency replies→ RETURN_ANSWERED
    TRANSFERRED ─police: materials incomplete→ MATERIALS_REQUESTED ─agency supplements→ TRANSFERRED
    NOT_FILED / UPHELD ─window unused→ NOT_FILED_FINAL (procuratorate supervision stays open: no time limit)

Every waiting state has one deadline. A duty missed (head, agency, police, procuratorate) yields one
DEADLINE_BREACHED step with an escalation (R310 Art.14, 16, 17; CPL Art.113); a right not used in time
(reconsideration, supervision proposal) closes its window — but never the procuratorate's supervision,
which CPL Art.113 and SPP_RULES Art.557 ¶2 leave without a time limit: NOT_FILED_FINAL and even
CLOSED_NOT_FILED still accept REQUIRE_EXPLANATION.

Police review of a transferred case: 3 days (R310 Art.8; PSB_PROC Art.180 ¶1), but for the economic crimes
within 经侦 jurisdiction (`ECONOMIC_CRIME_ARTICLES`: Arts. 213–216 and 219, the IP articles of 立案追诉标准（二）
2010, Arts. 69–73) ECON2017 Art.16 allows 3 days, at the latest 10; 30 for a major, difficult, complex or
cross-regional case (one POLICE_EXTEND) and 30 more (a second). Material incomplete: police notify within
24 hours of receipt, the agency supplements within 3 days (PSB_PROC Art.180 ¶2). The procuratorate informs the
agency within 10 days of the police's explanation (SPP_RULES Art.561 ¶2). After a reverse handover by the
procuratorate (检察意见), the agency replies within two months (SPP2021). A case merged into another keeps
every open duty: the survivor's state carries the absorbed machines (`absorb`).

A split (拆案, issue #19: an analyst moves leads out of a case into a new one): open duties follow the leads. The duty
of R310 Art.3/5 attached to the facts as assessed when the handover opened, so each machine records the leads those
facts came from (`HandoverState.assessed`; a state stored before that has none: every lead in the case at the split then
counts as assessed). `split_handover` decides, machine by machine (the case's own and each one carried in by a merge,
each with its own assessed leads):

* none of its assessed leads leaves: the duty stays with the original case, same phase and clock; the case records
  on it which leads left, for which case, by whom and why (`note_split`), so that the head, police and procuratorate
  see that the facts changed;
* all of them leave: the duty — phase, clock, deadlines, decisions seen — moves to the new case, whose first step
  names the case and decision it came from; the original records a SPLIT step saying the duty moved (and, with no
  duty left, is then assessed on its own remaining facts like any case, R310 Art.3);
* some leave and some stay: both cases carry the open duty with the same clock (a report, an approval or a transfer
  is not undone by leads leaving: only the next legal step can), so that no duty is lost.

A new case that receives no duty is assessed on its own facts like any case: if they meet a threshold alone, its own
handover opens at the split, with its own clock; if not, none does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from leadbus.models import HandoverKind
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
    MATERIALS_REQUESTED = "MATERIALS_REQUESTED"
    NOT_FILED_FINAL = "NOT_FILED_FINAL"
    RETURN_ANSWERED = "RETURN_ANSWERED"


# No duty of the handover pending (procuratorate supervision may still reopen CLOSED_NOT_FILED; a RETURNED case
# may wait for the agency's reply to the procuratorate).
TERMINAL = frozenset({Phase.COMPLETED, Phase.CLOSED_NOT_FILED, Phase.RETURNED, Phase.RETURN_ANSWERED})
ECONOMIC_CRIME_ARTICLES = frozenset({"ART_213", "ART_214", "ART_215", "ART_216", "ART_219"})


Kind = HandoverKind  # the contract's kinds (leadbus.models), one list for the model, the schema and the machine


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
    (P.TRANSFERRED, K.POLICE_EXTEND): (P.TRANSFERRED, "police"),
    (P.TRANSFERRED, K.POLICE_REQUEST_MATERIALS): (P.MATERIALS_REQUESTED, "police"),
    (P.MATERIALS_REQUESTED, K.MATERIALS_SUPPLEMENTED): (P.TRANSFERRED, "agency"),
    (P.MATERIALS_REQUESTED, K.POLICE_FILE): (P.FILED, "police"),
    (P.MATERIALS_REQUESTED, K.POLICE_NOT_FILE): (P.NOT_FILED, "police"),
    (P.MATERIALS_REQUESTED, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.NOT_FILED_FINAL, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.NOT_FILED_FINAL, K.PROPOSE_SUPERVISION): (P.SUPERVISION_PROPOSED, "agency"),
    (P.NOT_FILED_FINAL, K.ACCEPT_NOT_FILING): (P.CLOSED_NOT_FILED, "agency"),
    (P.NOT_FILED_FINAL, K.REVERSE_HANDOVER): (P.RETURNED, "police_or_procuratorate"),
    (P.CLOSED_NOT_FILED, K.REQUIRE_EXPLANATION): (P.EXPLANATION_DUE, "procuratorate"),
    (P.RETURNED, K.AGENCY_REPLY): (P.RETURN_ANSWERED, "agency"),
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
    P.MATERIALS_REQUESTED: ("agency supplements the materials", "agency", Limit(3, "day", "PSB_PROC Art.180 ¶2"),
                            True),
    P.EXPLAINED: ("procuratorate decides and informs the agency", "procuratorate",
                  Limit(10, "day", "SPP_RULES Art.561 ¶2"), True),
    P.RETURNED: ("agency replies to the procuratorate's opinion", "agency", Limit(2, "month", "SPP2021 (检察意见)"),
                 True),
}
# Police review of a transfer: R310, or ECON2017 Art.16 for the economic crimes, by extensions granted.
POLICE_REVIEW = Limit(3, "day", "R310 Art.8")  # also PSB_PROC Art.180 ¶1
ECONOMIC_REVIEW = (
    Limit(10, "day", "ECON2017 Art.16 (3 days, at the latest 10)"),
    Limit(30, "day", "ECON2017 Art.16 (major/complex: 30 days)"),
    Limit(60, "day", "ECON2017 Art.16 (extended by 30 more days)"),
)
FORWARD_LIMIT = Limit(24, "hour", "R310 Art.7")
MATERIALS_NOTICE_LIMIT = Limit(24, "hour", "PSB_PROC Art.180 ¶2")
_REASONS_REQUIRED = frozenset({K.HEAD_REFUSE, K.POLICE_NOT_FILE, K.RECONSIDERATION_UPHOLD, K.POLICE_EXPLAIN,
                               K.REVERSE_HANDOVER, K.POLICE_EXTEND, K.POLICE_REQUEST_MATERIALS})
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
    economic: bool = False  # ECON2017 Art.16 governs the police review
    extensions: int = 0  # ECON2017 Art.16 extensions granted (0, 1, 2)
    returned_by: str | None = None  # who handed the case back (SPP: the agency owes a reply)
    absorbed: tuple[HandoverState, ...] = ()  # machines of cases merged into this one, each with its open duty
    splits: tuple[str, ...] = ()  # analysts' splits of this case already recorded (`note_split`), by decision id
    assessed: tuple[str, ...] | None = None  # the leads whose facts opened the duty; None: not known (older states)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["phase"] = str(self.phase)
        doc["absorbed"] = [a.to_json() for a in self.absorbed]
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HandoverState:
        deadline = Deadline(**doc["deadline"]) if doc.get("deadline") else None
        absorbed = tuple(cls.from_json(a) for a in doc.get("absorbed", ()))
        return cls(**{**doc, "phase": Phase(doc["phase"]), "deadline": deadline, "seen": tuple(doc["seen"]),
                      "absorbed": absorbed, "splits": tuple(doc.get("splits", ())),
                      "assessed": tuple(doc["assessed"]) if doc.get("assessed") is not None else None})

    def open_deadlines(self) -> list[Deadline]:
        """Every deadline still to be watched: this case's and those of the cases it absorbed."""
        own = [self.deadline] if self.deadline is not None and not self.deadline.breached else []
        return own + [d for a in self.absorbed for d in a.open_deadlines()]

    def case_ids(self) -> list[str]:
        return [self.case_id] + [c for a in self.absorbed for c in a.case_ids()]


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


def _deadline(phase: Phase, start: datetime, counting: DayCounting | None,
              state: HandoverState | None = None) -> Deadline | None:  # fmt: skip
    wait = WAITS.get(phase)
    if phase == Phase.TRANSFERRED:
        # the review runs from the police's receipt of the transfer (or of the supplemented materials)
        limit = POLICE_REVIEW
        if state is not None and state.economic:
            limit = ECONOMIC_REVIEW[min(state.extensions, len(ECONOMIC_REVIEW) - 1)]
        wait = ("police decide to file or not", "police", limit, True)
    if phase == Phase.RETURNED and (state is None or state.returned_by != PROCURATORATE):
        return None  # a reverse handover by the police: R310 Art.13 says 及时, no figure
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
                  counting: DayCounting | None = None, *, economic: bool = False,
                  assessed: Sequence[str] | None = None, after: int = 0) -> tuple[HandoverState, list[Step]]:
    """A case met a threshold: the written transfer report goes to the agency head (R310 Art.5(1)).
    `economic`: the case is an economic crime within 经侦 jurisdiction (see `ECONOMIC_CRIME_ARTICLES`), so the police
    review runs under ECON2017 Art.16. `assessed`: the leads whose facts were assessed (a split follows them);
    `after`: the last step already recorded for this case id (a duty that left it at a split), so numbers go on."""
    state = HandoverState(case_id, Phase.ASSESSED, agency, province, at.isoformat(), step=after,
                          deadline=_deadline(Phase.ASSESSED, at, counting), economic=economic,
                          assessed=tuple(sorted(assessed)) if assessed is not None else None)
    b = _Builder(state)
    b.add(event="OPENED", from_phase=None, to_phase=str(Phase.ASSESSED), at=at, assessment=assessment, **_next(b))
    return b.state, b.steps


def note_split(state: HandoverState, entry: dict[str, Any]) -> tuple[HandoverState, list[Step]]:
    """An analyst split leads off this case (a `link_history` SPLIT entry of its CaseUpdated): record it on the
    handover, which goes on as it was (same phase, same deadline). Once per decision: every later version of the case
    carries the entry again."""
    decision_id = str(entry["decision_id"])
    if decision_id in state.splits:
        return state, []
    b = _Builder(replace(state, splits=(*state.splits, decision_id)))
    at = entry["decided_at"]
    leads = ", ".join(entry.get("leads") or ())
    b.add(event="DECISION", from_phase=str(state.phase), to_phase=str(state.phase), at=at, decision="SPLIT",
          actor_agency=entry.get("agency"), actor_province=entry.get("province"), actor_role=entry.get("role"),
          decision_id=decision_id,
          reasons=f"[split] leads {leads} left for case {entry.get('split_to')} ({entry.get('user')}: "
                  f"{entry.get('reason', '')}); this handover continues on the facts assessed, the new case is "
                  "assessed on its own (R310 Art.3)", **_next(b))
    return b.state, b.steps


Route = Literal["STAY", "MOVE", "BOTH"]


@dataclass(frozen=True)
class SplitOutcome:
    """What a split does to the handover of the case it came from (`split_handover`).

    ``kept``: that case's machine afterwards (None: no duty stays with it; ``kept_steps`` then end with the step saying
    where it went, and the case is assessed again on its remaining facts); ``moved``: the new case's machine, its
    ``case_id`` the new case's, holding every duty that followed the leads (None: none did); ``routes``: for each
    machine's case id, STAY, MOVE or BOTH."""

    kept: HandoverState | None
    kept_steps: list[Step]
    moved: HandoverState | None
    moved_steps: list[Step]
    routes: dict[str, Route]


def split_route(assessed: Sequence[str] | None, moving: Sequence[str], before: Sequence[str]) -> Route:
    """Where a duty goes when ``moving`` leads leave a case that held ``before`` (all its leads, the moving included):
    it follows its assessed leads (unknown: every lead the case held counts as assessed)."""
    facts = set(assessed) if assessed is not None else set(before)
    leaving = facts & set(moving)
    if not leaving:
        return "STAY"
    return "MOVE" if not facts - leaving else "BOTH"


def _duty_text(machine: HandoverState) -> str:
    d = machine.deadline
    due = f", {d.action} by {d.due_at} ({d.rule})" if d is not None and not d.breached else ""
    return f"the duty of case {machine.case_id} ({machine.phase}{due})"


def split_handover(state: HandoverState, entry: dict[str, Any], remaining: Sequence[str]) -> SplitOutcome:
    """An analyst split leads off this case (a `link_history` SPLIT entry of its CaseUpdated: ``leads`` left for
    ``split_to``); ``remaining``: the case's leads afterwards. Each open duty follows its assessed leads (module
    docstring). Once per decision: a decision already recorded changes nothing."""
    decision_id = str(entry["decision_id"])
    if decision_id in state.splits:
        return SplitOutcome(state, [], None, [], {})
    moving = [str(lead) for lead in entry.get("leads") or ()]
    before = [*remaining, *moving]
    machines = (replace(state, absorbed=()), *state.absorbed)
    routes: dict[str, Route] = {m.case_id: split_route(m.assessed, moving, before) for m in machines}
    gone = set(moving)

    def facts(m: HandoverState) -> set[str]:
        return set(m.assessed) if m.assessed is not None else set(before)

    # each copy of a duty that both cases carry holds, from now on, the assessed leads that are in its case
    staying = [m if routes[m.case_id] == "STAY" else replace(m, assessed=tuple(sorted(facts(m) - gone)))
               for m in machines if routes[m.case_id] != "MOVE"]
    going = [replace(m, assessed=tuple(sorted(facts(m) & gone))) for m in machines if routes[m.case_id] != "STAY"]
    if not going:
        noted, steps = note_split(state, entry)
        return SplitOutcome(noted, steps, None, [], routes)
    to, leads, at = entry.get("split_to"), ", ".join(moving), entry["decided_at"]
    who = {"actor_agency": entry.get("agency"), "actor_province": entry.get("province"),
           "actor_role": entry.get("role"), "decision": "SPLIT", "decision_id": decision_id}
    why = f"({entry.get('user')}: {entry.get('reason', '')})"
    fates = "; ".join(f"{_duty_text(m)} {'moved to' if routes[m.case_id] == 'MOVE' else 'continues here and in'} "
                      f"case {to}" for m in going)
    # the original case: the duties that stay (its own, or else the first carried-in one, continued as its own)
    if staying:
        head = staying[0]
        kept_state = replace(head, case_id=state.case_id, step=state.step, absorbed=tuple(staying[1:]),
                             splits=(*state.splits, decision_id))
        kb = _Builder(kept_state)
        kb.add(event="DECISION", from_phase=str(head.phase), to_phase=str(head.phase), at=at,
               reasons=f"[split] leads {leads} left for case {to} {why}: {fates} (R310 Art.3: the duty follows the "
                       "facts assessed)", **who, **_next(kb))
        kept: HandoverState | None = kb.state
        kept_steps = kb.steps
    else:
        kb = _Builder(state)
        kb.add(event="DECISION", from_phase=str(state.phase), to_phase=str(state.phase), at=at,
               reasons=f"[split] leads {leads} left for case {to} {why}: {fates}; no duty stays with this case, "
                       "whose remaining facts are assessed on their own (R310 Art.3)", **who)
        kept, kept_steps = None, kb.steps
    # the new case: every duty that followed the leads, the first as its own, the others carried in, same clocks
    first = going[0]
    mb = _Builder(replace(first, case_id=str(to), step=0, absorbed=tuple(going[1:]), splits=()))
    for machine in going:
        d = machine.deadline
        mb.add(event="DECISION", from_phase=str(machine.phase), to_phase=str(machine.phase), at=at,
               reasons=f"[split from case {state.case_id}, decision {decision_id}] leads {leads} {why}: "
                       f"{_duty_text(machine)} continues here"
                       f"{' (and with case ' + state.case_id + ')' if routes[machine.case_id] == 'BOTH' else ''}",
               **who, **({"due_at": datetime.fromisoformat(d.due_at), "next_action": d.action,
                          "next_actor": _who_label(d.who, machine), "rule": d.rule} if d and not d.breached else {}))
    return SplitOutcome(kept, kept_steps, mb.state, mb.steps, routes)


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


def _relabel(b: _Builder, steps: list[Step], case_id: str) -> None:
    """Steps of an absorbed case's machine, recorded on the surviving case."""
    for step in steps:
        fields = {k: v for k, v in step.__dict__.items() if k not in ("case_id", "seq")}
        fields["reasons"] = f"[merged case {case_id}] {step.reasons}".rstrip()
        b.add(**fields)


def absorb(state: HandoverState, other: HandoverState, at: datetime) -> tuple[HandoverState, list[Step]]:
    """Case `other` was merged into `state`'s case: its machine goes on inside the survivor, open duty and all."""
    if other.case_id in state.case_ids():
        return state, []
    b = _Builder(state)
    flat = (replace(other, absorbed=()), *other.absorbed)
    b.state = replace(b.state, absorbed=(*state.absorbed, *flat))
    for machine in flat:
        d = machine.deadline
        b.add(event="DECISION", from_phase=str(machine.phase), to_phase=str(machine.phase), at=at, decision="MERGE",
              reasons=f"[merged case {machine.case_id}] its handover continues here",
              **({"due_at": datetime.fromisoformat(d.due_at), "next_action": d.action,
                  "next_actor": _who_label(d.who, machine), "rule": d.rule} if d and not d.breached else {}))
    return b.state, b.steps


def take_over(case_id: str, other: HandoverState, at: datetime) -> tuple[HandoverState, list[Step]]:
    """The surviving case had no handover: it continues the absorbed case's, at the same phase and deadline."""
    b = _Builder(replace(other, case_id=case_id, step=0, absorbed=other.absorbed))
    d = other.deadline
    b.add(event="DECISION", from_phase=str(other.phase), to_phase=str(other.phase), at=at, decision="MERGE",
          reasons=f"[merged case {other.case_id}] its handover continues as this case's",
          **({"due_at": datetime.fromisoformat(d.due_at), "next_action": d.action,
              "next_actor": _who_label(d.who, other), "rule": d.rule} if d and not d.breached else {}))
    return b.state, b.steps


def apply(state: HandoverState, decision: Decision,
          counting: DayCounting | None = None) -> tuple[HandoverState, list[Step]] | Refusal:
    """A decision by an agency, public security or the procuratorate; a wrong one is refused with a reason.
    A decision naming a case merged into this one applies to that case's machine."""
    if decision.case_id != state.case_id:
        for n, machine in enumerate(state.absorbed):
            if machine.case_id == decision.case_id:
                outcome = _apply_one(machine, decision, counting)
                if isinstance(outcome, Refusal):
                    return outcome
                inner, steps = outcome
                b = _Builder(replace(state, absorbed=(*state.absorbed[:n], inner, *state.absorbed[n + 1:])))
                _relabel(b, steps, machine.case_id)
                return b.state, b.steps
    return _apply_one(state, decision, counting)


def _apply_one(state: HandoverState, decision: Decision,
               counting: DayCounting | None = None) -> tuple[HandoverState, list[Step]] | Refusal:  # fmt: skip
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
    if decision.kind == K.POLICE_EXTEND and (not state.economic or state.extensions >= len(ECONOMIC_REVIEW) - 1):
        why = "the 3-day review of R310 Art.8 has no extension" if not state.economic else "both extensions used"
        return Refusal("HANDOVER_ILLEGAL_STEP", f"POLICE_EXTEND: {why} (ECON2017 Art.16 covers economic crimes)")
    b = _Builder(state)
    late = False
    deadline = state.deadline
    if deadline is not None and decision.decided_at > datetime.fromisoformat(deadline.due_at):
        late = deadline.duty
        if not deadline.breached and deadline.duty:
            _breach(b, datetime.fromisoformat(deadline.due_at))
    if decision.kind in (K.POLICE_FORWARD, K.POLICE_REQUEST_MATERIALS) and state.received_at:
        limit = FORWARD_LIMIT if decision.kind == K.POLICE_FORWARD else MATERIALS_NOTICE_LIMIT
        late = late or decision.decided_at > due_at(datetime.fromisoformat(state.received_at), limit, counting)
    received = state.received_at
    if decision.kind in (K.TRANSFER, K.POLICE_FORWARD, K.MATERIALS_SUPPLEMENTED):
        received = decision.decided_at.isoformat()  # the police review clock (re)starts on receipt
    seen = (*state.seen, decision.decision_id)[-50:]
    extensions = state.extensions + (1 if decision.kind == K.POLICE_EXTEND else 0)
    returned_by = decision.agency if decision.kind == K.REVERSE_HANDOVER else state.returned_by
    b.state = replace(b.state, phase=phase, received_at=received, seen=seen, extensions=extensions,
                      returned_by=returned_by)
    start = decision.decided_at
    if phase == Phase.TRANSFERRED and received is not None:
        start = datetime.fromisoformat(received)  # an extension counts from receipt, not from the extension
    if decision.kind == K.POLICE_EXTEND and state.deadline is not None and state.deadline.breached:
        late = True
    b.state = replace(b.state, deadline=_deadline(phase, start, counting, b.state))
    b.add(event="DECISION", from_phase=str(state.phase), to_phase=str(phase), at=decision.decided_at,
          actor_agency=decision.agency, actor_province=decision.province, actor_role=decision.role,
          decision=str(decision.kind), decision_id=decision.decision_id, reasons=decision.reasons, late=late,
          **_next(b))
    return b.state, b.steps


def _escalation(who: str, state: HandoverState) -> str:
    """An agency's or the police's breach goes to the procuratorate (R310 Art.14, 17); the procuratorate's own to the
    procuratorate above it (SPP/00 stands for it)."""
    return f"{PROCURATORATE}/00" if who == "procuratorate" else f"{PROCURATORATE}/{state.province}"


def _breach(b: _Builder, at: datetime) -> None:
    d = b.state.deadline
    assert d is not None
    b.state = replace(b.state, deadline=replace(d, breached=True))
    b.add(event="DEADLINE_BREACHED", from_phase=str(b.state.phase), to_phase=str(b.state.phase), at=at,
          due_at=datetime.fromisoformat(d.due_at), next_action=d.action, next_actor=_who_label(d.who, b.state),
          rule=d.rule, escalated_to=_escalation(d.who, b.state),
          reasons=f"overdue: {d.action} ({d.rule})")


def scan(state: HandoverState, now: datetime) -> tuple[HandoverState, list[Step]]:
    """The passing of time: one breach per missed duty, or the close of an unused window — for this case and for
    every case merged into it."""
    new, steps = _scan_one(state, now)
    if not new.absorbed:
        return new, steps
    b = _Builder(new)
    b.steps = list(steps)
    machines = []
    for machine in new.absorbed:
        inner, inner_steps = _scan_one(machine, now)
        machines.append(inner)
        _relabel(b, inner_steps, machine.case_id)
    b.state = replace(b.state, absorbed=tuple(machines))
    return b.state, b.steps


def _scan_one(state: HandoverState, now: datetime) -> tuple[HandoverState, list[Step]]:
    d = state.deadline
    if d is None or d.breached or now <= datetime.fromisoformat(d.due_at):
        return state, []
    b = _Builder(state)
    if d.duty:
        _breach(b, now)
    else:
        # the agency's right lapses; the procuratorate's supervision does not (CPL Art.113, SPP_RULES Art.557 ¶2)
        b.state = replace(b.state, phase=Phase.NOT_FILED_FINAL, deadline=None)
        b.add(event="WINDOW_CLOSED", from_phase=str(state.phase), to_phase=str(Phase.NOT_FILED_FINAL), at=now,
              rule=d.rule, reasons=f"not used in time: {d.action}; procuratorate supervision has no time limit "
                                   "(CPL Art.113; SPP_RULES Art.557 ¶2)")
    return b.state, b.steps
