"""The case registry on SQLite and PostgreSQL: kill -9 mid-stream and a database outage lose and double nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    return subprocess.Popen([sys.executable, "-m", "leadbus.cli", "registry", "-b", bootstrap, "--url", url],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _kill_mid_stream_then_restart(bootstrap: str, url: str, events: list[tuple[bytes, bytes]], tmp: Path,
                                  expected: int) -> None:
    engine = registry_engine(url)
    before = counts(engine)["leads"]
    sink = _sink(bootstrap, url, tmp / "sink.log")
    _produce(bootstrap, events)
    wait_until(lambda: counts(engine)["leads"] > before + 200, 60, "rows to arrive", interval=0.1)
    sink.kill()
    sink.wait(10)
    assert counts(engine)["leads"] < expected, "the kill should land mid-stream"
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


def test_postgres_registry_survives_kill_9_and_an_outage(cluster, accepted_events, tmp_path: Path) -> None:
    with PostgresServer() as pg:
        # Same events again: the registry must hold each lead once, whatever was consumed before.
        _kill_mid_stream_then_restart(cluster.bootstrap_servers, pg.url, accepted_events[: N // 2], tmp_path,
                                      N // 2)
        engine = registry_engine(pg.url)
        sink = _sink(cluster.bootstrap_servers, pg.url, tmp_path / "sink-pg.log")
        try:
            _produce(cluster.bootstrap_servers, accepted_events[N // 2:])
            wait_until(lambda: counts(engine)["leads"] > N // 2 + 100, 60, "load before the outage", interval=0.1)
            pg.stop()  # PostgreSQL down for 20 seconds under load
            time.sleep(20)
            assert sink.poll() is None, "the sink must wait for the database, not die"
            pg.start()
            wait_until(lambda: counts(engine)["leads"] >= N, 120, "every row after the outage")
            time.sleep(2)
            assert counts(engine)["leads"] == N
        finally:
            sink.terminate()
            sink.wait(20)
            engine.dispose()
