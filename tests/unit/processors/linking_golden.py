"""A fixed corpus for the linking stage and what its handler made of each record, for the golden-file test.

    PYTHONPATH=. python -m tests.unit.processors.linking_golden   # re-record (only for a deliberate change)

The corpus: seeded simulated traffic accepted by intake (many leads about the same suspects, so cases grow and
merge), higher revisions of earlier leads, older `LeadAccepted` writers, undecodable bytes, and analysts'
`LinkDecision`s made from what the stage published so far and the suggesting core made of it (confirm a suggested
pair, reject one, split a case, a duplicate decision, decisions naming a case merged away or leads not in the case).
The records are handled in transactions of ``BATCH`` against an in-memory copy of the stage's state. Recorded: per
record, every output (topic, key, SHA-256 of the value) — a faster linking stage must reproduce them byte for byte.
``OLD_STATE`` is the state, in the layout of the linking stage before issue #16, after the first ``HALF`` records:
the migration test continues the corpus from it with today's handler.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from leadbus.avro import SchemaEntry, decode, encode, packaged_catalog
from leadbus.processors.core.intake import Acceptance, Source, accepted_record, examine
from leadbus.processors.core.linking import DictStore
from leadbus.processors.core.records import Record
from leadbus.processors.core.suggesting import PublishedCase, SuggestingCore
from leadbus.processors.linking import LinkingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import CASES, LEADS_ACCEPTED, LINK_DECISIONS, LINKS_SUGGESTED

GOLDEN = Path(__file__).with_name("golden") / "linking_stage.jsonl"
OLD_STATE = Path(__file__).with_name("golden") / "linking_state_v1.json.gz"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
CATALOG = packaged_catalog()
LEAD = CATALOG.latest("cn.leadbus.CaseLead")
ACCEPTED = CATALOG.latest("cn.leadbus.LeadAccepted")
#: The last `LeadAccepted` without intake's linking view (v7's ``linking``): linked by deriving each lead in the stage.
BEFORE_VIEWS = CATALOG.versions(ACCEPTED.name)[5]
DECISION = CATALOG.latest("cn.leadbus.LinkDecision")
CASE = CATALOG.latest("cn.leadbus.CaseUpdated")
BATCH = 50
LEADS = 700
HALF = 400


class MemoryState:
    """The stage's view in memory: committed values and the open transaction's overlay."""

    def __init__(self, committed: dict[bytes, bytes] | None = None) -> None:
        self.committed: dict[bytes, bytes] = dict(committed or {})
        self.pending: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.pending[key] if key in self.pending else self.committed.get(key)

    def range(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        keys = {k for k in self.committed if start <= k < stop} | {k for k in self.pending if start <= k < stop}
        found = ((k, self.get(k)) for k in sorted(keys))
        return [(k, v) for k, v in found if v is not None]

    def commit(self) -> None:
        for key, value in self.pending.items():
            if value is None:
                self.committed.pop(key, None)
            else:
                self.committed[key] = value
        self.pending = {}


def _accepted(record: dict[str, Any], offset: int, writer: SchemaEntry = ACCEPTED) -> bytes:
    outcome = examine(encode(LEAD, record), Source(f"leadbus.intake.{record['publisher']['agency']}", 0, offset),
                      CATALOG, NOW)
    assert isinstance(outcome, Acceptance), outcome
    return encode(writer, accepted_record(outcome, NOW))


def _decision(n: int, action: str, case_a: str, case_b: str | None = None, lead_ids: list[str] | None = None,
              suggestion_id: str | None = None) -> bytes:
    return encode(DECISION, {
        "decision_id": f"00000000-0000-4000-8000-{n:012d}", "action": action, "case_a": case_a, "case_b": case_b,
        "lead_ids": lead_ids or [], "suggestion_id": suggestion_id,
        "analyst": {"agency": "SAMR", "province": "33", "user": f"analyst-{n % 3}", "role": "ANALYST"},
        "reason": f"golden decision {n}: {action.lower()}", "decided_at": NOW - timedelta(minutes=60 - n)})


Item = tuple[str, bytes] | Callable[["Seen"], list[tuple[str, bytes]]]


class Seen:
    """What the stage published so far: the cases (latest version), and the suggestions, in order, that the
    suggesting stage's core makes of them (linking no longer suggests: issue #16)."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.suggestions: list[dict[str, Any]] = []
        self.decisions = 0
        self.suggesting = SuggestingCore(DictStore())

    def add(self, topic: str, value: bytes) -> None:
        if topic == CASES:
            case = decode(CATALOG, value, CASE)[1]
            if case["merged_into"]:
                self.cases.pop(case["case_id"], None)
            else:
                self.cases[case["case_id"]] = case
            for review in self.suggesting.on_case(PublishedCase.of(case)):
                self.suggestions.append({"case_a": review.suggestion.case_a, "case_b": review.suggestion.case_b,
                                         "suggestion_id": review.suggestion_id})
        elif topic == LINKS_SUGGESTED:
            raise AssertionError("the linking stage suggests nothing: the suggesting stage does")

    def next(self) -> int:
        self.decisions += 1
        return self.decisions


