"""`next_batch`: returns as soon as a record is there, with what the consumer holds, never waiting to fill."""

from __future__ import annotations

import time
from typing import Any

from leadbus.batches import next_batch


class _Queue:
    """The consumer calls `next_batch` makes, over a list of records arriving at given times."""

    def __init__(self, arrivals: list[tuple[float, str]]) -> None:
        self.start = time.monotonic()
        self.arrivals = arrivals
        self.calls: list[tuple[str, int, float]] = []

    def _ready(self, n: int) -> list[Any]:
        now = time.monotonic() - self.start
        taken = [r for t, r in self.arrivals if t <= now][:n]
        self.arrivals = self.arrivals[len(taken):]
        return taken

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.calls.append(("consume", n, timeout))
        deadline = time.monotonic() + timeout
        got = self._ready(n)
        while len(got) < n and time.monotonic() < deadline:  # as librdkafka: until n records or the timeout
            time.sleep(0.005)
            got += self._ready(n - len(got))
        return got

    def poll(self, timeout: float) -> Any:
        self.calls.append(("poll", 1, timeout))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._ready(1)
            if got:
                return got[0]
            time.sleep(0.005)
        return None


def test_held_records_come_at_once_without_waiting_for_the_batch_to_fill() -> None:
    queue = _Queue([(0.0, "a"), (0.0, "b"), (0.0, "c")])
    began = time.monotonic()
    assert next_batch(queue, 500, wait=5.0) == ["a", "b", "c"]  # type: ignore[arg-type]
    assert time.monotonic() - began < 1.0


def test_an_idle_consumer_waits_for_the_first_record_only() -> None:
    queue = _Queue([(0.3, "a"), (0.3, "b"), (3.0, "late")])
    began = time.monotonic()
    assert next_batch(queue, 500, wait=5.0) == ["a", "b"]  # type: ignore[arg-type]
    assert time.monotonic() - began < 2.0  # not the 5 s wait, not until "late"


def test_nothing_within_the_wait_is_an_empty_batch() -> None:
    assert next_batch(_Queue([]), 500, wait=0.1) == []  # type: ignore[arg-type]


def test_a_full_batch_is_cut_at_its_size_and_the_rest_stays_queued() -> None:
    queue = _Queue([(0.0, str(i)) for i in range(10)])
    assert next_batch(queue, 4, wait=1.0) == ["0", "1", "2", "3"]  # type: ignore[arg-type]
    assert next_batch(queue, 4, wait=1.0) == ["4", "5", "6", "7"]  # type: ignore[arg-type]


def test_fill_waits_that_long_for_more_once_a_record_is_there() -> None:
    queue = _Queue([(0.0, "a"), (0.2, "b")])
    assert next_batch(queue, 500, wait=1.0, fill=2.0) == ["a", "b"]  # type: ignore[arg-type]


def test_a_gap_ends_the_fill_once_no_record_came_for_that_long() -> None:
    queue = _Queue([(0.0, "a"), (0.0, "b"), (1.5, "next burst")])
    began = time.monotonic()
    assert next_batch(queue, 500, wait=1.0, fill=3.0, gap=0.05) == ["a", "b"]  # type: ignore[arg-type]
    assert time.monotonic() - began < 1.0  # neither the 3 s fill nor the next burst


def test_records_that_keep_coming_within_the_gap_fill_the_batch_up_to_the_fill() -> None:
    queue = _Queue([(0.05 * i, str(i)) for i in range(100)])  # one every 50 ms for 5 s
    began = time.monotonic()
    batch = next_batch(queue, 500, wait=1.0, fill=0.6, gap=0.2)  # type: ignore[arg-type]
    took = time.monotonic() - began
    assert 0.55 < took < 1.2
    assert 8 <= len(batch) <= 20 and batch == [str(i) for i in range(len(batch))]


def test_a_zero_gap_takes_only_what_the_consumer_holds() -> None:
    queue = _Queue([(0.0, "a"), (0.0, "b"), (0.3, "c")])
    assert next_batch(queue, 500, wait=1.0, fill=2.0, gap=0.0) == ["a", "b"]  # type: ignore[arg-type]
    assert next_batch(queue, 500, wait=1.0, fill=2.0, gap=0.0) == ["c"]  # type: ignore[arg-type]


def test_a_gap_still_cuts_the_batch_at_its_size() -> None:
    queue = _Queue([(0.0, str(i)) for i in range(10)])
    assert next_batch(queue, 4, wait=1.0, fill=1.0, gap=0.1) == ["0", "1", "2", "3"]  # type: ignore[arg-type]
