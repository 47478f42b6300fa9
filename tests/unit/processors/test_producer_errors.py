"""Which producer errors a stage gets over with a new producer: fatal ones, except a fence (it is the zombie then)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from leadbus.processors.producer_errors import caused_by_record, fatal, replaceable


def error(code: int, *, is_fatal: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, "test", fatal=is_fatal))


def test_a_fatal_error_is_replaceable_and_a_fence_is_not() -> None:
    refused_abort = error(KafkaError.INVALID_TXN_STATE, is_fatal=True)
    assert fatal(refused_abort) and replaceable(refused_abort)
    fenced = error(KafkaError._FENCED, is_fatal=True)
    assert fatal(fenced) and not replaceable(fenced)
    assert fatal(error(KafkaError._FENCED)) and not replaceable(error(KafkaError._FENCED))


def test_an_abortable_error_is_neither_fatal_nor_replaceable() -> None:
    failed_delivery = error(KafkaError._INCONSISTENT)
    assert not fatal(failed_delivery) and not replaceable(failed_delivery) and not caused_by_record(failed_delivery)
    assert not replaceable(RuntimeError("not the producer's"))
    assert caused_by_record(error(KafkaError.MSG_SIZE_TOO_LARGE)) and caused_by_record(ValueError("the step's"))
