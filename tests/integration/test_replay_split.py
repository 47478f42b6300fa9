"""A verified replay of an intake topic split between processes on a real broker (`leadbus.audit.split`): the forked
processes hand back the leads they read as hashes and are asked back for those another process read too
(`leadbus.audit.processes`); the findings are those of one process, with two and with three processes, leads repeated
across partitions that different processes read among them (REDELIVERED, REVISION_CONFLICT: the same records named,
as many times)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.audit.replay import ReplayOptions, ReplayReport, replay
from leadbus.avro import encode_object, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.producers.simulator import TrafficGenerator
from tests.audit_helpers import Copy, append

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
TOPIC = "leadbus.intake.SPLT"


@pytest.fixture(scope="module")
def written(cluster: KafkaCluster) -> list[Copy]:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    for future in admin.create_topics([NewTopic(TOPIC, 3, 1)]).values():
        future.result()
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    now = datetime.now(UTC) - timedelta(minutes=10)
    leads = [encode_object(schema, lead) for lead in TrafficGenerator(seed=9).leads(240, now, timedelta(seconds=1))]
    copies = [Copy(i % 3, b"k%d" % i, value, [], int(now.timestamp() * 1000) + i, -1) for i, value in enumerate(leads)]
    stamp = copies[-1].timestamp
    # the same lead again on another partition (identical: a redelivery), and altered (a conflict), and one lead on all
    # three partitions
    again = [Copy(1, b"r0", leads[0], [], stamp + 1, -1), Copy(2, b"r3", leads[3], [], stamp + 2, -1),
             Copy(0, b"r4", leads[4][:-1] + b"x", [], stamp + 3, -1), Copy(2, b"r6", leads[6], [], stamp + 4, -1),
             Copy(1, b"r6", leads[6], [], stamp + 5, -1), Copy(2, b"r7", leads[7], [], stamp + 6, -1)]
    append(cluster.bootstrap_servers, TOPIC, copies + again)
    return copies + again


def verified(bootstrap: str, workers: int) -> ReplayReport:
    settings = KafkaSettings(bootstrap)
    return replay(ReplayOptions(topics=[TOPIC], workers=workers, split_min=0), settings)


_NAMED = re.compile(r"lead (\S+) revision (\d+) again,? .* (\S+)\[(\d+)\]@(\d+) \(intake")


def repeats(report: ReplayReport) -> dict[tuple[str, str], tuple[int, set[tuple[int | None, int | None]]]]:
    """Per repeat kind and lead: how many findings, and every record they name. Which of two records is called the
    repeat follows the order they were read in, which two readers need not share (partitions read at once, or by two
    processes: the merge names the forked process's record): the records and the count are what a replay asserts."""
    out: dict[tuple[str, str], tuple[int, set[tuple[int | None, int | None]]]] = {}
    for f in report.findings:
        if f.check in ("REDELIVERED", "REVISION_CONFLICT"):
            named = _NAMED.match(f.message)
            assert named is not None, f.message
            count, where = out.get((f.check, named[1]), (0, set()))
            out[(f.check, named[1])] = (count + 1, where | {(f.partition, f.offset),
                                                            (int(named[4]), int(named[5]))})
    return out


@pytest.mark.parametrize("workers", [2, 3])
def test_a_split_replay_finds_what_one_process_finds(cluster: KafkaCluster, written: list[Copy],
                                                     workers: int) -> None:
    one, split = verified(cluster.bootstrap_servers, 1), verified(cluster.bootstrap_servers, workers)
    assert one.processes == 1 and split.processes == workers
    assert one.records == split.records == len(written)

    def others(report: ReplayReport) -> list[tuple[object, ...]]:
        return [(f.topic, f.partition, f.offset, f.check, f.message, f.failure) for f in report.findings
                if f.check not in ("REDELIVERED", "REVISION_CONFLICT")]

    assert others(split) == others(one)
    found = repeats(split)
    assert found == repeats(one)
    assert sorted((check, count) for (check, _), (count, _) in found.items()) == [
        ("REDELIVERED", 1), ("REDELIVERED", 1), ("REDELIVERED", 1), ("REDELIVERED", 2), ("REVISION_CONFLICT", 1)]
    assert (split.selected, split.by_type_publisher) == (one.selected, one.by_type_publisher)
