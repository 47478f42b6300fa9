"""Two intake workers started together, default worker ids, round-robin assignment: no lead lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState, Producer

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import INTAKE_BY_LEAD, LEADS_ACCEPTED, intake_topic, load_declarations, stage_group
from tests.kafka_helpers import read_all
from tests.processes import stop, wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("intake-scale-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, load_declarations())
        yield kc


def _start(bootstrap: str, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """A worker as an operator starts one: no --worker-id, so the default id is used."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "leadbus.cli", "process", "--stage", "intake", "-b", bootstrap,
                                 "--state-dir", str(state)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _members(bootstrap: str) -> list[list[tuple[str, int]]]:
    """The intake group's members' assignments once it is stable, else []."""
    group = stage_group("intake")
    admin = KafkaSettings(bootstrap).admin()  # held while the future runs: a collected client never answers
    try:
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # noqa: BLE001 - not created before the first join
        return []
    if described.state != ConsumerGroupState.STABLE:
        return []
    return [[(tp.topic, tp.partition) for tp in m.assignment.topic_partitions] for m in described.members]


def test_two_workers_started_together_split_the_partitions_and_judge_every_lead_once(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    workers = [_start(bootstrap, tmp_path / f"state-{n}", tmp_path / f"worker-{n}.log") for n in (1, 2)]
    try:
        partitions = sum(len(t.partitions) for name, t in KafkaSettings(bootstrap).admin().list_topics(
            timeout=20).topics.items() if name.startswith("leadbus.intake.") or name == INTAKE_BY_LEAD)

        def split() -> bool:
            members = _members(bootstrap)
            return len(members) == 2 and sum(map(len, members)) == partitions

        wait_until(split, 180, "both workers to hold intake's partitions")
        members = _members(bootstrap)
        sizes = sorted(map(len, members))
        assert sizes[1] - sizes[0] <= 1, f"round robin splits evenly, got {sizes}"
        # And every topic evenly: a worker's load is its partitions' traffic, and agencies' traffic differs by 100x
        # (with 3 partitions an agency split 2:1: one worker examined 61 % of the events, bench/scale.py).
        for topic in {t for m in members for t, _ in m}:
            held = [sum(1 for t, _ in m if t == topic) for m in members]
            assert held[0] == held[1], f"{topic} split {held}"
        # Each owns a share of the repartition topic, whose partitions alone carry state: no store has two writers.
        by_lead = [{p for t, p in m if t == INTAKE_BY_LEAD} for m in members]
        assert all(by_lead) and not (by_lead[0] & by_lead[1])

        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "log_level": 3})
        schema = CATALOG.latest("cn.leadbus.CaseLead")
        leads = list(TrafficGenerator(seed=2718).leads(600, datetime.now(UTC) - timedelta(hours=1),
                                                       timedelta(milliseconds=10)))
        agencies = sorted({lead.publisher.agency for lead in leads})
        for i, lead in enumerate(leads):
            value = encode(schema, lead.to_avro())
            producer.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=value)
            if i % 3 == 0:  # an exact redelivery, keyless, on another agency's topic: judged in the same place
                other = agencies[(agencies.index(lead.publisher.agency) + 1) % len(agencies)]
                producer.produce(intake_topic(other), value=value)
        assert producer.flush(60) == 0
        expected = {lead.lead_id for lead in leads}

        def ids() -> Counter[str]:
            return Counter(str(decode(CATALOG, m.value())[1]["lead"]["lead_id"])
                           for m in read_all(bootstrap, LEADS_ACCEPTED))

        wait_until(lambda: set(ids()) >= expected, 240, "both workers to accept every lead")
        time.sleep(3)  # a doubled lead would arrive now
        counts = ids()
        assert set(counts) == expected
        assert max(counts.values()) == 1, [lead for lead, n in counts.items() if n > 1][:5]
        assert all(w.poll() is None for w in workers), "a worker died (a shared transactional id fences the other)"
        # Both judged leads: each holds repartition partitions that examined leads went to.
        examined = Counter(m.partition() for m in read_all(bootstrap, INTAKE_BY_LEAD))
        assert all(any(examined[p] for p in owned) for owned in by_lead)
    finally:
        for worker in workers:
            stop(worker)
