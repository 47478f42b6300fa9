"""The size limits are declared once and agree: what a producer of the bus accepts, every topic takes."""

from __future__ import annotations

from leadbus.clients import KafkaSettings
from leadbus.limits import (
    DEAD_LETTER_MAX_ORIGINAL,
    DEAD_LETTER_PREFIX_BYTES,
    DERIVED_OVERHEAD_BYTES,
    MAX_EVENT_BYTES,
    MAX_RECORD_BYTES,
    TOPIC_MAX_MESSAGE_BYTES,
)
from leadbus.producers.publisher import PRODUCER_DEFAULTS
from leadbus.topics import load_declarations


def test_derived_records_fit_the_producer_limit_which_fits_every_topic() -> None:
    # LeadAccepted carries the event as published and its normalised copy.
    assert 2 * MAX_EVENT_BYTES + DERIVED_OVERHEAD_BYTES < MAX_RECORD_BYTES < TOPIC_MAX_MESSAGE_BYTES
    # A dead letter carries an in-limit original whole; an oversized one as a short prefix.
    assert MAX_EVENT_BYTES < DEAD_LETTER_MAX_ORIGINAL < MAX_RECORD_BYTES
    assert DEAD_LETTER_PREFIX_BYTES < MAX_EVENT_BYTES


def test_every_topic_and_producer_uses_the_declared_limits() -> None:
    for spec in load_declarations():
        assert int(spec.config["max.message.bytes"]) == TOPIC_MAX_MESSAGE_BYTES, spec.name
    assert PRODUCER_DEFAULTS["message.max.bytes"] == MAX_RECORD_BYTES
    assert KafkaSettings("x:1").producer_config()["message.max.bytes"] == MAX_RECORD_BYTES
