"""The linking stage's state (issue #16): a lead writes its own member record and its case's header, never the other
members again; the accepted lead is built without a second validation yet equals the validated one; an older state
layout is read and upgraded, never lost."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from leadbus.avro import decode
from leadbus.models import CaseLead
from leadbus.processors import linking as linking_stage
from leadbus.processors.core.linking import Case, DictStore, Linker, _member, load_case
from leadbus.processors.core.normalize import normalise
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler, accepted_lead
from leadbus.processors.stage import _PartitionState
from leadbus.processors.state import StateStore
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import LEADS_ACCEPTED, LEADS_REJECTED
from tests.unit.processors.linking_golden import (
    ACCEPTED,
    BEFORE_VIEWS,
    CATALOG,
    NOW,
    MemoryState,
    _accepted,
    old_state,
    run,
)


def _records(n: int, share: float = 0.5) -> list[dict]:
    generator = TrafficGenerator(seed=5, same_suspect_share=share)
    return [lead.to_avro() for lead in generator.leads(n, NOW - timedelta(hours=3), timedelta(seconds=10))]


def test_the_accepted_lead_built_without_validation_equals_the_validated_one() -> None:
    for offset, record in enumerate(_records(150)):
        if offset % 5 == 0:  # the simulator writes no earlier penalties: add some
            record["prior_penalties"] = [{"kind": "CRIMINAL", "decided_on": (NOW - timedelta(days=300)).date(),
                                          "decided_by": "某市中级人民法院", "violation": record["violation"],
                                          "reference": None}]
        doc = decode(CATALOG, _accepted(record, offset), ACCEPTED)[1]["lead"]
        built, validated = accepted_lead(doc), CaseLead.model_validate(doc)
        assert built == validated and built.model_dump() == validated.model_dump()
        assert _member(built, ["example.com"]) == _member(validated, ["example.com"])
        assert bool(built.prior_penalties) == (offset % 5 == 0)


@pytest.mark.parametrize(("writer", "use_views"), [(BEFORE_VIEWS, True), (ACCEPTED, False)])
def test_an_accepted_lead_that_does_not_fit_the_model_is_dead_lettered_not_linked(writer, use_views) -> None:
    """A lead derived in the stage (a writer before intake's views, or views not used: the audit rebuild's)."""
    handler = LinkingHandler(use_views=use_views)
    value = _accepted(_records(1)[0], 0, writer)
    event = decode(CATALOG, value, ACCEPTED)[1]
    event["lead"]["subject"] = {**event["lead"]["subject"], "stowaway": 1}  # drifted: validated, and refused
    with pytest.raises(ValueError):
        accepted_lead(event["lead"])
    broken = Record(LEADS_ACCEPTED, 0, 0, None, value[:-3])
    result = handler.handle(broken, MemoryState(), NOW)
    assert [o.topic for o in result.outputs] == [LEADS_REJECTED] and not result.state


def test_a_lead_joining_a_big_case_writes_its_member_and_the_header_only() -> None:
    handler = LinkingHandler()
    state = MemoryState()
    base = _records(1)[0]
    sizes = []
    for n in range(60):  # sixty reports of one shop: one case
        record = {**base, "lead_id": f"00000000-0000-4000-8000-{n:012d}", "description": f"report {n}"}
        result = handler.handle(Record(LEADS_ACCEPTED, 0, n, None, _accepted(record, n)), state, NOW)
        state.pending.update(result.state)
        state.commit()
        written = {k.decode().split(":", 1)[0] for k in result.state}
        assert {k for k in result.state if k.startswith(b"m:")} == {f"m:{record['lead_id']}".encode()}
        assert "c" in written
        sizes.append(sum(len(k) + len(v or b"") for k, v in result.state.items()))
    case_keys = [k for k in state.committed if k.startswith(b"c:")]
    assert len(case_keys) == 1
    header = json.loads(state.committed[case_keys[0]])
    assert len(header["members"]) == 60 and all(isinstance(m, str) for m in header["members"])
    # the 60th lead writes a header grown by 59 lead ids, not 59 members' records (~0.7 kB each)
    assert sizes[-1] - sizes[1] < 59 * 60


def test_a_value_written_as_it_was_is_no_state_write() -> None:
    handler = LinkingHandler()
    state = MemoryState()
    value = _accepted(_records(1)[0], 0)
    first = handler.handle(Record(LEADS_ACCEPTED, 0, 0, None, value), state, NOW)
    state.pending.update(first.state)
    state.commit()
    again = handler.handle(Record(LEADS_ACCEPTED, 0, 1, None, value), state, NOW)  # a redelivered copy
    assert b"seq" not in again.state and all(state.get(k) != v for k, v in again.state.items())
    assert len(again.state) < len(first.state)


def test_the_layout_before_is_read_and_upgraded_when_written_without_losing_a_member() -> None:
    old = old_state()
    layout_1 = [k for k, v in old.committed.items()
                if k.startswith(b"c:") and isinstance(json.loads(v)["members"], dict)]
    assert layout_1 and not any(k.startswith(b"m:") for k in old.committed)
    _, state = run(swap=old)
    store = DictStore({k.decode(): v.decode() for k, v in state.committed.items()})
    cases = {k[2:]: load_case(store, k[2:]) for k in store.data if k.startswith("c:")}
    upgraded = sum(isinstance(json.loads(store.data[f"c:{c}"])["members"], list) for c in cases)
    assert upgraded > len(layout_1) // 4  # the cases written since are in today's layout; the rest still read
    for key, case_id in store.data.items():  # every lead is a member of the case it points to
        if key.startswith("l:"):
            case = cases[case_id]
            assert case is not None and key[2:] in case.members
    assert sum(len(c.members) for c in cases.values() if c) == sum(k.startswith("l:") for k in store.data)


def test_offline_linking_in_the_new_layout_keeps_whole_cases_readable() -> None:
    linker = Linker(DictStore())
    for lead in TrafficGenerator(seed=2, same_suspect_share=0.7).leads(200, NOW - timedelta(hours=1),
                                                                       timedelta(seconds=5)):
        norm = normalise(lead)
        linker.link(norm.lead, norm.domains)
    data = linker.store.data  # type: ignore[attr-defined]
    case = max((load_case(linker.store, k[2:]) for k in data if k.startswith("c:")), key=lambda c: len(c.members))
    assert case is not None and len(case.members) > 2
    assert Case.from_json(case.to_json()).members == case.members  # the whole form still round-trips


# -- the handler's memory of its state (issue #16): trusted only while it is the state ---------------------------


def _stored(tmp_path: Path) -> tuple[StateStore, _PartitionState]:
    store = StateStore(tmp_path / "linking", "leadbus.state.linking", "localhost:1")  # no broker: never restored
    return store, _PartitionState(store, 0)


def _values(n: int) -> list[bytes]:
    return [_accepted(record, offset) for offset, record in enumerate(_records(n, share=0.7))]


def _handle(handler: LinkingHandler, store: StateStore, view: _PartitionState, offset: int, value: bytes) -> list:
    result = handler.handle(Record(LEADS_ACCEPTED, 0, offset, None, value), view, NOW)
    for key, written in result.state.items():
        store.put(0, key, written)
    return [(o.topic, o.key, o.value) for o in result.outputs]


def _reference(values: list[bytes], tmp_path: Path) -> tuple[list, dict[bytes, bytes]]:
    store, view = _stored(tmp_path / "reference")
    handler = LinkingHandler()
    outputs = [_handle(handler, store, view, offset, value) for offset, value in enumerate(values)]
    store.commit()
    return outputs, _committed(store)


def _committed(store: StateStore) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in store._db(0).items() if not bytes(k).startswith(b"\x00")}


def test_an_aborted_transaction_leaves_nothing_in_the_handlers_memory(tmp_path: Path) -> None:
    """A batch aborted (a crash of the transaction, the bus gone): processed again, by the same handler or a new one
    over the same store, its records give what they gave the first time, and the state is the uninterrupted one."""
    values = _values(60)
    expected, state = _reference(values, tmp_path)
    for fresh in (False, True):
        store, view = _stored(tmp_path / f"crash-{fresh}")
        handler = LinkingHandler()
        got = [_handle(handler, store, view, offset, value) for offset, value in enumerate(values[:30])]
        store.commit()
        for offset in range(30, 45):  # the next batch, aborted
            _handle(handler, store, view, offset, values[offset])
        store.abort()
        handler = LinkingHandler() if fresh else handler
        got += [_handle(handler, store, view, offset, values[offset]) for offset in range(30, 60)]
        store.commit()
        assert got == expected
        assert _committed(store) == state


def test_a_step_that_raises_leaves_nothing_of_its_record_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _values(40)
    expected, state = _reference(values, tmp_path)
    store, view = _stored(tmp_path / "raising")
    handler = LinkingHandler()
    got = [_handle(handler, store, view, offset, value) for offset, value in enumerate(values[:20])]
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("publishing the case failed after linking")

    with monkeypatch.context() as patched:
        patched.setattr(linking_stage, "case_updated_record", broken)  # (the suggestion index left linking: #16)
        with pytest.raises(RuntimeError):
            _handle(handler, store, view, 20, values[20])  # linked in memory, then failed: its writes never made
    got += [_handle(handler, store, view, offset, values[offset]) for offset in range(20, 40)]
    store.commit()
    assert got == expected
    assert _committed(store) == state


def test_a_restore_or_dropped_writes_make_the_handler_read_the_store_again(tmp_path: Path) -> None:
    store, view = _stored(tmp_path / "generation")
    handler = LinkingHandler()
    value = _values(1)[0]
    first = _handle(handler, store, view, 0, value)
    store.commit()
    for key in _committed(store):  # the state changes under the handler (as a restore from the changelog may)
        store._db(0).delete(key)
    store.invalidate()
    again = _handle(handler, store, view, 1, value)
    assert again == first  # linked as new again (case version 1), read from the store, not remembered
    remembered = _handle(handler, store, view, 2, value)  # the store now holds it: a redelivery, version 2
    assert decode(CATALOG, remembered[-1][2])[1]["version"] == 2


@pytest.mark.parametrize("field, value", [("channel", "CARRIER_PIGEON"), ("category", ""), ("violation", 7),
                                          ("handling", None)])
def test_an_accepted_lead_naming_no_member_of_an_enumeration_is_refused(field: str, value: object) -> None:
    """The enumerations are looked up in their members' table (not called): a value that is none still raises."""
    event = decode(CATALOG, _accepted(_records(1)[0], 0), ACCEPTED)[1]
    with pytest.raises(ValueError):
        accepted_lead({**event["lead"], field: value})
    subject = {**event["lead"]["subject"], "kind": "ROBOT"}
    with pytest.raises(ValueError):
        accepted_lead({**event["lead"], "subject": subject})


