"""Joint operations through the bus (a development broker, no authorizer): decisions published by agencies go
through intake to the controller, which makes the operation's topic and fills it with the decisions and the
OPEN-handled target cases; a decision that does not apply is dead-lettered; a closed operation takes nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.processors.core.operations import operation_topic
from leadbus.processors.operations import OperationsController
from leadbus.producers import Publisher
from leadbus.topics import CASES, LEADS_REJECTED
from tests.integration.test_routing import _case
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


@pytest.fixture
def running(bootstrap: str, tmp_path: Path) -> Iterator[OperationsController]:
    intake = start_worker(bootstrap, tmp_path / "state", "intake-ops", tmp_path / "logs")
    controller = OperationsController(KafkaSettings(bootstrap))
    stopping = threading.Event()
    thread = threading.Thread(target=controller.run, kwargs={"stop": stopping.is_set}, daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        stopping.set()
        thread.join(30)
        stop(intake)


def _decision(kind: str, operation_id: str, agency: str, **extra: Any) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "operation_id": operation_id, "kind": kind,
            "actor": {"agency": agency, "province": "00", "unit": None}, "decided_at": datetime.now(UTC), **extra}


def test_decisions_through_intake_fill_the_operations_topic(bootstrap: str, running: OperationsController) -> None:
    op = f"op-{uuid.uuid4().hex[:10]}"
    tag = uuid.uuid4().hex[:12].upper()
    first, second, secret = f"CASE-1111{tag}", f"CASE-2222{tag}", f"CASE-3333{tag}"
    producer = Producer({"bootstrap.servers": bootstrap})
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    for case_id, handling in ((first, "OPEN"), (second, "OPEN"), (secret, "CONFIDENTIAL")):
        producer.produce(CASES, key=case_id.encode(), value=encode(schema, {
            **_case(case_id, "33", handling, ["GACC"] if handling != "OPEN" else []), "waybills": []}))
    assert producer.flush(30) == 0
    now = datetime.now(UTC)
    with Publisher("SAMR", "00", bootstrap_servers=bootstrap) as samr, \
            Publisher("MPS", "00", bootstrap_servers=bootstrap) as mps:
        samr.wait([samr.publish_event("cn.leadbus.OperationDecision", _decision(
            "OPEN", op, "SAMR", name="集群战役", member_agencies=["MPS"], member_provinces=["33"], case_ids=[first],
            starts_at=now, ends_at=now + timedelta(days=10)))])

        def keys() -> list[str]:
            return [m.key().decode() for m in read_all(bootstrap, operation_topic(op))]

        wait_until(lambda: first in keys(), 120, "the first target case in the operation's topic", interval=0.5)
        mps.wait([mps.publish_event("cn.leadbus.OperationDecision",
                                    _decision("JOIN_CASE", op, "MPS", case_ids=[second, secret]))])
        wait_until(lambda: second in keys(), 60, "the joined case", interval=0.5)
        mps.wait([mps.publish_event("cn.leadbus.OperationDecision", _decision("CLOSE", op, "MPS"))])
        samr.wait([samr.publish_event("cn.leadbus.OperationDecision", _decision("CLOSE", op, "SAMR"))])
        wait_until(lambda: running.operations.get(op) is not None and running.operations[op].status == "CLOSED",
                   60, "the close")
        samr.wait([samr.publish_event("cn.leadbus.OperationDecision",
                                      _decision("JOIN_CASE", op, "SAMR", case_ids=[f"CASE-4444{tag}"]))])

    def reasons() -> list[str]:
        return [decode(CATALOG, m.value())[1]["reason"] for m in read_all(bootstrap, LEADS_REJECTED)
                if op.encode() in (m.value() or b"")]

    wait_until(lambda: {"NOT_THE_LEAD", "OPERATION_CLOSED"} <= set(reasons()), 60, "the refusals dead-lettered")
    records = read_all(bootstrap, operation_topic(op))
    assert secret not in [m.key().decode() for m in records]  # CONFIDENTIAL stays where its handling says
    kinds = [decode(CATALOG, m.value())[1].get("kind") for m in records if m.key().decode() == op]
    assert kinds == ["OPEN", "JOIN_CASE"]  # nothing is written after the close
    assert running.operations[op].targets == (first, second, secret)
