"""Durable processor state: RocksDB on local disk, backed by a compacted changelog topic.

Each changelog partition has its own RocksDB folder and remembers up to which changelog
offset it has been restored, so a restart only reads what it missed, and a worker whose
local folder is gone rebuilds it from the changelog. Writes reach the changelog inside the
processor's Kafka transaction (see `stage.py`), so the state never runs ahead of the outputs.

The checkpoint also names the changelog it counts in: the cluster id and the topic id. Local
state whose checkpoint names another cluster or another incarnation of the topic, or counts
past the changelog's end (the topic was recreated, the cluster reset), is discarded and rebuilt
from the changelog: stale state is never trusted.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicCollection, TopicPartition
from rocksdict import BlockBasedOptions, Options, Rdict, WriteBatch

from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors import metrics

log = logging.getLogger("leadbus.processors.state")

_CHECKPOINT = b"\x00leadbus:changelog-offset"
_UNSET = object()


def _options() -> Options:
    """RocksDB options of a state partition: the defaults, with bloom filters over whole keys in the memtable and in
    the table files. A step asks for many keys that are not there (the linking stage: ~4 per lead, a new lead's
    ``l:``, its new identifiers' ``i:``); without a filter each walked the memtable's skip list through memory the
    step's own work had evicted from the CPU caches: 6-14 µs per absent key in the worker against 0.8 µs in a tight
    loop (issue #16). Filters are not part of the data: a folder written with or without them opens with either."""
    options = Options()
    options.set_memtable_prefix_bloom_ratio(0.1)
    options.set_memtable_whole_key_filtering(True)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options


@dataclass(frozen=True)
class ChangelogIdentity:
    """Which changelog a local state was built from."""

    cluster_id: str
    topic_id: str


@dataclass(frozen=True)
class Checkpoint:
    identity: ChangelogIdentity | None
    offset: int

    def to_bytes(self) -> bytes:
        ident = self.identity
        return json.dumps({"cluster_id": ident.cluster_id if ident else None,
                           "topic_id": ident.topic_id if ident else None, "offset": self.offset}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Checkpoint:
        text = raw.decode()
        if text.isdigit():  # written before checkpoints named their changelog: trust nothing of it
            return cls(None, int(text))
        doc = json.loads(text)
        ident = ChangelogIdentity(doc["cluster_id"], doc["topic_id"]) if doc.get("cluster_id") else None
        return cls(ident, int(doc["offset"]))


def stale_reason(checkpoint: Checkpoint | None, current: ChangelogIdentity, end: int) -> str | None:
    """Why a local partition cannot be caught up from its checkpoint, or None when it can."""
    if checkpoint is None:
        return None
    if checkpoint.identity is None:
        return "checkpoint names no changelog"
    if checkpoint.identity.cluster_id != current.cluster_id:
        return f"built from cluster {checkpoint.identity.cluster_id}, now {current.cluster_id}"
    if checkpoint.identity.topic_id != current.topic_id:
        return "the changelog topic was recreated"
    if checkpoint.offset > end:
        return f"checkpoint at offset {checkpoint.offset} is past the changelog's end {end}"
    return None


def _high_watermark(consumer: Consumer, tp: TopicPartition, timeout: float) -> int:
    """During a broker failover the partition's leader may be moving: ask again until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=min(10.0, timeout))[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class StateStore:
    """Key → bytes per changelog partition, with a pending overlay for the open transaction.

    A transaction being committed while the next one is stepped (the stage's pipelined end of transaction) has its
    writes handed over (`hand_over`): they stay visible under the next one's pending writes, apart from them, so that
    its commit makes only its own durable and an abort drops both.

    ``generation`` counts the times values already read may have stopped being the state: an aborted transaction
    (its pending writes gone), a restore from the changelog, a partition discarded, a step's writes dropped
    (`invalidate`). A step that keeps what it read in memory between records (the linking stage) trusts it only
    while the generation is the one it read in.
    """

    def __init__(self, directory: Path, changelog_topic: str, kafka: KafkaSettings | str) -> None:
        self.directory = Path(directory)
        self.changelog_topic = changelog_topic
        self.kafka = settings_for(kafka)
        self._dbs: dict[int, Rdict] = {}
        self._pending: dict[tuple[int, bytes], bytes | None] = {}
        self._handed: dict[tuple[int, bytes], bytes | None] | None = None  # the writes of the transaction committing
        self.generation = 0

    def invalidate(self) -> None:
        """Values read so far may no longer be the state (a step's writes were dropped, not applied)."""
        self.generation += 1

    def _db(self, partition: int) -> Rdict:
        db = self._dbs.get(partition)
        if db is None:
            path = self.directory / f"p{partition}"
            path.mkdir(parents=True, exist_ok=True)
            db = Rdict(str(path), _options())
            self._dbs[partition] = db
        return db

    def get(self, partition: int, key: bytes) -> bytes | None:
        # Called several times per record (the linking stage: every key its mirror has not seen, nearly all absent):
        # one lookup of the overlay, and the open database without a call.
        value = self._pending.get((partition, key), _UNSET)
        if value is not _UNSET:
            return value  # type: ignore[return-value]
        if self._handed is not None:
            value = self._handed.get((partition, key), _UNSET)
            if value is not _UNSET:
                return value  # type: ignore[return-value]
        db = self._dbs.get(partition)
        found = (db if db is not None else self._db(partition)).get(key)
        return found if found is None or type(found) is bytes else bytes(found)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        self._pending[(partition, key)] = value

    def range(self, partition: int, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        """Keys in [start, stop) with their values, in key order, the open transaction's writes included."""
        found: dict[bytes, bytes | None] = {}
        for raw in self._db(partition).keys(from_key=start):
            key = raw if isinstance(raw, bytes) else str(raw).encode()
            if key >= stop:
                break
            found[key] = self.get(partition, key)
        for layer in (self._handed or {}, self._pending):
            for (part, key), value in layer.items():
                if part == partition and start <= key < stop:
                    found[key] = value
        return sorted((k, v) for k, v in found.items() if v is not None)

    def partitions(self) -> list[int]:
        return sorted(self._dbs)

    def pending(self) -> dict[tuple[int, bytes], bytes | None]:
        """The open transaction's writes (not those handed over)."""
        return dict(self._pending)

    def hand_over(self) -> None:
        """The open transaction's writes go to be committed: the next transaction's writes pend over them, apart."""
        if self._handed is not None:
            raise RuntimeError("a transaction's writes are already being committed")
        self._handed, self._pending = self._pending, {}

    def commit(self) -> None:
        """The transaction committed: make its writes durable locally. With writes handed over, those are its writes
        (the pending ones, the next transaction's, stay pending); without, the pending ones.

        One RocksDB write batch per partition (atomic there, and a fraction of a write per key).
        """
        if self._handed is not None:
            writes, self._handed = self._handed, None
        else:
            writes, self._pending = self._pending, {}
        batches: dict[int, WriteBatch] = {}
        for (partition, key), value in writes.items():
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = WriteBatch()
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        for partition, batch in batches.items():
            self._db(partition).write(batch)

    def abort(self) -> None:
        """The transaction aborted: its writes go, and with them those stepped over them (handed over or pending)."""
        self._pending.clear()
        self._handed = None
        self.generation += 1

    def restore(self, partitions: set[int], timeout: float = 60.0) -> int:
        """Catch the local copies of `partitions` up with the changelog (committed records only)."""
        self.generation += 1
        if not partitions:
            return 0
        identity = self._identity(timeout)
        # A group of its own, never joined (partitions are assigned): `leadbus-restore-<stage>-…`, the
        # prefix the stage principal's ACL grants (the store's folder is named after its stage).
        consumer = self.kafka.consumer(f"leadbus-restore-{self.directory.name}-{uuid.uuid4()}", log_level=3)
        restored = 0
        try:
            ends: dict[int, int] = {}
            assignment = []
            for partition in partitions:
                tp = TopicPartition(self.changelog_topic, partition)
                high = _high_watermark(consumer, tp, timeout)
                checkpoint = self._checkpoint(partition)
                reason = stale_reason(checkpoint, identity, high)
                if checkpoint is None and self._has_data(partition):
                    reason = "local data without a checkpoint"
                if reason is not None:
                    self._discard(partition, reason)
                    checkpoint = None
                start = checkpoint.offset if checkpoint else 0
                if high > start:
                    ends[partition] = high
                    assignment.append(TopicPartition(self.changelog_topic, partition, start))
                elif checkpoint is None:
                    self._db(partition)[_CHECKPOINT] = Checkpoint(identity, high).to_bytes()
            if not assignment:
                return 0
            consumer.assign(assignment)
            deadline = time.monotonic() + timeout
            while ends and time.monotonic() < deadline:
                batches: dict[int, WriteBatch] = {}  # one RocksDB write per partition and poll, not one per record
                for msg in consumer.consume(1000, 0.5):
                    if msg.error():
                        continue
                    partition = msg.partition() or 0
                    batch = batches.get(partition)
                    if batch is None:
                        batch = batches[partition] = WriteBatch()
                    key = msg.key() or b""
                    value = msg.value()
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                    restored += 1
                for partition, batch in batches.items():
                    self._db(partition).write(batch)
                for tp in consumer.position([TopicPartition(self.changelog_topic, p) for p in list(ends)]):
                    if tp.offset >= ends[tp.partition]:
                        self._db(tp.partition)[_CHECKPOINT] = Checkpoint(identity, ends[tp.partition]).to_bytes()
                        del ends[tp.partition]
            if ends:
                raise TimeoutError(f"state of {self.changelog_topic} partitions {sorted(ends)} not restored")
            return restored
        finally:
            consumer.close()

    def _identity(self, timeout: float) -> ChangelogIdentity:
        admin = self.kafka.admin(log_level=3)
        deadline = time.monotonic() + timeout
        while True:
            try:
                cluster = admin.list_topics(timeout=min(10.0, timeout))
                futures = admin.describe_topics(TopicCollection([self.changelog_topic]), request_timeout=10)
                description = futures[self.changelog_topic].result()
                return ChangelogIdentity(str(cluster.cluster_id), str(description.topic_id))
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _discard(self, partition: int, reason: str) -> None:
        log.warning("discarding local state of %s[%d]: %s; rebuilding it from the changelog",
                    self.changelog_topic, partition, reason)
        self.generation += 1
        metrics.STATE_RESETS.labels(self.changelog_topic, reason.split(" ")[0]).inc()
        db = self._dbs.pop(partition, None)
        if db is not None:
            db.close()
        shutil.rmtree(self.directory / f"p{partition}", ignore_errors=True)

    def _checkpoint(self, partition: int) -> Checkpoint | None:
        value = self._db(partition).get(_CHECKPOINT)
        return Checkpoint.from_bytes(bytes(value)) if value is not None else None

    def _has_data(self, partition: int) -> bool:
        return any(True for _ in self._db(partition).keys())  # noqa: SIM118 - Rdict iterates items

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
