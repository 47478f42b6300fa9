"""Durable processor state: RocksDB on local disk, backed by a compacted changelog topic.

Each changelog partition has its own RocksDB folder and remembers up to which changelog
offset it has been restored, so a restart only reads what it missed, and a worker whose
local folder is gone rebuilds it from the changelog. Writes reach the changelog inside the
processor's Kafka transaction (see `stage.py`), so the state never runs ahead of the outputs.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from rocksdict import Rdict

_CHECKPOINT = b"\x00leadbus:changelog-offset"


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
    """Key → bytes per changelog partition, with a pending overlay for the open transaction."""

    def __init__(self, directory: Path, changelog_topic: str) -> None:
        self.directory = Path(directory)
        self.changelog_topic = changelog_topic
        self._dbs: dict[int, Rdict] = {}
        self._pending: dict[tuple[int, bytes], bytes | None] = {}

    def _db(self, partition: int) -> Rdict:
        db = self._dbs.get(partition)
        if db is None:
            path = self.directory / f"p{partition}"
            path.mkdir(parents=True, exist_ok=True)
            db = Rdict(str(path))
            self._dbs[partition] = db
        return db

    def get(self, partition: int, key: bytes) -> bytes | None:
        if (partition, key) in self._pending:
            return self._pending[(partition, key)]
        value = self._db(partition).get(key)
        return bytes(value) if value is not None else None

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
        for (part, key), value in self._pending.items():
            if part == partition and start <= key < stop:
                found[key] = value
        return sorted((k, v) for k, v in found.items() if v is not None)

    def partitions(self) -> list[int]:
        return sorted(self._dbs)

    def pending(self) -> dict[tuple[int, bytes], bytes | None]:
        return dict(self._pending)

    def commit(self) -> None:
        """The transaction holding the pending writes committed: make them durable locally."""
        for (partition, key), value in self._pending.items():
            db = self._db(partition)
            if value is None:
                db.delete(key)
            else:
                db[key] = value
        self._pending.clear()

    def abort(self) -> None:
        self._pending.clear()

    def restore(self, bootstrap: str, partitions: set[int], timeout: float = 60.0) -> int:
        """Catch the local copies of `partitions` up with the changelog (committed records only)."""
        if not partitions:
            return 0
        consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"leadbus-restore-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "log_level": 3,
        })
        restored = 0
        try:
            ends: dict[int, int] = {}
            assignment = []
            for partition in partitions:
                tp = TopicPartition(self.changelog_topic, partition)
                high = _high_watermark(consumer, tp, timeout)
                start = self._checkpoint(partition)
                if high > start:
                    ends[partition] = high
                    assignment.append(TopicPartition(self.changelog_topic, partition, start))
            if not assignment:
                return 0
            consumer.assign(assignment)
            deadline = time.monotonic() + timeout
            while ends and time.monotonic() < deadline:
                for msg in consumer.consume(1000, 0.5):
                    if msg.error():
                        continue
                    partition = msg.partition() or 0
                    db = self._db(partition)
                    key = msg.key() or b""
                    value = msg.value()
                    if value is None:
                        db.delete(key)
                    else:
                        db[key] = value
                    restored += 1
                for tp in consumer.position([TopicPartition(self.changelog_topic, p) for p in list(ends)]):
                    if tp.offset >= ends[tp.partition]:
                        self._db(tp.partition)[_CHECKPOINT] = str(ends[tp.partition]).encode()
                        del ends[tp.partition]
            if ends:
                raise TimeoutError(f"state of {self.changelog_topic} partitions {sorted(ends)} not restored")
            return restored
        finally:
            consumer.close()

    def _checkpoint(self, partition: int) -> int:
        value = self._db(partition).get(_CHECKPOINT)
        return int(bytes(value)) if value is not None else 0

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._dbs.clear()
