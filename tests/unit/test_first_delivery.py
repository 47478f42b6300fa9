"""The SDK sends one record to a partition until this producer's first record there is confirmed.

An idempotent producer whose first batch to a partition was refused while its next batch landed counts the
first as delivered (librdkafka's IMPLICITACK): the records behind a partition's first one wait for its
delivery report, then go in the order they were published; `flush` sends them; errors reach their handles.
"""

from __future__ import annotations

import threading
import zlib
from datetime import timedelta
from typing import Any

import pytest

from leadbus.producers import Publisher
from leadbus.producers.first_delivery import FRESH_AFTER
from leadbus.producers.publisher import PendingDelivery
from leadbus.producers.simulator import TrafficGenerator
from tests.unit.test_sdk_dict_path import AGENCY, NOW, Confirmed, RecordingProducer

PARTITIONS = 4


class HeldReports(RecordingProducer):
    """Reports deliveries only when the test says so (`confirm`), like a broker that is slow to answer."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        super().__init__(partitions)
        self.full = 0  # this many next produce calls meet a full queue

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        super().produce(topic, **kwargs)

    def poll(self, timeout: float) -> int:
        return 0

    def confirm(self, count: int | None = None, err: Any = None) -> None:
        reports = self.unconfirmed[:count] if count is not None else self.unconfirmed
        self.unconfirmed = self.unconfirmed[len(reports):]
        for on_delivery, msg in reports:
            on_delivery(err, None if err is not None else msg)

    def flush(self, timeout: float) -> int:
        while self.unconfirmed:
            self.confirm()
        return 0


def _leads(count: int) -> list[Any]:
    leads = []
    for lead in TrafficGenerator(seed=11).leads(count * 12, NOW, timedelta(seconds=1)):
        if lead.publisher.agency == AGENCY:
            leads.append(lead)
            if len(leads) == count:
                break
    return leads


def _partition(lead: Any) -> int:
    return zlib.crc32(lead.lead_id.encode()) % PARTITIONS


def _publisher(**config: Any) -> tuple[Publisher, HeldReports]:
    pub = Publisher(AGENCY, "33", bootstrap_servers="127.0.0.1:1", clock=lambda: NOW, config=config)
    producer = HeldReports()
    pub._producer = producer
    return pub, producer


def _sent_keys(producer: RecordingProducer) -> list[bytes]:
    return [key for key, _, _ in producer.records]


LEADS = _leads(60)


def test_records_behind_a_partitions_first_wait_for_its_report_then_go_in_order() -> None:
    pub, producer = _publisher()
    handles = [pub.publish(lead) for lead in LEADS]
    firsts: dict[int, bytes] = {}
    for lead in LEADS:
        firsts.setdefault(_partition(lead), lead.lead_id.encode())
    # one record per partition has gone: each partition's first; the rest are held
    assert _sent_keys(producer) == list(firsts.values())
    assert [m.partition() for _, m in producer.unconfirmed] == list(firsts)
    assert not any(h.done() for h in handles)

    producer.confirm(1)  # the first partition's first record is confirmed: its held records go, in order
    opened = next(iter(firsts))
    behind = [lead.lead_id.encode() for lead in LEADS if _partition(lead) == opened][1:]
    assert _sent_keys(producer)[len(firsts):] == behind

    later = pub.publish(_lead_with(_key_in(opened)))  # an open partition: straight
    assert _sent_keys(producer)[-1] == _key_in(opened).encode() and not later.done()

    pub.flush()  # every other first confirmed, everything held sent and confirmed
    assert all(h.done() and h.exception() is None for h in handles)
    sent = _sent_keys(producer)
    assert sorted(sent) == sorted([lead.lead_id.encode() for lead in LEADS] + [_key_in(opened).encode()])
    for partition in range(PARTITIONS):  # per partition (so per key), the order published
        published = [lead.lead_id.encode() for lead in LEADS if _partition(lead) == partition]
        assert [k for k in sent if k in set(published)] == published
    assert [h.result().partition for h in handles] == [_partition(lead) for lead in LEADS]


def _keys_in(partition: int, count: int) -> list[str]:
    keys = (f"lead-{n}" for n in range(10_000))
    return [key for key in keys if zlib.crc32(key.encode()) % PARTITIONS == partition][:count]


def _key_in(partition: int) -> str:
    return _keys_in(partition, 1)[0]


def _lead_with(lead_id: str) -> Any:
    return LEADS[0].model_copy(update={"lead_id": lead_id})


def test_once_a_partition_is_confirmed_its_records_go_straight() -> None:
    pub, producer = _publisher()
    for lead in LEADS:
        pub.publish(lead)
    pub.flush()
    before = len(producer.records)
    for lead in LEADS:
        pub.publish(lead)
    assert len(producer.records) == before + len(LEADS)  # nothing held: every partition has been written


def test_a_failed_first_record_reports_its_error_and_the_held_records_still_go() -> None:
    pub, producer = _publisher()
    handles = [pub.publish(lead) for lead in LEADS]
    firsts = len(producer.unconfirmed)
    producer.confirm(1, err="Broker: Not leader for partition")
    assert "not delivered" in str(handles[0].exception())
    opened = _partition(LEADS[0])
    assert len(producer.records) == firsts + sum(_partition(lead) == opened for lead in LEADS) - 1
    pub.flush()
    assert sum(h.exception() is not None for h in handles) == 1 and all(h.done() for h in handles)


def test_a_full_queue_while_releasing_is_finished_by_the_publishing_thread_in_order() -> None:
    pub, producer = _publisher()
    handles = [pub.publish(lead) for lead in LEADS]
    firsts = len(producer.unconfirmed)
    producer.full = 1  # the release (inside the delivery report) meets a full queue at once
    producer.confirm(1)
    assert len(producer.records) == firsts and pub._gate is not None and pub._gate.stalled
    opened = _partition(LEADS[0])
    extra = pub.publish(_lead_with(_key_in(opened)))  # resumes, then goes behind
    behind = [lead.lead_id.encode() for lead in LEADS if _partition(lead) == opened][1:]
    assert _sent_keys(producer)[firsts:] == [*behind, _key_in(opened).encode()]
    pub.flush()
    assert all(h.done() for h in [*handles, extra])


def test_flush_sends_and_confirms_what_is_held() -> None:
    pub, producer = _publisher()
    handles = [pub.publish(lead) for lead in LEADS]
    assert len(producer.records) == PARTITIONS
    pub.flush(5)
    assert len(producer.records) == len(LEADS) and all(h.result() for h in handles)


def test_wait_sends_what_is_held_as_reports_arrive() -> None:
    pub = Publisher(AGENCY, "33", bootstrap_servers="127.0.0.1:1", clock=lambda: NOW)
    producer = RecordingProducer(PARTITIONS)  # reports at each poll
    pub._producer = producer
    handles = [pub.publish(lead) for lead in LEADS]
    assert [d.lead_id for d in pub.wait(handles, timeout=5)] == [lead.lead_id for lead in LEADS]


def test_a_partition_idle_past_the_brokers_memory_of_the_producer_is_new_again() -> None:
    pub, producer = _publisher()
    first, second, third = _keys_in(1, 3)
    pub.publish(_lead_with(first))
    producer.confirm()
    assert pub._gate is not None
    pub.publish(_lead_with(second))
    assert len(producer.records) == 2  # confirmed: straight
    producer.confirm()
    pub._gate.written[1] -= FRESH_AFTER + 1  # as if idle longer than the broker keeps an idle producer's state
    probe, held = pub.publish(_lead_with(first)), pub.publish(_lead_with(third))
    assert _sent_keys(producer)[2:] == [first.encode()] and not held.done()
    producer.confirm()
    assert probe.done() and _sent_keys(producer)[3:] == [third.encode()]


@pytest.mark.parametrize("config", [{"enable.idempotence": False}, {"partitioner": "murmur2_random"}])
def test_no_gate_where_it_cannot_help_or_cannot_know_the_partition(config: dict[str, Any]) -> None:
    pub, producer = _publisher(**config)
    for lead in LEADS:
        pub.publish(lead)
    assert len(producer.records) == len(LEADS)


def test_unknown_topic_metadata_leaves_placement_to_librdkafka() -> None:
    pub, producer = _publisher()

    def no_metadata(topic: str, timeout: float) -> Any:
        from confluent_kafka import KafkaException
        raise KafkaException("Local: Broker transport failure")

    producer.list_topics = no_metadata  # type: ignore[method-assign]
    handles: list[PendingDelivery] = [pub.publish(lead) for lead in LEADS]
    assert len(producer.records) == len(LEADS)  # queued, as before the gate (the look-up retried later)
    assert {m.partition() for _, m in producer.unconfirmed} == {-1}
    assert pub._unguarded_until > 0
    pub.flush()
    assert all(h.done() for h in handles)


def test_confirmed_messages_name_their_partition() -> None:
    msg = Confirmed("t", 3, 9)
    assert (msg.topic(), msg.partition(), msg.offset()) == ("t", 3, 9)


class ThreadedReports(RecordingProducer):
    """Confirms on whichever thread polls, with a lock: the gateway serves reports on a thread of its own."""

    def __init__(self) -> None:
        super().__init__(PARTITIONS)
        self.lock = threading.Lock()

    def produce(self, topic: str, **kwargs: Any) -> None:
        with self.lock:
            super().produce(topic, **kwargs)

    def poll(self, timeout: float) -> int:
        with self.lock:
            reports, self.unconfirmed = self.unconfirmed, []
        for on_delivery, msg in reports:
            on_delivery(None, msg)
        return len(reports)


def _serve_until(producer: RecordingProducer, stop: threading.Event) -> None:
    while not stop.is_set():
        producer.poll(0)


def test_reports_served_on_another_thread_lose_nothing_and_keep_the_order() -> None:
    many = _leads(600)
    for _ in range(5):
        pub = Publisher(AGENCY, "33", bootstrap_servers="127.0.0.1:1", clock=lambda: NOW + timedelta(days=1))
        producer = ThreadedReports()
        pub._producer = producer
        stop = threading.Event()
        poller = threading.Thread(target=_serve_until, args=(producer, stop))
        poller.start()
        try:
            handles = [pub.publish(lead) for lead in many]
            pub.flush(10)
        finally:
            stop.set()
            poller.join()
        assert all(h.done() for h in handles)
        sent = _sent_keys(producer)
        assert sorted(sent) == sorted(lead.lead_id.encode() for lead in many)
        for partition in range(PARTITIONS):
            published = [lead.lead_id.encode() for lead in many if _partition(lead) == partition]
            assert [k for k in sent if k in set(published)] == published
