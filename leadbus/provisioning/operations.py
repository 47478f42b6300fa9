"""Joint operations on a real cluster: each operation's topic, its members' principals and grants.

`reconcile_operations` makes the cluster match the operations as they stand (`processors/core/operations.py`
plans it): every operation's topic exists (a closed one's is kept, archived: nobody writes it and only the
auditors read it); each member of an open operation has its `operation-<member>` principal (SCRAM-SHA-512,
client file written like `acl apply` writes them) and exactly the grants the ACL policy's `operations`
block gives; grants and principals of operations no longer open are removed. As the admin, like
`acl apply`; the static policy's reconciler leaves these resources and principals alone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from leadbus.clients import KafkaSettings, write_client_config
from leadbus.processors.core.operations import AccessPlan, AccessRules, Operation, access_plan
from leadbus.provisioning.acls import (
    SCRAM_ITERATIONS,
    _filter_of,
    existing_grants,
    existing_users,
    require_admin,
    to_binding,
)
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import TopicSpec

#: An operation's topic: one partition (its members read it in order), kept forever (the archive).
TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete", "unclean.leader.election.enable": "false"}


def access_rules(text: str | None = None) -> AccessRules:
    if text is None:
        text = resources.files("leadbus.deploy").joinpath("acl-policy.yaml").read_text(encoding="utf-8")
    return AccessRules.from_policy(yaml.safe_load(text))


def reconcile_operations(admin_settings: KafkaSettings, operations: Iterable[Operation], clients_dir: Path, *,
                         rules: AccessRules | None = None, client_template: KafkaSettings | None = None,
                         timeout: float = 30.0) -> AccessPlan:
    """Topics, principals and grants for `operations` (all known ones, open and closed); returns what it changed."""
    rules = rules or access_rules()
    known = list(operations)
    admin = admin_settings.admin(log_level=3)
    require_admin(admin, admin_settings.principal)
    plan = access_plan(rules, known, existing_grants(admin), existing_users(admin))
    if plan.topics:
        apply_topics(admin_settings, [TopicSpec(t, 1, 3, 2, TOPIC_CONFIG, "joint operation") for t in plan.topics],
                     fix_config=False)
    template = client_template or admin_settings
    shared = {k: v for k, v in template.security.items() if k not in ("sasl.username", "sasl.password")}
    passwords = {user: secrets.token_urlsafe(32) for user in plan.create_users}
    scram = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    changes: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, scram, password.encode()) for user, password in sorted(passwords.items())]
    changes += [UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512) for user in plan.delete_users]
    # Access goes before the credential that carried it, and comes after the credential that will use it.
    if plan.revoke:
        for fut in admin.delete_acls([_filter_of(g) for g in plan.revoke], request_timeout=30).values():
            fut.result(timeout=60)
    if changes:
        for fut in admin.alter_user_scram_credentials(changes).values():
            fut.result(timeout=60)
    if plan.grant:
        for fut in admin.create_acls([to_binding(g) for g in plan.grant], request_timeout=30).values():
            fut.result(timeout=60)
    for user, password in passwords.items():
        settings = KafkaSettings(template.bootstrap, {**shared, "sasl.username": user, "sasl.password": password})
        write_client_config(clients_dir / f"{user}.json", settings)
    for user in plan.delete_users:
        (clients_dir / f"{user}.json").unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # ACL changes travel through the metadata log
        if access_plan(rules, known, existing_grants(admin), existing_users(admin)).in_sync:
            break
        time.sleep(0.3)
    return plan
