"""A stage's settings: its topics, state, batching and limits, and the worker's id (processors/stage.py runs them)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from leadbus.clients import KafkaSettings
from leadbus.topics import LEADS_REJECTED

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def default_worker_id() -> str:
    """Host, process and a random part: two workers started in the same millisecond on one host still differ.

    The id names the worker's transactional producer; fencing of a dead predecessor rests on the group
    generation (KIP-447), not on reusing the id, so a fresh one per start loses nothing.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


#: Assignors that give one member the same partition numbers of every input topic with as many partitions:
#: the only ones a stage whose state is keyed by partition number across several inputs may use.
CO_PARTITIONING_ASSIGNORS = frozenset({"range"})


class AssignmentError(ValueError):
    """A partition assignment strategy that could make two workers write one state partition."""


@dataclass
class StageConfig:
    name: str
    kafka: KafkaSettings
    topics: list[str]
    changelog_topic: str
    state_dir: Path
    group_id: str
    worker_id: str = field(default_factory=default_worker_id)
    # Where a record's state lives: by default with its source partition; a global state
    # (linking: any lead may join any case) keeps everything in partition 0; with `state_topic`
    # only that topic's partitions own state (intake: the repartition topic keyed by lead id).
    global_state: bool = False
    state_topic: str | None = None
    tick_interval: float = 1.0
    batch_size: int = 500
    # Idle, how long one poll waits for a record (ticks and stop requests are looked at in between).
    batch_timeout: float = 0.2
    # Once a record is there, how long to wait for more before the batch's transaction (it used to wait up to
    # batch_timeout for a full batch at every hop). 0 takes only what the consumer holds: the least latency,
    # but on a busy machine many small transactions load the broker (bench/latency.py, README).
    batch_fill: float = 0.05
    # With a gap, the fill ends as soon as this long passes without a new record (leadbus/batches.py): a hop takes
    # the burst its upstream's commit made visible and goes on, instead of waiting out the fill. None: the whole fill.
    batch_gap: float | None = None
    # At most this long processing one transaction's records (well within the producer's 10 s transaction
    # timeout); the rest of the batch goes into the next transaction.
    commit_interval: float = 2.0
    dead_letter_topic: str = LEADS_REJECTED
    # How long one record that fails alone is retried before it is taken for the cause and dead-lettered.
    retry_budget: float = 20.0
    # How often the worker reads its consumer lag for Prometheus (0 = never; processors/report.py).
    lag_interval: float = 5.0
    # librdkafka's `partition.assignment.strategy`: the group's members vote for the first they all support.
    assignment: str = "range"
    # The stage's Ed25519 key (`LEADBUS-<name>` on leadbus.publishers): its outputs are sealed (leadbus.stage_seals).
    # None: they go unsealed, and the stage says so when it starts.
    seal_key: Ed25519PrivateKey | None = None

    def sealed_topic(self, topic: str) -> bool:
        """Whether the stage seals its records on `topic`: outputs, not its state, internal or dead-letter topics."""
        return (topic != self.changelog_topic and topic != self.dead_letter_topic
                and not topic.startswith(("leadbus.internal.", "leadbus.state.")))

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    def check_assignment(self) -> None:
        """Refuse an assignor that could hand one state partition to two workers.

        State partition p holds the state of partition p of *every* input that owns state (a case's
        records on `leadbus.cases` and `leadbus.handover` meet in one store because both are keyed by
        case id over as many partitions), and a global state lives in partition 0 of whoever is assigned
        anything. Only the range assignor keeps all of those with one worker. A stage whose state lives
        in the partitions of one topic (`state_topic`: intake's repartition topic) may use any assignor:
        its state partition p is that topic's partition p, which Kafka gives to exactly one member.
        """
        # The group elects any strategy all its members list, so every one listed must be safe.
        unsafe = [a.strip() for a in self.assignment.split(",") if a.strip() not in CO_PARTITIONING_ASSIGNORS]
        if not self.changelog_topic or self.state_topic is not None or not unsafe:
            return
        raise AssignmentError(
            f"stage {self.name}: its state is keyed by partition number across {', '.join(self.topics)}"
            f"{' (one global store)' if self.global_state else ''}; the {unsafe[0]!r} assignor does not keep those "
            f"partitions with one worker: use range")
