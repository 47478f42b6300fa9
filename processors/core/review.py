"""Analysts in the linking loop, pure: suggested links in the stream, and analysts' decisions on them.

`suggest.suggest` scores all cases at once (offline: ``leadbus link --suggestions``). The stream sees one lead
at a time, so `SuggestionIndex` keeps in a store what that needs, updated as cases change — the suggesting stage's
(`processors/core/suggesting.py`, fed the published cases; issue #16), or a linker's offline (`after_link`):

* ``sx:s:<case>`` — the case's weak signals (the union of its leads');
* ``sx:d:<signal>`` — how many cases carry the signal (its document frequency, for the u of its weight); for a
  signal of a blocking field only once its postings are over ``max_block`` (``*``): until then its postings list
  every case carrying it, and their length is the count (one state write per new value instead of two, issue #16;
  a count a store of an earlier release kept beside live postings is not read, and set anew when they go over);
* ``sx:f:<field>`` — how many cases carry the field; ``sx:n`` — how many cases there are (the prior);
* ``sx:b:<blocking value>`` — the cases carrying a blocking value, while at most ``max_block`` do; once more
  do, ``*`` (never a block again: a value that common says little and would make the work quadratic);
* ``sx:p:<case a>|<case b>`` — the weight (log2 odds) the pair had when last suggested: it is suggested again
  only when new leads raise it by ``RESUGGEST_BITS`` (stronger evidence for the analysts), and never after an
  analyst rejected it (``Case.separated``, `Linker.rejected_pairs`).

After each lead, the changed case is compared with the cases it shares a blocking value with, with the same
weights as offline (`suggest.score_pair`), and a pair scoring at least ``REVIEW_MIN_SCORE`` becomes a `Review`
(the edge's `LinkSuggested` event) for the supervisors of the regions of the provinces involved. A case whose
weak signals did not change is not compared again. Nothing here links: only `apply_decision` changes cases, on
an analyst's `LinkDecision`; a confirmed pair teaches the model nothing automatic (m and u stay as they are).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leadbus.geography import regions_of
from leadbus.models import LinkDecision
from leadbus.processors.core.linking import Case, Linker, LinkOutcome, LinkStore, dumps, load_case, read_parsed
from leadbus.processors.core.suggest import (
    FIELDS,
    Field,
    Suggestion,
    agreement_ceilings,
    block_keys,
    posterior,
    profile_of,
    score_pair,
    weight_ceiling,
)

#: A pair is put to analysts from this posterior probability on (the offline list goes lower, to 0.05, for
#: measuring; a review queue should hold what is more likely one suspect than not).
REVIEW_MIN_SCORE = 0.5
MAX_BLOCK = 40
#: A pair already suggested comes back when its odds grew this many bits (4 times) since.
RESUGGEST_BITS = 2.0
_OVER = "*"


@dataclass(frozen=True)
class Review:
    """A suggested link to put to analysts (`LinkSuggested`)."""

    suggestion_id: str
    suggestion: Suggestion
    version_a: int
    version_b: int
    provinces: tuple[str, ...]
    regions: tuple[str, ...]


def case_signals(case: Case) -> list[str]:
    return sorted({s for m in case.members.values() for s in m.get("weak", ())})


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def suggestion_id(case_a: str, case_b: str, version_a: int, version_b: int) -> str:
    digest = hashlib.sha256(f"{case_a}|{case_b}|{version_a}|{version_b}".encode()).hexdigest()
    return "SUG-" + digest[:16].upper()


def provinces_of(cases: Iterable[Case]) -> tuple[str, ...]:
    """Reporting and suspects' provinces of the cases (their regions' supervisors review the pair)."""
    found = {p for case in cases for m in case.members.values()
             for p in (m.get("province"), m.get("suspect_province")) if p}
    return tuple(sorted(found))


class _Counts(dict[str, int]):
    """Document frequencies read from the store on first use (``score_pair`` asks ``.get(signal, 1)``)."""

    def __init__(self, index: SuggestionIndex) -> None:
        super().__init__()
        self.index = index

    def get(self, key: str, default: int | None = None) -> int:  # type: ignore[override]
        if key not in self:
            self[key] = self.index.frequency(key)
        value = self[key]
        return value if value or default is None else default


def _signals_of(text: str) -> list[str]:
    return list(json.loads(text))


def _profile_of(text: str) -> dict[str, set[str]]:
    """The profile of stored signals over the fields in use (`FIELDS`)."""
    return profile_of(json.loads(text), FIELDS)


def _postings_of(text: str) -> list[str]:
    return list(json.loads(text))


class SuggestionIndex:
    def __init__(self, store: LinkStore, *, min_score: float = REVIEW_MIN_SCORE, max_block: int = MAX_BLOCK,
                 fields: Mapping[str, Field] = FIELDS) -> None:
        self.store, self.min_score, self.max_block, self.fields = store, min_score, max_block, fields
        self._indexed: tuple[str, dict[str, set[str]]] | None = None  # the case `index` just wrote, its profile

    # -- the counts and postings --------------------------------------------------------------------

    def signals(self, case_id: str) -> list[str] | None:
        """The case's stored weak signals (shared with the store's parsed values: never change them)."""
        return read_parsed(self.store, f"sx:s:{case_id}", _signals_of)

    def _profile(self, case_id: str) -> dict[str, set[str]] | None:
        """`profile_of` the case's stored signals (parsed once while they stay the same, with today's fields)."""
        if self._indexed is not None and self._indexed[0] == case_id:
            return self._indexed[1]
        if self.fields is FIELDS:
            return read_parsed(self.store, f"sx:s:{case_id}", _profile_of)
        signals = self.signals(case_id)
        return None if signals is None else profile_of(signals, self.fields)

    def _count(self, key: str) -> int:
        return int(self.store.get(key) or "0")

    def _add(self, key: str, delta: int) -> None:
        value = self._count(key) + delta
        if value > 0:
            self.store.set(key, str(value))
        else:
            self.store.delete(key)

    def _blocking(self, signal: str) -> bool:
        """Whether ``signal`` (``field:value``) is a blocking value: its postings count the cases carrying it."""
        spec = self.fields.get(signal.partition(":")[0])
        return spec is not None and spec.block

    def frequency(self, signal: str) -> int:
        """How many cases carry ``signal``: its postings' length while they are kept, else its stored count."""
        if self._blocking(signal):
            members = self._postings(signal)
            if members is not None:
                return len(members)
        return self._count(f"sx:d:{signal}")

    def _postings(self, key: str) -> list[str] | None:
        """Cases carrying a blocking value; None once more than ``max_block`` did."""
        text = self.store.get(f"sx:b:{key}")
        if text == _OVER:
            return None
        return [] if text is None else read_parsed(self.store, f"sx:b:{key}", _postings_of)

    def index(self, case: Case, gone: Sequence[str] = ()) -> bool:
        """Record ``case`` as it now is and forget the ``gone`` cases (absorbed into it); True when the case's
        weak signals changed (a new case, a merge, a lead bringing a new signal), i.e. when to review it."""
        return self.index_signals(case.case_id, case_signals(case), gone)

    def forget(self, gone: Sequence[str]) -> None:
        """Forget the ``gone`` cases (merged away) alone."""
        self._replace(None, None, gone)

    def index_signals(self, case_id: str, new: list[str], gone: Sequence[str] = ()) -> bool:
        """`index` from the case's id and weak signals (sorted, distinct), as a `CaseUpdated` carries them."""
        old = self.signals(case_id)
        if old == new and not gone:
            return False
        self._replace(case_id, new, gone, old)
        return True

    def _replace(self, case_id: str | None, new: list[str] | None, gone: Sequence[str],
                 old: list[str] | None = None) -> None:
        before: list[tuple[str, list[str], Mapping[str, set[str]]]] = []
        if case_id is not None and old is not None:
            before.append((case_id, old, self._profile(case_id) or {}))
        for other in gone:
            signals = self.signals(other)
            if signals is not None:
                before.append((other, signals, self._profile(other) or {}))
                self.store.delete(f"sx:s:{other}")
                if self._indexed is not None and self._indexed[0] == other:
                    self._indexed = None
        self._add("sx:n", (case_id is not None) - len(before))
        profile_new = profile_of(new or (), self.fields)
        signal_delta: Counter[str] = Counter(new or ())
        field_delta: Counter[str] = Counter(list(profile_new))
        postings: dict[str, tuple[set[str], set[str]]] = {}  # blocking value → (ids leaving, ids arriving)
        for owner, signals, profile in before:
            signal_delta.subtract(signals)
            field_delta.subtract(list(profile))
            for key in block_keys(profile, self.fields):
                postings.setdefault(key, (set(), set()))[0].add(owner)
        if case_id is not None:
            for key in block_keys(profile_new, self.fields):
                postings.setdefault(key, (set(), set()))[1].add(case_id)
        counted_by_postings: set[str] = set()  # blocking values whose postings (still or just over) give the count
        for key, (leaving, arriving) in sorted(postings.items()):
            if leaving == arriving:
                continue
            current = self._postings(key)
            if current is None:
                continue
            counted_by_postings.add(key)
            members = (set(current) - leaving) | arriving
            if len(members) > self.max_block:
                self.store.set(f"sx:b:{key}", _OVER)
                self.store.set(f"sx:d:{key}", str(len(members)))  # from now on the count is kept by itself
            elif members:
                self.store.set(f"sx:b:{key}", dumps(sorted(members)))
            else:
                self.store.delete(f"sx:b:{key}")
        for signal, delta in signal_delta.items():
            if delta and signal not in counted_by_postings:
                self._add(f"sx:d:{signal}", delta)
        for name, delta in field_delta.items():
            if delta:
                self._add(f"sx:f:{name}", delta)
        if case_id is not None:
            self.store.set(f"sx:s:{case_id}", dumps(new))
            self._indexed = (case_id, profile_new)

    # -- comparing a changed case with its candidates ----------------------------------------------------

    def review(self, case: Case, rejected: Iterable[tuple[str, str]] = ()) -> list[Review]:
        """Pairs of ``case`` with the cases it shares a blocking value with, scoring at least ``min_score``, never
        rejected, and new or ``RESUGGEST_BITS`` stronger than when last suggested; best first. Marks them."""
        refused = {_pair(a, b) for a, b in rejected}

        def other_of(other: str) -> tuple[int, tuple[str, ...]] | None:
            found = load_case(self.store, other)
            return None if found is None else (found.version, provinces_of((found,)))

        return self.review_case(case.case_id, case.version, provinces_of((case,)), case.separated,
                                lambda a, b: (a, b) in refused, other_of)

    def review_case(self, case_id: str, version: int, provinces: Sequence[str], separated: Iterable[str],
                    refused: Callable[[str, str], bool],
                    other_of: Callable[[str], tuple[int, tuple[str, ...]] | None]) -> list[Review]:
        """`review` from what a `CaseUpdated` carries: the case's id, version and provinces, the cases it was
        separated from, whether a pair (lesser id first) was refused, and another case's version and provinces
        (None: no such case now)."""
        profile = self._profile(case_id)
        n = self._count("sx:n")
        if profile is None or n < 2:
            return []
        candidates: set[str] = set()
        for key in block_keys(profile, self.fields):
            members = self._postings(key)
            if members is not None:
                candidates.update(members)
        candidates -= {case_id, *separated}
        carrying = {name: self._count(f"sx:f:{name}") for name in self.fields}
        df = _Counts(self)  # read once per review, whatever the number of candidates sharing a value
        prior = -math.log2(n - 1)
        # Most candidates share one blocking value and little else: a pair whose weight cannot reach the
        # threshold, even with every shared field at its heaviest, is not scored (its score would fall below
        # min_score: nothing suggested, nothing stored). The margin keeps rounding on the safe side.
        ceilings = agreement_ceilings(carrying, self.fields)
        reachable = (-math.inf if self.min_score <= 0 else math.inf if self.min_score >= 1
                     else math.log2(self.min_score / (1 - self.min_score)) - prior - 1e-6)
        out: list[Review] = []
        for other in sorted(candidates):  # (a rejection or split marks both cases' `separated`: filtered above)
            a, b = _pair(case_id, other)
            if refused(a, b):
                continue
            other_profile = self._profile(other)
            if other_profile is None:
                continue
            if weight_ceiling(profile, other_profile, ceilings, self.fields) < reachable:
                continue
            terms = score_pair(profile, other_profile, df, carrying, self.fields)
            total = prior + sum(bits for _, _, bits in terms)
            score = posterior(total)
            if score < self.min_score:
                continue
            last = self.store.get(f"sx:p:{a}|{b}")
            if last is not None and total < float(last) + RESUGGEST_BITS:
                continue
            found = other_of(other)
            if found is None:
                continue
            mine = (version, tuple(provinces))
            (version_a, provinces_a), (version_b, provinces_b) = (mine, found) if case_id == a else (found, mine)
            self.store.set(f"sx:p:{a}|{b}", str(round(total, 3)))
            pair_provinces = tuple(sorted({*provinces_a, *provinces_b}))
            out.append(Review(suggestion_id(a, b, version_a, version_b),
                              Suggestion(a, b, round(score, 6), round(total, 3), terms),
                              version_a, version_b, pair_provinces, tuple(sorted(regions_of(*pair_provinces)))))
        out.sort(key=lambda r: (-r.suggestion.score, r.suggestion.case_a, r.suggestion.case_b))
        return out


