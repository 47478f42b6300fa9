"""The linking stage's outputs and state writes over thousands of simulated leads equal those of the stage before
its per-lead cuts (issue #16), byte for byte: a digest of every `CaseUpdated` (topic, key, value) and every state
write (key, value), in the order the handler gave them, recorded with the handler of 8f618f0.

The golden corpus (`linking_golden`) covers every path (decisions, revisions, older writers, undecodable bytes) over
~800 records; this covers bulk traffic — cases growing, revised and merged across many transactions — and the state
writes too, which the golden file does not record. Three ways to the same bytes: leads linked by the view intake wrote
(`LeadAccepted` v7), the same leads written before views (v6: derived in the stage), and v7 with views not used (the
audit rebuild's way)."""

from __future__ import annotations

import copy
import hashlib
import uuid
from datetime import timedelta

import pytest

from leadbus.avro import SchemaEntry
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import LEADS_ACCEPTED
from tests.unit.processors.linking_golden import ACCEPTED, BATCH, BEFORE_VIEWS, NOW, MemoryState, _accepted

LEADS = 4000
#: Recorded with the handler of 8f618f0 (before the cuts): outputs, state writes.
OUTPUTS = "99545b6fb4985610966cc936b9a2fc81754dc181d06cbb0897fa03ee5f72b6fb"
STATE = "3e970a30da98b806a62d2bf2a7c02fd9a1cf43c236d0bbf8ea626dc4a19d3cc4"


def _corpus(writer: SchemaEntry = ACCEPTED) -> list[bytes]:
    generator = TrafficGenerator(seed=31, same_suspect_share=0.6)
    records = [lead.to_avro() for lead in generator.leads(LEADS, NOW - timedelta(hours=12), timedelta(seconds=5))]
    out = []
    for offset, record in enumerate(records):
        out.append(_accepted(record, offset, writer))
        if offset % 37 == 20:  # a higher revision of an earlier lead: its member replaced, its facts too
            revised = copy.deepcopy(records[offset - 15])
            revised["revision"] = 1
            revised["facts"] = {**revised["facts"], "sales_amount_fen": 7_654_300}
            out.append(_accepted(revised, offset, writer))
        if offset % 29 == 28:  # a lead naming two suspects' identifiers: their cases merge
            bridge = copy.deepcopy(records[offset - 3])
            other = records[offset - 25]
            bridge["lead_id"] = str(uuid.UUID(int=offset))
            bridge["subject"]["phones"] = [*bridge["subject"]["phones"], *other["subject"]["phones"]]
            bridge["payment_accounts"] = [*bridge["payment_accounts"], *other["payment_accounts"]]
            bridge["subject"]["uscc"] = bridge["subject"]["uscc"] or other["subject"]["uscc"]
            out.append(_accepted(bridge, offset, writer))
    return out


def digests(writer: SchemaEntry = ACCEPTED, use_views: bool = True) -> tuple[str, str, int, int]:
    """SHA-256 of the outputs and of the state writes, how many records and how many outputs."""
    handler, state = LinkingHandler(use_views=use_views), MemoryState()
    outputs, writes = hashlib.sha256(), hashlib.sha256()
    count = 0
    corpus = _corpus(writer)
    for offset, value in enumerate(corpus):
        result = handler.handle(Record(LEADS_ACCEPTED, 0, offset, None, value), state, NOW)
        for o in result.outputs:
            count += 1
            for part in (o.topic.encode(), o.key or b"", o.value):
                outputs.update(len(part).to_bytes(4, "big") + part)
        for key, written in result.state.items():
            writes.update(len(key).to_bytes(4, "big") + key)
            writes.update(b"\xff" * 4 if written is None else len(written).to_bytes(4, "big") + written)
        state.pending.update(result.state)
        if offset % BATCH == BATCH - 1:
            state.commit()
    return outputs.hexdigest(), writes.hexdigest(), len(corpus), count


@pytest.mark.parametrize(("writer", "use_views"), [(ACCEPTED, True), (BEFORE_VIEWS, True), (ACCEPTED, False)],
                         ids=["views", "written-before-views", "views-not-used"])
def test_outputs_and_state_writes_equal_those_recorded_before_the_cuts(writer: SchemaEntry, use_views: bool) -> None:
    outputs, writes, records, count = digests(writer, use_views)
    assert count > records + 100  # a hundred merges and more: the absorbed cases' CaseUpdated too
    assert (outputs, writes) == (OUTPUTS, STATE)


if __name__ == "__main__":
    print(digests())
