"""CaseLead v1 and v2 publishers on the same real broker (issue #15): both are accepted, and both are assessed by
the law — the v1 lead by its report date as before (the only date it has), the v2 leads by their conduct date."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from leadbus.avro import SchemaCatalog, decode, packaged_catalog
from leadbus.producers import Publisher
from leadbus.topics import HANDOVER, LEADS_ACCEPTED, LEADS_REJECTED
from tests.kafka_helpers import live_case_of, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
WAN = 1_000_000


def _v1_catalog() -> SchemaCatalog:
    """What a publisher built before v2 knows: CaseLead v1 only."""
    catalog = SchemaCatalog()
    catalog.add(dict(CATALOG.version("cn.leadbus.CaseLead", 1).source), 1)
    return catalog


def _lead(n: int, **extra: object) -> dict:
    """An ART_218 lead (selling infringing copies) about its own suspect: 6万 of illegal gains."""
    return {
        "lead_id": str(uuid.uuid4()), "revision": 0, "reported_at": datetime.now(UTC) - timedelta(minutes=1),
        "publisher": {"agency": "NCAC", "province": "31"}, "channel": "INSPECTION", "category": "FILM_TV",
        "violation": "ART_218",
        "subject": {"name": f"上海某音像店{n}", "kind": "INDIVIDUAL", "phones": [f"+8613{n:09d}"]},
        "facts": {"illegal_gains_fen": 6 * WAN}, "handling": "OPEN", "grading": {"source": "B", "accuracy": 2},
        **extra,
    }  # fmt: skip


def test_v1_and_v2_publishers_on_one_bus(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    logs, state = tmp_path / "logs", tmp_path / "state"
    workers = {name: start_worker(bootstrap, state, f"{name}-1", logs, stage=name)
               for name in ("intake", "linking", "handover")}
    try:
        old = _lead(1)  # v1: reported now, conduct unknown → the report date stands in (I2025: 5万) → handed over
        recent = _lead(2, conduct_from=date(2025, 6, 1), conduct_to=date(2025, 9, 30))  # I2025 5万 → handed over
        earlier = _lead(3, conduct_from=date(2024, 1, 1), conduct_to=date(2024, 6, 30))  # I2004 10万 → not
        icp = _lead(4, online={"urls": [], "icp_filings": ["沪ICP备20240001号-1"]}, police_measures_needed=True,
                    violation="ART_217", facts={"illegal_gains_fen": 1 * WAN})  # R310 Art.3 ¶2 → handed over
        v1 = Publisher("NCAC", "31", bootstrap_servers=bootstrap, catalog=_v1_catalog())
        v2 = Publisher("NCAC", "31", bootstrap_servers=bootstrap)
        v1.wait([v1.publish(old)])
        v2.wait(v2.publish_many([recent, earlier, icp]))
        v1.close()
        v2.close()

        def accepted() -> dict[str, dict]:
            out = {}
            for m in read_all(bootstrap, LEADS_ACCEPTED):
                writer, event = decode(CATALOG, m.value())
                out[event["lead"]["lead_id"]] = {"writer": writer, **event}
            return out

        ids = [lead["lead_id"] for lead in (old, recent, earlier, icp)]
        wait_until(lambda: set(ids) <= set(accepted()), 90, "all four leads accepted", interval=0.5)
        assert not [m for m in read_all(bootstrap, LEADS_REJECTED)]
        seen = accepted()
        assert seen[recent["lead_id"]]["lead"]["conduct_from"] == date(2025, 6, 1)
        assert seen[old["lead_id"]]["lead"]["conduct_from"] is None  # read with the v2 reader's default
        assert seen[icp["lead_id"]]["lead"]["online"]["icp_filings"] == ["沪ICP备20240001号-1"]

        wait_until(lambda: all(live_case_of(bootstrap, i) for i in ids), 60, "four cases", interval=0.5)
        cases = {i: live_case_of(bootstrap, i) for i in ids}

        def opened() -> dict[str, dict]:
            steps = [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, HANDOVER)]
            return {s["case_id"]: s for s in steps if s["event"] == "OPENED"}

        expected = {cases[old["lead_id"]], cases[recent["lead_id"]], cases[icp["lead_id"]]}
        wait_until(lambda: expected <= set(opened()), 60, "three handovers", interval=0.5)
        steps = opened()
        assert cases[earlier["lead_id"]] not in steps  # 2024 conduct: 6万 < I2004's 10万, whatever the report date
        assert "I2025" in steps[cases[recent["lead_id"]]]["assessment"]
        assert "conduct 2025-09-30]" in steps[cases[recent["lead_id"]]]["assessment"]
        assert "report date used" in steps[cases[old["lead_id"]]]["assessment"]
        assert "R310 Art.3 ¶2" in steps[cases[icp["lead_id"]]]["assessment"]
        assert all(w.poll() is None for w in workers.values())
    finally:
        for worker in workers.values():
            stop(worker)
