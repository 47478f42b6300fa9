"""The pipelined end of transaction on a real broker: a commit that fails, or a worker killed, while the next batch has
already been stepped over the committing transaction's state.

Exactly once must hold through both: no output of the batch stepped ahead (nor of the failed one) is ever visible, its
state writes are gone with the abort, and after a restart every record's output appears exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition

import leadbus.processors.stage as stage_module
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import RDKAFKA_LOG, KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.records import Output, Record, Result, StateView
from leadbus.processors.stage import ExactlyOnceStage, StageConfig
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import LEADS_ACCEPTED, TopicSpec, intake_topic, load_declarations
from tests.kafka_helpers import committed_end, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
IN, OUT, CHANGELOG = "test.pipelined.in", "test.pipelined.out", "test.pipelined.state"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("pipelined-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, [*load_declarations(), TopicSpec(IN, 2, 1, 1, {}),
                                            TopicSpec(OUT, 1, 1, 1, {}), TopicSpec(CHANGELOG, 2, 1, 1, {})])
        yield kc


class Seen:
    """Outputs each record with the number of times its value was seen before (its state): a state write of an
    aborted transaction kept anywhere would show as a count above 0."""

    def __init__(self) -> None:
        self.handled: set[bytes] = set()

    def handle(self, record: Record, state: StateView, now: datetime) -> Result:
        value = record.value or b""
        self.handled.add(value)
        seen = int(state.get(value) or b"0")
        time.sleep(0.0005)
        return Result([Output(OUT, record.key, value + b"|" + str(seen).encode())], {value: str(seen + 1).encode()})


def _config(bootstrap: str, tmp_path: Path, worker: str) -> StageConfig:
    return StageConfig(name="pipelined", kafka=KafkaSettings(bootstrap), topics=[IN], changelog_topic=CHANGELOG,
                       state_dir=tmp_path / "state", group_id="pipelined", worker_id=worker, batch_size=200,
                       lag_interval=0)


def test_a_fenced_commit_with_the_next_batch_stepped_loses_and_duplicates_nothing(cluster, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """The producer is fenced (a second producer with its transactional id) just before a transaction's offsets and
    commit, and the commit is held until the next batch has been stepped: the stage stops, nothing of either batch
    is visible, and a restarted stage outputs every record exactly once, each seen for the first time."""
    bootstrap = cluster.bootstrap_servers
    values = [f"v-{i}".encode() for i in range(3000)]
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 3, "logger": RDKAFKA_LOG})
    for i, value in enumerate(values):
        producer.produce(IN, key=b"k%d" % (i % 7), value=value, partition=i % 2)
    assert producer.flush(30) == 0
    # pytest.raises below keeps this frame in a reference cycle (its traceback) that only a full collection frees:
    # the client would outlive the module's broker, reconnecting
    del producer

    config = _config(bootstrap, tmp_path, "first")
    step = Seen()
    real, ends = stage_module._end, []
    ahead: dict[str, int] = {}
    usurpers: list[Producer] = []

    def fenced_end(txn: Producer, offsets: list[TopicPartition], group: object) -> Any:
        ends.append(offsets)
        if len(ends) == 4:
            handled = len(step.handled)  # the stage's thread goes on to the next batch meanwhile
            usurper = config.kafka.transactional_producer(f"leadbus-{config.name}-{config.worker_id}")
            usurper.init_transactions(30)  # the coordinator bumps the epoch: the stage's producer is fenced
            usurpers.append(usurper)
            wait_until(lambda: len(step.handled) > handled, 30, "the next batch to be stepped", interval=0.01)
            time.sleep(0.2)
            ahead["handled"] = len(step.handled)
        return real(txn, offsets, group)

    monkeypatch.setattr(stage_module, "_end", fenced_end)
    stage = ExactlyOnceStage(config, step)
    with pytest.raises(KafkaException):
        stage.run(max_seconds=120)
    monkeypatch.setattr(stage_module, "_end", real)
    usurpers.clear()  # its client goes with it
    assert len(ends) == 4, "the stage stopped at the fenced commit"

    visible = [m.value() for m in read_all(bootstrap, OUT)]
    group = KafkaSettings(bootstrap).consumer("pipelined")
    committed = {tp.partition: tp.offset for tp in group.committed([TopicPartition(IN, 0), TopicPartition(IN, 1)],
                                                                   timeout=20)}
    group.close()
    before = {values[i] for i in range(len(values)) if i // 2 < committed.get(i % 2, 0)}
    assert Counter(visible) == Counter(v + b"|0" for v in before), "exactly what committed is visible, once"
    assert ahead["handled"] > len(before) + 200, "the batch after the fenced one had been stepped"
    assert len(before) < len(values)

    again = ExactlyOnceStage(_config(bootstrap, tmp_path, "second"), Seen())
    runner = threading.Thread(target=again.run, kwargs={"max_seconds": 180}, daemon=True)
    runner.start()
    try:
        wait_until(lambda: len(read_all(bootstrap, OUT)) >= len(values), 150, "every record out")
    finally:
        again.stop()
        runner.join(60)
    outputs = Counter(m.value() for m in read_all(bootstrap, OUT))
    assert outputs == Counter(v + b"|0" for v in values), "each record out once, its value seen for the first time"


_KILLING_WORKER = """
import os, signal, sys, threading, time
import leadbus.processors.stage as stage_module
from leadbus.cli import main

