"""How a stage retries a batch whose transaction failed: in halves, not one transaction per record.

The transaction itself (`_transact`) is replaced by a stand-in that fails on given records or once: what is
under test is how many transactions the retry policy spends and that every record is handled once. The real
transactions, dead letters included, are tested against a broker in tests/integration/test_stage_resilience.py.
The pipelined path (each transaction's commit on the finisher's thread while the next batch is stepped) is run
with a stand-in producer whose commits fail: the batch stepped meanwhile must be dropped with the failed one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from leadbus.clients import KafkaSettings
from leadbus.processors.core.records import Record, Result, StateView
from leadbus.processors.stage import ExactlyOnceStage, StageConfig


class _Nothing:
    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        return Result([])


class _Transactions:
    """Stands in for `_transact`: fails a transaction holding a poison record, and the first `transient` ones."""

    def __init__(self, poison: set[int], transient: int = 0) -> None:
        self.poison, self.transient = poison, transient
        self.attempts: list[int] = []  # sizes of the transactions begun
        self.committed: list[int] = []  # offsets committed, in order

    def __call__(self, consumer: Any, producer: Any, records: list[Record], now: datetime) -> int:
        self.attempts.append(len(records))
        if self.transient:
            self.transient -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "2 message(s) timed out"))
        if any(r.offset in self.poison for r in records):
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        self.committed += [r.offset for r in records]
        return len(records)


def _stage(tmp_path: Path, transactions: _Transactions, alone: list[int]) -> ExactlyOnceStage:
    config = StageConfig(name="t", kafka=KafkaSettings("127.0.0.1:1"), topics=["in"], changelog_topic="",
                         state_dir=tmp_path, group_id="g", lag_interval=0)
    stage = ExactlyOnceStage(config, _Nothing())
    stage._transact = transactions  # type: ignore[method-assign]
    stage._abort = lambda producer: None  # type: ignore[method-assign]

    def process_alone(consumer: Any, producer: Any, records: list[Record], i: int, now: datetime) -> None:
        alone.append(records[i].offset)

    stage._process_alone = process_alone  # type: ignore[method-assign]
    return stage


def _records(n: int) -> list[Record]:
    return [Record("in", 0, offset, b"k", b"v") for offset in range(n)]


def test_a_transient_failure_costs_two_transactions_not_one_per_record(tmp_path: Path) -> None:
    transactions, alone = _Transactions(set(), transient=1), []
    stage = _stage(tmp_path, transactions, alone)
    stage._process_sync(None, None, _records(376))  # type: ignore[arg-type]
    assert transactions.attempts == [376, 188, 188]
    assert transactions.committed == list(range(376)) and alone == []
    assert stage.processed == 376


@pytest.mark.parametrize("poison", [{0}, {255}, {499}, {3, 400}, set(range(0, 500, 97))])
def test_a_poison_record_is_found_in_few_transactions_and_handled_alone(tmp_path: Path, poison: set[int]) -> None:
    transactions, alone = _Transactions(poison), []
    stage = _stage(tmp_path, transactions, alone)
    stage._process_sync(None, None, _records(500))  # type: ignore[arg-type]
    assert sorted(alone) == sorted(poison)
    assert sorted(transactions.committed + alone) == list(range(500)), "every record handled exactly once"
    assert transactions.committed == sorted(transactions.committed), "in order"
    assert len(transactions.attempts) <= len(poison) * 2 * 9 + 2  # ~2·log2(500) per poison record, not 500
    assert stage.processed == 500


class _Counting:
    """A step that counts each record it processes through `Result.counted`, and how often it ran."""

    def __init__(self) -> None:
        self.ran = 0
        self.counts: list[int] = []

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        self.ran += 1
        return Result([], counted=[lambda: self.counts.append(record.offset)])


class _Producer:
    """Stands in for the transactional producer: the first ``fail`` commits time out."""

    def __init__(self, fail: int) -> None:
        self.fail = fail

    def begin_transaction(self) -> None: ...

    def produce(self, *args: Any, **kwargs: Any) -> None: ...

    def send_offsets_to_transaction(self, *args: Any) -> None: ...

    def abort_transaction(self, *args: Any) -> None: ...

    def commit_transaction(self, *args: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out"))


class _Consumer:
    def consumer_group_metadata(self) -> object:
        return object()


def test_counts_are_taken_once_per_record_after_its_commit_never_for_an_aborted_try(tmp_path: Path) -> None:
    """A batch whose commit failed is processed again (in halves): what it counted (a metric) must not be counted
    twice, as an outside check found (`leadbus_intake_duplicates_total` 15 for 14 redeliveries)."""
    config = StageConfig(name="t", kafka=KafkaSettings("127.0.0.1:1"), topics=["in"], changelog_topic="",
                         state_dir=tmp_path, group_id="g", lag_interval=0)
    step = _Counting()
    stage = ExactlyOnceStage(config, step)
    consumer, producer = _Consumer(), _Producer(fail=2)
    stage._process(consumer, producer, _records(40))  # type: ignore[arg-type]
    stage._settle(consumer, producer, [])  # type: ignore[arg-type]
    assert step.ran > 40, "the failed tries processed records again"
    assert sorted(step.counts) == list(range(40)), "each counted once, after the commit that kept it"


class _Failing:
    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        raise ValueError(f"cannot handle {record.offset}")


def test_a_dead_letter_is_counted_once_after_its_commit_never_for_an_aborted_try(tmp_path: Path) -> None:
    from leadbus.processors import metrics

    config = StageConfig(name="t-dead", kafka=KafkaSettings("127.0.0.1:1"), topics=["in"], changelog_topic="",
                         state_dir=tmp_path, group_id="g", lag_interval=0)
    stage = ExactlyOnceStage(config, _Failing())
    counter = metrics.STAGE_DEAD_LETTERS.labels("t-dead", "STAGE_ERROR")
    before = counter._value.get()
    consumer, producer = _Consumer(), _Producer(fail=2)
    stage._process(consumer, producer, _records(30))  # type: ignore[arg-type]
    stage._settle(consumer, producer, [])  # type: ignore[arg-type]
    assert counter._value.get() - before == 30, "one dead letter counted per record, none for the aborted tries"
