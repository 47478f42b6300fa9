"""The archive's heads deleted with the topic they vouch for (red team residual of session 19): on a real broker, a
bus whose archive sink's key has been registered for over an hour and that holds no head signed with it replays as
`ARCHIVE_HEADS_MISSING` (exit 1, at leadbus.archive.heads[0]); a head the sink signed on the topic settles it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadbus.audit.archived_ends import HEADS_DUE_MS
from leadbus.audit.replay import ReplayOptions, ReplayReport, replay, seal_verifier_factory
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.sinks.archive import ZERO_CHAIN, ManifestLine, chain_of
from leadbus.sinks.archive_heads import head_record
from leadbus.stage_keys import load_stage_key, provision
from leadbus.topics import ARCHIVE_HEADS, CASES
from tests.kafka_helpers import topics_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaCluster, Path]]:
    keys = tmp_path_factory.mktemp("stage-keys")
    with topics_cluster() as cluster:
        provision(cluster.bootstrap_servers, keys, ["archive"])
        yield cluster, keys


def _replay(bootstrap: str, hours_later: float) -> ReplayReport:
    settings = KafkaSettings(bootstrap)
    return replay(ReplayOptions(topics=[CASES], verify=True, seal_verifier=seal_verifier_factory(settings),
                                clock=lambda: time.time() + hours_later * 3600), settings)


def _missing(report: ReplayReport) -> list[tuple[str, str, int | None, int | None]]:
    return [(f.check, f.topic, f.partition, f.offset) for f in report.findings if f.check == "ARCHIVE_HEADS_MISSING"]


def test_no_head_of_the_archive_key_is_named_once_it_is_due_and_a_signed_head_settles_it(
        bus: tuple[KafkaCluster, Path]) -> None:
    cluster, keys = bus
    bootstrap = cluster.bootstrap_servers
    assert _missing(_replay(bootstrap, 0)) == []  # the sink just started: time to seal its first files
    due = HEADS_DUE_MS / 3_600_000 + 0.5
    report = _replay(bootstrap, due)
    assert _missing(report) == [("ARCHIVE_HEADS_MISSING", ARCHIVE_HEADS, 0, 0)]
    assert report.status == 1
    digest = "1".ljust(64, "0")
    path = f"{CASES}/2026-01-01/00-p0-0.avro"
    line = ManifestLine(1, path, CASES, 0, 0, 0, -1, digest, ZERO_CHAIN, chain_of(ZERO_CHAIN, digest, path))
    key, value, headers = head_record("leadbus-archive", line, load_stage_key(keys, "archive"))
    producer = KafkaSettings(bootstrap).producer(**{"enable.idempotence": True, "acks": "all"})
    producer.produce(ARCHIVE_HEADS, key=key, value=value, headers=headers, partition=0)
    assert producer.flush(30) == 0
    report = _replay(bootstrap, due)
    assert _missing(report) == []
    assert report.status == 0, report.failures[:3]
