"""A replay of `leadbus.leads.accepted` cut in two (head here, tail in another process) finds what one process finds.

The sealed accepted stream of `test_audit_vouched` (intake's LeadAccepted sealed in transactions, the lanes signed
per transaction) is tampered with right at the cut and around it — a record dropped, swapped, replayed, altered, its
seal or signature removed, its timestamp moved back or far ahead, a lead's revision accepted again — and replayed
through the replay's loop as one process does and as a cut replay does: the head with the parent's verifiers, the tail
with fresh ones that note what `boundary.join` needs (pickled as they come back from the tail's process), then
joined, or the tail read again by the parent where `join` cannot judge it. Findings and summary must be the same.
"""

from __future__ import annotations

import random
from array import array
from collections import Counter
from typing import Any

from leadbus.audit import replay as replay_module
from leadbus.audit.boundary import asked, can_cut, head_hashes, join, note_tail, settle_tail
from leadbus.audit.processes import handed, taken
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import AcceptedLeads, Finding, ReplayRecord, Verifier, standard_verifiers
from leadbus.signing import KeyRegistry
from leadbus.stage_seals import SEQUENCE_HEADER, SIGNATURE_HEADER, STAGE_SEAL_NAMES, StageSealer
from leadbus.topics import LEADS_ACCEPTED
from tests.unit.test_audit_vouched import CATALOG, INTAKE_KEY, STAMP, Row, altered, streams

#: (row, timestamp in ms) per record, in offset order
Stamped = list[tuple[Row, int]]


def verifiers(registry: KeyRegistry, *, sources: bool = False) -> list[Verifier]:
    """As a replay of the accepted topic alone sets them up (no intake topic read: no source to check)."""
    stage = StageSealVerifier(registry)
    stage.vouching = True
    out: list[Verifier] = [*standard_verifiers(), BusSealVerifier(registry), stage]
    for verifier in out:
        if isinstance(verifier, AcceptedLeads):
            verifier.trust_stage_seals = True
            verifier.keep_sources = sources
    return out


def records(rows: Stamped, start: int = 0) -> list[ReplayRecord]:
    return [ReplayRecord(row[0], row[1], start + i, ms, row[2], row[3], row[4], CATALOG)
            for i, (row, ms) in enumerate(rows)]


def read(rows: list[ReplayRecord], checks: list[Verifier], report: replay_module.ReplayReport) -> None:
    replay_module._loop(rows, checks, None, None, None, report, None, None)


def ordered(report: replay_module.ReplayReport) -> tuple[list[Finding], Counter[Any]]:
    report.findings.sort(key=lambda f: (f.topic, f.partition, f.offset, f.check, f.message))
    return report.findings, report.by_type_publisher


def one_process(rows: Stamped, registry: KeyRegistry, *, sources: bool = False) -> tuple[list[Finding], Counter[Any]]:
    checks = verifiers(registry, sources=sources)
    report = replay_module.ReplayReport("one")
    read(records(rows), checks, report)
    replay_module.finish(checks, report)
    return ordered(report)


def cut_in_two(rows: Stamped, registry: KeyRegistry, at: int) -> tuple[list[Finding], Counter[Any], bool]:
    """As `replay._run_cut`: (findings, summary, whether `join` judged the tail without reading it again)."""
    head, tail = verifiers(registry), verifiers(registry)
    assert can_cut(head, LEADS_ACCEPTED)
    note_tail(tail)
    report, tail_report = replay_module.ReplayReport("head"), replay_module.ReplayReport("tail")
    read(records(rows[:at]), head, report)
    read(records(rows[at:], at), tail, tail_report)
    settled = settle_tail(tail)  # its accepted leads judged from the cut on, their notes kept for the parent to ask
    tail = taken(handed(tail))  # as it comes back from the tail's process
    leads = taken(handed(settled[0])) if settled is not None else None
    own = head_hashes(head) if at % 2 else None  # made while waiting for the tail, or by `join` itself
    joined = join(head, tail, tail_report.findings, leads,
                  lambda hashes: None if settled is None else taken(handed(asked(settled[1], hashes))), own)
    if joined is None:
        read(records(rows[at:], at), head, report)
    else:
        report.findings.extend(joined)
        report.by_type_publisher.update(tail_report.by_type_publisher)
    replay_module.finish(head, report)
    findings, tally = ordered(report)
    return findings, tally, joined is not None