def test_state_written_without_bloom_filters_reads_the_same_with_them(tmp_path: Path) -> None:
    """State folders written before the filters (plain RocksDB options) open with them, present and absent keys
    read as they were, and what the store writes then reads back after a reopen."""
    from rocksdict import Rdict

    folder = tmp_path / "linking" / "p0"
    folder.mkdir(parents=True)
    old = Rdict(str(folder))
    old[b"l:lead-1"] = b"CASE-1"
    old[b"i:phone:+8613800000000"] = b"CASE-1"
    old.close()
    store, view = _stored(tmp_path)
    assert view.get(b"l:lead-1") == b"CASE-1" and view.get(b"i:phone:+8613800000000") == b"CASE-1"
    assert view.get(b"l:lead-2") is None and view.get(b"i:absent") is None
    store.put(0, b"l:lead-2", b"CASE-2")
    store.put(0, b"l:lead-1", None)
    store.commit()
    store.close()
    store, view = _stored(tmp_path)
    assert view.get(b"l:lead-1") is None and view.get(b"l:lead-2") == b"CASE-2"
    assert view.get(b"i:phone:+8613800000000") == b"CASE-1"
    store.close()


def _courier(record: dict, n: int) -> dict:
    """A lead of the courier channel's v3 fields (senders, operator, products, return addresses): weak signals."""
    return {**record, "senders": [{"name": "王小明", "phone": "138****5678"}, {"name": None, "phone": "尾号4321"}],
            "operator": {"name": "李**", "phone": None} if n % 2 else None,
            "products": [{"name": f"运动鞋 AJ{n % 4}", "brand": "耐克"}, {"name": "手提包", "brand": None}],
            "return_addresses": [{"province": "33", "city": "义乌市", "detail": f"某仓库{n % 3}号"}]}


