"""The archive sink against a real broker: published leads archived exactly once, across a restart."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.sinks.archive import PARTIAL, ArchiveError, read_events, read_manifest, verify
from leadbus.sinks.archive_sink import ArchiveStats, run_archive
from leadbus.topics import intake_topic

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)


def _publish(bootstrap: str, leads: list[CaseLead]) -> None:
    publishers: dict[str, Publisher] = {}
    pending: dict[str, list] = {}
    for lead in leads:
        agency = lead.publisher.agency
        pub = publishers.setdefault(agency, Publisher(agency, "00", bootstrap_servers=bootstrap))
        pending.setdefault(agency, []).append(pub.publish(lead))
    for agency, pub in publishers.items():
        pub.wait(pending[agency], timeout=120)
        pub.close()


def _archived_ids(root: Path) -> Counter[str]:
    # Other tests share the session broker: the topics may hold their leads (and garbage) too.
    return Counter(r["event"]["lead_id"] for _, r in read_events(root) if isinstance(r["event"], dict))


def _archive_until(bootstrap: str, topics: set[str], root: Path, group: str, wanted: set[str]) -> ArchiveStats:
    """Run the sink in a thread, sealing every second, until every wanted lead is in a sealed file."""
    stop = threading.Event()
    result: list[ArchiveStats] = []
    worker = threading.Thread(target=lambda: result.append(
        run_archive(bootstrap, sorted(topics), root, group=group, seal_after_seconds=1.0, stop=stop)))
    worker.start()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and worker.is_alive():
            try:
                if wanted <= set(_archived_ids(root)):
                    break
            except (ArchiveError, OSError):
                pass  # a manifest line or file being written right now
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive() and result, "run_archive did not stop cleanly"
    return result[0]


def test_published_leads_are_archived_exactly_once_and_verify(bootstrap: str, tmp_path: Path) -> None:
    gen = TrafficGenerator(seed=41)
    first = list(gen.leads(500, START, timedelta(seconds=10)))
    topics = {intake_topic(lead.publisher.agency) for lead in first}
    _publish(bootstrap, first)
    root, group = tmp_path / "archive", f"test-archive-{uuid.uuid4()}"

    stats = _archive_until(bootstrap, topics, root, group, {lead.lead_id for lead in first})
    assert stats.records >= len(first) and stats.files > 0
    assert verify(root) == []
    counted = _archived_ids(root)
    assert all(counted[lead.lead_id] == 1 for lead in first)

    # A restart after a crash left a partial file: it is dropped, and nothing archived is read twice.
    second = [lead for lead in gen.leads(200, START, timedelta(seconds=10))
              if intake_topic(lead.publisher.agency) in topics]
    _publish(bootstrap, second)
    stray = root / PARTIAL / sorted(topics)[0] / "0.avro"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half a file")
    stats = _archive_until(bootstrap, topics, root, group, {lead.lead_id for lead in second})
    assert (stats.records, stats.skipped) == (len(second), 0), "resumed exactly after the last sealed offset"
    assert not stray.exists()
    assert verify(root) == []
    counted = _archived_ids(root)
    assert all(counted[lead.lead_id] == 1 for lead in first + second)
    assert _committed(bootstrap, group, topics) == _sealed_progress(root)


def _sealed_progress(root: Path) -> dict[tuple[str, int], int]:
    return {(line.topic, line.partition): line.last_offset + 1 for line in read_manifest(root)}


def _committed(bootstrap: str, group: str, topics: set[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(timeout=20)
        parts = [TopicPartition(t, p) for t in sorted(topics) for p in meta.topics[t].partitions]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=20) if tp.offset >= 0}
    finally:
        consumer.close()
