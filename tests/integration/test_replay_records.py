"""A Kafka replay's records made in C (`leadbus.audit.native_records`), from librdkafka's own messages (`reader`, the
path a replay takes with the installed confluent-kafka) and from confluent-kafka's Messages (`maker`, where the
reader does not know the consumer), are those the Python path makes (`leadbus.audit.sources._taken`), slot by slot,
over a real broker's partitions: one opened by an aborted transaction (its first record read, at offset 4, opens the
log), committed transactions whose markers fall between records and at a partition's end, records with null keys and
values and headers absent, empty or with None values (or repeated, or unlike those before in their last byte alone,
or of more names than the reader keeps), records sharing their time, one partition read from its middle, and records
written after the plan (past each partition's end), which neither reads. Both are also held to what was written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.audit import native_records
from leadbus.audit.sources import KafkaSource, PartitionSpan
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
SIGNER = "leadbus-stage-signer"
HEADERS: list[Any] = [
    None, [], [("a", None)], [("leadbus-stage-seq", b"7"), ("x", b""), ("名", "值".encode())],
    # values met on the records before, or but for their last byte or length (the reader keeps pairs made before)
    [(SIGNER, b"LEADBUS-intake"), ("x", b""), ("a", None), ("v", b"\x01" * 64)],
    [(SIGNER, b"LEADBUS-intakf"), ("x", None), ("a", b""), ("v", b"\x01" * 63 + b"\x02"), (SIGNER, b"LEADBUS-intake")],
    [("v", b"\x01" * 65), ("v", b"\x01" * 64 + b"\x02"), ("v", b"\x01" * 63), ("v", b"\x01" * 64), ("x", b"\x00")],
    [(f"h{k}", b"%d" % (k % 3)) for k in range(40)],  # more names than the reader keeps
]
Written = tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...], int]  # partition … time


def _rows(i: int) -> Iterator[tuple[int, bytes | None, bytes | None, Any, int]]:
    """Record i of each partition: key, value (null now and then), headers of each shape, a time of its own."""
    for partition in range(3):
        yield (partition, None if i % 5 == 1 else b"k%d" % i, None if i % 7 == 3 else b"\xc3\x01" + b"v" * (i % 50),
               HEADERS[(i + partition) % len(HEADERS)], _stamp(i, partition))


def _stamp(i: int, partition: int) -> int:
    """Record i's time: two records in a row share it (the reader keeps the int of the one before)."""
    return 1_700_000_000_000 + 1000 * (i // 2) + partition


def _write(bootstrap: str, topic: str) -> list[Written]:
    transactional = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"records-{topic}"})
    plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    transactional.init_transactions()
    transactional.begin_transaction()
    for _ in range(3):  # offsets 0-2 aborted, 3 the marker: partition 0's first visible record is at offset 4
        transactional.produce(topic, value=b"aborted", partition=0)
    assert transactional.flush(30) == 0  # on the broker, then aborted (not purged unsent)
    transactional.abort_transaction()
    written: list[Written] = []
    i = 0
    for _ in range(6):  # committed transactions on partitions 0 and 1 (markers between and after), plain on 2
        transactional.begin_transaction()
        for _ in range(40):
            for partition, key, value, headers, stamp in _rows(i):
                producer = transactional if partition < 2 else plain
                producer.produce(topic, key=key, value=value, partition=partition, headers=headers, timestamp=stamp)
                written.append((partition, key, value, tuple(headers or ()), stamp))
            i += 1
        transactional.commit_transaction()
    assert plain.flush(30) == 0
    return written


def _read(settings: KafkaSettings, topic: str, spans: list[PartitionSpan], native: bool,
          batch: int, direct: bool = False) -> list[dict[str, Any]]:
    source = KafkaSource(settings, [topic], CATALOG, batch=batch)
    source.spans, source.native, source.from_librdkafka = spans, native, direct
    records = [{name: getattr(r, name) for name in native_records.slots(ReplayRecord)}
               for r in source.records(interleave=True)]
    assert source.direct == direct  # the reader knows the installed confluent-kafka's consumer: no fallback
    for partition in range(3):  # each partition's in offset order, whatever the interleaving
        offsets = [r["offset"] for r in records if r["partition"] == partition]
        assert offsets == sorted(offsets)
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


def test_records_made_in_c_from_a_brokers_batches_are_those_of_the_python_path(cluster: KafkaCluster,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    bootstrap = cluster.bootstrap_servers
    topic = f"replay-records-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result()
    written = _write(bootstrap, topic)
    settings = KafkaSettings(bootstrap)
    planner = KafkaSource(settings, [topic], CATALOG)
    spans = planner.plan()
    planner.close()
    assert [s.start for s in spans] == [0, 0, 0]
    spans[2] = PartitionSpan(topic, 2, 100, spans[2].end)  # read from its middle: its first record opens nothing
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, value=b"later", partition=1)  # past the plan's end
    assert plain.flush(30) == 0
    late = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"late-{topic}"})
    late.init_transactions()
    late.begin_transaction()
    for partition in range(3):
        late.produce(topic, value=b"later", partition=partition)
    late.commit_transaction()

    assert native_records.NATIVE and native_records.DIRECT  # built (`make install`): tested, never skipped
    readers: list[Any] = []
    made = native_records._Reader

    def kept(*args: Any) -> Any:
        readers.append(made(*args))
        return readers[-1]

    monkeypatch.setattr(native_records, "_Reader", kept)
    python = _read(settings, topic, spans, False, 500)
    for batch in (500, 7, 1):
        assert _read(settings, topic, spans, True, batch) == python
        assert _read(settings, topic, spans, True, batch, direct=True) == python
    # each reader found where librdkafka keeps a message's headers unparsed, and read them there once its first
    # messages agreed with librdkafka's parse (those without a value or headers are still librdkafka's)
    assert len(readers) == 3 and all(r.headers_from_bytes for r in readers)
    middle = _stamp(100, 2)  # partition 2's record 100 (and 101)
    expected = sorted((w for w in written if w[0] < 2 or w[4] >= middle), key=lambda w: w[0])
    assert [(r["partition"], r["key"], r["value"], r["headers"], r["timestamp_ms"]) for r in python] == expected
    assert [r["offset"] for r in python if r["opens_log"]] == [4, 0]  # partitions 0 and 1; 2 read from offset 100
    assert [r["partition"] for r in python if r["opens_log"]] == [0, 1]
    assert all(r["topic"] == topic and r["catalog"] is CATALOG and not r["trusted"] for r in python)
