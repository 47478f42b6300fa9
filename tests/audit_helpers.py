"""A stretch of simulated traffic through the real stages, and tampering with what the bus recorded.

Tampering with Kafka means what someone with administrative access could do: rewrite a topic (delete
it, create it again with the same partitions, produce its records back with their original keys,
headers and timestamps — altered, duplicated, dropped or swapped), or add records to it.
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.avro import decode, packaged_catalog
from leadbus.demo_handover import HandoverBoard
from leadbus.processors.stages import STAGES
from leadbus.producers.traffic import Traffic
from leadbus.stage_keys import provision
from leadbus.topics import HANDOVER, INTAKE_PREFIX
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

CATALOG = packaged_catalog()
STAGE_GROUPS = {name: definition.group for name, definition in STAGES.items()}


@contextmanager
def stages(bootstrap: str, root: Path, *, day_seconds: float = 4.0) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Intake, linking, handover (a statutory day lasts `day_seconds`) and routing, each an OS process."""
    workers = []
    keys = root / "stage-keys"  # each stage seals its outputs (issue #14), its key registered as LEADBUS-<stage>
    provision(bootstrap, keys, list(STAGE_GROUPS))
    for stage in STAGE_GROUPS:
        extra = ["--day-seconds", str(day_seconds)] if stage == "handover" else []
        extra += ["--seal-keys", str(keys)]
        workers.append(start_worker(bootstrap, root / "state", f"{stage}-audit", root / "logs", extra, stage=stage))
    try:
        yield workers
    except BaseException:
        for worker in workers:
            stop(worker)
        raise
    # In pipeline order, each stage only once those after it have taken in all it wrote: the handover stage
    # keeps scanning deadlines while it runs, so a step it records after the traffic settled must still be
    # routed before routing stops, or the record has a step with no route (seen on a loaded CI machine).
    for i, worker in enumerate(workers):
        stop(worker)
        wait_drained(bootstrap, [STAGE_GROUPS[name] for name in list(STAGE_GROUPS)[i + 1:]])


@dataclass
class Stretch:
    published: int
    decisions: int


def simulate(bootstrap: str, *, rate: float, seconds: float, seed: int = 7) -> Stretch:
    """Agencies publish leads at `rate`/s for `seconds`; officials act on most handovers (the demo's board)."""
    board = HandoverBoard(bootstrap)
    steps = _follower(bootstrap, HANDOVER)
    opened: dict[str, str] = {}
    decisions = 0

    def on_tick(_: Any) -> None:
        nonlocal decisions
        for msg in steps.consume(500, 0.05):
            if msg.error() or not msg.value():
                continue
            step = decode(CATALOG, msg.value())[1]
            board.on_step(step)
            if step["event"] == "OPENED":
                opened[step["case_id"]] = "00"
        before = sum(1 for c in board.cases.values() if c.acted_phase == c.phase)
        board.act(opened)
        decisions += sum(1 for c in board.cases.values() if c.acted_phase == c.phase) - before

    traffic = Traffic(bootstrap, seed=seed)
    try:
        report = traffic.run(rate, seconds, on_tick=on_tick)
        # Let the officials act on what opened near the end, too; on a loaded machine the stages may open the
        # first cases only now: wait (generously) until officials have decided at least once.
        began = time.monotonic()
        while time.monotonic() - began < 8 or (decisions == 0 and time.monotonic() - began < 240):
            on_tick(None)
            time.sleep(0.3)
    finally:
        board.close()
        steps.close()
    assert report.failed == 0
    return Stretch(report.published, decisions)