def test_a_courier_lead_is_linked_by_the_stream_as_offline_with_its_v3_fields_as_models() -> None:
    # Before: the v3 parts stayed plain dicts, the weak signals read ``.city`` of a dict, and the stream
    # dead-lettered every lead with a sender or a return address (STAGE_ERROR) that `leadbus link` linked.
    records = [_courier(r, n) for n, r in enumerate(_records(12, share=0.6))]
    handler, state, offline = LinkingHandler(), MemoryState(), Linker(DictStore())
    for offset, record in enumerate(records):
        value = _accepted(record, offset)
        event = decode(CATALOG, value, ACCEPTED)[1]
        built, validated = accepted_lead(event["lead"]), CaseLead.model_validate(event["lead"])
        assert built == validated and built.model_dump() == validated.model_dump()
        assert built.senders and all(type(c) is type(validated.senders[0]) for c in built.senders)
        domains = event["identity"]["registrable_domains"]
        assert _member(built, domains) == _member(validated, domains)
        result = handler.handle(Record(LEADS_ACCEPTED, 0, offset, None, value), state, NOW)
        assert [o.topic for o in result.outputs][-1] == "leadbus.cases", result.outputs
        state.pending.update(result.state)
        state.commit()
        expected = offline.link(validated, domains).case
        streamed = decode(CATALOG, result.outputs[-1].value or b"")[1]
        assert streamed["case_id"] == expected.case_id and streamed["members"] == sorted(expected.members)
        assert any(s.startswith("sender:") for s in streamed["weak_signals"])


