"""Joint operations (集群战役), pure: the decisions that open, grow and close one, and who may read it when.

    OperationDecision                   OPEN / JOIN_CASE / CLOSE, published by an agency through intake
    decide(operation, decision) -> Operation | Refusal   the operation after one more decision
    members(operation)                  the lead agency, the member agencies and the member provinces
    access_plan(rules, operations, grants, users) -> AccessPlan   grants and principals to add and remove

An operation is a closed group: a lead agency (牵头单位), member agencies and provinces, a list of target
cases, a start and an end. It has its own topic, `leadbus.operation.<id>`, which only its members read:
each member has the principal `operation-<member>` (an agency code or a GB/T 2260 province code) with the
grants the ACL policy's `operations` block gives, created when the operation opens and removed when it
closes. A closed operation's topic stays, archived, for auditors (who read every `leadbus.` topic) only.

Only the lead agency opens and closes an operation; the lead agency or a member agency joins a case to it.
A closed operation takes no decision. Everything is replayable: the state is a fold of the decisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from leadbus.acl import (
    OPERATION_GROUP_PREFIX,
    OPERATION_PRINCIPAL_PREFIX,
    OPERATION_TOPIC_PREFIX,
    Grant,
    expand_grants,
    is_operation_grant,
)
from leadbus.geography import PROVINCES
from leadbus.models import _check_agency, _check_case_ids, _checked, _decided_at_time, _fail, _Model, _uuid_text
from leadbus.processors.core.agency_events import (
    OPERATIONS,
    EventActor,
    EventKind,
)

OPERATION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,39}$")
MAX_TARGETS = 5000
#: Resources and principals that belong to operations, not to the static policy (`acl apply` leaves them alone).
TOPIC_PREFIX, GROUP_PREFIX = OPERATION_TOPIC_PREFIX, OPERATION_GROUP_PREFIX
PRINCIPAL_PREFIX = OPERATION_PRINCIPAL_PREFIX


def operation_topic(operation_id: str) -> str:
    return f"{TOPIC_PREFIX}{operation_id}"


class OperationDecision(_Model):
    """One decision about a joint operation (集群战役)."""

    decision_id: str
    operation_id: str
    kind: Literal["OPEN", "JOIN_CASE", "CLOSE"]
    actor: EventActor
    decided_at: datetime
    name: Annotated[str, Field(max_length=200)] = ""
    member_agencies: Annotated[list[str], Field(max_length=30)] = Field(default_factory=list)
    member_provinces: Annotated[list[str], Field(max_length=40)] = Field(default_factory=list)
    case_ids: Annotated[list[str], Field(max_length=500)] = Field(default_factory=list)
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    _decision_id = field_validator("decision_id", mode="before")(lambda v: _uuid_text(v, "OPERATION_ID_FORMAT"))

    _operation_id = field_validator("operation_id")(
        _checked(OPERATION_ID.match, "OPERATION_ID_FORMAT",
                 "an operation id is 3-40 lower-case letters, digits and dashes"))

    @field_validator("member_agencies")
    @classmethod
    def _agencies(cls, value: list[str]) -> list[str]:
        return sorted({_check_agency(code) for code in value})

    @field_validator("member_provinces")
    @classmethod
    def _provinces(cls, value: list[str]) -> list[str]:
        for code in value:
            if code not in PROVINCES:
                raise _fail("UNKNOWN_PROVINCE", f"{code!r} is not a GB/T 2260 province code")
        return sorted(set(value))

    _cases = field_validator("case_ids")(_check_case_ids)
    _decided_at = field_validator("decided_at")(_decided_at_time)

    @model_validator(mode="after")
    def _shape(self) -> OperationDecision:
        if self.kind == "OPEN":
            if not self.name or self.starts_at is None or self.ends_at is None:
                raise _fail("OPERATION_INCOMPLETE", "opening an operation names it and gives its start and end")
            if self.ends_at <= self.starts_at:
                raise _fail("OPERATION_PERIOD", "an operation ends after it starts")
        elif self.kind == "JOIN_CASE" and not self.case_ids:
            raise _fail("OPERATION_INCOMPLETE", "joining names at least one case")
        return self


KIND = EventKind("cn.leadbus.OperationDecision", OperationDecision, OPERATIONS, "actor",
                 lambda d: str(d.operation_id))


@dataclass(frozen=True)
class Operation:
    operation_id: str
    name: str
    lead_agency: str
    member_agencies: tuple[str, ...]
    member_provinces: tuple[str, ...]
    starts_at: str  # ISO 8601, so that the state serialises as it is
    ends_at: str
    targets: tuple[str, ...] = ()
    status: Literal["OPEN", "CLOSED"] = "OPEN"
    closed_at: str | None = None
    decisions: tuple[str, ...] = field(default=())  # decision ids applied (a replayed one changes nothing)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Operation:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
        return cls(**values)


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def decide(operation: Operation | None, decision: Mapping[str, Any] | OperationDecision) -> Operation | Refusal:
    """The operation after one more (validated) decision, or why the decision does not apply."""
    d = decision if isinstance(decision, OperationDecision) else OperationDecision.model_validate(decision)
    if operation is not None and d.decision_id in operation.decisions:
        return operation  # a replay
    agency = d.actor.agency
    if d.kind == "OPEN":
        if operation is not None:
            return Refusal("OPERATION_EXISTS", f"operation {d.operation_id} was opened already")
        assert d.starts_at is not None and d.ends_at is not None
        return Operation(d.operation_id, d.name, agency, tuple(a for a in d.member_agencies if a != agency),
                         tuple(d.member_provinces), d.starts_at.isoformat(), d.ends_at.isoformat(),
                         tuple(dict.fromkeys(d.case_ids))[:MAX_TARGETS], decisions=(d.decision_id,))
    if operation is None:
        return Refusal("OPERATION_UNKNOWN", f"no operation {d.operation_id} was opened")
    if operation.status == "CLOSED":
        return Refusal("OPERATION_CLOSED", f"operation {d.operation_id} is closed")
    applied = (*operation.decisions, d.decision_id)
    if d.kind == "JOIN_CASE":
        if agency != operation.lead_agency and agency not in operation.member_agencies:
            return Refusal("NOT_A_MEMBER", f"{agency} is not a member agency of {d.operation_id}")
        targets = tuple(dict.fromkeys([*operation.targets, *d.case_ids]))
        if len(targets) > MAX_TARGETS:
            return Refusal("OPERATION_FULL", f"an operation targets at most {MAX_TARGETS} cases")
        return replace(operation, targets=targets, decisions=applied)
    if agency != operation.lead_agency:
        return Refusal("NOT_THE_LEAD", f"only the lead agency {operation.lead_agency} closes {d.operation_id}")
    return replace(operation, status="CLOSED", closed_at=d.decided_at.isoformat(), decisions=applied)


def members(operation: Operation) -> list[str]:
    return [operation.lead_agency, *operation.member_agencies, *operation.member_provinces]


# -- access: derived from the policy's `operations` block ---------------------------------------------

@dataclass(frozen=True)
class AccessRules:
    """The ACL policy's `operations` block: the member principal's name and grants, the forwarder's grants."""

    member_principal: str
    member_allow: tuple[Mapping[str, Any], ...]
    forwarder: str
    forwarder_allow: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_policy(cls, doc: Mapping[str, Any]) -> AccessRules:
        block = doc["operations"]
        return cls(str(block["member_principal"]), tuple(block["member_allow"]), str(block["forwarder"]),
                   tuple(block["forwarder_allow"]))

    def principal(self, member: str) -> str:
        return self.member_principal.format(member=member)


