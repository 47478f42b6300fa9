"""A reader that catches up on topics from their beginning, then follows them, in a thread that never dies.

The read models of the edges (gateway receipts, regional dashboards, the platform check, the public warnings
page) all do the same: assign every partition of a few topics (never join a group: the group id is only a name
the principal's ACL grants by prefix), read from where they stopped (the beginning at first), say when they have
reached the ends the topics had when reading began, and retry after any failure (broker gone, metadata timeout)
without losing their place. They differ only in what they do with a record: `handle`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from leadbus.avro import DecodeError
from leadbus.batches import next_batch
from leadbus.clients import KafkaSettings

log = logging.getLogger("leadbus.readers")


class FollowingReader:
    """Subclasses give `topics`, `group_prefix` and `handle`; `start()` runs the reader thread."""

    #: Topics read; `optional_topics` may be missing on an older bus (the reader goes on without them).
    topics: Sequence[str] = ()
    optional_topics: frozenset[str] = frozenset()
    #: The reader's group id is this prefix and a random suffix (assigned, never joined).
    group_prefix = "leadbus-reader-"
    #: What a record that decodes but does not fit may raise: logged and skipped, never fatal.
    unusable_errors: tuple[type[Exception], ...] = (DecodeError, KeyError, TypeError, ValueError)
    metadata_timeout = 30.0
    poll_timeout = 0.5
    retry_after = 2.0

    def __init__(self, kafka: KafkaSettings, name: str) -> None:
        self.kafka = kafka
        self.name = name
        self.stopping = threading.Event()
        self.caught_up = threading.Event()
        self.last_error: str | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.thread: threading.Thread | None = None

    def handle(self, topic: str, value: bytes) -> None:
        raise NotImplementedError

    def unusable(self, topic: str, partition: int, offset: int, exc: Exception) -> None:
        log.error("%s: unusable record %s[%s]@%s: %s", self.name, topic, partition, offset, exc)

    def on_caught_up(self) -> None:
        """Called once, when the topics have been read to the ends they had when reading began."""

    # -- the thread --------------------------------------------------------------------------------

    def start(self) -> None:
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - broker gone, metadata timeout …: retry, never die
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s failed (%s); retrying", self.name, self.last_error)
                self.stopping.wait(self.retry_after)

    def _assignment(self, consumer: object) -> list[TopicPartition]:
        assignment = []
        for topic in self.topics:
            meta = consumer.list_topics(topic, timeout=self.metadata_timeout).topics[topic]  # type: ignore[attr-defined]
            if meta.error is not None and topic in self.optional_topics:
                log.warning("%s: %s: %s; read without it", self.name, topic, meta.error)
                continue
            if meta.error is not None:
                raise RuntimeError(f"{topic}: {meta.error}")
            assignment += [TopicPartition(topic, p, self.positions.get((topic, p), OFFSET_BEGINNING))
                           for p in meta.partitions]
        return assignment

    def _read(self) -> None:
        consumer = self.kafka.consumer(f"{self.group_prefix}{uuid.uuid4()}")
        try:
            assignment = self._assignment(consumer)
            ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=self.metadata_timeout)[1]
                    for tp in assignment}
            consumer.assign(assignment)
            while not self.stopping.is_set():
                for msg in next_batch(consumer, 500, self.poll_timeout):
                    if msg.error():
                        log.warning("%s: consumer error: %s", self.name, msg.error())
                        continue
                    topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
                    try:
                        self.handle(topic, msg.value() or b"")
                    except self.unusable_errors as exc:
                        self.unusable(topic, partition, offset, exc)
                    self.positions[(topic, partition)] = offset + 1
                if not self.caught_up.is_set():
                    positions = consumer.position([TopicPartition(t, p) for t, p in ends])
                    if all(tp.offset >= ends[(tp.topic, tp.partition)] or ends[(tp.topic, tp.partition)] == 0
                           for tp in positions):
                        self.caught_up.set()
                        self.on_caught_up()
        finally:
            consumer.close()
