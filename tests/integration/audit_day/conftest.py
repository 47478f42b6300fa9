"""One simulated day of traffic for the audit modules of this package, on a broker of the package's own.

Each module used to fill its own day on its own broker (~1 min apiece in CI). They now share one: what a test
tampers with is written back as the day left it after the test (`_day_restored`), so no test sees another's
tampering and the modules pass in any order. The one test that rewrites the key registry cannot be undone (the
registry is broker-stamped: written again, every key reads registered after what it signed); it asks for
`spoils_day` and runs after every other test of the package.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from leadbus.sinks.archive import read_manifest
from leadbus.sinks.archive_sink import run_archive
from leadbus.stage_keys import provision
from leadbus.topics import ARCHIVE_HEADS, CASES, HANDOVER, LEADS_ACCEPTED, PUBLISHERS, SCHEMAS
from tests.audit_helpers import Copy, records_of, rewrite_topic, simulate, stages, wait_settled
from tests.kafka_helpers import topics_cluster

HERE = Path(__file__).parent
#: A test's own topic (made and tampered with by one test), not part of the day.
OWN_TOPICS = frozenset({"leadbus.intake.AUDT"})
#: Per topic: its id (a topic deleted and created again has a new one) and each partition's (low, high) watermarks.
Marks = dict[str, tuple[str, tuple[tuple[int, int], ...]]]


@dataclass
class Day:
    bootstrap: str
    root: Path  # the stages' seal keys are under root / "stage-keys"
    archive: Path  # leadbus.cases archived
    #: the topics tests tamper with, as the stages wrote them
    pristine: dict[str, list[Copy]]
    marks: Marks = field(default_factory=dict)
    spoiled_by: str | None = None


@pytest.fixture(scope="package")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    root = tmp_path_factory.mktemp("audit-day")
    with topics_cluster(root / "kafka") as cluster:
        bootstrap = cluster.bootstrap_servers
        with stages(bootstrap, root, day_seconds=4.0):
            simulate(bootstrap, rate=15, seconds=15)
            wait_settled(bootstrap)
        archive = root / "archive"
        provision(bootstrap, root / "stage-keys", ["archive"])  # the sink signs the heads it publishes
        run_archive(bootstrap, [CASES], archive, max_seconds=6, seal_after_seconds=1.0, group=f"red-{uuid.uuid4()}",
                    seal_keys=root / "stage-keys")
        assert read_manifest(archive)
        topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20).topics
        routed = sorted(t for t in topics if t.startswith("leadbus.region."))
        tampered = [CASES, HANDOVER, LEADS_ACCEPTED, SCHEMAS, ARCHIVE_HEADS, *routed]
        found = Day(bootstrap, root, archive, {t: records_of(bootstrap, t) for t in tampered})
        found.marks = _marks(bootstrap)
        yield found


@pytest.fixture(autouse=True)
def _day_restored(request: pytest.FixtureRequest, day: Day) -> Iterator[None]:
    """After each test, every topic of the day it changed written back as the stages left it."""
    assert day.spoiled_by is None, f"the day was spoiled by {day.spoiled_by}, which should have run last"
    yield
    if day.spoiled_by is not None:
        return
    now = _marks(day.bootstrap)
    for topic, before in day.marks.items():
        after = now.get(topic)
        if after == before or topic in OWN_TOPICS:
            continue
        if topic == PUBLISHERS and after is not None and after[0] == before[0] and after[1][0][0] == before[1][0][0]:
            continue  # keys registered on: the day's keys still vouch as they did
        assert topic in day.pristine, f"{request.node.name} changed {topic}: the day keeps no copy of it to restore"
        _write_back(day.bootstrap, topic, day.pristine[topic])
    day.marks = _marks(day.bootstrap)


@pytest.fixture
def spoils_day(request: pytest.FixtureRequest, day: Day) -> Iterator[None]:
    """For a test that leaves the day unusable (it runs last in the package: see `pytest_collection_modifyitems`)."""
    yield
    day.spoiled_by = request.node.name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The package's tests that spoil the day moved after its others (within the package: the day is set up once)."""
    places = [i for i, item in enumerate(items) if HERE in item.path.parents]
    ours = [items[i] for i in places]
    ours.sort(key=lambda item: "spoils_day" in getattr(item, "fixturenames", ()))
    for i, item in zip(places, ours, strict=True):
        items[i] = item


def _write_back(bootstrap: str, topic: str, copies: list[Copy]) -> None:
    """`rewrite_topic` without reading the topic first (what the test left is not wanted)."""
    rewrite_topic(bootstrap, topic, lambda _: list(copies), read=False)


def _marks(bootstrap: str) -> Marks:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=20).topics
    names = sorted(t for t in topics if t.startswith("leadbus.") and not t.startswith("leadbus.state."))
    ids = {name: str(future.result().topic_id) for name, future in
           admin.describe_topics(TopicCollection(names)).items()}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"audit-day-marks-{uuid.uuid4()}",
                         "logger": logging.getLogger("tests.kafka")})
    try:
        return {name: (ids[name], tuple(consumer.get_watermark_offsets(TopicPartition(name, p), timeout=20)
                                        for p in sorted(topics[name].partitions)))
                for name in names}
    finally:
        consumer.close()
