"""The suggesting stage's core, pure: the weak-signal suggestion index fed by published cases (issue #16).

Linking publishes every case it changes on `leadbus.cases` (`CaseUpdated` v5 carries the case's weak signals and
provinces); this keeps `review.SuggestionIndex` over its own store from those records, and gives the same
`Review`s (`LinkSuggested`) linking gave when it kept the index itself. Besides the index's ``sx:*`` keys:

* ``sc:<case>`` — a live case's version and provinces (``{"v": …, "p": […]}``), for the pair's event;
* ``sg:<case>`` — a case merged away: ``=<survivor>`` once its own record with ``merged_into`` was read,
  ``~<survivor>`` when only the survivor's ``merged_from`` named it so far (its partition is behind);
* ``sr:<case>`` — the cases an analyst separated it from (a reject, or either side of a split): never suggested.

Ordering. `leadbus.cases` is keyed by case id, so one case's records come in order, but records of different
cases come in whatever order the partitions are read. The index's content is a function of the live cases'
latest records, whatever that interleaving: a record older than the one held is dropped (version guard), a case
merged away is forgotten when either the survivor naming it or its own ``merged_into`` record comes first, and
its earlier records arriving late are dropped while it is so marked. What an interleaving may change is the
moment a pair is first scored (and with it the version pair in its suggestion id); the set of pairs put to
analysts converges to the same one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leadbus.processors.core.linking import Case, LinkStore, dumps
from leadbus.processors.core.review import Review, SuggestionIndex, case_signals, provinces_of

#: A case carrying more distinct weak signals than this is left out of the suggestion index. Simulated traffic's
#: widest case carries 28 (24,000 leads, strong and weak data alike); `bench/hot_case.py` shows the cost it avoids.
MAX_REVIEW_SIGNALS = 256


@dataclass(frozen=True)
class PublishedCase:
    """What the index needs of one `CaseUpdated` record."""

    case_id: str
    version: int
    weak_signals: tuple[str, ...]
    provinces: tuple[str, ...]
    merged_from: tuple[str, ...] = ()
    merged_into: str | None = None
    #: (from, to) of each split in the case's history: the two never suggested to each other.
    splits: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> PublishedCase:
        """From a decoded `CaseUpdated` (a record written before v5 resolves to no signals, no provinces)."""
        splits = tuple((e["split_from"], e["split_to"]) for e in record.get("link_history") or ()
                       if e.get("action") == "SPLIT" and e.get("split_from") and e.get("split_to"))
        return cls(str(record["case_id"]), int(record["version"]),
                   tuple(sorted(set(record.get("weak_signals") or ()))),
                   tuple(sorted(set(record.get("provinces") or ()))),
                   tuple(record.get("merged_from") or ()), record.get("merged_into"), splits)


def published(case: Case, merged_into: str | None = None) -> PublishedCase:
    """What the `CaseUpdated` linking publishes of ``case`` gives the index (offline benches and tests)."""
    return PublishedCase(case.case_id, case.version, tuple(case_signals(case)), provinces_of((case,)),
                         tuple(case.merged_from), merged_into,
                         tuple((e["from"], e["to"]) for e in case.history if e.get("action") == "SPLIT"))


class SuggestingCore:
    """The index and what it needs beside it, over a key → text store (the stage's state)."""

    def __init__(self, store: LinkStore, index: SuggestionIndex | None = None) -> None:
        self.store = store
        self.index = index or SuggestionIndex(store)

    # -- what is kept per case ---------------------------------------------------------------------------

    def _held(self, case_id: str) -> tuple[int, tuple[str, ...]] | None:
        text = self.store.get(f"sc:{case_id}")
        if text is None:
            return None
        doc = json.loads(text)
        return int(doc["v"]), tuple(doc["p"])

    def separated(self, case_id: str) -> list[str]:
        text = self.store.get(f"sr:{case_id}")
        return [] if text is None else list(json.loads(text))

    def _separate(self, a: str, b: str) -> None:
        if a == b:
            return
        for one, other in ((a, b), (b, a)):
            current = set(self.separated(one))
            if other not in current:
                self.store.set(f"sr:{one}", dumps(sorted(current | {other})))

    def _carry_separations(self, gone: str, into: str) -> None:
        """A case merged away: whom analysts separated it from stay separated from the survivor."""
        for other in self.separated(gone):
            others = set(self.separated(other)) - {gone}
            if other != into:
                others.add(into)
                self._separate(into, other)
            if others:
                self.store.set(f"sr:{other}", dumps(sorted(others)))
            else:
                self.store.delete(f"sr:{other}")
        self.store.delete(f"sr:{gone}")

    def _merge_away(self, gone: str, into: str, *, forget: bool = True) -> bool:
        """Forget a case merged into ``into`` (from the index too, unless the caller's `index_signals` does);
        True when it was live here."""
        live = self.store.get(f"sc:{gone}") is not None
        if live:
            if forget:
                self.index.forget([gone])
            self.store.delete(f"sc:{gone}")
        self._carry_separations(gone, into)
        return live

    # -- records -------------------------------------------------------------------------------------------

    def on_case(self, case: PublishedCase) -> list[Review]:
        """Index a published case; the suggestions it gives now (best first), marked as made."""
        if case.merged_into is not None:
            self._merge_away(case.case_id, case.merged_into)
            self.store.set(f"sg:{case.case_id}", f"={case.merged_into}")
            return []
        mark = self.store.get(f"sg:{case.case_id}")
        if mark is not None and mark.startswith("~"):
            return []  # an earlier record of a case the survivor already absorbed: its own partition is behind
        held = self._held(case.case_id)
        if mark is None and held is not None and case.version <= held[0]:
            return []  # read before (a record is never older than what it follows on its partition)
        if mark is not None:  # an id merged away comes back (a split gave a new case this id)
            self.store.delete(f"sg:{case.case_id}")
        gone = []
        for other in case.merged_from:
            if self.store.get(f"sg:{other}") is None:  # the survivor comes first: its partition is ahead
                if self._merge_away(other, case.case_id, forget=False):
                    gone.append(other)
                self.store.set(f"sg:{other}", f"~{case.case_id}")
        for first, second in case.splits:
            self._separate(first, second)
        self.store.set(f"sc:{case.case_id}", dumps({"v": case.version, "p": list(case.provinces)}))
        if len(case.weak_signals) > MAX_REVIEW_SIGNALS:
            # Too broad to review: a case this wide (a hub identifier joined leads about many people) shares a
            # blocking value with nearly every case, and re-indexing it costs O(its signals) for each lead it gains.
            # Out of the index until an analyst's split narrows it (the next record indexes it again).
            wide = [case.case_id] if self.index.signals(case.case_id) is not None else []
            if wide or gone:
                self.index.forget([*gone, *wide])
            return []
        if not self.index.index_signals(case.case_id, list(case.weak_signals), gone):
            return []
        separated = self.separated(case.case_id)
        return self.index.review_case(case.case_id, case.version, case.provinces, separated,
                                      lambda _a, _b: False, self._held)

    def on_reject(self, case_a: str, case_b: str) -> bool:
        """An analyst's reject of a pair: never suggested again. It counts unless a case it names was merged away
        already in this view (linking refuses such a decision, `LINK_UNKNOWN_CASE`); True when it counted."""
        if case_a == case_b or any(self.store.get(f"sg:{c}") is not None for c in (case_a, case_b)):
            return False
        self._separate(case_a, case_b)
        return True
