"""Brokers for tests, writing to them, and reading topics back: everything from the beginning up to the current end."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.localbroker import KafkaCluster
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import CASES, load_declarations

if TYPE_CHECKING:
    from leadbus.models import CaseLead

_CATALOG = packaged_catalog()


@contextmanager
def topics_cluster(directory: Path | None = None) -> Iterator[KafkaCluster]:
    """A one-broker cluster with every topic `deploy/topics.yaml` declares."""
    with KafkaCluster(1, directory) as kc:
        apply_topics(kc.bootstrap_servers, load_declarations())
        yield kc


def _high_watermark(consumer: Consumer, tp: TopicPartition, attempts: int = 40) -> int:
    """Right after a topic is created its leader may not be known everywhere yet: ask again."""
    for attempt in range(attempts):
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=20)[1])
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def committed_end(bootstrap: str | KafkaSettings, topic: str) -> int:
    """The sum of a topic's last stable offsets: cheap to ask often, and it moves only when a transaction commits."""
    consumer = settings_for(bootstrap).consumer(f"leadbus-audit-test-reader-{uuid.uuid4()}",
                                                logger=logging.getLogger("tests.kafka"))
    try:
        meta = consumer.list_topics(topic, timeout=20)
        return sum(_high_watermark(consumer, TopicPartition(topic, p)) for p in meta.topics[topic].partitions)
    finally:
        consumer.close()


def read_all(bootstrap: str | KafkaSettings, topic: str, timeout: float = 60.0) -> list[Message]:
    """On a secured bus pass the reader's settings (the auditor's: its groups are `leadbus-audit-…`)."""
    consumer = settings_for(bootstrap).consumer(f"leadbus-audit-test-reader-{uuid.uuid4()}",
                                                logger=logging.getLogger("tests.kafka"))
    try:
        meta = consumer.list_topics(topic, timeout=20)
        parts = [TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions]
        ends = {tp.partition: _high_watermark(consumer, tp) for tp in parts}
        consumer.assign(parts)
        todo = {p for p, end in ends.items() if end > 0}
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            # consume() returns at its timeout unless it has all 1,000: a long timeout was a wait past the end of
            # every read of a smaller topic (0.5 s of the 0.57 s ten records took), and reads are what the tests'
            # waits look with. The positions tell when the read is over.
            for msg in consumer.consume(1000, 0.02):
                if not msg.error():
                    out.append(msg)
            # Positions, not record offsets: transaction markers take offsets of their own.
            for tp in consumer.position([TopicPartition(topic, p) for p in todo]):
                if tp.offset >= ends[tp.partition]:
                    todo.discard(tp.partition)
        if todo:
            raise TimeoutError(f"{topic}: partitions {sorted(todo)} not read to their end")
        return out
    finally:
        consumer.close()


def produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    """Write (topic, key, value) records, idempotently and acknowledged by all, as a stage would."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "log_level": 3})
    for topic, key, value in records:
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0


def latest_records(bootstrap: str, topic: str, field: str) -> dict[str, dict[str, Any]]:
    """The last record of each `field` value on a topic, decoded: what a compacted topic settles to."""
    latest: dict[str, dict[str, Any]] = {}
    for msg in read_all(bootstrap, topic):
        record = decode(_CATALOG, msg.value())[1]
        latest[record[field]] = record
    return latest


def decoded(bootstrap: str | KafkaSettings, topic: str) -> list[dict[str, Any]]:
    """Every record of a topic, decoded (partitions one after another: not an order in time)."""
    return [decode(_CATALOG, m.value())[1] for m in read_all(bootstrap, topic)]


def latest_cases(bootstrap: str | KafkaSettings) -> dict[str, dict[str, Any]]:
    """Each case's latest `CaseUpdated`, by version (the topic's partitions are read one after another, so the last
    record read of a case id is not its latest), with the time it was written (``_written_at``, ms)."""
    latest: dict[str, dict[str, Any]] = {}
    for msg in read_all(bootstrap, CASES):
        case = decode(_CATALOG, msg.value())[1]
        known = latest.get(case["case_id"])
        if known is None or case["version"] >= known["version"]:
            latest[case["case_id"]] = {**case, "_written_at": msg.timestamp()[1]}
    return latest


def live_case_of(bootstrap: str | KafkaSettings, lead_id: str) -> str | None:
    """The case (not merged into another) that holds a lead now: among each case's latest version (a split takes a
    lead out of its case in a newer version), the one naming it, the last written if several still do."""
    found = sorted((c["_written_at"], c["case_id"]) for c in latest_cases(bootstrap).values()
                   if lead_id in c["members"] and c["merged_into"] is None)
    return found[-1][1] if found else None


def publish_leads(bootstrap: str, leads: list[CaseLead]) -> None:
    """Publish leads through the SDK, one national publisher per agency, and wait for them all."""
    from leadbus.producers import Publisher

    publishers: dict[str, Publisher] = {}
    for lead in leads:
        agency = lead.publisher.agency
        publishers.setdefault(agency, Publisher(agency, "00", bootstrap_servers=bootstrap)).publish(lead)
    for pub in publishers.values():
        pub.flush(60)
