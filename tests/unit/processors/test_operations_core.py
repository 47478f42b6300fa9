"""Joint operations (集群战役): decisions fold into an operation; access is planned from the policy and the state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadbus.acl import Grant, load_policy, plan_acls, plan_users
from leadbus.avro import encode, packaged_catalog
from leadbus.processors.core.agency_events import OPERATIONS
from leadbus.processors.core.intake import EventAcceptance, Rejection, Source, examine
from leadbus.processors.core.operations import (
    AccessRules,
    Operation,
    Refusal,
    access_plan,
    decide,
    grants_of,
    members,
)

CATALOG = packaged_catalog()
NOW = datetime(2026, 11, 20, 8, tzinfo=UTC)
POLICY_TEXT = (Path(__file__).parents[3] / "deploy" / "acl-policy.yaml").read_text(encoding="utf-8")
RULES = AccessRules.from_policy(yaml.safe_load(POLICY_TEXT))
CASE_A, CASE_B = "CASE-00000000000000A1", "CASE-00000000000000B2"


def decision(kind: str, agency: str = "SAMR", **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "decision_id": str(uuid.uuid4()), "operation_id": "op-2026-cosmetics", "kind": kind,
        "actor": {"agency": agency, "province": "00", "unit": None}, "decided_at": NOW, "name": "",
        "member_agencies": [], "member_provinces": [], "case_ids": [], "starts_at": None, "ends_at": None}
    if kind == "OPEN":
        record.update(name="2026 化妆品集群战役", member_agencies=["MPS", "GACC"], member_provinces=["33", "44"],
                      case_ids=[CASE_A], starts_at=NOW, ends_at=NOW + timedelta(days=90))
    record.update(overrides)
    return record


def opened() -> Operation:
    op = decide(None, decision("OPEN"))
    assert isinstance(op, Operation)
    return op


def test_open_join_close() -> None:
    op = opened()
    assert members(op) == ["SAMR", "GACC", "MPS", "33", "44"] and op.targets == (CASE_A,)
    joined = decide(op, decision("JOIN_CASE", "MPS", case_ids=[CASE_B, CASE_A]))
    assert isinstance(joined, Operation) and joined.targets == (CASE_A, CASE_B)
    closed = decide(joined, decision("CLOSE"))
    assert isinstance(closed, Operation) and closed.status == "CLOSED"
    assert Operation.from_json(closed.to_json()) == closed


@pytest.mark.parametrize(("before", "made", "reason"), [
    (None, decision("JOIN_CASE", case_ids=[CASE_B]), "OPERATION_UNKNOWN"),
    ("open", decision("OPEN"), "OPERATION_EXISTS"),
    ("open", decision("JOIN_CASE", "NCAC", case_ids=[CASE_B]), "NOT_A_MEMBER"),
    ("open", decision("CLOSE", "MPS"), "NOT_THE_LEAD"),
    ("closed", decision("JOIN_CASE", case_ids=[CASE_B]), "OPERATION_CLOSED"),
])
def test_decisions_that_do_not_apply_are_refused(before: str | None, made: dict[str, Any], reason: str) -> None:
    op = None if before is None else opened()
    if before == "closed":
        op = decide(op, decision("CLOSE"))
        assert isinstance(op, Operation)
    outcome = decide(op, made)
    assert isinstance(outcome, Refusal) and outcome.reason == reason


def test_a_replayed_decision_changes_nothing_and_replay_gives_the_same_state() -> None:
    made = [decision("OPEN"), decision("JOIN_CASE", "GACC", case_ids=[CASE_B]), decision("CLOSE")]

    def fold(decisions: list[dict[str, Any]]) -> Operation | None:
        op: Operation | None = None
        for d in decisions:
            out = decide(op, d)
            op = out if isinstance(out, Operation) else op
        return op

    assert fold(made) == fold([made[0], made[1], made[1], made[2], made[2]])


def test_members_get_exactly_the_policy_grants_while_open_and_none_after() -> None:
    op = opened()
    grants = grants_of(RULES, op)
    readers = {g.principal for g in grants if g.kind == "topic" and g.operation == "read"}
    assert readers == {"User:operation-SAMR", "User:operation-MPS", "User:operation-GACC", "User:operation-33",
                       "User:operation-44"}
    assert Grant("User:operations", "topic", "leadbus.operation.op-2026-cosmetics", "literal", "write") in grants
    assert not any(g.operation == "write" and g.principal.startswith("User:operation-") for g in grants)
    closed = decide(op, decision("CLOSE"))
    assert isinstance(closed, Operation) and grants_of(RULES, closed) == set()


def test_the_plan_opens_and_closes_access_and_keeps_the_topic() -> None:
    op = opened()
    first = access_plan(RULES, [op], [], ["intake", "auditor"])
    assert set(first.grant) == grants_of(RULES, op) and not first.revoke
    assert first.create_users == sorted(f"operation-{m}" for m in members(op))
    assert first.topics == ["leadbus.operation.op-2026-cosmetics"]
    assert access_plan(RULES, [op], first.grant, first.create_users).in_sync
    closed = decide(op, decision("CLOSE"))
    assert isinstance(closed, Operation)
    after = access_plan(RULES, [closed], first.grant, ["auditor", *first.create_users])
    assert set(after.revoke) == set(first.grant) and after.delete_users == first.create_users
    assert after.topics == ["leadbus.operation.op-2026-cosmetics"]  # archived, not deleted


def test_the_static_policy_leaves_operation_grants_and_principals_alone() -> None:
    policy = load_policy(POLICY_TEXT)
    op_grants = grants_of(RULES, opened())
    plan = plan_acls(policy, [*policy.grants(), *op_grants])
    assert plan.in_sync
    assert plan_users(policy, [*policy.users, "operation-SAMR"]).in_sync


def test_operation_decisions_go_through_intake() -> None:
    entry = CATALOG.latest("cn.leadbus.OperationDecision")
    outcome = examine(encode(entry, decision("OPEN")), Source("leadbus.intake.SAMR", 0, 3), CATALOG, NOW)
    assert isinstance(outcome, EventAcceptance) and (outcome.topic, outcome.key) == (OPERATIONS, "op-2026-cosmetics")
    for bad, reason in [(decision("OPEN", operation_id="Bad Id!"), "OPERATION_ID_FORMAT"),
                        (decision("OPEN", ends_at=NOW - timedelta(days=1)), "OPERATION_PERIOD"),
                        (decision("OPEN", name=""), "OPERATION_INCOMPLETE"),
                        (decision("JOIN_CASE"), "OPERATION_INCOMPLETE"),
                        (decision("OPEN", member_provinces=["99"]), "UNKNOWN_PROVINCE")]:
        refused = examine(encode(entry, bad), Source("leadbus.intake.SAMR", 0, 4), CATALOG, NOW)
        assert isinstance(refused, Rejection) and refused.reason == reason, (reason, refused)
