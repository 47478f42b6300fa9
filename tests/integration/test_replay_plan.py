"""A Kafka replay's plan asks every partition's two ends at once (`KafkaSource._watermarks`): the same first offset and
end as `get_watermark_offsets` gives partition by partition for a read_committed reader — on a partition whose log start
moved (records deleted), one whose end is an open transaction's first offset (the last stable offset), and aborted and
committed transactions — and partition by partition still where the batch does not answer."""

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
