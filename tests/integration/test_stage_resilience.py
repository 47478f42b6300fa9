"""No record can stop a stage: a step that raises, an output too big to produce, an output to a topic the bus lacks.

The stage runs in process with a small step whose behaviour each record chooses; the good records
around the bad ones must come out exactly once, every bad one as a dead letter with its reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition

from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.limits import MAX_RECORD_BYTES
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.stage import ExactlyOnceStage, StageConfig, record_of
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import LEADS_REJECTED, TopicSpec, load_declarations
from tests.kafka_helpers import read_all
from tests.processes import wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
IN, OUT, CHANGELOG = "test.resilience.in", "test.resilience.out", "test.resilience.state"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("resilience-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, [*load_declarations(), TopicSpec(IN, 2, 1, 1, {}),
                                            TopicSpec(OUT, 1, 1, 1, {}), TopicSpec(CHANGELOG, 2, 1, 1, {})])
        yield kc


class ChoosyStep:
    """Echoes each record, counting it in state; a record's value says how to misbehave."""

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        value = record.value or b""
        if value.startswith(b"raise"):
            raise RuntimeError("the step cannot handle this record")
        if value.startswith(b"huge"):
            return Result([Output(OUT, record.key, b"h" * (MAX_RECORD_BYTES + 1))])
        if value.startswith(b"nowhere"):
            return Result([Output(OUT, record.key, value), Output("test.resilience.missing", None, value)])
        seen = int(state.get(value) or b"0")
        return Result([Output(OUT, record.key, value)], {value: str(seen + 1).encode()})


