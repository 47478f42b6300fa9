"""The cut replay's readers hold librdkafka's prefetch to `bounded_prefetch` (issue #14): settings it accepts."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer

from leadbus.audit import replay as replay_module
from leadbus.audit.sources import KafkaSource, PartitionSpan, bounded_prefetch
from leadbus.avro import packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.topics import LEADS_ACCEPTED


def test_librdkafka_takes_the_bounded_prefetch() -> None:
    settings = bounded_prefetch(replay_module._CUT_PREFETCH_KB)
    assert settings == {"queued.max.messages.kbytes": 8192, "max.partition.fetch.bytes": 1_048_576}
    assert bounded_prefetch(64)["max.partition.fetch.bytes"] == 32_768  # the peeks fetch little
    # a consumer is made (no broker needed): librdkafka refuses a setting it does not take, or out of range
    Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "t", **settings}).close()
    source = KafkaSource(KafkaSettings("127.0.0.1:1"), [LEADS_ACCEPTED], packaged_catalog(), prefetch_kbytes=8192)
    source.consumer()
    source.close()


def test_each_half_of_a_cut_partition_is_read_with_the_bounded_prefetch(monkeypatch: Any) -> None:
    made: list[int | None] = []

    def run(sub: KafkaSource, *args: Any, **kwargs: Any) -> int:
        made.append(sub.prefetch_kbytes)
        return 0

    monkeypatch.setattr(replay_module, "_run", run)
    source = KafkaSource(KafkaSettings("127.0.0.1:1"), [LEADS_ACCEPTED], packaged_catalog())
    report = replay_module.ReplayReport("t")
    replay_module._read_span(source, PartitionSpan(LEADS_ACCEPTED, 0, 0, 10), [], None, None, report, None)
    assert made == [replay_module._CUT_PREFETCH_KB]
    assert source.prefetch_kbytes is None  # the replay's other readers keep librdkafka's defaults
