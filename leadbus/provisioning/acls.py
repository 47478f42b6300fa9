"""Applying the ACL policy to a real cluster: SCRAM users, ALLOW bindings, and each principal's client file.

Everything goes through the Admin API as the admin principal: `describe_user_scram_credentials`,
`alter_user_scram_credentials`, `describe_acls`, `create_acls`, `delete_acls`. Idempotent: a second
run finds nothing to do. Passwords are generated once (32 random bytes, url-safe) and kept in the
principal's client file; a file whose password no longer authenticates is rewritten with a new one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from leadbus.acl import CLUSTER_NAME, AclPlan, Grant, Policy, UserPlan, plan_acls, plan_users
from leadbus.clients import KafkaSettings, write_client_config

SCRAM_ITERATIONS = 8192

_KINDS = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
          "transactional_id": ResourceType.TRANSACTIONAL_ID, "cluster": ResourceType.BROKER}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
_PATTERN_NAMES = {v: k for k, v in _PATTERNS.items()}


def to_binding(grant: Grant) -> AclBinding:
    permission = AclPermissionType.ALLOW if grant.permission == "allow" else AclPermissionType.DENY
    return AclBinding(_KINDS[grant.kind], grant.name, _PATTERNS[grant.pattern], grant.principal, "*",
                      AclOperation[grant.operation.upper()], permission)


def from_binding(found: AclBinding) -> Grant:
    binding: Any = found  # its attributes are typed loosely in the stubs
    kind = _KIND_NAMES.get(binding.restype, str(binding.restype.name).lower())
    pattern = _PATTERN_NAMES.get(binding.resource_pattern_type, str(binding.resource_pattern_type.name).lower())
    permission = "allow" if binding.permission_type == AclPermissionType.ALLOW else "deny"
    name = CLUSTER_NAME if kind == "cluster" else binding.name
    # A host other than "*" is a different binding than any the policy makes: keep it visible as drift.
    principal = binding.principal if binding.host == "*" else f"{binding.principal}@{binding.host}"
    return Grant(principal, kind, name, pattern, binding.operation.name.lower(), permission)


class NotAdmin(PermissionError):
    """The settings given are not a principal that may read and change ACLs and credentials."""


def require_admin(admin: AdminClient, who: str | None) -> None:
    """Refuse early unless `admin` may describe and alter the cluster.

    Not only for a clear message: as a principal without those rights, confluent-kafka 2.16's
    `describe_user_scram_credentials()` aborts the whole process (munmap_chunk(): invalid pointer), and its
    `describe_acls` can come back empty, which a drift check would take for "every grant missing".
    """
    description = admin.describe_cluster(include_authorized_operations=True, request_timeout=30).result(timeout=60)
    allowed = set(description.authorized_operations or [])
    if not {AclOperation.ALTER, AclOperation.DESCRIBE} <= allowed:
        raise NotAdmin(f"CLUSTER_AUTHORIZATION_FAILED: User:{who} may not describe or change ACLs and credentials; "
                       "acl apply needs the admin's client settings")


def existing_grants(admin: AdminClient) -> list[Grant]:
    anything: Any = None  # a filter's None matches any name, principal and host
    flt = AclBindingFilter(ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything, AclOperation.ANY,
                           AclPermissionType.ANY)
    return [from_binding(b) for b in admin.describe_acls(flt, request_timeout=30).result(timeout=60)]


def existing_users(admin: AdminClient) -> list[str]:
    try:
        found = admin.describe_user_scram_credentials(request_timeout=30)
    except KafkaException as exc:  # pragma: no cover - depends on the client version
        raise RuntimeError(f"cannot list SCRAM users: {exc}") from None
    if isinstance(found, dict):  # per-user futures
        return [user for user, fut in found.items() if fut.result(timeout=30) is not None]
    return list(found.result(timeout=30))


@dataclass
class ApplyReport:
    acls: AclPlan
    users: UserPlan
    rewritten: list[str] = field(default_factory=list)  # principals whose client file got a new password
    rotated: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return self.acls.in_sync and self.users.in_sync and not self.rewritten


def _password_of(path: Path) -> str | None:
    try:
        value = KafkaSettings.from_file(path).security.get("sasl.password")
    except ValueError:
        return None
    return str(value) if value else None


def apply_policy(admin_settings: KafkaSettings, policy: Policy, clients_dir: Path, *, check: bool = False,
                 client_template: KafkaSettings | None = None, rotate: Iterable[str] = ()) -> ApplyReport:
    """Make the cluster say exactly what `policy` says; write `clients_dir/<principal>.json` for each principal.

    `check` only reports. `client_template` gives the settings every principal shares (bootstrap, TLS);
    it defaults to the admin's, minus the admin's credential. `rotate` names principals whose password is
    replaced (the old one stops working as soon as the change reaches the brokers).
    """
    rotating = set(rotate)
    unknown = rotating - set(policy.users)
    if unknown:
        raise ValueError(f"not principals of the policy: {sorted(unknown)}")
    admin = admin_settings.admin(log_level=3)
    require_admin(admin, admin_settings.principal)
    acl_plan = plan_acls(policy, existing_grants(admin))
    user_plan = plan_users(policy, existing_users(admin))
    report = ApplyReport(acl_plan, user_plan)
    template = client_template or admin_settings
    shared = {k: v for k, v in template.security.items() if k not in ("sasl.username", "sasl.password")}
    passwords: dict[str, str] = {}
    for user in policy.users:
        path = clients_dir / f"{user}.json"
        known = None if user in rotating else _password_of(path)
        if user in rotating:
            report.rotated.append(user)
            passwords[user] = secrets.token_urlsafe(32)
        elif user in user_plan.missing or known is None:
            if known is None and user not in user_plan.missing:
                report.rewritten.append(user)  # the credential exists, but nobody here knows its password
            passwords[user] = known if (known and user in user_plan.missing) else secrets.token_urlsafe(32)
    if check:
        return report
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
                                            password.encode())
               for user, password in sorted(passwords.items())]
    deletions = [UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512) for user in user_plan.extra]
    if upserts or deletions:
        for fut in admin.alter_user_scram_credentials([*upserts, *deletions]).values():
            fut.result(timeout=60)
    if acl_plan.extra:
        for fut in admin.delete_acls([_filter_of(g) for g in acl_plan.extra], request_timeout=30).values():
            fut.result(timeout=60)
    if acl_plan.missing:
        for fut in admin.create_acls([to_binding(g) for g in acl_plan.missing], request_timeout=30).values():
            fut.result(timeout=60)
    for user in policy.users:
        path = clients_dir / f"{user}.json"
        password = passwords.get(user) or _password_of(path)
        assert password is not None
        settings = KafkaSettings(template.bootstrap, {**shared, "sasl.username": user, "sasl.password": password})
        report.files.append(write_client_config(path, settings))
    _wait_for_acls(admin, policy)
    return report


def _filter_of(grant: Grant) -> AclBindingFilter:
    principal, _, host = grant.principal.partition("@")
    permission = AclPermissionType.ALLOW if grant.permission == "allow" else AclPermissionType.DENY
    name: Any = None if grant.kind == "cluster" else grant.name
    return AclBindingFilter(_KINDS[grant.kind], name, _PATTERNS[grant.pattern], principal, host or "*",
                            AclOperation[grant.operation.upper()], permission)


def _wait_for_acls(admin: AdminClient, policy: Policy, timeout: float = 30.0) -> None:
    """ACL changes travel through the metadata log: wait until the broker answering reports them all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if plan_acls(policy, existing_grants(admin)).in_sync:
            return
        time.sleep(0.3)
