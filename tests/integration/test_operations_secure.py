"""Joint operations (集群战役) on a secured broker (TLS, SCRAM, deny by default, the ACL policy applied): while an
operation is open its members read its topic and a non-member is refused by the broker; once it closes its
topic is kept (archived) and nobody but the auditors reads it; `acl apply` leaves operation access alone."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaError, TopicPartition

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.processors.core.agency_events import OPERATIONS
from leadbus.processors.core.operations import Operation, decide, operation_topic
from leadbus.processors.operations import OperationsController
from leadbus.provisioning.acls import apply_policy
from leadbus.provisioning.operations import reconcile_operations
from leadbus.sinks.operation_view import create_app
from leadbus.topics import CASES, LEADS_REJECTED
from tests.integration.test_routing import _case
from tests.processes import wait_until
from tests.secure import SecureBus, eventually, secured
from tests.servers import AppServer

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBus]:
    with secured(1, tmp_path_factory.mktemp("secure-ops")) as secure:
        yield secure


def _decision(kind: str, operation_id: str, agency: str, **extra: Any) -> dict[str, Any]:
    return {"decision_id": str(uuid.uuid4()), "operation_id": operation_id, "kind": kind,
            "actor": {"agency": agency, "province": "00", "unit": None}, "decided_at": NOW, **extra}


def _open(operation_id: str, lead: str, agencies: list[str], provinces: list[str]) -> Operation:
    op = decide(None, _decision("OPEN", operation_id, lead, name=f"集群战役 {operation_id}", member_agencies=agencies,
                                member_provinces=provinces, case_ids=["CASE-00000000000000A1"], starts_at=NOW,
                                ends_at=NOW + timedelta(days=30)))
    assert isinstance(op, Operation)
    return op


def _read(settings: KafkaSettings, topic: str, group: str) -> tuple[list[bytes], list[int]]:
    """What a principal gets from partition 0 of `topic` within a while: values, or error codes."""
    consumer = settings.consumer(group, **{"error_cb": lambda _e: None, "auto.offset.reset": "earliest"})
    seen: list[bytes] = []
    errors: list[int] = []
    try:
        consumer.subscribe([topic])  # a refusal of the topic comes back as an error of the subscription
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not seen and not errors:
            for msg in consumer.consume(100, 0.5):
                if msg.error():
                    errors.append(msg.error().code())
                else:
                    seen.append(msg.value() or b"")
    finally:
        consumer.close()
    return seen, errors


def _write(settings: KafkaSettings, topic: str, value: bytes) -> KafkaError | None:
    producer = settings.producer(**{"message.timeout.ms": 15000, "error_cb": lambda _e: None})
    results: list[KafkaError | None] = []
    producer.produce(topic, key=b"case", value=value, on_delivery=lambda err, _m: results.append(err))
    producer.flush(20)
    return results[0] if results else KafkaError(KafkaError._MSG_TIMED_OUT)


def test_members_read_non_members_are_refused_and_closing_leaves_auditors_only(bus: SecureBus) -> None:
    clients: Path = bus.clients
    cosmetics = _open("op-cosmetics", "SAMR", ["MPS"], ["33"])
    books = _open("op-books", "NCAC", ["SAMR"], [])  # SAMR is in both; NCAC only in the second
    plan = reconcile_operations(bus.admin, [cosmetics, books], clients)
    assert set(plan.create_users) == {"operation-SAMR", "operation-MPS", "operation-33", "operation-NCAC"}
    topic = operation_topic("op-cosmetics")

    assert eventually(lambda: _must(_write(bus.as_("operations"), topic, b"target case")), 30) is None
    assert _write(bus.as_("operation-SAMR"), topic, b"forged") is not None  # members read, never write

    for member in ("operation-SAMR", "operation-MPS", "operation-33"):
        seen, errors = _read(bus.as_(member), topic, f"leadbus-operation-op-cosmetics-{member[10:]}-view")
        assert seen == [b"target case"] and errors == [], member
    # each with a group its principal may use (NCAC: op-books'), so that what the broker refuses is the topic
    for outsider, group in (("operation-NCAC", "leadbus-operation-op-books-NCAC-view"),
                            ("dashboard-yrd", f"leadbus-dashboard-yrd-{uuid.uuid4()}"),
                            ("routing", "leadbus-routing")):
        seen, errors = _read(bus.as_(outsider), topic, group)
        assert seen == [] and KafkaError.TOPIC_AUTHORIZATION_FAILED in errors, outsider

    # The static policy's reconciler sees nothing to change: operation access is not its business.
    assert apply_policy(bus.admin, bus.policy, clients, check=True).in_sync

    closed = decide(cosmetics, _decision("CLOSE", "op-cosmetics", "SAMR"))
    assert isinstance(closed, Operation) and closed.status == "CLOSED"
    after = reconcile_operations(bus.admin, [closed, books], clients)
    assert set(after.delete_users) == {"operation-MPS", "operation-33"}  # SAMR stays: it is in op-books
    assert topic in bus.admin.admin().list_topics(timeout=20).topics  # archived, not deleted
    for member in ("operation-SAMR", "operation-NCAC"):
        seen, errors = eventually(lambda m=member: _refused(bus.as_(m), topic, m), 30)
        assert seen == []
    assert _write(bus.as_("operations"), topic, b"late") is not None  # nobody writes an archived operation
    seen, errors = _read(bus.as_("auditor"), topic, f"leadbus-audit-{uuid.uuid4()}")
    assert seen == [b"target case"]
    # The members of op-books still read it
    assert _write(bus.as_("operations"), operation_topic("op-books"), b"books case") is None
    seen, _ = _read(bus.as_("operation-SAMR"), operation_topic("op-books"), "leadbus-operation-op-books-SAMR-view")
    assert seen == [b"books case"]
    assert reconcile_operations(bus.admin, [closed, books], clients).in_sync  # idempotent


def _must(err: KafkaError | None) -> None:
    assert err is None, err


def _refused(settings: KafkaSettings, topic: str, member: str) -> tuple[list[bytes], list[int]]:
    seen, errors = _read(settings, topic, f"leadbus-operation-op-books-{member[10:]}-view")  # a group it may use
    assert seen == [] and KafkaError.TOPIC_AUTHORIZATION_FAILED in errors, (member, seen, errors)
    return seen, errors


def test_the_controller_opens_a_view_for_members_only_and_closing_shuts_it(bus: SecureBus, tmp_path: Path) -> None:
    """Decisions on leadbus.operations → the controller → the operation's topic → each member's view."""
    catalog = packaged_catalog()
    admin = bus.admin.producer(acks="all")
    open_case, secret_case = "CASE-0000000000000C01", "CASE-0000000000000C02"
    for case_id, handling in ((open_case, "OPEN"), (secret_case, "CONFIDENTIAL")):
        admin.produce(CASES, key=case_id.encode(), value=encode(catalog.latest("cn.leadbus.CaseUpdated"), {
            **_case(case_id, "33", handling, ["GACC"] if handling != "OPEN" else []), "waybills": []}))
    entry = catalog.latest("cn.leadbus.OperationDecision")

    def publish(kind: str, agency: str, operation_id: str = "op-shoes", **extra: Any) -> None:
        record = {"name": "", "member_agencies": [], "member_provinces": [], "case_ids": [], "starts_at": None,
                  "ends_at": None, **_decision(kind, operation_id, agency, **extra)}
        admin.produce(OPERATIONS, key=operation_id.encode(), value=encode(entry, record))
        assert admin.flush(30) == 0

    publish("OPEN", "SAMR", name="2026 运动鞋集群战役", member_agencies=["MPS"], member_provinces=["35"],
            case_ids=[open_case, secret_case], starts_at=NOW, ends_at=NOW + timedelta(days=60))
    publish("OPEN", "NCAC", name="other", operation_id="op-other", starts_at=NOW, ends_at=NOW + timedelta(days=1))
    controller = OperationsController(bus.as_("operations"), admin=bus.admin, clients_dir=bus.clients)
    stopping = threading.Event()
    worker = threading.Thread(target=controller.run, kwargs={"stop": stopping.is_set}, daemon=True)
    worker.start()
    try:
        # op-shoes makes operation-MPS; op-other (led by NCAC) makes operation-NCAC, the outsider below
        wait_until(lambda: all((bus.clients / f"operation-{m}.json").exists() for m in ("MPS", "NCAC")), 60,
                   "the members' principals of both operations")
        with AppServer(create_app(bus.as_("operation-MPS"), "op-shoes", "MPS")) as member, \
                AppServer(create_app(bus.as_("operation-NCAC"), "op-shoes", "NCAC")) as outsider:
            def member_sees() -> dict[str, Any]:
                response = httpx.get(f"{member.url}/api/state", timeout=10)
                assert response.status_code == 200
                state = response.json()
                assert [c["case_id"] for c in state["cases"]] == [open_case]
                return state

            state = eventually(member_sees, 60)
            assert state["operation"]["lead_agency"] == "SAMR" and state["operation"]["member_provinces"] == ["35"]
            assert "王小明" not in str(state) and "11010519491231002X" not in str(state)  # masked as for a region
            page = httpx.get(member.url + "/", timeout=10).text
            assert "2026 运动鞋集群战役" in page and open_case in page and secret_case not in page.split("目标案件")[1]
            eventually(lambda: _must_status(outsider.url, 403), 60)

            publish("CLOSE", "MPS")  # not the lead: dead-lettered, nothing changes
            publish("CLOSE", "SAMR")
            eventually(lambda: _must_status(member.url, 403), 90)
        assert controller.operations["op-shoes"].status == "CLOSED"
        rejected = [decode(catalog, m.value())[1] for m in _read_all_admin(bus, LEADS_REJECTED)]
        assert any(r["reason"] == "NOT_THE_LEAD" for r in rejected)
        seen, _ = _read(bus.as_("auditor"), operation_topic("op-shoes"), f"leadbus-audit-{uuid.uuid4()}")
        assert seen  # the archive stays readable to auditors
    finally:
        stopping.set()
        worker.join(30)


def _must_status(url: str, status: int) -> None:
    assert httpx.get(f"{url}/api/state", timeout=10).status_code == status


def _read_all_admin(bus: SecureBus, topic: str) -> list[Any]:
    consumer = bus.admin.consumer(f"leadbus-audit-{uuid.uuid4()}")
    out: list[Any] = []
    try:
        meta = consumer.list_topics(topic, timeout=20).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=20)[1] for p in parts}
        consumer.assign(parts)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(ends.values()) > len(out):
            out += [m for m in consumer.consume(500, 0.5) if not m.error()]
    finally:
        consumer.close()
    return out


