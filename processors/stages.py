"""The registry of stages: every exactly-once stage the bus runs, declared once.

`leadbus process --stage NAME`, the supervisor of `--stage all`, the demo and the deployment renderer read
this table; none of them keeps its own list. A stage is its input topics, its changelog, its group
(`leadbus-<name>`, the name the ACL policy grants), where its state lives, and a factory for its handler.
Handlers are imported only when a stage is built, so listing the stages stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

# The batch gap of the stages on the path (see `StageDefinition.batch_gap`), which the registry sink shares.
from leadbus.batches import ON_PATH_GAP as ON_PATH_GAP
from leadbus.clients import KafkaSettings
from leadbus.processors.core.deadlines import CalendarDays, CompressedDays, DayCounting, WorkingDays
from leadbus.topics import (
    BLACKLIST,
    BLACKLIST_CHANGELOG,
    BLACKLIST_DECISIONS,
    CASES,
    DISCLOSURE_CHANGELOG,
    HANDOVER,
    HANDOVER_CARRYOVER,
    HANDOVER_CHANGELOG,
    HANDOVER_DECISIONS,
    INTAKE_BY_LEAD,
    INTAKE_CHANGELOG,
    INTAKE_PATTERN,
    LEADS_ACCEPTED,
    LINK_DECISIONS,
    LINKING_CHANGELOG,
    ROUTING_CHANGELOG,
    SUGGESTING_CHANGELOG,
    stage_group,
)

if TYPE_CHECKING:  # the engine (confluent-kafka, RocksDB) is loaded only when a stage is built
    from leadbus.processors.stage import Handler, StageConfig


class UnknownStage(ValueError):
    """A stage name that is not in the registry."""


@dataclass(frozen=True)
class StageOptions:
    """What the operator chooses when starting a stage (only the handover stage has a clock to tune)."""

    working_days: bool = False
    day_seconds: float = 0.0

    def day_counting(self) -> DayCounting:
        if self.day_seconds:
            return CompressedDays(self.day_seconds)
        return WorkingDays() if self.working_days else CalendarDays()


@dataclass(frozen=True)
class StageDefinition:
    name: str
    inputs: tuple[str, ...]
    changelog: str
    build_handler: Callable[[KafkaSettings, StageOptions], Handler] = field(repr=False)
    #: Linking's state is global (any lead may join any case): one active owner holds it in partition 0.
    global_state: bool = False
    #: Intake's state lives with the repartition topic's partitions, not with every input's.
    state_topic: str | None = None
    #: Deadlines run on this stage's clock: demos and tests may make it run fast; the others stamp real time.
    clock_may_run_fast: bool = False
    #: Started by `leadbus process --stage all` and the demo; the others (public disclosure) run on their own.
    in_pipeline: bool = True
    #: Records per transaction at most: under a backlog fewer, larger transactions (each commits to every
    #: partition it touched); at a steady rate a batch is what the batch timeout brings.
    batch_size: int = 500
    #: The consumer group's `partition.assignment.strategy` (see `StageConfig.check_assignment`).
    assignment: str = "range"
    #: Once a record is there, how long to wait for more before the batch's transaction (None: the engine's
    #: `StageConfig.batch_fill`). Stages off the path to cases, the registry and the dashboards (suggestions for
    #: analysts, blacklist proposals, handover steps with deadlines in days) wait longer: fewer, larger
    #: transactions, fewer commit markers and changelog records, less CPU per lead (README, "End-to-end latency").
    batch_fill: float | None = None
    #: The batch gap (`StageConfig.batch_gap`): the stages of the path to cases, the registry and the dashboards
    #: end a fill once no record came for 5 ms, so a hop takes its upstream's commit as one burst and goes on
    #: (cases p50 257/278 → 187/210 ms, p99 446/480 → 350/427 at 500 leads/s, quiet machine, README); the stages
    #: with a fill of their own (off the path) wait it out.
    batch_gap: float | None = None

    @property
    def group(self) -> str:
        return stage_group(self.name)

    def config(self, kafka: KafkaSettings, state_dir: Path, worker_id: str | None = None,
               seal_keys: Path | None = None) -> StageConfig:
        """The engine's configuration; with `seal_keys` (a folder, `leadbus.stage_keys`) the stage seals its outputs."""
        from leadbus.processors.stage import StageConfig

        config = StageConfig(name=self.name, kafka=kafka, topics=list(self.inputs), changelog_topic=self.changelog,
                             state_dir=state_dir, group_id=self.group, global_state=self.global_state,
                             state_topic=self.state_topic, batch_size=self.batch_size,
                             assignment=self.assignment)
        if self.batch_fill is not None:
            config.batch_fill = self.batch_fill
        if self.batch_gap is not None:
            config.batch_gap = self.batch_gap
        if seal_keys is not None:
            from leadbus.stage_keys import load_stage_key

            config.seal_key = load_stage_key(seal_keys, self.name)
        if worker_id:
            config.worker_id = worker_id
        return config


