"""Intake's linking view (`LeadAccepted` v7's ``linking``): linking's derivation of a lead alone (strong identifiers,
member record), computed by intake, which scales over workers, so that linking's one worker reads that and nothing
else of the record (issue #16).

The view must be what the stage would derive of the record (over traffic, leads with every optional part absent and
present), its outputs and state the same either way (the golden file and the bulk digest, parametrised over writers,
say so byte for byte), and a view that is not its lead's must never change cases unseen: the audit rebuild derives
every lead and reports a view that differs (as a difference naming the lead) besides the cases made of it."""

from __future__ import annotations

import random
from typing import Any

from leadbus.audit.rebuild import rebuild
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import decode, encode
from leadbus.processors.core.linking import LINK_VIEW_VERSION, MEMBER_FIELDS, derive, dumps
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler, accepted_lead
from leadbus.topics import LEADS_ACCEPTED, LEADS_REJECTED
from tests.unit.processors.linking_golden import ACCEPTED, BEFORE_VIEWS, CATALOG, NOW, MemoryState, corpus
from tests.unit.processors.test_linking_reader import _values
from tests.unit.test_audit_rebuild_links import Stage, _lead


def _rewritten(value: bytes, **view: Any) -> bytes:
    """The record with its view's parts replaced (what a faulty or forged writer would put there)."""
    event = decode(CATALOG, value, ACCEPTED)[1]
    event["linking"] = {**event["linking"], **view}
    return encode(ACCEPTED, event)


def test_the_view_intake_writes_is_what_the_stage_derives_of_the_record() -> None:
    handler = LinkingHandler()
    seen = 0
    for value in _values():
        event = decode(CATALOG, value, ACCEPTED)[1]
        lead = accepted_lead(event["lead"])
        keys, member = derive(lead, event["identity"]["registrable_domains"])
        assert handler.read_view(value) == (lead.lead_id, keys, member)
        assert member.keys() == MEMBER_FIELDS  # what the stage checks a view's member by
        assert event["linking"] == {"version": LINK_VIEW_VERSION, "lead_id": lead.lead_id, "keys": keys,
                                    "member": dumps(member)}  # the text linking stores under m:<lead>
        seen += 1
    assert seen > 150


def test_the_golden_corpus_is_linked_by_the_views_it_carries() -> None:
    handler = LinkingHandler()
    leads = [value for topic, value in (i for i in corpus() if not callable(i)) if topic == LEADS_ACCEPTED]
    viewed = sum(handler.read_view(value) is not None for value in leads)
    old = sum(value[2:10] != ACCEPTED.fingerprint for value in leads if len(value) > 10)
    assert viewed == len(leads) - old - 2 and old > 0  # all but older writers (and a cut one) and two non-Avro
    assert not any(handler.read_view(v) for t, v in (i for i in corpus(BEFORE_VIEWS) if not callable(i)))


def test_a_view_of_another_derivation_is_not_used() -> None:
    """A view made by another version of the derivation (an intake older or newer than this linking) is set aside:
    the lead is derived here, whatever the view says."""
    value = next(_values())
    other = _rewritten(value, version=LINK_VIEW_VERSION + 1, keys=["phone:+8613000000000"])
    handler = LinkingHandler()
    assert handler.read_view(other) is None
    got = handler.handle(Record(LEADS_ACCEPTED, 0, 0, None, other), MemoryState(), NOW)
    expected = LinkingHandler(use_views=False).handle(Record(LEADS_ACCEPTED, 0, 0, None, value), MemoryState(), NOW)
    assert got.outputs == expected.outputs and got.state == expected.state