real, ends = stage_module._end, []
mode, at = sys.argv[1], int(sys.argv[2])


def _end(producer, offsets, group):
    ends.append(1)
    if len(ends) == at:
        if mode == "mid-commit":  # while the commit's requests are on their way
            threading.Timer(0.003, os.kill, (os.getpid(), signal.SIGKILL)).start()
        else:  # committed on the bus, the next batch being stepped, the local state not yet written
            real(producer, offsets, group)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
    return real(producer, offsets, group)


stage_module._end = _end
sys.argv = ["leadbus", *sys.argv[3:]]
main()
"""


@pytest.mark.parametrize("mode", ["mid-commit", "after-commit"])
def test_kill_9_during_the_pipelined_commit_every_lead_exactly_once(cluster, tmp_path: Path, mode: str) -> None:
    """The intake worker is killed on its 3rd transaction's end, in the commit or just after it (the local state not
    yet written), while it steps the next batch: after a restart every lead is accepted exactly once."""
    bootstrap = cluster.bootstrap_servers
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    before = Counter(str(decode(CATALOG, m.value())[1]["lead"]["lead_id"]) for m in read_all(bootstrap, LEADS_ACCEPTED))
    seed = 7 if mode == "mid-commit" else 8
    leads = list(TrafficGenerator(seed=seed).leads(6000, datetime.now(UTC) - timedelta(hours=1),
                                                   timedelta(milliseconds=10)))
    raw = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "log_level": 3, "logger": RDKAFKA_LOG})
    for lead in leads:
        data = encode(schema, lead.to_avro())
        raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=data)
        if lead.lead_id[-1] in "02468":  # an exact redelivery of a fifth of the leads
            raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=data)
    assert raw.flush(60) == 0
    del raw

    state, logs = tmp_path / "state", tmp_path / "logs"
    logs.mkdir()
    ended = committed_end(bootstrap, LEADS_ACCEPTED)
    with open(logs / "killed.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", _KILLING_WORKER, mode, "3", "process", "--stage", "intake", "--bootstrap",
             bootstrap, "--state-dir", str(state), "--worker-id", f"killed-{mode}"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert worker.wait(180) == -9, "the worker killed itself at its 3rd commit"
    finally:
        stop(worker)
    assert committed_end(bootstrap, LEADS_ACCEPTED) >= ended

    def accepted() -> Counter[str]:
        return Counter(str(decode(CATALOG, m.value())[1]["lead"]["lead_id"])
                       for m in read_all(bootstrap, LEADS_ACCEPTED)) - before

    mid = accepted()
    assert len(mid) < len(leads), "the kill landed mid-stream"
    assert not mid or max(mid.values()) == 1

    restarted = start_worker(bootstrap, state, f"killed-{mode}", logs)
    try:
        expected = {lead.lead_id for lead in leads}
        wait_until(lambda: set(accepted()) >= expected, 240, "every lead to be accepted after the restart")
        counts = accepted()
        assert set(counts) == expected
        assert max(counts.values()) == 1, "a lead appears twice in leads.accepted"
    finally:
        stop(restarted)
