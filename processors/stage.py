"""An exactly-once consume → process → produce stage on confluent-kafka transactions.

Per batch: the step turns each record into outputs and state writes, in memory; then a transaction
begins, and the outputs, state changelog records and the consumed offsets are committed atomically
(`send_offsets_to_transaction` with the consumer's group metadata, KIP-447). A crash anywhere
aborts the open transaction: the records are processed again from the committed offsets
against the committed state, so every output appears exactly once to read_committed readers.

The end of a transaction (its offsets, its commit: waiting on the coordinators) runs on a helper thread
(`TransactionFinisher`) while the next batch is consumed and stepped over the state with its writes; that
batch's transaction begins once the commit is known, and a failed commit drops the step's work with the
failed transaction's state. Rebalance callbacks run inside `consume()` and first wait for that commit: no
transaction is open or committing when partitions change hands.

No record can stop a stage. A step that raises, or an output the producer cannot take, turns
that record into a dead letter; a batch whose transaction fails is retried in halves down to
single records, and a record that fails alone is dead-lettered in a transaction of its own; an output to a
topic the bus does not have makes its record a dead letter before anything is produced (processors/output_topics.py).
A producer that fails fatally (a broker refusing an abort with INVALID_TXN_STATE) is replaced by a new one with the
same transactional id, which fences it; the stage goes on from the committed offsets and state, and a record that keeps
failing producers is found by halving and dead-lettered (leadbus.processors.core.poison). Only when not even that
works (the bus itself is unreachable), or when the producer was fenced (another worker has its id), does the stage
stop, with the records rewound for its successor.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from leadbus.avro import encode, packaged_catalog
from leadbus.batches import next_batch
from leadbus.limits import MAX_RECORD_BYTES
from leadbus.processors import metrics
from leadbus.processors.core.dead_letters import dead_letter_record
from leadbus.processors.core.poison import ALONE_FAILURES, Suspects
from leadbus.processors.core.records import Output, RangeView, Record, Result, StateView
from leadbus.processors.finisher import TransactionFinisher
from leadbus.processors.output_topics import OutputTopics
from leadbus.processors.producer_errors import MAX_RECOVERIES, caused_by_record, fatal, replaceable
from leadbus.processors.report import StageReport
from leadbus.processors.stage_config import CO_PARTITIONING_ASSIGNORS, AssignmentError, StageConfig, default_worker_id
from leadbus.processors.state import StateStore
from leadbus.stage_seals import StageSealer, Unsealed, partition_for, stage_signer

log = logging.getLogger("leadbus.processors.stage")

# The settings live in processors/stage_config.py; they are imported from here as they always were.
__all__ = ["CO_PARTITIONING_ASSIGNORS", "AssignmentError", "ExactlyOnceStage", "Handler", "Output", "RangeView",
           "Record", "Result", "StageConfig", "StateView", "Ticking", "default_worker_id", "record_of"]


class Handler(Protocol):
    def handle(self, record: Record, state: StateView, now: datetime) -> Result: ...


class Ticking(Protocol):
    """A handler that also acts on the passing of time (deadline scans), per owned state partition."""

    def tick(self, state: RangeView, now: datetime) -> Result: ...


class Preparing(Protocol):
    """A handler that looks at a transaction's records together before handling each (intake: one signature check
    per chained run of a lane). It must not change what `handle` decides for any record, nor raise."""

    def prepare(self, records: list[Record]) -> None: ...


def record_of(msg: Message) -> Record:
    _, timestamp = msg.timestamp()
    headers: Any = msg.headers() or ()  # consumed headers are a list of (name, bytes | None)
    return Record(msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value(),
                  tuple(headers), timestamp)


class _PartitionState:
    def __init__(self, store: StateStore, partition: int) -> None:
        self.store, self.partition = store, partition

    @property
    def generation(self) -> int:
        """The store's generation: values read from this view stay the state while it stays the same."""
        return self.store.generation

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.store.get(self.partition, key)
        return value

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = self.store.range(self.partition, start, stop)
        return found


