"""Leads lost with no delivery error when the SDK publishes into partitions their leader does not serve yet.

    python bench/first_batches.py [--partitions 300] [--leads 6000] [--rounds 3] [--nodes 1]

Each round creates a fresh topic (as an agency's intake topic, without `apply_topics`' wait for the
leaders) and publishes into it at once, the SDK's producer logging librdkafka's `eos,msg,protocol`
debug. Then it reads the topic back and compares: leads the SDK confirmed against leads on the topic.
An idempotent producer whose first batch to a partition was refused (NOT_LEADER_OR_FOLLOWER) while
its next batch landed counts the first as delivered (librdkafka's IMPLICITACK: Kafka accepts any first
sequence from a producer it holds no state for): confirmed, and not there (confluent-kafka-go#921).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.producers import Publisher
from leadbus.producers.simulator import TrafficGenerator

AGENCY = "SAMR"
_BATCH = re.compile(r"MessageSet with \d+ message\(s\) \(MsgId (\d+),")
_SENT = re.compile(r" \[(\d+)\]: Produce MessageSet with \d+ message\(s\) .*MsgId (\d+),")
_DELIVERED = re.compile(r" \[(\d+)\]: MessageSet with \d+ message\(s\) .* delivered")
#: every librdkafka line of the fills, to this file if named (for reading one fill closely)
TRACE = open(os.environ["FIRST_BATCHES_TRACE"], "a") if os.environ.get("FIRST_BATCHES_TRACE") else None  # noqa: SIM115


class _Counts(logging.Handler):
    """Counts librdkafka's lines that show a refused produce and an implicit ack."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refused = 0
        self.refused_later = 0
        self.delivered: set[str] = set()  # partitions with a first batch confirmed
        self.exposed: set[str] = set()  # partitions sent a later batch while none was confirmed yet
        self.implicit = 0
        self.samples: list[str] = []
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines += 1
        if TRACE is not None:
            TRACE.write(line + "\n")
        if line.startswith("PRODUCE"):
            sent = _SENT.search(line)
            if sent and int(sent[2]) > 1 and sent[1] not in self.delivered:
                self.exposed.add(sent[1])
        elif line.startswith("MSGSET") and (done := _DELIVERED.search(line)):
            self.delivered.add(done[1])
        if "encountered error: Broker: Not leader for partition" in line:  # one refused batch
            self.refused += 1
            found = _BATCH.search(line)
            if found and int(found[1]) > 1:  # not the partition's first: batches in flight behind an unconfirmed one
                self.refused_later += 1
        elif "IMPLICITACK" in line or "implicitly acked" in line:
            self.implicit += 1
            if len(self.samples) < 2:
                self.samples.append(line)


def _leads(count: int) -> list:
    gen = TrafficGenerator(seed=7)
    start = datetime.now(UTC) - timedelta(days=1)
    leads = []
    for lead in gen.leads(count * 10, start, timedelta(milliseconds=1)):
        if lead.publisher.agency != AGENCY:
            lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": AGENCY})})
        leads.append(lead)
        if len(leads) == count:
            return leads
    return leads


def _on_topic(settings: KafkaSettings, topic: str, partitions: int) -> set[bytes]:
    consumer = settings.consumer(f"first-batches-{topic}", **{"enable.partition.eof": True})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in range(partitions)}
    todo = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, 0) for p in todo])
    keys: set[bytes] = set()
    deadline = time.monotonic() + 60
    while todo and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is None:
            keys.add(msg.key())
            if msg.offset() + 1 >= ends[msg.partition()]:
                todo.discard(msg.partition())
    consumer.close()
    return keys


def fill(settings: KafkaSettings, topic: str, partitions: int, replicas: int, leads: list,
         topics: int = 1, linger_ms: int | None = None) -> dict[str, int]:
    counts = _Counts()
    log = logging.getLogger(f"first-batches.{topic}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(counts)
    pub = Publisher(AGENCY, "00", bootstrap_servers=settings,
                    config={"debug": "eos,msg,protocol", "logger": log,
                            **({"linger.ms": linger_ms} if linger_ms is not None else {})})
    pub.topic = topic
    pub.producer.poll(0)  # a long-lived publisher: its producer id is in hand when it first writes the new partitions
    time.sleep(2)
    admin = settings.admin()
    names = [topic] + [f"{topic}.other{i}" for i in range(1, topics)]  # more logs for the brokers to take up at once
    for future in admin.create_topics([NewTopic(name, partitions, replicas) for name in names]).values():
        future.result()
    futures = [pub.publish(lead) for lead in leads]
    pub.flush(120)
    confirmed = {f.lead_id.encode() for f in futures if f.done() and f.exception() is None}
    failed = sum(1 for f in futures if f.exception() is not None)
    pub.close()
    there = _on_topic(settings, topic, partitions)
    if counts.samples:
        print("   e.g.", counts.samples[0][:200])
    return {"published": len(leads), "confirmed": len(confirmed), "failed": failed,
            "on topic": len(there), "lost": len(confirmed - there), "refused": counts.refused,
            "refused after the first": counts.refused_later,
            "partitions sent a 2nd batch before the 1st was confirmed": len(counts.exposed),
            "implicit acks": counts.implicit, "log lines": counts.lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partitions", type=int, default=300)
    parser.add_argument("--leads", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 3))
    parser.add_argument("--linger-ms", type=int, default=None, help="the producer's linger.ms (the SDK's default: 5)")
    parser.add_argument("--topics", type=int, default=1, help="topics created at once (the first is published to)")
    args = parser.parse_args()
    leads = _leads(args.leads)
    with tempfile.TemporaryDirectory() as tmp, KafkaCluster(args.nodes, Path(tmp) / "kafka") as cluster:
        settings = KafkaSettings(cluster.bootstrap_servers)
        for n in range(args.rounds):
            started = time.monotonic()
            result = fill(settings, f"leadbus.intake.{AGENCY}.fresh{n}", args.partitions, args.nodes, leads,
                          args.topics, args.linger_ms)
            print(f"round {n}: " + ", ".join(f"{k} {v}" for k, v in result.items())
                  + f" ({time.monotonic() - started:.1f} s, load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
