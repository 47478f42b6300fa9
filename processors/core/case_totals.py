"""A big case's summary kept up to date lead by lead (issue #16: one case that keeps growing).

`case_summary` reads every member of a case, and the stream summarises a case for every lead that joins it: a hub
identifier (a courier branch's phone, a placeholder typed into forms) puts thousands of leads into one case and made
each of them cost O(members). `CaseTotals` holds what the summary is made of — counts per value, and for what the
summary orders by first report, the earliest member that carries it — so that a lead joining the case, or a revision
of one of its leads, changes the totals by that lead's record alone.

The summary made from the totals equals `case_summary` of the whole case as the stream loads it (members in the
order of their ids, a new lead last), which orders members by report time with ties kept in that order. Each total
therefore keys its earliest member by (reported at, lead id), and `HotLinker` goes back to the full summary whenever
that key could give another order than the stream's: a new lead reported at the very time of a member already in
the case, a revision that takes away the earliest carrier of a value others still carry, merges and splits. Where the
totals live (in memory, next to the header text they belong to) is the stream's business: a store that offers
``take_hot``/``keep_hot`` gets the quick path, any other store (offline linking) never sees it.
"""

from __future__ import annotations

import json
from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from leadbus.processors.core.linking import (
    _HANDLING_ORDER,
    _MAXED,
    _NO_FACTS,
    FACT_FIELDS,
    MAX_CASE_WAYBILLS,
    Case,
    Linker,
    LinkOutcome,
    LinkStore,
    dumps,
    read_parsed,
)

#: A case is summarised from its totals once it has this many members: below, the full summary costs about what
#: building the totals does, and most cases (one or two leads) never pay for either.
HOT_MEMBERS = 64

_SUMS = frozenset(FACT_FIELDS) - _MAXED


class _Unsummable(Exception):
    """A member the totals cannot follow (a fact no `FACT_FIELDS` names): the case is summarised in full."""


def _count(counts: dict[Any, int], value: Any) -> bool:
    """One more of ``value``; True when it is new."""
    n = counts.get(value, 0)
    counts[value] = n + 1
    return n == 0


def _uncount(counts: dict[Any, int], value: Any) -> bool:
    """One less of ``value``; True when none is left."""
    n = counts[value] - 1
    if n:
        counts[value] = n
        return False
    del counts[value]
    return True


