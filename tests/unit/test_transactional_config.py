"""The stages' transactional producer: a short retry backoff after CONCURRENT_TRANSACTIONS, unless chosen otherwise."""

from __future__ import annotations

from leadbus.clients import KafkaSettings


def test_a_transactional_producer_retries_after_10_ms_doubling_to_100() -> None:
    config = KafkaSettings("broker:9092").transactional_config("leadbus-routing-w1")
    assert config["retry.backoff.ms"] == 10 and config["retry.backoff.max.ms"] == 100
    assert config["transactional.id"] == "leadbus-routing-w1" and config["linger.ms"] == 1000


def test_a_client_settings_file_keeps_its_own_retry_backoff() -> None:
    settings = KafkaSettings.from_client_config({"bootstrap.servers": "broker:9092", "retry.backoff.ms": 250})
    config = settings.transactional_config("t")
    assert config["retry.backoff.ms"] == 250 and config["retry.backoff.max.ms"] == 100


def test_overrides_still_win() -> None:
    config = KafkaSettings("broker:9092").transactional_config("t", **{"retry.backoff.ms": 50})
    assert config["retry.backoff.ms"] == 50


def test_plain_producers_and_consumers_keep_librdkafkas_backoff() -> None:
    assert "retry.backoff.ms" not in KafkaSettings("broker:9092").producer_config()
