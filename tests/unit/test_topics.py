"""Topic declarations and the reconciliation plan."""

from __future__ import annotations

from importlib import resources

from leadbus.agencies import AGENCIES
from leadbus.geography import PROVINCES
from leadbus.topics import ExistingTopic, load_declarations, plan


def test_declarations_cover_design_section_4() -> None:
    names = {s.name for s in load_declarations()}
    assert {f"leadbus.intake.{a}" for a in AGENCIES} <= names
    assert {f"leadbus.jurisdiction.{p}" for p, info in PROVINCES.items() if info.mainland} <= names
    # Taiwan, Hong Kong and Macao lie outside mainland enforcement: liaison channels, not jurisdictions
    assert {"leadbus.liaison.71", "leadbus.liaison.81", "leadbus.liaison.82"} <= names
    assert not {"leadbus.jurisdiction.71", "leadbus.jurisdiction.81", "leadbus.jurisdiction.82"} & names
    assert {"leadbus.withdrawals", "leadbus.state.routing"} <= names
    assert {"leadbus.region.jjj", "leadbus.region.yrd", "leadbus.region.pprd"} <= names
    assert {"leadbus.leads.accepted", "leadbus.leads.rejected", "leadbus.cases", "leadbus.handover",
            "leadbus.takedown.notices", "leadbus.takedown.replies", "leadbus.schemas", "leadbus.publishers",
            "leadbus.blacklist"} <= names


def test_compacted_topics_and_audit_retention() -> None:
    specs = {s.name: s for s in load_declarations()}
    assert specs["leadbus.schemas"].config["cleanup.policy"] == "delete"  # kept whole (the audit: schema_log)
    assert specs["leadbus.schemas"].config["message.timestamp.type"] == "LogAppendTime"
    assert specs["leadbus.intake.SAMR"].config["retention.ms"] == "-1"
    assert specs["leadbus.cases"].replication_factor == 3
    assert specs["leadbus.cases"].min_insync_replicas == 2


def test_single_broker_clamps_replication() -> None:
    spec = next(s for s in load_declarations() if s.name == "leadbus.cases").for_cluster(1)
    assert (spec.replication_factor, spec.min_insync_replicas) == (1, 1)
    spec3 = next(s for s in load_declarations() if s.name == "leadbus.cases").for_cluster(3)
    assert (spec3.replication_factor, spec3.min_insync_replicas) == (3, 2)


def test_plan_finds_missing_partitions_and_drift() -> None:
    specs = [s.for_cluster(1) for s in load_declarations() if s.name in {"leadbus.cases", "leadbus.handover"}]
    cases = next(s for s in specs if s.name == "leadbus.cases")
    existing = {
        "leadbus.cases": ExistingTopic("leadbus.cases", 2, 1, {**cases.effective_config(), "retention.ms": "1000"}),
        "leadbus.stray": ExistingTopic("leadbus.stray", 1, 1, {}),
    }
    result = plan(specs, existing)
    assert [s.name for s in result.create] == ["leadbus.handover"]
    assert [(s.name, have) for s, have in result.add_partitions] == [("leadbus.cases", 2)]
    assert ("leadbus.cases", "retention.ms", "1000", "-1") in result.config_drift
    assert result.undeclared == ["leadbus.stray"]
    assert not result.in_sync


def test_the_declarations_read_with_libyaml_are_those_the_pure_python_loader_reads() -> None:
    import yaml

    import leadbus.topics as topics

    text = resources.files("leadbus.deploy").joinpath("topics.yaml").read_text(encoding="utf-8")
    fast = topics.load_declarations(text)
    loader, topics._SAFE_LOADER = topics._SAFE_LOADER, yaml.SafeLoader
    try:
        assert topics.load_declarations(text) == fast
    finally:
        topics._SAFE_LOADER = loader
    assert list(topics.declarations()) == fast and topics.declarations() is topics.declarations()
