"""What a stage's producer errors mean: the record's own fault, the bus's, or the producer's end (fatal)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

RECORD_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG, KafkaError._INVALID_ARG,
})


def caused_by_record(exc: BaseException) -> bool:
    """A failure the record itself causes (its size, its shape), as opposed to the bus being unavailable."""
    if not isinstance(exc, KafkaException):
        return True
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in RECORD_ERRORS


#: Producers replaced one after another without a transaction committed in between: more, and the stage stops (its
#: supervisor restarts it). Halving a batch of 2,000 down to a poison record that fails alone twice takes ~13.
MAX_RECOVERIES = 32


def fatal(exc: BaseException) -> bool:
    """A producer error after which the producer can do nothing more (librdkafka's fatal errors, a fence)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and (error.fatal() or error.code() == KafkaError._FENCED)


def replaceable(exc: BaseException) -> bool:
    """A fatal producer error a new producer gets over: not a fence. Fenced, another worker took the transactional
    id (a stable `--worker-id` started twice, or this one's transaction outlived its timeout): this worker is the zombie
    and stops, as KIP-98 wants, instead of fencing the other back."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return fatal(exc) and isinstance(error, KafkaError) and error.code() != KafkaError._FENCED
