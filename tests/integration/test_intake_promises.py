"""Intake's promises on real-world input, against a real broker (issue: what an outside check found).

- records at, just under and just over every size limit, raw and through the SDK, never stop the worker;
- one lead is accepted once whatever its key, partition, client, letter case or agency topic, also
  after the intake topics gain partitions; a second content for the same revision is a conflict;
- local state built on another cluster is discarded and rebuilt, never trusted;
- identifiers are normalised before they are checked; free text reaches the sinks as reported.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.limits import DEAD_LETTER_PREFIX_BYTES, MAX_EVENT_BYTES, MAX_RECORD_BYTES, TOPIC_MAX_MESSAGE_BYTES
from leadbus.localbroker import KafkaCluster
from leadbus.localbroker.cluster import free_port
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.errors import InvalidLead
from leadbus.producers.publisher import UnsealedEvents
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import LEADS_ACCEPTED, LEADS_REJECTED, intake_topic, load_declarations
from tests.kafka_helpers import publish_leads, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
LEAD_SCHEMA = CATALOG.latest("cn.leadbus.CaseLead")


@pytest.fixture(scope="module")
def worker(cluster, tmp_path_factory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("promises-worker")
    port = free_port()
    proc = start_worker(cluster.bootstrap_servers, work / "state", "promises", work / "logs",
                        extra=["--metrics-port", str(port)])
    try:
        yield {"proc": proc, "metrics": f"http://127.0.0.1:{port}/metrics", "log": work / "logs" / "promises.log"}
    finally:
        stop(proc)


def _raw(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 3,
                     "message.max.bytes": TOPIC_MAX_MESSAGE_BYTES + 64 * 1024})


def _leads(seed: int, n: int) -> list[CaseLead]:
    start = datetime.now(UTC) - timedelta(hours=2)
    return list(TrafficGenerator(seed=seed).leads(n, start, timedelta(seconds=1)))


def _accepted(bootstrap: str) -> list[dict[str, Any]]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_ACCEPTED)]


def _rejected(bootstrap: str) -> list[dict[str, Any]]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_REJECTED)]


def _metric(url: str, name: str) -> float:
    text = httpx.get(url, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _sized(lead: CaseLead, size: int) -> CaseLead:
    """The lead with a long evidence URI (valid: URIs have no length limit) making its event exactly `size` bytes."""
    headers = UnsealedEvents().seal("t", b"", b"")  # key (lead id) and headers count towards the limit too
    target = size - len(lead.lead_id) - sum(len(k) + len(v) for k, v in headers)
    doc = lead.model_dump(mode="json")

    def padded(pad: int) -> CaseLead:
        evidence = {"kind": "page", "uri": "https://evidence.example/" + "x" * pad, "sha256": "d" * 64}
        return CaseLead.model_validate({**doc, "evidence": [*doc["evidence"], evidence]})

    overhead = len(encode(LEAD_SCHEMA, padded(0).to_avro()))
    for pad in range(target - overhead + 2, target - overhead - 8, -1):  # the length prefix grows with the text
        candidate = padded(pad)
        if len(encode(LEAD_SCHEMA, candidate.to_avro())) == target:
            return candidate
    raise AssertionError(f"could not size a lead to {size} bytes")


def test_records_at_and_around_every_limit_never_stop_the_worker(cluster, worker) -> None:
    bootstrap = cluster.bootstrap_servers
    before_acc, before_rej = len(read_all(bootstrap, LEADS_ACCEPTED)), len(read_all(bootstrap, LEADS_REJECTED))
    a, b, c, d = _leads(501, 4)
    at_limit = _sized(a, MAX_EVENT_BYTES)  # key + value exactly at the limit
    over_limit = _sized(b, MAX_EVENT_BYTES + 1)
    pub = Publisher(a.publisher.agency, "00", bootstrap_servers=bootstrap)
    pub.wait([pub.publish(at_limit)])  # the SDK takes an event exactly at the limit

    with pytest.raises(InvalidLead) as caught:
        Publisher(b.publisher.agency, "00", bootstrap_servers=bootstrap).publish(over_limit)
    assert caught.value.errors[0].code == "OVERSIZED"
    assert caught.value.fields == [f"evidence.{len(b.evidence)}.uri"], "the error names the field to cut"
    huge_evidence = CaseLead.model_validate({**c.model_dump(mode="json"), "evidence": [
        {"kind": "page", "uri": "https://e.example/" + "z" * 1_000_000, "sha256": "c" * 64}]})
    with pytest.raises(InvalidLead) as caught:
        Publisher(c.publisher.agency, "00", bootstrap_servers=bootstrap).publish(huge_evidence)
    assert caught.value.fields == ["evidence.0.uri"], "the error names the field to cut"

    # Raw producers do what the SDK refuses: every one must end as a dead letter, the worker alive.
    raw = _raw(bootstrap)
    topic = intake_topic(d.publisher.agency)
    prefix = b"\xc3\x01" + LEAD_SCHEMA.fingerprint
    raw.produce(intake_topic(b.publisher.agency), value=encode(LEAD_SCHEMA, over_limit.to_avro()),
                key=over_limit.lead_id.encode(), headers=UnsealedEvents().seal("t", b"", b""))  # one byte over
    sized = {
        "producer limit - 1": prefix + b"p" * (MAX_RECORD_BYTES - 1 - len(prefix)),
        "producer limit + 1": prefix + b"q" * (MAX_RECORD_BYTES + 1 - len(prefix)),
        "topic limit - 1 KiB": prefix + b"r" * (TOPIC_MAX_MESSAGE_BYTES - 1024 - len(prefix)),
    }
    for name, value in sized.items():
        raw.produce(topic, value=value, key=name.encode())
    small = encode(LEAD_SCHEMA, d.to_avro())
    raw.produce(topic, value=small, key=b"k" * (MAX_EVENT_BYTES - len(small) + 1))  # the key counts too
    assert raw.flush(60) == 0

    sized["over event limit"] = encode(LEAD_SCHEMA, over_limit.to_avro())
    wait_until(lambda: len(read_all(bootstrap, LEADS_REJECTED)) >= before_rej + len(sized) + 1, 120,
               "every oversized record to be dead-lettered")
    assert worker["proc"].poll() is None, "the worker stopped on an oversized record"
    letters = {r["original_sha256"]: r for r in _rejected(bootstrap)}
    for name, value in [*sized.items(), ("big key", small)]:
        letter = letters[hashlib.sha256(value).hexdigest()]
        assert letter["reason"] == "OVERSIZED", name
        assert letter["original_size"] == len(value) and letter["original_truncated"]
        assert bytes(letter["original"]) == value[:DEAD_LETTER_PREFIX_BYTES]
        assert letter["source"]["topic"].startswith("leadbus.intake.")
    accepted = [x for x in _accepted(bootstrap) if x["lead"]["lead_id"] == at_limit.lead_id]
    assert len(accepted) == 1, "the lead exactly at the limit is accepted, with room for its derived event"
    assert bytes(accepted[0]["original"]) == encode(LEAD_SCHEMA, at_limit.to_avro())
    assert len(read_all(bootstrap, LEADS_ACCEPTED)) == before_acc + 1


def test_one_lead_once_whatever_key_partition_client_or_topic(cluster, worker) -> None:
    bootstrap = cluster.bootstrap_servers
    lead, other, sentinel = _leads(502, 3)
    agency = lead.publisher.agency
    topic = intake_topic(agency)
    data = encode(LEAD_SCHEMA, lead.to_avro())
    upper = encode(LEAD_SCHEMA, {**lead.to_avro(), "lead_id": lead.lead_id.upper()})
    conflicting = encode(LEAD_SCHEMA, {**lead.to_avro(), "description": lead.description + "（更正）"})
    dups_before = _metric(worker["metrics"], "leadbus_intake_duplicates_total")

    pub = Publisher(agency, "00", bootstrap_servers=bootstrap)
    pub.wait([pub.publish(lead)])
    raw = _raw(bootstrap)
    raw.produce(topic, value=data)  # keyless: librdkafka spreads it anywhere
    for i in range(6):  # wrong keys, hashed to every partition sooner or later
        raw.produce(topic, value=data, key=f"not-the-lead-{i}".encode())
    for p in range(3):  # and placed explicitly on each partition, as a Java (murmur2) client might
        raw.produce(topic, value=data, key=lead.lead_id.encode(), partition=p)
    raw.produce(topic, value=upper, key=lead.lead_id.upper().encode())
    raw.produce(topic, value=conflicting, key=b"another-key")
    # The same lead id from a second agency's topic with that agency's own content.
    second = "MPS" if agency != "MPS" else "SAMR"
    foreign = {**other.to_avro(), "lead_id": lead.lead_id,
               "publisher": {"agency": second, "province": "00", "unit": None}}
    raw.produce(intake_topic(second), value=encode(LEAD_SCHEMA, foreign), key=lead.lead_id.encode())
    assert raw.flush(30) == 0
    sent_duplicates = 1 + 6 + 3 + 1

    # The intake topic gains partitions: keys move, the lead must still be judged in one place.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    had = len(admin.list_topics(topic, timeout=30).topics[topic].partitions)
    admin.create_partitions([NewPartitions(topic, had + 3)])[topic].result(30)
    time.sleep(6)  # the worker's metadata refresh (5 s) picks the new partitions up
    raw = _raw(bootstrap)  # a client that knows the new partitions
    for p in range(had, had + 3):
        raw.produce(topic, value=data, key=lead.lead_id.encode(), partition=p)
    raw.produce(intake_topic(sentinel.publisher.agency), value=encode(LEAD_SCHEMA, sentinel.to_avro()),
                key=sentinel.lead_id.encode())
    assert raw.flush(30) == 0
    sent_duplicates += 3

    def judged() -> bool:
        dups = _metric(worker["metrics"], "leadbus_intake_duplicates_total") - dups_before
        conflicts = [r for r in _rejected(bootstrap) if r["lead_id"] == lead.lead_id]
        return dups >= sent_duplicates and len(conflicts) >= 2

    wait_until(judged, 120, "every copy of the lead to be judged")
    time.sleep(2)
    accepted = Counter(str(x["lead"]["lead_id"]) for x in _accepted(bootstrap))
    assert accepted[lead.lead_id] == 1, "one lead, accepted once, whatever the key, partition or case"
    assert lead.lead_id.upper() not in accepted
    conflicts = [r for r in _rejected(bootstrap) if r["lead_id"] == lead.lead_id]
    assert sorted(r["reason"] for r in conflicts) == ["REVISION_CONFLICT", "REVISION_CONFLICT"]
    assert {r["original_sha256"] for r in conflicts} == {
        hashlib.sha256(conflicting).hexdigest(), hashlib.sha256(encode(LEAD_SCHEMA, foreign)).hexdigest()}
    assert {r["publisher_agency"] for r in conflicts} == {agency, second}
    assert _metric(worker["metrics"], "leadbus_intake_duplicates_total") - dups_before == sent_duplicates
    assert worker["proc"].poll() is None


def test_identifiers_normalised_before_checked_and_free_text_kept_as_reported(cluster, worker) -> None:
    bootstrap = cluster.bootstrap_servers
    (lead,) = _leads(503, 1)
    text = "第一段：网店销售假冒商品。\n\t第二段，　全角标点！ 多个   空格"
    subject = {**lead.subject.model_dump(mode="json"), "phones": ["０１０－６２７５１２３４", "(0571) 8888 6666",
                                                                  "１３８００１３８０００"]}
    published = CaseLead.model_validate({**lead.model_dump(mode="json"), "subject": subject, "description": text,
                                         "online": {**lead.online.model_dump(mode="json"), "ips": ["１．２．３．４"]},
                                         "countries": ["ｈｋ"], "cross_border": True})
    pub = Publisher(lead.publisher.agency, "00", bootstrap_servers=bootstrap)
    pub.wait([pub.publish(published)])
    wait_until(lambda: any(x["lead"]["lead_id"] == lead.lead_id for x in _accepted(bootstrap)), 60,
               "the lead to be accepted")
    (event,) = [x for x in _accepted(bootstrap) if x["lead"]["lead_id"] == lead.lead_id]
    assert event["lead"]["subject"]["phones"] == ["+861062751234", "+8657188886666", "+8613800138000"]
    assert event["lead"]["online"]["ips"] == ["1.2.3.4"]
    assert event["lead"]["countries"] == ["HK"]
    assert event["lead"]["description"] == text, "the reported text reaches the sinks unaltered"
    assert event["lead"]["subject"]["name"] == lead.subject.name
    assert bytes(event["original"]) == encode(LEAD_SCHEMA, published.to_avro())


def test_local_state_of_another_cluster_is_discarded_not_trusted(tmp_path: Path) -> None:
    leads = _leads(504, 200)
    state = tmp_path / "state"
    # A cluster of its own: the module's worker shares the intake group and would take the partitions.
    with KafkaCluster(1, tmp_path / "old-kafka") as old:
        apply_topics(old.bootstrap_servers, load_declarations())
        first = start_worker(old.bootstrap_servers, state, "stale-a", tmp_path / "logs")
        try:
            publish_leads(old.bootstrap_servers, leads[:100])
            wait_until(lambda: {x["lead"]["lead_id"] for x in _accepted(old.bootstrap_servers)}
                       >= {lead.lead_id for lead in leads[:100]}, 120, "the first cluster to accept its leads")
        finally:
            stop(first)
    assert list((state / "intake").glob("p*")), "the worker kept local state"

    # A fresh cluster, the old state folder kept (the default var/state survives a broker reset).
    with KafkaCluster(1, tmp_path / "fresh-kafka") as fresh:
        apply_topics(fresh.bootstrap_servers, load_declarations())
        second = start_worker(fresh.bootstrap_servers, state, "stale-b", tmp_path / "logs")
        try:
            publish_leads(fresh.bootstrap_servers, leads)  # the first 100 again (revision 0) and 100 new ones
            want = {lead.lead_id for lead in leads}
            wait_until(lambda: {x["lead"]["lead_id"] for x in _accepted(fresh.bootstrap_servers)} >= want, 120,
                       "every lead to be accepted on the fresh cluster")
            assert len(_accepted(fresh.bootstrap_servers)) == 200
            assert _rejected(fresh.bootstrap_servers) == [], "no STALE_REVISION from the other cluster's memory"
        finally:
            stop(second)
    log = (tmp_path / "logs" / "stale-b.log").read_text()
    assert re.search(r"discarding local state of leadbus\.state\.intake-dedupe\[\d\]: built from cluster", log)
