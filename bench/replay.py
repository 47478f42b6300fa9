"""Replay with verification against a raw confluent-kafka read of the same topic, and the rebuild rate.

    python bench/replay.py [--leads N]

One broker, one run. N simulated leads are published (raw producer, the SDK's encoding) to the intake
topics; intake's pure core makes the `LeadAccepted` of each, which go to `leadbus.leads.accepted`. Then,
each after the other, over the same topic:

* raw:    assign() every partition from the start, consume to the end, touch each value (no decode);
* replay: `leadbus.audit.replay` with every standard verifier (order, decode, intake duplicates — and on the
          accepted topic the digest, the re-normalisation of `original`, one (lead id, revision));

and the rebuild (linking, handover and routing handlers over in-memory state) over the N accepted leads,
from records already read (the rate of re-derivation, not of reading). Target: replay ≥ 0.5 × raw.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadbus.audit.rebuild import rebuild
from leadbus.audit.replay import ReplayOptions, replay
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import encode, encode_object, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import LEADS_ACCEPTED, intake_topic, load_declarations

CATALOG = packaged_catalog()


def fill(bootstrap: str, leads: int) -> tuple[int, list[ReplayRecord]]:
    """Publish `leads` leads to the intake topics and their LeadAccepted to the accepted topic."""
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    accepted_schema = CATALOG.latest("cn.leadbus.LeadAccepted")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True,
                         "compression.type": "lz4",
                         "queue.buffering.max.messages": 500_000, "logger": logging.getLogger("bench")})
    gen = TrafficGenerator(seed=11, same_suspect_share=0.25)
    start = datetime.now(UTC) - timedelta(days=1)
    offsets: dict[str, int] = {}
    accepted: list[ReplayRecord] = []
    intake_bytes = 0
    for i, lead in enumerate(gen.leads(leads, start, timedelta(seconds=0.5))):
        topic = intake_topic(lead.publisher.agency)
        value = encode_object(lead_schema, lead)
        partition = i % 3
        offset = offsets.get(f"{topic}/{partition}", 0)
        offsets[f"{topic}/{partition}"] = offset + 1
        intake_bytes += len(value)
        _produce(producer, topic, lead.lead_id.encode(), value, partition)
        outcome = examine(value, Source(topic, partition, offset), CATALOG, datetime.now(UTC))
        assert isinstance(outcome, Acceptance), outcome
        record = encode(accepted_schema, accepted_record(outcome, datetime.now(UTC)))
        _produce(producer, LEADS_ACCEPTED, lead.lead_id.encode(), record, 0)
        accepted.append(ReplayRecord(LEADS_ACCEPTED, 0, i, int(time.time() * 1000), lead.lead_id.encode(), record,
                                     (), CATALOG))
    producer.flush(120)
    return intake_bytes, accepted


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, partition: int) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition)
            return
        except BufferError:
            producer.poll(0.1)


def raw_read(bootstrap: str, topics: list[str]) -> tuple[int, float]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 10, "logger": logging.getLogger("bench")})
    meta = consumer.list_topics(timeout=20)
    parts = [TopicPartition(t, p, 0) for t in topics for p in meta.topics[t].partitions]
    ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=20)[1] for tp in parts}
    todo = {k for k, end in ends.items() if end > 0}
    started = time.perf_counter()
    consumer.assign(parts)
    count = size = 0
    while todo:
        for msg in consumer.consume(2000, 0.05):
            if msg.error():
                continue
            count += 1
            size += len(msg.value() or b"")
            key = (msg.topic(), msg.partition())
            if (msg.offset() or 0) >= ends[key] - 1:
                todo.discard(key)
    seconds = time.perf_counter() - started
    consumer.close()
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000)
    args = parser.parse_args()
    with KafkaCluster(1) as cluster:
        bootstrap = cluster.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        began = time.perf_counter()
        _, accepted = fill(bootstrap, args.leads)
        print(f"published {args.leads} leads and their LeadAccepted in {time.perf_counter() - began:.0f}s")
        settings = KafkaSettings(bootstrap)
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-meta-{uuid.uuid4()}"})
        intake_topics = sorted(t for t in probe.list_topics(timeout=20).topics if t.startswith("leadbus.intake."))
        probe.close()
        for name, topics in (("intake topics", intake_topics), ("leadbus.leads.accepted", [LEADS_ACCEPTED])):
            n_raw, s_raw = raw_read(bootstrap, topics)
            report = replay(ReplayOptions(topics=topics, verify=True), settings)
            assert report.status == 0, report.failures[:3]
            raw_rate, replay_rate = n_raw / s_raw, report.records / report.seconds
            print(f"{name}: raw read {n_raw} records {raw_rate:,.0f}/s; replay+verify {report.records} records "
                  f"{replay_rate:,.0f}/s ({report.seconds:.1f}s incl. plan) → ratio {replay_rate / raw_rate:.2f}")
        began = time.perf_counter()
        result = rebuild(accepted, catalog=CATALOG)
        seconds = time.perf_counter() - began
        kinds = {d.kind for d in result.differences}
        print(f"rebuild: {len(accepted)} accepted leads → {result.cases} case events, {result.steps} handover steps, "
              f"{result.routed} routed records in {seconds:.1f}s → {len(accepted) / seconds:,.0f} leads/s "
              f"(differences by kind, expected with no recorded outputs: {sorted(kinds)})")


if __name__ == "__main__":
    main()
