"""`leadbus replay --verify` against round 6 of issue #14's outside check, on the package's day: a topic deleted and
created again empty, shorter or with fewer partitions (the archive's published heads say how far it went), a
transaction held open over a partition's end (everything after it out of sight), and periods cut through the middle
of chains and transactions on clean topics (no false alarm).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.sinks.archive import read_manifest
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED
from tests.audit_helpers import iso, records_of, recreate_topic, rewrite_topic
from tests.integration.audit_day.test_audit_red_team import by_partition, cli, located, verify

if TYPE_CHECKING:
    from tests.integration.audit_day.conftest import Day

pytestmark = pytest.mark.integration


_CASES_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}  # as declared for leadbus.cases


def _sealed(day: Day) -> dict[int, int]:
    """Per partition of leadbus.cases, how many records the day's archive sealed."""
    counts: dict[int, int] = {}
    for line in read_manifest(day.archive):
        if line.topic == CASES:
            counts[line.partition] = counts.get(line.partition, 0) + line.records
    assert counts, "the day's archive sealed records of leadbus.cases"
    return counts


def test_a_topic_deleted_and_created_again_empty_shorter_or_with_fewer_partitions_is_named(
        day: Day, tmp_path: Path) -> None:
    """leadbus.cases deleted and created again empty replayed as a clean topic (exit 0: nothing to judge), and again
    without a partition's newest records as a clean shorter one (a chain shows what is missing inside it, not after
    it). The archive sink's published heads carry how many records its files hold per partition, each of which took
    an offset of its own: a log now ending below that count is RECORDS_DELETED at the log's end (offset 0 when
    emptied), a partition gone is named too. Written back whole (the day's own restoring), nothing is named."""
    ends = _sealed(day)
    status, failures, stdout = verify(day.bootstrap, CASES, tmp_path / "clean.json")
    assert status == 0 and not failures, stdout

    rewrite_topic(day.bootstrap, CASES, lambda _: [])
    status, failures, stdout = verify(day.bootstrap, CASES, tmp_path / "emptied.json")
    assert status == 1 and located(failures) == {("RECORDS_DELETED", p, 0) for p, n in ends.items() if n}, stdout
    assert all(f"{CASES}[{p}]@0" in stdout for p, n in ends.items() if n), stdout

    parts = by_partition(day.pristine[CASES])
    partition = max(ends, key=lambda p: len(parts[p]))
    kept = len(parts[partition]) // 2
    rewrite_topic(day.bootstrap, CASES, lambda _: [c for c in day.pristine[CASES] if c.partition != partition]
                  + parts[partition][:kept])
    status, failures, stdout = verify(day.bootstrap, CASES, tmp_path / "shorter.json")
    assert status == 1 and ("RECORDS_DELETED", partition, kept) in located(failures), stdout
    assert f"{CASES}[{partition}]@{kept}" in stdout, stdout

    fewer = max(p for p, n in ends.items() if n)  # the highest partition the archive sealed records of, gone
    try:
        recreate_topic(day.bootstrap, CASES, [c for c in day.pristine[CASES] if c.partition < fewer], _CASES_CONFIG,
                       partitions=fewer)
        status, failures, stdout = verify(day.bootstrap, CASES, tmp_path / "fewer.json")
        assert status == 1 and ("RECORDS_DELETED", fewer, 0) in located(failures), stdout
        assert not {f for f in located(failures) if f[1] < fewer}, stdout
    finally:  # as the day left it, with its six partitions (the day's restoring keeps a topic's partition count)
        recreate_topic(day.bootstrap, CASES, day.pristine[CASES], _CASES_CONFIG, partitions=6)


def _high_watermark(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"red6-{uuid.uuid4()}"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=20, cached=False)[1])
    finally:
        consumer.close()


