"""A stage whose producer fails fatally replaces it and goes on exactly once; a record that keeps failing producers is
found and dead-lettered, not retried forever (CI: a broker refused an abort with INVALID_TXN_STATE, the producer was
fatal and the stage's thread died, test_stage_resilience waited out its timeout).

The fatal error is librdkafka's own, raised in the stage's real producer (tests/rdkafka_faults.py): the broker's
refusal comes only now and then.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.stage import ExactlyOnceStage, StageConfig
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import LEADS_REJECTED, TopicSpec, load_declarations
from tests.kafka_helpers import read_all
from tests.processes import wait_until
from tests.rdkafka_faults import fail_fatally

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
IN, OUT, CHANGELOG = "test.fatal.in", "test.fatal.out", "test.fatal.state"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("fatal-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, [*load_declarations()])
        yield kc


class Counting:
    """Echoes each record to the test's output topic, counting it in state."""

    def __init__(self, out: str) -> None:
        self.out = out

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        value = record.value or b""
        seen = int(state.get(value) or b"0")
        return Result([Output(self.out, record.key, value)], {value: str(seen + 1).encode()})


def restarts(name: str) -> float:
    return REGISTRY.get_sample_value("leadbus_stage_producer_restarts_total", {"stage": name}) or 0.0


def letters(bootstrap: str) -> dict[bytes, dict[str, Any]]:
    decoded = (decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_REJECTED))
    return {bytes(d["original"]): d for d in decoded}


def start(bootstrap: str, tmp_path: Path, name: str) -> tuple[StageConfig, ExactlyOnceStage, threading.Thread]:
    apply_topics(bootstrap, [TopicSpec(f"{IN}.{name}", 2, 1, 1, {}), TopicSpec(f"{OUT}.{name}", 1, 1, 1, {}),
                             TopicSpec(f"{CHANGELOG}.{name}", 2, 1, 1, {})])
    config = StageConfig(name=f"fatal-{name}", kafka=KafkaSettings(bootstrap), topics=[f"{IN}.{name}"],
                         changelog_topic=f"{CHANGELOG}.{name}", state_dir=tmp_path / "state", group_id=f"fatal-{name}",
                         batch_size=50, lag_interval=0)
    stage = ExactlyOnceStage(config, Counting(f"{OUT}.{name}"))
    return config, stage, threading.Thread(target=stage.run, kwargs={"max_seconds": 240}, daemon=True)


def feed(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
    for value in values:
        producer.produce(topic, key=value, value=value)
    assert producer.flush(30) == 0


def test_a_producer_that_fails_fatally_is_replaced_and_the_stage_goes_on_exactly_once(cluster: KafkaCluster,
                                                                                      tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    config, stage, runner = start(bootstrap, tmp_path, "once")
    before = restarts(config.name)
    values = [f"once-{i}".encode() for i in range(600)]
    runner.start()
    try:
        feed(bootstrap, config.topics[0], values[:300])
        wait_until(lambda: len(read_all(bootstrap, f"{OUT}.once")) >= 50, 120, "the stage's first outputs")
        first = stage._producer
        assert first is not None
        fail_fatally(first)  # as a broker refusing an abort leaves it: every transactional call fails fatally
        feed(bootstrap, config.topics[0], values[300:])
        wait_until(lambda: {m.value() for m in read_all(bootstrap, f"{OUT}.once")} >= set(values), 180,
                   "every record out after the producer failed")
        assert runner.is_alive(), "the stage's thread died with its producer"
        assert stage._producer is not first and restarts(config.name) == before + 1, "one producer replaced"
        outputs = Counter(m.value() for m in read_all(bootstrap, f"{OUT}.once"))
        assert set(outputs) == set(values) and max(outputs.values()) == 1, "exactly once across the new producer"
        assert not set(letters(bootstrap)) & set(values), "no record dead-lettered"
        assert {stage.state.get(p, v) for v in values[::17] for p in (0, 1)} == {b"1", None}, "state written once"
    finally:
        stage.stop()
        runner.join(60)
    assert not runner.is_alive()


def test_a_record_that_keeps_failing_producers_is_dead_lettered_and_the_rest_pass_exactly_once(
        cluster: KafkaCluster, tmp_path: Path) -> None:
    """Every transaction producing the poison record's output makes the producer fatal (as an output the broker
    refuses in a way that breaks the abort would): halving finds it, and once it failed alone twice it is a dead
    letter. No crash loop, nothing lost or doubled."""
    bootstrap = cluster.bootstrap_servers
    config, stage, runner = start(bootstrap, tmp_path, "poison")
    before = restarts(config.name)
    values = [f"poison-{i}".encode() for i in range(200)]
    poison = values[77]
    real_open = stage._open

    def open_failing(producer: Producer, prepared: Any) -> None:
        if any(o.value == poison and o.topic == f"{OUT}.poison" for o in prepared.outputs):
            fail_fatally(producer, reason="the poison record's output")
        real_open(producer, prepared)

    stage._open = open_failing  # type: ignore[method-assign]
    runner.start()
    try:
        feed(bootstrap, config.topics[0], values)
        good = set(values) - {poison}
        wait_until(lambda: {m.value() for m in read_all(bootstrap, f"{OUT}.poison")} >= good
                   and poison in letters(bootstrap), 180, "every good record out and the poison one dead-lettered")
        assert runner.is_alive(), "the stage's thread died"
        outputs = Counter(m.value() for m in read_all(bootstrap, f"{OUT}.poison"))
        assert set(outputs) == good and max(outputs.values()) == 1, "exactly once, nothing of the poison record"
        found = letters(bootstrap)
        assert found[poison]["reason"] == "STAGE_FAILED" and "fatally" in found[poison]["message"]
        assert found[poison]["source"]["topic"] == config.topics[0]
        assert not (set(found) & good), "no good record dead-lettered"
        assert 3 <= restarts(config.name) - before <= 12, "halved down to it, then it failed alone twice"
    finally:
        stage.stop()
        runner.join(60)
    assert not runner.is_alive()
