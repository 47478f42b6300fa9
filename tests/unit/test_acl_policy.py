"""The ACL policy as declared (deploy/acl-policy.yaml): who may do what, checked without a broker.

The same policy is applied to real brokers and probed principal by principal in
tests/integration/test_secure_acls.py; here its shape is pinned: least privilege, one writer per
intake topic, regional data for its region only, auditors read-only, the key registry the admin's.
"""

from __future__ import annotations

import pytest

from leadbus.acl import Grant, load_policy, plan_acls, plan_users
from leadbus.agencies import AGENCIES
from leadbus.geography import REGIONS
from leadbus.topics import intake_topic, load_declarations, region_topic, review_topic

POLICY = load_policy()
TOPICS = [s.name for s in load_declarations()]
PROCESSOR_GROUPS = ["leadbus-intake", "leadbus-linking", "leadbus-handover", "leadbus-routing",
                    "leadbus-restore-intake-x", "leadbus-restore-routing-x", "leadbus-archive", "leadbus-takedown",
                    "leadbus-registry"]


def writers(topic: str) -> set[str]:
    return {p.user for p in POLICY.principals if p.allows("topic", topic, "write")}


def readers(topic: str) -> set[str]:
    return {p.user for p in POLICY.principals if p.allows("topic", topic, "read")}


def test_every_agency_has_one_publisher_that_writes_only_its_own_intake_topic() -> None:
    for agency in AGENCIES:
        pub = POLICY.get(f"publisher-{agency}")
        assert [t for t in TOPICS if pub.allows("topic", t, "write")] == [intake_topic(agency)]
        assert not [t for t in TOPICS if pub.allows("topic", t, "read")]
        desks = {f"link-desk-{region}" for region in REGIONS} if agency == "SAMR" else set()  # issue #19
        assert writers(intake_topic(agency)) == {f"publisher-{agency}"} | desks


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_a_link_desk_writes_its_agencys_intake_topic_only_and_reads_nothing(region: str) -> None:
    desk = POLICY.get(f"link-desk-{region}")
    assert [t for t in TOPICS if desk.allows("topic", t, "write")] == [intake_topic("SAMR")]
    assert not [t for t in TOPICS if desk.allows("topic", t, "read")]
    assert not any(g.kind in ("group", "transactional_id", "cluster") for g in desk.grants)


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_a_dashboard_reads_its_region_only_and_writes_nothing(region: str) -> None:
    dash = POLICY.get(f"dashboard-{region}")
    # its region's topic, and its region's suggested links for its supervisors (#19)
    assert [t for t in TOPICS if dash.allows("topic", t, "read")] == [region_topic(region), review_topic(region)]
    assert readers(review_topic(region)) == {f"dashboard-{region}", "auditor"}
    assert writers(review_topic(region)) == {"linking", "suggesting"}  # LinkDecided, LinkSuggested
    assert not [t for t in TOPICS if dash.allows("topic", t, "write")]
    assert not dash.allows("topic", "leadbus.handover", "read"), "handover steps come through the region topic"


def test_auditors_read_everything_write_nothing_and_join_no_processor_group() -> None:
    auditor = POLICY.get("auditor")
    assert all(auditor.allows("topic", t, "read") for t in TOPICS)
    assert not any(auditor.allows("topic", t, op) for t in TOPICS for op in ("write", "delete", "alter"))
    assert not any(auditor.allows("group", g, "read") for g in PROCESSOR_GROUPS)
    assert auditor.allows("group", "leadbus-audit-replay-1", "read")
    assert not any(g.kind in ("transactional_id", "cluster") for g in auditor.grants)


def test_only_the_admin_writes_the_key_registry_and_schemas_and_intake_reads_keys() -> None:
    assert writers("leadbus.publishers") == set() and writers("leadbus.schemas") == set()
    assert "intake" in readers("leadbus.publishers")
    assert POLICY.admin == "admin" and "admin" not in POLICY.users


def test_nobody_but_the_admin_creates_topics_or_changes_acls() -> None:
    for p in POLICY.principals:
        assert not any(g.kind == "cluster" for g in p.grants), p.user
        assert not any(g.operation in ("create", "delete", "alter", "alter_configs", "all") for g in p.grants), p.user


def test_each_stage_owns_its_transactional_ids_groups_and_changelog() -> None:
    for stage in ("intake", "linking", "handover", "routing"):
        p = POLICY.get(stage)
        assert p.allows("transactional_id", f"leadbus-{stage}-worker-1", "write")
        assert p.allows("group", f"leadbus-{stage}", "read")
        assert p.allows("group", f"leadbus-restore-{stage}-3f2a", "read")
        others = [s for s in ("intake", "linking", "handover", "routing") if s != stage]
        assert not any(p.allows("transactional_id", f"leadbus-{o}-w", "write") for o in others)
        assert not any(p.allows("group", f"leadbus-{o}", "read") for o in others)
    assert writers("leadbus.state.routing") == {"routing"}
    assert writers("leadbus.cases") == {"linking"} and writers("leadbus.handover") == {"handover"}
    assert writers("leadbus.links.suggested") == writers("leadbus.state.suggesting") == {"suggesting"}
    assert writers(region_topic("yrd")) == {"routing"}


def test_every_declared_topic_is_read_by_someone_and_every_grant_names_a_declared_topic() -> None:
    for topic in TOPICS:
        assert readers(topic) - {"auditor"} or topic in {"leadbus.blacklist", "leadbus.webhooks.dead",
                                                         "leadbus.takedown.replies",
                                                         "leadbus.links.suggested",
                                                         "leadbus.archive.heads"} \
            or topic.startswith(("leadbus.jurisdiction.", "leadbus.liaison.", "leadbus.channel.")), topic
    for grant in POLICY.grants():
        if grant.kind == "topic":
            match = [t for t in TOPICS if (t == grant.name if grant.pattern == "literal" else t.startswith(grant.name))]
            assert match, f"{grant.describe()} names no declared topic"


def test_drift_plan_reports_missing_extra_and_changed() -> None:
    want = POLICY.grants()
    dropped = Grant("User:intake", "group", "leadbus-intake", "literal", "read")
    changed = Grant("User:intake", "group", "leadbus-intake", "literal", "describe")
    foreign = Grant("User:dashboard-yrd", "topic", "leadbus.region.jjj", "literal", "read")
    denied = Grant("User:auditor", "topic", "leadbus.", "prefixed", "read", "deny")
    plan = plan_acls(POLICY, (want - {dropped}) | {changed, foreign, denied})
    assert plan.missing == [dropped]
    assert set(plan.extra) == {changed, foreign, denied}
    assert [(r, m, e) for r, m, e in plan.changed] == [(dropped.resource, [dropped], [changed])]
    assert plan_acls(POLICY, want).in_sync
    users = plan_users(POLICY, [*POLICY.users[1:], "admin", "mallory"])
    assert users.missing == [POLICY.users[0]] and users.extra == ["mallory"]
