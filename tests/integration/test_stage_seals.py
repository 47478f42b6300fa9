"""Stage seals on a real broker: aborted transactions and a restart leave no false alarm (issue #14).

A small stage runs in process with a seal key. Some records make their transaction abort after the
stage sealed its outputs (an output to a partition the topic does not have: the produce fails once the
records before it in the transaction were already sealed and written); the stage retries in halves and
dead-letters the bad record. Then the stage stops and another starts (a new chain). The output topic,
read as a replay reads it (read_committed), verifies without a finding; its chains are as many as the
stage's starts, and it carries far fewer signatures than records.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.stage import ExactlyOnceStage, StageConfig
from leadbus.provisioning.topics import apply_topics
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes
from leadbus.stage_seals import SIGNATURE_HEADER, StageSeal
from leadbus.topics import LEADS_REJECTED, TopicSpec, load_declarations
from tests.kafka_helpers import read_all
from tests.processes import wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
IN, OUT, CHANGELOG = "test.sealing.in", "test.sealing.out", "test.sealing.state"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("sealing-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, [*load_declarations(), TopicSpec(IN, 2, 1, 1, {}),
                                            TopicSpec(OUT, 3, 1, 1, {}), TopicSpec(CHANGELOG, 2, 1, 1, {})])
        yield kc


class Echo:
    """Echoes each record to OUT by its key; `badpart-*` also asks for a partition OUT does not have."""

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        value = record.value or b""
        outputs = [Output(OUT, record.key, value)]
        if value.startswith(b"badpart"):
            outputs.append(Output(OUT, record.key, value, partition=42))
        return Result(outputs)


def run(config: StageConfig, values: list[bytes], bootstrap: str, expect_out: int) -> tuple[ExactlyOnceStage, int]:
    """The stage until `expect_out` records are out, and how many times it started: a stage that ends is started again
    as `leadbus process` under its supervisor would be (a new chain each time). A producer that meets a fatal error
    (the broker refused an abort once in a while, INVALID_TXN_STATE, after many quick aborts) no longer ends it: the
    stage replaces the producer in place and keeps its chain (tests/integration/test_stage_fatal_producer.py)."""
    starts = 0
    stage: ExactlyOnceStage | None = None
    runner: threading.Thread | None = None

    def start() -> None:
        nonlocal stage, runner, starts
        stage = ExactlyOnceStage(config, Echo())
        runner = threading.Thread(target=stage.run, kwargs={"max_seconds": 600}, daemon=True)
        runner.start()
        starts += 1

    def out_or_restart() -> bool:
        if len(read_all(bootstrap, OUT)) >= expect_out:
            return True
        if runner is not None and not runner.is_alive():
            start()
        return False

    start()
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3})
        for value in values:
            producer.produce(IN, key=value, value=value)
        assert producer.flush(30) == 0
        wait_until(out_or_restart, 540, f"{expect_out} records on {OUT}", interval=3.0)
    finally:
        assert stage is not None and runner is not None
        stage.stop()
        runner.join(300)  # a commit under load may take long; the next run opens the same state folder
        assert not runner.is_alive(), "the stage did not stop within 300 s"
    return stage, starts


def test_aborted_transactions_and_a_restart_verify_without_a_false_alarm(cluster: KafkaCluster,
                                                                         tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    key = Ed25519PrivateKey.generate()
    config = StageConfig(name="sealing", kafka=KafkaSettings(bootstrap), topics=[IN], changelog_topic=CHANGELOG,
                         state_dir=tmp_path / "state", group_id="sealing", retry_budget=0.5, seal_key=key)
    first = [f"good-{i}".encode() for i in range(120)]
    first[30], first[90] = b"badpart-1", b"badpart-2"
    stage, starts = run(config, first, bootstrap, 118)  # the two bad records are dead letters, with no output
    assert stage.sealer is not None
    second = [f"later-{i}".encode() for i in range(60)]
    _, more = run(config, second, bootstrap, 178)
    starts += more

    out = read_all(bootstrap, OUT)  # read_committed: an aborted transaction's records are not there
    values = Counter(m.value() for m in out)
    good = (set(first) | set(second)) - {b"badpart-1", b"badpart-2"}
    assert set(values) == good and max(values.values()) == 1, "exactly once, and nothing of an aborted transaction"
    letters = [bytes(decode(CATALOG, m.value())[1]["original"]) for m in read_all(bootstrap, LEADS_REJECTED)]
    assert {b"badpart-1", b"badpart-2"} <= set(letters), "the bad records' transactions aborted; they went dead"

    raw = public_bytes(key.public_key())
    since = datetime.now(UTC) - timedelta(hours=1)
    registry = KeyRegistry([PublisherKey("LEADBUS-sealing", key_id_of(raw), raw, since, since, require_signed=False)])
    verifier = StageSealVerifier(registry)
    found = []
    for m in sorted(out, key=lambda m: (m.partition(), m.offset())):
        record = ReplayRecord(OUT, m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value(),
                              m.headers() or [], CATALOG)
        found += verifier.check(record)
    found += verifier.finish()
    assert found == [], [f.where() + " " + f.check + ": " + f.message for f in found]
    seals = [StageSeal.from_headers(m.headers() or []) for m in out]
    assert all(s is not None for s in seals) and 2 <= len({s.chain for s in seals if s}) <= starts, \
        "a new chain per start"
    signed = sum(1 for m in out if any(n == SIGNATURE_HEADER for n, _ in m.headers() or []))
    assert 0 < signed < len(out) and verifier.signatures == signed  # one per partition per transaction
    # What aborted was sealed before it aborted: the numbers of the committed chain go on without a gap.
    per_lane: dict[tuple[str, int], list[int]] = {}
    for m, s in zip(out, seals, strict=True):
        assert s is not None
        per_lane.setdefault((s.chain, m.partition()), []).append(s.sequence)
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in per_lane.values())
