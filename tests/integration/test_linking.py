"""Linking on a real broker: one suspect reported by three agencies in three provinces becomes one case,
across a linking-worker restart; two suspects sharing only an IP stay two cases."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadbus.avro import decode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.topics import CASES, LEADS_ACCEPTED
from tests.kafka_helpers import latest_records, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


def _latest_cases(bootstrap: str) -> dict[str, dict]:
    return latest_records(bootstrap, CASES, "case_id")


def _live_case_of(cases: dict[str, dict], lead_id: str) -> dict:
    live = [c for c in cases.values() if c["merged_into"] is None and lead_id in c["members"]]
    assert len(live) == 1, f"{lead_id} is in {len(live)} live cases"
    return live[0]


def test_three_agencies_one_case_and_an_ip_links_nothing(cluster, make_lead, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    now = datetime.now(UTC) - timedelta(minutes=5)
    blank = {"subject.uscc": None, "subject.id_number": None, "payment_accounts": [], "waybills": [],
             "online": {"platform": None, "shop_id": None, "urls": [], "ips": []}}

    def lead(agency: str, province: str, **fields) -> CaseLead:
        raw = make_lead(**{**blank, "publisher.agency": agency, "publisher.province": province,
                           "reported_at": now.isoformat(), **fields})
        raw["lead_id"] = str(uuid.uuid4())
        return CaseLead.model_validate(raw)

    # Suspect X: SAMR (Zhejiang) knows its USCC and one phone, GACC (Guangdong) another phone;
    # CAC (Beijing) reports both the USCC and the second phone, which ties all three together.
    samr = lead("SAMR", "33", **{"subject.uscc": "91350100M000100Y43", "subject.phones": ["13800138001"]})
    gacc = lead("GACC", "44", **{"subject.phones": ["139 0013 8002"], "cross_border": True, "countries": ["US"]})
    cac = lead("CAC", "11", **{"subject.uscc": "91350100m000100y43", "subject.phones": ["+86 13900138002"]})
    # Suspects Y and Z share a CDN address and nothing else.
    y = lead("NCAC", "31", **{"subject.phones": ["13700137001"], "online.ips": ["203.0.113.7"]})
    z = lead("NCAC", "32", **{"subject.phones": ["13600136001"], "online.ips": ["203.0.113.7"]})

    def publish(*leads: CaseLead) -> None:
        for item in leads:
            pub = Publisher(item.publisher.agency, item.publisher.province, bootstrap_servers=bootstrap)
            pub.wait([pub.publish(item)])
            pub.close()

    logs, state = tmp_path / "logs", tmp_path / "state"
    intake = start_worker(bootstrap, state, "intake-1", logs, stage="intake")
    linking = start_worker(bootstrap, state, "linking-1", logs, stage="linking")
    try:
        publish(gacc, samr, y, z)
        wait_until(lambda: len(_latest_cases(bootstrap)) >= 4, 120, "four cases before the restart")
        before = _latest_cases(bootstrap)
        pair = {_live_case_of(before, gacc.lead_id)["case_id"], _live_case_of(before, samr.lead_id)["case_id"]}
        assert len(pair) == 2
        # leads.accepted has one partition: its order is the order the linker saw the leads in.
        order = [str(decode(CATALOG, m.value())[1]["lead"]["lead_id"]) for m in read_all(bootstrap, LEADS_ACCEPTED)]
        first_linked = min((gacc, samr), key=lambda lead: order.index(lead.lead_id))
        oldest = _live_case_of(before, first_linked.lead_id)["case_id"]

        linking.kill()  # the linking worker dies and its local state is lost with its disk:
        linking.wait(10)
        shutil.rmtree(state / "linking")  # it must come back from the changelog
        linking = start_worker(bootstrap, state, "linking-1", logs, stage="linking")
        publish(cac)

        def merged() -> bool:
            cases = _latest_cases(bootstrap)
            return cac.lead_id in _live_case_of(cases, samr.lead_id)["members"] if any(
                cac.lead_id in c["members"] for c in cases.values()) else False

        wait_until(merged, 120, "the third lead to merge the two cases")
        cases = _latest_cases(bootstrap)
        case = _live_case_of(cases, samr.lead_id)
        assert case["case_id"] == oldest, "a merge keeps the older case id"
        assert set(case["members"]) == {samr.lead_id, gacc.lead_id, cac.lead_id}
        assert {(r["agency"], r["province"]) for r in case["reporters"]} == {("SAMR", "33"), ("GACC", "44"),
                                                                            ("CAC", "11")}
        absorbed = [c for c in cases.values() if c["merged_into"] == oldest]
        assert [c["case_id"] for c in absorbed] == case["merged_from"]
        assert case["cross_border"] and case["countries"] == ["US"]
        assert _live_case_of(cases, y.lead_id)["case_id"] != _live_case_of(cases, z.lead_id)["case_id"]
        assert linking.poll() is None and intake.poll() is None
    finally:
        stop(linking)
        stop(intake)