def test_the_case_event_carries_the_case_signals_and_provinces_the_review_core_computes() -> None:
    # case_updated_record gathers them in one pass; the suggesting stage and the reviews read them as
    # `case_signals` and `provinces_of` say (members without weak signals or provinces included).
    from leadbus.processors.core.review import case_signals, provinces_of
    from leadbus.processors.linking import case_updated_record

    store = DictStore()
    linker = Linker(store)
    cases = []
    for record in _records(60, share=0.7):
        lead = normalise(CaseLead.model_validate(record))
        cases.append(linker.link(lead.lead, lead.domains).case)
    odd = Case("CASE-ODD", 1, members={
        "a": {**cases[0].members[next(iter(cases[0].members))], "province": None, "suspect_province": None},
        "b": {k: v for k, v in cases[1].members[next(iter(cases[1].members))].items() if k != "weak"}})
    for case in [*cases, odd]:
        event = case_updated_record(case, NOW)
        assert event["weak_signals"] == case_signals(case)
        assert event["provinces"] == list(provinces_of((case,)))


def test_the_lead_linking_reads_equals_the_accepted_lead_on_every_part_it_keeps() -> None:
    """The stream reads today's LeadAccepted without the parts linking never reads (`LINKING_UNREAD`); the rest is
    the accepted lead as built whole, and the parts left out are absent, never a made-up empty value."""
    handler = LinkingHandler()
    for offset, record in enumerate(_records(120)):
        value = _accepted(record, offset)
        event, lead = handler.read_accepted(value)
        whole = accepted_lead(decode(CATALOG, value, ACCEPTED)[1]["lead"])
        assert set(event) == {"lead", "identity"}
        assert event["identity"]["registrable_domains"] == decode(CATALOG, value, ACCEPTED)[1]["identity"][
            "registrable_domains"]
        for name in CaseLead.model_fields:
            if name in linking_stage.LINKING_UNREAD:
                with pytest.raises(AttributeError):
                    getattr(lead, name)
            else:
                assert getattr(lead, name) == getattr(whole, name), name
        assert _member(lead, ["example.com"]) == _member(whole, ["example.com"])


def test_damaged_accepted_leads_give_what_decoding_them_whole_gives() -> None:
    """Fuzz: the same outputs (dead letters included) and state writes as the handler decoding every record whole (both
    deriving every lead: a record linked by intake's view is judged by the view alone, test_linking_views.py)."""
    import random

    rng = random.Random(16)
    fast, whole = LinkingHandler(use_views=False), LinkingHandler(use_views=False)
    whole.linking_reader = None  # type: ignore[assignment]
    fast_state, whole_state = MemoryState(), MemoryState()
    dead = linked = 0
    for offset, record in enumerate(_records(60)):
        data = _accepted(record, offset)
        for attempt in range(12):
            blob = bytearray(data)
            if attempt:
                for _ in range(rng.randint(1, 3)):
                    blob[rng.randrange(10, len(blob))] = rng.randrange(256)
                if rng.random() < 0.2:
                    blob = blob[: rng.randrange(10, len(blob))]
            item = Record(LEADS_ACCEPTED, 0, offset * 12 + attempt, None, bytes(blob))
            try:
                expected = whole.handle(item, whole_state, NOW)
            except Exception as exc:  # noqa: BLE001 - a step that raises: the stage dead-letters it; so must this
                with pytest.raises(type(exc)):
                    fast.handle(item, fast_state, NOW)
                whole.__init__(use_views=False)  # type: ignore[misc]
                whole.linking_reader = None  # type: ignore[assignment]
                fast.__init__(use_views=False)  # type: ignore[misc]
                continue
            got = fast.handle(item, fast_state, NOW)
            assert got.outputs == expected.outputs and got.state == expected.state
            dead += got.outputs[0].topic == LEADS_REJECTED
            linked += got.outputs[0].topic != LEADS_REJECTED
            for state, result in ((whole_state, expected), (fast_state, got)):
                state.pending.update(result.state)
                state.commit()
    assert dead > 50 and linked > 100
