"""Routing on a real broker: a case reaches its jurisdiction and regions, bulletins are masked,
RESTRICTED and CONFIDENTIAL cases go only where allowed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.topics import CASES
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
T = datetime(2026, 11, 1, tzinfo=UTC)


def _case(case_id: str, province: str, handling: str = "OPEN", share_with: list[str] | None = None) -> dict:
    return {
        "case_id": case_id, "version": 1, "members": ["l1", "l2"], "suspect_name": "王小明",
        "reporters": [{"agency": "SAMR", "province": province}, {"agency": "GACC", "province": "11"}],
        "identifiers": [{"kind": "rid", "value": "11010519491231002X"}, {"kind": "phone", "value": "+8613812345678"},
                        {"kind": "acct", "value": "6222021234567890128"}],
        "suspect_province": province, "categories": ["COSMETICS"], "violations": ["ART_214"],
        "facts": dict.fromkeys(["illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen",
                                "goods_value_fen", "copies", "works", "clicks", "members", "trademark_kinds",
                                "labels", "loss_fen"]),
        "first_reported_at": T, "last_reported_at": T, "handling": handling, "share_with": share_with or [],
        "cross_border": True, "countries": ["US"], "merged_from": [], "merged_into": None, "updated_at": T,
    }


def test_cases_are_routed_and_masked(bootstrap: str, tmp_path: Path) -> None:
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    producer = Producer({"bootstrap.servers": bootstrap})
    cases = {
        "CASE-00000000000000A1": _case("CASE-00000000000000A1", "44"),
        "CASE-00000000000000A2": _case("CASE-00000000000000A2", "33", "RESTRICTED", ["yrd"]),
        "CASE-00000000000000A3": _case("CASE-00000000000000A3", "31", "CONFIDENTIAL", ["GACC"]),
    }
    for case_id, case in cases.items():
        producer.produce(CASES, key=case_id.encode(), value=encode(schema, case))
    assert producer.flush(30) == 0
    worker = start_worker(bootstrap, tmp_path / "state", "routing-1", tmp_path / "logs", stage="routing")
    try:
        def ids(topic: str) -> set[str]:
            return {m.key().decode() for m in read_all(bootstrap, topic)}

        wait_until(lambda: "CASE-00000000000000A3" in ids("leadbus.channel.customs"), 60, "routing", interval=0.5)
        assert ids("leadbus.jurisdiction.44") >= {"CASE-00000000000000A1"}
        assert "CASE-00000000000000A2" not in ids("leadbus.jurisdiction.33")  # RESTRICTED: no province-wide feed
        assert {"CASE-00000000000000A1"} <= ids("leadbus.region.pprd")
        assert {"CASE-00000000000000A1"} <= ids("leadbus.region.jjj")  # a reporter sits in Beijing
        yrd = ids("leadbus.region.yrd")
        assert "CASE-00000000000000A2" in yrd and "CASE-00000000000000A3" not in yrd
        assert "CASE-00000000000000A3" not in ids("leadbus.jurisdiction.31")
        assert "CASE-00000000000000A3" not in ids("leadbus.channel.payments")
        for topic in ("leadbus.region.pprd", "leadbus.region.yrd", "leadbus.region.jjj"):
            for msg in read_all(bootstrap, topic):
                raw = msg.value()
                for secret in (b"11010519491231002X", b"13812345678", b"6222021234567890128", "王小明".encode()):
                    assert secret not in raw, f"{secret!r} leaked into {topic}"
                record = decode(CATALOG, raw)[1]
                if record["case_id"] in cases:  # the session broker carries other tests' bulletins too
                    assert record["suspect_name"] == "王**"
        assert worker.poll() is None
    finally:
        stop(worker)
