"""Which records a stage's transactions may hold after its producer failed fatally, so that no record fails it forever.

A producer in a fatal state (librdkafka: a broker refusing an abort with INVALID_TXN_STATE, a fence) cannot go on; the
stage makes a new one and redoes its records from the committed offsets. A record that made the producer fail would
make the new one fail too, and so on: a poison loop. So every record of a transaction the producer failed in becomes a
suspect, and a later transaction holding a suspect takes at most half as many records as the one it failed in: after
about log2(n) failures the record that causes them is alone, and once it failed alone twice (once may be the bus's
chance) it is a poison record, dead-lettered without its outputs. Records leave the suspects when they commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Coordinates(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


#: Failed alone this many times in a fatal transaction: the record is taken for the cause.
ALONE_FAILURES = 2


@dataclass
class Suspects:
    """Records of transactions in which the producer failed fatally: the size of the smallest, and alone failures."""

    smallest: dict[tuple[str, int, int], int] = field(default_factory=dict)
    alone: dict[tuple[str, int, int], int] = field(default_factory=dict)
    cause: str = ""

    def __bool__(self) -> bool:
        return bool(self.smallest)

    def failed(self, records: Sequence[Coordinates], cause: str) -> None:
        """The producer failed fatally in the transaction of `records`."""
        self.cause = cause
        size = len(records)
        for r in records:
            at = (r.topic, r.partition, r.offset)
            self.smallest[at] = min(size, self.smallest.get(at, size))
            if size == 1:
                self.alone[at] = self.alone.get(at, 0) + 1

    def committed(self, records: Sequence[Coordinates]) -> None:
        for r in records:
            at = (r.topic, r.partition, r.offset)
            self.smallest.pop(at, None)
            self.alone.pop(at, None)

    def poisoned(self, record: Coordinates) -> bool:
        return self.alone.get((record.topic, record.partition, record.offset), 0) >= ALONE_FAILURES

    def allowed(self, records: Sequence[Coordinates]) -> int:
        """How many records from the first one transaction may take: at most half of the smallest failed transaction
        of any suspect among them (at least one), and a poison record alone."""
        limit = len(records)
        for i, r in enumerate(records):
            if i >= limit:
                return i
            size = self.smallest.get((r.topic, r.partition, r.offset))
            if size is None:
                continue
            cap = 1 if self.poisoned(r) else max(1, size // 2)
            if i + 1 > cap:
                return i
            limit = min(limit, cap)
        return limit