def is_operation_user(user: str) -> bool:
    return user.startswith(PRINCIPAL_PREFIX)


def grants_of(rules: AccessRules, operation: Operation) -> set[Grant]:
    """Every grant an open operation needs: each member's, and the forwarder's write on its topic."""
    if operation.status != "OPEN":
        return set()
    out: set[Grant] = set()
    for member in members(operation):
        user = rules.principal(member)
        for item in rules.member_allow:
            out.update(expand_grants(f"User:{user}", item, {"operation": operation.operation_id, "member": member}))
    for item in rules.forwarder_allow:
        out.update(expand_grants(f"User:{rules.forwarder}", item, {"operation": operation.operation_id}))
    return out


@dataclass
class AccessPlan:
    grant: list[Grant]
    revoke: list[Grant]
    create_users: list[str]
    delete_users: list[str]
    topics: list[str]  # every operation's topic, open or closed (a closed one is kept, archived)

    @property
    def in_sync(self) -> bool:
        return not (self.grant or self.revoke or self.create_users or self.delete_users)


def access_plan(rules: AccessRules, operations: Iterable[Operation], existing: Iterable[Grant],
                users: Iterable[str]) -> AccessPlan:
    """What to change so that exactly the members of open operations read them (and nobody else)."""
    known = list(operations)
    want = set().union(*(grants_of(rules, op) for op in known)) if known else set()
    have = {g for g in existing if is_operation_grant(g)}
    want_users = {rules.principal(m) for op in known if op.status == "OPEN" for m in members(op)}
    have_users = {u for u in users if is_operation_user(u)}
    return AccessPlan(sorted(want - have), sorted(have - want), sorted(want_users - have_users),
                      sorted(have_users - want_users), sorted(operation_topic(op.operation_id) for op in known))