def stamped(rows: tuple[Row, ...]) -> Stamped:
    return [(row, STAMP + 1000 * i) for i, row in enumerate(rows)]


def tamper_at(rng: random.Random, rows: Stamped, i: int) -> str:
    """One tampering of the record at `i` (or between it and the next); says which."""
    (topic, partition, key, value, headers), ms = rows[i]
    how = rng.choice(["drop", "swap", "replay", "replay-earlier", "alter", "unseal", "unsign", "back", "ahead",
                      "revision", "same-lead"])
    if how == "drop":
        del rows[i]
    elif how == "swap" and i + 1 < len(rows):
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    elif how == "replay":
        rows.insert(i + 1, rows[i])
    elif how == "replay-earlier":
        rows.insert(i + 1, rows[rng.randrange(0, i + 1)])
    elif how == "alter" and value:
        rows[i] = ((topic, partition, key, altered(rng, value), headers), ms)
    elif how == "unseal":
        rows[i] = ((topic, partition, key, value, [(n, v) for n, v in headers if n not in STAGE_SEAL_NAMES]), ms)
    elif how == "unsign":
        rows[i] = ((topic, partition, key, value, [(n, v) for n, v in headers if n != SIGNATURE_HEADER]), ms)
    elif how == "back":
        rows[i] = (rows[i][0], ms - rng.choice([16_000, 60_000, 3_600_000]))
    elif how == "ahead":
        rows[i] = (rows[i][0], ms + rng.choice([16_000, 3_600_000, 10**11]))
    elif how == "revision":  # an earlier lead accepted again, its seal kept (the chain breaks there)
        other = rows[rng.randrange(0, max(1, i))][0]
        rows[i] = ((topic, partition, key, other[3], headers), ms)
    else:  # an earlier record, seal and all, put in this one's place
        rows[i] = rows[rng.randrange(0, max(1, i))]
    return how


def test_an_untampered_stream_cut_anywhere_is_joined_without_reading_again() -> None:
    accepted, _, registry = streams()
    rows = stamped(accepted)
    whole = one_process(rows, registry)
    assert whole[0] == []
    for at in range(1, len(rows)):
        findings, tally, joined = cut_in_two(rows, registry, at)
        assert (findings, tally) == whole and joined, at


def test_tampering_at_the_cut_gives_the_findings_of_one_process() -> None:
    accepted, _, registry = streams()
    rng = random.Random(1405)
    joined_count = cases = 0
    hows: Counter[str] = Counter()
    for round_ in range(90):
        rows = stamped(accepted)
        at = rng.randrange(3, len(rows) - 3)
        for _ in range(rng.choice([1, 1, 2, 3])):
            hows[tamper_at(rng, rows, min(len(rows) - 2, max(0, at + rng.choice([-2, -1, -1, 0, 0, 0, 1]))))] += 1
        whole = one_process(rows, registry)
        assert any(f.failure for f in whole[0]) or True
        for cut in {at - 1, at, at + 1, rng.randrange(1, len(rows) - 1)}:
            if not 0 < cut < len(rows):
                continue
            findings, tally, joined = cut_in_two(rows, registry, cut)
            assert findings == whole[0], (round_, cut, [f for f in findings if f not in whole[0]][:3],
                                          [f for f in whole[0] if f not in findings][:3])
            assert tally == whole[1], (round_, cut)
            joined_count += joined
            cases += 1
    assert len(hows) == 11, hows
    assert joined_count > cases // 2, (joined_count, cases)  # most are judged from what the tail noted


