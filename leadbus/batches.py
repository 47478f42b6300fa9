"""Taking records off a consumer in batches without waiting for a batch to fill.

`Consumer.consume(n, timeout)` returns when n records are there or the timeout has run out: at a
steady rate below n per timeout, every batch waits the whole timeout, and at every hop of the
pipeline that wait adds to each record's end-to-end latency (0.2 s per stage, 0.5 s in the sinks,
before this). `next_batch` returns as soon as one record is there, with whatever else the consumer
already holds, and waits at most `fill` for more: under a backlog batches are still full (the
consumer's queue holds them), at a steady rate a batch is what arrived while the last one was
processed and committed.

With a `gap` the fill ends early, once `gap` seconds pass with no new record ("natural batching"): a hop
downstream of a transactional stage receives that stage's commit as one burst, so a short gap takes the whole
burst and stops, instead of waiting out the fill for the next one; records that keep coming (a backlog, a
busy producer) still fill the batch up to `fill`. `gap=0` takes only what the consumer holds, repeatedly.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Message

#: The batch gap of every hop on the path to cases, the registry and the dashboards: the stages there
#: (processors/stages.py) and the registry sink end a fill once no record came for 5 ms, so a hop takes its
#: upstream's commit as one burst and goes on (README, "End-to-end latency").
ON_PATH_GAP = 0.005

#: The registry sink's batch gap: 0, it takes what its consumer holds (again while more is there) and writes it.
#: Its SQL transaction is short and not transactional on the bus (no commit markers, no coordinator): unlike a
#: stage's, a smaller batch costs it little (no more CPU per lead measured), while the 5 ms gap waited after every
#: burst and, with four input topics committed by different stages, could run on into the next one: registry p50 −
#: cases p50 142-169 → 31-103 ms at 500 leads/s (README, "End-to-end latency").
REGISTRY_GAP = 0.0


def next_batch(consumer: Consumer, size: int, wait: float, fill: float = 0.0,
               gap: float | None = None) -> list[Message]:
    """Up to `size` records (errors included, as `consume` returns them): none only after `wait` seconds idle."""
    batch: list[Message] = consumer.consume(size, 0)
    if not batch:
        first = consumer.poll(wait)
        if first is None:
            return []
        batch = [first]
    if gap is None:
        if len(batch) < size:
            batch += consumer.consume(size - len(batch), fill)
        return batch
    deadline = time.monotonic() + fill
    while len(batch) < size:
        left = deadline - time.monotonic()
        more = consumer.consume(size - len(batch), max(0.0, min(gap, left)))
        if not more:
            break
        batch += more
        if left <= gap:
            break
    return batch
