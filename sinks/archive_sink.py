"""The archive sink: consume topics, archive every record, acknowledge only what the manifest holds.

The manifest, not the consumer group, is the record of progress: on assignment each partition
resumes one past its last sealed offset, and offsets are committed to the group only after the
file holding them is sealed (so lag monitoring tells the truth). A crash loses only unsealed
partial files, which the writer deletes on start; their records are read again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from leadbus.avro import DecodeError, SchemaCatalog, SchemaEntry, decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.schema_topic import load_schemas
from leadbus.sinks.archive import ArchiveWriter, Coordinates, ManifestLine, parse_manifest

log = logging.getLogger("leadbus.sinks.archive")

#: The archive's consumer fetches at most twice a second (unless a MiB is waiting), not once per record that
#: arrives. With librdkafka's default (a fetch returns as soon as one byte is there) it fetched ~100 times a second
#: at 500 leads/s, each fetch listing all ~160 partitions it reads (librdkafka has no incremental fetch sessions):
#: as many partition reads on the broker as the intake stage's. Nobody waits for the archive within the second,
#: and files are sealed on minutes (README, "End-to-end latency").
FETCH = {"fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": 500}


@dataclass
class ArchiveStats:
    records: int = 0
    raw: int = 0  # values no known schema reads, archived as bytes
    files: int = 0
    skipped: int = 0  # redeliveries of records already sealed


def _coordinates(msg: Message) -> Coordinates:
    _, timestamp = msg.timestamp()
    headers = msg.headers() or []  # consumed headers are a list of (name, bytes | None)
    pairs = headers.items() if isinstance(headers, dict) else headers
    return Coordinates(msg.topic() or "", msg.partition() or 0, msg.offset() or 0, timestamp, msg.key(),
                       tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs))


def _decoded(catalog: SchemaCatalog, value: bytes | None) -> tuple[SchemaEntry | None, Any]:
    if value is None:
        return None, None
    try:
        return decode(catalog, value)
    except DecodeError:
        return None, value  # garbage or an unknown schema is still part of the record: keep the bytes


def run_archive(
    bootstrap: str | KafkaSettings,
    topics: Iterable[str],
    root: Path,
    max_seconds: float | None = None,
    group: str = "leadbus-archive",
    *,
    seal_after_seconds: float = 900.0,
    stop: threading.Event | None = None,
    catalog: SchemaCatalog | None = None,
    config: Mapping[str, Any] | None = None,
    seal_keys: Path | None = None,
    publish_heads: bool = True,
    head_every_seconds: float = 60.0,
) -> ArchiveStats:
    """Archive `topics` (names, or `^regex`) under `root` until `stop` is set or `max_seconds` pass.

    `seal_after_seconds` bounds how long a quiet partition's file stays open (and its offsets
    unacknowledged); busy partitions seal on every hour change anyway. Each new head of the manifest is published on
    `leadbus.archive.heads` (`publish_heads`), signed with the sink's key from `seal_keys` (`LEADBUS-archive.key`;
    a folder without it refuses to start, as a stage's does), unsigned without a folder; the latest head is published
    again every `head_every_seconds` (0: at seals only), so that the topic's broker time keeps up with the bus's.
    """
    kafka = settings_for(bootstrap)
    heads = None
    if publish_heads:
        from leadbus.sinks.archive_heads import SIGNER_STAGE, HeadPublisher
        from leadbus.stage_keys import load_stage_key

        private = load_stage_key(seal_keys, SIGNER_STAGE) if seal_keys is not None else None
        heads = HeadPublisher(kafka, group, private, every=head_every_seconds)
    if catalog is None:
        catalog = packaged_catalog()
        load_schemas(kafka, catalog, reader="archive")  # schemas registered at run time, so their events decode
    stats = ArchiveStats()
    healthy = True  # after a failure, leave open files to the next start's recovery, never seal them
    with ArchiveWriter(root) as writer:
        if heads is not None:  # the head this sink's start finds, published again at once and then every so often
            heads.known(parse_manifest(root)[0])
        consumer = kafka.consumer(group, **{**FETCH, **(config or {})})

        def commit(sealed: list[ManifestLine]) -> None:
            stats.files += len(sealed)
            if heads is not None:  # before the offsets: a head published covers what the group acknowledges
                heads.publish(sealed)
            offsets = {(line.topic, line.partition): line.last_offset + 1 for line in sealed}
            if not offsets:
                return
            try:
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
            except KafkaException as exc:  # harmless: the manifest says where to resume
                log.warning("archive: offset commit failed: %s", exc)

        def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
            done = writer.progress()
            for tp in partitions:
                if (tp.topic, tp.partition) in done:
                    tp.offset = done[(tp.topic, tp.partition)]
            c.assign(partitions)

        def on_revoke(c: Consumer, partitions: list[TopicPartition]) -> None:
            if healthy:  # seal before another member takes the partitions over
                commit(writer.seal((tp.topic, tp.partition) for tp in partitions))

        consumer.subscribe(list(topics), on_assign=on_assign, on_revoke=on_revoke)
        started = time.monotonic()
        try:
            while not (stop is not None and stop.is_set()) and (
                    max_seconds is None or time.monotonic() - started < max_seconds):
                for msg in consumer.consume(500, 0.5):
                    if msg.error():
                        log.warning("archive: consumer error: %s", msg.error())
                        continue
                    value = msg.value()
                    entry, _ = _decoded(catalog, value)  # decodes whole: else kept as raw bytes
                    skipped = writer.skipped
                    commit(writer.append_encoded(_coordinates(msg), entry, value))
                    if writer.skipped == skipped:
                        stats.records += 1
                        stats.raw += entry is None
                commit(writer.seal_older_than(seal_after_seconds))
                if heads is not None:
                    heads.tick()
            commit(writer.close())
        except BaseException:
            healthy = False
            raise
        finally:
            stats.skipped = writer.skipped
            consumer.close()
    return stats
