"""A transaction held open on a replayed partition (issue #14's outside check, round 6).

A replay reads as the stages' consumers do (read_committed), to each partition's last stable offset: the first record of
the oldest transaction still open. Someone with write access who begins a transaction and never ends it holds that
offset where it is — for up to the broker's `transaction.max.timeout.ms` (15 minutes by default), and again with each
new one — and everything written after it is out of every reader's sight: forged records inside the transaction, and
the stages' own committed records after it. The replay read what came before and said "verified" (exit 0).

The stages' transactions time out after 10 s (`leadbus.clients`: `transaction.timeout.ms`), and the broker aborts a
timed-out one at its next check (every 10 s by default), so a stage's open transaction holds a partition's stable offset
for 20 s at most, a crashed stage's included. A partition read to its end whose high watermark lies past its stable
offset is watched until the offset moves; one still held `WAIT_S` after the replay planned is `TRANSACTION_HELD_OPEN`,
located at the held offset. On a bus without open transactions this costs one request (the high watermarks).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import KafkaException, TopicPartition

from leadbus.audit.verification import Finding
from leadbus.clients import KafkaSettings

#: Seconds after the plan a stable offset may stay held by a stage's transaction (10 s timeout + the broker's 10 s
#: abort check, and a margin).
WAIT_S = 25.0
_LATEST = -1


def _latest(settings: KafkaSettings, parts: Iterable[tuple[str, int]], isolation: str,
            timeout: float) -> dict[tuple[str, int], int]:
    consumer = settings.consumer(f"leadbus-audit-open-{uuid.uuid4()}", **{"isolation.level": isolation})
    try:
        found = consumer.offsets_for_times([TopicPartition(t, p, _LATEST) for t, p in parts], timeout=timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.error is None and tp.offset >= 0}
    finally:
        consumer.close()


def held_open(settings: KafkaSettings, stable: Mapping[tuple[str, int], int], read_to_end: Iterable[tuple[str, int]],
              planned: float, *, wait_s: float = WAIT_S, timeout: float = 15.0,
              clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> list[Finding]:
    """A failure per partition read to its end (`stable`: its last stable offset at the plan, made at `planned` on
    `clock`) whose stable offset stays behind its high watermark, unmoved, until `wait_s` after the plan."""
    parts = sorted(set(read_to_end))
    if not parts:
        return []
    try:
        high = _latest(settings, parts, "read_uncommitted", timeout)
        held = {tp: stable[tp] for tp in parts if tp in stable and high.get(tp, 0) > stable[tp]}
        while held and clock() - planned < wait_s:
            sleep(0.5)
            now = _latest(settings, held, "read_committed", timeout)
            held = {tp: at for tp, at in held.items() if now.get(tp, at) <= at}
    except KafkaException as exc:
        return [Finding("TRANSACTION_UNCHECKED", f"the partitions' high watermarks not read ({exc}): a transaction "
                        "held open, hiding what was written after it, would not be told", parts[0][0],
                        failure=False)]
    return [Finding("TRANSACTION_HELD_OPEN", f"a transaction open at offset {at} held the partition's stable offset "
                    f"there for over {wait_s:.0f} s, past the stages' own (10 s timeout), with records up to offset "
                    f"{high[tp] - 1} written after it: every read_committed reader, this replay and the stages "
                    "included, stops there, and what the transaction holds and what follows it were not read",
                    tp[0], tp[1], at) for tp, at in sorted(held.items())]
