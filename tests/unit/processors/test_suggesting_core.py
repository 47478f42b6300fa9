"""The suggesting stage's core, pure (processors/core/suggesting.py): fed the cases linking publishes, it makes the
suggestions linking made when it kept the index itself (issue #16), whatever order the partitions come in."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.models import LinkDecision
from leadbus.processors.core.linking import DictStore, Linker
from leadbus.processors.core.normalize import normalise
from leadbus.processors.core.review import Review, after_link, apply_decision
from leadbus.processors.core.suggesting import PublishedCase, SuggestingCore, published
from leadbus.processors.linking import case_updated_record
from leadbus.producers.labelled import weak_labelled_leads

NOW = datetime(2026, 11, 1, tzinfo=UTC)
CATALOG = packaged_catalog()


_published = published


def _key(r: Review) -> tuple[Any, ...]:
    s = r.suggestion
    return (r.suggestion_id, s.case_a, s.case_b, s.score, s.weight, s.evidence, r.version_a, r.version_b,
            r.provinces, r.regions)


def _decision(action: str, a: str, b: str | None = None, leads: list[str] | None = None) -> LinkDecision:
    return LinkDecision.model_validate({
        "decision_id": str(uuid.uuid4()), "action": action, "case_a": a, "case_b": b, "lead_ids": leads or [],
        "analyst": {"agency": "SAMR", "province": "33", "user": "wang.analyst", "role": "ANALYST"},
        "reason": "same warehouse on the waybills", "decided_at": NOW})


def _index_keys(store: DictStore) -> dict[str, str]:
    """The index proper (counts, postings, signals), without the pairs marked as suggested."""
    return {k: v for k, v in store.data.items() if k.startswith("sx:") and not k.startswith("sx:p:")}


def test_fed_the_published_cases_it_suggests_exactly_what_linking_suggested() -> None:
    linker = Linker(DictStore())
    core = SuggestingCore(DictStore())
    before: list[Review] = []
    after: list[Review] = []
    for lead, _ in weak_labelled_leads(400, seed=5):
        norm = normalise(lead)
        outcome = linker.link(norm.lead, norm.domains)
        before.extend(after_link(linker, outcome))
        for absorbed in outcome.absorbed:  # the order linking publishes them in
            assert core.on_case(_published(absorbed, merged_into=outcome.case.case_id)) == []
        after.extend(core.on_case(_published(outcome.case)))
    assert len(before) > 20
    assert [_key(r) for r in after] == [_key(r) for r in before]
    assert _index_keys(core.store) == _index_keys(linker.store)  # type: ignore[arg-type]


def test_after_a_confirm_or_split_it_suggests_what_linking_did_and_never_the_split_pair() -> None:
    linker = Linker(DictStore())
    core = SuggestingCore(DictStore())
    reviews: list[Review] = []
    for lead, _ in weak_labelled_leads(300, seed=3):
        norm = normalise(lead)
        outcome = linker.link(norm.lead, norm.domains)
        reviews.extend(after_link(linker, outcome))
        for absorbed in outcome.absorbed:
            core.on_case(_published(absorbed, merged_into=outcome.case.case_id))
        core.on_case(_published(outcome.case))
    pair = reviews[0].suggestion
    confirmed = apply_decision(linker, _decision("CONFIRM", pair.case_a, pair.case_b))
    got = []
    for absorbed, into in confirmed.absorbed:
        got += core.on_case(_published(absorbed, merged_into=into))
    for case in confirmed.updated:
        got += core.on_case(_published(case))
    assert [_key(r) for r in got] == [_key(r) for r in confirmed.reviews]
    merged = confirmed.updated[0]
    split = apply_decision(linker, _decision("SPLIT", merged.case_id, leads=sorted(merged.members)[:1]))
    kept, new = split.updated
    got = core.on_case(_published(kept)) + core.on_case(_published(new))
    assert [_key(r) for r in got] == [_key(r) for r in split.reviews]
    assert new.case_id in core.separated(kept.case_id) and kept.case_id in core.separated(new.case_id)
    assert all({r.suggestion.case_a, r.suggestion.case_b} != {kept.case_id, new.case_id} for r in got)


def test_the_index_does_not_depend_on_the_order_partitions_are_read_in() -> None:
    """Cases on different partitions arrive interleaved at random; one case's records keep their order. A survivor
    may come before the record saying its absorbed case merged away, and before that case's earlier records."""
    linker = Linker(DictStore())
    published: list[PublishedCase] = []
    for n, (lead, _) in enumerate(weak_labelled_leads(300, seed=11)):
        norm = normalise(lead)
        outcome = linker.link(norm.lead, norm.domains)
        published += [_published(a, merged_into=outcome.case.case_id) for a in outcome.absorbed]
        published.append(_published(outcome.case))
        reviews = after_link(linker, outcome)
        for review in reviews[:1] if n % 3 == 0 else ():  # analysts confirm some pairs
            done = apply_decision(linker, _decision("CONFIRM", review.suggestion.case_a, review.suggestion.case_b))
            published += [_published(a, merged_into=into) for a, into in done.absorbed]
            published += [_published(c) for c in done.updated]
    assert any(p.merged_into for p in published), "the corpus merges cases"
    in_order = SuggestingCore(DictStore())
    for p in published:
        in_order.on_case(p)
    for seed in range(5):
        rng = random.Random(seed)
        queues: dict[int, list[PublishedCase]] = {}
        for p in published:  # six partitions by case id, each in order
            queues.setdefault(hash(p.case_id) % 6, []).append(p)
        shuffled = SuggestingCore(DictStore())
        suggested = set()
        while queues:
            partition = rng.choice(sorted(queues))
            for r in shuffled.on_case(queues[partition].pop(0)):
                suggested.add((r.suggestion.case_a, r.suggestion.case_b))
            if not queues[partition]:
                del queues[partition]
        assert _index_keys(shuffled.store) == _index_keys(in_order.store)  # type: ignore[arg-type]
        live = {k for k in in_order.store.data if k.startswith("sc:")}  # type: ignore[attr-defined]
        assert {k for k in shuffled.store.data if k.startswith("sc:")} == live  # type: ignore[attr-defined]
        assert suggested, "pairs are suggested in any order"