def test_a_tail_whose_timestamps_stay_below_the_heads_past_what_it_noted_is_read_again(monkeypatch: Any) -> None:
    accepted, _, registry = streams()
    rows = stamped(accepted)
    rows[20] = (rows[20][0], STAMP + 10**10)  # far ahead: every record after it steps back
    monkeypatch.setattr(replay_module, "_HOLD_MAX", 20_000)
    from leadbus.audit.verification import PartitionOrder

    whole = one_process(rows, registry)
    assert sum(f.check == "TIMESTAMP_BACKWARDS" for f in whole[0]) == len(rows) - 21
    findings, _, joined = cut_in_two(rows, registry, 30)
    assert findings == whole[0] and joined
    monkeypatch.setattr(PartitionOrder, "noted_max", 5)
    findings, _, joined = cut_in_two(rows, registry, 30)
    assert findings == whole[0] and not joined


def test_without_an_intake_topic_an_accepted_leads_source_is_not_read_and_nothing_changes() -> None:
    """A trusted accepted lead's source and `original` are read only for the source check, which needs the intake
    topic read too: without it, the picker stops at the digest; the findings and summary are the same."""
    accepted, _, registry = streams()
    rng = random.Random(1406)
    for _ in range(40):
        rows = stamped(accepted)
        for _ in range(rng.choice([1, 2, 3])):
            tamper_at(rng, rows, rng.randrange(0, len(rows) - 1))
        assert one_process(rows, registry, sources=False) == one_process(rows, registry, sources=True)


def test_chains_whose_first_records_were_removed_are_found_wherever_the_cut_falls() -> None:
    """Read from offset 0, each chain's first record in the partition must be its start (number 1): with every
    chain's start removed, each is a gap at its first record left, and a cut finds the same (a chain first met in the
    tail is judged by the head, which read the partition from offset 0)."""
    first, _, registry = streams()
    restarted = StageSealer("LEADBUS-intake", INTAKE_KEY, "00000000000000c3")  # intake restarted halfway: a new chain
    accepted = list(first[:35])  # after its fifth transaction
    for start in range(35, len(first), 7):
        batch = [(t, p, k, v, [(n, x) for n, x in h if n not in STAGE_SEAL_NAMES]) for t, p, k, v, h in
                 first[start:start + 7]]
        accepted += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(batch, restarted.seal(batch), strict=True)]
        restarted.commit()
    assert one_process(stamped(tuple(accepted)), registry)[0] == []
    starts = [i for i, row in enumerate(accepted) if (SEQUENCE_HEADER, b"1") in row[4]]
    assert starts == [0, 35]
    rows = stamped(tuple(row for i, row in enumerate(accepted) if i not in starts))
    whole = one_process(rows, registry)
    gaps = [f for f in whole[0] if f.check == "STAGE_SEQUENCE_GAP"]
    assert len(gaps) == len(starts) and all("1 missing (removed)" in f.message for f in gaps), whole[0]
    for at in range(1, len(rows)):
        findings, tally, _ = cut_in_two(rows, registry, at)
        assert (findings, tally) == whole, at


def test_a_chain_whose_partition_opens_past_aborted_records_must_start_at_one() -> None:
    """Read from offset 0 past records of aborted transactions (a rewriter's way to hide a removed start from the
    offset-0 rule), the first visible record is the partition's first (`opens_log`): a chain met there at number 3 is a
    gap; read from a later offset (retention trimmed the start) nothing is found."""
    accepted, _, registry = streams()
    rows = stamped(accepted[2:])
    opened = records(rows, 4)
    opened[0].opens_log = True
    checks = verifiers(registry)
    report = replay_module.ReplayReport("one")
    read(opened, checks, report)
    replay_module.finish(checks, report)
    gaps = [(f.check, f.offset) for f in report.findings]
    assert gaps == [("STAGE_SEQUENCE_GAP", 4)], report.findings
    checks, report = verifiers(registry), replay_module.ReplayReport("one")
    read(records(rows, 4), checks, report)
    replay_module.finish(checks, report)
    assert report.findings == []


