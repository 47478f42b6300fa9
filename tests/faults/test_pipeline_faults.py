"""The long fault run (`make test-faults`): a 3-broker cluster under load loses a broker, the intake
worker is killed -9 mid-stream and the registry's database goes away for a while — and still
0 leads are lost and 0 rows doubled. LEADBUS_FAULT_LEADS sets the load (default 20,000)."""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.localbroker import KafkaCluster
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.sinks.registry import counts, registry_engine
from leadbus.topics import LEADS_ACCEPTED, intake_topic, load_declarations
from tests.kafka_helpers import read_all
from tests.postgres import PostgresServer
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.faults
CATALOG = packaged_catalog()
LEADS = int(os.environ.get("LEADBUS_FAULT_LEADS", "20000"))


def test_broker_worker_and_database_faults_lose_and_double_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    schema = CATALOG.latest("cn.leadbus.CaseLead")
    start = datetime.now(UTC) - timedelta(hours=1)
    leads = list(TrafficGenerator(seed=2026).leads(LEADS, start, timedelta(milliseconds=5)))
    with KafkaCluster(3, tmp_path / "kafka") as cluster, PostgresServer() as pg:
        bootstrap = cluster.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        logs = tmp_path / "logs"
        intake = start_worker(bootstrap, tmp_path / "state", "faults-intake", logs)
        registry = subprocess.Popen([sys.executable, "-m", "leadbus.cli", "registry", "-b", bootstrap, "--url",
                                     pg.url], stdout=open(logs / "registry.log", "ab"),  # noqa: SIM115
                                    stderr=subprocess.STDOUT)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "linger.ms": 5})
        confirmed: set[str] = set()

        def on_delivery(err: object, msg: object) -> None:
            if err is None:
                confirmed.add(msg.key().decode())  # type: ignore[attr-defined]

        try:
            for i, lead in enumerate(leads):
                producer.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(),
                                 value=encode(schema, lead.to_avro()), on_delivery=on_delivery)
                producer.poll(0)
                time.sleep(0.002)  # a steady load, so each fault strikes while traffic flows
                if i == LEADS // 4:
                    cluster.kill_node(2)  # a broker dies under load
                if i == LEADS // 2:
                    intake.kill()  # the processor dies mid-stream
                    intake.wait(10)
                    intake = start_worker(bootstrap, tmp_path / "state", "faults-intake", logs)
                    cluster.start_node(2)
                if i == 3 * LEADS // 4:
                    pg.stop()  # the registry's database goes away for a while
            assert producer.flush(120) == 0
            time.sleep(15)
            pg.start()
            assert len(confirmed) == LEADS

            def accepted_ids() -> Counter[str]:
                return Counter(str(decode(CATALOG, m.value())[1]["lead"]["lead_id"])
                               for m in read_all(bootstrap, LEADS_ACCEPTED, timeout=120))

            wait_until(lambda: set(accepted_ids()) >= confirmed, 900, "every confirmed lead to be accepted", 5)
            ids = accepted_ids()
            assert set(ids) == confirmed and max(ids.values()) == 1, "lost or doubled in leads.accepted"
            engine = registry_engine(pg.url)
            wait_until(lambda: counts(engine)["leads"] >= LEADS, 600, "every registry row", 5)
            time.sleep(3)
            assert counts(engine)["leads"] == LEADS
            engine.dispose()
            assert intake.poll() is None and registry.poll() is None
        finally:
            stop(intake)
            registry.terminate()
            registry.wait(30)
