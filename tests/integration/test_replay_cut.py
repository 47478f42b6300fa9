"""`leadbus replay --verify` of `leadbus.leads.accepted` cut in two processes on a real broker: one process's findings.

The topic has one partition: a replay cuts it near the middle offset (`_cut`), a forked process reads the tail while
the parent reads the head (`replay._run_cut`), and `boundary.join` judges the tail's first records again against the
head. A stream of accepted leads sealed by intake's stage key (the keys on `leadbus.publishers`) is written, then
rewritten with tampering right at the cut — a record dropped, two swapped, one replayed, one altered, an earlier lead
accepted again — and each is replayed cut in two and in one process: the same findings at the same coordinates, exit
1, with the tampered record located.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from leadbus.audit.replay import _CUT_HEAD_PERMILLE, ReplayOptions, ReplayReport, replay, seal_verifier_factory
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.publisher_keys import key_record
from leadbus.topics import LEADS_ACCEPTED, PUBLISHERS
from tests.audit_helpers import Copy, append, records_of, rewrite_topic
from tests.unit.test_audit_vouched import STAMP, altered, streams

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def written(cluster: KafkaCluster) -> list[Copy]:
    accepted, _, registry = streams()
    # A key written to the registry does not vouch for records before it (KEY_REGISTERED_LATER,
    # leadbus.audit.registration), and the registry is stamped by the broker (LogAppendTime): the simulated day's
    # records are stamped after their keys' registration, 100 ms apart (none after the replay begins).
    append(cluster.bootstrap_servers, PUBLISHERS, [Copy(0, *key_record(k), [], STAMP - 3_600_000, -1)
                                                   for p in registry.publishers() for k in registry.keys_of(p)])
    registered = max(c.timestamp for c in records_of(cluster.bootstrap_servers, PUBLISHERS))
    copies = [Copy(0, key, value, [(n, v or b"") for n, v in headers], registered + 1000 + 100 * i, i)
              for i, (_, _, key, value, headers) in enumerate(accepted)]
    append(cluster.bootstrap_servers, LEADS_ACCEPTED, copies)
    return copies


def verified(bootstrap: str, workers: int) -> ReplayReport:
    settings = KafkaSettings(bootstrap)
    return replay(ReplayOptions(topics=[LEADS_ACCEPTED], workers=workers, split_min=10,
                                seal_verifier=seal_verifier_factory(settings)), settings)


def same_as_one_process(bootstrap: str) -> ReplayReport:
    cut, one = verified(bootstrap, 2), verified(bootstrap, 1)
    assert cut.processes == 2 and one.processes == 1
    key = [(f.topic, f.partition, f.offset, f.check, f.message, f.failure) for f in one.findings]
    assert [(f.topic, f.partition, f.offset, f.check, f.message, f.failure) for f in cut.findings] == key
    assert (cut.records, cut.selected, cut.by_type_publisher) == (one.records, one.selected, one.by_type_publisher)
    return cut


def test_an_untampered_topic_cut_in_two_verifies(cluster: KafkaCluster, written: list[Copy]) -> None:
    report = same_as_one_process(cluster.bootstrap_servers)
    assert report.status == 0 and report.records == len(written), report.failures[:3]


Tamper = Callable[[list[Copy]], list[Copy]]


def _cut(records: int) -> int:
    """The offset `replay._run_cut` cuts a partition of `records` records from offset 0 at: the tail's first."""
    return records * _CUT_HEAD_PERMILLE // 1000


def _dropped(copies: list[Copy]) -> list[Copy]:
    middle = _cut(len(copies))
    return copies[:middle] + copies[middle + 1:]


def _swapped(copies: list[Copy]) -> list[Copy]:
    middle = _cut(len(copies))  # the record before the cut and the one after it change places
    out = list(copies)
    out[middle - 1], out[middle] = out[middle], out[middle - 1]
    return out


def _replayed(copies: list[Copy]) -> list[Copy]:
    middle = _cut(len(copies))  # the record before the cut written again: the copy is the tail's first
    return copies[:middle] + [copies[middle - 1]] + copies[middle:-1]


def _altered(copies: list[Copy]) -> list[Copy]:
    import random

    middle = _cut(len(copies))
    out = list(copies)
    value = altered(random.Random(7), out[middle].value or b"")
    out[middle] = replace(out[middle], value=value)
    return out


def _accepted_again(copies: list[Copy]) -> list[Copy]:
    middle = _cut(len(copies))  # an earlier lead, its seal and all, in place of the tail's first
    out = list(copies)
    out[middle] = replace(copies[3], timestamp=copies[middle].timestamp)
    return out


@pytest.mark.parametrize("tamper", [_dropped, _swapped, _replayed, _altered, _accepted_again],
                         ids=["dropped", "swapped", "replayed", "altered", "accepted-again"])
def test_tampering_at_the_cut_is_found_as_one_process_finds_it(cluster: KafkaCluster, written: list[Copy],
                                                               tamper: Tamper) -> None:
    bootstrap = cluster.bootstrap_servers
    rewrite_topic(bootstrap, LEADS_ACCEPTED, lambda _: tamper(list(written)))
    report = same_as_one_process(bootstrap)
    middle = _cut(len(written)) - (1 if tamper is _swapped else 0)
    assert report.status == 1
    near = {f.offset for f in report.failures if f.offset is not None}
    assert near & {middle - 1, middle, middle + 1}, [f.where() + " " + f.check for f in report.failures]