def test_a_forged_view_changes_the_stream_but_not_the_rebuild_derivation_which_names_it() -> None:
    first, second = list(_values())[:2]
    keys = derive(accepted_lead(decode(CATALOG, first, ACCEPTED)[1]["lead"]), [])[0]
    forged = _rewritten(second, keys=keys)  # the second lead claims the first's identifiers: it would join its case
    stream, audit = LinkingHandler(), LinkingHandler(use_views=False)
    stream_state, audit_state = MemoryState(), MemoryState()
    for n, value in enumerate((first, forged)):
        record = Record(LEADS_ACCEPTED, 0, n, None, value)
        for handler, state in ((stream, stream_state), (audit, audit_state)):
            state.pending.update(handler.handle(record, state, NOW).state)
            state.commit()
    assert stream_state.committed != audit_state.committed
    ((record, lead_id, parts),) = audit.view_mismatches
    assert record.offset == 1 and parts == ["keys"] and lead_id == decode(CATALOG, second, ACCEPTED)[1]["lead"][
        "lead_id"]


def test_damaged_views_change_nothing_the_rebuild_does_not_see() -> None:
    """Fuzz: bytes damaged in and after the view. Whatever the stream (linking by the view) makes of a record, either
    the rebuild's handler (deriving every lead from the record read whole) makes the same, or it lists the view as not
    its lead's, or it dead-letters the record the stream linked (a case the rebuild does not derive: a difference)."""
    rng = random.Random(7)
    stream, audit = LinkingHandler(), LinkingHandler(use_views=False)
    same = told = 0
    for offset, value in enumerate(list(_values())[:60]):
        view_end = 10 + len(value) - len(encode(BEFORE_VIEWS, decode(CATALOG, value, ACCEPTED)[1]))
        for attempt in range(10):
            blob = bytearray(value)
            for _ in range(rng.randint(1, 2)):  # mostly in the view, sometimes in the lead after it
                blob[rng.randrange(10, view_end + 40)] = rng.randrange(256)
            record = Record(LEADS_ACCEPTED, 0, offset * 10 + attempt, None, bytes(blob))
            expected = audit.handle(record, MemoryState(), NOW)
            mismatched = any(m[0] is record for m in audit.view_mismatches)
            try:
                got = stream.handle(record, MemoryState(), NOW)
            except (KeyError, TypeError, ValueError, AttributeError):  # a step that raises: the stage dead-letters it
                assert mismatched, record.offset
                told += 1
                continue
            if got.outputs == expected.outputs and got.state == expected.state:
                same += 1
            else:
                assert mismatched or (expected.outputs[0].topic == LEADS_REJECTED
                                      and got.outputs[0].topic != LEADS_REJECTED), record.offset
                told += 1
    assert same > 100 and told > 50


def test_the_rebuild_reports_a_forged_view_and_the_cases_made_of_it() -> None:
    stage = Stage()
    (c1,) = stage.lead(_lead("上海锐丰贸易有限公司", "浦东新区张杨路1188号3栋502室", phones=("13912345678",)))
    clean = stage.lead(_lead("上海永盛商贸有限公司", "徐汇区漕溪北路1号", phones=("13800001111",)))
    assert clean[0]["case_id"] != c1["case_id"]
    assert [d.line() for d in rebuild(stage.records(), catalog=CATALOG).differences if d.kind in ("intake", "case")] \
        == []  # (no handover stage played here)
    # a writer of the accepted topic forges the view of the next lead: it claims the first case's phone
    forged_lead = _lead("上海永盛商贸商行", "徐汇区漕溪北路2号", phones=("13800002222",))
    handle = stage._handle

    def forging(r: ReplayRecord) -> list[dict[str, Any]]:
        if r.topic == LEADS_ACCEPTED and r.key == forged_lead.lead_id.encode():
            value = _rewritten(r.value or b"", keys=["phone:+8613912345678"])
            r = ReplayRecord(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, value, (), CATALOG)
        return handle(r)

    stage._handle = forging  # type: ignore[method-assign]
    (joined,) = stage.lead(forged_lead)
    assert joined["case_id"] == c1["case_id"], "the stream linked by the forged view"
    differences = rebuild(stage.records(), catalog=CATALOG).differences
    intake = [d.line() for d in differences if d.kind == "intake"]
    assert len(intake) == 1 and forged_lead.lead_id in intake[0] and "linking view" in intake[0]
    assert any(d.kind == "case" and c1["case_id"] in d.line() for d in differences)