def _follower(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"audit-follow-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "logger": logging.getLogger("tests.kafka")})
    consumer.subscribe([topic])
    return consumer


def lag(bootstrap: str, group: str, inputs: str | None = None) -> int:
    """Records the group has yet to commit, over every partition it has committed in.

    With `inputs` (a topic prefix the group reads), a partition of those topics it has never committed in counts
    whole: on a loaded machine a stage may not have read anything yet, which is not being settled.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "logger": logging.getLogger("tests.kafka")})
    try:
        meta = consumer.list_topics(timeout=20)
        parts = [TopicPartition(t, p) for t, m in meta.topics.items() if t.startswith("leadbus.")
                 and not t.startswith("leadbus.state.") for p in m.partitions]
        total = 0
        for tp in consumer.committed(parts, timeout=20):
            if tp.offset >= 0:
                total += consumer.get_watermark_offsets(tp, timeout=20)[1] - tp.offset
            elif inputs is not None and tp.topic.startswith(inputs):
                low, high = consumer.get_watermark_offsets(tp, timeout=20)
                total += high - low
        return total
    finally:
        consumer.close()


def wait_settled(bootstrap: str, timeout: float = 240) -> None:
    """Every stage has committed everything it reads (transaction markers leave at most one offset each)."""
    wait_until(lambda: lag(bootstrap, STAGE_GROUPS["intake"], INTAKE_PREFIX) <= 40, timeout,
               "intake to read every intake partition", interval=2.0)
    wait_until(lambda: all(lag(bootstrap, g) <= 40 for g in STAGE_GROUPS.values()), timeout, "the stages to settle",
               interval=2.0)
    time.sleep(3)
    wait_until(lambda: all(lag(bootstrap, g) <= 40 for g in STAGE_GROUPS.values()), timeout, "the stages to settle",
               interval=2.0)


def wait_drained(bootstrap: str, groups: list[str], timeout: float = 240) -> None:
    """With nothing new arriving, the groups' lag stays the same over consecutive readings and is small.

    What remains is transaction markers (and records of aborted transactions), which no stage ever commits past.
    """
    if not groups:
        return
    deadline = time.monotonic() + timeout
    last: list[int] | None = None
    steady = 0
    while time.monotonic() < deadline:
        now = [lag(bootstrap, g) for g in groups]
        steady = steady + 1 if now == last and all(n <= 40 for n in now) else 0
        if steady >= 1:
            return
        last = now
        time.sleep(1.5)
    raise AssertionError(f"the groups {groups} did not drain: lag {last}")


# -- tampering ---------------------------------------------------------------------------------------------


@dataclass
class Copy:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int
    offset: int  # where it was


def records_of(bootstrap: str, topic: str) -> list[Copy]:
    out = []
    for msg in read_all(bootstrap, topic):
        out.append(Copy(msg.partition() or 0, msg.key(), msg.value(),
                        [(k, v or b"") for k, v in (msg.headers() or [])], msg.timestamp()[1], msg.offset() or 0))
    out.sort(key=lambda c: (c.partition, c.offset))
    return out


def rewrite_topic(bootstrap: str, topic: str, transform: Callable[[list[Copy]], list[Copy]], *,
                  read: bool = True) -> None:
    """Delete `topic`, create it again alike, and produce `transform(its records)` back, in order, per partition
    (`read` False: `transform([])`, the topic's records not read)."""
    copies = records_of(bootstrap, topic) if read else []
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topic, timeout=20).topics[topic]
    partitions = len(meta.partitions)
    configs = admin.describe_configs([_resource(topic)])
    config = {k: v.value for k, v in next(iter(configs.values())).result().items()
              if not v.is_default and not v.is_read_only and v.value is not None}
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result()
    wait_until(lambda: topic not in admin.list_topics(timeout=20).topics, 60, f"{topic} deleted", interval=0.5)
    for _ in range(60):
        try:
            for future in admin.create_topics([NewTopic(topic, partitions, 1, config=config)]).values():
                future.result()
            break
        except Exception:  # noqa: BLE001 - deletion still under way on the broker
            time.sleep(0.5)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "logger": logging.getLogger("tests.kafka")})
    errors: list[Any] = []
    for c in transform(copies):
        producer.produce(topic, value=c.value, key=c.key, headers=c.headers, partition=c.partition,
                         timestamp=c.timestamp, on_delivery=lambda err, _: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors, errors


def append(bootstrap: str, topic: str, copies: list[Copy]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "logger": logging.getLogger("tests.kafka")})
    errors: list[Any] = []
    for c in copies:
        producer.produce(topic, value=c.value, key=c.key, headers=c.headers, partition=c.partition,
                         timestamp=c.timestamp, on_delivery=lambda err, _: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors, errors


def _resource(topic: str) -> Any:
    from confluent_kafka.admin import ConfigResource

    return ConfigResource(ConfigResource.Type.TOPIC, topic)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
