"""Where a replay's records come from: a Kafka topic by time, or the archive by hour — the same records either way.

A period [from, to) selects, in each partition, the records from the first whose timestamp is at or after
`from` up to (not including) the first whose timestamp is at or after `to`: Kafka's `offsets_for_times`
finds exactly those offsets, and the archive (files per topic, partition and hour, offsets in order) is
walked by the same rule, so a record with a late timestamp between the two belongs to the period on both
sides. Partitions are read one after the other in (topic, partition) order, each in offset order, so a
replay's output is the same from either source. The archive's side is `leadbus.audit.archive_source`.

The Kafka reader `assign()`s partitions with explicit offsets under a group id of its own (a fresh
`leadbus-audit-replay-<uuid>`) and never commits: no processor's group, nor any other, is touched.
It reads `read_committed`, what the stages and the archive read: an aborted transaction is not part of
the record. The end of each partition is fixed when the replay starts.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from leadbus.audit.native_records import Build, Odd, maker, reader
from leadbus.audit.soon import soon
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import SchemaCatalog
from leadbus.clients import KafkaSettings

if TYPE_CHECKING:
    from leadbus.audit._rdkafka import Reader

log = logging.getLogger("leadbus.audit")
_HOUR_MS = 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SourceError(RuntimeError):
    """The source cannot be read: an unknown topic, an unreachable bus, access refused, no archive there."""


@dataclass(frozen=True)
class PartitionSpan:
    topic: str
    partition: int
    start: int  # first offset to read
    end: int  # one past the last (fixed when the replay starts)

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def _usable(msg: Any, topic: object, partition: object) -> bool:
    """A record, not an event: the end of a partition or a transient error (logged) is passed over; a refusal
    of access stops the replay."""
    error = msg.error()
    if error is None:
        return True
    if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED):
        raise SourceError(f"{topic}: access refused ({error.str()})")
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("replay: consumer error on %s[%s]: %s", topic, partition, error)
    return False


def check_patterns(patterns: Iterable[str]) -> None:
    """SourceError for a `^regex` topic pattern that does not compile (a usage error, not a traceback)."""
    for pattern in patterns:
        if pattern.startswith("^"):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SourceError(f"--topic {pattern!r} is not a regular expression: {exc}") from None


def _matches(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("^"):
            if re.match(pattern, name):
                return True
        elif name == pattern:
            return True
    return False


# -- Kafka -------------------------------------------------------------------------------------------


#: How long librdkafka waits before fetching a partition again once its prefetch queue is full (above
#: queued.max.messages.kbytes, 64 MB). Its default, 1 s, is not cut short when the queue drains: a partition larger than
#: the queue (`leadbus.leads.accepted`: 100,000 records are ~190 MB) was read in bursts of ~34,000 records with the
#: reader idle for most of each second (the bench's replay without --verify: 6.3 µs CPU per record, 43,645 records/s).
#: The queue stays bounded either way; at 10 ms the fetcher looks again a hundred times a second.
_QUEUE_FULL_BACKOFF_MS = 10

#: A replay's consumers connect to every broker at once (librdkafka's default connects to one only when it needs it).
#: Since librdkafka 2.10 the bootstrap connection is dropped as soon as the first metadata names the brokers, which
#: fails a request in flight on it; with sparse connections the retry then waited for the next connection attempt,
#: `reconnect.backoff.ms` / 2 later: the plan's first `list_topics` took 55 ms of a replay's ~0.1 s of fixed costs,
#: 2-6 ms with all brokers connected. A replay reads every partition, so it talks to every broker anyway.
_CONNECT_ALL = {"enable.sparse.connections": False}

#: The most a fetch brings of one partition: librdkafka's default, 1 MB. A replay's first records come only once its
#: first fetch response is whole: at 10 MB a partition (50 MB over six) the first record of leadbus.cases came 66-116 ms
#: after the assign, of leadbus.leads.accepted 64-177 ms; at 1 MB 21-57 ms and 4-5 ms, and the whole read took no
#: longer (the prefetch queue, refilled every fetch.queue.backoff.ms, keeps ahead of the checks either way).
_PARTITION_FETCH_BYTES = 1_048_576

#: ListOffsets' timestamps for a partition's first offset and its end (`OFFSET_BEGINNING`, `OFFSET_END`)
_EARLIEST, _LATEST = -2, -1


def bounded_prefetch(kbytes: int) -> dict[str, int]:
    """librdkafka's prefetch held to about `kbytes` (its queue, and fetches of half that, at most the replay's own
    `_PARTITION_FETCH_BYTES`): for a reader that stops inside a partition, where the default (a 64 MB queue, 10 MB
    fetches) went on fetching and decompressing records it then dropped — the head of `leadbus.leads.accepted` cut in
    two (`leadbus.audit.replay._run_cut`) fetched ~35,000 records past its end of 50,000 — and whose fresh buffers cost
    page faults as they were filled. Fetches of half an 8 MB queue (4 MB) held each half's first record back: 15-54 ms
    after the assign against 4-7 at 1 MB, and 50,000 records fetched (nothing checked) took 220-237 ms against
    129-139."""
    return {"queued.max.messages.kbytes": kbytes,
            "max.partition.fetch.bytes": min(_PARTITION_FETCH_BYTES, kbytes * 512)}


class KafkaSource:
    """Records of `topics` (names, or `^regex`) in [start_ms, end_ms) from the bus.

    `batch` is the most records one `consume` hands over. Smaller batches cost less CPU per record read (measured
    against the bench's broker, records already fetched: 500 instead of 2,000 took about a third off the read path's
    CPU over the raw read's, 100-250 as little): a batch's messages, values and headers are made at once and the
    checks then walk them, and a few hundred stay in the processor's caches where thousands do not.
    """

    def __init__(self, settings: KafkaSettings, topics: list[str], catalog: SchemaCatalog,
                 start_ms: int | None = None, end_ms: int | None = None, *, timeout: float = 30.0,
                 batch: int = 500, prefetch_kbytes: int | None = None) -> None:
        self.settings, self.topics, self.catalog = settings, topics, catalog
        self.start_ms, self.end_ms, self.timeout, self.batch = start_ms, end_ms, timeout, batch
        self.prefetch_kbytes = prefetch_kbytes  # None: librdkafka's default queue (see `bounded_prefetch`)
        self.native = True  # records made in C where the extension is built (`leadbus.audit.native_records`)
        #: taken from librdkafka's messages themselves, not confluent-kafka's Messages (`native_records.reader`)
        self.from_librdkafka = True
        self.direct = False  # whether the last interleaved read did so (the consumer known, the extension built)
        self.group = f"leadbus-audit-replay-{uuid.uuid4()}"
        self._consumer: Consumer | None = None
        self.spans: list[PartitionSpan] = []
        self.log_starts: dict[tuple[str, int], int] = {}  # each partition's first offset (its low watermark)
        self.log_ends: dict[tuple[str, int], int] = {}  # and its end as read_committed reads (the last stable offset)

    def describe(self) -> str:
        return f"kafka {self.settings.bootstrap}"

    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self.settings.consumer(self.group, **{
                "enable.auto.offset.store": False, "fetch.max.bytes": 52_428_800, "fetch.wait.max.ms": 10,
                "max.partition.fetch.bytes": _PARTITION_FETCH_BYTES, "queued.min.messages": 200_000,
                "fetch.queue.backoff.ms": _QUEUE_FULL_BACKOFF_MS, **_CONNECT_ALL,
                **(bounded_prefetch(self.prefetch_kbytes) if self.prefetch_kbytes else {})})
        return self._consumer

    def plan(self) -> list[PartitionSpan]:
        consumer = self.consumer()
        try:
            meta = consumer.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise SourceError(f"cannot reach the bus at {self.settings.bootstrap}: {exc}") from exc
        names = sorted(t for t in meta.topics if _matches(t, self.topics))
        missing = [t for t in self.topics if not t.startswith("^") and t not in meta.topics]
        if missing:
            raise SourceError(f"no such topic: {', '.join(missing)}")
        if not names:
            raise SourceError(f"no topic matches {', '.join(self.topics)}")
        for name in names:
            error = meta.topics[name].error
            if error is not None and error.code() != KafkaError.NO_ERROR:
                raise SourceError(f"{name}: {error.str()}")
        parts = [TopicPartition(t, p) for t in names for p in sorted(meta.topics[t].partitions)]
        spans = []
        marks = self._watermarks(parts)
        starts = self._first_record_at(self._offsets_at(parts, self.start_ms), self.start_ms, marks)
        ends = self._first_record_at(self._offsets_at(parts, self.end_ms), self.end_ms, marks)
        for tp in parts:
            low, high = marks[(tp.topic, tp.partition)]
            self.log_starts[(tp.topic, tp.partition)] = low
            self.log_ends[(tp.topic, tp.partition)] = high
            start = starts.get((tp.topic, tp.partition), low)
            end = ends.get((tp.topic, tp.partition), high)
            start = high if start < 0 else max(start, low)
            end = high if end < 0 else min(end, high)
            spans.append(PartitionSpan(tp.topic, tp.partition, start, max(start, end)))
        self.spans = spans
        return spans

    def _watermarks(self, parts: list[TopicPartition]) -> dict[tuple[str, int], tuple[int, int]]:
        """Each partition's first offset and its end as this reader reads (`get_watermark_offsets`: the last stable
        offset, read_committed), for all partitions in one request each: `get_watermark_offsets` asks the broker the
        same (ListOffsets, EARLIEST and LATEST) one partition at a time, a round trip each (150 partitions of the
        intake topics: 0.16-0.21 s of a replay's plan). Where the batch does not answer for every partition, each is
        asked alone, as before."""
        consumer = self.consumer()
        marks: dict[tuple[str, int], tuple[int, int]] = {}
        try:
            low = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, _EARLIEST) for tp in parts],
                                             timeout=self.timeout)
            high = {(tp.topic, tp.partition): tp for tp in consumer.offsets_for_times(
                [TopicPartition(tp.topic, tp.partition, _LATEST) for tp in parts], timeout=self.timeout)}
            for first in low:
                end = high.get((first.topic, first.partition))
                if end is None or first.error is not None or end.error is not None or first.offset < 0 \
                        or end.offset < first.offset:
                    break
                marks[(first.topic, first.partition)] = (first.offset, end.offset)
        except KafkaException:
            pass
        for tp in parts:
            if (tp.topic, tp.partition) not in marks:
                try:
                    marks[(tp.topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=self.timeout,
                                                                                    cached=False)
                except KafkaException as exc:
                    raise SourceError(f"{tp.topic}[{tp.partition}]: {exc}") from exc
        return marks

    def first_records(self, parts: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, Any]]:
        """The first record still on each partition: (offset, headers), read by a consumer of its own (a partition
        whose log has no record, or that gives none within the timeout, is left out)."""
        if not parts:
            return {}
        consumer = self.settings.consumer(f"{self.group}-first", **{"enable.partition.eof": True, **_CONNECT_ALL})
        found: dict[tuple[str, int], tuple[int, Any]] = {}
        try:
            for topic, partition in parts:
                consumer.assign([TopicPartition(topic, partition, self.log_starts.get((topic, partition), 0))])
                deadline = time.monotonic() + self.timeout
                while (topic, partition) not in found and time.monotonic() < deadline:
                    msg = consumer.poll(0.5)
                    if msg is None:
                        continue
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            break
                        continue
                    found[(topic, partition)] = (cast(int, msg.offset()), tuple(msg.headers() or ()))
                consumer.unassign()
        except KafkaException as exc:
            raise SourceError(f"cannot read the first records of {parts}: {exc}") from exc
        finally:
            consumer.close()
        return found

    def _offsets_at(self, parts: list[TopicPartition], ms: int | None) -> dict[tuple[str, int], int]:
        if ms is None or not parts:
            return {}
        try:
            found = self.consumer().offsets_for_times([TopicPartition(tp.topic, tp.partition, ms) for tp in parts],
                                                      timeout=self.timeout)
        except KafkaException as exc:
            raise SourceError(f"offsets_for_times failed: {exc}") from exc
        return {(tp.topic, tp.partition): tp.offset for tp in found}

    def _first_record_at(self, found: dict[tuple[str, int], int], ms: int | None,
                         marks: dict[tuple[str, int], tuple[int, int]]) -> dict[tuple[str, int], int]:
        """Each partition's first *record* at or after `found` whose timestamp is at or after `ms`: the archive's rule.

        `offsets_for_times` counts every entry of the log, and a transaction's commit marker (or an aborted record)
        carries its own time: stamped at the commit, later than the records written after it by a producer
        whose CreateTimes were taken before the commit (the stages pipeline their transactions). The offset
        found may then be such a marker, the records after it older than `ms`: read from there, the period would
        take records the archive (which never sees a marker) leaves out, or end before records it takes. So the
        records from the offset found on are read, read_committed, up to the first at or after `ms`; usually the
        first one read is it. A partition with none by its end (fixed by the plan) ends there."""
        if ms is None:
            return found
        settled = dict(found)
        pending = {key: offset for key, offset in found.items()
                   if key in marks and max(offset, marks[key][0]) < marks[key][1]}
        if not pending:
            return settled
        consumer = self.settings.consumer(f"{self.group}-bound", **{
            "enable.partition.eof": True, **_CONNECT_ALL, **bounded_prefetch(64)})
        try:
            consumer.assign([TopicPartition(t, p, max(offset, marks[(t, p)][0])) for (t, p), offset in pending.items()])
            deadline = time.monotonic() + self.timeout
            while pending:
                if time.monotonic() > deadline:
                    raise SourceError(f"no answer within {self.timeout} s reading where the period bounds "
                                      f"{', '.join(f'{t}[{p}]' for t, p in sorted(pending))}")
                for msg in consumer.consume(500, 0.2):
                    key = (msg.topic() or "", msg.partition() or 0)
                    if key not in pending:
                        continue
                    end = marks[key][1]
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            settled[key] = end
                            del pending[key]
                        continue
                    offset = cast(int, msg.offset())
                    if offset >= end or msg.timestamp()[1] >= ms:
                        settled[key] = min(offset, end)
                        del pending[key]
                        consumer.pause([TopicPartition(*key)])
        except KafkaException as exc:
            raise SourceError(f"cannot read where the period bounds the partitions: {exc}") from exc
        finally:
            consumer.close()
        return settled

    def records(self, interleave: bool = False) -> Iterator[ReplayRecord]:
        """Partition after partition in (topic, partition) order; with `interleave`, every partition at once.

        Each partition's records come in offset order either way; interleaved, partitions mix as the broker
        sends them, which saves one fetch start per partition (an export needs the fixed order, checks do not).
        Interleaved, the records come batch after batch from a C iterator (`chain`): no generator resumes per record.
        """
        if interleave:
            return chain.from_iterable(self._interleaved())
        return self._in_order()

    def _in_order(self) -> Iterator[ReplayRecord]:
        if not self.spans:
            self.plan()
        consumer = self.consumer()
        catalog = self.catalog
        try:
            for span in self.spans:
                if span.size == 0:
                    continue
                tp = TopicPartition(span.topic, span.partition, span.start)
                consumer.assign([tp])
                last = span.start - 1
                opens_log = span.start == 0  # read from the log's start: its first visible record opens it
                idle_since = time.monotonic()
                while True:
                    # Ask for no more than can be left, and wait briefly once records flow: a partition ends
                    # on a transaction marker as often as on a record, and only its position tells.
                    wanted = max(1, min(self.batch, span.end - 1 - last))
                    batch = consumer.consume(wanted, 0.05)
                    for msg in batch:
                        if not _usable(msg, span.topic, span.partition):
                            continue
                        offset = cast(int, msg.offset())
                        if offset >= span.end:
                            continue
                        last = offset
                        headers: Any = msg.headers() or ()
                        record = ReplayRecord(span.topic, span.partition, offset, msg.timestamp()[1], msg.key(),
                                              msg.value(), tuple(headers), catalog)
                        if opens_log:
                            record.opens_log, opens_log = True, False
                        yield record
                    if last >= span.end - 1:
                        break
                    if batch:
                        idle_since = time.monotonic()
                    position = consumer.position([TopicPartition(span.topic, span.partition)])[0].offset
                    if position >= span.end:
                        break
                    if time.monotonic() - idle_since > self.timeout:
                        raise SourceError(f"{span.topic}[{span.partition}] stopped at offset {position} before "
                                          f"{span.end} (an open transaction, or the partition is unavailable)")
                consumer.unassign()
        finally:
            self.close()

    def first_headers(self, span: PartitionSpan, timeout: float = 5.0) -> list[str] | None:
        """The header names of the first record of `span` (one fetch), or None when none comes within `timeout`.

        Read by a consumer of its own that fetches little: through the reader's (10 MB fetches, a 64 MB prefetch) the
        peek at `leadbus.leads.accepted` fetched and decompressed 10 MB for one record's headers (22 ms CPU, 25 ms,
        and up to 20 ms more to close the consumer holding them, before the replay could fork)."""
        if span.size == 0:
            return None
        consumer = self.settings.consumer(f"{self.group}-peek", **{**_CONNECT_ALL, **bounded_prefetch(64)})
        consumer.assign([TopicPartition(span.topic, span.partition, span.start)])
        try:
            until = time.monotonic() + timeout
            while time.monotonic() < until:
                for msg in consumer.consume(1, 0.1):
                    if _usable(msg, span.topic, span.partition) and cast(int, msg.offset()) < span.end:
                        headers: Any = msg.headers() or ()
                        return [str(header[0]) for header in headers]
                position = consumer.position([TopicPartition(span.topic, span.partition)])[0].offset
                if position >= span.end:
                    return None
            return None
        finally:
            consumer.close()

    def first_headers_soon(self, spans: list[PartitionSpan]) -> Callable[[], list[list[str] | None] | None]:
        """`first_headers` of each span, asked for on a thread of its own now (`soon`); the function returned waits for
        them (None where the peek failed: a peek that fails tells nothing). The caller waits before it forks (no Kafka
        client may live across a fork)."""
        return soon(lambda: [self.first_headers(span) for span in spans], lambda: None, "leadbus-replay-peek")

    def _interleaved(self) -> Iterator[Iterable[ReplayRecord]]:
        """The records of each consumed batch (read to its end before the next is consumed)."""
        if not self.spans:
            self.plan()
        spans = [span for span in self.spans if span.size > 0]
        if not spans:
            return
        consumer = self.consumer()
        catalog = self.catalog
        ends = {(span.topic, span.partition): span.end for span in spans}
        open_ = dict(ends)  # the partitions still read, and their ends: one lookup per record
        fresh = {(span.topic, span.partition) for span in spans if span.start == 0}  # read from the log's start
        build = maker() if self.native else None
        direct = reader(consumer, self.settings.common().get("logger")) if self.native and self.from_librdkafka \
            else None
        self.direct = direct is not None
        try:
            consumer.assign([TopicPartition(span.topic, span.partition, span.start) for span in spans])
            idle_since = time.monotonic()
            while open_:
                done: list[tuple[str, int]] = []
                if direct is not None:
                    taken = direct.consume(self.batch, 50)
                    yield from _read(direct, open_, fresh, done, catalog)
                else:
                    batch = consumer.consume(self.batch, 0.05)
                    taken = len(batch)
                    yield from _made(build, batch, open_, fresh, done, catalog)
                if done:
                    consumer.pause([TopicPartition(t, p) for t, p in done])
                if taken:
                    idle_since = time.monotonic()
                    continue
                # A partition may end on a transaction marker: only its position tells.
                for tp in consumer.position([TopicPartition(t, p) for t, p in open_]):
                    if tp.offset >= ends[(tp.topic, tp.partition)]:
                        open_.pop((tp.topic, tp.partition), None)
                if open_ and time.monotonic() - idle_since > self.timeout:
                    stuck = ", ".join(f"{t}[{p}]" for t, p in sorted(open_))
                    raise SourceError(f"{stuck} stopped before their end (an open transaction, or unavailable)")
            consumer.unassign()
        finally:
            if direct is not None:
                direct.close()  # its messages and queue go back before the consumer is destroyed (librdkafka's rule)
            self.close()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # nothing was committed: the group never existed for the processors
            self._consumer = None


def _made(build: Build | None, batch: list[Any], open_: dict[tuple[str, int], int], fresh: set[tuple[str, int]],
          done: list[tuple[str, int]], catalog: SchemaCatalog) -> Iterator[Iterable[ReplayRecord]]:
    """The records of a consumed batch (as `_taken` makes them), made in C by `build` where it can: lists of them, and
    `_taken`'s for each message it leaves to the Python path (an error, a message of an unusual shape)."""
    if build is None:
        yield _taken(batch, open_, fresh, done, catalog)
        return
    at, size = 0, len(batch)
    while at < size:
        made, at = build(batch, at, open_, fresh, done, catalog)
        yield made
        if at < size:
            yield _taken(batch[at:at + 1], open_, fresh, done, catalog)
            at += 1


