"""The broker's newest stamp (`latest_broker_time`) on a real broker: a partition that ends on a transaction's commit
marker gives its last record's stamp at once (it waited out the whole timeout), one stamped by its writer counts not."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.audit.broker_time import latest_broker_time
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster

pytestmark = pytest.mark.integration


def test_a_log_ending_on_a_commit_marker_gives_its_last_stamp_at_once(cluster: KafkaCluster) -> None:
    bootstrap = cluster.bootstrap_servers
    stamped, chosen = (f"broker-time-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("log", "create"))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(stamped, 2, 1, config={"message.timestamp.type": "LogAppendTime"}),
                                   NewTopic(chosen, 1, 1)])
    for future in futures.values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"clock-{stamped}"})
    producer.init_transactions()
    before = int(time.time() * 1000) - 1_000
    for partition in (0, 1):
        producer.begin_transaction()
        producer.produce(stamped, value=b"head", partition=partition, timestamp=1)  # the broker stamps it anyway
        producer.commit_transaction()  # each partition now ends on a commit marker
    far = int(time.time() * 1000) + 1_800_000  # the broker refuses a CreateTime more than an hour ahead
    producer.begin_transaction()
    producer.produce(chosen, value=b"writer's time", timestamp=far)
    producer.commit_transaction()
    settings = KafkaSettings(bootstrap)
    began = time.monotonic()
    latest = latest_broker_time(settings, [stamped, chosen], timeout=10.0)
    took = time.monotonic() - began
    assert latest is not None and before <= latest < far
    assert took < 8.0, f"waited {took:.1f} s for a marker no read returns"
