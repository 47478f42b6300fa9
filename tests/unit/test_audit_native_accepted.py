"""The C reader of a trusted run's usual accepted leads (`leadbus.audit.native_runs`: `RunReader.accepted` and
`accepted_tally`) against the Python paths it stands in for (`AcceptedLeads.check_run` and `tally_accepted` with
`_RUN_READER` None): over hostile runs of `leadbus.leads.accepted` (leads accepted again, revisions going back or
skipped, records untrusted, decoded, picked already, of another writer, tombstones, other topics, agency seal headers,
damaged bodies, pickers that raise or read odd values, more publishers than the C tally holds at once), with and
without a cut's tail noting the leads, with and without sources kept: the same findings in the same order, the same
revisions and notes, the same records' slots and the same summary (its keys in the same order)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from leadbus.audit import native_runs
from leadbus.audit import verification as verification_module
from leadbus.audit.verification import ACCEPTED_REVISION, AcceptedLeads, Mark, ReplayRecord, _plain, tally_accepted
from leadbus.avro import decode, encode
from leadbus.topics import CASES, LEADS_ACCEPTED
from tests.audit_helpers import cut_runs, with_and_without_run_reader
from tests.unit.test_audit_vouched import CATALOG, STAMP, streams

ACCEPTED = CATALOG.latest("cn.leadbus.LeadAccepted")
CASE_UPDATED = CATALOG.latest("cn.leadbus.CaseUpdated")


def test_the_accepted_run_reader_is_built_and_in_use() -> None:
    assert native_runs.NATIVE, "leadbus.audit._records is not built: run `make install`"
    assert hasattr(verification_module._RUN_READER, "accepted")
    assert hasattr(verification_module._RUN_READER, "accepted_tally")


def _events() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    accepted, cases, _ = streams()
    return ([decode(CATALOG, value)[1] for _, _, _, value, _ in accepted],
            [decode(CATALOG, value)[1] for _, _, _, value, _ in cases])


_AGENCIES = [f"AG{i}" for i in range(40)] + ["A.B", "A", "海关", ""]
_PROVINCES = ["33", "C", "B.C", "省", ""]


def _hostile(rng: random.Random, events: list[dict[str, Any]], cases: list[dict[str, Any]]) -> list[ReplayRecord]:
    leads = [f"LEAD-{i:03d}" for i in range(rng.randrange(1, 30))]
    revision: Counter[str] = Counter()
    records = []
    for offset in range(rng.randrange(1, 120)):
        lead = rng.choice(leads)
        revision[lead] += 1
        event = dict(rng.choice(events))
        event["lead"] = dict(event["lead"], lead_id=lead, revision=revision[lead])
        if rng.random() < 0.3:  # more publishers than the C tally holds at once, two naming the same "A.B.C", UTF-8
            event["lead"]["publisher"] = dict(event["lead"]["publisher"], agency=rng.choice(_AGENCIES),
                                              province=rng.choice(_PROVINCES))
        trick = rng.random()
        if trick < 0.08:
            event["lead"]["revision"] -= rng.choice([1, 2, revision[lead]])  # accepted again, or going back
        elif trick < 0.12:
            event["lead"]["revision"] += rng.choice([1, 5])
        elif trick < 0.14:
            event["lead"]["revision"] = rng.choice([2**31 - 1, -(2**31)])
        elif trick < 0.16:
            event["digest"] = "0" * 64  # the same revision with other content, when accepted again
        if trick > 0.98:
            value: bytes | None = None
        elif trick > 0.96:
            value = encode(CASE_UPDATED, dict(rng.choice(cases)))  # another writer
        else:
            value = encode(ACCEPTED, event)
            if rng.random() < 0.04:
                value = value[:rng.randrange(len(value))]  # cut
        topic = LEADS_ACCEPTED if rng.random() > 0.02 else CASES
        headers: list[tuple[str, bytes | None]] = []
        if rng.random() < 0.05:
            headers = [("leadbus-publisher", b"SAMR.33"), ("leadbus-seq", b"1")]
        elif rng.random() < 0.05:
            headers = [("x-other", b"1")]
        record = ReplayRecord(topic, 0, offset, STAMP, lead.encode(), value, headers, CATALOG)
        record.trusted = rng.random() > 0.05
        if not headers or rng.random() < 0.5:
            record._sealed = False if not headers or headers[0][0] == "x-other" else None
        if value is not None and rng.random() < 0.03:
            _ = record.event  # decoded already
        elif value is not None and rng.random() < 0.03:
            _ = record.schema  # its writer known
        elif value is not None and rng.random() < 0.03:
            record.picked(rng.choice([ACCEPTED_REVISION, verification_module.ACCEPTED_HEAD,
                                      verification_module._PUBLISHER_HEAD]))  # picked already
        records.append(record)
    return records


def _checked(seed: int, made: tuple[list[dict[str, Any]], list[dict[str, Any]]], noted: bool, sources: bool,
             ) -> tuple[Any, ...]:
    rng = random.Random(seed)
    records = _hostile(rng, *made)
    verifier, tally = AcceptedLeads(), Counter[Any]()
    verifier.trust_stage_seals, verifier.keep_sources = True, sources
    verifier.noted = [] if noted else None
    found, sealed = [], 0
    for run in cut_runs(records, rng):
        found.append([(i, list(judged)) for i, judged in verifier.check_run(run)])
        sealed += tally_accepted(run, tally)
    revisions = {k: (r, d, _plain(m)) for k, (r, d, m) in verifier._revisions.items()}
    state = [(r._schema, r._picked, r._decoded, r._sealed) for r in records]
    return found, revisions, verifier.noted, verifier._sources, state, tally, list(tally), sealed


@pytest.mark.parametrize(("noted", "sources"), [(False, False), (True, False), (False, True)])
def test_the_c_reader_judges_and_counts_hostile_accepted_runs_as_the_python_paths(noted: bool, sources: bool) -> None:
    made = _events()
    rng = random.Random(1616)
    findings = counted = 0
    for _ in range(200):
        seed = rng.randrange(2**32)
        fast, alone = with_and_without_run_reader(_checked, seed, made, noted, sources)
        assert fast == alone
        findings += sum(len(f) for run in fast[0] for _, f in run)
        counted += sum(fast[5].values())
    assert counted > 2000, counted
    assert noted or findings > 200, findings


def test_a_picker_that_raises_or_reads_oddly_is_judged_as_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Picks that raise, read nothing, or read a lead id, agency or digest that is no string, a revision that is no
    int (a bool, a str), a head too short: the C reader stops there and the Python path reads what was kept."""
    from leadbus.audit import picker as picker_module

    real = picker_module.picker(ACCEPTED, ACCEPTED_REVISION)
    assert real is not None
    odd: list[Any] = [None, ("L", True, "a", "b", "d"), ("L", "1", "a", "b", "d"), (1, 1, "a", "b", "d"),
                      ("L", 1, None, "b", "d"), ("L", 1, "a", "b", None), ("L", 1, "a"), [("L", 1, "a", "b", "d")]]

    def pick(value: bytes) -> Any:
        choice = value[-1] % 12
        if choice < len(odd):
            return odd[choice]
        if choice == len(odd):
            raise ValueError("unread")
        return real(value)

    made = _events()
    for fingerprint, paths in list(picker_module._PICKERS):
        if paths is ACCEPTED_REVISION:
            monkeypatch.setitem(picker_module._PICKERS, (fingerprint, paths), pick)
    monkeypatch.setattr(verification_module, "_LAST_PICKER", [None, None, None])
    monkeypatch.setitem(picker_module._PICKERS, (ACCEPTED.fingerprint, ACCEPTED_REVISION), pick)
    rng = random.Random(77)
    for _ in range(100):
        seed = rng.randrange(2**32)
        fast, alone = with_and_without_run_reader(_checked, seed, made, rng.random() < 0.3, False)
        assert fast == alone


