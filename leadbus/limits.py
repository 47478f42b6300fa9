"""The bus's size limits, declared once.

Every event an agency publishes is at most `MAX_EVENT_BYTES` (its encoded value). Intake derives
bigger records from it: `LeadAccepted` carries the event as published *and* its normalised copy
(about twice the event), a dead letter carries the original plus a reason. Both must fit under
`MAX_RECORD_BYTES`, the `message.max.bytes` of every producer of the project, which stays below
`TOPIC_MAX_MESSAGE_BYTES`, the `max.message.bytes` of every topic (`deploy/topics.yaml`): the
broker never refuses what a producer of the bus accepted. A test checks the inequalities.
"""

from __future__ import annotations

from typing import Final

#: An event on an intake topic (key, value and headers together): what the SDK and the gateway refuse above.
MAX_EVENT_BYTES: Final = 256 * 1024
#: librdkafka's `message.max.bytes` for every producer of the project (its own default, stated).
MAX_RECORD_BYTES: Final = 1_000_000
#: `max.message.bytes` of every topic of the bus.
TOPIC_MAX_MESSAGE_BYTES: Final = 1_048_576
#: What a dead letter keeps of a record it cannot carry whole (oversized input): a prefix, with size and SHA-256.
DEAD_LETTER_PREFIX_BYTES: Final = 4096
#: A dead letter carries its original whole up to this size, a prefix above it.
DEAD_LETTER_MAX_ORIGINAL: Final = MAX_RECORD_BYTES - 64 * 1024
#: Reason and detail texts of a dead letter are cut here (pydantic messages quote the bad input).
DEAD_LETTER_MAX_MESSAGE: Final = 2000
#: Room a derived record needs beyond twice the event: names, identity, warnings, source, headers.
DERIVED_OVERHEAD_BYTES: Final = 32 * 1024