def after_link(linker: Linker, outcome: LinkOutcome, index: SuggestionIndex | None = None) -> list[Review]:
    """Index the case a lead changed and, when its weak signals changed, the suggestions it now gives."""
    index = index or SuggestionIndex(linker.store)
    if not index.index(outcome.case, [c.case_id for c in outcome.absorbed]):
        return []
    return index.review(outcome.case, linker.rejected_pairs())


# -- analysts' decisions ---------------------------------------------------------------------------------


class _NoIndex(SuggestionIndex):
    """An index that keeps and suggests nothing (`apply_decision(..., reviews=False)`)."""

    def __init__(self) -> None:
        pass

    def index(self, case: Case, gone: Sequence[str] = ()) -> bool:
        return False

    def review(self, case: Case, rejected: Iterable[tuple[str, str]] = ()) -> list[Review]:
        return []


_NO_INDEX = _NoIndex()


@dataclass(frozen=True)
class Decided:
    """A suggested pair an analyst's confirm or reject closed (the edge's `LinkDecided`, keyed like the pair's
    `LinkSuggested`, onto the review topics of ``regions``: a dashboard rebuilding its board drops the pair)."""

    case_a: str
    case_b: str
    regions: tuple[str, ...]


@dataclass(frozen=True)
class DecisionOutcome:
    """What a `LinkDecision` did: cases changed (publish them), cases absorbed (publish with ``merged_into``),
    new suggestions, the pair it closed, or why it was refused (reason code, message); ``duplicate`` for a decision
    seen before."""

    updated: tuple[Case, ...] = ()
    absorbed: tuple[tuple[Case, str], ...] = ()
    reviews: tuple[Review, ...] = ()
    refused: tuple[str, str] | None = None
    duplicate: bool = False
    decided: Decided | None = None


