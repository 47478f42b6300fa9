"""`apply_topics` returns when every partition it made is served by its leader, not only named in the metadata.

Between the two, a broker refuses produce requests (NOT_LEADER_OR_FOLLOWER), and an idempotent producer whose first
batch to a partition was refused while its next one landed counts the first as delivered: bench/replay.py's fill lost
the first records of partitions so, without any delivery error.
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, Producer

from leadbus.localbroker import KafkaCluster
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import load_declarations

pytestmark = pytest.mark.integration


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_every_partition_made_takes_its_first_record_unrefused(tmp_path) -> None:
    with KafkaCluster(1, tmp_path / "kafka") as cluster:
        specs = load_declarations()
        apply_topics(cluster.bootstrap_servers, specs)
        # librdkafka retries a refused produce on its own: its log is where a refusal shows
        log = logging.getLogger("tests.kafka.ready")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        lines = _Lines()
        log.addHandler(lines)
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "enable.idempotence": True,
                             "debug": "topic", "logger": log})
        meta = producer.list_topics(timeout=20)
        partitions = [(spec.name, p) for spec in specs for p in meta.topics[spec.name].partitions]
        assert len(partitions) >= 100
        failed: list[KafkaError] = []
        for name, partition in partitions:
            producer.produce(name, key=b"ready", value=b"ready", partition=partition,
                             on_delivery=lambda err, _: failed.append(err) if err else None)
        assert producer.flush(60) == 0
        assert failed == []
        refused = [line for line in lines.lines if "Not leader for partition" in line]
        assert refused == [], f"{len(refused)} produce requests refused, e.g. {refused[0]}"
        assert any("BROKER" in line or "TOPIC" in line for line in lines.lines)  # (the log did reach here)
