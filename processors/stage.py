"""An exactly-once consume → process → produce stage on confluent-kafka transactions.

Per batch: begin a transaction; the handler turns each record into outputs and state writes;
outputs, state changelog records and the consumed offsets are committed atomically
(`send_offsets_to_transaction` with the consumer's group metadata, KIP-447). A crash anywhere
aborts the open transaction: the records are processed again from the committed offsets
against the committed state, so every output appears exactly once to read_committed readers.
Rebalance callbacks run inside `consume()`, never while a transaction is open.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from leadbus.processors.state import StateStore

log = logging.getLogger("leadbus.processors.stage")


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class Result:
    outputs: list[Output] = field(default_factory=list)
    state: dict[bytes, bytes | None] = field(default_factory=dict)


class StateView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class Handler(Protocol):
    def handle(self, msg: Message, state: StateView, now: datetime) -> Result: ...


class Ticking(Protocol):
    """A handler that also acts on the passing of time (deadline scans), per owned state partition."""

    def tick(self, state: RangeView, now: datetime) -> Result: ...


class RangeView(StateView, Protocol):
    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]: ...


class _PartitionState:
    def __init__(self, store: StateStore, partition: int) -> None:
        self.store, self.partition = store, partition

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.store.get(self.partition, key)
        return value

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = self.store.range(self.partition, start, stop)
        return found


@dataclass
class StageConfig:
    name: str
    bootstrap: str
    topics: list[str]
    changelog_topic: str
    state_dir: Path
    group_id: str
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{int(time.time() * 1000)}")
    # Where a record's state lives: by default with its source partition; a global state
    # (linking: any lead may join any case) keeps everything in partition 0.
    global_state: bool = False
    tick_interval: float = 1.0
    batch_size: int = 500
    batch_timeout: float = 0.2
    client_config: dict[str, Any] = field(default_factory=dict)


class ExactlyOnceStage:
    def __init__(self, config: StageConfig, handler: Handler, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.handler = handler
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state = StateStore(config.state_dir / config.name, config.changelog_topic)
        self._running = False
        self.processed = 0
        self._consumer: Consumer | None = None
        self._owned: set[int] = set()
        self._producer: Producer | None = None

    # -- clients ---------------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        base = {"bootstrap.servers": self.config.bootstrap, "logger": logging.getLogger("leadbus.kafka.client"),
                **self.config.client_config}
        consumer = Consumer({
            **base,
            "group.id": self.config.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 5000,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
        })
        producer = Producer({
            **base,
            "transactional.id": f"leadbus-{self.config.name}-{self.config.worker_id}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "transaction.timeout.ms": 10000,
        })
        producer.init_transactions(30)
        return consumer, producer

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned = set()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        wanted = {0} if self.config.global_state else {tp.partition for tp in partitions}
        restored = self.state.restore(self.config.bootstrap, wanted) if self.config.changelog_topic else 0
        self._owned = set(wanted)
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
        started = time.monotonic()
        last_tick = 0.0
        try:
            while self._running and (max_seconds is None or time.monotonic() - started < max_seconds):
                batch = consumer.consume(self.config.batch_size, self.config.batch_timeout)
                records = [m for m in batch if not m.error()]
                for m in batch:
                    if m.error():
                        log.warning("consumer error: %s", m.error())
                if records:
                    self._process(consumer, producer, records)
                if hasattr(self.handler, "tick") and time.monotonic() - last_tick >= self.config.tick_interval:
                    last_tick = time.monotonic()
                    self._tick(producer)
        finally:
            consumer.close()
            producer.flush(10)
            self.state.close()

    def _process(self, consumer: Consumer, producer: Producer, records: list[Message]) -> None:
        now = self.clock()
        producer.begin_transaction()
        try:
            next_offsets: dict[tuple[str, int], int] = {}
            for msg in records:
                topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
                state_partition = 0 if self.config.global_state else partition
                result = self.handler.handle(msg, _PartitionState(self.state, state_partition), now)
                for out in result.outputs:
                    self._produce(producer, out.topic, out.key, out.value, list(out.headers))
                for key, value in result.state.items():
                    self.state.put(state_partition, key, value)
                    self._produce(producer, self.config.changelog_topic, key, value, [], partition=state_partition)
                next_offsets[(topic, partition)] = offset + 1
            offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        except Exception:
            self.state.abort()
            self._abort_and_rewind(consumer, producer, records)
            raise
        self.state.commit()
        self.processed += len(records)

    def _tick(self, producer: Producer) -> None:
        """Time-driven outputs (deadline breaches), in their own transaction with their state writes."""
        now = self.clock()
        ticking: Ticking = self.handler  # type: ignore[assignment]
        results = [(p, ticking.tick(_PartitionState(self.state, p), now)) for p in sorted(self._owned)]
        if not any(r.outputs or r.state for _, r in results):
            return
        producer.begin_transaction()
        try:
            for partition, result in results:
                for out in result.outputs:
                    self._produce(producer, out.topic, out.key, out.value, list(out.headers))
                for key, value in result.state.items():
                    self.state.put(partition, key, value)
                    self._produce(producer, self.config.changelog_topic, key, value, [], partition=partition)
            producer.commit_transaction(60)
        except Exception:
            self.state.abort()
            producer.abort_transaction(30)
            raise
        self.state.commit()

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

    @staticmethod
    def _abort_and_rewind(consumer: Consumer, producer: Producer, records: list[Message]) -> None:
        try:
            producer.abort_transaction(30)
        except KafkaException as exc:
            log.error("abort failed: %s", exc)
        first: dict[tuple[str, int], int] = {}
        for msg in records:
            first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
        for (topic, partition), offset in first.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # partition revoked meanwhile: its new owner starts from the commit
                log.warning("rewind of %s[%d] failed: %s", topic, partition, exc)