def _read(direct: Reader, open_: dict[tuple[str, int], int], fresh: set[tuple[str, int]],
          done: list[tuple[str, int]], catalog: SchemaCatalog) -> Iterator[Iterable[ReplayRecord]]:
    """The records of the messages `direct` took (as `_taken` makes them): lists of them made in C, and `_taken`'s for
    each message the reader leaves to the Python path."""
    while True:
        made, odd = direct.build(open_, fresh, done, catalog)
        yield made
        if odd is None:
            return
        yield _taken([Odd(odd)], open_, fresh, done, catalog)


def _taken(batch: list[Any], open_: dict[tuple[str, int], int], fresh: set[tuple[str, int]],
           done: list[tuple[str, int]], catalog: SchemaCatalog) -> Iterator[ReplayRecord]:
    """The records of a consumed batch, in its order, of the partitions still read (`open_`, with their ends): a
    partition whose end is met is closed (out of `open_`, into `done`), and the first record of a partition read from
    its log's start (in `fresh`) opens it. The reference `leadbus.audit.native_records` is held to."""
    for msg in batch:
        if msg.error() is not None:
            _usable(msg, msg.topic(), msg.partition())  # raises on a refusal, else passed over
            continue
        where: tuple[str, int] = (msg.topic(), msg.partition())
        end = open_.get(where)
        if end is None:
            continue
        offset: int = msg.offset()  # (no cast(): a call, per record)
        if offset >= end - 1:
            del open_[where]
            done.append(where)
            if offset >= end:
                continue
        headers: Any = msg.headers()
        record = ReplayRecord(where[0], where[1], offset, msg.timestamp()[1], msg.key(), msg.value(),
                              tuple(headers) if headers else (), catalog)
        if fresh and where in fresh:
            record.opens_log = True
            fresh.discard(where)
        yield record
