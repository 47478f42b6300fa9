"""The stream's side of suggested links and analysts' decisions, pure (processors/core/review.py)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from leadbus.models import LinkDecision
from leadbus.processors.core.linking import Case, DictStore, Linker, load_case
from leadbus.processors.core.normalize import normalise
from leadbus.processors.core.review import (
    RESUGGEST_BITS,
    SuggestionIndex,
    after_link,
    apply_decision,
    case_signals,
    split_refusal,
)
from leadbus.processors.core.suggest import FIELDS, block_keys, profile_of
from leadbus.producers.labelled import weak_labelled_leads

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _stream(n: int, seed: int = 3) -> tuple[Linker, list, list]:  # type: ignore[type-arg]
    linker = Linker(DictStore())
    reviews = []
    labelled = weak_labelled_leads(n, seed=seed)
    for lead, _ in labelled:
        norm = normalise(lead)
        reviews.extend(after_link(linker, linker.link(norm.lead, norm.domains)))
    return linker, reviews, labelled


def _cases(linker: Linker) -> list[Case]:
    data = linker.store.data  # type: ignore[attr-defined]
    return [c for k in sorted(data) if k.startswith("c:") and (c := load_case(linker.store, k[2:])) is not None]


def _decision(action: str, a: str, b: str | None = None, leads: list[str] | None = None,
              role: str = "ANALYST") -> LinkDecision:
    return LinkDecision.model_validate({
        "decision_id": str(uuid.uuid4()), "action": action, "case_a": a, "case_b": b, "lead_ids": leads or [],
        "analyst": {"agency": "SAMR", "province": "33", "user": "wang.analyst", "role": role},
        "reason": "same warehouse on the waybills", "decided_at": NOW})


def _check_index(linker: Linker) -> None:
    """The index's counts and postings are exactly what the current cases give."""
    data = linker.store.data  # type: ignore[attr-defined]
    cases = _cases(linker)
    assert int(data.get("sx:n", "0")) == len(cases)
    df: Counter[str] = Counter(s for c in cases for s in case_signals(c))
    index = SuggestionIndex(linker.store)
    assert {s: index.frequency(s) for s in df} == dict(df)
    # A blocking value's count is its postings' length while they are kept; a count is stored only for the
    # other signals and for values whose postings are over (issue #16: one write per new value, not two).
    stored = {k[5:]: int(v) for k, v in data.items() if k.startswith("sx:d:")}
    kept = {s for s in df if FIELDS[s.partition(":")[0]].block and data.get(f"sx:b:{s}", "*") != "*"}
    assert stored == {s: n for s, n in df.items() if s not in kept}
    fields: Counter[str] = Counter(f for c in cases for f in profile_of(case_signals(c)))
    assert {k[5:]: int(v) for k, v in data.items() if k.startswith("sx:f:")} == dict(fields)
    postings: dict[str, set[str]] = {}
    for case in cases:
        assert json.loads(data[f"sx:s:{case.case_id}"]) == case_signals(case)
        for key in block_keys(profile_of(case_signals(case)), FIELDS):
            postings.setdefault(key, set()).add(case.case_id)
    for key, text in data.items():
        if key.startswith("sx:b:") and text != "*":
            assert set(json.loads(text)) == postings[key[5:]], key


def test_the_index_follows_every_lead_and_merge() -> None:
    linker, reviews, _ = _stream(1500)
    _check_index(linker)
    assert reviews, "the weak data gives suggestions in the stream"


def test_stream_suggestions_are_mostly_the_same_suspect() -> None:
    linker, reviews, labelled = _stream(3000)
    truth = {lead.lead_id: suspect for lead, suspect in labelled}
    cases = {c.case_id: c for c in _cases(linker)}
    judged = [r for r in reviews if r.suggestion.case_a in cases and r.suggestion.case_b in cases]
    same = [r for r in judged if {truth[m] for m in cases[r.suggestion.case_a].members}
            & {truth[m] for m in cases[r.suggestion.case_b].members}]
    assert len(judged) >= 20
    assert len(same) / len(judged) >= 0.8, (len(same), len(judged))
    for review in reviews:
        s = review.suggestion
        assert s.case_a < s.case_b and 0.5 <= s.score <= 1 and s.evidence
        assert review.suggestion_id.startswith("SUG-")


