"""librdkafka's log lines reach Python logging at their own level, never raw on stderr."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import KafkaException

from leadbus.clients import KafkaSettings


def test_librdkafka_logs_go_through_logging_at_their_level(caplog: pytest.LogCaptureFixture,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="leadbus.client")
    producer = KafkaSettings("127.0.0.1:1").producer(**{"reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 100})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("Connection refused" in r.getMessage() for r in caplog.records):
        producer.poll(0.1)
    refused = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert refused, [r.getMessage() for r in caplog.records]
    assert {r.name for r in refused} == {"leadbus.client"}
    assert {r.levelno for r in refused} == {logging.ERROR}  # librdkafka's LOG_ERR
    producer.flush(0)
    _, err = capfd.readouterr()
    assert "%3|" not in err and "FAIL|" not in err, err


def test_admin_clients_log_through_logging_too(caplog: pytest.LogCaptureFixture,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="leadbus.client")
    admin = KafkaSettings("127.0.0.1:1").admin()
    with pytest.raises(KafkaException):  # no broker there
        admin.list_topics(timeout=1)
    admin.poll(0)
    assert any(r.name == "leadbus.client" and r.levelno >= logging.WARNING for r in caplog.records)
    _, err = capfd.readouterr()
    assert "%3|" not in err, err