def _decided(store: LinkStore, case_a: str, case_b: str) -> Decided:
    """The pair as suggested (lesser id first) and the regions of both cases as they are before the decision."""
    a, b = _pair(case_a, case_b)
    cases = [c for c in (load_case(store, a), load_case(store, b)) if c is not None]
    return Decided(a, b, tuple(sorted(regions_of(*provinces_of(cases)))))


def split_refusal(case_id: str, case_leads: Iterable[str], moving: Iterable[str]) -> tuple[str, str] | None:
    """Why a split of ``moving`` leads off case ``case_id`` holding ``case_leads`` cannot be (reason code, message),
    or None: every lead named must be the case's, and a split moves some, not all, of them. Linking asks it, and the
    dashboard's desk before publishing."""
    held, named = set(case_leads), set(moving)
    outside = sorted(named - held)
    if outside:
        return "LINK_SPLIT_LEADS", f"not leads of {case_id}: {', '.join(outside)}"
    if not named or named >= held:
        return "LINK_SPLIT_LEADS", "a split moves some, not all, of a case's leads"
    return None


def history_entry(decision: LinkDecision) -> dict[str, Any]:
    """What the case history keeps of a decision: who (an authenticated analyst), why, when."""
    analyst = decision.analyst
    return {"decision_id": decision.decision_id, "agency": analyst.agency, "province": analyst.province,
            "user": analyst.user, "role": analyst.role, "reason": decision.reason,
            "decided_at": decision.decided_at.isoformat(), "suggestion_id": decision.suggestion_id}


