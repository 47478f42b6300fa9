"""The suggesting stage on a real broker (issue #16): it reads the cases linking publishes on `leadbus.cases` and
analysts' rejects on `leadbus.links.decisions`, and emits `LinkSuggested` onto `leadbus.links.suggested` and the
review topics. What must show: the weak pairs suggested (keyed by the pair, to the region's review topic); after
a kill -9 with the stage's disk lost, its index comes back from its changelog — no flood of the same suggestions
again, a pair made stronger comes back once — and a rejected pair is never suggested again however strong.

The cases are written here as linking writes them (CaseUpdated v5, keyed by case id over the topic's partitions),
so that the stage is tested alone and the pairs are exactly the ones chosen."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from leadbus.topics import CASES, LINK_DECISIONS, LINKS_SUGGESTED, review_topic
from tests.kafka_helpers import decoded, read_all
from tests.processes import start_worker, stop, wait_until
from tests.suggesting_cases import BG0, BG1, OTHER, SHARED, A, B, C, D, case_record, case_template, reject_record

pytestmark = pytest.mark.integration


def _publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def _suggested(bootstrap: str) -> list[tuple[str, str]]:
    return [(s["case_a"], s["case_b"]) for s in decoded(bootstrap, LINKS_SUGGESTED)]


def _committed(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "leadbus-suggesting"})
    try:
        return int(consumer.committed([TopicPartition(topic, partition)], timeout=20)[0].offset)
    finally:
        consumer.close()


def _caught_up(bootstrap: str) -> None:
    """Until the stage has committed everything on its inputs (its suggestions are out: same transaction)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        ends = {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1]
                for topic in (CASES, LINK_DECISIONS)
                for p in consumer.list_topics(topic, timeout=20).topics[topic].partitions}
    finally:
        consumer.close()
    for (topic, p), end in ends.items():
        if end:
            wait_until(lambda t=topic, p=p, e=end: _committed(bootstrap, t, p) >= e, 120,
                       f"the suggesting stage to take in {topic}[{p}]")


def test_suggests_survives_a_lost_disk_and_never_suggests_a_rejected_pair_again(
    cluster, tmp_path: Path
) -> None:
    bootstrap = cluster.bootstrap_servers
    template = case_template()
    background = [case_record(template, f"CASE-{i:016X}", 1, (f"addr:北京市某路{i}号", f"trade:店{i}", "city:北京市",
                                                         f"tail:{i:04d}"), "11") for i in range(30)]
    _publish(bootstrap, CASES, [*background, case_record(template, A, 1, SHARED, "31"),
                                case_record(template, B, 1, SHARED, "31"),
                                case_record(template, C, 1, OTHER, "31"),
                                case_record(template, D, 1, OTHER, "31")])
    logs, state = tmp_path / "logs", tmp_path / "state"
    worker = start_worker(bootstrap, state, "suggesting-1", logs, stage="suggesting")
    try:
        wait_until(lambda: {(A, B), (C, D)} <= set(_suggested(bootstrap)), 120,
                   "the weak pairs' suggestions")
        review = read_all(bootstrap, review_topic("yrd"))
        assert {m.key() for m in review} == {(A + "|" + B).encode(), (C + "|" + D).encode()}
        assert not read_all(bootstrap, review_topic("jjj")), "no pair involves Beijing's region"
        _publish(bootstrap, LINK_DECISIONS, [reject_record(D, C)])
        _caught_up(bootstrap)
        before = _suggested(bootstrap)
        assert sorted(before) == [(A, B), (C, D)], "each pair once"

        worker.kill()  # kill -9, and the local state is lost with the disk: it comes back from the changelog
        worker.wait(30)
        shutil.rmtree(state / "suggesting")
        worker = start_worker(bootstrap, state, "suggesting-1", logs, stage="suggesting")
        # New evidence for both pairs (+3 bits each: a shared phone tail no other case has), and an absorbed case.
        stronger = ("tail:5678",)
        _publish(bootstrap, CASES, [
            case_record(template, BG0, 2, ("trade:店0",), "11", merged_into=BG1),
            case_record(template, BG1, 2, ("addr:北京市某路1号", "trade:店1", "city:北京市", "tail:0001",
                                             "trade:店0"), "11", merged_from=(BG0,)),
            case_record(template, A, 2, SHARED + stronger, "31"),
            case_record(template, B, 2, SHARED + stronger, "31"),
            # (a tail of their own, so that the rejected pair gains as much in any order the cases are read in)
            case_record(template, C, 2, (*OTHER, "tail:1234"), "31"),
            case_record(template, D, 2, (*OTHER, "tail:1234"), "31")])
        _caught_up(bootstrap)
        assert _suggested(bootstrap).count((A, B)) == 2, \
            f"the pair made stronger comes back once, after the restart: {_suggested(bootstrap)}"
        after = _suggested(bootstrap)
        assert after.count((C, D)) == 1, "a rejected pair is never suggested again"
        assert len(after) == 3, f"no flood of suggestions made before the restart: {after}"
        first, latest = [s for s in decoded(bootstrap, LINKS_SUGGESTED) if s["case_a"] == A]
        assert (latest["version_a"], latest["version_b"], latest["regions"]) == (2, 2, ["yrd"])
        assert latest["weight_bits"] >= first["weight_bits"] + 2
        assert worker.poll() is None
    finally:
        stop(worker)