def _intake(kafka: KafkaSettings, _options: StageOptions) -> Handler:
    from leadbus.processors.intake import IntakeHandler
    from leadbus.publisher_keys import KeyFeed

    keys = KeyFeed(kafka)
    keys.catch_up(60)  # every publisher key registered so far is known before the first event
    return IntakeHandler(keys=keys)


def _linking(_kafka: KafkaSettings, _options: StageOptions) -> Handler:
    from leadbus.processors.linking import LinkingHandler

    return LinkingHandler()


def _suggesting(_kafka: KafkaSettings, _options: StageOptions) -> Handler:
    from leadbus.processors.suggesting import SuggestingHandler

    return SuggestingHandler()


def _handover(_kafka: KafkaSettings, options: StageOptions) -> Handler:
    from leadbus.processors.handover import HandoverHandler

    return HandoverHandler(counting=options.day_counting())


def _routing(_kafka: KafkaSettings, _options: StageOptions) -> Handler:
    from leadbus.processors.routing import RoutingHandler

    return RoutingHandler()


def _blacklist(_kafka: KafkaSettings, _options: StageOptions) -> Handler:
    from leadbus.processors.blacklist import BlacklistHandler

    return BlacklistHandler()


def _disclosure(_kafka: KafkaSettings, _options: StageOptions) -> Handler:
    from leadbus.processors.disclosure import DisclosureHandler

    return DisclosureHandler()


#: The batch fill of the stages whose outputs no one waits for within the second (see `StageDefinition.batch_fill`).
OFF_PATH_FILL = 0.5

#: In pipeline order (the supervisor starts them in this order and numbers their metrics ports by it).
STAGES: dict[str, StageDefinition] = {
    d.name: d
    for d in (
        # Round robin spreads its partitions evenly over the workers, and every agency's 6 evenly over 2, 3 or 6 of
        # them (deploy/topics.yaml: a worker's load is its partitions' traffic); range is listed second so that a
        # group still holding workers of an older release, which offer range alone, keeps working during an upgrade.
        # Batches of up to 2,000: 5,000 (fewer commits under a backlog, each a wait of 10-50 ms) measured slower on a
        # quiet machine (bench/intake.py, stage ÷ plain 0.71 against 0.83 with 2,000, back to back).
        StageDefinition("intake", (INTAKE_PATTERN, INTAKE_BY_LEAD), INTAKE_CHANGELOG, _intake,
                        state_topic=INTAKE_BY_LEAD, batch_size=2000, assignment="roundrobin,range",
                        batch_gap=ON_PATH_GAP),
        # Linking too (issue #16): under a backlog each commit of 500 was a wait in which the one owner of the global
        # state links nothing; at a steady rate a batch is what the fill brings, so latency does not change.
        StageDefinition("linking", (LEADS_ACCEPTED, LINK_DECISIONS), LINKING_CHANGELOG, _linking, global_state=True,
                        batch_size=2000, batch_gap=ON_PATH_GAP),
        StageDefinition("handover", (CASES, HANDOVER_DECISIONS, HANDOVER_CARRYOVER), HANDOVER_CHANGELOG, _handover,
                        clock_may_run_fast=True, batch_fill=OFF_PATH_FILL),
        StageDefinition("routing", (CASES, HANDOVER), ROUTING_CHANGELOG, _routing, batch_gap=ON_PATH_GAP),
        # 失信企业黑名单: proposals on final decisions, agencies' listings, expiry (issue #18)
        StageDefinition("blacklist", (CASES, HANDOVER, BLACKLIST_DECISIONS), BLACKLIST_CHANGELOG, _blacklist,
                        global_state=True, batch_fill=OFF_PATH_FILL),
        # Suggested links from weak signals, off linking's hot path (issue #16): last, so that the stages before
        # keep their metrics ports
        StageDefinition("suggesting", (CASES, LINK_DECISIONS), SUGGESTING_CHANGELOG, _suggesting, global_state=True,
                        batch_fill=OFF_PATH_FILL),
        # 信息公开: anonymised closed cases for the public feed (issue #18)
        StageDefinition("disclosure", (CASES, HANDOVER, BLACKLIST), DISCLOSURE_CHANGELOG, _disclosure,
                        global_state=True, in_pipeline=False),
    )
}
#: The stages `--stage all` supervises and the demo runs, in pipeline order.
PIPELINE: dict[str, StageDefinition] = {name: d for name, d in STAGES.items() if d.in_pipeline}


def stage(name: str) -> StageDefinition:
    try:
        return STAGES[name]
    except KeyError:
        raise UnknownStage(f"no stage {name!r}: the stages are {', '.join(STAGES)}") from None
