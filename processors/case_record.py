"""`CaseUpdated` bytes written straight from a case's members (issue #16).

The stream summarises and encodes a case for every lead that joins it. Building the summary as a mapping
(`case_summary`), turning its texts into times (`case_updated_record`) and walking that mapping again in the compiled
writer cost about as much as linking the lead; this does the summary's one pass over the members and writes each
field's bytes as it has them. Byte for byte what ``encode(schema, case_updated_record(case, now, merged_into))``
gives (a unit test holds it to that over simulated traffic and the golden corpus); a case with analysts' decisions
(`Case.history`, rare) and a `CaseUpdated` schema other than the one this was written for take that path.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from leadbus.avro import SchemaEntry, encode
from leadbus.avro.codec import MAGIC
from leadbus.avro.fastwrite import days_since_epoch, timestamp_millis, write_long
from leadbus.processors.core.linking import (
    _HANDLING_ORDER,
    FACT_FIELDS,
    MAX_CASE_WAYBILLS,
    Case,
    aggregate_facts,
    case_summary,
)

#: The `CaseUpdated` fields, in order, this writer writes (v5); another schema is written the generic way.
_FIELDS = (
    "case_id", "version", "members", "reporters", "identifiers", "suspect_name", "suspect_province", "categories",
    "violations", "facts", "first_reported_at", "last_reported_at", "handling", "share_with", "cross_border",
    "countries", "merged_from", "merged_into", "updated_at", "conduct_from", "conduct_to", "prior_penalties",
    "police_measures_needed", "link_history", "waybills", "weak_signals", "provinces",
)  # fmt: skip
_FACTS = (*FACT_FIELDS, "rights_holder_bankrupt", "labels_made_by", "mark_use")


def _fits(entry: SchemaEntry) -> bool:
    fields = entry.parsed["fields"]
    facts = next(f["type"] for f in fields if f["name"] == "facts")
    return tuple(f["name"] for f in fields) == _FIELDS and tuple(f["name"] for f in facts["fields"]) == _FACTS


def _string(out: bytearray, text: str) -> None:
    data = text.encode()
    size = len(data)
    if size < 64:
        out.append(size << 1)
    else:
        write_long(out, size)
    out += data


def _count(out: bytearray, size: int) -> None:
    if size < 64:
        out.append(size << 1)
    else:
        write_long(out, size)


def _strings(out: bytearray, items: list[str]) -> None:
    if items:
        _count(out, len(items))
        for text in items:
            _string(out, text)
    out.append(0)


def _reported_at(member: dict[str, Any]) -> str:
    return member["reported_at"]  # type: ignore[no-any-return]


def case_updated_record(case: Case, now: datetime, merged_into: str | None = None) -> dict[str, Any]:
    # v5: what the suggesting stage indexes, and the regions that review it (`case_signals` and `provinces_of`),
    # gathered in the summary's pass over the members (the stream summarises a case for every lead that joins it)
    signals: set[str] = set()
    places: set[str] = set()
    summary: dict[str, Any] = case_summary(case, signals, places)
    summary["first_reported_at"] = datetime.fromisoformat(summary["first_reported_at"])
    summary["last_reported_at"] = datetime.fromisoformat(summary["last_reported_at"])
    if first := summary["conduct_from"]:
        summary["conduct_from"] = date.fromisoformat(first)
    if last := summary["conduct_to"]:
        summary["conduct_to"] = date.fromisoformat(last)
    if penalties := summary["prior_penalties"]:
        summary["prior_penalties"] = [{**p, "decided_on": date.fromisoformat(p["decided_on"])} for p in penalties]
    summary["merged_into"] = merged_into
    summary["updated_at"] = now
    summary["link_history"] = [
        {"decision_id": e["decision_id"], "action": e["action"], "agency": e["agency"], "province": e["province"],
         "user": e["user"], "role": e["role"], "reason": e["reason"],
         "decided_at": datetime.fromisoformat(e["decided_at"]), "suggestion_id": e.get("suggestion_id"),
         "merged": e.get("merged"), "leads": e.get("leads", []), "split_from": e.get("from"), "split_to": e.get("to")}
        for e in case.history] if case.history else []
    summary["weak_signals"] = sorted(signals)
    summary["provinces"] = sorted(places)
    return summary


class CaseUpdatedWriter:
    """Writes `CaseUpdated` records of ``entry`` (the catalog's latest) from cases."""

    def __init__(self, entry: SchemaEntry) -> None:
        self.entry = entry
        self.direct = _fits(entry)
        self.header = MAGIC + entry.fingerprint

    def __call__(self, case: Case, now: datetime, merged_into: str | None = None) -> bytes:
        if not self.direct or case.history:
            return encode(self.entry, case_updated_record(case, now, merged_into))
        return self._write(case, now, merged_into)

    def _write(self, case: Case, now: datetime, merged_into: str | None) -> bytes:
        # the pass of `case_summary` (same ties: the first seen wins), its values written as they are gathered
        values = case.members.values()
        members = list(values) if len(values) == 1 else sorted(values, key=_reported_at)
        if not members:
            raise ValueError(f"case {case.case_id} has no members")
        provinces: dict[str, int] = {}
        reporters: dict[tuple[str, str], None] = {}
        categories: set[str] = set()
        violations: set[str] = set()
        share_with: set[str] = set()
        countries: set[str] = set()
        penalties: set[tuple[tuple[str, Any], ...]] = set()
        waybills: dict[str, None] = {}
        signals: set[str] = set()
        places: set[str] = set()
        handling, rank = "", -1
        conduct_from = conduct_to = None
        cross_border = police = False
        for m in members:
            province = m["suspect_province"]
            if province:
                provinces[province] = provinces.get(province, 0) + 1
                places.add(province)
            this = m["handling"]
            this_rank = _HANDLING_ORDER.get(this, 2)
            if this_rank > rank:
                handling, rank = this, this_rank
            reporters[(m["agency"], m["province"])] = None
            categories.add(m["category"])
            violations.add(m["violation"])
            share_with.update(m["share_with"])
            countries.update(m["countries"])
            if m["cross_border"]:
                cross_border = True
            first = m.get("conduct_from")
            if first and (conduct_from is None or first < conduct_from):
                conduct_from = first
            last = m.get("conduct_to")
            if last and (conduct_to is None or last > conduct_to):
                conduct_to = last
            for p in m.get("prior_penalties", ()):
                penalties.add(tuple(sorted(p.items())))
            if m.get("police_measures_needed"):
                police = True
            for waybill in m.get("waybills", ()):
                waybills[waybill] = None
            signals.update(m.get("weak", ()))
            if reporting := m.get("province"):
                places.add(reporting)

        out = bytearray(self.header)
        _string(out, case.case_id)
        version = case.version
        if 0 <= version < 64:
            out.append(version << 1)
        else:
            write_long(out, version)
        _strings(out, sorted(case.members))
        _count(out, len(reporters))
        for agency, reporting in reporters:
            _string(out, agency)
            _string(out, reporting)
        out.append(0)
        identifiers = case.identifiers
        if identifiers:
            _count(out, len(identifiers))
            for key in identifiers:
                kind, value = key.split(":", 1)
                _string(out, kind)
                _string(out, value)
        out.append(0)
        _string(out, members[0]["name"])
        if provinces:
            out.append(2)
            _string(out, max(provinces, key=provinces.__getitem__))
        else:
            out.append(0)
        _strings(out, sorted(categories))
        _strings(out, sorted(violations))
        facts = aggregate_facts(members)
        for name in FACT_FIELDS:
            number = facts[name]
            if number is None:
                out.append(0)
            else:
                out.append(2)
                write_long(out, number)
        bankrupt = facts["rights_holder_bankrupt"]
        if bankrupt is None:
            out.append(0)
        else:
            out += b"\x02\x01" if bankrupt else b"\x02\x00"
        for name in ("labels_made_by", "mark_use"):
            text = facts[name]
            if text is None:
                out.append(0)
            else:
                out.append(2)
                _string(out, text)
        write_long(out, timestamp_millis(datetime.fromisoformat(members[0]["reported_at"])))
        write_long(out, timestamp_millis(datetime.fromisoformat(members[-1]["reported_at"])))
        _string(out, handling)
        _strings(out, sorted(share_with))
        out.append(1 if cross_border else 0)
        _strings(out, sorted(countries))
        _strings(out, list(case.merged_from))
        if merged_into is None:
            out.append(0)
        else:
            out.append(2)
            _string(out, merged_into)
        write_long(out, timestamp_millis(now))
        for day in (conduct_from, conduct_to):
            if day:
                out.append(2)
                write_long(out, days_since_epoch(date.fromisoformat(day)))
            else:
                out.append(0)
        if penalties:
            _count(out, len(penalties))
            for penalty in sorted(penalties):
                found = dict(penalty)
                _string(out, found["kind"])
                write_long(out, days_since_epoch(date.fromisoformat(found["decided_on"])))
                _string(out, found["decided_by"])
                _string(out, found["violation"])
        out.append(0)
        out.append(1 if police else 0)
        out.append(0)  # link_history: a case with some is written the generic way
        _strings(out, list(waybills)[:MAX_CASE_WAYBILLS])
        _strings(out, sorted(signals))
        _strings(out, sorted(places))
        return bytes(out)