def _carried(seed: int) -> tuple[Any, ...]:
    """A cut's tail's notes (leads met in the head too, accepted again, going back, rows of odd shapes) carried over
    after the head's (`boundary._accepted`)."""
    from leadbus.audit.boundary import _accepted

    rng = random.Random(seed)
    leads: list[Any] = [f"LEAD-{i:03d}" for i in range(rng.randrange(1, 40))]
    head, tail = AcceptedLeads(), AcceptedLeads()
    for offset in range(rng.randrange(0, 30)):
        head.revision([], rng.choice(leads), rng.randrange(1, 4), rng.choice("ab"), Mark(LEADS_ACCEPTED, 0, offset))
    tail.noted = []
    for offset in range(100, 100 + rng.randrange(0, 120)):
        lead = rng.choice(leads) if rng.random() > 0.02 else rng.choice([7, None, ("x",)])
        row: tuple[Any, ...] = (lead, rng.randrange(1, 4), rng.choice("ab"), rng.choice([0, 0, 0, 1]), offset)
        if rng.random() < 0.01:
            row = row[:4]
        tail.noted.append(row)
    add: list[Any] = []
    carry = _accepted(head, tail, add)
    assert carry is not None
    try:
        carry()
    except (TypeError, ValueError) as exc:  # a row of another shape: raised at the same row either way
        add.append(repr(exc))
    return {k: (r, d, _plain(m)) for k, (r, d, m) in head._revisions.items()}, add


def test_the_c_reader_carries_a_tails_notes_over_as_the_python_path() -> None:
    rng = random.Random(2626)
    findings = 0
    for _ in range(400):
        fast, alone = with_and_without_run_reader(_carried, rng.randrange(2**32))
        assert fast == alone
        findings += len(fast[1])
    assert findings > 400, findings


def _tallied(events: list[dict[str, Any]], publishers: int, seed: int) -> list[tuple[Any, Any]]:
    """Runs of accepted leads of `publishers` publishers (past the C tally's table: it starts over), into a summary
    holding a count of another type already: its items, in order."""
    rng = random.Random(seed)
    records = []
    for offset in range(publishers + 300):
        event = dict(rng.choice(events))
        which = offset if offset < publishers else rng.randrange(publishers)
        publisher = dict(event["lead"]["publisher"], agency=f"AG{which % 97}", province=f"{which // 97}")
        event["lead"] = dict(event["lead"], lead_id=f"LEAD-{offset}", revision=1, publisher=publisher)
        record = ReplayRecord(LEADS_ACCEPTED, 0, offset, STAMP, b"k", encode(ACCEPTED, event), [], CATALOG)
        record.trusted, record._sealed = True, False
        records.append(record)
    rng.shuffle(records)
    verifier, tally = AcceptedLeads(), Counter[Any]()
    verifier.trust_stage_seals, verifier.keep_sources = True, False
    tally[("cn.leadbus.LeadAccepted", "AG1.0")] = 0.5  # type: ignore[assignment]
    for run in cut_runs(records, rng, cuts=40):
        verifier.check_run(run)
        tally_accepted(run, tally)
    return list(tally.items())


def test_the_c_tally_counts_more_publishers_than_it_holds_as_the_python_path() -> None:
    events = _events()[0]
    fast, alone = with_and_without_run_reader(_tallied, events, 4500, 5)
    assert fast == alone
    assert len(fast) > 4096, len(fast)  # the table started over
