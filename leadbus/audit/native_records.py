"""A consumed batch made into replay records in C (`leadbus.audit._records`, built by `make install`), for
`KafkaSource._interleaved`; None without the extension (the Python path alone, `leadbus.audit.sources._taken`).

`maker()` gives `build(batch, start, open_, fresh, done, catalog) -> (records, next)`: the records of batch[start:]
as the Python path makes them, with the same bookkeeping of the partitions still read (`open_`, their ends), those
read from their log's start (`fresh`: the first record `opens_log`) and those closed by this batch (`done`), up to the
first message that is not the usual one (an error, or a field of an unusual type): `next` is its index, and the Python
path takes it. A record is made without `ReplayRecord.__init__` (a third of the read path's CPU over a raw read's):
its slots start with the values `__init__` gives a record, taken from one it made, then the nine read from the
message. Tests hold the records to the Python path's, slot by slot, over real broker reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Message

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
