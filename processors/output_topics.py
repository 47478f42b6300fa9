"""Whether the topics a stage's outputs go to exist, known before the outputs are produced.

An output to a topic the bus does not have fails its whole transaction, and how it fails is librdkafka's: at first
the records wait for the topic's metadata and the commit fails after the producer's 30 s timeout; once the topic is
known to be missing, `produce` raises at once, and the abort that follows, sent while the partitions of the records
before it are still being added to the transaction, may be refused (INVALID_TXN_STATE) and leave the producer fatal
(confluentinc/librdkafka#4849). A batch holding such a record was halved 304 -> 152 -> ... -> 5, ~30 s per try, until
the producer died with the stage (CI, test_stage_resilience). Asked first, the record is a dead letter with its reason,
in its batch's transaction, and nothing is aborted.

A topic found is remembered for the stage's life; one found missing is asked about again after `recheck` seconds (it
may be created meanwhile). A lookup that fails (the bus unreachable) decides nothing: the output is produced and the
transaction's own failure handling takes over, and the topic is not asked about again for `recheck` seconds (each
record would wait for the lookup's timeout).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

log = logging.getLogger("leadbus.processors.stage")

#: The partitions a topic has (None: the bus says it has no such topic); raises when the bus cannot say.
Lookup = Callable[[str], "int | None"]


class OutputTopics:
    def __init__(self, lookup: Lookup, trusted: tuple[str, ...] = (), recheck: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup, self._recheck, self._clock = lookup, recheck, clock
        self.partitions: dict[str, int] = {}
        # Topics not asked about (found, or trusted: the dead-letter topic); a step checks its outputs against it.
        self.known: set[str] = set(trusted)
        self._missing: dict[str, float] = {}  # topic -> when it was found missing
        self._unsure: dict[str, float] = {}  # topic -> when the bus could not say

    def missing(self, topic: str) -> bool:
        """Whether the bus says it has no `topic` (asked once per topic, again `recheck` seconds after a miss)."""
        if topic in self.known:
            return False
        now = self._clock()
        since = self._missing.get(topic)
        if since is not None and now - since < self._recheck:
            return True
        since = self._unsure.get(topic)
        if since is not None and now - since < self._recheck:
            return False
        try:
            count = self._lookup(topic)
        except (KafkaException, RuntimeError) as exc:  # the bus cannot say (no client yet): left to the transaction
            log.warning("could not look up output topic %s (%s); producing to it", topic, exc)
            self._unsure[topic] = now
            return False
        self._unsure.pop(topic, None)
        if count is None:
            self._missing[topic] = self._clock()
            return True
        self._missing.pop(topic, None)
        self.partitions[topic] = count
        self.known.add(topic)
        return False
