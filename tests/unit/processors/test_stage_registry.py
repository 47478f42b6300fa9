"""The registry of stages agrees with what the bus declares: topics, changelogs, groups, grants, deployments."""

from __future__ import annotations

import re

import pytest

from leadbus.acl import load_policy
from leadbus.clients import KafkaSettings
from leadbus.processors.core.deadlines import CalendarDays, CompressedDays, WorkingDays
from leadbus.processors.stages import STAGES, StageOptions, UnknownStage, stage
from leadbus.render import plan
from leadbus.topics import load_declarations

POLICY = load_policy()
DECLARED = {spec.name: spec for spec in load_declarations()}


@pytest.mark.parametrize("name", list(STAGES))
def test_each_stage_reads_declared_topics_and_writes_a_declared_compacted_changelog(name: str) -> None:
    definition = STAGES[name]
    for topic in definition.inputs:
        matches = [t for t in DECLARED if (re.fullmatch(topic[1:], t) if topic.startswith("^") else t == topic)]
        assert matches, f"{name} reads {topic}, which no declaration provides"
    assert definition.changelog in DECLARED
    assert DECLARED[definition.changelog].config.get("cleanup.policy") == "compact"


@pytest.mark.parametrize("name", list(STAGES))
def test_each_stages_principal_may_join_its_group_read_its_inputs_and_write_its_changelog(name: str) -> None:
    principal = POLICY.get(name)
    definition = STAGES[name]
    assert definition.group == f"leadbus-{name}"
    assert principal.allows("group", definition.group, "read")
    for topic in (t for t in DECLARED if any(
            re.fullmatch(i[1:], t) if i.startswith("^") else t == i for i in definition.inputs)):
        assert principal.allows("topic", topic, "read"), (name, topic)
    assert principal.allows("topic", definition.changelog, "write")
    # no other stage's principal may write this stage's changelog
    assert [p.user for p in POLICY.principals if p.allows("topic", definition.changelog, "write")] == [name]


def test_the_deployment_runs_every_stage_and_nothing_else_as_a_stage() -> None:
    stage_workloads = {w.name for w in plan().workloads if "--stage" in w.args}
    assert stage_workloads == set(STAGES)


def test_config_carries_the_registry_and_the_worker_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = stage("intake").config(KafkaSettings("127.0.0.1:1"), tmp_path, "w-1")
    assert (config.name, config.group_id, config.state_topic, config.worker_id) == (
        "intake", "leadbus-intake", "leadbus.internal.intake-by-lead", "w-1")
    assert stage("linking").config(KafkaSettings("127.0.0.1:1"), tmp_path).global_state
    assert [n for n, d in STAGES.items() if d.clock_may_run_fast] == ["handover"]


def test_an_unknown_stage_is_a_clear_error() -> None:
    with pytest.raises(UnknownStage, match="the stages are intake, linking, handover, routing"):
        stage("blacklist-typo")


def test_day_counting_follows_the_options() -> None:
    assert isinstance(StageOptions().day_counting(), CalendarDays)
    assert isinstance(StageOptions(working_days=True).day_counting(), WorkingDays)
    assert isinstance(StageOptions(day_seconds=2.0).day_counting(), CompressedDays)
