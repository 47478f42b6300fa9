"""A publisher writing into partitions it has never written to sends each one record until the broker confirms it.

An idempotent producer whose first batch to a partition is refused (NOT_LEADER_OR_FOLLOWER: the topic is new and
its leader has not taken the partition up yet) while its next batch, already in flight, lands counts the first as
delivered (librdkafka's IMPLICITACK; confluent-kafka-go#921): leads confirmed and never on the bus. The loss itself
takes a race this test cannot time (bench/first_batches.py measures how often its precondition shows: a second
batch sent to a partition before the first was confirmed); the test asserts the SDK never lets it arise, from
librdkafka's own log of what it sent, and that nothing is lost, reordered or left behind.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka.admin import NewTopic

from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from tests.kafka_helpers import read_all

pytestmark = pytest.mark.integration

AGENCY = "SAMR"
SENT = re.compile(r" \[(\d+)\]: Produce MessageSet with (\d+) message\(s\) .*MsgId (\d+),")
DELIVERED = re.compile(r" \[(\d+)\]: MessageSet with \d+ message\(s\) .* delivered")


class _Sends(logging.Handler):
    """Reads librdkafka's `msg` debug lines: each partition's batches sent, before and after its first confirmed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.first_batch: dict[int, int] = {}  # partition -> records in the first batch sent to it
        self.confirmed: set[int] = set()
        self.early: list[str] = []  # later batches sent while the partition's first was unconfirmed
        self.assigned = False

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if (sent := SENT.search(line)) is not None:
            partition, count, msgid = int(sent[1]), int(sent[2]), int(sent[3])
            if msgid == 1:
                self.first_batch.setdefault(partition, count)
            elif partition not in self.confirmed:
                self.early.append(line)
        elif (done := DELIVERED.search(line)) is not None:
            self.confirmed.add(int(done[1]))
        elif "-> Assigned" in line:
            self.assigned = True


def _leads(count: int) -> list[CaseLead]:
    leads = []
    for lead in TrafficGenerator(seed=5).leads(count, datetime.now(UTC) - timedelta(days=1), timedelta(seconds=1)):
        leads.append(lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": AGENCY})}))
    return leads


def test_records_behind_a_new_partitions_first_wait_for_it_and_all_arrive_in_order(tmp_path) -> None:
    leads = _leads(3000)
    with KafkaCluster(1, tmp_path / "kafka") as cluster:
        settings = KafkaSettings(cluster.bootstrap_servers)
        sends = _Sends()
        log = logging.getLogger("tests.kafka.first-delivery")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(sends)
        pub = Publisher(AGENCY, "00", bootstrap_servers=settings, config={"debug": "eos,msg", "logger": log})
        deadline = time.monotonic() + 20
        while not sends.assigned and time.monotonic() < deadline:  # a running publisher: its producer id in hand
            pub.producer.poll(0.1)
        assert sends.assigned
        # the topic is made now, as the publisher writes: its leader takes the partitions up while records come
        topics = [NewTopic(pub.topic, 24, 1), *(NewTopic(f"{pub.topic}.other{i}", 60, 1) for i in range(8))]
        admin = settings.admin()
        for future in admin.create_topics(topics).values():
            future.result()
        handles = [pub.publish(lead) for lead in leads]
        pub.flush(60)
        deliveries = [h.result() for h in handles]
        pub.close()

        assert len(sends.first_batch) == 24 and sends.confirmed == set(range(24))
        assert sends.early == [], f"{len(sends.early)} batches sent before their partition's first was confirmed"
        assert set(sends.first_batch.values()) == {1}  # each partition's first record went alone

        on_topic = read_all(settings, pub.topic)
        assert sorted(m.key() for m in on_topic) == sorted(lead.lead_id.encode() for lead in leads)
        by_partition: dict[int, list[str]] = {}
        for delivery in deliveries:
            by_partition.setdefault(delivery.partition, []).append(delivery.lead_id)
        for partition, published in by_partition.items():  # each partition (so each key) in the order published
            assert [m.key().decode() for m in on_topic if m.partition() == partition] == published
