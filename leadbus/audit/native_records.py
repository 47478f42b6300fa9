"""A consumed batch made into replay records in C (`leadbus.audit._records`, built by `make install`), for
`KafkaSource._interleaved`; None without the extension (the Python path alone, `leadbus.audit.sources._taken`).

`maker()` gives `build(batch, start, open_, fresh, done, catalog) -> (records, next)`: the records of batch[start:]
as the Python path makes them, with the same bookkeeping of the partitions still read (`open_`, their ends), those
read from their log's start (`fresh`: the first record `opens_log`) and those closed by this batch (`done`), up to the
first message that is not the usual one (an error, or a field of an unusual type): `next` is its index, and the Python
path takes it. A record is made without `ReplayRecord.__init__` (a third of the read path's CPU over a raw read's):
its slots start with the values `__init__` gives a record, taken from one it made, then the nine read from the
message. Tests hold the records to the Python path's, slot by slot, over real broker reads.

`reader(consumer, logger)` goes one step further where `leadbus.audit._rdkafka` is built and knows the consumer: the
same records made from librdkafka's own messages, with no Message object, no topic str per message and no header name
decoded twice (`KafkaSource._interleaved`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from leadbus.audit.verification import ReplayRecord

Build = Callable[[list[Any], int, dict[tuple[str, int], int], set[tuple[str, int]], list[tuple[str, int]], Any],
                 tuple[list[ReplayRecord], int]]

#: The slots set from each message, in the order `_records.Maker` takes them
FIELDS = ("topic", "partition", "offset", "timestamp_ms", "key", "value", "headers", "catalog", "opens_log")

try:
    from leadbus.audit._records import Maker
except ImportError:  # not built (a source tree without `make install`): the Python path alone
    NATIVE = False
else:
    NATIVE = True

if TYPE_CHECKING:
    from leadbus.audit._rdkafka import Reader

try:
    from leadbus.audit._rdkafka import Reader as _Reader
except ImportError:  # not built: records from confluent-kafka's Messages (`maker`, or the Python path)
    DIRECT = False
else:
    DIRECT = True

log = logging.getLogger("leadbus.audit")
_made: list[Build | None] = []


def slots(cls: type) -> tuple[str, ...]:
    return tuple(name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ()))


def _shared(value: object) -> bool:
    """Whether every record may hold this same object (what `__init__` gives every record, not one of its own; not a
    slot it leaves unset)."""
    return value is None or type(value) in (bool, int, str) or value == ()


def maker() -> Build | None:
    """The C maker of records (made once per process), or None: not built, or `ReplayRecord` now holds a slot whose
    first value is not one every record may share (a list of its own, say): then the Python path, which makes it."""
    if not _made:
        build: Build | None = None
        if NATIVE:
            prototype = ReplayRecord("", 0, 0, 0, None, None, (), None)  # type: ignore[arg-type]
            names = slots(ReplayRecord)
            if set(FIELDS) <= set(names) and all(_shared(getattr(prototype, name, _shared)) for name in names
                                                 if name not in FIELDS):
                build = Maker(ReplayRecord, names, FIELDS, prototype, Message).build
        _made.append(build)
    return _made[0]


def reader(consumer: Consumer, logger: object) -> Reader | None:
    """A reader of `consumer`'s records straight from librdkafka (`leadbus.audit._rdkafka`), or None: not built, the
    record class not one the C may fill (as `maker`), or the consumer not laid out as the extension knows it (another
    confluent-kafka, a consumer made without `logger`): then confluent-kafka's Messages are read, as before.

    Measured on the bench's fill (100,000 records each, the read alone, main thread's CPU): leadbus.cases 1.8-2.5 µs
    per record against 3.4-4.7 through Messages and `maker`, leadbus.leads.accepted 2.5-3.1 against 4.2-5.8, the
    intake topics 3.0-4.9 against 5.4-8.8. Headers read from their bytes and pairs met again kept (`_rdheaders.h`)
    took it, in one process reading with both builds in turn (medians of 10 rounds, load 6-7), from 1.83 to 1.04 µs
    for leadbus.cases, 3.45 to 2.44 for leadbus.leads.accepted, 3.64 to 2.49 for the intake topics."""
    if not DIRECT or maker() is None:
        return None
    prototype = ReplayRecord("", 0, 0, 0, None, None, (), None)  # type: ignore[arg-type]
    try:
        return _Reader(consumer, Consumer, confluent_kafka.cimpl.__file__, logger, confluent_kafka.libversion()[1],
                      ReplayRecord, slots(ReplayRecord), FIELDS, prototype, KafkaException, KafkaError)
    except (RuntimeError, TypeError, AttributeError) as exc:
        log.debug("replay: records read through confluent-kafka's Messages (%s)", exc)
        return None


class Odd:
    """A message the reader leaves to the Python path (`sources._taken`) (an error, no topic), in a Message's stead: its
    fields as the reader gave them (err, errstr, topic, partition, offset, timestamp, key, value, headers)."""

    __slots__ = ("fields",)

    def __init__(self, fields: tuple[Any, ...]) -> None:
        self.fields = fields

    def error(self) -> KafkaError | None:
        return KafkaError(self.fields[0], self.fields[1]) if self.fields[0] else None

    def topic(self) -> str | None:
        return cast(str | None, self.fields[2])

    def partition(self) -> int:
        return cast(int, self.fields[3])

    def offset(self) -> int:
        return cast(int, self.fields[4])

    def timestamp(self) -> tuple[int, int]:
        return cast(tuple[int, int], self.fields[5])

    def key(self) -> bytes | None:
        return cast(bytes | None, self.fields[6])

    def value(self) -> bytes | None:
        return cast(bytes | None, self.fields[7])

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return cast(list[tuple[str, bytes | None]] | None, self.fields[8])
