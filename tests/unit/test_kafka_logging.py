"""librdkafka's log lines reach Python logging at their own level, never raw on stderr."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import KafkaException

from leadbus.clients import KafkaSettings, LibrdkafkaLog


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
    # only this client's lines: a client another test left behind may still be logging raw about its own broker
    raw = [line for line in err.splitlines() if "%3|" in line and "127.0.0.1:1/" in line]
    assert not raw, err


GETPID = ("GETPID", "rdkafka#producer-3", "[thrd:main]: Failed to acquire idempotence PID from broker "
          "127.0.0.1:45969/1: Broker: Coordinator load in progress: retrying")


def test_transient_retries_go_to_debug_without_the_thread_prefix(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="leadbus.client")
    LibrdkafkaLog().log(logging.WARNING, "%s [%s] %s", *GETPID)
    [record] = caplog.records
    assert record.levelno == logging.DEBUG and record.name == "leadbus.client"
    assert record.getMessage() == ("rdkafka#producer-3 GETPID: Failed to acquire idempotence PID from broker "
                                   "127.0.0.1:45969/1: Broker: Coordinator load in progress: retrying")


def test_transient_retries_print_nothing_at_the_benches_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="leadbus.client")
    log = LibrdkafkaLog()
    for client in range(6):
        log.log(logging.WARNING, "%s [%s] %s", GETPID[0], f"rdkafka#producer-{client}", GETPID[2])
    assert caplog.records == []


def test_repeated_errors_are_summarised_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="leadbus.client")
    now = [0.0]
    log = LibrdkafkaLog(window=60, clock=lambda: now[0])
    refused = ("[thrd:b/bootstrap]: 127.0.0.1:{}/bootstrap: Connect failed: Connection refused "
               "(after {}ms in state CONNECT)")
    for i in range(50):
        now[0] = i
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", refused.format(9092, i))
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-2", refused.format(9092, 1))  # another client
    now[0] = 61
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", refused.format(9092, 7))
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == [logging.ERROR] * 3
    assert messages[0][1].startswith("rdkafka#consumer-1 FAIL: 127.0.0.1:9092/bootstrap: Connect failed")
    assert messages[1][1].startswith("rdkafka#consumer-2 FAIL:")
    assert messages[2][1].endswith("(49 more like it in the last 60 s)")


def test_other_shapes_pass_through_untouched(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="leadbus.client")
    LibrdkafkaLog().log(logging.ERROR, "odd %s", "thing")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.ERROR, "odd thing")]