def test_the_tail_is_asked_only_for_the_leads_the_head_read_too() -> None:
    """The tail's accepted leads go back as hashes with their findings judged from the cut on: the parent asks back the
    notes of the leads its head read too, and none when there are none; a tail that cannot answer is read again."""
    accepted, _, registry = streams()
    rows = stamped(accepted)
    at = len(rows) // 2
    rows.insert(at + 3, rows[2])  # a lead of the head's accepted again in the tail
    whole = one_process(rows, registry)
    assert any(f.check == "REPLAYED" for f in whole[0])

    def halves(upto: int) -> tuple[list[Verifier], list[Verifier], replay_module.ReplayReport, Any]:
        head, tail = verifiers(registry), verifiers(registry)
        note_tail(tail)
        tail_report = replay_module.ReplayReport("tail")
        read(records(rows[:upto]), head, replay_module.ReplayReport("head"))
        read(records(rows[upto:], upto), tail, tail_report)
        settled = settle_tail(tail)
        assert settled is not None and len(settled[0].hashes) == 8 * len(settled[1])  # a hash for each note
        return head, taken(handed(tail)), tail_report, settled

    questions: list[set[int]] = []
    head, tail, tail_report, settled = halves(at)
    joined = join(head, tail, tail_report.findings, settled[0],
                  lambda hashes: questions.append(hashes) or asked(settled[1], hashes))
    assert joined is not None and [len(q) for q in questions] == [1]
    assert sum(f.check == "REPLAYED" for f in joined) == 1
    head, tail, tail_report, settled = halves(at)
    assert join(head, tail, tail_report.findings, settled[0], lambda hashes: None) is None  # its process is gone
    del rows[at + 3]  # untampered: no lead read by both halves, no question
    head, tail, tail_report, settled = halves(at)
    assert join(head, tail, tail_report.findings, settled[0], lambda hashes: questions.append(hashes) or []) == []
    assert len(questions) == 1
    rows.insert(at + 4, rows[at + 1])  # a lead the head never read, accepted twice in the tail: asked back too
    whole = one_process(rows, registry)
    head, tail, tail_report, settled = halves(at)
    joined = join(head, tail, tail_report.findings, settled[0],
                  lambda hashes: questions.append(hashes) or asked(settled[1], hashes))
    assert joined is not None and [len(q) for q in questions[1:]] == [1]
    assert [f for f in joined if f.check == "REPLAYED"] == [f for f in whole[0] if f.check == "REPLAYED"] != []


def test_the_tails_hashes_are_its_notes_leads_however_they_were_noted() -> None:
    """What the tail sends of its notes is the hash of each note's lead, in order: hashed as they were noted (the C
    reader and the Python path alike) or, where those do not cover every note, all again at the end."""
    accepted, _, registry = streams()
    rows = stamped(accepted)
    at = len(rows) // 3

    def settled(spoil: str) -> tuple[bytes, list[Any]]:
        tail = verifiers(registry)
        note_tail(tail)
        read(records(rows[at:], at), tail, replay_module.ReplayReport("tail"))
        leads = next(v for v in tail if isinstance(v, AcceptedLeads))
        assert leads.noted and leads.noted_hashes is not None
        if not spoil:  # every note hashed as it was made
            assert len(leads.noted_hashes) == 8 * len(leads.noted)
        if spoil == "missing":
            leads.noted_hashes = None
        elif spoil == "short":
            del leads.noted_hashes[-8:]
        got = settle_tail(tail)
        assert got is not None and leads.noted is None and leads.noted_hashes is None  # not sent back twice
        return got[0].hashes, got[1]

    for spoil in ("", "missing", "short"):
        hashes, notes = settled(spoil)
        assert len(notes) == len(rows) - at
        assert hashes == array("q", [hash(note[0]) for note in notes]).tobytes(), spoil


def test_the_heads_hashes_made_while_waiting_are_those_join_makes() -> None:
    accepted, _, registry = streams()
    rows = stamped(accepted)
    head = verifiers(registry)
    read(records(rows[: len(rows) // 2]), head, replay_module.ReplayReport("head"))
    leads = next(v for v in head if isinstance(v, AcceptedLeads))
    assert head_hashes(head) == {hash(lead) for lead in leads._revisions} != set()
    assert head_hashes([v for v in head if not isinstance(v, AcceptedLeads)]) is None
