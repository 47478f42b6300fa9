"""A verified replay of the derived topics (`leadbus.cases`, `leadbus.handover`, a routed topic) split between
processes on a real broker (`leadbus.audit.split`): each case's records share a partition (keyed by case id), so a
process reading some partitions judges every case it meets whole, and the findings are those of one process.

The topics hold records sealed by their stages (the trusted path: the C reader of runs and the picker) and, after
them, unsealed records that break the order (a version again, a gap, a version going back, a version after the case
was merged away; the same of handover steps and withdrawals): with one process, two and three, the same findings,
Ed25519 verifications and summary.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.replay import ReplayOptions, ReplayReport, replay, seal_verifier_factory
from leadbus.avro import encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.publisher_keys import key_record
from leadbus.signing import PublisherKey, key_id_of
from leadbus.stage_seals import StageSealer, partition_for
from leadbus.topics import CASES, HANDOVER, PUBLISHERS
from tests.audit_helpers import Copy, append
from tests.unit.test_audit_vouched import random_value

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
WITHDRAWALS = "leadbus.withdrawals"
TOPICS = [CASES, HANDOVER, WITHDRAWALS]
PARTITIONS = 6  # as declared for the three topics (co-partitioned by case id)


def _events(rng: random.Random) -> dict[str, list[tuple[bytes, bytes]]]:
    """Per topic, (key, value) of 40 cases' versions 1, 2, 3 … (steps of handover) in an interleaved order."""
    case, step, withdrawn = (CATALOG.latest(f"cn.leadbus.{n}") for n in ("CaseUpdated", "HandoverStep",
                                                                          "CaseWithdrawn"))
    out: dict[str, list[tuple[bytes, bytes]]] = {t: [] for t in TOPICS}
    numbers: dict[str, int] = {}
    for _ in range(600):
        case_id = f"CASE-{rng.randrange(40):04d}"
        numbers[case_id] = n = numbers.get(case_id, 0) + 1
        key = case_id.encode()
        out[CASES].append((key, encode(case, dict(random_value(rng, case.parsed), case_id=case_id, version=n,
                                                  merged_into=None))))
        out[HANDOVER].append((key, encode(step, dict(random_value(rng, step.parsed), case_id=case_id, seq=n))))
        out[WITHDRAWALS].append((key, encode(withdrawn, dict(random_value(rng, withdrawn.parsed), case_id=case_id,
                                                             version=n, merged_into=None, topic=WITHDRAWALS))))
    return out


def _broken(rng: random.Random, numbers: dict[str, int]) -> dict[str, list[tuple[bytes, bytes]]]:
    """Unsealed records after the sealed ones, breaking each topic's order, case by case in every partition."""
    case, step, withdrawn = (CATALOG.latest(f"cn.leadbus.{n}") for n in ("CaseUpdated", "HandoverStep",
                                                                          "CaseWithdrawn"))
    out: dict[str, list[tuple[bytes, bytes]]] = {t: [] for t in TOPICS}
    kinds = [[(0, None)], [(2, None)], [(-1, None)], [(1, "CASE-9999"), (2, None)]]  # again, gap, back, merged
    for i, (case_id, last) in enumerate(sorted(numbers.items())[:12]):
        key = case_id.encode()
        for n, into in ((last + d, into) for d, into in kinds[i % 4]):
            out[CASES].append((key, encode(case, dict(random_value(rng, case.parsed), case_id=case_id, version=n,
                                                      merged_into=into))))
            out[HANDOVER].append((key, encode(step, dict(random_value(rng, step.parsed), case_id=case_id,
                                                         seq=n))))
            out[WITHDRAWALS].append((key, encode(withdrawn, dict(random_value(rng, withdrawn.parsed),
                                                                 case_id=case_id, version=n, merged_into=into,
                                                                 topic=WITHDRAWALS))))
    return out


@pytest.fixture(scope="module")
def written(cluster: KafkaCluster) -> int:
    rng = random.Random(21)
    bootstrap = cluster.bootstrap_servers
    since = datetime.now(UTC) - timedelta(days=3)
    sealers = {CASES: StageSealer("LEADBUS-linking", Ed25519PrivateKey.generate(), "00000000000000d1"),
               HANDOVER: StageSealer("LEADBUS-handover", Ed25519PrivateKey.generate(), "00000000000000d2"),
               WITHDRAWALS: StageSealer("LEADBUS-routing", Ed25519PrivateKey.generate(), "00000000000000d3")}
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for sealer in sealers.values():  # registered before the first record they seal
        raw = sealer.public_key
        registry_key, value = key_record(PublisherKey(sealer.signer, key_id_of(raw), raw, since, since,
                                                      require_signed=False), CATALOG)
        producer.produce(PUBLISHERS, key=registry_key, value=value, partition=0)
    assert producer.flush(30) == 0
    events = _events(rng)
    numbers: dict[str, int] = {}
    for key, _ in events[CASES]:
        numbers[key.decode()] = numbers.get(key.decode(), 0) + 1
    stamp = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp() * 1000)
    total = 0
    for topic, pairs in events.items():
        copies: list[Copy] = []
        sealer = sealers[topic]
        for start in range(0, len(pairs), 25):  # transactions of 25, as a stage seals its outputs
            batch: list[Any] = [(topic, partition_for(k, PARTITIONS), k, v, []) for k, v in pairs[start:start + 25]]
            for (_, partition, k, v, _), headers in zip(batch, sealer.seal(batch), strict=True):
                copies.append(Copy(partition, k, v, list(headers), stamp + len(copies), -1))
            sealer.commit()
        copies += [Copy(partition_for(k, PARTITIONS), k, v, [], stamp + len(copies) + i, -1)
                   for i, (k, v) in enumerate(_broken(rng, numbers)[topic])]
        append(bootstrap, topic, copies)
        total += len(copies)
    return total


def verified(bootstrap: str, workers: int) -> ReplayReport:
    settings = KafkaSettings(bootstrap)
    return replay(ReplayOptions(topics=TOPICS, workers=workers, split_min=0,
                                seal_verifier=seal_verifier_factory(settings)), settings)


def _findings(report: ReplayReport) -> list[tuple[object, ...]]:
    return sorted((f.topic, f.partition, f.offset, f.check, f.message, f.failure) for f in report.findings)


@pytest.mark.parametrize("workers", [2, 3])
def test_a_split_replay_of_cases_handover_and_routes_finds_what_one_process_finds(cluster: KafkaCluster,
                                                                                  written: int, workers: int) -> None:
    one, split = verified(cluster.bootstrap_servers, 1), verified(cluster.bootstrap_servers, workers)
    assert one.processes == 1 and split.processes == workers
    assert one.records == split.records == written
    assert _findings(split) == _findings(one)
    checks = {(f.topic, f.check) for f in one.findings}
    for check in ("REPLAYED", "VERSION_GAP", "REORDERED", "AFTER_MERGE"):
        assert (CASES, check) in checks, check
    for check in ("REPLAYED", "STEP_GAP", "REORDERED"):
        assert (HANDOVER, check) in checks, check
    for check in ("REPLAYED", "REORDERED"):
        assert (WITHDRAWALS, check) in checks, check
    # the stage seals verified alike (the trusted records read by their fields), only the records after them unsealed
    assert one.signatures == split.signatures > 0
    assert not [f for f in one.findings if f.check in ("STAGE_CHAIN_BROKEN", "STAGE_SEAL_MALFORMED")]
    assert (split.selected, split.by_type_publisher) == (one.selected, one.by_type_publisher)
