"""A real intake worker's /metrics: consumer lag per partition, latency, transaction durations, dead letters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from leadbus.localbroker.cluster import free_port
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import INTAKE_BY_LEAD, LEADS_ACCEPTED, LEADS_REJECTED, intake_topic
from tests.kafka_helpers import publish_leads, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration

_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            found.append((match["name"], labels, float(match["value"])))
    return found


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items()))


def test_a_stage_worker_reports_lag_latency_and_dead_letters(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    port = free_port()
    worker = start_worker(bootstrap, tmp_path / "state", "metrics-1", tmp_path / "logs",
                          extra=["--metrics-port", str(port)])
    try:
        leads = list(TrafficGenerator(seed=5).leads(200, datetime.now(UTC) - timedelta(minutes=5),
                                                    timedelta(milliseconds=10)))
        publish_leads(bootstrap, leads)
        garbage = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
        for i in range(7):
            garbage.produce(intake_topic("SAMR"), key=f"junk-{i}".encode(), value=b"not avro at all %d" % i)
        assert garbage.flush(30) == 0
        sent = len(leads) + 7

        wait_until(lambda: len(read_all(bootstrap, LEADS_ACCEPTED)) + len(read_all(bootstrap, LEADS_REJECTED))
                   >= sent, 180, "every record accepted or rejected")

        def scrape() -> list[tuple[str, dict[str, str], float]]:
            return _samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)

        def lag_drained() -> bool:
            lag = [(lab, v) for n, lab, v in scrape() if n == "leadbus_consumer_lag" and lab["stage"] == "intake"]
            # Drained: every owned partition reports, none is behind by more than its last commit marker.
            return bool(lag) and all(v <= 1 for _, v in lag)

        wait_until(lag_drained, 60, "the intake worker's lag gauges to report a drained input", interval=2)
        samples = scrape()
        lag_topics = {lab["topic"] for n, lab, _ in samples if n == "leadbus_consumer_lag"}
        assert intake_topic("SAMR") in lag_topics and INTAKE_BY_LEAD in lag_topics
        assigned = _value(samples, "leadbus_stage_assigned_partitions", stage="intake")
        assert assigned == sum(1 for n, _, _ in samples if n == "leadbus_consumer_lag") > 0

        # Every record is counted twice by intake: once on its intake topic, once on the repartition topic.
        assert _value(samples, "leadbus_stage_records_total", stage="intake") >= sent
        assert _value(samples, "leadbus_stage_dead_letter_outputs_total", stage="intake") == 7
        rejected_by_reason = _value(samples, "leadbus_intake_rejected_total")
        assert rejected_by_reason == 7

        count = _value(samples, "leadbus_stage_latency_seconds_count", stage="intake")
        total = _value(samples, "leadbus_stage_latency_seconds_sum", stage="intake")
        assert count >= sent
        assert 0 < total / count < 120, f"mean record-to-commit latency {total / count:.1f}s"
        under_a_minute = _value(samples, "leadbus_stage_latency_seconds_bucket", stage="intake", le="60.0")
        assert under_a_minute == count

        transactions = _value(samples, "leadbus_stage_transaction_seconds_count", stage="intake")
        assert 0 < transactions <= count
        assert 0 < _value(samples, "leadbus_stage_transaction_seconds_sum", stage="intake") / transactions < 30
        # Where the transactions' time went: every phase counted, and together they are the transactions' time
        # (from the step's start to the local state written) plus the consumes. `wait` is what the stage's thread
        # waited of `offsets` and `commit` (they run on its finisher thread): at most those.
        phases = {lab["phase"]: v for n, lab, v in samples
                  if n == "leadbus_stage_phase_seconds_total" and lab["stage"] == "intake"}
        assert set(phases) == {"consume", "step", "produce", "offsets", "commit", "wait", "local"}
        assert phases["step"] > 0 and phases["commit"] > 0 and phases["offsets"] > 0
        assert phases["wait"] <= phases["offsets"] + phases["commit"] + 0.05 * transactions
        spent = sum(v for phase, v in phases.items() if phase not in ("consume", "wait"))
        assert spent <= _value(samples, "leadbus_stage_transaction_seconds_sum", stage="intake") + 1e-3
        assert _value(samples, "leadbus_stage_up", stage="intake") == 1
        assert _value(samples, "leadbus_stage_last_commit_timestamp_seconds", stage="intake") > 1.7e9
    finally:
        stop(worker)
