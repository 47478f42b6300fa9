"""Analysts' decisions in the pure linker: confirm merges (older id stays), reject, split; history; replays."""

from __future__ import annotations

from leadbus.processors.core.linking import DictStore, Linker
from leadbus.processors.core.normalize import normalise
from leadbus.processors.core.suggest import suggest
from leadbus.producers.labelled import labelled_leads

WHO = {"agency": "SAMR", "province": "33", "user": "analyst-7", "reason": "same warehouse on waybills", "at": "t"}


def _linked(n: int = 60) -> tuple[Linker, list[str]]:
    linker = Linker(DictStore())
    for lead, _ in labelled_leads(n, seed=1):
        norm = normalise(lead)
        linker.link(norm.lead, norm.domains)
    cases = sorted({k[2:] for k in linker.store.data if k.startswith("c:")})  # type: ignore[attr-defined]
    return linker, cases


def _replay(decide: object) -> dict[str, str]:
    linker, cases = _linked()
    decide(linker, cases)  # type: ignore[operator]
    return {k: v for k, v in linker.store.data.items() if k.startswith("l:")}  # type: ignore[attr-defined]


def test_confirm_merges_into_the_older_case_with_history() -> None:
    linker, cases = _linked()
    a, b = cases[0], cases[1]
    older = min((linker._case(a), linker._case(b)), key=lambda c: c.seq).case_id
    outcome = linker.confirm(a, b, WHO)
    assert outcome.case.case_id == older
    assert outcome.case.history[-1]["action"] == "CONFIRM" and outcome.case.history[-1]["user"] == "analyst-7"
    assert {linker.case_of(m) for m in outcome.case.members} == {older}
    assert linker.store.get(f"c:{outcome.absorbed[0].case_id}") is None


def test_reject_is_remembered_and_filters_suggestions() -> None:
    linker, cases = _linked()
    linker.reject(cases[0], cases[1])
    rejected = linker.rejected_pairs()
    assert rejected == [tuple(sorted((cases[0], cases[1])))]
    signals = {c: ["ip:1.1.1.1"] for c in cases[:2]} | {c: [f"ip:2.2.2.{i}"] for i, c in enumerate(cases[2:])}
    assert suggest(signals, min_score=0.0, rejected=rejected) == []


def test_split_moves_leads_to_a_new_case_and_a_revision_stays_there() -> None:
    linker, _ = _linked(400)
    big = max((linker._case(k[2:]) for k in linker.store.data if k.startswith("c:")),  # type: ignore[attr-defined]
              key=lambda c: len(c.members))
    assert len(big.members) >= 2
    moving = sorted(big.members)[:1]
    kept, new = linker.split(big.case_id, moving, WHO)
    assert set(new.members) == set(moving) and not set(kept.members) & set(moving)
    assert linker.case_of(moving[0]) == new.case_id
    assert new.history[0]["action"] == "SPLIT" and kept.history[-1]["to"] == new.case_id
    assert tuple(sorted((kept.case_id, new.case_id))) in linker.rejected_pairs()


def test_decisions_replay_to_the_same_cases() -> None:
    def decide(linker: Linker, cases: list[str]) -> None:
        linker.confirm(cases[0], cases[1], WHO)
        linker.reject(cases[2], cases[3])

    assert _replay(decide) == _replay(decide)
