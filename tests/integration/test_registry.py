"""The case registry on SQLite and PostgreSQL: kill -9 mid-stream and a database outage lose and double nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from leadbus.avro import encode, packaged_catalog
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.intake import Acceptance, Source, accepted_record, examine
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.sinks.registry import counts, registry_engine
from leadbus.topics import LEADS_ACCEPTED, load_declarations
from tests.postgres import PostgresServer
from tests.processes import wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
N = 3000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("registry-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, [s for s in load_declarations() if s.name in {
            LEADS_ACCEPTED, "leadbus.cases", "leadbus.handover", "leadbus.withdrawals"}])
        yield kc


@pytest.fixture(scope="module")
def accepted_events() -> list[tuple[bytes, bytes]]:
    schema = CATALOG.latest("cn.leadbus.LeadAccepted")
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    now = datetime.now(UTC)
    events = []
    for lead in TrafficGenerator(seed=12).leads(N, now - timedelta(hours=2), timedelta(milliseconds=100)):
        outcome = examine(encode(lead_schema, lead.to_avro()), Source(f"leadbus.intake.{lead.publisher.agency}", 0, 0),
                          CATALOG, now)
        assert isinstance(outcome, Acceptance)
        events.append((lead.lead_id.encode(), encode(schema, accepted_record(outcome, now))))
    return events


def _produce(bootstrap: str, events: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for key, value in events:
        producer.produce(LEADS_ACCEPTED, key=key, value=value)
        producer.poll(0)
    assert producer.flush(60) == 0


def _sink(bootstrap: str, url: str, log: Path) -> subprocess.Popen[bytes]:
    # Small transactions, so that a kill lands mid-stream however fast the sink is: with 500 a quiet machine took
    # the whole backlog of 1,500 in three commits, between two looks of the test.
    return subprocess.Popen([sys.executable, "-m", "leadbus.cli", "registry", "-b", bootstrap, "--url", url,
                             "--batch", "20"], stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _kill_mid_stream_then_restart(bootstrap: str, url: str, events: list[tuple[bytes, bytes]], tmp: Path,
                                  expected: int) -> None:
    engine = registry_engine(url)
    before = counts(engine)["leads"]
    sink = _sink(bootstrap, url, tmp / "sink.log")
    # A third of the events arrives only after the kill: on a loaded machine the test's looks can be far apart,
    # and a sink that had written everything before the kill would test nothing.
    first = len(events) * 2 // 3
    _produce(bootstrap, events[:first])
    wait_until(lambda: counts(engine)["leads"] > before + 200, 60, "rows to arrive", interval=0.02)
    sink.kill()
    sink.wait(10)
    assert counts(engine)["leads"] < expected, "the kill should land mid-stream"
    _produce(bootstrap, events[first:])
    sink = _sink(bootstrap, url, tmp / "sink.log")
    try:
        wait_until(lambda: counts(engine)["leads"] >= expected, 120, "every row after the restart")
        time.sleep(2)
        assert counts(engine)["leads"] == expected  # each lead exactly once (the primary key would refuse twice)
        assert sink.poll() is None
    finally:
        sink.terminate()
        sink.wait(20)
        engine.dispose()


def test_sqlite_registry_survives_kill_9(cluster, accepted_events, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _kill_mid_stream_then_restart(cluster.bootstrap_servers, url, accepted_events[: N // 2], tmp_path, N // 2)


# An outage of 8 s in `make test` (the sink retries in 0.5, 1, 2 and 4 s); of 20 s, on the backoff's cap of 5 s a
# while, in `make test-faults`.
@pytest.mark.parametrize("outage", [pytest.param(8, id="8s-outage"),
                                    pytest.param(20, id="20s-outage", marks=pytest.mark.faults)])
def test_postgres_registry_survives_kill_9_and_an_outage(cluster, accepted_events, tmp_path: Path,
                                                         outage: int) -> None:
    with PostgresServer() as pg:
        # Same events again: the registry must hold each lead once, whatever was consumed before.
        _kill_mid_stream_then_restart(cluster.bootstrap_servers, pg.url, accepted_events[: N // 2], tmp_path,
                                      N // 2)
        engine = registry_engine(pg.url)
        sink = _sink(cluster.bootstrap_servers, pg.url, tmp_path / "sink-pg.log")
        try:
            _produce(cluster.bootstrap_servers, accepted_events[N // 2:])
            wait_until(lambda: counts(engine)["leads"] > N // 2 + 100, 60, "load before the outage", interval=0.1)
            pg.stop()  # PostgreSQL down under load
            time.sleep(outage)
            assert sink.poll() is None, "the sink must wait for the database, not die"
            pg.start()
            wait_until(lambda: counts(engine)["leads"] >= N, 120, "every row after the outage")
            time.sleep(2)
            assert counts(engine)["leads"] == N
        finally:
            sink.terminate()
            sink.wait(20)
            engine.dispose()


def test_registry_sink_stops_on_sigterm_while_the_database_is_down(cluster, accepted_events, tmp_path: Path) -> None:
    """SIGTERM ends the sink whether it waits for the database at start or in an outage mid-stream, and nothing of
    the batch it held is lost (a stop by KeyboardInterrupt was once turned into the driver's error and retried)."""
    with PostgresServer() as pg:
        url = pg.url
        pg.stop()
        sink = _sink(cluster.bootstrap_servers, url, tmp_path / "sink-down.log")
        wait_until(lambda: b"unavailable at start" in (tmp_path / "sink-down.log").read_bytes(), 60,
                   "the sink waiting for the database")
        sink.terminate()
        assert sink.wait(15) == 0, "stopped while waiting for the database at start"
        pg.start()
        engine = registry_engine(url)
        before = counts(engine)["leads"]
        sink = _sink(cluster.bootstrap_servers, url, tmp_path / "sink-outage.log")
        try:
            _produce(cluster.bootstrap_servers, accepted_events[:300])
            wait_until(lambda: counts(engine)["leads"] > before, 60, "rows before the outage", interval=0.05)
            pg.stop()
            _produce(cluster.bootstrap_servers, accepted_events[300:600])  # something to write in the outage
            wait_until(lambda: b"registry database unavailable (" in (tmp_path / "sink-outage.log").read_bytes(),
                       60, "the sink retrying in the outage")
            sink.terminate()
            assert sink.wait(15) == 0, "stopped in an outage"
        finally:
            if sink.poll() is None:
                sink.kill()
        pg.start()
        sink = _sink(cluster.bootstrap_servers, url, tmp_path / "sink-after.log")
        try:
            # The outage's sink may have written the rows (the shared topic holds other tests' leads too, read
            # first): the count alone can be reached before this sink has even set up its SIGTERM handler.
            wait_until(lambda: b"registry sink starting" in (tmp_path / "sink-after.log").read_bytes(), 60,
                       "the sink to start")
            wait_until(lambda: counts(engine)["leads"] >= before + 600, 120, "every row after the restart")
        finally:
            sink.terminate()
            assert sink.wait(20) == 0
            engine.dispose()


# Last in the module: its leads join the shared topic after the counting tests above have read it.
def test_postgres_registry_shows_the_case_lead_v2_fields(cluster, tmp_path: Path) -> None:
    """Migration 0003 on a registry holding v1 rows, then a v1 lead, a v2 lead and a v2 case through the sink."""
    from datetime import date

    from sqlalchemy import create_engine, select, text

    from leadbus.sinks.registry import cases, leads, migrate

    now = datetime.now(UTC)
    lead_schema, accepted = CATALOG.latest("cn.leadbus.CaseLead"), CATALOG.latest("cn.leadbus.LeadAccepted")
    v1, v2 = TrafficGenerator(seed=15).leads(2, now - timedelta(hours=1), timedelta(seconds=1))
    icp = "浙ICP备12345678号-1"
    v2_record = v2.to_avro()
    v2_record.update({"conduct_from": date(2024, 3, 1), "conduct_to": date(2024, 12, 31), "prior_penalties": [
        {"kind": "ADMINISTRATIVE", "decided_on": date(2023, 6, 1), "decided_by": "杭州市市场监督管理局",
         "violation": "ART_215", "reference": "杭市监罚〔2023〕12号"}]})
    v2_record["online"] = {**(v2_record.get("online") or {"platform": None, "shop_id": None, "urls": [], "ips": []}),
                           "icp_filings": [icp]}
    v2_record["facts"] = {**v2_record["facts"], "labels_sold": 12_000, "labels_held": 30_000,
                          "labels_made_by": "OTHERS", "mark_use": "SERVICES"}
    events = []
    v1_schema = CATALOG.version("cn.leadbus.CaseLead", 1)  # a publisher built before v2
    for schema, lead in ((v1_schema, v1.to_avro()), (lead_schema, v2_record)):
        source = Source(f"leadbus.intake.{lead['publisher']['agency']}", 0, 0)
        outcome = examine(encode(schema, lead), source, CATALOG, now)
        assert isinstance(outcome, Acceptance), outcome
        events.append((LEADS_ACCEPTED, lead["lead_id"].encode(), encode(accepted, accepted_record(outcome, now))))
    case = {
        "case_id": "CASE-V2REGISTRY0001", "version": 1, "members": [v2_record["lead_id"]],
        "reporters": [{"agency": "SAMR", "province": "33"}], "identifiers": [{"kind": "icp", "value": icp}],
        "suspect_name": "杭州某标识印刷有限公司", "suspect_province": "33", "categories": ["AUTO_PARTS"],
        "violations": ["ART_215"], "facts": {**{k: None for k in (
            "illegal_business_amount_fen", "illegal_gains_fen", "sales_amount_fen", "goods_value_fen", "copies",
            "works", "clicks", "members", "trademark_kinds", "labels", "loss_fen", "copies_held", "patents",
            "rights_holder_bankrupt")}, "labels_sold": 12_000, "labels_held": 30_000, "labels_made_by": "OTHERS",
            "mark_use": "SERVICES"},
        "first_reported_at": now, "last_reported_at": now, "handling": "OPEN", "share_with": [],
        "cross_border": False, "countries": [], "merged_from": [], "merged_into": None, "updated_at": now,
        "conduct_from": date(2024, 3, 1), "conduct_to": date(2024, 12, 31), "prior_penalties": [
            {"kind": "ADMINISTRATIVE", "decided_on": date(2023, 6, 1), "decided_by": "杭州市市场监督管理局",
             "violation": "ART_215"}], "police_measures_needed": False,
    }  # fmt: skip
    events.append(("leadbus.cases", case["case_id"].encode(),
                   encode(CATALOG.latest("cn.leadbus.CaseUpdated"), case)))
    with PostgresServer() as pg:
        old = create_engine(pg.url)
        migrate(old, "0002")  # a registry of before v2, holding a row
        with old.begin() as conn:
            conn.execute(text("INSERT INTO leads VALUES ('old-lead', 0, 'SAMR', '31', 'FOOD', 'ART_140', '某公司', "
                              "now(), now(), repeat('0', 64))"))
        old.dispose()
        engine = registry_engine(pg.url)  # migrates to head: 0003 adds the v2 columns, the old row keeps its data
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "enable.idempotence": True})
        for topic, key, value in events:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(30) == 0
        sink = _sink(cluster.bootstrap_servers, pg.url, tmp_path / "sink-v2.log")
        try:
            def arrived() -> bool:
                with engine.connect() as conn:
                    ids = {r.lead_id for r in conn.execute(select(leads.c.lead_id))}
                    return {v1.lead_id, v2_record["lead_id"]} <= ids and conn.execute(
                        select(cases.c.case_id).where(cases.c.case_id == case["case_id"])).first() is not None
            wait_until(arrived, 120, "the v1 lead, the v2 lead and the v2 case in the registry")
        finally:
            sink.terminate()
            sink.wait(20)
        with engine.connect() as conn:
            rows = {r.lead_id: r for r in conn.execute(select(leads))}
            stored = conn.execute(select(cases).where(cases.c.case_id == case["case_id"])).one()
        engine.dispose()
    assert rows["old-lead"].violation == "ART_140" and rows["old-lead"].conduct_from is None
    old_lead = rows[v1.lead_id]
    assert (old_lead.conduct_from, old_lead.prior_penalties, old_lead.icp_filings, old_lead.labels_made_by,
            old_lead.mark_use) == (None, None, None, None, None)  # fmt: skip
    for row in (rows[v2_record["lead_id"]], stored):
        assert (row.conduct_from, row.conduct_to) == (date(2024, 3, 1), date(2024, 12, 31))
        assert (row.labels_sold, row.labels_held, row.labels_made_by, row.mark_use) == (12_000, 30_000, "OTHERS",
                                                                                         "SERVICES")
        assert json.loads(row.icp_filings) == [icp]
        penalty = json.loads(row.prior_penalties)[0]
        assert penalty["decided_on"] == "2023-06-01" and penalty["violation"] == "ART_215"
        assert penalty["decided_by"] == "杭州市市场监督管理局"