class _NoState:
    """Records of topics that own no state (intake's input before repartitioning) get this view."""

    def get(self, key: bytes) -> bytes | None:
        raise RuntimeError("this record's topic owns no state: repartition it first")

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        raise RuntimeError("this record's topic owns no state: repartition it first")


_NO_STATE = _NoState()


#: The collector's thresholds while a stage runs (Python's default is (700, 10, 10)). A step's work allocates many
#: short-lived containers (decoded records, models, case summaries) while the worker holds long-lived ones (the
#: linking handler's mirror of its state: up to 200,000 keys with their parsed values); at the default, collections
#: of the older generations kept walking that mirror, ~30 µs per lead on linking (issue #16). The records a stage
#: handles make no reference cycles that must be freed promptly: reference counting frees them.
GC_THRESHOLDS = (50_000, 20, 100)


@dataclass
class _Prepared:
    """One transaction's work, done before the transaction begins: the records its step took, what they made (their
    state writes pend in the store), and when each of its phases ended (time.monotonic())."""

    records: list[Record]
    outputs: list[Output]
    counted: list[Callable[[], object]]
    dead: int
    now: datetime
    began: float
    stepped: float
    opened: float = 0.0
    produced: float = 0.0


@dataclass(frozen=True)
class _End:
    """When a transaction's offsets were sent and its commit returned (time.monotonic()), and its commit's wall time."""

    offered: float
    committed: float
    at: float


def _next_offsets(records: list[Record]) -> dict[tuple[str, int], int]:
    """The offsets to commit with `records`: per (topic, partition), the one after its last record."""
    return {(r.topic, r.partition): r.offset + 1 for r in records}


def _partitions(offsets: dict[tuple[str, int], int]) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in offsets.items()]


def _end(producer: Producer, offsets: list[TopicPartition], group: object) -> _End:
    """A transaction's last calls: its offsets sent into it, then its commit (the producer's queue flushed first)."""
    producer.send_offsets_to_transaction(offsets, group, 30)
    offered = time.monotonic()
    producer.commit_transaction(60)
    return _End(offered, time.monotonic(), time.time())


