"""What a stage worker reports to Prometheus beyond its counters: progress, latency, consumer lag, overdue duties.

`StageReport` is called by `ExactlyOnceStage` at a few points (assignment, each committed batch, each tick) and
keeps a thread of its own that reads the consumer lag of the partitions this worker owns: the group's committed
offsets come from a consumer of the stage's group that never joins it (AdminClient.list_consumer_group_offsets
crashes the process on a group the coordinator does not know yet, librdkafka#5040), the partitions' ends from
ListOffsets with read_committed isolation (the last stable offset). A stage's committed offset is the offset after
its last input record, while the end of a transactionally written input also counts that transaction's commit
marker, so an idle stage reading a transactional topic shows a lag of at most 1 per partition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from leadbus.clients import KafkaSettings
from leadbus.processors import metrics
from leadbus.processors.core.records import RangeView, Record

log = logging.getLogger("leadbus.processors.report")


class Reporting(Protocol):
    """A handler that reports gauges over its state (the handover stage: overdue duties)."""

    def report(self, views: Sequence[RangeView]) -> None: ...


#: The phases of a committed transaction after its consume, in order (metrics.STAGE_PHASE_SECONDS). `offsets` and
#: `commit` run on the stage's finisher thread while the next batch is stepped; `wait` is what the stage's own thread
#: waited for them. The stage's wall per transaction is consume + step + produce + wait + local.
TRANSACTION_PHASES = ("step", "produce", "offsets", "commit", "wait", "local")


class StageReport:
    def __init__(self, stage: str, kafka: KafkaSettings, group_id: str, lag_interval: float = 5.0,
                 state_interval: float = 15.0) -> None:
        self.stage, self.kafka, self.group_id = stage, kafka, group_id
        self._consume = metrics.STAGE_PHASE_SECONDS.labels(stage, "consume")
        self._phases = [metrics.STAGE_PHASE_SECONDS.labels(stage, phase) for phase in TRANSACTION_PHASES]
        self.lag_interval, self.state_interval = lag_interval, state_interval
        self._assigned: tuple[tuple[str, int], ...] = ()
        self._reported: set[tuple[str, int]] = set()
        self._last_state = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- called by the stage -------------------------------------------------------------------

    def started(self) -> None:
        metrics.STAGE_UP.labels(self.stage).set(1)
        metrics.STAGE_ASSIGNED.labels(self.stage).set(0)
        for name in ("STAGE_RECORDS", "STAGE_DEAD_LETTER_OUTPUTS", "STAGE_BATCH_FAILURES"):
            getattr(metrics, name).labels(self.stage)  # the series exist (at 0) from the start
        if self.lag_interval > 0:
            self._thread = threading.Thread(target=self._loop, name=f"{self.stage}-lag", daemon=True)
            self._thread.start()

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        self._assigned = tuple(sorted(set(partitions)))
        metrics.STAGE_ASSIGNED.labels(self.stage).set(len(self._assigned))

    def consumed(self, seconds: float) -> None:
        """A batch of records was taken off the consumer in `seconds` (idle polls that brought none are not counted)."""
        self._consume.inc(seconds)

    def committed(self, records: Sequence[Record], dead_letters: int, started: float,
                  phases: Sequence[float] = (), at: float | None = None) -> None:
        """One batch committed: `started` is its time.monotonic() at begin, `phases` the seconds of each of its
        `TRANSACTION_PHASES` (none: a transaction outside the batch path, not broken down), `at` the time.time() its
        commit returned (None: now)."""
        for counter, seconds in zip(self._phases, phases, strict=False):
            counter.inc(seconds)
        now = time.time() if at is None else at
        metrics.STAGE_RECORDS.labels(self.stage).inc(len(records))
        if dead_letters:
            metrics.STAGE_DEAD_LETTER_OUTPUTS.labels(self.stage).inc(dead_letters)
        metrics.STAGE_TRANSACTION.labels(self.stage).observe(time.monotonic() - started)
        metrics.STAGE_BATCH_RECORDS.labels(self.stage).observe(len(records))
        metrics.STAGE_LAST_COMMIT.labels(self.stage).set(now)
        latency = metrics.STAGE_LATENCY.labels(self.stage)
        for record in records:
            if record.timestamp_ms and record.timestamp_ms > 0:
                latency.observe(max(0.0, now - record.timestamp_ms / 1000))

    def batch_failed(self) -> None:
        metrics.STAGE_BATCH_FAILURES.labels(self.stage).inc()

    def ticked(self, started: float, views: Callable[[], Sequence[RangeView]], handler: object) -> None:
        metrics.STAGE_TICK.labels(self.stage).observe(time.monotonic() - started)
        report = getattr(handler, "report", None)
        if report is not None and time.monotonic() - self._last_state >= self.state_interval:
            self._last_state = time.monotonic()
            report(views())

    def stopped(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        metrics.STAGE_UP.labels(self.stage).set(0)

    # -- consumer lag ----------------------------------------------------------------------------

    def _loop(self) -> None:
        reader = self.kafka.consumer(self.group_id)  # never subscribes, never commits: reads the group's offsets
        admin = self.kafka.admin(**{"socket.timeout.ms": 5000})
        try:
            while not self._stop.wait(self.lag_interval):
                try:
                    self._probe(reader, admin)
                except Exception as exc:  # noqa: BLE001 - a failed probe keeps the last values and tries again
                    metrics.CONSUMER_LAG_PROBE_ERRORS.labels(self.stage).inc()
                    log.debug("%s: lag probe failed: %s", self.stage, exc)
        finally:
            reader.close()

    def _probe(self, reader: Consumer, admin: AdminClient) -> None:
        owned = self._assigned
        for gone in self._reported - set(owned):
            metrics.CONSUMER_LAG.remove(self.stage, gone[0], str(gone[1]))
        self._reported &= set(owned)
        if not owned:
            return
        parts = [TopicPartition(t, p) for t, p in owned]
        committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed(parts, timeout=5)}
        fresh = [tp for tp in parts if committed.get((tp.topic, tp.partition), -1) < 0]
        ends = _offsets(admin, parts, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        starts = _offsets(admin, fresh, OffsetSpec.earliest()) if fresh else {}  # type: ignore[no-untyped-call]
        for key, end in ends.items():
            position = committed.get(key, -1)
            lag = max(0, end - (position if position >= 0 else starts.get(key, 0)))
            metrics.CONSUMER_LAG.labels(self.stage, key[0], str(key[1])).set(lag)
            self._reported.add(key)


def _offsets(admin: AdminClient, parts: list[TopicPartition], spec: OffsetSpec) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in parts},
                                 isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=5)
    return {(tp.topic, tp.partition): future.result(timeout=6).offset for tp, future in futures.items()}