def apply_decision(linker: Linker, decision: LinkDecision, index: SuggestionIndex | None = None, *,
                   reviews: bool = True) -> DecisionOutcome:
    """Carry out an analyst's decision on the linker's cases. A decision id is carried out once; a decision
    naming a case that no longer exists (merged away, never made) or leads not in the case is refused.
    ``reviews=False`` (the linking stage): no suggestion index in the linker's store, no reviews — the suggesting
    stage makes them from the cases published (`processors/core/suggesting.py`)."""
    store = linker.store
    index = index or (SuggestionIndex(store) if reviews else _NO_INDEX)
    if store.get(f"ld:{decision.decision_id}") is not None:
        return DecisionOutcome(duplicate=True)
    named = [decision.case_a] if decision.case_b is None else [decision.case_a, decision.case_b]
    missing = [c for c in named if store.get(f"c:{c}") is None]
    if missing:
        return DecisionOutcome(refused=("LINK_UNKNOWN_CASE", f"{', '.join(missing)}: no such case now (never made, "
                                                             "or merged into another: decide on that one)"))
    entry = history_entry(decision)
    if decision.action == "CONFIRM":
        assert decision.case_b is not None
        decided = _decided(store, decision.case_a, decision.case_b)
        outcome = linker.confirm(decision.case_a, decision.case_b, entry)
        index.index(outcome.case, [c.case_id for c in outcome.absorbed])
        result = DecisionOutcome((outcome.case,), tuple((c, outcome.case.case_id) for c in outcome.absorbed),
                                 tuple(index.review(outcome.case, linker.rejected_pairs())), decided=decided)
    elif decision.action == "REJECT":
        assert decision.case_b is not None
        decided = _decided(store, decision.case_a, decision.case_b)
        linker.reject(decision.case_a, decision.case_b)
        result = DecisionOutcome(decided=decided)
    else:
        case = load_case(store, decision.case_a)
        assert case is not None  # checked above
        refusal = split_refusal(case.case_id, case.members, decision.lead_ids)
        if refusal is not None:
            return DecisionOutcome(refused=refusal)
        kept, new = linker.split(decision.case_a, decision.lead_ids, entry)
        index.index(kept)
        index.index(new)
        rejected = linker.rejected_pairs()
        result = DecisionOutcome((kept, new), (), (*index.review(kept, rejected), *index.review(new, rejected)))
    store.set(f"ld:{decision.decision_id}", decision.action)
    return result
