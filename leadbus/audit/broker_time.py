"""The latest time the broker is known to have reached, for judging records re-dated into the future.

`TIMESTAMP_IN_FUTURE` names a partition whose highest timestamp is past "now": a record's broker timestamp is its
writer's (CreateTime) and not sealed, and one moved past the time of the replay drops out of any period asked for.
"Now" was the auditor machine's clock alone: a clock running slow by more than the skew allowed (15 s) made the
newest records of a clean bus read as re-dated (exit 1).

The auditor principal writes nothing, and Kafka gives a reading client no clock of the broker's; what it can read is
the time the broker stamped records with on the topics declared `message.timestamp.type LogAppendTime` (the key
registry, the schema topic, the archive's published heads: `deploy/topics.yaml`). The newest such record's stamp is a
time the broker had reached, so "now" is the later of the auditor's clock and that stamp: a slow clock no longer fails
records written before the bus's latest broker-stamped record (the archive sink publishes a head at each seal and
again every minute, `archive run --head-every`, so on a running bus that is within a minute). Only a record the broker
stamped counts (its timestamp type is LogAppendTime): one whose time its writer chose could otherwise carry any "now"
and hide a re-dated record. A clock slow by more than the skew still fails records newer than every broker stamp
(README, "What a replay alone cannot tell").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

from leadbus.clients import KafkaSettings
from leadbus.topics import TopicSpec, declarations

_TAIL = 8  # entries read back from a partition's end: more than the markers that can follow its last record


def broker_stamped_topics(specs: Iterable[TopicSpec] | None = None) -> list[str]:
    """The declared topics the broker stamps (message.timestamp.type LogAppendTime)."""
    specs = declarations() if specs is None else specs
    return sorted(s.name for s in specs if s.config.get("message.timestamp.type") == "LogAppendTime")


def latest_broker_time(settings: KafkaSettings, topics: Iterable[str] | None = None,
                       timeout: float = 10.0) -> int | None:
    """The newest broker-stamped time (ms) of the last record of each partition of `topics` (default: the declared
    broker-stamped topics), None when there is none; topics missing or unreadable are passed over."""
    names = broker_stamped_topics() if topics is None else list(topics)
    # Every watermark asked before any fetch: a ListOffsets queued behind a fetch waiting at a log's end waits as long
    # as it (fetch.wait.max.ms: 504 ms a replay, measured); then each partition's last record in one assignment.
    consumer = settings.consumer(f"leadbus-audit-clock-{uuid.uuid4()}", **{
        "isolation.level": "read_uncommitted", "fetch.wait.max.ms": 10, "enable.sparse.connections": False,
        "enable.partition.eof": True})
    latest: int | None = None
    try:
        meta = consumer.list_topics(timeout=timeout).topics
        lasts: list[TopicPartition] = []
        for topic in names:
            info = meta.get(topic)
            if info is None or info.error is not None:
                continue
            for partition in info.partitions:
                tp = TopicPartition(topic, partition, 0)
                try:
                    low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
                except Exception:  # noqa: BLE001 - a refused read: this topic tells nothing
                    continue
                if high > low:
                    # a few entries back, not only the last: the last may be a transaction's marker, which no
                    # read returns (waiting for it took the whole timeout); the stamps only grow, the newest counts
                    lasts.append(TopicPartition(topic, partition, max(low, high - _TAIL)))
        if not lasts:
            return None
        consumer.assign(lasts)
        waiting = {(tp.topic, tp.partition) for tp in lasts}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            msg = consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if msg is None:
                continue
            if msg.error():
                if msg.topic() is not None:  # its end reached, or a refused or failing partition
                    waiting.discard((msg.topic(), msg.partition()))
                continue
            kind, stamp = msg.timestamp()
            if kind == TIMESTAMP_LOG_APPEND_TIME and stamp > 0 and (latest is None or stamp > latest):
                latest = stamp
    finally:
        consumer.close()
    return latest