def test_a_rejected_pair_is_never_suggested_again_and_stays_rejected_through_a_merge() -> None:
    core = SuggestingCore(DictStore())
    shared = ("addr:上海市浦东新区张杨路1188号3栋502室", "bldg:上海市浦东新区张杨路1188号3栋", "ip24:61.152.1",
              "trade:锐丰", "city:上海市")
    for i in range(30):  # background, so the shared values are rare
        core.on_case(PublishedCase(f"CASE-BG{i:02d}", 1, (f"addr:北京市某路{i}号", f"trade:店{i}"), ("11",)))
    assert core.on_case(PublishedCase("CASE-A", 1, shared, ("31",))) == []
    assert core.on_case(PublishedCase("CASE-B", 1, shared, ("31",))), "the pair is suggested"
    assert core.on_reject("CASE-A", "CASE-B")
    stronger = (*shared, "brand:耐克", "phone4:5678")
    assert core.on_case(PublishedCase("CASE-A", 2, stronger, ("31",))) == []
    assert core.on_case(PublishedCase("CASE-B", 2, stronger, ("31",))) == []
    # B absorbs C (a new strong identifier): the survivor stays separated from A.
    core.on_case(PublishedCase("CASE-C", 1, ("trade:别家",), ("31",)))
    core.on_case(PublishedCase("CASE-C", 2, ("trade:别家",), ("31",), merged_into="CASE-B"))
    assert core.on_case(PublishedCase("CASE-B", 3, (*stronger, "trade:别家"), ("31",), merged_from=("CASE-C",))) == []
    assert "CASE-A" in core.separated("CASE-B")
    # A reject naming a case already merged away does not count (linking refuses it).
    assert not core.on_reject("CASE-C", "CASE-A")
    assert not core.on_reject("CASE-A", "CASE-A")