def test_a_pair_comes_back_only_with_stronger_evidence_and_the_stream_replays_the_same() -> None:
    first = _stream(1500)[1]
    last: dict[tuple[str, str], float] = {}
    for review in first:
        pair = (review.suggestion.case_a, review.suggestion.case_b)
        if pair in last:
            assert review.suggestion.weight >= last[pair] + RESUGGEST_BITS - 0.01
        last[pair] = review.suggestion.weight
    assert [(r.suggestion_id, r.suggestion.score) for r in _stream(1500)[1]] == \
        [(r.suggestion_id, r.suggestion.score) for r in first]


def test_reject_then_never_again_confirm_merges_with_history_split_makes_a_new_case() -> None:
    linker, reviews, _ = _stream(1500)
    live = {c.case_id for c in _cases(linker)}
    pairs = [r.suggestion for r in reviews if r.suggestion.case_a in live and r.suggestion.case_b in live]
    rejected, confirmed = pairs[0], pairs[1]
    done = apply_decision(linker, _decision("REJECT", rejected.case_b, rejected.case_a))
    assert done.refused is None and done.decided is not None
    assert (done.decided.case_a, done.decided.case_b) == (rejected.case_a, rejected.case_b)  # keyed like the pair
    assert set(done.decided.regions) >= set(next(r.regions for r in reviews if r.suggestion == rejected))
    index = SuggestionIndex(linker.store)
    for key in [k for k in linker.store.data if k.startswith("sx:p:")]:  # type: ignore[attr-defined]
        linker.store.delete(key)  # forget what was suggested: only the rejection may keep the pair out
    again = index.review(linker._case(rejected.case_a), linker.rejected_pairs())
    assert rejected.case_b not in {r.suggestion.case_a for r in again} | {r.suggestion.case_b for r in again}

    outcome = apply_decision(linker, _decision("CONFIRM", confirmed.case_a, confirmed.case_b))
    assert outcome.refused is None and len(outcome.updated) == 1 and len(outcome.absorbed) == 1
    assert outcome.decided is not None and outcome.decided.case_a == confirmed.case_a
    merged = outcome.updated[0]
    assert merged.history[-1]["action"] == "CONFIRM" and merged.history[-1]["user"] == "wang.analyst"
    assert merged.history[-1]["reason"] == "same warehouse on the waybills"
    assert outcome.absorbed[0][1] == merged.case_id
    _check_index(linker)

    moving = sorted(merged.members)[:1]
    split = apply_decision(linker, _decision("SPLIT", merged.case_id, leads=moving))
    kept, new = split.updated
    assert set(new.members) == set(moving) and new.case_id not in (kept.case_id, *kept.merged_from)
    assert linker.case_of(moving[0]) == new.case_id
    assert new.history[0]["action"] == "SPLIT" and split.decided is None  # a split answers no suggestion
    _check_index(linker)


def test_split_refusal_is_one_rule_for_linking_and_the_desk() -> None:
    assert split_refusal("CASE-A", ["l1", "l2"], ["l2"]) is None
    assert split_refusal("CASE-A", ["l1", "l2"], ["l1", "l2"]) == (
        "LINK_SPLIT_LEADS", "a split moves some, not all, of a case's leads")
    assert split_refusal("CASE-A", ["l1", "l2"], []) is not None
    code, message = split_refusal("CASE-A", ["l1", "l2"], ["l2", "x9"]) or ("", "")
    assert code == "LINK_SPLIT_LEADS" and message == "not leads of CASE-A: x9"


