"""The neutral types at the seam between a stage engine and a step: a record in, outputs and state writes out.

A step (`handle(record, state, now) -> Result`) never sees a Kafka client or message: every engine
(the transactional stage, the faust host, the benches, unit tests) builds a `Record` and moves the
`Result` bytes where it says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Source:
    """Coordinates of a record: topic, partition, offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record: where it came from, its key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp_ms: int | None = None

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def source(self) -> Source:
        return Source(self.topic, self.partition, self.offset)

    @property
    def size(self) -> int:
        """Bytes of key, value and headers together: what size limits apply to."""
        # the headers' names and values (None counts 0) summed in C: a generator's frame per header cost ~0.1 µs each
        return (len(self.key or b"") + len(self.value or b"")
                + sum(map(len, filter(None, chain.from_iterable(self.headers)))))


@dataclass(frozen=True, slots=True)
class Output:
    """A record to produce; `partition` is set only where the step chooses it (repartitioning)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None

    @property
    def size(self) -> int:
        # checked for every output a stage produces: the headers summed in C, not a generator's frame per header
        return len(self.key or b"") + len(self.value) + sum(map(len, chain.from_iterable(self.headers)))


@dataclass
class Result:
    outputs: list[Output] = field(default_factory=list)
    state: dict[bytes, bytes | None] = field(default_factory=dict)
    #: What to count once the record's outputs are committed (a metric's increment): a host that may process a
    #: record again (an aborted transaction, a batch retried in halves) calls them after its commit only, so that
    #: a count says what the bus did, once. A host without transactions calls them when the record is done.
    counted: list[Callable[[], object]] = field(default_factory=list)


class StateView(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class RangeView(StateView, Protocol):
    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]: ...
