"""The `leadbus.publishers` topic: publisher keys (`PublisherKey` events) keyed by `<publisher>/<key id>`.

The admin writes it (`leadbus keys register|rotate|revoke`); intake keeps a `KeyFeed` on it: read
to the end before the first event is judged, then polled as it goes, and read to the end again
before an event is refused for a key it does not know (yet).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import (
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    TopicPartition,
)

from leadbus.avro import DecodeError, SchemaCatalog, decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.signing import KeyRegistry, PublisherKey, RegistryLog
from leadbus.topics import PUBLISHERS

log = logging.getLogger("leadbus.publisher_keys")
PUBLISHER_KEY = "cn.leadbus.PublisherKey"


def key_record(key: PublisherKey, catalog: SchemaCatalog | None = None) -> tuple[bytes, bytes]:
    catalog = catalog or packaged_catalog()
    return key.registry_key, encode(catalog.latest(PUBLISHER_KEY), key.to_avro())


def write_keys(kafka: KafkaSettings | str, keys: Iterable[PublisherKey], timeout: float = 30.0) -> int:
    """Write key records (the admin principal's job) and wait for the broker to confirm every one."""
    catalog = packaged_catalog()
    return settings_for(kafka).write_confirmed(PUBLISHERS, (key_record(key, catalog) for key in keys), timeout,
                                               "key records")


class KeyFeed:
    """A registry kept current from `leadbus.publishers` (one partition, read from the start)."""

    def __init__(self, kafka: KafkaSettings | str, catalog: SchemaCatalog | None = None) -> None:
        self.kafka = settings_for(kafka)
        self.catalog = catalog or packaged_catalog()
        self.registry = KeyRegistry()
        self.skipped = 0
        self._consumer: Consumer | None = None
        self._last_poll = 0.0
        self._next = 0  # the offset after the last record read
        self.ready = False  # read to the end at least once

    def _open(self) -> Consumer:
        if self._consumer is None:
            consumer = self.kafka.consumer(f"leadbus-keys-{uuid.uuid4()}", log_level=3,
                                           **{"enable.partition.eof": False})
            consumer.assign([TopicPartition(PUBLISHERS, 0, 0)])
            self._consumer = consumer
        return self._consumer

    def _apply(self, msgs: list) -> None:  # type: ignore[type-arg]
        trail = self.registry.log
        if trail is None:
            trail = self.registry.log = RegistryLog()
        for msg in msgs:
            if msg.error():
                continue
            self._next = max(self._next, (msg.offset() or 0) + 1)
            trail.note(msg.offset() or 0, msg.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME)
            raw_key = (msg.key() or b"").decode(errors="replace")
            value = msg.value()
            if value is None:  # a tombstone: the admin purged the key
                publisher, _, key_id = raw_key.partition("/")
                self.registry.remove(publisher, key_id)
                continue
            try:
                _, record = decode(self.catalog, value, self.catalog.latest(PUBLISHER_KEY))
                key = PublisherKey.from_avro(record)
            except (DecodeError, ValueError, KeyError, TypeError) as exc:
                self.skipped += 1
                log.error("unreadable record %s on %s@%s: %s", raw_key, PUBLISHERS, msg.offset(), exc)
                continue
            if raw_key != key.registry_key.decode():
                self.skipped += 1
                log.error("key record %s names %s: ignored", raw_key, key.registry_key.decode())
                continue
            self.registry.apply(key)
            self.registry.note_record(key, msg.offset() or 0, self._broker_ms(msg))

    @staticmethod
    def _broker_ms(msg: Any) -> int:
        kind, ms = msg.timestamp()
        return ms if kind != TIMESTAMP_NOT_AVAILABLE and ms > 0 else 0

    def poll(self, every: float = 0.5) -> None:
        """Take what has arrived, without waiting; at most every `every` seconds."""
        if time.monotonic() - self._last_poll < every:
            return
        self._last_poll = time.monotonic()
        self._apply(self._open().consume(500, 0))

    def catch_up(self, timeout: float = 30.0) -> None:
        """Read to the topic's current end (what was written before this call is known after it)."""
        consumer = self._open()
        tp = TopicPartition(PUBLISHERS, 0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, high = consumer.get_watermark_offsets(tp, timeout=min(10.0, timeout))
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while True:
            fetched = consumer.position([tp])[0].offset  # negative until the first fetch
            position = max(self._next, fetched)
            if position >= high:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{PUBLISHERS} not read to its end ({position}/{high}) within {timeout}s")
            self._apply(consumer.consume(500, 0.2))
        self._last_poll = time.monotonic()
        self.ready = True

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def read_registry(kafka: KafkaSettings | str, timeout: float = 30.0) -> KeyRegistry:
    """The registry as the topic holds it now."""
    feed = KeyFeed(kafka)
    try:
        feed.catch_up(timeout)
        return feed.registry
    finally:
        feed.close()