class CaseTotals:
    """What `case_summary` makes of a case's members, kept as counts and earliest carriers (see the module)."""

    def __init__(self) -> None:
        self.ids: list[str] = []  # the members' lead ids, sorted (the header's ``members``)
        self.identifiers: list[str] = []  # the case's identifiers, sorted, and their summary items
        self.identifier_items: list[dict[str, str]] = []
        self.reported: dict[str, int] = {}
        self.first: tuple[str, str, Any] | None = None  # (reported at, lead id, suspect name)
        self.last = ""
        self.keyed: dict[str, dict[Any, list[Any]]] = {"province": {}, "handling": {}, "reporter": {}}
        self.counted: dict[str, dict[Any, int]] = {
            name: {} for name in ("category", "violation", "share_with", "country", "conduct_from", "conduct_to",
                                  "place", "maker", "use")}  # fmt: skip
        self.cross_border = self.police = 0
        self.penalties: dict[tuple[tuple[str, Any], ...], int] = {}
        self.penalty_order: list[tuple[tuple[str, Any], ...]] = []
        self.waybills: dict[str, list[Any]] = {}  # waybill → [count, (reported at, lead id, place in the lead)]
        self.waybill_order: list[tuple[str, str, int, str]] = []
        self.weak: dict[str, int] = {}
        self.weak_order: list[str] = []
        self.sums: dict[str, list[int]] = {}  # fact → [members giving it, total]
        self.maxed: dict[str, dict[int, int]] = {name: {} for name in _MAXED}
        self.bankrupt = [0, 0]  # members saying, members saying yes
        self.lost: set[Any] = set()  # earliest carriers a revision took away, not known again

    @classmethod
    def of(cls, case: Case) -> CaseTotals:
        """The totals of a whole case (its members loaded)."""
        totals = cls()
        totals.ids = sorted(case.members)
        totals.identifiers = list(case.identifiers)  # changed in place from here on: never the store's parsed list
        totals.identifier_items = [_identifier_item(key) for key in case.identifiers]
        for lead_id, member in case.members.items():
            totals._add(lead_id, member)
        return totals

    # -- a lead joins, a lead is revised --------------------------------------------------------------

    def join(self, lead_id: str, member: dict[str, Any]) -> bool:
        """Add a new member (last in the stream's order); False, the totals left as they were, when its report time
        equals a member's (the order between them is then the stream's, not the key's)."""
        if member["reported_at"] in self.reported:
            return False
        self._add(lead_id, member)
        insort(self.ids, lead_id)
        return True

    def revise(self, lead_id: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Replace a member's record; False (the totals then unusable) when the totals cannot tell the summary
        without reading the other members."""
        self._remove(lead_id, old)
        self._add(lead_id, new)
        return not self.lost

    def add_identifiers(self, keys: Sequence[str]) -> list[str]:
        """The case's identifiers with ``keys`` (the sorted union, as the linker makes it)."""
        identifiers = self.identifiers
        for key in keys:
            at = bisect_left(identifiers, key)
            if at == len(identifiers) or identifiers[at] != key:
                identifiers.insert(at, key)
                self.identifier_items.insert(at, _identifier_item(key))
        return identifiers

    def _keyed_add(self, kind: str, value: Any, key: Any) -> None:
        entries = self.keyed[kind]
        entry = entries.get(value)
        if entry is None:
            entries[value] = [1, key]
            return
        entry[0] += 1
        if key < entry[1]:
            entry[1] = key
            self.lost.discard((kind, value))
        elif (kind, value) in self.lost and key == entry[1]:
            self.lost.discard((kind, value))

    def _keyed_remove(self, kind: str, value: Any, key: Any) -> None:
        entries = self.keyed[kind]
        entry = entries[value]
        entry[0] -= 1
        if not entry[0]:
            del entries[value]
        elif entry[1] == key:  # the earliest carrier left: who is next is known only from the others
            self.lost.add((kind, value))

    def _add(self, lead_id: str, m: dict[str, Any]) -> None:
        reported = m["reported_at"]
        key = (reported, lead_id)
        _count(self.reported, reported)
        first = self.first
        if first is None or key <= first[:2]:  # equal: the same member, revised at the same time
            self.first = (reported, lead_id, m["name"])
            self.lost.discard("first")
        if reported >= self.last:
            self.last = reported
            self.lost.discard("last")
        province = m["suspect_province"]
        if province:
            self._keyed_add("province", province, key)
        self._keyed_add("handling", m["handling"], key)
        self._keyed_add("reporter", (m["agency"], m["province"]), key)
        counted = self.counted
        _count(counted["category"], m["category"])
        _count(counted["violation"], m["violation"])
        for value in m["share_with"]:
            _count(counted["share_with"], value)
        for value in m["countries"]:
            _count(counted["country"], value)
        self.cross_border += bool(m["cross_border"])
        self.police += bool(m.get("police_measures_needed"))
        if conduct_from := m.get("conduct_from"):
            _count(counted["conduct_from"], conduct_from)
        if conduct_to := m.get("conduct_to"):
            _count(counted["conduct_to"], conduct_to)
        for p in m.get("prior_penalties", ()):
            penalty = tuple(sorted(p.items()))
            if _count(self.penalties, penalty):
                insort(self.penalty_order, penalty)
        for at, waybill in enumerate(m.get("waybills", ())):
            self._waybill_add(waybill, (reported, lead_id, at))
        for signal in m.get("weak", ()):
            if _count(self.weak, signal):
                insort(self.weak_order, signal)
        if reporting := m.get("province"):
            _count(counted["place"], reporting)
        if province:
            _count(counted["place"], province)
        for name, value in m.get("facts", {}).items():
            if name == "rights_holder_bankrupt":
                self.bankrupt[0] += 1
                self.bankrupt[1] += bool(value)
            elif name == "labels_made_by":
                if value != "UNKNOWN":
                    _count(counted["maker"], str(value))
            elif name == "mark_use":
                if value != "UNKNOWN":
                    _count(counted["use"], str(value))
            elif name in _MAXED:
                _count(self.maxed[name], int(value))
            elif name in _SUMS:
                total = self.sums.setdefault(name, [0, 0])
                total[0] += 1
                total[1] += int(value)
            else:
                raise _Unsummable(name)

    def _remove(self, lead_id: str, m: dict[str, Any]) -> None:
        reported = m["reported_at"]
        key = (reported, lead_id)
        gone = _uncount(self.reported, reported)
        if self.first is not None and self.first[:2] == key:
            self.lost.add("first")
        if gone and reported == self.last:
            self.lost.add("last")
        province = m["suspect_province"]
        if province:
            self._keyed_remove("province", province, key)
        self._keyed_remove("handling", m["handling"], key)
        self._keyed_remove("reporter", (m["agency"], m["province"]), key)
        counted = self.counted
        _uncount(counted["category"], m["category"])
        _uncount(counted["violation"], m["violation"])
        for value in m["share_with"]:
            _uncount(counted["share_with"], value)
        for value in m["countries"]:
            _uncount(counted["country"], value)
        self.cross_border -= bool(m["cross_border"])
        self.police -= bool(m.get("police_measures_needed"))
        if conduct_from := m.get("conduct_from"):
            _uncount(counted["conduct_from"], conduct_from)
        if conduct_to := m.get("conduct_to"):
            _uncount(counted["conduct_to"], conduct_to)
        for p in m.get("prior_penalties", ()):
            penalty = tuple(sorted(p.items()))
            if _uncount(self.penalties, penalty):
                self.penalty_order.pop(bisect_left(self.penalty_order, penalty))
        for at, waybill in enumerate(m.get("waybills", ())):
            self._waybill_remove(waybill, (reported, lead_id, at))
        for signal in m.get("weak", ()):
            if _uncount(self.weak, signal):
                self.weak_order.pop(bisect_left(self.weak_order, signal))
        if reporting := m.get("province"):
            _uncount(counted["place"], reporting)
        if province:
            _uncount(counted["place"], province)
        for name, value in m.get("facts", {}).items():
            if name == "rights_holder_bankrupt":
                self.bankrupt[0] -= 1
                self.bankrupt[1] -= bool(value)
            elif name == "labels_made_by":
                if value != "UNKNOWN":
                    _uncount(counted["maker"], str(value))
            elif name == "mark_use":
                if value != "UNKNOWN":
                    _uncount(counted["use"], str(value))
            elif name in _MAXED:
                _uncount(self.maxed[name], int(value))
            elif name in _SUMS:
                total = self.sums[name]
                total[0] -= 1
                total[1] -= int(value)
            else:
                raise _Unsummable(name)

    def _waybill_add(self, waybill: str, key: tuple[str, str, int]) -> None:
        entry = self.waybills.get(waybill)
        if entry is None:
            self.waybills[waybill] = [1, key]
            insort(self.waybill_order, (*key, waybill))
            return
        entry[0] += 1
        if key < entry[1] or (("waybill", waybill) in self.lost and key == entry[1]):
            if key < entry[1]:
                order = self.waybill_order
                order.pop(bisect_left(order, (*entry[1], waybill)))
                insort(order, (*key, waybill))
                entry[1] = key
            self.lost.discard(("waybill", waybill))

    def _waybill_remove(self, waybill: str, key: tuple[str, str, int]) -> None:
        entry = self.waybills[waybill]
        entry[0] -= 1
        if not entry[0]:
            del self.waybills[waybill]
            order = self.waybill_order
            order.pop(bisect_left(order, (*entry[1], waybill)))
        elif entry[1] == key:
            self.lost.add(("waybill", waybill))

    # -- the summary -----------------------------------------------------------------------------------

    def summary(self, case: Case) -> tuple[dict[str, Any], list[str], list[str]]:
        """`case_summary` of the case, and the sorted weak signals and places `CaseUpdated` v5 adds."""
        assert self.first is not None and not self.lost
        counted = self.counted
        provinces = self.keyed["province"]
        province = None
        if provinces:  # the most members; a tie to the one reported first
            province = min(provinces.items(), key=lambda item: (-item[1][0], item[1][1]))[0]
        # the highest rank; a tie (only among unknown values) to the one reported first
        handling = min(self.keyed["handling"].items(),
                       key=lambda item: (-_HANDLING_ORDER.get(item[0], 2), item[1][1]))[0]
        reporters = sorted(self.keyed["reporter"].items(), key=lambda item: item[1][1])
        facts: dict[str, Any] = _NO_FACTS.copy()
        for name, (given, total) in self.sums.items():
            if given:
                facts[name] = total
        for name, values in self.maxed.items():
            if values:
                facts[name] = max(values)
        if self.bankrupt[0]:
            facts["rights_holder_bankrupt"] = self.bankrupt[1] > 0
        makers, uses = counted["maker"], counted["use"]
        facts["labels_made_by"] = next(iter(makers)) if len(makers) == 1 else None
        facts["mark_use"] = next(iter(uses)) if len(uses) == 1 else ("ANY" if uses else None)
        summary = {
            "case_id": case.case_id,
            "version": case.version,
            "members": list(self.ids),
            "reporters": [{"agency": a, "province": p} for (a, p), _ in reporters],
            "identifiers": list(self.identifier_items),
            "suspect_name": self.first[2],
            "suspect_province": province,
            "categories": sorted(counted["category"]),
            "violations": sorted(counted["violation"]),
            "facts": facts,
            "first_reported_at": self.first[0],
            "last_reported_at": self.last,
            "handling": handling,
            "share_with": sorted(counted["share_with"]),
            "cross_border": self.cross_border > 0,
            "countries": sorted(counted["country"]),
            "merged_from": list(case.merged_from),
            "conduct_from": min(counted["conduct_from"]) if counted["conduct_from"] else None,
            "conduct_to": max(counted["conduct_to"]) if counted["conduct_to"] else None,
            "prior_penalties": [dict(p) for p in self.penalty_order],
            "police_measures_needed": self.police > 0,
            "waybills": [entry[3] for entry in self.waybill_order[:MAX_CASE_WAYBILLS]],
        }
        return summary, list(self.weak_order), sorted(counted["place"])


def _identifier_item(key: str) -> dict[str, str]:
    kind, value = key.split(":", 1)
    return {"kind": kind, "value": value}


@dataclass
class HotCase:
    """A case header as last written (``text``) and the case it holds, with its totals (`Case.totals`)."""

    text: str
    case: Case


class HotStore(LinkStore, Protocol):
    def take_hot(self, case_id: str) -> HotCase | None:
        """The case's `HotCase`, taken out (the caller owns it), when it belongs to the header stored now."""

    def keep_hot(self, case_id: str, hot: HotCase) -> None:
        """Keep it for the next lead, once this one's writes are kept."""


class HotLinker(Linker):
    """`Linker` whose big cases are summarised from their totals (see the module); over a `HotStore`."""

    store: HotStore

    def __init__(self, store: HotStore) -> None:
        super().__init__(store)

    def link_member(self, lead_id: str, keys: list[str], member: dict[str, Any],
                    seen: tuple[str | None, set[str]] | None = None) -> LinkOutcome:
        store = self.store
        known, found = seen = self.found(lead_id, keys) if seen is None else seen
        if len(found) == 1:
            (case_id,) = found
            hot = store.take_hot(case_id)
            if hot is not None:
                outcome = self._join(hot.case, lead_id, keys, member, known is not None)
                if outcome is not None:
                    return outcome
        outcome = super().link_member(lead_id, keys, member, seen)  # a failed quick join wrote nothing
        case = outcome.case
        if not outcome.absorbed and len(case.members) >= HOT_MEMBERS:
            try:
                totals = CaseTotals.of(case)
            except _Unsummable:
                return outcome
            text = store.get(f"c:{case.case_id}")
            assert text is not None
            held = Case(case.case_id, case.seq, {}, totals.identifiers, case.merged_from, case.version, case.history,
                        case.separated, totals=totals)
            store.keep_hot(case.case_id, HotCase(text, held))
        return outcome

    def _join(self, case: Case, lead_id: str, keys: list[str], member: dict[str, Any],
              revision: bool) -> LinkOutcome | None:
        """The lead into its hot case by the totals, writing what `Linker.link` writes; None: link it in full."""
        totals: CaseTotals = case.totals
        store = self.store
        try:
            if revision:
                old = read_parsed(store, f"m:{lead_id}", json.loads)
                if old is None or not totals.revise(lead_id, old, member):
                    return None
            elif not totals.join(lead_id, member):
                return None
        except _Unsummable:
            return None
        case.identifiers = totals.add_identifiers(keys)
        case.version += 1
        for key in keys:
            if store.get(f"i:{key}") is None:
                store.set(f"i:{key}", case.case_id)
        store.set(f"l:{lead_id}", case.case_id)
        store.set(f"m:{lead_id}", dumps(member))
        text = case.header_json()
        store.set(f"c:{case.case_id}", text)
        store.keep_hot(case.case_id, HotCase(text, case))
        return LinkOutcome(case, ())