def test_a_transaction_held_open_over_a_partitions_end_is_named_where_it_holds(day: Day, tmp_path: Path) -> None:
    """A producer that begins a transaction on leadbus.cases, writes a forged record and never ends it holds the
    partition's last stable offset there (up to 15 minutes, and again with each new transaction): a read_committed
    replay stopped at it, never saw the forgery nor the stages' records committed after it, and said "verified"
    (exit 0). Held longer than any stage's transaction is: TRANSACTION_HELD_OPEN at the held offset; aborted, the
    partition verifies again."""
    parts = by_partition(day.pristine[CASES])
    partition = max(parts, key=lambda p: len(parts[p]))
    held = _high_watermark(day.bootstrap, CASES, partition)
    sample = parts[partition][len(parts[partition]) // 2]
    producer = Producer({"bootstrap.servers": day.bootstrap, "transactional.id": f"red6-{uuid.uuid4()}",
                         "transaction.timeout.ms": 600_000, "logger": logging.getLogger("tests.kafka")})
    producer.init_transactions()
    producer.begin_transaction()
    producer.produce(CASES, value=(sample.value or b"")[:-1], key=sample.key, headers=sample.headers,
                     partition=partition)
    assert producer.flush(30) == 0  # on the broker, in a transaction left open
    try:
        began = time.monotonic()
        status, failures, stdout = verify(day.bootstrap, CASES, tmp_path / "held.json")
        assert status == 1 and located(failures) == {("TRANSACTION_HELD_OPEN", partition, held)}, stdout
        assert f"{CASES}[{partition}]@{held}" in stdout and time.monotonic() - began < 90, stdout
    finally:
        producer.abort_transaction()
    status, failures, stdout = verify(day.bootstrap, CASES, tmp_path / "aborted.json")
    assert status == 0 and not failures, stdout


def test_a_transaction_ending_within_a_stages_time_is_no_finding(day: Day) -> None:
    """The other side: a transaction open when the replay plans (a stage's, committing a few seconds later) is waited
    for, not named."""
    from leadbus.audit.replay import ReplayOptions, replay
    from leadbus.clients import settings_for

    topic = f"leadbus.audit.round6.{uuid.uuid4().hex[:6]}"  # a topic of its own: not part of the day
    admin = AdminClient({"bootstrap.servers": day.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": day.bootstrap, "transactional.id": f"red6-{uuid.uuid4()}",
                         "logger": logging.getLogger("tests.kafka")})
    producer.init_transactions()
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"v")
    assert producer.flush(30) == 0
    timer = threading.Timer(4.0, producer.commit_transaction)
    timer.start()
    try:
        report = replay(ReplayOptions([topic], workers=1), settings_for(day.bootstrap))
    finally:
        timer.join()
    assert not [f for f in report.findings if f.check.startswith("TRANSACTION_")], [
        f.to_json() for f in report.findings]


def test_periods_cut_through_chains_and_transactions_of_clean_topics_verify(day: Day, tmp_path: Path) -> None:
    """`--from`/`--to` cutting the day's sealed chains and transactions in their middle on every kind of topic (cases,
    accepted leads, handover, routed, an agency's intake): the period's first records are numbers > 1 of their
    chains and its last ones inside a run, and none is a tampering (exit 0)."""
    topics = AdminClient({"bootstrap.servers": day.bootstrap}).list_topics(timeout=20).topics
    intake = max((t for t in topics if t.startswith("leadbus.intake.") and t != "leadbus.intake.AUDT"),
                 key=lambda t: len(records_of(day.bootstrap, t)))
    cut = []
    for n, topic in enumerate([CASES, LEADS_ACCEPTED, HANDOVER, "leadbus.region.yrd", intake]):
        stamps = sorted({c.timestamp for c in records_of(day.bootstrap, topic)})
        start, end = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
        if end <= start + 1:  # a stage's batch may carry one time: a topic written in a millisecond or two has no
            continue  # period inside it
        status, failures, stdout = verify(day.bootstrap, topic, tmp_path / f"period-{n}.json",
                                          "--from", iso(start + 1), "--to", iso(end))
        assert status == 0 and not failures, (topic, stdout)
        cut.append(topic)
    assert len(cut) >= 3, cut


def test_heads_published_again_in_a_transaction_still_read_to_their_end(day: Day, tmp_path: Path) -> None:
    """The archive's heads were read until a record at the topic's last offset came: a head written again inside a
    transaction (its commit marker takes the last offset) left the read waiting out its 30 s and the archive replay
    stopped with exit 2, "cannot read the archive's published heads". Read to the position, the same head published
    again is the same head (exit 0)."""
    import json

    from leadbus.topics import ARCHIVE_HEADS

    last = records_of(day.bootstrap, ARCHIVE_HEADS)[-1]
    producer = Producer({"bootstrap.servers": day.bootstrap, "transactional.id": f"red6-{uuid.uuid4()}",
                         "logger": logging.getLogger("tests.kafka")})
    producer.init_transactions()
    producer.begin_transaction()
    producer.produce(ARCHIVE_HEADS, key=last.key, value=last.value, headers=last.headers, partition=0)
    producer.commit_transaction()
    began = time.monotonic()
    report = tmp_path / "heads.json"
    done = cli("replay", "--topic", CASES, "--verify", "--source", f"archive:{day.archive}", "-b", day.bootstrap,
               "--report", str(report))
    assert done.returncode == 0 and time.monotonic() - began < 25, done.stdout + done.stderr
    checked = [f for f in json.loads(report.read_text())["findings"] if f["check"] == "ARCHIVE_HEAD_CHECKED"]
    assert checked, done.stdout
