"""Records made in C from a consumed batch (`leadbus.audit.native_records`) against the Python path
(`leadbus.audit.sources._taken`): the same records, slot by slot, and the same partitions left open, closed and fresh,
over batches of confluent_kafka Messages of every shape a consumer hands over and more (errors, null keys and values,
headers absent, empty or with None values, offsets past a partition's end, partitions not read, and fields of types a
consumer never gives, which C leaves to the Python path). The real broker's records: tests/integration/
test_replay_records.py."""

from __future__ import annotations

import logging
import random
from itertools import chain
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from leadbus.audit import native_records
from leadbus.audit.sources import SourceError, _made
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import packaged_catalog

CATALOG = packaged_catalog()
TOPICS = ["leadbus.cases", "leadbus.intake.SAMR", "名字"]
HEADERS: list[Any] = [None, [], [("a", None)], [("leadbus-stage-seq", b"7"), ("x", b""), ("名", "值".encode())],
                      [("k", b"\x00" * 40)] * 6]


def slots_of(record: ReplayRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in native_records.slots(ReplayRecord)}


def run(build: native_records.Build | None, batches: list[list[Message]], ends: dict[tuple[str, int], int],
        fresh: set[tuple[str, int]]) -> tuple[list[dict[str, Any]], list[list[tuple[str, int]]], Any, Any, str]:
    open_, fresh = dict(ends), set(fresh)
    out: list[dict[str, Any]] = []
    closed = []
    refused = ""
    try:
        for batch in batches:
            done: list[tuple[str, int]] = []
            for record in chain.from_iterable(_made(build, batch, open_, fresh, done, CATALOG)):
                out.append(slots_of(record))
            closed.append(done)
    except (SourceError, TypeError) as exc:
        refused = f"{type(exc).__name__}: {exc}"
    return out, closed, open_, fresh, refused


def usual(rng: random.Random, topic: str, partition: int, offset: int) -> Message:
    return Message(topic=topic, partition=partition, offset=offset, timestamp=(rng.choice([0, 1, 2]), rng.randrange(
        -1, 2**41)), key=rng.choice([None, b"", b"k%d" % offset]), value=rng.choice([None, b"", b"\xc3\x01" + bytes(
        rng.randrange(30))]), headers=rng.choice(HEADERS), error=None)


def unusual(rng: random.Random, topic: str, partition: int, offset: int) -> Message:
    kind = rng.randrange(8) if rng.random() < 0.5 else rng.choice([0, 1, 2, 4, 5, 6, 7])  # (3 stops the read)
    fields: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset, "timestamp": (1, 5),
                              "key": b"k", "value": b"v", "headers": None, "error": None}
    if kind == 0:
        fields["error"] = KafkaError(KafkaError._PARTITION_EOF)
    elif kind == 1:
        fields["error"] = KafkaError(KafkaError._TRANSPORT)  # logged and passed over
    elif kind == 2:
        fields["headers"] = (("a", b"b"),)  # a tuple, not the list a consumer gives
    elif kind == 3:
        fields["offset"] = -1001  # no offset (None): Python's comparison raises, both ways
    elif kind == 4:
        fields["topic"] = topic.encode()  # a topic as bytes: not a partition read
    elif kind == 5:
        fields["key"], fields["value"] = "not bytes", 7  # passed through as given, both ways
    elif kind == 6:
        fields["partition"] = -1  # no partition (None): not one read
    else:
        fields["headers"] = [["a", b"b"]]  # a header as a list: passed through as given, both ways
    return Message(**fields)


def traffic(seed: int) -> tuple[list[list[Message]], dict[tuple[str, int], int], set[tuple[str, int]]]:
    rng = random.Random(seed)
    ends = {(topic, p): rng.randrange(1, 40) for topic in TOPICS for p in range(3) if rng.random() < 0.8}
    fresh = {where for where in ends if rng.random() < 0.6}
    next_offset = {where: rng.randrange(0, 3) for where in ends}
    messages = []
    for _ in range(rng.randrange(50, 200)):
        topic, partition = rng.choice(TOPICS), rng.randrange(4)  # partition 3 is never read
        where = (topic, partition)
        offset = next_offset.get(where, 0)
        next_offset[where] = offset + rng.choice([1, 1, 1, 2, 3])  # gaps: markers and aborted records
        make = unusual if rng.random() < 0.05 else usual
        messages.append(make(rng, topic, partition, offset))
    batches, at = [], 0
    while at < len(messages):
        size = rng.choice([1, 2, 7, 50, 500])
        batches.append(messages[at:at + size])
        at += size
    return batches, ends, fresh


