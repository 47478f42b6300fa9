"""Output topics looked up once: a missing one is known before anything is produced, and asked about again later."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from leadbus.processors.output_topics import OutputTopics


class Bus:
    def __init__(self, topics: dict[str, int]) -> None:
        self.topics, self.asked, self.down = topics, [], False

    def lookup(self, topic: str) -> int | None:
        self.asked.append(topic)
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "bus unreachable"))
        return self.topics.get(topic)


def test_a_known_topic_is_asked_about_once_and_a_missing_one_again_after_the_recheck() -> None:
    now = [0.0]
    bus = Bus({"out": 3})
    topics = OutputTopics(bus.lookup, trusted=("dead",), recheck=30.0, clock=lambda: now[0])
    assert not topics.missing("out") and not topics.missing("out") and topics.partitions == {"out": 3}
    assert not topics.missing("dead") and topics.known == {"out", "dead"}
    assert topics.missing("nowhere") and topics.missing("nowhere")
    assert bus.asked == ["out", "nowhere"]
    bus.topics["nowhere"] = 1  # created meanwhile
    now[0] = 31.0
    assert not topics.missing("nowhere") and bus.asked[-1] == "nowhere"


def test_a_bus_that_cannot_say_decides_nothing_and_is_not_asked_again_at_once() -> None:
    now = [0.0]
    bus = Bus({})
    bus.down = True
    topics = OutputTopics(bus.lookup, recheck=30.0, clock=lambda: now[0])
    assert not topics.missing("out") and not topics.missing("out") and "out" not in topics.partitions
    assert bus.asked == ["out"], "one lookup's timeout, not one per record"
    bus.down = False
    now[0] = 31.0
    assert topics.missing("out")