def _decisions(seen: Seen) -> list[tuple[str, bytes]]:
    """Analysts at work on what they were shown: confirm and reject suggestions, split the largest case."""
    out: list[tuple[str, bytes]] = []
    live = [s for s in seen.suggestions if s["case_a"] in seen.cases and s["case_b"] in seen.cases]
    if live:
        s = live[0]
        n = seen.next()
        out.append((LINK_DECISIONS, _decision(n, "CONFIRM", s["case_a"], s["case_b"], None, s["suggestion_id"])))
        out.append((LINK_DECISIONS, _decision(n, "CONFIRM", s["case_a"], s["case_b"], None, s["suggestion_id"])))
        out.append((LINK_DECISIONS, _decision(seen.next(), "CONFIRM", s["case_a"], s["case_b"])))  # one merged away
    if len(live) > 1:
        s = live[-1]
        out.append((LINK_DECISIONS, _decision(seen.next(), "REJECT", s["case_a"], s["case_b"], None,
                                              s["suggestion_id"])))
    big = sorted(seen.cases.values(), key=lambda c: (-len(c["members"]), c["case_id"]))
    if big and len(big[0]["members"]) >= 2:
        members = sorted(big[0]["members"])
        out.append((LINK_DECISIONS, _decision(seen.next(), "SPLIT", big[0]["case_id"], None, members[:1])))
        out.append((LINK_DECISIONS, _decision(seen.next(), "SPLIT", big[0]["case_id"], None,
                                              [members[-1], "00000000-0000-4000-8000-ffffffffffff"])))
    if len(big) > 1:
        out.append((LINK_DECISIONS, _decision(seen.next(), "CONFIRM", big[0]["case_id"], big[1]["case_id"])))
    return out


def corpus(writer: SchemaEntry = ACCEPTED) -> Iterator[Item]:
    """The corpus, its accepted leads written by ``writer`` (the undecodable ones always cut from `BEFORE_VIEWS`
    bytes: the dead letters carry them, and the golden file was recorded with them)."""
    generator = TrafficGenerator(seed=19, same_suspect_share=0.6)
    records = [lead.to_avro() for lead in generator.leads(LEADS, NOW - timedelta(hours=6), timedelta(seconds=20))]
    old = [e for e in CATALOG.versions(ACCEPTED.name) if e is not ACCEPTED]
    for offset, record in enumerate(records):
        yield LEADS_ACCEPTED, _accepted(record, offset, writer)
        if offset % 40 == 39:
            yield _decisions
        if offset % 50 == 25:  # a higher revision of an earlier lead (its facts replace the first report's)
            revised = copy.deepcopy(records[offset - 20])
            revised["revision"] = 1
            revised["facts"] = {**revised["facts"], "sales_amount_fen": 123_456_00}
            yield LEADS_ACCEPTED, _accepted(revised, offset, writer)
        if offset % 100 == 60 and old:  # an older writer of LeadAccepted
            entry = old[(offset // 100) % len(old)]
            yield LEADS_ACCEPTED, encode(entry, decode(CATALOG, _accepted(records[offset - 30], offset), ACCEPTED)[1])
        if offset == 333:
            for hostile in (b"", b"garbage", _accepted(records[5], 5, BEFORE_VIEWS)[:30]):
                yield LEADS_ACCEPTED, hostile
            yield LINK_DECISIONS, b"\x00not a decision"


def run(handler: LinkingHandler | None = None, stop: int | None = None,
        swap: MemoryState | None = None, writer: SchemaEntry = ACCEPTED) -> tuple[list[dict[str, Any]], MemoryState]:
    """Handle the corpus records up to ``stop`` in transactions of ``BATCH``: the lines recorded and the state.
    With ``swap``, the state is replaced by it after the first ``HALF`` records (a restart on an older state);
    ``writer``: the `LeadAccepted` version intake wrote."""
    handler = handler or LinkingHandler()
    state = MemoryState()
    seen = Seen()
    lines: list[dict[str, Any]] = []
    offset = 0
    for item in corpus(writer):
        for topic, value in item(seen) if callable(item) else [item]:
            if offset == stop:
                return lines, state
            if offset == HALF and swap is not None:
                state = swap
            result = handler.handle(Record(topic, 0, offset, None, value), state, NOW)
            state.pending.update(result.state)
            lines.append({"offset": offset, "out": [
                [o.topic, (o.key or b"").decode(), hashlib.sha256(o.value).hexdigest()] for o in result.outputs]})
            for o in result.outputs:
                seen.add(o.topic, o.value)
            offset += 1
            if offset % BATCH == 0:
                state.commit()
    state.commit()
    return lines, state


def old_state() -> MemoryState:
    """The state recorded after ``HALF`` records by the linking stage before issue #16."""
    doc = json.loads(gzip.decompress(OLD_STATE.read_bytes()))
    return MemoryState({k.encode(): v.encode() for k, v in doc.items()})


def dumps(lines: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(line, sort_keys=True) for line in lines]


def record() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    lines, _ = run()
    GOLDEN.write_text("\n".join(dumps(lines)) + "\n", encoding="utf-8")
    # OLD_STATE is a fixed snapshot of the layout before issue #16, recorded once by that release's code:
    # re-recording it with today's stage would turn the migration test into a test of nothing.


if __name__ == "__main__":
    record()
    print(f"recorded {GOLDEN}")