def _case_updated(case_id: str, version: int, members: list[str], now: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "case_id": case_id, "version": version, "members": members, "reporters": [{"agency": "SAMR", "province": "31"}],
        "identifiers": [], "suspect_name": "上海某贸易有限公司", "suspect_province": "31", "categories": ["COSMETICS"],
        "violations": ["ART_214"], "facts": {}, "first_reported_at": now, "last_reported_at": now,
        "handling": "OPEN", "share_with": [], "cross_border": False, "countries": [], "merged_from": [],
        "merged_into": None, "updated_at": now, **extra,
    }  # fmt: skip


def test_postgres_registry_records_the_link_history(cluster, tmp_path: Path) -> None:
    """Migration 0005 on a registry of before it: each analyst's merge and split of a case (who, when, why, which
    suggestion, which leads left, where to) becomes one row per case and decision, redelivered or not; a case
    version without analysts' decisions (CaseUpdated v2) adds none."""
    from sqlalchemy import create_engine, select

    from leadbus.sinks.registry import case_link_history, cases, migrate

    now = datetime.now(UTC).replace(microsecond=0)
    a, b, c, d = "CASE-7000000000000A01", "CASE-7000000000000B02", "CASE-7000000000000C03", "CASE-7000000000000D04"
    leads_a, leads_b = ["lead-a1", "lead-a2"], ["lead-b1", "lead-b2"]
    analyst = {"agency": "SAMR", "province": "31", "role": "SUPERVISOR"}
    confirm = {"decision_id": "6f1c1a52-0d5e-4a8e-9a0b-0c2f1d3e4f51", "action": "CONFIRM", **analyst,
               "user": "wang.fang", "reason": "同一仓库发货，字号相同", "decided_at": now - timedelta(minutes=5),
               "suggestion_id": "SUG-0123456789ABCDEF", "merged": b, "leads": [], "split_from": None,
               "split_to": None}
    split = {"decision_id": "7a2d2b63-1e6f-4b9f-8b1c-1d3e2f4a5b62", "action": "SPLIT", **analyst, "user": "li.na",
             "reason": "lead-b2 是另一家店：仅地址相同", "decided_at": now, "suggestion_id": None, "merged": None,
             "leads": ["lead-b2"], "split_from": a, "split_to": c}
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    events = [
        _case_updated(d, 1, ["lead-d1"], now),  # no link_history field at all: an older writer
        _case_updated(a, 1, leads_a, now, link_history=[]),
        _case_updated(b, 2, leads_b, now, link_history=[], merged_into=a),
        _case_updated(a, 2, leads_a + leads_b, now, link_history=[confirm], merged_from=[b]),
        _case_updated(a, 3, [*leads_a, "lead-b1"], now, link_history=[confirm, split], merged_from=[b]),
        _case_updated(c, 1, ["lead-b2"], now, link_history=[split]),
    ]
    old_writer = CATALOG.version("cn.leadbus.CaseUpdated", 2)
    encoded = [encode(old_writer if e["case_id"] == d else schema, e) for e in events]
    with PostgresServer() as pg:
        old = create_engine(pg.url)
        migrate(old, "0004")
        old.dispose()
        engine = registry_engine(pg.url)  # 0005 adds case_link_history
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "enable.idempotence": True})
        for _ in range(2):  # every event delivered twice
            for event, value in zip(events, encoded, strict=True):
                producer.produce("leadbus.cases", key=event["case_id"].encode(), value=value)
        assert producer.flush(30) == 0
        sink = _sink(cluster.bootstrap_servers, pg.url, tmp_path / "sink-links.log")
        try:
            def arrived() -> bool:
                with engine.connect() as conn:
                    stored = {r.case_id: r.version for r in conn.execute(select(cases))}
                    return stored.get(a) == 3 and c in stored and d in stored
            wait_until(arrived, 120, "the merged, split and new cases in the registry")
        finally:
            sink.terminate()
            sink.wait(20)
        with engine.connect() as conn:
            rows = {(r.case_id, r.action): r for r in conn.execute(select(case_link_history))}
            total = len(conn.execute(select(case_link_history)).all())
        engine.dispose()
    assert total == 3 and set(rows) == {(a, "CONFIRM"), (a, "SPLIT"), (c, "SPLIT")}
    merged = rows[(a, "CONFIRM")]
    assert (merged.analyst, merged.agency, merged.province, merged.role) == ("wang.fang", "SAMR", "31", "SUPERVISOR")
    assert merged.merged == b and merged.suggestion_id == "SUG-0123456789ABCDEF"
    assert merged.reason == "同一仓库发货，字号相同" and merged.decided_at == now - timedelta(minutes=5)
    for case_id in (a, c):
        row = rows[(case_id, "SPLIT")]
        assert (row.analyst, row.split_from, row.split_to, json.loads(row.leads)) == ("li.na", a, c, ["lead-b2"])
        assert row.decided_at == now and row.reason.startswith("lead-b2")