def test_decisions_that_no_longer_fit_are_refused_and_a_decision_counts_once() -> None:
    linker, _, _ = _stream(600)
    cases = _cases(linker)
    gone = "CASE-0000000000000000"
    assert apply_decision(linker, _decision("CONFIRM", cases[0].case_id, gone)).refused[0] == "LINK_UNKNOWN_CASE"
    single = next(c for c in cases if len(c.members) == 1)
    refused = apply_decision(linker, _decision("SPLIT", single.case_id, leads=sorted(single.members)))
    assert refused.refused is not None and refused.refused[0] == "LINK_SPLIT_LEADS"
    stranger = str(uuid.uuid4())
    refused = apply_decision(linker, _decision("SPLIT", single.case_id, leads=[stranger]))
    assert refused.refused is not None and refused.refused[0] == "LINK_SPLIT_LEADS"
    decision = _decision("CONFIRM", cases[0].case_id, cases[1].case_id)
    assert apply_decision(linker, decision).absorbed
    assert apply_decision(linker, decision).duplicate


@pytest.mark.parametrize("record, code", [
    ({"reason": "  "}, "REASON_MISSING"),
    ({"analyst": {"agency": "SAMR", "province": "33", "user": "", "role": "ANALYST"}}, "ANALYST_UNNAMED"),
    ({"case_b": None}, "LINK_DECISION_SHAPE"),
    ({"case_b": "CASE-00000000000000AA"}, "LINK_DECISION_SHAPE"),
    ({"action": "SPLIT"}, "LINK_DECISION_SHAPE"),
])
def test_a_link_decision_must_say_who_why_and_name_what_fits(record: dict, code: str) -> None:  # type: ignore[type-arg]
    base = {"decision_id": str(uuid.uuid4()), "action": "CONFIRM", "case_a": "CASE-00000000000000AA",
            "case_b": "CASE-00000000000000BB", "lead_ids": [],
            "analyst": {"agency": "SAMR", "province": "33", "user": "li", "role": "ANALYST"},
            "reason": "why", "decided_at": NOW}
    with pytest.raises(ValueError) as info:
        LinkDecision.model_validate({**base, **record})
    assert code in str(info.value)


def test_pairs_left_unscored_by_the_weight_ceiling_change_no_review(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream skips scoring a candidate whose weight cannot reach the threshold (issue #16): the reviews, their
    scores and evidence, and the index's store are those of scoring every candidate."""
    import leadbus.processors.core.review as review

    linker_pruned, pruned, _ = _stream(1500, seed=5)
    monkeypatch.setattr(review, "weight_ceiling", lambda *_args, **_kw: float("inf"))
    linker_all, every, _ = _stream(1500, seed=5)
    assert pruned == every and len(every) > 20
    assert linker_pruned.store.data == linker_all.store.data  # type: ignore[attr-defined]


def test_a_store_of_the_earlier_release_with_every_count_suggests_the_same() -> None:
    """Before issue #16's change every signal's count was stored (``sx:d``), blocking values' too: such a store,
    continued by this release, gives the same reviews as one this release wrote from the start."""
    labelled = weak_labelled_leads(1600, seed=9)
    linker = Linker(DictStore())
    for lead, _ in labelled[:800]:
        norm = normalise(lead)
        after_link(linker, linker.link(norm.lead, norm.domains))
    older = Linker(DictStore())
    older.store.data.update(linker.store.data)  # type: ignore[attr-defined]
    index = SuggestionIndex(older.store)
    signals = {s for c in _cases(older) for s in case_signals(c)}
    added = {f"sx:d:{s}": str(index.frequency(s)) for s in signals if f"sx:d:{s}" not in older.store.data}  # type: ignore[attr-defined]
    assert added  # the counts this release leaves to the postings
    older.store.data.update(added)  # type: ignore[attr-defined]
    reviews: dict[str, list] = {"new": [], "older": []}  # type: ignore[type-arg]
    for lead, _ in labelled[800:]:
        for name, each in (("new", linker), ("older", older)):
            norm = normalise(lead)
            reviews[name].extend(after_link(each, each.link(norm.lead, norm.domains)))
    assert reviews["new"] == reviews["older"] and reviews["new"]
    _check_index(linker)