def test_stale_or_repeated_records_change_nothing() -> None:
    core = SuggestingCore(DictStore())
    core.on_case(PublishedCase("CASE-A", 2, ("trade:锐丰", "city:上海市"), ("31",)))
    before = dict(core.store.data)  # type: ignore[attr-defined]
    assert core.on_case(PublishedCase("CASE-A", 2, ("trade:锐丰", "city:上海市"), ("31",))) == []
    assert core.on_case(PublishedCase("CASE-A", 1, ("trade:别家",), ("11",))) == []
    assert core.store.data == before  # type: ignore[attr-defined]
    # The survivor first, then the absorbed case's earlier record (its partition behind), then its merge record.
    core.on_case(PublishedCase("CASE-B", 3, ("trade:锐丰", "city:上海市", "ip24:1.2.3"), ("31",),
                               merged_from=("CASE-A",)))
    assert core.on_case(PublishedCase("CASE-A", 3, ("trade:锐丰",), ("31",))) == []
    core.on_case(PublishedCase("CASE-A", 4, ("trade:锐丰",), ("31",), merged_into="CASE-B"))
    assert core.store.get("sc:CASE-A") is None and core.index.signals("CASE-A") is None
    assert core.store.get("sx:n") == "1"


def test_a_published_case_record_carries_what_the_index_needs() -> None:
    linker = Linker(DictStore())
    for lead, _ in weak_labelled_leads(40, seed=2):
        norm = normalise(lead)
        outcome = linker.link(norm.lead, norm.domains)
    case = outcome.case
    record = case_updated_record(case, NOW)
    schema = CATALOG.latest("cn.leadbus.CaseUpdated")
    doc = decode(CATALOG, encode(schema, record), schema)[1]
    assert PublishedCase.of(doc) == _published(case) and doc["weak_signals"] and doc["provinces"]
    old = [e for e in CATALOG.versions("cn.leadbus.CaseUpdated") if e is not schema][-1]  # v4: before the signals
    older = decode(CATALOG, encode(old, record), schema)[1]
    assert PublishedCase.of(older).weak_signals == () and PublishedCase.of(older).case_id == case.case_id


def test_a_case_too_wide_to_review_leaves_the_index_and_comes_back_when_narrowed() -> None:
    from leadbus.processors.core.suggesting import MAX_REVIEW_SIGNALS

    core = SuggestingCore(DictStore())
    a, b = "CASE-" + "A" * 16, "CASE-" + "B" * 16
    shared = ("name:王建国", "city:杭州", "addr:杭州市西湖区文三路100号")
    assert core.on_case(PublishedCase(a, 1, shared, ("33",))) == []
    assert core.on_case(PublishedCase(b, 1, shared, ("33",)))  # the pair is put to analysts
    # b gains leads about everybody: its signals pass the limit; it leaves the index, nothing is suggested.
    wide = tuple(sorted({*shared, *(f"name:某{i}" for i in range(MAX_REVIEW_SIGNALS))}))
    assert core.on_case(PublishedCase(b, 2, wide, ("33",))) == []
    assert core.index.signals(b) is None and core.index.signals(a) is not None
    assert not any(b in v for k, v in core.store.data.items() if k.startswith("sx:b:"))  # type: ignore[attr-defined]
    assert core.on_case(PublishedCase(b, 3, (*wide, "city:宁波"), ("33",))) == []  # stays out, cheaply
    # An analyst's split narrows it: indexed again, and stronger agreement with a comes back.
    again = core.on_case(PublishedCase(b, 4, (*shared, "phone-tail:5678"), ("33",)))
    assert core.index.signals(b) is not None
    assert all({r.suggestion.case_a, r.suggestion.case_b} == {a, b} for r in again)
