"""The pipelined end of a stage's transactions: the finisher, and the stage stepping the next batch over the state of
a transaction still committing, which a failed commit must drop with it.

The producer here is a stand-in that records what each transaction held and whether it committed, and fails any
transactional call or produce made while another is running (librdkafka forbids overlapping them). Real broker runs
of the same (a fenced producer, kill -9 mid-commit) are in tests/integration/test_stage_pipelined.py.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from leadbus.clients import KafkaSettings
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.finisher import TransactionFinisher
from leadbus.processors.stage import ExactlyOnceStage, StageConfig

# -- the finisher alone --------------------------------------------------------------------------------------------


def test_the_finisher_ends_one_transaction_at_a_time_on_one_thread_of_its_own() -> None:
    finisher: TransactionFinisher[str, str] = TransactionFinisher("t")
    threads = []

    def end(name: str) -> str:
        threads.append(threading.current_thread())
        time.sleep(0.02)
        return f"{name} committed"

    assert finisher.wait() is None and not finisher.busy
    for name in ("a", "b", "c"):
        finisher.start(name, lambda name=name: end(name))  # type: ignore[misc]
        assert finisher.busy
        with pytest.raises(RuntimeError, match="still ending"):
            finisher.start("other", lambda: "never")
        ended = finisher.wait()
        assert ended is not None and (ended.work, ended.result, ended.failure) == (name, f"{name} committed", None)
        assert not finisher.busy
    assert len({id(t) for t in threads}) == 1 and threads[0] is not threading.current_thread()
    finisher.close()
    finisher.start("d", lambda: "again")  # a closed finisher starts a new thread when handed a transaction
    ended = finisher.wait()
    assert ended is not None and ended.result == "again"
    finisher.close()


def test_the_finisher_hands_a_failure_back_with_its_work() -> None:
    finisher: TransactionFinisher[list[int], None] = TransactionFinisher("t")
    fenced = KafkaException(KafkaError(KafkaError._FENCED, "fenced"))

    def end() -> None:
        raise fenced

    finisher.start([1, 2, 3], end)
    ended = finisher.wait()
    assert ended is not None and ended.work == [1, 2, 3] and ended.failure is fenced and ended.result is None
    assert finisher.wait() is None
    finisher.close()


# -- the stage's pipeline over a stand-in producer -------------------------------------------------------------------

OUT = "out"


class _Counter:
    """Outputs the count of records seen before it and writes it + 1: any record handled twice, or any state write of
    a transaction that did not commit, shows in the committed outputs and the committed state."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        seen = int(state.get(b"n") or b"0")
        return Result([Output(OUT, record.key, str(seen).encode())], {b"n": str(seen + 1).encode()},
                      counted=[lambda: self.counts.append(record.offset)])


class _Producer:
    """A transactional producer's calls, checked: none while another runs, no produce outside an open transaction.
    Its commits take a while (so that overlaps would show) and fail as told: `fail` holds the numbers of the commits
    (from 1) that fail, `fatal` whether with a fencing error."""

    def __init__(self, fail: set[int] = frozenset(), fatal: bool = False) -> None:  # type: ignore[assignment]
        self.fail, self.fatal = set(fail), fatal
        self.busy = threading.Lock()
        self.open: list[tuple[str, bytes]] | None = None
        self.committed: list[list[tuple[str, bytes]]] = []
        self.commits = 0
        self.overlaps = 0

    def _call(self) -> None:
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            raise AssertionError("two producer calls overlapped")

    def begin_transaction(self) -> None:
        self._call()
        try:
            assert self.open is None, "a transaction begun inside another"
            self.open = []
        finally:
            self.busy.release()

    def produce(self, topic: str, value: bytes, key: bytes | None = None, *args: Any, **kwargs: Any) -> None:
        self._call()
        try:
            assert self.open is not None, "produce outside a transaction"
            self.open.append((topic, value))
        finally:
            self.busy.release()

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self._call()
        self.busy.release()

    def commit_transaction(self, *args: Any) -> None:
        self._call()
        try:
            time.sleep(0.05)
            self.commits += 1
            if self.commits in self.fail:
                raise KafkaException(KafkaError(KafkaError._FENCED if self.fatal else KafkaError._TIMED_OUT, "no"))
            assert self.open is not None
            self.committed.append(self.open)
            self.open = None
        finally:
            self.busy.release()

    def abort_transaction(self, *args: Any) -> None:
        self._call()
        self.open = None
        self.busy.release()


class _Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def consumer_group_metadata(self) -> object:
        return object()

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))


def _stage(tmp_path: Path, step: _Counter) -> ExactlyOnceStage:
    config = StageConfig(name="pipelined", kafka=KafkaSettings("127.0.0.1:1"), topics=["in"],
                         changelog_topic="changelog", state_dir=tmp_path, group_id="g", lag_interval=0)
    return ExactlyOnceStage(config, step)


def _batch(first: int, n: int) -> list[Record]:
    return [Record("in", 0, offset, b"k", b"v") for offset in range(first, first + n)]


def _outputs(producer: _Producer) -> list[int]:
    return [int(value) for txn in producer.committed for topic, value in txn if topic == OUT]


