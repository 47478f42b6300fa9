"""The intake stage against a real broker: bad input of every kind, kill -9 and redelivery, lost state."""

from __future__ import annotations

import hashlib
import random
import shutil
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.avro.codec import MAGIC
from leadbus.limits import DEAD_LETTER_PREFIX_BYTES, MAX_EVENT_BYTES, TOPIC_MAX_MESSAGE_BYTES
from leadbus.localbroker.cluster import free_port
from leadbus.models import CaseLead
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import LEADS_ACCEPTED, LEADS_REJECTED, intake_topic, stage_group
from tests.kafka_helpers import committed_end, read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
LEAD_SCHEMA = CATALOG.latest("cn.leadbus.CaseLead")


def _raw_producer(bootstrap: str) -> Producer:
    # As large as the topics take: what a publisher outside the SDK can send.
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "log_level": 3,
                     "message.max.bytes": TOPIC_MAX_MESSAGE_BYTES})


def _lead_bytes(record: dict) -> bytes:
    """Encode without the SDK's validation: what a careless or hostile publisher could send."""
    return encode(LEAD_SCHEMA, record)


def _decoded(bootstrap: str, topic: str) -> list[dict]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, topic)]


def _taken_in(bootstrap: str, topics: list[str]) -> bool:
    """The intake group has committed to the end of every partition of `topics` (written without transactions: no
    markers after the last record)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": stage_group("intake"),
                         "enable.auto.commit": False})
    try:
        parts = [TopicPartition(t, p) for t in topics for p in consumer.list_topics(t, timeout=20).topics[t].partitions]
        try:
            committed = consumer.committed(parts, timeout=20)
        except KafkaException:  # the group's coordinator busy (NOT_COORDINATOR): not known yet
            return False
        for tp in committed:
            end = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=20)[1]
            if end > 0 and tp.offset < end:
                return False
        return True
    finally:
        consumer.close()


def _bad_inputs(base: CaseLead, rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(topic agency, bytes, expected reason) for every kind of bad input."""
    good = base.to_avro()

    def variant(**changes: object) -> bytes:
        record = {**good, "lead_id": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
        for path, value in changes.items():
            target = record
            parts = path.split("__")
            for part in parts[:-1]:
                target[part] = dict(target[part])
                target = target[part]
            target[parts[-1]] = value
        return _lead_bytes(record)

    valid = variant()
    rejected_schema = CATALOG.latest("cn.leadbus.LeadRejected")
    wrong_type = encode(rejected_schema, {
        "reason": "X", "message": "m", "field": None, "lead_id": None, "publisher_agency": None, "original": b"",
        "source": {"topic": "t", "partition": 0, "offset": 0}, "rejected_at": datetime(2026, 1, 1, tzinfo=UTC),
    })
    agency = base.publisher.agency
    subject = dict(good["subject"])
    return [
        (agency, b"", "DECODE_EMPTY"),
        (agency, b"\x00\x01garbage bytes that are not avro", "DECODE_NOT_AVRO"),
        (agency, MAGIC + bytes(8) + valid[10:], "DECODE_UNKNOWN_SCHEMA"),
        (agency, valid[: len(valid) // 2], "DECODE_TRUNCATED"),
        (agency, valid + b"\x07\x07", "DECODE_TRAILING_BYTES"),
        (agency, wrong_type, "DECODE_WRONG_TYPE"),
        (agency, MAGIC + LEAD_SCHEMA.fingerprint + b"x" * (600 * 1024), "OVERSIZED"),
        # About 1 MB, under the topic's limit, a dead letter of it whole would not be: once stopped the bus.
        (agency, MAGIC + LEAD_SCHEMA.fingerprint + b"y" * (TOPIC_MAX_MESSAGE_BYTES - 9 * 1024), "OVERSIZED"),
        # A lead valid in every field but its size: evidence URIs have no length limit of their own.
        (agency, variant(evidence=[{"kind": "page", "uri": "https://e.example/" + "z" * (MAX_EVENT_BYTES + 10),
                                    "sha256": "b" * 64}]), "OVERSIZED"),
        (agency, variant(subject={**subject, "id_number": "110105194912310021"}), "RESIDENT_ID_CHECKSUM"),
        (agency, variant(subject={**subject, "id_number": "11010519491331002X"}), "RESIDENT_ID_DATE"),
        (agency, variant(subject={**subject, "uscc": "91-350100"}), "USCC_FORMAT"),
        (agency, variant(payment_accounts=["6222021234567890129"]), "BANK_CARD_LUHN"),
        (agency, variant(subject={**subject, "phones": ["+86 12345"]}), "PHONE_FORMAT"),
        (agency, variant(publisher={**good["publisher"], "province": "99"}), "UNKNOWN_PROVINCE"),
        (agency, variant(publisher={**good["publisher"], "agency": "SAIC"}), "UNKNOWN_AGENCY"),
        (agency, variant(facts={**good["facts"], "sales_amount_fen": -100}), "OUT_OF_RANGE"),
        (agency, variant(grading={"source": "A", "accuracy": 9}), "OUT_OF_RANGE"),
        (agency, variant(reported_at=datetime(2099, 1, 1, tzinfo=UTC)), "TIME_IN_FUTURE"),
        (agency, variant(subject={**subject, "name": ""}), "TOO_SHORT"),
        (agency, variant(lead_id="not-a-uuid"), "LEAD_ID_FORMAT"),
        ("GACC" if agency != "GACC" else "SAMR", valid, "WRONG_TOPIC"),
    ]


def _fuzz_corpus(valid: bytes, rng: random.Random) -> list[bytes]:
    """Random byte strings, plus random mutations of a valid event (header kept, body flipped).

    The pure core is fuzzed far harder by hypothesis in tests/unit/test_intake_core.py; here the
    point is that such records travel through the real stage without stopping it.
    """
    blobs = [rng.randbytes(rng.randint(0, 300)) for _ in range(200)]
    blobs += [MAGIC + LEAD_SCHEMA.fingerprint + rng.randbytes(rng.randint(0, 200)) for _ in range(100)]
    for _ in range(200):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            body[rng.randrange(10, len(body))] = rng.randrange(256)
        blobs.append(bytes(body))
    return blobs


def test_bad_input_of_every_kind_is_dead_lettered_and_nothing_valid_is_lost(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(hours=1)
    leads = list(TrafficGenerator(seed=21).leads(3000, start, timedelta(milliseconds=100)))
    bad = _bad_inputs(leads[0], rng)
    fuzz = _fuzz_corpus(_lead_bytes(leads[1].to_avro()), rng)

    metrics_port = free_port()
    worker = start_worker(bootstrap, tmp_path / "state", "bad-input-1", tmp_path / "logs",
                          extra=["--metrics-port", str(metrics_port)])
    try:
        publishers: dict[str, Publisher] = {}
        raw = _raw_producer(bootstrap)
        sent_valid: set[str] = set()
        bad_iter = iter(bad)
        fuzz_iter = iter(fuzz)
        for i, lead in enumerate(leads):  # interleave bad records with the valid traffic
            agency = lead.publisher.agency
            pub = publishers.setdefault(agency, Publisher(agency, "00", bootstrap_servers=bootstrap))
            pub.publish(lead)
            sent_valid.add(lead.lead_id)
            if i % 10 == 0:
                item = next(bad_iter, None)
                if item is not None:
                    raw.produce(intake_topic(item[0]), value=item[1], key=f"bad-{i}".encode())
                blob = next(fuzz_iter, None)
                if blob is not None:
                    raw.produce(intake_topic(rng.choice(["SAMR", "NCAC", "GACC"])), value=blob, key=b"fuzz")
        for rest in bad_iter:
            raw.produce(intake_topic(rest[0]), value=rest[1], key=b"bad-tail")
        for blob in fuzz_iter:
            raw.produce(intake_topic("CAC"), value=blob, key=b"fuzz-tail")
        assert raw.flush(60) == 0
        for pub in publishers.values():
            pub.flush(60)
        sent = len(leads) + len(bad) + len(fuzz)

        def counted() -> bool:
            return len(read_all(bootstrap, LEADS_ACCEPTED)) + len(read_all(bootstrap, LEADS_REJECTED)) >= sent

        wait_until(counted, 240, "accepted + rejected to reach the number sent")
        assert worker.poll() is None, "the worker stopped on bad input"
        accepted = _decoded(bootstrap, LEADS_ACCEPTED)
        rejected = _decoded(bootstrap, LEADS_REJECTED)
        assert len(accepted) + len(rejected) == sent
        assert {str(a["lead"]["lead_id"]) for a in accepted} == sent_valid
        assert len(accepted) == len(sent_valid), "only the valid leads are accepted"

        reasons = Counter(r["reason"] for r in rejected)
        originals = {r["original_sha256"]: r for r in rejected}
        for _, data, reason in bad:
            digest = hashlib.sha256(data).hexdigest()
            assert digest in originals, f"bad input for {reason} missing from the dead-letter topic"
            letter = originals[digest]
            assert letter["reason"] == reason
            assert letter["original_size"] == len(data)
            if reason == "OVERSIZED":  # a bounded prefix; the archive keeps the whole record
                assert letter["original_truncated"] and bytes(letter["original"]) == data[:DEAD_LETTER_PREFIX_BYTES]
            else:
                assert not letter["original_truncated"] and bytes(letter["original"]) == data
            assert letter["source"]["topic"].startswith("leadbus.intake.")
            assert letter["source"]["offset"] >= 0
        assert sum(reasons.values()) == len(bad) + len(fuzz)
        assert all(r["message"] for r in rejected)

        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert 'reason="WRONG_TOPIC"' in scrape
        accepted_metric = sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
                              if line.startswith("leadbus_intake_accepted_total{"))
        assert accepted_metric == len(sent_valid)
    finally:
        stop(worker)


# `make test` runs the kill on 4,000 leads (two of the worker's transactions of 2,000 and more after the kill); the
# load run of 20,000 is in `make test-faults`. Both assert the same; their leads differ (the seed), so that both can
# run on one broker.
@pytest.mark.parametrize(("count", "seed"), [pytest.param(4000, 98, id="4000-leads"),
                                             pytest.param(20000, 99, id="20000-leads", marks=pytest.mark.faults)])
def test_kill_9_mid_stream_every_lead_exactly_once(cluster, tmp_path: Path, count: int, seed: int) -> None:
    bootstrap = cluster.bootstrap_servers
    before = {str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED)}
    start = datetime.now(UTC) - timedelta(hours=1)
    leads = list(TrafficGenerator(seed=seed).leads(count, start, timedelta(milliseconds=10)))
    raw = _raw_producer(bootstrap)

    def publish(part: list[CaseLead]) -> None:
        for lead in part:
            data = _lead_bytes(lead.to_avro())
            raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=data)
            if lead.lead_id[-1] in "02468":  # an exact redelivery of a fifth of the leads
                raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=data)
        assert raw.flush(60) == 0

    # The last quarter arrives only after the kill, so the kill lands mid-stream even when the test's looks are far
    # apart on a loaded machine.
    first = len(leads) * 3 // 4
    publish(leads[:first])

    state = tmp_path / "state"
    ended = committed_end(bootstrap, LEADS_ACCEPTED)
    worker = start_worker(bootstrap, state, "redelivery-1", tmp_path / "logs")
    # Kill at the first committed transaction. The worker gets through thousands of leads a second, so the probe is
    # the topic's last stable offset (one request), not a read of the whole topic, which took longer than the run.
    wait_until(lambda: committed_end(bootstrap, LEADS_ACCEPTED) > ended, 120, "processing to start", interval=0.05)
    worker.kill()  # SIGKILL mid-stream: the open transaction is left for the broker to abort
    worker.wait(10)
    mid = len(read_all(bootstrap, LEADS_ACCEPTED)) - len(before)
    assert 0 < mid < len(leads), "the kill should land mid-stream"
    publish(leads[first:])

    worker = start_worker(bootstrap, state, "redelivery-1", tmp_path / "logs")
    try:
        expected = {lead.lead_id for lead in leads}

        def done() -> bool:
            ids = {str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED)} - before
            return ids >= expected

        wait_until(done, 240, "every lead to be accepted after the restart")
        ids = [str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED)]
        counts = Counter(i for i in ids if i in expected)
        assert set(counts) == expected
        assert max(counts.values()) == 1, "a lead appears twice in leads.accepted"
    finally:
        stop(worker)

    # The dedupe memory survives losing the local state: it is rebuilt from the changelog.
    shutil.rmtree(state)
    again = leads[:50]
    for lead in again:
        raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(), value=_lead_bytes(lead.to_avro()))
    assert raw.flush(30) == 0
    worker = start_worker(bootstrap, state, "redelivery-2", tmp_path / "logs")
    try:
        wait_until(lambda: (state / "intake").exists(), 60, "the new worker to restore its state")
        # Until the worker has committed past the redelivered leads (what it accepted of them is out: the same
        # transaction), not a fixed 8 s in which it may not have read them yet.
        topics = sorted({intake_topic(lead.publisher.agency) for lead in again})
        wait_until(lambda: _taken_in(bootstrap, topics), 120, "the new worker to take in the redelivered leads",
                   interval=0.2)
        ids = [str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED)]
        assert max(Counter(i for i in ids if i in expected).values()) == 1
        assert worker.poll() is None
    finally:
        stop(worker)


