"""The ACL policy (`deploy/acl-policy.yaml`) and the pure plan that reconciles a cluster with it.

`load_policy()` expands the declaration into principals, each with its exact grants; `plan_acls`
compares the grants with the bindings a cluster reports and says what is missing, extra or changed;
`plan_users` does the same for SCRAM users. Applying the plan is `leadbus.provisioning.acls`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from leadbus.agencies import AGENCIES
from leadbus.geography import REGIONS

_EXPANSIONS: Mapping[str, list[str]] = {"agency": sorted(AGENCIES), "region": sorted(REGIONS)}

RESOURCE_KINDS = ("topic", "group", "transactional_id", "cluster")
CLUSTER_NAME = "kafka-cluster"
OPERATIONS = frozenset({"read", "write", "create", "delete", "alter", "describe", "cluster_action",
                        "describe_configs", "alter_configs", "idempotent_write", "all"})


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW binding: principal may `operation` on resource `kind`/`name` (literal or prefixed), any host."""

    principal: str  # "User:intake"
    kind: str  # topic | group | transactional_id | cluster
    name: str
    pattern: str  # literal | prefixed
    operation: str
    permission: str = "allow"  # the policy only allows; a DENY found on a cluster is drift like any other

    @property
    def resource(self) -> tuple[str, str, str, str]:
        return (self.principal, self.kind, self.name, self.pattern)

    def describe(self) -> str:
        what = f"{self.kind} {self.name}{'*' if self.pattern == 'prefixed' else ''}"
        verb = self.operation if self.permission == "allow" else f"DENY {self.operation}"
        return f"{self.principal} {verb} on {what}"


@dataclass(frozen=True)
class Principal:
    user: str
    doc: str
    grants: tuple[Grant, ...]

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def allows(self, kind: str, name: str, operation: str) -> bool:
        """Would the policy let this principal do `operation` on `name` (Kafka's implication rules included)?"""
        implied = {operation}
        if operation == "describe":
            implied |= {"read", "write", "delete", "alter"}
        if operation == "describe_configs":
            implied |= {"alter_configs"}
        for g in self.grants:
            if g.kind != kind or not (g.operation in implied or g.operation == "all"):
                continue
            if (g.pattern == "literal" and g.name == name) or (g.pattern == "prefixed" and name.startswith(g.name)):
                return True
        return False


@dataclass(frozen=True)
class Policy:
    admin: str
    principals: tuple[Principal, ...]

    def get(self, user: str) -> Principal:
        for p in self.principals:
            if p.user == user:
                return p
        raise KeyError(user)

    @property
    def users(self) -> list[str]:
        return [p.user for p in self.principals]

    def grants(self) -> set[Grant]:
        return {g for p in self.principals for g in p.grants}


def _grants(principal: str, item: Mapping[str, Any], values: Mapping[str, str]) -> list[Grant]:
    ops = [str(op).lower() for op in item["ops"]]
    unknown = set(ops) - OPERATIONS
    if unknown:
        raise ValueError(f"{principal}: unknown operations {sorted(unknown)}")
    found = [(k, v) for k, v in item.items() if k != "ops"]
    if len(found) != 1:
        raise ValueError(f"{principal}: a grant names one resource, got {item!r}")
    key, raw = found[0]
    if key == "cluster":
        kind, name, pattern = "cluster", CLUSTER_NAME, "literal"
    else:
        kind, pattern = key.removesuffix("_prefix"), "prefixed" if key.endswith("_prefix") else "literal"
        if kind not in RESOURCE_KINDS:
            raise ValueError(f"{principal}: unknown resource {key!r}")
        name = str(raw).format(**values)
    return [Grant(principal, kind, name, pattern, op) for op in ops]


def load_policy(text: str | None = None) -> Policy:
    if text is None:
        text = resources.files("leadbus.deploy").joinpath("acl-policy.yaml").read_text(encoding="utf-8")
    doc: dict[str, Any] = yaml.safe_load(text)
    principals: list[Principal] = []
    seen: set[str] = set()
    for item in doc["principals"]:
        each = item.get("for_each")
        for value in (_EXPANSIONS[each] if each else [""]):
            values: dict[str, str] = {each: value} if each else {}
            user = str(item["name"]).format(**values)
            if user in seen or user == doc["admin"]:
                raise ValueError(f"principal {user} declared twice")
            seen.add(user)
            grants = sorted({g for grant in item.get("allow", []) for g in _grants(f"User:{user}", grant, values)})
            principals.append(Principal(user, str(item.get("doc", "")).format(**values), tuple(grants)))
    return Policy(str(doc["admin"]), tuple(principals))


# Joint operations (集群战役, `processors/core/operations.py`) are granted and revoked while the bus runs, by
# their own reconciler: their topics, groups and member principals are not the static policy's to remove.
OPERATION_TOPIC_PREFIX = "leadbus.operation."
OPERATION_GROUP_PREFIX = "leadbus-operation-"
OPERATION_PRINCIPAL_PREFIX = "operation-"


def is_operation_grant(grant: Grant) -> bool:
    """Does this binding belong to an operation (granted and revoked with it), not to the static policy?"""
    if grant.kind == "topic":
        return grant.name.startswith(OPERATION_TOPIC_PREFIX)
    if grant.kind == "group":
        return grant.name.startswith(OPERATION_GROUP_PREFIX)
    return False


def expand_grants(principal: str, item: Mapping[str, Any], values: Mapping[str, str]) -> list[Grant]:
    """One `allow` item of the policy as grants, its placeholders filled from `values`."""
    return _grants(principal, item, values)


@dataclass
class AclPlan:
    missing: list[Grant] = field(default_factory=list)
    extra: list[Grant] = field(default_factory=list)

    @property
    def changed(self) -> list[tuple[tuple[str, str, str, str], list[Grant], list[Grant]]]:
        """Resources whose operations differ: (principal, kind, name, pattern), the missing and the extra ones."""
        by_missing: dict[tuple[str, str, str, str], list[Grant]] = {}
        for g in self.missing:
            by_missing.setdefault(g.resource, []).append(g)
        out = []
        for resource in sorted({g.resource for g in self.extra} & set(by_missing)):
            out.append((resource, by_missing[resource], [g for g in self.extra if g.resource == resource]))
        return out

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.extra)


def plan_acls(policy: Policy, existing: Iterable[Grant]) -> AclPlan:
    """What to create and delete so that the cluster's ALLOW bindings are exactly the policy's."""
    want = policy.grants()
    have = {g for g in existing if not is_operation_grant(g)}
    return AclPlan(sorted(want - have), sorted(have - want))


@dataclass
class UserPlan:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.extra)


def plan_users(policy: Policy, existing: Iterable[str]) -> UserPlan:
    have = {u for u in existing if not u.startswith(OPERATION_PRINCIPAL_PREFIX)} - {policy.admin}
    want = set(policy.users)
    return UserPlan(sorted(want - have), sorted(have - want))
