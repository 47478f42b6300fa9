"""The courier channel (寄递渠道) on a real broker: a case with waybills reaches the postal administration's feed
with its couriers named, one without does not, and SPB's relayed courier reply comes back through intake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.processors.core.agency_events import COURIER_REPLIES
from leadbus.processors.core.courier import POSTAL_TOPIC
from leadbus.producers import Publisher
from leadbus.sinks.registry import rows_for
from leadbus.topics import CASES
from tests.integration.test_routing import _case
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


def test_cases_with_waybills_reach_spb_and_replies_come_back(bootstrap: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    with_waybills, without = f"CASE-00000000{tag}", f"CASE-11111111{tag}"
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    producer = Producer({"bootstrap.servers": bootstrap})
    parcel = {**_case(with_waybills, "44"), "waybills": ["SF1234567890123", "EA123456785CN", "ZZ-unknown"]}
    producer.produce(CASES, key=with_waybills.encode(), value=encode(schema, parcel))
    producer.produce(CASES, key=without.encode(), value=encode(schema, {**_case(without, "44"), "waybills": []}))
    assert producer.flush(30) == 0
    routing = start_worker(bootstrap, tmp_path / "routing", "routing-courier", tmp_path / "logs", stage="routing")
    intake = start_worker(bootstrap, tmp_path / "intake", "intake-courier", tmp_path / "logs")
    try:
        def postal() -> dict[str, dict]:
            return {m.key().decode(): decode(CATALOG, m.value())[1] for m in read_all(bootstrap, POSTAL_TOPIC)}

        wait_until(lambda: with_waybills in postal(), 90, "the trace request on SPB's feed", interval=0.5)
        wait_until(lambda: with_waybills in {m.key().decode() for m in read_all(bootstrap, "leadbus.jurisdiction.44")},
                   60, "routing of the case without waybills too", interval=0.5)
        feed = postal()
        assert without not in feed
        request = feed[with_waybills]
        assert [(p["waybill"], p["courier"]) for p in request["parcels"]] == [
            ("SF1234567890123", "SF"), ("EA123456785CN", "EMS"), ("ZZ-UNKNOWN", "UNKNOWN")]
        raw = next(m.value() for m in read_all(bootstrap, POSTAL_TOPIC) if m.key().decode() == with_waybills)
        for secret in (b"11010519491231002X", b"13812345678", b"6222021234567890128", "王小明".encode()):
            assert secret not in raw

        reply_id = str(uuid.uuid4())
        with Publisher("SPB", "00", bootstrap_servers=bootstrap) as spb:
            spb.wait([spb.publish_event("cn.leadbus.CourierReply", {
                "reply_id": reply_id, "case_id": with_waybills, "waybill": "SF1234567890123", "courier": "SF",
                "outcome": "INTERCEPTED", "detail": "顺丰已拦截在途包裹", "replied_at": datetime.now(UTC),
                "actor": {"agency": "SPB", "province": "00", "unit": None}})])

        def replies() -> list[dict]:
            return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, COURIER_REPLIES)
                    if m.key().decode() == with_waybills]

        wait_until(lambda: replies(), 90, "the courier reply through intake", interval=0.5)
        (reply,) = replies()
        assert (reply["reply_id"], reply["outcome"]) == (reply_id, "INTERCEPTED")
        row = rows_for([("courier_reply", reply)])["courier_replies"][0]  # as the registry shows it on the case
        assert (row["case_id"], row["courier"], row["agency"]) == (with_waybills, "SF", "SPB")
        assert routing.poll() is None and intake.poll() is None
    finally:
        stop(routing)
        stop(intake)
