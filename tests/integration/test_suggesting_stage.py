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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from leadbus.avro import encode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.processors.core.linking import DictStore, Linker
from leadbus.processors.core.normalize import normalise
from leadbus.processors.linking import case_updated_record
from leadbus.topics import CASES, LINK_DECISIONS, LINKS_SUGGESTED, review_topic
from tests.conftest import _BASE_LEAD
from tests.kafka_helpers import decoded, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
CASE = CATALOG.latest("cn.leadbus.CaseUpdated")
DECISION = CATALOG.latest("cn.leadbus.LinkDecision")
NOW = datetime.now(UTC) - timedelta(minutes=5)
SHARED = ("addr:上海市浦东新区张杨路1188号3栋502室", "ip24:61.152.1", "trade:锐丰", "city:上海市")
A, B, C, D = (f"CASE-{x * 16}" for x in "ABCD")  # case ids of the bus (CASE- and 16 hex digits)
BG0, BG1 = (f"CASE-{i:016X}" for i in (0, 1))
OTHER = ("addr:上海市闵行区七莘路300号12室", "ip24:61.152.9", "trade:宏泰", "city:上海市")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """A real case's CaseUpdated fields, to which each case here gives its id, version and weak signals."""
    lead = CaseLead.model_validate({**_BASE_LEAD, "lead_id": str(uuid.uuid4())})
    norm = normalise(lead)
    return case_updated_record(Linker(DictStore()).link(norm.lead, norm.domains).case, NOW)


def _case(template: dict[str, Any], case_id: str, version: int, signals: tuple[str, ...], province: str,
          merged_into: str | None = None, merged_from: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    record = {**template, "case_id": case_id, "version": version, "weak_signals": sorted(signals),
              "provinces": [province], "merged_into": merged_into, "merged_from": list(merged_from),
              "members": [f"lead-{case_id}-{version}"], "updated_at": datetime.now(UTC)}
    return case_id.encode(), encode(CASE, record)


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


def _reject(case_a: str, case_b: str) -> tuple[bytes, bytes]:
    return case_a.encode(), encode(DECISION, {
        "decision_id": str(uuid.uuid4()), "action": "REJECT", "case_a": case_a, "case_b": case_b, "lead_ids": [],
        "analyst": {"agency": "SAMR", "province": "31", "user": "zhang.wei", "role": "ANALYST"},
        "reason": "two tenants of one building, different owners", "decided_at": NOW, "suggestion_id": None})


def test_suggests_survives_a_lost_disk_and_never_suggests_a_rejected_pair_again(
    cluster, template: dict[str, Any], tmp_path: Path
) -> None:
    bootstrap = cluster.bootstrap_servers
    background = [_case(template, f"CASE-{i:016X}", 1, (f"addr:北京市某路{i}号", f"trade:店{i}", "city:北京市",
                                                         f"tail:{i:04d}"), "11") for i in range(30)]
    _publish(bootstrap, CASES, [*background, _case(template, A, 1, SHARED, "31"),
                                _case(template, B, 1, SHARED, "31"), _case(template, C, 1, OTHER, "31"),
                                _case(template, D, 1, OTHER, "31")])
    logs, state = tmp_path / "logs", tmp_path / "state"
    worker = start_worker(bootstrap, state, "suggesting-1", logs, stage="suggesting")
    try:
        wait_until(lambda: {(A, B), (C, D)} <= set(_suggested(bootstrap)), 120,
                   "the weak pairs' suggestions")
        review = read_all(bootstrap, review_topic("yrd"))
        assert {m.key() for m in review} == {(A + "|" + B).encode(), (C + "|" + D).encode()}
        assert not read_all(bootstrap, review_topic("jjj")), "no pair involves Beijing's region"
        _publish(bootstrap, LINK_DECISIONS, [_reject(D, C)])
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
            _case(template, BG0, 2, ("trade:店0",), "11", merged_into=BG1),
            _case(template, BG1, 2, ("addr:北京市某路1号", "trade:店1", "city:北京市", "tail:0001",
                                             "trade:店0"), "11", merged_from=(BG0,)),
            _case(template, A, 2, SHARED + stronger, "31"),
            _case(template, B, 2, SHARED + stronger, "31"),
            # (a tail of their own, so that the rejected pair gains as much in any order the cases are read in)
            _case(template, C, 2, (*OTHER, "tail:1234"), "31"), _case(template, D, 2, (*OTHER, "tail:1234"), "31")])
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
