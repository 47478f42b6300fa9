"""A merge across partitions on a real broker (issue #15): case B's handover lives on another partition of
`leadbus.state.handover` than case A's; B is merged into A. B's open duty moves to A (a MERGE step on A with B's
due time), a later decision still naming B is forwarded and applied on A, nothing more is recorded on B — and a
kill -9 of the handover worker in between doubles and loses nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.localbroker import KafkaCluster
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import CASES, HANDOVER, HANDOVER_CARRYOVER, HANDOVER_DECISIONS, LEADS_REJECTED, load_declarations
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until
from tests.unit.processors.test_handover_merge import case

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


def murmur2(data: bytes) -> int:
    """Kafka's default partitioner hash (the stages produce with murmur2, like the Java clients)."""
    m, h = 0x5BD1E995, 0x9747B28C ^ len(data)
    for i in range(len(data) // 4):
        k = int.from_bytes(data[4 * i: 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[len(data) & ~3:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return (h ^ (h >> 15)) & 0x7FFFFFFF  # the partitioners take it positive (Java's toPositive, librdkafka alike)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("handover-merge-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, [s for s in load_declarations() if s.name in {
            CASES, HANDOVER_DECISIONS, HANDOVER, HANDOVER_CARRYOVER, LEADS_REJECTED, "leadbus.state.handover"}])
        yield kc


class Bus:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "partitioner": "murmur2_random"})
        self.partitions: dict[str, int] = {}

    def _send(self, topic: str, key: str, value: bytes) -> None:
        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            self.partitions[key] = msg.partition()
        self.producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
        assert self.producer.flush(30) == 0

    def case(self, record: dict[str, Any]) -> None:
        self._send(CASES, record["case_id"], encode(CATALOG.latest("cn.leadbus.CaseUpdated"), record))

    def decide(self, case_id: str, kind: str, role: str = "OFFICER") -> None:
        event = {"decision_id": str(uuid.uuid4()), "case_id": case_id, "kind": kind,
                 "decided_at": datetime.now(UTC), "reasons": "理由", "documents": [],
                 "actor": {"agency": "SAMR", "province": "31", "unit": None, "role": role}}  # fmt: skip
        self._send(HANDOVER_DECISIONS, case_id, encode(CATALOG.latest("cn.leadbus.HandoverDecision"), event))

    def steps(self, case_id: str) -> list[dict[str, Any]]:
        found = [decode(CATALOG, m.value())[1] for m in read_all(self.bootstrap, HANDOVER)]
        return sorted((s for s in found if s["case_id"] == case_id), key=lambda s: s["seq"])


def test_a_merge_across_partitions_keeps_the_absorbed_duty(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    partitions = next(s.partitions for s in load_declarations() if s.name == CASES)
    survivor = f"CASE-M{uuid.uuid4().hex[:12].upper()}"
    absorbed = next(c for c in (f"CASE-M{uuid.uuid4().hex[:12].upper()}" for _ in range(1000))
                    if murmur2(c.encode()) % partitions != murmur2(survivor.encode()) % partitions)
    bus = Bus(bootstrap)
    logs, state = tmp_path / "logs", tmp_path / "state"
    worker = start_worker(bootstrap, state, "handover-1", logs, stage="handover")
    try:
        now = datetime.now(UTC)
        bus.case(case(survivor, at=now))
        bus.case(case(absorbed, at=now))
        assert bus.partitions[survivor] != bus.partitions[absorbed]  # the two states live on different partitions
        wait_until(lambda: bus.steps(survivor) and bus.steps(absorbed), 90, "both handovers to open", interval=0.5)
        bus.decide(absorbed, "HEAD_APPROVE", role="HEAD")
        wait_until(lambda: len(bus.steps(absorbed)) >= 2, 60, "the absorbed case's approval", interval=0.5)
        approved = bus.steps(absorbed)[-1]
        assert approved["to_phase"] == "APPROVED" and approved["due_at"] is not None

        merged_at = datetime.now(UTC)
        bus.case(case(absorbed, version=2, at=merged_at, merged_into=survivor))
        bus.case(case(survivor, version=2, at=merged_at, merged_from=[absorbed]))

        def merged() -> dict[str, Any] | None:
            return next((s for s in bus.steps(survivor) if s["decision"] == "MERGE"), None)

        wait_until(lambda: merged() is not None, 90, "the absorbed handover to reach the survivor", interval=0.5)
        step = merged()
        assert step is not None and step["due_at"] == approved["due_at"] and absorbed in step["reasons"]
        assert step["next_action"] == approved["next_action"]

        worker.kill()  # kill -9 between the merge and the next decision
        worker.wait(10)
        worker = start_worker(bootstrap, state, "handover-2", logs, stage="handover")
        bus.decide(absorbed, "TRANSFER")  # still naming the absorbed case, on its partition

        def transferred() -> list[dict[str, Any]]:
            return [s for s in bus.steps(survivor) if s["to_phase"] == "TRANSFERRED"]

        wait_until(lambda: transferred(), 90, "the forwarded decision to apply on the survivor", interval=0.5)
        assert f"[merged case {absorbed}]" in transferred()[0]["reasons"]
        steps = bus.steps(survivor)
        assert [s["seq"] for s in steps] == list(range(1, len(steps) + 1))  # none doubled or lost
        assert [s["decision"] for s in steps] == [None, "MERGE", "TRANSFER"]
        assert len(bus.steps(absorbed)) == 2  # nothing more recorded on the absorbed case
        refused = [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_REJECTED)]
        assert not refused, refused
    finally:
        stop(worker)