@pytest.mark.skipif(not native_records.NATIVE, reason="the C extension is not built (make install)")
@pytest.mark.parametrize("seed", range(60))
def test_records_made_in_c_are_those_of_the_python_path(seed: int) -> None:
    build = native_records.maker()
    assert build is not None
    batches, ends, fresh = traffic(seed)
    python, native = run(None, batches, ends, fresh), run(build, batches, ends, fresh)
    assert native == python
    assert len(python[0]) > 10 or python[4].startswith("TypeError"), "the traffic made few records"


@pytest.mark.skipif(not native_records.NATIVE, reason="the C extension is not built (make install)")
def test_a_refusal_stops_both_paths_at_the_same_record() -> None:
    rng = random.Random(3)
    messages = [usual(rng, "t", 0, i) for i in range(5)]
    messages.insert(3, Message(topic="t", partition=0, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    python, native = (run(build, [messages], {("t", 0): 10}, {("t", 0)}) for build in (None, native_records.maker()))
    assert native == python
    assert len(python[0]) == 3 and "access refused" in python[4]


@pytest.mark.skipif(not native_records.NATIVE, reason="the C extension is not built (make install)")
def test_the_records_start_as_init_makes_them_and_a_new_slot_of_its_own_leaves_c_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    build = native_records.maker()
    assert build is not None
    made, _ = build([Message(topic="t", partition=0, offset=0, timestamp=(1, 9), key=None, value=None, headers=None,
                             error=None)], 0, {("t", 0): 5}, set(), [], CATALOG)
    assert slots_of(made[0]) == slots_of(ReplayRecord("t", 0, 0, 9, None, None, (), CATALOG))
    assert not made[0].trusted and not made[0].pending and not made[0].opens_log and made[0].has_seal() is False

    class Holding(ReplayRecord):
        __slots__ = ("marks",)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.marks: list[int] = []  # each record's own: C could only share one

    monkeypatch.setattr(native_records, "ReplayRecord", Holding)
    monkeypatch.setattr(native_records, "_made", [])
    assert native_records.maker() is None


# -- the reader of librdkafka's own messages (`native_records.reader`): what it trusts, and what it leaves --------

def test_the_reader_knows_the_installed_consumer_and_nothing_else() -> None:
    """The reader takes a consumer made as the replay's are (with the project's logger) and refuses, by None and never
    a crash, whatever it cannot vouch for: another logger than the one the consumer holds, none, a producer, a closed
    consumer; once the consumer is closed under it, a consume says so."""
    from confluent_kafka import Consumer

    from leadbus.clients import RDKAFKA_LOG, KafkaSettings

    assert native_records.NATIVE and native_records.DIRECT  # built (`make install`): tested, never skipped
    nowhere = KafkaSettings("127.0.0.1:9")  # nothing is read: no broker needed
    consumer = nowhere.consumer("leadbus-audit-reader-test", **{"log_level": 0})
    plain = Consumer({"bootstrap.servers": "127.0.0.1:9", "group.id": "plain", "log_level": 0})
    producer = nowhere.producer(**{"log_level": 0})
    try:
        direct = native_records.reader(consumer, RDKAFKA_LOG)
        assert direct is not None
        assert native_records.reader(consumer, logging.getLogger("another")) is None
        assert native_records.reader(plain, None) is None
        assert native_records.reader(plain, RDKAFKA_LOG) is None
        assert native_records.reader(producer, RDKAFKA_LOG) is None
        assert native_records.reader(object(), RDKAFKA_LOG) is None  # type: ignore[arg-type]
        assert direct.consume(10, 20) == 0
        assert direct.build({}, set(), [], CATALOG) == ([], None)
        with pytest.raises(ValueError):
            direct.consume(0, 20)
    finally:
        consumer.close()
        plain.close()
    with pytest.raises(RuntimeError, match="Consumer closed"):
        direct.consume(10, 20)
    direct.close()
    assert native_records.reader(consumer, RDKAFKA_LOG) is None


def test_a_message_the_reader_leaves_to_the_python_path_ends_as_there() -> None:
    """An error the reader hands over (as `native_records.Odd`) is judged by `_taken` as a Message's: a refusal stops
    the replay with the clear error, another is passed over, a message of no topic too."""
    from leadbus.audit.native_records import Odd
    from leadbus.audit.sources import _taken

    refused = Odd((KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed", "leadbus.cases", 0,
                    -1001, (0, -1), None, None, None))
    open_ = {("leadbus.cases", 0): 10}
    with pytest.raises(SourceError, match=r"leadbus.cases: access refused \(Broker: Topic authorization failed\)"):
        list(_taken([refused], open_, set(), [], CATALOG))
    transient = Odd((KafkaError._TRANSPORT, "down", "leadbus.cases", 0, -1001, (0, -1), None, None, None))
    lost = Odd((0, None, None, 0, 3, (1, 5), b"k", b"v", [("a", b"b")]))
    assert list(_taken([transient, lost], open_, set(), [], CATALOG)) == []
    assert open_ == {("leadbus.cases", 0): 10}