def test_bad_records_become_dead_letters_and_the_good_ones_pass_exactly_once(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    config = StageConfig(name="resilience", kafka=KafkaSettings(bootstrap), topics=[IN], changelog_topic=CHANGELOG,
                         state_dir=tmp_path / "state", group_id="resilience", retry_budget=3.0)
    stage = ExactlyOnceStage(config, ChoosyStep())
    runner = threading.Thread(target=stage.run, kwargs={"max_seconds": 240}, daemon=True)
    runner.start()
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
        good = [f"good-{i}".encode() for i in range(300)]
        bad = {b"raise-1": "STAGE_ERROR", b"huge-1": "OUTPUT_OVERSIZED", b"nowhere-1": "OUTPUT_TOPIC_UNKNOWN",
               b"raise-2": "STAGE_ERROR"}
        for i, value in enumerate(good):
            producer.produce(IN, key=value, value=value)
            if i % 75 == 10:
                bad_value = list(bad)[i // 75]
                producer.produce(IN, key=bad_value, value=bad_value)
        assert producer.flush(30) == 0

        def done() -> bool:
            return len(read_all(bootstrap, OUT)) >= len(good) and sum(
                1 for m in read_all(bootstrap, LEADS_REJECTED) if bytes(decode(CATALOG, m.value())[1]["original"])
                in bad) >= len(bad)

        wait_until(done, 180, "every good record out and every bad one dead-lettered")
        time.sleep(1)
        assert runner.is_alive(), "the stage stopped on a bad record"
        outputs = Counter(m.value() for m in read_all(bootstrap, OUT))
        assert set(outputs) == set(good), "no output of a bad record escaped, not even the first of two"
        assert max(outputs.values()) == 1, "a good record came out twice after a failed batch was retried"
        letters = {bytes(d["original"]): d for d in (decode(CATALOG, m.value())[1]
                                                     for m in read_all(bootstrap, LEADS_REJECTED))}
        for value, reason in bad.items():
            assert letters[value]["reason"] == reason, value
            assert letters[value]["source"]["topic"] == IN
        # The state writes of the retried good records were committed once, not once per attempt.
        assert stage.state.get(0, b"good-10") in (b"1", None) and stage.state.get(1, b"good-10") in (b"1", None)
        assert {stage.state.get(p, b"good-10") for p in (0, 1)} == {b"1", None}
    finally:
        stage.stop()
        runner.join(30)


class SlowCountingStep:
    """Echoes each record after a pause, counting it in state: a batch takes longer than the commit interval."""

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        time.sleep(0.01)
        value = record.value or b""
        seen = int(state.get(value) or b"0")
        return Result([Output(OUT2, record.key, value)], {value: str(seen + 1).encode()})


IN2, OUT2, CHANGELOG2 = "test.resilience.in2", "test.resilience.out2", "test.resilience.state2"


def test_a_batch_slower_than_the_commit_interval_commits_in_several_transactions_exactly_once(
        cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    apply_topics(bootstrap, [TopicSpec(IN2, 2, 1, 1, {}), TopicSpec(OUT2, 1, 1, 1, {}),
                             TopicSpec(CHANGELOG2, 2, 1, 1, {})])
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    values = [f"slow-{i}".encode() for i in range(400)]
    for value in values:
        producer.produce(IN2, key=value, value=value)
    assert producer.flush(30) == 0  # all there before the stage starts: its first batches are full
    config = StageConfig(name="resilience-slow", kafka=KafkaSettings(bootstrap), topics=[IN2],
                         changelog_topic=CHANGELOG2, state_dir=tmp_path / "state", group_id="resilience-slow",
                         batch_size=400, commit_interval=0.5)
    stage = ExactlyOnceStage(config, SlowCountingStep())
    committed: list[int] = []
    report_committed = stage.report.committed

    def counting(records: list[Record], dead_letters: int, started: float, phases: Sequence[float] = (),
                 at: float | None = None) -> None:
        committed.append(len(records))  # the records of each committed transaction
        report_committed(records, dead_letters, started, phases, at)

    stage.report.committed = counting  # type: ignore[method-assign]
    runner = threading.Thread(target=stage.run, kwargs={"max_seconds": 240}, daemon=True)
    runner.start()
    try:
        wait_until(lambda: {m.value() for m in read_all(bootstrap, OUT2)} >= set(values), 180,
                   "every slow record out")
        outputs = Counter(m.value() for m in read_all(bootstrap, OUT2))
        assert set(outputs) == set(values) and max(outputs.values()) == 1
        # At 10 ms or more per record, 0.5 s of work is at most 51 records per transaction, whatever the batch.
        assert max(committed) <= 51 and sum(committed) == len(values), committed
        assert all(stage.state.get(p, b"slow-7") in (b"1", None) for p in (0, 1))
    finally:
        stage.stop()
        runner.join(30)


IN3, OUT3, CHANGELOG3 = "test.resilience.in3", "test.resilience.out3", "test.resilience.state3"


class EchoStep:
    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        return Result([Output(OUT3, record.key, record.value or b"")], {record.value or b"": b"1"})


def test_a_batch_cut_at_the_commit_interval_commits_only_the_offsets_of_what_it_took(cluster, tmp_path: Path) -> None:
    """A transaction cut short at the commit interval commits its own records' offsets, and a partition none of
    whose records it took stays where it stood: nothing untaken is committed, in turn or pipelined."""
    bootstrap = cluster.bootstrap_servers
    apply_topics(bootstrap, [TopicSpec(IN3, 2, 1, 1, {}), TopicSpec(OUT3, 1, 1, 1, {}),
                             TopicSpec(CHANGELOG3, 2, 1, 1, {})])
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for partition in (0, 1):
        for i in range(60):
            producer.produce(IN3, key=b"k", value=f"cut-{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0
    config = StageConfig(name="resilience-ahead", kafka=KafkaSettings(bootstrap), topics=[IN3],
                         changelog_topic=CHANGELOG3, state_dir=tmp_path / "state", group_id="resilience-ahead",
                         commit_interval=0.0)
    stage = ExactlyOnceStage(config, EchoStep())
    consumer, txn = stage._clients()
    consumer.subscribe([IN3], on_assign=stage._on_assign)
    messages = []
    deadline = time.monotonic() + 60
    while len(messages) < 120 and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(120, 0.5) if not m.error()]
    records = sorted((record_of(m) for m in messages), key=lambda r: (r.partition, r.offset))
    assert len(records) == 120

    def committed() -> dict[int, int]:
        return {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(IN3, 0), TopicPartition(IN3, 1)], timeout=20)}

    try:
        # Commit interval 0: the step takes the first record only; none of partition 1's.
        assert stage._transact(consumer, txn, records, datetime.now(UTC)) == 1
        assert committed()[0] == 1 and committed()[1] < 0
        # Pipelined: record 2 stepped while record 1's transaction commits, each its own offsets.
        stage._process(consumer, txn, records[1:3])
        stage._settle(consumer, txn, [])
        assert committed()[0] == 3 and committed()[1] < 0
        stage.config.commit_interval = 60.0  # the rest in one transaction
        stage._process(consumer, txn, records[3:])
        stage._settle(consumer, txn, [])
        assert committed() == {0: 60, 1: 60}
        assert Counter(m.value() for m in read_all(bootstrap, OUT3)) == Counter(r.value for r in records)
    finally:
        stage.state.close()
        consumer.close()