def test_two_workers_in_one_group_share_the_intake_exactly_once(cluster, tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    before = Counter(str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED))
    start = datetime.now(UTC) - timedelta(hours=1)
    leads = list(TrafficGenerator(seed=314).leads(2000, start, timedelta(milliseconds=10)))
    workers = [start_worker(bootstrap, tmp_path / f"state-{n}", f"pair-{n}", tmp_path / "logs") for n in (1, 2)]
    try:
        raw = _raw_producer(bootstrap)
        for i, lead in enumerate(leads):
            raw.produce(intake_topic(lead.publisher.agency), key=lead.lead_id.encode(),
                        value=_lead_bytes(lead.to_avro()))
            if i == 1000:
                assert raw.flush(30) == 0
                time.sleep(3)  # the second worker joins while the first half is being processed
        assert raw.flush(60) == 0
        expected = {lead.lead_id for lead in leads}

        def done() -> bool:
            ids = {str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED)}
            return ids >= expected

        wait_until(done, 180, "both workers to accept every lead")
        counts = Counter(str(a["lead"]["lead_id"]) for a in _decoded(bootstrap, LEADS_ACCEPTED)) - before
        assert set(counts) == expected and max(counts.values()) == 1
        assert all(w.poll() is None for w in workers)
        logs = [(tmp_path / "logs" / f"pair-{n}.log").read_text() for n in (1, 2)]
        assert all("intake assigned" in log for log in logs), "both workers took part in the group"
    finally:
        for worker in workers:
            stop(worker)
