"""The linking stage killed -9 mid-stream, once with its local state kept and once with it lost, loses nothing and
repeats nothing: every case's CaseUpdated versions on `leadbus.cases` are those of an uninterrupted run, in order
(issue #16: the stage keeps what it read of its state in memory between records, and a crash must not leave any of
an aborted transaction in it)."""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from leadbus.avro import decode
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import CASES, LEADS_ACCEPTED, stage_group
from tests.kafka_helpers import produce, read_all, topics_cluster
from tests.processes import start_worker, stop, wait_until
from tests.unit.processors.linking_golden import CATALOG, NOW, MemoryState, _accepted

pytestmark = pytest.mark.integration
#: The stage commits up to 2,000 leads per transaction.
BATCH = 2000


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A broker of the test's own, for each size the test runs at: its linking group and cases topic see no other
    run's."""
    with topics_cluster(tmp_path_factory.mktemp("linking_crash-kafka")) as kc:
        yield kc


def _case(value: bytes) -> tuple[str, dict[str, Any]]:
    case = dict(decode(CATALOG, value)[1])
    case.pop("updated_at")  # the worker's clock
    return str(case["case_id"]), case


def _uninterrupted(values: list[bytes]) -> dict[str, list[dict[str, Any]]]:
    """case id → its CaseUpdated records in order, from the handler over the records without a crash."""
    handler, state = LinkingHandler(), MemoryState()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    now = datetime.now(UTC)
    for offset, value in enumerate(values):
        result = handler.handle(Record(LEADS_ACCEPTED, 0, offset, None, value), state, now)
        state.pending.update(result.state)
        if offset % 500 == 499:
            state.commit()
        for output in result.outputs:
            if output.topic == CASES:
                case_id, case = _case(output.value)
                out[case_id].append(case)
    return out


def _published(bootstrap: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for msg in read_all(bootstrap, CASES):  # read_committed: what an aborted transaction wrote is not there
        case_id, case = _case(msg.value())
        out[case_id].append(case)
    return out


# `make test` kills the worker on 5,000 leads, arriving in parts of 2,600, 1,600 and 800: each kill still comes
# after a commit with more than a transaction's 2,000 to link (2,600; at least 600 left and 1,600 more). The run of
# 8,000 (4,000, 2,000, 2,000) is in `make test-faults`. Each run has a broker of its own (`cluster` below): its
# cases are compared with the uninterrupted run's, topic against topic.
@pytest.mark.parametrize(("count", "cuts"), [
    pytest.param(5000, (2600, 4200), id="5000-leads"),
    pytest.param(8000, (4000, 6000), id="8000-leads", marks=pytest.mark.faults)])
def test_killed_twice_mid_stream_the_cases_are_those_of_an_uninterrupted_run(
        cluster, tmp_path: Path, count: int, cuts: tuple[int, int]) -> None:
    bootstrap = cluster.bootstrap_servers
    assert cuts[0] > BATCH and cuts[1] - BATCH > BATCH, "each worker killed starts with more than a transaction to link"
    start = NOW - timedelta(hours=2)  # intake accepted them at NOW
    leads = [lead.to_avro() for lead in TrafficGenerator(seed=16, same_suspect_share=0.6).leads(
        count, start, timedelta(milliseconds=500))]  # all before NOW
    values = [_accepted(lead, offset) for offset, lead in enumerate(leads)]
    expected = _uninterrupted(values)
    total = sum(len(v) for v in expected.values())
    records = [(LEADS_ACCEPTED, lead["lead_id"], value) for lead, value in zip(leads, values, strict=True)]
    # Each part arrives only after the kill before it, so each kill lands mid-stream however fast the worker and
    # however far apart the test's looks (the worker linked all 8,000 between two looks of a loaded CI run).
    parts = [records[: cuts[0]], records[cuts[0]: cuts[1]], records[cuts[1]:]]
    produce(bootstrap, parts[0])

    state, logs = tmp_path / "state", tmp_path / "logs"
    counts: list[int] = []
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": stage_group("linking"), "enable.auto.commit": False})

    def committed() -> int:
        """Leads the linking group has committed: cheap enough to poll, so the kill lands right after a commit,
        mid-stream, however fast the worker (a quiet CI machine linked all 4,000 before a read of the cases topic
        had seen the first commit)."""
        try:
            offset = reader.committed([TopicPartition(LEADS_ACCEPTED, 0)], timeout=10)[0].offset
        except KafkaException:  # the group's coordinator still loading (NOT_COORDINATOR): not known yet
            return -1
        return max(offset, 0)

    def published() -> int:
        return sum(len(v) for v in _published(bootstrap).values())

    try:
        for wipe in (False, True):
            worker = start_worker(bootstrap, state, "linking-crash", logs, stage="linking")
            seen = counts[-1] if counts else 0
            wait_until(lambda seen=seen: committed() > seen, 180, "the linking worker to commit", interval=0.02)
            worker.kill()  # SIGKILL mid-stream: its open transaction is aborted by the broker
            worker.wait(10)
            wait_until(lambda: committed() >= 0, 60, "the group's committed offset")
            counts.append(committed())
            if wipe:  # the disk is lost as well: the state comes back from the changelog
                shutil.rmtree(state / "linking")
            produce(bootstrap, parts[len(counts)])
    finally:
        reader.close()
    assert 0 < counts[0] < counts[1] < count, f"the kills should land mid-stream: {counts} of {count} committed"

    worker = start_worker(bootstrap, state, "linking-crash", logs, stage="linking")
    try:
        wait_until(lambda: published() >= total, 300, "every lead to be linked after the restarts")
    finally:
        stop(worker)
    got = _published(bootstrap)
    assert set(got) == set(expected)
    differ = [case_id for case_id in expected if got[case_id] != expected[case_id]]
    assert not differ, f"{len(differ)} cases differ from the uninterrupted run, e.g. {differ[0]}: " \
                       f"versions {[c['version'] for c in got[differ[0]]]} vs " \
                       f"{[c['version'] for c in expected[differ[0]]]}"