def test_batches_are_stepped_while_the_one_before_commits_and_each_commits_once(tmp_path: Path) -> None:
    step = _Counter()
    stage = _stage(tmp_path, step)
    consumer, producer = _Consumer(), _Producer()
    for first in range(0, 40, 10):
        stage._process(consumer, producer, _batch(first, 10))  # type: ignore[arg-type]
        assert stage._finisher.busy, "the batch's transaction is left committing"
    stage._settle(consumer, producer, [])  # type: ignore[arg-type]
    assert producer.overlaps == 0
    assert _outputs(producer) == list(range(40)), "each batch saw the one before's writes, each output once"
    assert step.counts == list(range(40)) and stage.processed == 40
    changelog = [value for txn in producer.committed for topic, value in txn if topic == "changelog"]
    assert changelog == [b"10", b"20", b"30", b"40"], "each transaction's changelog holds its own writes only"
    assert stage.state.get(0, b"n") == b"40"
    stage.state.close()


@pytest.mark.parametrize("failing", [1, 2])
def test_a_failed_commit_drops_the_batch_stepped_meanwhile_and_redoes_both(tmp_path: Path, failing: int) -> None:
    """Commit `failing` fails while the next batch has been stepped over its writes: that work goes with the abort,
    the failed batch is redone in turn (in halves), the next stepped again over the committed state."""
    step = _Counter()
    stage = _stage(tmp_path, step)
    consumer, producer = _Consumer(), _Producer(fail={failing})
    for first in range(0, 30, 10):
        stage._process(consumer, producer, _batch(first, 10))  # type: ignore[arg-type]
    stage._settle(consumer, producer, [])  # type: ignore[arg-type]
    assert producer.overlaps == 0
    assert _outputs(producer) == list(range(30)), "no output of an aborted try, none twice, none lost"
    assert sorted(step.counts) == list(range(30)), "counted once each, after the commit that kept it"
    assert stage.processed == 30
    assert stage.state.get(0, b"n") == b"30"
    assert consumer.seeks == [], "redone in process, nothing rewound"
    stage.state.close()


def test_a_fenced_commit_drops_the_batch_stepped_meanwhile_and_rewinds_both(tmp_path: Path) -> None:
    step = _Counter()
    stage = _stage(tmp_path, step)
    consumer, producer = _Consumer(), _Producer(fail={2}, fatal=True)
    stage._process(consumer, producer, _batch(0, 10))  # type: ignore[arg-type]
    stage._process(consumer, producer, _batch(10, 10))  # type: ignore[arg-type]
    with pytest.raises(KafkaException):
        stage._process(consumer, producer, _batch(20, 10))  # type: ignore[arg-type]
    assert producer.overlaps == 0
    assert _outputs(producer) == list(range(10))
    assert consumer.seeks == [("in", 0, 10)], "rewound to the first record not committed"
    assert stage.state.get(0, b"n") == b"10", "the state is what committed"
    assert sorted(step.counts) == list(range(10))
    stage.state.close()


# -- the state of a transaction committing, apart from the next one's ------------------------------------------------


def _store(tmp_path: Path) -> Any:
    from leadbus.processors.state import StateStore

    return StateStore(tmp_path / "store", "changelog", "127.0.0.1:1")  # never restored: no broker


def test_writes_handed_over_are_read_under_the_next_ones_and_committed_apart(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put(0, b"a", b"1")
    store.put(0, b"b", b"1")
    store.hand_over()  # the first transaction commits...
    store.put(0, b"a", b"2")  # ...while the next one is stepped over its writes
    store.put(0, b"c", b"2")
    store.put(0, b"b", None)
    assert (store.get(0, b"a"), store.get(0, b"b"), store.get(0, b"c")) == (b"2", None, b"2")
    assert store.range(0, b"a", b"z") == [(b"a", b"2"), (b"c", b"2")]
    assert store.pending() == {(0, b"a"): b"2", (0, b"c"): b"2", (0, b"b"): None}, "the next one's changelog"
    with pytest.raises(RuntimeError):
        store.hand_over()  # one transaction committing at a time
    store.commit()  # the first committed: only its writes are durable
    assert {bytes(k): bytes(v) for k, v in store._db(0).items()} == {b"a": b"1", b"b": b"1"}
    assert (store.get(0, b"a"), store.get(0, b"b")) == (b"2", None)
    store.hand_over()
    store.commit()
    assert {bytes(k): bytes(v) for k, v in store._db(0).items()} == {b"a": b"2", b"c": b"2"}
    store.close()


def test_an_abort_of_the_transaction_committing_drops_the_next_ones_writes_too(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put(0, b"a", b"0")
    store.commit()
    store.put(0, b"a", b"1")
    store.hand_over()
    store.put(0, b"a", b"2")
    store.put(0, b"b", b"2")
    generation = store.generation
    store.abort()
    assert store.generation != generation, "what a step kept in memory of the dropped writes is not the state"
    assert (store.get(0, b"a"), store.get(0, b"b"), store.pending()) == (b"0", None, {})
    store.hand_over()  # nothing committing any more
    store.commit()
    assert store.get(0, b"a") == b"0"
    store.close()
