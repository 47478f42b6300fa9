"""Where a bench's broker CPU goes (per JVM thread) and a warm-up of its transactional paths.

A fresh broker compiles its code with the JVM's JIT (the `C1`/`C2 CompilerThread`s) as each path is first used.
The intake bench warms the fetch path (a read of the intake topics) and its publishers warm the idempotent produce
path, but the transactional paths (transactional produce batches, AddPartitionsToTxn, TxnOffsetCommit, EndTxn,
the markers, read_committed fetches of transactional data, compacted changelog writes) were first used by the
stage inside its timed window: measured on 20,000-30,000 events, the compiler threads took 105-121 µs per event
of the stage's 173-203 µs of broker CPU, the request handlers and network threads 42-50 (issue #16). A broker
that has been running for a while has compiled them long since: `warm_transactions` runs the same kinds of
requests on topics of its own before timing, and `broker_threads` shows what is left.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

from confluent_kafka import TopicPartition

from leadbus.clients import KafkaSettings
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import TopicSpec

WARM_IN, WARM_OUT, WARM_CHANGELOG = "bench.warm.in", "bench.warm.out", "bench.warm.changelog"


def jvm_thread_names(pid: int) -> dict[int, str]:
    """Each Java thread's full name by its Linux thread id (`jcmd Thread.print`; Linux keeps 15 characters of a
    name, too few to tell Kafka's request handlers from its network threads). Empty where jcmd is not there or the
    process is no JVM: jcmd attaches by sending SIGQUIT, which ends any other process."""
    try:
        if not os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("java"):
            return {}
        dump = subprocess.run(["jcmd", str(pid), "Thread.print"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {int(m.group(2), 16): m.group(1) for m in re.finditer(r'^"([^"]*)".*? nid=0x([0-9a-f]+)', dump, re.M)}


def broker_threads(pid: int, names: dict[int, str] | None = None) -> Counter[str]:
    """CPU seconds of a live JVM per thread name, numbers folded (`data-plane-kafka-request-handler-#`); the names
    from `names` (`jvm_thread_names`) where it has the thread, else Linux's 15 characters of it."""
    spent: Counter[str] = Counter()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            name = (names or {}).get(int(task)) or Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        spent[re.sub(r"\d+", "#", name)] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return spent


def jit_seconds(threads: Counter[str]) -> float:
    """The JIT compiler threads' share (`C1 CompilerThre`, `C2 CompilerThre`: Linux keeps 15 characters)."""
    return sum(v for k, v in threads.items() if "CompilerThre" in k)


def warm_transactions(bootstrap: str, records: int = 20000, per_transaction: int = 50, size: int = 700,
                      timeout: float = 600) -> int:
    """Consume → produce exactly once on topics of its own, like a stage: `records` records of `size` bytes in
    transactions of `per_transaction` (many transactions, so that the per-transaction requests get compiled too),
    each to an output topic and a compacted changelog, with the offsets; then a read_committed read of the output.
    How many transactions it committed."""
    kafka = KafkaSettings(bootstrap)
    apply_topics(bootstrap, [TopicSpec(WARM_IN, 6, 1, 1, {}), TopicSpec(WARM_OUT, 6, 1, 1, {}),
                             TopicSpec(WARM_CHANGELOG, 6, 1, 1, {"cleanup.policy": "compact"})])
    feed = kafka.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 20, "compression.type": "lz4"})
    value = os.urandom(size // 2).hex().encode()
    for i in range(records):
        while True:
            try:
                feed.produce(WARM_IN, value, str(i).encode())
                break
            except BufferError:
                feed.poll(0.05)
    feed.flush(120)
    consumer = kafka.consumer(f"bench-warm-txn-{uuid.uuid4()}")
    producer = kafka.transactional_producer(f"bench-warm-{uuid.uuid4()}")
    producer.init_transactions(30)
    consumer.subscribe([WARM_IN])
    done = transactions = 0
    deadline = time.monotonic() + timeout
    try:
        while done < records and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(per_transaction, 0.5) if not m.error()]
            if not batch:
                continue
            producer.begin_transaction()
            offsets: dict[tuple[str, int], int] = {}
            for msg in batch:
                producer.produce(WARM_OUT, msg.value(), msg.key())
                producer.produce(WARM_CHANGELOG, b"seen", msg.key(), (msg.partition() or 0))
                offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
            producer.send_offsets_to_transaction([TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                                 consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
            done += len(batch)
            transactions += 1
    finally:
        consumer.close()
    reader = kafka.consumer(f"bench-warm-read-{uuid.uuid4()}")
    reader.subscribe([WARM_OUT])
    seen = 0
    try:
        while seen < done and time.monotonic() < deadline:
            seen += sum(1 for m in reader.consume(1000, 0.5) if not m.error())
    finally:
        reader.close()
    return transactions
