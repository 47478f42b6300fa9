"""A 3-node KRaft cluster: RF 3, min ISR 2, acks=all writes go on with a node killed; the node rejoins."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka.admin import AdminClient

from leadbus.localbroker import KafkaCluster
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import intake_topic, load_declarations
from tests.kafka_helpers import read_all

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def _isr_sizes(bootstrap: str, topic: str) -> list[int]:
    meta = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(topic, timeout=10)
    return [len(p.isrs) for p in meta.topics[topic].partitions.values()]


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("condition not reached in time")


def test_three_nodes_survive_a_killed_node_and_it_rejoins(tmp_path) -> None:
    specs = [s for s in load_declarations() if s.name in {intake_topic("GACC"), "leadbus.schemas"}]
    with KafkaCluster(3, tmp_path / "kafka") as cluster:
        plan = apply_topics(cluster.bootstrap_servers, specs)
        assert all(s.replication_factor == 3 and s.min_insync_replicas == 2 for s in plan.create)
        topic = intake_topic("GACC")
        full = [3] * next(s.partitions for s in specs if s.name == topic)  # every partition's ISR whole
        # A broker answers metadata for a new topic once the controller's update reached it: wait for that.
        _wait_for(lambda: _isr_sizes(cluster.bootstrap_servers, topic) == full)

        gen = TrafficGenerator(seed=3)
        start = datetime(2026, 11, 1, tzinfo=UTC)
        leads = [lead for lead in gen.leads(3000, start, timedelta(seconds=1)) if lead.publisher.agency == "GACC"]
        assert len(leads) > 100
        third = len(leads) // 3
        pub = Publisher("GACC", "00", bootstrap_servers=cluster.bootstrap_servers)
        confirmed = pub.wait([pub.publish(lead) for lead in leads[:third]], timeout=60)

        cluster.kill_node(2)  # mid-stream: writes go on with RF 3, min ISR 2
        futures = [pub.publish(lead) for lead in leads[third : 2 * third]]
        confirmed += pub.wait(futures, timeout=120)
        _wait_for(lambda: max(_isr_sizes(cluster.bootstrap_servers, topic)) == 2)

        cluster.start_node(2)
        confirmed += pub.wait([pub.publish(lead) for lead in leads[2 * third :]], timeout=120)
        _wait_for(lambda: _isr_sizes(cluster.bootstrap_servers, topic) == full, timeout=90)
        pub.close()

        keys = [msg.key().decode() for msg in read_all(cluster.bootstrap_servers, topic)]
        assert sorted(keys) == sorted(lead.lead_id for lead in leads)
        assert {d.lead_id for d in confirmed} == set(keys)
