"""The suggesting stage's handler without a broker: records of `leadbus.cases` and `leadbus.links.decisions` in,
`LinkSuggested` onto the record topic and the review topics out; bad bytes dead-lettered, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime

from leadbus.avro import decode, packaged_catalog
from leadbus.processors.core.records import Record
from leadbus.processors.suggesting import SuggestingHandler
from leadbus.topics import CASES, LEADS_REJECTED, LINK_DECISIONS, LINKS_SUGGESTED, review_topic
from tests.suggesting_cases import BG0, BG1, OTHER, SHARED, A, B, C, D, case_record, case_template, reject_record
from tests.unit.processors.linking_golden import MemoryState

CATALOG = packaged_catalog()


class _Run:
    def __init__(self) -> None:
        self.state = MemoryState()
        self.handler = SuggestingHandler(CATALOG)
        self.offset = 0

    def __call__(self, topic: str, records: list[tuple[bytes, bytes]]) -> list[tuple[str, bytes, bytes]]:
        out = []
        for key, value in records:
            result = self.handler.handle(Record(topic, 0, self.offset, key, value), self.state, datetime.now(UTC))
            self.offset += 1
            self.state.pending.update(result.state)
            out += [(o.topic, o.key or b"", o.value) for o in result.outputs]
        self.state.commit()
        return out

    def restarted(self) -> _Run:
        """A new handler over the committed state (as restored from the changelog)."""
        again = _Run()
        again.state = MemoryState(dict(self.state.committed))
        return again


def test_suggestions_go_to_the_record_and_the_regions_review_topics_keyed_by_the_pair() -> None:
    template, run = case_template(), _Run()
    background = [case_record(template, f"CASE-{i:016X}", 1, (f"addr:北京市某路{i}号", f"trade:店{i}", "city:北京市",
                                                         f"tail:{i:04d}"), "11") for i in range(30)]
    out = run(CASES, [*background, case_record(template, A, 1, SHARED, "31"), case_record(template, B, 1, SHARED, "31"),
                      case_record(template, C, 1, OTHER, "31"),
                      case_record(template, D, 1, OTHER, "31")])
    assert [(t, k.decode()) for t, k, _ in out] == [
        (LINKS_SUGGESTED, f"{A}|{B}"), (review_topic("yrd"), f"{A}|{B}"),
        (LINKS_SUGGESTED, f"{C}|{D}"), (review_topic("yrd"), f"{C}|{D}")]
    event = decode(CATALOG, out[0][2])[1]
    assert (event["case_a"], event["case_b"], event["version_a"], event["provinces"]) == (A, B, 1, ["31"])
    assert event["suggestion_id"].startswith("SUG-") and 0.5 <= event["score"] <= 1
    assert run(LINK_DECISIONS, [reject_record(D, C), (b"x", b"\x00not a decision")]) == []  # linking dead-letters that
    run = run.restarted()
    out = run(CASES, [
        case_record(template, BG0, 2, ("trade:店0",), "11", merged_into=BG1),
        case_record(template, BG1, 2, ("addr:北京市某路1号", "trade:店1", "tail:0001", "trade:店0"), "11",
                    merged_from=(BG0,)),
        case_record(template, C, 2, (*OTHER, "tail:1234"), "31"),
        case_record(template, D, 2, (*OTHER, "tail:1234"), "31"),
        case_record(template, A, 2, (*SHARED, "tail:5678"), "31"),
        case_record(template, B, 2, (*SHARED, "tail:5678"), "31"),
        case_record(template, A, 2, (*SHARED, "tail:5678"), "31")])  # a record read again: nothing
    assert [(t, k.decode()) for t, k, _ in out] == [(LINKS_SUGGESTED, f"{A}|{B}"), (review_topic("yrd"), f"{A}|{B}")]


def test_bytes_that_are_no_case_are_dead_lettered() -> None:
    run = _Run()
    for bad in (b"", b"garbage", b"\xc3\x01" + b"\x00" * 8):
        ((topic, key, value),) = run(CASES, [(b"CASE-1", bad)])
        letter = decode(CATALOG, value)[1]
        assert (topic, key, letter["reason"], bytes(letter["original"])) == (LEADS_REJECTED, b"CASE-1",
                                                                           "LINK_UNDECODABLE", bad)
