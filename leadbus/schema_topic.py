"""The `leadbus.schemas` topic: every writer schema ever used, keyed by fingerprint, kept whole (never compacted).

Writers publish their schemas before their first event; readers load the topic into their
catalog, so a reader built before a compatible schema change still resolves the new
fingerprint and reads the new events through Avro schema resolution.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

from leadbus.avro import SchemaCatalog, SchemaEntry
from leadbus.clients import KafkaSettings, settings_for
from leadbus.signing import RegistryLog
from leadbus.topics import SCHEMAS

_log = logging.getLogger("leadbus.schemas")


def schema_record(entry: SchemaEntry) -> tuple[bytes, bytes]:
    # The expanded form is self-contained: a reader needs no other schema to parse it.
    body = {"name": entry.name, "version": entry.version, "schema": entry.expanded, "canonical": entry.canonical}
    return entry.fingerprint_hex.encode(), json.dumps(body, ensure_ascii=False).encode()


def publish_schemas(bootstrap: str | KafkaSettings, entries: Iterable[SchemaEntry], timeout: float = 30.0) -> int:
    return settings_for(bootstrap).write_confirmed(SCHEMAS, (schema_record(e) for e in entries), timeout, "schemas")


def load_schemas(bootstrap: str | KafkaSettings, catalog: SchemaCatalog, timeout: float = 30.0,
                 reader: str = "any", altered: list[tuple[int, int, str]] | None = None,
                 log: RegistryLog | None = None, first: dict[bytes, tuple[int, int, str]] | None = None,
                 unreadable: list[tuple[int, int, str]] | None = None) -> int:
    """Read `leadbus.schemas` from the beginning to its current end into `catalog`; return how many were new.

    The consumer assigns itself the partitions; its group (`leadbus-schema-reader-<reader>-…`, never
    joined) is named after the reading component so that its ACL can grant the prefix.

    `altered` (an audit's) receives (partition, offset, name) of each record whose schema has the fingerprint of one
    the catalog knows (packaged, or earlier on the topic: that one is kept) but reads otherwise: a fingerprint is a
    CRC-64 of the Parsing Canonical Form, which leaves out logical types, defaults and more (`timestamp-millis` made
    `timestamp-micros` keeps it), and a CRC can be matched at will.

    `log` (an audit's) notes the offsets read and whether the broker stamped each record (partition 0: the topic has
    one), so that records missing from the topic kept whole, or written while it was not stamped by the broker, are
    named (`leadbus.audit.schema_log`).

    `first` (an audit's) receives, per fingerprint whose first record the broker stamped, that record's (offset, broker
    time, schema name): when the schema was first on the bus (`leadbus.audit.schema_order`).

    A record that is not a schema the catalog can take (not JSON, no `schema`, not Avro) is passed over, with a
    warning, and `unreadable` (an audit's) receives its (partition, offset, why): one foreign record on the topic
    neither stops a reader of the bus nor hides the schemas after it.
    """
    # Every broker connected at once (as a replay's consumers, `leadbus.audit.sources._CONNECT_ALL`): with librdkafka's
    # sparse connections the first `list_topics` waited out a reconnect backoff, 53-57 ms of 2-4 ms of work (a tenth
    # of a replay of leadbus.cases without --verify).
    consumer = settings_for(bootstrap).consumer(f"leadbus-schema-reader-{reader}-{uuid.uuid4()}",
                                                **{"isolation.level": "read_uncommitted",
                                                   "enable.sparse.connections": False})
    try:
        meta = consumer.list_topics(SCHEMAS, timeout=timeout)
        partitions = [TopicPartition(SCHEMAS, p, 0) for p in meta.topics[SCHEMAS].partitions]
        ends = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            ends[tp.partition] = high
            if log is not None and tp.partition == 0 and 0 < low == high:  # every record deleted: none to read
                log.note_missing(high)
        todo = {p for p, high in ends.items() if high > 0}
        consumer.assign(partitions)
        before = len(catalog)
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            value = msg.value()
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if log is not None and partition == 0:
                log.note(offset, msg.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME)
            if value:
                try:
                    body = json.loads(value)
                    known = len(catalog)
                    entry = catalog.add(body["schema"], int(body.get("version") or 0))
                except Exception as exc:  # noqa: BLE001 - a foreign record fails in any way; named, passed over
                    why = f"{type(exc).__name__}: {exc}"[:200]
                    _log.warning("%s[%d]@%d is not a schema the bus can take: %s", SCHEMAS, partition, offset, why)
                    if unreadable is not None:
                        unreadable.append((partition, offset, why))
                    if offset + 1 >= ends[partition]:
                        todo.discard(partition)
                    continue
                if first is not None and partition == 0 and entry.fingerprint not in first:
                    kind, stamp = msg.timestamp()
                    first[entry.fingerprint] = (offset, stamp if kind == TIMESTAMP_LOG_APPEND_TIME else -1, entry.name)
                if altered is not None and len(catalog) == known and _reads(entry.expanded) != _reads(body["schema"]):
                    altered.append((partition, offset, entry.name))
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
        if todo:
            raise TimeoutError(f"{SCHEMAS} not read to its end within {timeout}s")
        return len(catalog) - before
    finally:
        consumer.close()


def _reads(schema: object) -> object:
    """A schema as it decides how records read: its JSON without documentation."""
    if isinstance(schema, dict):
        return {k: _reads(v) for k, v in schema.items() if k != "doc"}
    if isinstance(schema, list | tuple):
        return [_reads(v) for v in schema]
    return schema
