"""One record in flight to a partition until the broker has confirmed this producer's first record there.

Why: an idempotent producer whose first batch to a partition is refused (NOT_LEADER_OR_FOLLOWER: a new
topic, or a partition whose leader has not taken it up yet) while its next batch, already in flight,
lands, counts the first as delivered. Kafka accepts any first sequence number from a producer it holds
no state for, and librdkafka takes the later batch's success as proof the earlier one was written
("IMPLICITACK ... implicitly acked by subsequent batch success"; confluent-kafka-go#921, open, not fixed
in librdkafka 2.16): leads confirmed to the agency and never on the bus. Once one record of this producer
is on the partition the broker knows the producer, refuses a sequence gap, and batches may fly freely.

The gate holds the records behind a partition's first one and hands them back, in order, when its
delivery report arrives. A partition unwritten for longer than `FRESH_AFTER` is treated as new again: the
broker forgets an idle producer (`producer.id.expiration.ms`, a day by default).

`Publisher._produce` makes the open test itself without the lock (a hint; `admit` decides): it runs for every
lead.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

#: key, value, headers, and the delivery callback of one held record
Held = tuple[bytes, bytes, list[tuple[str, bytes]], Callable[[Any, Any], None]]

#: sends one record to a partition now; raises BufferError when librdkafka's queue is full
Send = Callable[[int, bytes, bytes, list[tuple[str, bytes]], Callable[[Any, Any], None]], None]

NEVER = float("-inf")

#: seconds unwritten after which a partition is new again: a quarter of the broker's default
#: `producer.id.expiration.ms` (a day), after which it has forgotten an idle producer
FRESH_AFTER = 6 * 3600.0


OPEN, HELD, FIRST = "open", "held", "first"


class FirstDeliveryGate:
    """Per partition of one topic: open once the producer's first record there is confirmed.

    Thread-safe: the gateway publishes from request threads while another thread serves delivery reports
    (which release held records); `held` is read without the lock only as a hint (`Publisher._produce`).
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = threading.RLock()
        #: partition -> monotonic time of the last record sent to it through the open gate
        self.written: dict[int, float] = {}
        #: partition whose first record is in flight (or whose held records still wait to go) -> records behind it
        self.held: dict[int, deque[Held]] = {}
        self.held_count = 0
        #: partitions whose first delivery is known but whose held records met a full queue (sent by `resume`)
        self.stalled: deque[int] = deque()

    def admit(self, partition: int, now: float, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
              on_delivery: Callable[[Any, Any], None]) -> str:
        """OPEN: send the record now; HELD: it waits behind the partition's first record; FIRST: it is that
        record, send it with `first_callback`'s callback."""
        with self._lock:
            behind = self.held.get(partition)
            if behind is not None:
                behind.append((key, value, headers, on_delivery))
                self.held_count += 1
                return HELD
            if now - self.written.get(partition, NEVER) <= FRESH_AFTER:
                self.written[partition] = now
                return OPEN
            self.held[partition] = deque()
            return FIRST

    def first_callback(self, partition: int, on_delivery: Callable[[Any, Any], None],
                       clock: Callable[[], float]) -> Callable[[Any, Any], None]:
        def first_delivered(err: Any, msg: Any) -> None:
            on_delivery(err, msg)
            with self._lock:
                if err is None:
                    self.written[partition] = clock()
                # Failed (its own report says why): the records behind it go anyway, each to its own report,
                # rather than one at a time behind a string of timeouts; the next new record probes again.
                self._release(partition)

        return first_delivered

    def _release(self, partition: int) -> bool:
        """Send the records held behind the partition's first, in order; False if the queue filled first."""
        behind = self.held.get(partition)
        if behind is None:
            return True
        try:
            while behind:
                key, value, headers, on_delivery = behind[0]
                self._send(partition, key, value, headers, on_delivery)
                behind.popleft()
                self.held_count -= 1
        except BufferError:  # perhaps in a callback, with nowhere to wait: the publishing thread finishes (`resume`)
            if partition not in self.stalled:
                self.stalled.append(partition)
            return False
        del self.held[partition]
        return True

    def resume(self, wait: Callable[[], object]) -> None:
        """Send what a full queue stalled, waiting (`wait`: serve callbacks a while, the lock let go) meanwhile."""
        while True:
            with self._lock:
                if not self.stalled:
                    return
                partition = self.stalled[0]
                if self._release(partition):
                    self.stalled.popleft()
                    continue
            wait()

    def abandon(self, partition: int) -> None:
        """The partition's first record was not handed to the producer after all: whatever came to wait behind it
        (another publishing thread) goes now, and the next record probes again."""
        with self._lock:
            self._release(partition)