class ExactlyOnceStage:
    def __init__(self, config: StageConfig, handler: Handler, clock: Callable[[], datetime] | None = None) -> None:
        config.check_assignment()
        self.config = config
        self.handler = handler
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state = StateStore(config.state_dir / config.name, config.changelog_topic, config.kafka)
        self._running = False
        self.processed = 0
        self._consumer: Consumer | None = None
        self._owned: set[int] = set()
        self._producer: Producer | None = None
        self._dead_schema = packaged_catalog().latest("cn.leadbus.LeadRejected")
        # One view per state partition for the stage's life: a step may keep what it read through it in memory
        # (see `StateStore.generation`), so a new transaction hands it the same view, not a new one.
        self._views: dict[int, _PartitionState] = {}
        self.report = StageReport(config.name, config.kafka, config.group_id, lag_interval=config.lag_interval)
        self.sealer: StageSealer | None = None
        if config.seal_key is not None:
            # A new chain per start: the last link of the previous run is not known here (leadbus.stage_seals).
            self.sealer = StageSealer(stage_signer(config.name), config.seal_key, secrets.token_hex(8))
            log.info("%s seals its outputs as %s, key %s, chain %s", config.name, self.sealer.signer,
                     self.sealer.key_id, self.sealer.chain)
        else:
            log.warning("%s has no seal key (%s): its outputs go UNSEALED; replays cannot vouch for them",
                        config.name, "$LEADBUS_STAGE_KEYS/LEADBUS-" + config.name + ".key")
        self._partitions: dict[str, int] = {}
        # Ends each batch's transaction (its offsets, its commit) while the next batch is stepped.
        self._finisher: TransactionFinisher[_Prepared, _End] = TransactionFinisher(config.name)
        self._topics = OutputTopics(self._topic_partitions, trusted=(config.dead_letter_topic,))
        self._known_topics = self._topics.known
        # The records of the transaction last begun (what a producer failing fatally failed in), and those suspected.
        self._open_records: list[Record] = []
        self._suspects = Suspects()
        self._recoveries = 0

    # -- clients ---------------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        consumer = self.config.kafka.consumer(
            self.config.group_id,
            **{"topic.metadata.refresh.interval.ms": 5000, "session.timeout.ms": 10000,
               "heartbeat.interval.ms": 1000, "partition.assignment.strategy": self.config.assignment},
        )
        return consumer, self._new_producer()

    def _new_producer(self) -> Producer:
        """The worker's transactional producer, its transactions initialised: one with the same id before it is fenced,
        and a transaction it left open is aborted."""
        # murmur2 like the Java clients: the stage's own repartition records land where Kafka Streams would put them.
        producer = self.config.kafka.transactional_producer(
            f"leadbus-{self.config.name}-{self.config.worker_id}", partitioner="murmur2_random")
        producer.init_transactions(30)
        return producer

    def _topic_partitions(self, topic: str) -> int | None:
        """How many partitions the bus says `topic` has; None: it has no such topic."""
        if self._producer is None:
            raise RuntimeError("no producer to ask")
        metadata = self._producer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or (metadata.error is not None and metadata.error.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)):
            return None
        if metadata.error is not None or not metadata.partitions:
            raise KafkaException(metadata.error or KafkaError(KafkaError._UNKNOWN_PARTITION, f"{topic}: no partitions"))
        return len(metadata.partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The transaction still committing ends before its partitions go; failed, its records are left to whoever
        # owns them next (from the committed offsets; a partition this worker keeps is rewound).
        self._settle(consumer, self._producer, [], redo=False)
        self._owned = set()
        self.report.assigned(())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle(consumer, self._producer, [], redo=False)  # an incremental assignment: none revoked before it
        if self.config.global_state:
            wanted = {0}
        else:
            wanted = {tp.partition for tp in partitions
                      if self.config.state_topic is None or tp.topic == self.config.state_topic}
        restored = self.state.restore(wanted) if self.config.changelog_topic else 0
        self._owned = set(wanted)
        self.report.assigned((tp.topic, tp.partition) for tp in partitions)
        log.info("%s assigned %d partitions; restored %d state records", self.config.name, len(partitions), restored)

    # -- loop ------------------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        self._running = False

    def run(self, *, max_seconds: float | None = None, install_signals: bool = False) -> None:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        consumer, producer = self._clients()
        self._consumer, self._producer = consumer, producer
        consumer.subscribe(self.config.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._running = True
        self.report.started()
        thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        started = time.monotonic()
        last_tick = 0.0
        try:
            while self._running and (max_seconds is None or time.monotonic() - started < max_seconds):
                try:
                    polled = time.monotonic()
                    batch = next_batch(consumer, self.config.batch_size, self.config.batch_timeout,
                                       self.config.batch_fill, self.config.batch_gap)
                    if batch:
                        self.report.consumed(time.monotonic() - polled)
                    records = []
                    for m in batch:
                        if m.error():
                            log.warning("consumer error: %s", m.error())
                        else:
                            records.append(record_of(m))
                    if records:
                        self._process(consumer, producer, records)
                    elif self._finisher.busy:
                        self._settle(consumer, producer, [])  # idle: nothing to step meanwhile
                    if hasattr(self.handler, "tick") and time.monotonic() - last_tick >= self.config.tick_interval:
                        last_tick = time.monotonic()
                        self._tick(consumer, producer)
                except KafkaException as exc:
                    if not replaceable(exc):
                        raise
                    producer = self._recover(consumer, producer, exc)
            try:
                self._settle(consumer, producer, [])  # stopped: the last transaction committed, or its records redone
            except KafkaException as exc:
                if not replaceable(exc):
                    raise
                log.error("%s: stopping, its producer failed fatally (%s); the records from the committed offsets are "
                          "left to its successor", self.config.name, exc)
        finally:
            gc.set_threshold(*thresholds)
            self.report.stopped()
            # Each closes even when one before it raises (a producer in a fatal state): the store's lock is released
            # for the restarted stage that comes next. The transaction still committing ends first.
            with contextlib.ExitStack() as closing:
                closing.callback(self.state.close)
                closing.callback(producer.flush, 10)
                closing.callback(consumer.close)
                closing.callback(self._drain, producer)

    def _drain(self, producer: Producer) -> None:
        """Stopping on an error: the transaction still committing ends; committed, its writes are kept locally;
        failed, it is aborted and its records are left to the successor (from the committed offsets)."""
        try:
            self._finish_ended(producer)
        except KafkaException as exc:  # a producer in a fatal state: its transactional id's next user aborts it
            log.error("%s: the last transaction could not be aborted (%s)", self.config.name, exc)
        finally:
            self._finisher.close()

    def _finish_ended(self, producer: Producer | None) -> None:
        """The transaction still committing, if one is, ended: committed, its writes kept; failed, aborted (with
        `producer`; without, a producer that failed fatally, only here: whoever takes over its transactional id
        aborts it on the broker)."""
        ended = self._finisher.wait()
        if ended is not None and ended.failure is None and ended.result is not None:
            self._committed(ended.work, ended.result, 0.0)
            self.processed += len(ended.work.records)
        elif ended is not None and producer is not None:
            self._abort(producer)
        elif ended is not None:
            self.state.abort()
            if self.sealer is not None:
                self.sealer.abort()

    def _recover(self, consumer: Consumer, failed: Producer, cause: KafkaException) -> Producer:
        """The producer failed fatally: a new one takes over its transactional id (the broker fences the old one and
        aborts what it left open), and the stage goes on from the committed offsets and the committed state, the
        records of the failed transaction suspected (leadbus.processors.core.poison)."""
        self._recoveries += 1
        if self._recoveries > MAX_RECOVERIES:
            log.error("%s: %d producers failed fatally without a commit in between; stopping", self.config.name,
                      MAX_RECOVERIES)
            raise cause
        metrics.STAGE_PRODUCER_RESTARTS.labels(self.config.name).inc()
        log.error("%s: its producer failed fatally (%s) in a transaction of %d records; a new producer goes on from "
                  "the committed offsets", self.config.name, cause, len(self._open_records))
        self._suspects.failed(self._open_records, str(cause))
        self._open_records = []
        self._finish_ended(None)
        self.state.abort()
        if self.sealer is not None:
            self.sealer.abort()
        with contextlib.suppress(Exception):
            failed.purge()  # its queued records are not sent: the new producer's id fences them anyway
        producer = self._producer = self._new_producer()
        assignment = consumer.assignment()
        for tp in consumer.committed(assignment, timeout=30) if assignment else ():
            # No offset committed yet: from the beginning, as `auto.offset.reset` (earliest) would start.
            self._seek(consumer, tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
        # The state caught up with its changelog: a commit whose outcome the failed producer did not learn may have
        # committed after all (its offsets then committed with it, above).
        self._on_assign(consumer, assignment)
        return producer

    # -- batches, exactly once -------------------------------------------------------------

    def _process(self, consumer: Consumer, producer: Producer, records: list[Record]) -> None:
        """Records through transactions, each stepped while the one before it commits on the finisher's thread; the
        last is left committing (`_settle` ends it).

        A transaction's step runs before its transaction begins, over the state with the writes of the one committing
        (`StateStore.hand_over`); its outputs are produced (and sealed, after the chains' committed heads) only once
        that commit is known. If it failed, the state goes back to what committed, so the step's work is dropped and
        done again after the failed transaction's records are redone in turn (`_process_some`).
        """
        while records:  # a batch slower than the commit interval commits in several transactions
            now = self.clock()
            prepared = self._prepare(records, now)
            if not self._settle(consumer, producer, records):
                continue
            try:
                self._open(producer, prepared)
            except Exception as exc:
                self._abort(producer)
                if fatal(exc):
                    self._rewind(consumer, records)
                    raise
                self._failed(len(prepared.records), exc)
                records = records[self._retry(consumer, producer, prepared.records, now):]
                continue
            offsets = _partitions(_next_offsets(prepared.records))
            self._finisher.start(prepared, functools.partial(_end, producer, offsets,
                                                             consumer.consumer_group_metadata()))
            records = records[len(prepared.records):]

    def _settle(self, consumer: Consumer, producer: Producer | None, ahead: list[Record], redo: bool = True) -> bool:
        """Wait for the transaction committing, if one is, and finish it here: committed, its state writes made durable
        locally and its counts taken; failed, aborted, and with it what was stepped over its state meanwhile. Its
        records are then redone in turn (halved, alone), or without `redo` (a rebalance) rewound for whoever owns
        them next. False when it failed. `ahead`: the records consumed after it, rewound with it when it is fatal.
        """
        waiting = time.monotonic()
        ended = self._finisher.wait()
        if ended is None:
            return True
        prepared = ended.work
        if ended.failure is None and ended.result is not None:
            self._committed(prepared, ended.result, time.monotonic() - waiting)
            self.processed += len(prepared.records)
            return True
        failure = ended.failure or RuntimeError("the transaction ended without an outcome")
        assert producer is not None, "a transaction was handed over without its producer"
        self._abort(producer)
        if fatal(failure) or not redo:
            self._rewind(consumer, prepared.records + ahead)
            if fatal(failure):
                raise failure
            self.report.batch_failed()
            log.warning("%s: a batch of %d failed as the group rebalanced (%s); left to the partitions' next owner",
                        self.config.name, len(prepared.records), failure)
            return False
        self._failed(len(prepared.records), failure)
        try:
            rest = prepared.records
            self._process_sync(consumer, producer, rest[self._retry(consumer, producer, rest, prepared.now):])
        except Exception as exc:
            if fatal(exc):  # the records redone were rewound as they failed; those consumed after them too
                redone = {(r.topic, r.partition) for r in prepared.records}
                self._rewind(consumer, [r for r in ahead if (r.topic, r.partition) not in redone])
            raise
        return False

    def _failed(self, size: int, exc: BaseException) -> None:
        self.report.batch_failed()
        if size > 1:
            log.warning("%s: a batch of %d failed (%s); retrying it in halves", self.config.name, size, exc)

    def _process_sync(self, consumer: Consumer, producer: Producer, records: list[Record]) -> None:
        """Records through transactions each committed before the next begins: how failed ones are redone."""
        while records:
            records = records[self._process_some(consumer, producer, records):]

    def _process_some(self, consumer: Consumer, producer: Producer, records: list[Record]) -> int:
        """Process a prefix of `records` exactly once, in a transaction committed here; how many."""
        now = self.clock()
        try:
            taken = self._transact(consumer, producer, records, now)
            self.processed += taken
            return taken
        except Exception as exc:
            self._abort(producer)
            if fatal(exc):
                self._rewind(consumer, records)
                raise
            self._failed(len(records), exc)
        return self._retry(consumer, producer, records, now)

    def _retry(self, consumer: Consumer, producer: Producer, records: list[Record], now: datetime) -> int:
        """After `records` failed in one transaction (aborted): its first half processed, how many that was.

        A batch whose transaction fails is halved, not taken apart: its first half is processed (halved again if
        it fails too) and the caller goes on with the rest as a batch of its own. A failure of the bus (a produce
        request timing out on a starved broker) costs one more transaction or two, not one per record (routing
        retried 376 records one by one after a timeout and fell 15,000 behind, bench/latency.py); a record that
        fails alone is found in about 2·log2(n) transactions and goes to `_process_alone`.
        """
        if len(records) == 1:
            self._process_alone(consumer, producer, records, 0, now)
            self.processed += 1
            return 1
        first = records[:len(records) // 2]
        self._process_sync(consumer, producer, first)
        return len(first)

    def _process_alone(self, consumer: Consumer, producer: Producer, records: list[Record], i: int,
                       now: datetime) -> None:
        """One record in a transaction of its own; retried while the failure may be the bus's, not the record's."""
        deadline = time.monotonic() + self.config.retry_budget
        delay = 0.5
        while True:
            try:
                self._transact(consumer, producer, [records[i]], now)
                return
            except Exception as exc:
                self._abort(producer)
                if fatal(exc):
                    self._rewind(consumer, records[i:])
                    raise
                if caused_by_record(exc) or time.monotonic() >= deadline:
                    self._dead_letter_alone(consumer, producer, records, i, exc, now)
                    return
                log.warning("%s: %s[%d]@%d failed (%s); retrying in %.1fs", self.config.name, records[i].topic,
                            records[i].partition, records[i].offset, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _transact(self, consumer: Consumer, producer: Producer, records: list[Record], now: datetime) -> int:
        """Records from the first in one transaction, until the commit interval has passed, committed before it
        returns; how many it took."""
        prepared = self._prepare(records, now)
        self._open(producer, prepared)
        end = _end(producer, _partitions(_next_offsets(prepared.records)), consumer.consumer_group_metadata())
        self._committed(prepared, end, end.committed - prepared.produced)
        return len(prepared.records)

    def _prepare(self, records: list[Record], now: datetime) -> _Prepared:
        """The step over records from the first until the commit interval has passed, into memory: their outputs
        collected, their state writes pending in the store (over those of a transaction still committing).

        The interval bounds the records of one transaction: a starved machine could take longer than the
        transaction timeout over a full batch, and a failure redoes fewer records.
        """
        began = time.monotonic()
        interval = self.config.commit_interval
        counted: list[Callable[[], object]] = []
        outputs: list[Output] = []
        dead = 0
        dead_topic, state = self.config.dead_letter_topic, self.state
        views = self._views
        suspects = self._suspects
        careful = bool(suspects)
        if careful:  # the producer failed fatally in a transaction of some of these: fewer records
            records = records[:suspects.allowed(records)]
        prepare = getattr(self.handler, "prepare", None)
        if prepare is not None:
            prepare(records)
        for taken, record in enumerate(records):
            if taken and time.monotonic() - began > interval:
                records = records[:taken]
                break
            partition = self._state_partition(record)
            view: StateView
            if partition is None:
                view = _NO_STATE
            else:
                view = views.get(partition) or views.setdefault(partition, _PartitionState(state, partition))
            if careful and suspects.poisoned(record):
                result = self._dead_result(record, "STAGE_FAILED", f"alone in its transaction, it made the producer "
                                           f"fail fatally {ALONE_FAILURES} times: {suspects.cause}", now)
            else:
                result = self._step(record, view, now)
            if result.counted:
                counted += result.counted
            if result.outputs:
                outputs += result.outputs
                for out in result.outputs:
                    if out.topic == dead_topic:
                        dead += 1
            if partition is not None:
                for key, value in result.state.items():
                    state.put(partition, key, value)
        return _Prepared(records, outputs, counted, dead, now, began, time.monotonic())

    def _open(self, producer: Producer, prepared: _Prepared) -> None:
        """Begin the prepared transaction and produce into it what its step made: its outputs (sealed after the
        chains' committed heads), then one changelog record per key it changed, its last value (a key several
        records wrote is restored to the same value from one record as from all); its state writes handed over."""
        prepared.opened = time.monotonic()
        self._open_records = prepared.records
        producer.begin_transaction()
        produce = producer.produce
        sealer, sealed_topic = self.sealer, self.config.sealed_topic
        to_seal: list[Unsealed] = []
        for out in prepared.outputs:
            headers = out.headers if isinstance(out.headers, list) else list(out.headers)
            if sealer is not None and sealed_topic(out.topic):
                to_seal.append((out.topic, self._partition_of(producer, out.topic, out.key, out.partition), out.key,
                                out.value, headers))
                continue
            try:  # the usual case, without the retry loop's call and keyword dict
                # No headers: no `headers=[]` either, which costs librdkafka an empty header list per record (~0.5 µs,
                # intake's accepted leads); the record on the wire is the same, without headers.
                if headers:
                    if out.partition is None:
                        produce(out.topic, out.value, out.key, headers=headers)
                    else:
                        produce(out.topic, out.value, out.key, out.partition, headers=headers)
                elif out.partition is None:
                    produce(out.topic, out.value, out.key)
                else:
                    produce(out.topic, out.value, out.key, out.partition)
            except BufferError:
                self._produce(producer, out.topic, out.key, out.value, headers, out.partition)
        if sealer is not None and to_seal:
            self._produce_sealed(producer, sealer, to_seal)
        changelog = self.config.changelog_topic
        for (partition, key), value in self.state.pending().items():
            try:  # ~11 per lead on linking: without the retry loop's call and keyword dict
                produce(changelog, value, key, partition)
            except BufferError:
                self._produce(producer, changelog, key, value, [], partition=partition)
        self.state.hand_over()
        prepared.produced = time.monotonic()

    def _committed(self, prepared: _Prepared, end: _End, waited: float) -> None:
        """The prepared transaction committed: its chains' heads and its state writes are the committed ones, what its
        records did is counted (never for an aborted try), its phases reported."""
        began = time.monotonic()
        if self.sealer is not None:
            self.sealer.commit()
        self.state.commit()
        self._recoveries = 0
        if self._suspects:
            self._suspects.committed(prepared.records)
        for count in prepared.counted:
            count()
        self.report.committed(prepared.records, prepared.dead, prepared.began, (
            prepared.stepped - prepared.began, prepared.produced - prepared.opened, end.offered - prepared.produced,
            end.committed - end.offered, waited, time.monotonic() - began), at=end.at)

    def _state_partition(self, record: Record) -> int | None:
        if self.config.global_state:
            return 0
        if self.config.state_topic is None or record.topic == self.config.state_topic:
            partition: int = record.partition
            return partition
        return None

    def _step(self, record: Record, view: StateView, now: datetime) -> Result:
        """The handler's result, or a dead letter when it raises or asks for an output no producer can take."""
        try:
            result = self.handler.handle(record, view, now)
        except Exception as exc:
            self.state.invalidate()  # whatever the step kept in memory of this record is not the state
            log.exception("%s: step failed on %s[%d]@%d", self.config.name, record.topic, record.partition,
                          record.offset)
            return self._dead_result(record, "STAGE_ERROR", f"{type(exc).__name__}: {exc}", now)
        too_big = [out for out in result.outputs if out.size > MAX_RECORD_BYTES] if result.outputs else None
        if too_big:
            self.state.invalidate()  # its state writes are dropped with it
            return self._dead_result(
                record, "OUTPUT_OVERSIZED",
                f"an output to {too_big[0].topic} would be {too_big[0].size} bytes; records on the bus are at most "
                f"{MAX_RECORD_BYTES} bytes", now)
        if result.outputs:
            known = self._known_topics
            for out in result.outputs:
                if out.topic not in known and self._topics.missing(out.topic):
                    self.state.invalidate()
                    return self._dead_result(record, "OUTPUT_TOPIC_UNKNOWN",
                                             f"an output goes to {out.topic}, a topic the bus does not have", now)
        return result

    def _dead_result(self, record: Record, reason: str, message: str, now: datetime) -> Result:
        counter = metrics.STAGE_DEAD_LETTERS.labels(self.config.name, reason)
        value = encode(self._dead_schema, dead_letter_record(
            reason=reason, message=message, original=record.value or b"", source=record.source, now=now))
        key = record.key if record.key is not None and len(record.key) <= 1024 else None
        # counted with the batch's other counts, once the transaction that writes the dead letter commits
        return Result([Output(self.config.dead_letter_topic, key, value)], counted=[counter.inc])

    def _dead_letter_alone(self, consumer: Consumer, producer: Producer, records: list[Record], i: int,
                           cause: Exception, now: datetime) -> None:
        """One record failed in a transaction of its own: dead-letter it, or skip it with its coordinates logged."""
        record = records[i]
        dead = self._dead_result(record, "STAGE_FAILED", f"{type(cause).__name__}: {cause}", now)
        offsets = [TopicPartition(record.topic, record.partition, record.offset + 1)]
        for attempt in ("dead letter", "skip"):
            try:
                self._open_records = [record]
                producer.begin_transaction()
                if attempt == "dead letter":
                    for out in dead.outputs:
                        self._produce(producer, out.topic, out.key, out.value, list(out.headers))
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
                producer.commit_transaction(60)
                self.state.abort()
                self._recoveries = 0
                if self._suspects:
                    self._suspects.committed([record])
                self.report.committed([record], len(dead.outputs) if attempt == "dead letter" else 0, time.monotonic())
                if attempt == "dead letter":
                    for count in dead.counted:
                        count()
                if attempt == "skip":
                    metrics.STAGE_SKIPPED.labels(self.config.name).inc()
                    log.error("%s: skipped %s[%d]@%d (%d bytes): not even its dead letter could be written (%s)",
                              self.config.name, record.topic, record.partition, record.offset,
                              len(record.value or b""), cause)
                return
            except Exception as exc:
                self._abort(producer)
                if fatal(exc) or attempt == "skip":
                    # Not even an offset commits: the bus is unreachable. Leave the record to a successor.
                    self._rewind(consumer, records[i:])
                    raise

    def _tick(self, consumer: Consumer, producer: Producer) -> None:
        """Time-driven outputs (deadline breaches), in their own transaction with their state writes, over the state
        the last batch's transaction committed."""
        self._settle(consumer, producer, [])
        now = self.clock()
        began = time.monotonic()
        ticking: Ticking = self.handler  # type: ignore[assignment]
        owned = sorted(self._owned)
        results = [(p, ticking.tick(_PartitionState(self.state, p), now)) for p in owned]
        if not any(r.outputs or r.state for _, r in results):
            self.report.ticked(began, lambda: [_PartitionState(self.state, p) for p in owned], self.handler)
            return
        self._open_records = []
        producer.begin_transaction()
        sealer = self.sealer
        try:
            to_seal: list[Unsealed] = []
            for partition, result in results:
                for out in result.outputs:
                    if sealer is not None and self.config.sealed_topic(out.topic):
                        to_seal.append((out.topic, self._partition_of(producer, out.topic, out.key, out.partition),
                                        out.key, out.value, list(out.headers)))
                    else:
                        self._produce(producer, out.topic, out.key, out.value, list(out.headers))
                for key, value in result.state.items():
                    self.state.put(partition, key, value)
                    self._produce(producer, self.config.changelog_topic, key, value, [], partition=partition)
            if sealer is not None and to_seal:
                self._produce_sealed(producer, sealer, to_seal)
            producer.commit_transaction(60)
            if sealer is not None:
                sealer.commit()
        except Exception:
            self._abort(producer)
            raise
        self.state.commit()
        for _, result in results:
            for count in result.counted:
                count()
        self.report.ticked(began, lambda: [_PartitionState(self.state, p) for p in owned], self.handler)

    @staticmethod
    def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes]], partition: int | None = None) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                return
            except BufferError:
                producer.poll(0.05)

    def _partition_of(self, producer: Producer, topic: str, key: bytes | None, partition: int | None) -> int:
        """The partition an output goes to, chosen before it is sealed (its chain is per partition): the one asked
        for, or where the murmur2_random partitioner puts it (a keyed record: the murmur2 of its key)."""
        if partition is not None:
            return partition
        count = self._partitions.get(topic)
        if count is None:
            metadata = producer.list_topics(topic, timeout=30).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no partitions known for {topic}"))
            count = self._partitions[topic] = len(metadata.partitions)
        if key is None:
            return secrets.randbelow(count)
        return partition_for(key, count)

    def _produce_sealed(self, producer: Producer, sealer: StageSealer, outputs: list[Unsealed]) -> None:
        """A transaction's sealed outputs, written in order once all are known (the last per partition is signed)."""
        produce = producer.produce
        for (topic, partition, key, value, _), headers in zip(outputs, sealer.seal(outputs), strict=True):
            try:
                produce(topic, value, key, partition, headers=headers)  # type: ignore[arg-type]
            except BufferError:
                self._produce(producer, topic, key, value, headers, partition=partition)

    def _abort(self, producer: Producer) -> None:
        self.state.abort()
        if self.sealer is not None:
            self.sealer.abort()  # the chains go on from what committed: read_committed readers never see the rest
        try:
            producer.abort_transaction(30)
        except KafkaException as exc:
            log.error("abort failed: %s", exc)
            if fatal(exc):  # the producer is done with: the stage replaces it (`_recover`)
                raise

    @classmethod
    def _rewind(cls, consumer: Consumer, records: list[Record]) -> None:
        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic, record.partition), record.offset)
        for (topic, partition), offset in first.items():
            cls._seek(consumer, topic, partition, offset)

    @staticmethod
    def _seek(consumer: Consumer, topic: str, partition: int, offset: int) -> None:
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:  # partition revoked meanwhile: its new owner starts from the commit
            log.warning("rewind of %s[%d] failed: %s", topic, partition, exc)
