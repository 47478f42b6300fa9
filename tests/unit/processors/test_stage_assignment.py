"""Which partition assignment each stage may use, and default worker ids that never collide."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from leadbus.clients import KafkaSettings
from leadbus.processors.stage import AssignmentError, StageConfig, default_worker_id
from leadbus.processors.stages import STAGES
from leadbus.topics import INTAKE_BY_LEAD, load_declarations

KAFKA = KafkaSettings("127.0.0.1:1")


def _config(name: str) -> StageConfig:
    return STAGES[name].config(KAFKA, Path("/nonexistent"))


@pytest.mark.parametrize("name", list(STAGES))
def test_every_registered_stage_uses_an_assignment_that_keeps_its_state_with_one_worker(name: str) -> None:
    _config(name).check_assignment()


def test_intake_spreads_its_partitions_round_robin_and_still_speaks_range_to_older_workers() -> None:
    config = _config("intake")
    assert config.state_topic == INTAKE_BY_LEAD  # its state partition p is that one topic's partition p
    assert config.assignment.split(",") == ["roundrobin", "range"]


@pytest.mark.parametrize("name", ["handover", "routing"])
@pytest.mark.parametrize("assignment", ["roundrobin", "cooperative-sticky", "range,roundrobin"])
def test_co_partitioned_state_refuses_an_assignor_that_could_split_it(name: str, assignment: str) -> None:
    config = dataclasses.replace(_config(name), assignment=assignment)
    with pytest.raises(AssignmentError, match="keyed by partition number"):
        config.check_assignment()


@pytest.mark.parametrize("name", ["linking", "blacklist"])
def test_a_global_state_refuses_round_robin_too(name: str) -> None:
    config = dataclasses.replace(_config(name), assignment="roundrobin")
    with pytest.raises(AssignmentError, match="one global store"):
        config.check_assignment()


def test_default_worker_ids_differ_between_workers_started_at_once() -> None:
    ids = {default_worker_id() for _ in range(1000)}
    assert len(ids) == 1000
    configs = {StageConfig("intake", KAFKA, [], "", Path("."), "g").worker_id for _ in range(100)}
    assert len(configs) == 100


@pytest.mark.parametrize("workers", [1, 2, 3, 6])
def test_every_intake_topic_splits_evenly_among_the_workers_intake_can_use(workers: int) -> None:
    """Intake's first half runs where a record lands, so a worker's load is the traffic of the partitions it holds,
    and agencies' traffic differs by 100x: an agency split 2:1 (3 partitions, two workers) gave one worker 61 % of the
    events. With a multiple of 1, 2, 3 and 6 partitions (up to 6 workers: the repartition topic's), round robin over
    the sorted partitions gives every worker the same share of every agency's topic, whatever the agencies' mix."""
    by_lead = next(t.partitions for t in load_declarations() if t.name == INTAKE_BY_LEAD)
    assert by_lead % workers == 0
    for spec in load_declarations():
        if spec.name.startswith("leadbus.intake."):
            assert spec.partitions % workers == 0, f"{spec.name}: {spec.partitions} partitions"
