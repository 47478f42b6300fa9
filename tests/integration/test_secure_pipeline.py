"""The whole pipeline on a secured 3-node cluster, every component as its own principal.

Agencies publish as `publisher-<agency>`; intake, linking, handover and routing run as OS processes
with `--client-config <clients folder>` (each takes `<stage>.json`); the registry, the archive and two
regional dashboards read as `registry`, `archive`, `dashboard-yrd`, `dashboard-pprd`; the test reads
topics back as `auditor`. Nothing runs as the admin after set-up. A case reported in 长三角 reaches
the case registry, the archive and the yrd dashboard with its handover row (the steps came through
`leadbus.region.yrd`), and never the pprd dashboard; a case of 泛珠三角 the other way round.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadbus.avro import decode, packaged_catalog
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.sinks.archive import ArchiveError, read_events, verify
from leadbus.sinks.archive_sink import run_archive
from leadbus.sinks.dashboard import Dashboard
from leadbus.sinks.registry import counts, registry_engine
from leadbus.topics import CASES, HANDOVER, region_topic
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until
from tests.registry_helpers import registry_caught_up
from tests.secure import SecureBus, secured

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
CATALOG = packaged_catalog()
FLOW = 180  # s: publish → intake → linking → handover → routing, 3 brokers and 4 workers on a loaded 2-core box


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBus]:
    with secured(3, tmp_path_factory.mktemp("secure-pipeline")) as secure:
        assert len(secure.admin.admin().list_topics(timeout=30).brokers) == 3
        yield secure


@pytest.fixture(scope="module")
def workers(bus: SecureBus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("secure-workers")
    procs = [start_worker(bus.cluster.bootstrap_servers, root / "state", f"{stage}-1", root / "logs", stage=stage,
                          extra=["--client-config", str(bus.clients)])
             for stage in ("intake", "linking", "handover", "routing")]
    try:
        yield root / "logs"
        for proc in procs:
            assert proc.poll() is None, f"a worker died; see {root / 'logs'}"
    finally:
        for proc in procs:
            stop(proc)


def _lead(make_lead: Any, agency: str, province: str, name: str, uscc: str) -> CaseLead:
    raw = make_lead(**{
        "publisher.agency": agency, "publisher.province": province,
        "reported_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "subject.name": name, "subject.uscc": uscc, "subject.id_number": None, "subject.phones": [],
        "subject.address": {"province": province, "city": None, "detail": None}, "payment_accounts": [],
        "waybills": [], "online": {"platform": None, "shop_id": None, "urls": [], "ips": []},
        "violation": "ART_214",  # selling goods under a counterfeit registered trademark
        "facts": {"sales_amount_fen": 8_800_000},  # ¥88,000 sold: over the threshold, a handover opens
    })
    return CaseLead.model_validate(raw)


def _publish(bus: SecureBus, *leads: CaseLead) -> None:
    for lead in leads:
        agency = lead.publisher.agency
        with Publisher(agency, lead.publisher.province, bootstrap_servers=bus.as_(f"publisher-{agency}")) as pub:
            pub.wait([pub.publish(lead)], timeout=60)


def _by_case(bus: SecureBus, topic: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for msg in read_all(bus.as_("auditor"), topic):
        writer, record = decode(CATALOG, msg.value())
        out.setdefault(record["case_id"], []).append((writer.name, record))
    return out


def test_the_pipeline_runs_end_to_end_with_every_component_as_its_own_principal(
        bus: SecureBus, workers: Path, make_lead: Any, tmp_path: Path) -> None:
    hangzhou = _lead(make_lead, "SAMR", "33", "杭州安全测试日化有限公司", "91330100MA2B3C4D5E")
    shanghai = _lead(make_lead, "NCAC", "31", "杭州安全测试日化有限公司", "91330100MA2B3C4D5E")  # same suspect
    guangzhou = _lead(make_lead, "GACC", "44", "广州安全测试鞋业有限公司", "91440101MA5F6G7H8J")
    _publish(bus, hangzhou, shanghai, guangzhou)

    def case_of(lead: CaseLead) -> str | None:
        live = [c for c in (decode(CATALOG, m.value())[1] for m in read_all(bus.as_("auditor"), CASES))
                if lead.lead_id in c["members"] and c["merged_into"] is None]
        return live[-1]["case_id"] if live else None

    wait_until(lambda: case_of(hangzhou) is not None and case_of(guangzhou) is not None, FLOW, "cases", 1.0)
    wait_until(lambda: case_of(shanghai) == case_of(hangzhou), FLOW, "the second agency's lead to link", 1.0)
    yrd_case, pprd_case = case_of(hangzhou), case_of(guangzhou)
    assert yrd_case and pprd_case and yrd_case != pprd_case

    # handover opened for both (national topic), and the steps reached each case's own region only
    wait_until(lambda: {yrd_case, pprd_case} <= set(_by_case(bus, HANDOVER)), FLOW, "handover steps", 1.0)
    wait_until(lambda: any(n == "cn.leadbus.HandoverStep" for n, _ in _by_case(bus, region_topic("yrd")).get(
        yrd_case, [])), FLOW, "the yrd case's steps on leadbus.region.yrd", 1.0)
    wait_until(lambda: any(n == "cn.leadbus.HandoverStep" for n, _ in _by_case(bus, region_topic("pprd")).get(
        pprd_case, [])), FLOW, "the pprd case's steps on leadbus.region.pprd", 1.0)
    yrd_topic = _by_case(bus, region_topic("yrd"))
    assert pprd_case not in yrd_topic and yrd_case not in _by_case(bus, region_topic("pprd"))
    for name, record in yrd_topic[yrd_case]:
        if name == "cn.leadbus.HandoverStep":
            assert record["assessment"] == "" and record["reasons"] == "", "no free text leaves the national topic"

    # dashboards, each reading only its region's topic as its own principal
    dashboards = {r: Dashboard(bus.as_(f"dashboard-{r}"), r) for r in ("yrd", "pprd")}
    for dash in dashboards.values():
        dash.start()
    try:
        def shows(region: str, case_id: str) -> bool:
            _, snap = dashboards[region].snapshot()
            return (any(c["case_id"] == case_id for c in snap["cases"])
                    and any(r["case_id"] == case_id for r in snap["handover"]))

        wait_until(lambda: shows("yrd", yrd_case) and shows("pprd", pprd_case), 90, "both dashboards", 0.5)
        for region, other in (("yrd", pprd_case), ("pprd", yrd_case)):
            _, snap = dashboards[region].snapshot()
            assert other not in str(snap), f"{other} on the {region} dashboard"
            assert dashboards[region].last_error is None
    finally:
        for dash in dashboards.values():
            dash.stop()

    # the case registry, as the registry principal
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_caught_up(bus.as_("registry"), url, reader=bus.as_("auditor"))
    engine = registry_engine(url)
    try:
        found = counts(engine)
        assert found["leads"] == 3 and found["cases"] >= 2 and found["handover_steps"] >= 2, found
    finally:
        engine.dispose()

    # the archive, as the archive principal: what every agency said, verifiable without the bus
    root, done = tmp_path / "archive", threading.Event()
    thread = threading.Thread(target=run_archive, args=(bus.as_("archive"), ["^leadbus\\.intake\\..*"], root),
                              kwargs={"seal_after_seconds": 1.0, "stop": done})
    thread.start()

    try:
        wait_until(lambda: {hangzhou.lead_id, shanghai.lead_id, guangzhou.lead_id} <= _keys(root), 90,
                   "the three leads in sealed archive files", 1.0)
    finally:
        done.set()
        thread.join(60)
    assert verify(root) == []


def _keys(root: Path) -> set[str]:
    try:
        return {r["key"].decode() if isinstance(r.get("key"), bytes) else str(r.get("key"))
                for _, r in read_events(root)}
    except (ArchiveError, OSError, ValueError):
        return set()  # a file being sealed right now
