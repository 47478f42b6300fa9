"""Feeding the registry from Kafka: read committed events, write rows and offsets in one SQL transaction.

The sink assigns itself every partition of its topics (no consumer group: the database, not
Kafka, holds its position), seeks to the offsets stored in the database, and on a database
outage keeps retrying the same batch with backoff — nothing is skipped and nothing committed
twice.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import TopicPartition
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from leadbus.avro import DecodeError, decode, packaged_catalog
from leadbus.batches import REGISTRY_GAP, next_batch
from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors.core.agency_events import COURIER_REPLIES
from leadbus.sinks.registry import registry_engine, rows_for, stored_offsets, write_batch
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED, WITHDRAWALS

log = logging.getLogger("leadbus.sinks.registry")
KINDS = {LEADS_ACCEPTED: "lead", CASES: "case", HANDOVER: "step", WITHDRAWALS: "withdrawal",
         COURIER_REPLIES: "courier_reply"}


def _connect(url: str, stop: threading.Event) -> Engine | None:
    """The database may be down when the sink starts: wait for it like for any other outage (None: stopped)."""
    delay = 0.5
    while True:
        try:
            engine: Engine = registry_engine(url)
            return engine
        except (OperationalError, DBAPIError) as exc:
            log.warning("registry database unavailable at start (%s); retrying in %.1fs", exc.__class__.__name__,
                        delay)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)


def run_registry(bootstrap: str | KafkaSettings, url: str, *, max_seconds: float | None = None,
                 batch: int = 500, fill: float = 0.1, stop: threading.Event | None = None,
                 gap: float | None = REGISTRY_GAP) -> None:
    """`fill`: once a record is there, how long to wait for more before the SQL transaction (0: take what is held);
    `gap`: end the fill once no record came for that long (leadbus/batches.py; None: wait out the fill). The sink
    reads what transactional stages commit, in bursts: with the gap it writes a burst as soon as it is all there
    instead of waiting out the fill for the next one; with 0 (REGISTRY_GAP) as soon as its consumer holds it
    (registry row p50 at 500 leads/s, see README).

    `stop` (set by the CLI's SIGTERM/SIGINT handler) ends the loop after the batch in hand: a stop by exception
    could be lost, as a KeyboardInterrupt inside the database driver can come out as the driver's own error from
    the rollback it causes, which the outage retry below takes for an outage (CI: a sink that never stopped)."""
    stop = stop or threading.Event()
    log.info("registry sink starting: batches of %d, fill %.2f s", batch, fill)  # its stop flag is set up by now
    engine = _connect(url, stop)
    if engine is None:
        return
    catalog = packaged_catalog()
    # The group is never joined (partitions are assigned, offsets live in the database); it is named so
    # that the registry principal's ACL can grant exactly it.
    consumer = settings_for(bootstrap).consumer("leadbus-registry")
    positions = stored_offsets(engine)
    assignment = []
    for topic in KINDS:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        for partition in meta.partitions:
            assignment.append(TopicPartition(topic, partition, positions.get((topic, partition), 0)))
    consumer.assign(assignment)
    started = time.monotonic()
    try:
        while not stop.is_set() and (max_seconds is None or time.monotonic() - started < max_seconds):
            messages = [m for m in next_batch(consumer, batch, 0.5, fill, gap) if not m.error()]
            if not messages:
                continue
            records: list[tuple[str, dict[str, Any]]] = []
            offsets: dict[tuple[str, int], int] = {}
            for msg in messages:
                topic = msg.topic() or ""
                try:
                    records.append((KINDS[topic], decode(catalog, msg.value() or b"")[1]))
                except DecodeError as exc:  # written by our own stages: log loudly, keep the position moving
                    log.error("undecodable %s[%s]@%s: %s", topic, msg.partition(), msg.offset(), exc)
                offsets[(topic, msg.partition() or 0)] = (msg.offset() or 0) + 1
            rows = rows_for(records)
            delay = 0.5
            while True:
                try:
                    write_batch(engine, rows, [(t, p, o) for (t, p), o in offsets.items()])
                    break
                except (OperationalError, DBAPIError) as exc:
                    log.warning("registry database unavailable (%s); retrying in %.1fs", exc.__class__.__name__,
                                delay)
                    if stop.wait(delay):
                        return  # the batch is not written, nor its offsets: the next start takes it again
                    delay = min(delay * 2, 5.0)
    finally:
        consumer.close()
        engine.dispose()
