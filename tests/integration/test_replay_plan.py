"""A Kafka replay's plan asks every partition's two ends at once (`KafkaSource._watermarks`): the same first offset and
end as `get_watermark_offsets` gives partition by partition for a read_committed reader — on a partition whose log start
moved (records deleted), one whose end is an open transaction's first offset (the last stable offset), and aborted and
committed transactions — and partition by partition still where the batch does not answer. A period's bounds follow the
archive's rule (the first *record* at or after a time), not `offsets_for_times`, which may land on a commit marker
stamped later than the records after it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.audit.sources import KafkaSource
from leadbus.avro import packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster

pytestmark = pytest.mark.integration


class _Refusing:
    """A consumer whose batched ListOffsets fails: the plan asks partition by partition."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def offsets_for_times(self, *_: Any, **__: Any) -> Any:
        raise KafkaException("refused")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class _RefusingSource(KafkaSource):
    def consumer(self) -> Any:
        return _Refusing(super().consumer())


def test_the_plan_gives_each_partitions_ends_as_asked_one_by_one(cluster: KafkaCluster) -> None:
    bootstrap = cluster.bootstrap_servers
    topic = f"replay-plan-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"plan-{topic}"})
    producer.init_transactions()
    for i in range(3):
        producer.begin_transaction()
        for j in range(12):
            producer.produce(topic, value=b"x", partition=j % 3)
        if i == 1:
            producer.abort_transaction()
        else:
            producer.commit_transaction()
    producer.begin_transaction()
    for _ in range(5):
        producer.produce(topic, value=b"open", partition=0)  # left open: partition 0 ends where it began
    producer.flush()
    plain = Producer({"bootstrap.servers": bootstrap})
    for _ in range(4):
        plain.produce(topic, value=b"y", partition=2)
    plain.flush()
    for future in admin.delete_records([TopicPartition(topic, 1, 5)]).values():
        future.result()  # partition 1's log now starts at 5
    try:
        settings = KafkaSettings(bootstrap)
        reader = settings.consumer(f"plan-check-{uuid.uuid4()}")
        expected = {(topic, p): reader.get_watermark_offsets(TopicPartition(topic, p), timeout=20, cached=False)
                    for p in range(3)}
        reader.close()
        assert expected[(topic, 1)][0] == 5 and expected[(topic, 0)][1] < 20  # the cases this test is about
        for kind in (KafkaSource, _RefusingSource):
            source = kind(settings, [topic], packaged_catalog())
            try:
                spans = source.plan()
            finally:
                source.close()
            assert source.log_starts == {key: low for key, (low, _) in expected.items()}, kind
            assert {(s.topic, s.partition): (s.start, s.end) for s in spans} == expected, kind
    finally:
        producer.abort_transaction()


def _archive_rule(stamps: list[tuple[int, int]], start_ms: int, end_ms: int) -> list[int]:
    """The offsets the archive's walk takes: from the first record at or after `start_ms` up to (not including) the
    first at or after `end_ms`, in offset order."""
    taken: list[int] = []
    started = False
    for offset, ts in stamps:
        if not started:
            if ts < start_ms:
                continue
            started = True
        if ts >= end_ms:
            break
        taken.append(offset)
    return taken


def test_a_period_bounded_by_commit_markers_takes_the_records_the_archive_takes(cluster: KafkaCluster) -> None:
    bootstrap = cluster.bootstrap_servers
    topic = f"replay-period-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result()
    base = 1_600_000_000_000  # CreateTimes long before the broker's clock, which stamps the commit markers
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"period-{topic}"})
    producer.init_transactions()
    # Each transaction: records at base + 10 * i, then its commit marker stamped "now" (later than any record).
    for i in range(6):
        producer.begin_transaction()
        for partition in (0, 1):
            producer.produce(topic, value=b"r", partition=partition, timestamp=base + 10 * i + partition)
        producer.commit_transaction()
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted", partition=0, timestamp=base + 25)
    producer.abort_transaction()
    producer.begin_transaction()
    producer.produce(topic, value=b"late", partition=0, timestamp=base + 100)
    producer.commit_transaction()
    settings = KafkaSettings(bootstrap)
    reader = settings.consumer(f"period-check-{uuid.uuid4()}")
    reader.assign([TopicPartition(topic, p, 0) for p in (0, 1)])
    stamps: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
    while sum(map(len, stamps.values())) < 13:
        for msg in reader.consume(100, 1.0):
            if msg.error() is None:
                stamps[msg.partition() or 0].append((msg.offset() or 0, msg.timestamp()[1]))
    reader.close()
    catalog = packaged_catalog()
    # Bounds that fall between a transaction's records and its marker's time, on records, and past the end.
    for start_ms, end_ms in ((base + 15, base + 35), (base + 11, base + 41), (base + 20, base + 20),
                             (base + 55, base + 10_000_000_000_000), (base - 5, base + 1)):
        source = KafkaSource(settings, [topic], catalog, start_ms, end_ms)
        try:
            source.plan()
            got = {p: [r.offset for r in source.records() if r.partition == p] for p in (0, 1)}
        finally:
            source.close()
        expected = {p: _archive_rule(stamps[p], start_ms, end_ms) for p in (0, 1)}
        assert got == expected, (start_ms - base, end_ms - base)
        assert any(expected.values()) or start_ms == end_ms
