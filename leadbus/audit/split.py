"""A verified Kafka replay's partitions split between processes (`leadbus.audit.replay`, when
`leadbus.audit.processes.replay_workers` gives more than one and two partitions or more hold records).

The partitions go in groups of about equal size (`_balanced`); each group but the first is read by a forked process
(`_child`) with its own copy of the fresh verifiers, the first by this one. The verifiers whose state is per partition
finish in their process; those whose state spans partitions (`replay._SHARED`: the intake and accepted leads' checks)
come back and are merged here. A forked process hands back its intake leads as hashes and is then asked for those
another process read too (`_take_intake`, `leadbus.audit.processes`). The findings are those of one process, sorted
by coordinates by the caller; of a lead read by two processes the merge names the forked process's record as the
repeat, where one process names the record it read second (the same records, as many findings).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from leadbus.audit.processes import IntakeSent, handed, hashes_of, picked, reap, sent_intake, taken, wanted
from leadbus.audit.read_on import read_on
from leadbus.audit.sources import KafkaSource, PartitionSpan, SourceError
from leadbus.audit.stage_seals import OutOfPlace, StageSealVerifier, moved_across
from leadbus.audit.verification import AcceptedLeads, Finding, IntakeLeads, Verifier

if TYPE_CHECKING:
    from leadbus.audit.replay import ProgressFn, ReplayReport


@dataclass
class _Part:
    records: int
    selected: int
    sealed: int
    tally: Counter[tuple[str, str]]
    findings: list[Finding]
    #: The verifiers whose state spans partitions; a forked process sends its `IntakeLeads` as `IntakeSent` (hashes
    #: of the leads it saw; the parent asks back for those it also holds: `leadbus.audit.processes`)
    shared: list[Any]
    signatures: int
    error: str | None = None
    #: Each stage seal check's strays and gaps: a record moved between partitions two processes read is paired here.
    out_of_place: list[OutOfPlace] = field(default_factory=list)


def _balanced(spans: list[PartitionSpan], groups: int) -> list[list[PartitionSpan]]:
    """Spans in `groups` of about equal size (largest first into the lightest), each in (topic, partition) order."""
    out: list[list[PartitionSpan]] = [[] for _ in range(groups)]
    sizes = [0] * groups
    for span in sorted((s for s in spans if s.size), key=lambda s: -s.size):
        i = sizes.index(min(sizes))
        out[i].append(span)
        sizes[i] += span.size
    return [sorted(g, key=lambda s: (s.topic, s.partition)) for g in out if g]


def _part(source: KafkaSource, spans: list[PartitionSpan], verifiers: list[Verifier], key: bytes | None,
          publisher: str | None, progress: ProgressFn | None) -> _Part:
    from leadbus.audit.replay import _SHARED, ReplayReport, _run

    sub = KafkaSource(source.settings, source.topics, source.catalog, source.start_ms, source.end_ms,
                      timeout=source.timeout, batch=source.batch)
    sub.spans = spans
    report = ReplayReport("")
    try:
        count = _run(sub, verifiers, None, key, publisher, report, progress, None)
        read_on(sub, spans, verifiers, report.findings)
    except SourceError as exc:
        return _Part(0, 0, 0, Counter(), [], [], 0, str(exc))
    finally:
        sub.close()
    for verifier in verifiers:
        if isinstance(verifier, _SHARED):
            continue
        try:
            report.findings.extend(verifier.finish())
        except Exception as exc:  # noqa: BLE001 - reported, never a crash
            report.findings.append(Finding("UNREADABLE", f"the {verifier.name} check failed at the end: "
                                                         f"{type(exc).__name__}: {exc}", "(replay)"))
    signatures = sum(int(getattr(v, "signatures", 0)) for v in verifiers)
    return _Part(count, report.selected, report.sealed, report.by_type_publisher, report.findings,
                 [v for v in verifiers if isinstance(v, _SHARED)], signatures,
                 out_of_place=[v.out_of_place() for v in verifiers if isinstance(v, StageSealVerifier)])


def _child(conn: Any, source: KafkaSource, spans: list[PartitionSpan], verifiers: list[Verifier],
           key: bytes | None, publisher: str | None, parents: list[Any] | None = None) -> None:
    """A forked process's read: its `_Part` sent back, its intake leads as hashes; then the leads the parent asks for
    (`leadbus.audit.processes.wanted`: those it also read), and done. `parents`: the parent's ends of the pipes this
    fork copied, closed here (else the parent closing its end, stopped early, would not end the wait for a question)."""
    for end in parents or []:
        end.close()
    intake = None
    try:
        part = _part(source, spans, verifiers, key, publisher, None)
        intake = next((v for v in part.shared if isinstance(v, IntakeLeads)), None)
        if intake is not None:
            sent = sent_intake(intake._seen, intake.sources, intake.ranges)
            part.shared = [sent if v is intake else v for v in part.shared]
    except BaseException as exc:  # noqa: BLE001 - whatever happens goes back to the parent as an error
        part = _Part(0, 0, 0, Counter(), [], [], 0, f"{type(exc).__name__}: {exc}")
    conn.send_bytes(handed(part))
    if intake is not None:
        try:
            asked = conn.recv()
        except EOFError:  # the parent stopped (an error of its own): nothing more to send
            asked = None
        if asked is not None:
            conn.send_bytes(handed(picked(intake._seen, asked)))
    conn.close()


def run_split(source: KafkaSource, spans: list[PartitionSpan], verifiers: list[Verifier], key: bytes | None,
               publisher: str | None, report: ReplayReport, progress: ProgressFn | None, workers: int) -> int:
    """Partitions split between processes (forked: each gets its own copy of fresh verifiers), merged here."""
    import gc
    import multiprocessing

    groups = _balanced(spans, workers)
    source.close()  # no Kafka client may live across a fork
    context = multiprocessing.get_context("fork")
    children: list[tuple[Any, Any]] = []
    # Objects alive at the fork are frozen out of the collector's reach, so that a child's collections do not
    # touch (and copy, page by page) the whole heap it shares with its parent; thawed once the children run.
    gc.freeze()
    try:
        for group in groups[1:]:
            mine, theirs = context.Pipe(duplex=True)
            process = context.Process(target=_child, args=(theirs, source, group, verifiers, key, publisher,
                                                           [mine, *(c for _, c in children)]), daemon=True)
            process.start()
            theirs.close()
            children.append((process, mine))
    finally:
        gc.unfreeze()
    try:
        total = sum(s.size for s in spans)
        mine_size = sum(s.size for s in groups[0]) or 1
        scaled = None if progress is None else (lambda done, _: progress(done * total // mine_size, total))
        parts = [_part(source, groups[0], verifiers, key, publisher, scaled)]
        for process, conn in children:
            try:
                parts.append(taken(conn.recv_bytes()))
            except EOFError:
                parts.append(_Part(0, 0, 0, Counter(), [], [], 0, f"a replay process ended with {process.exitcode}"))
        errors = [p.error for p in parts if p.error]
        if errors:
            raise SourceError("; ".join(errors))
        intake = next((v for v in verifiers if isinstance(v, IntakeLeads)), None)
        _take_intake(intake, parts[1:], [conn for _, conn in children])
    finally:
        for process, conn in children:
            conn.close()  # a child still waiting for a question ends
            reap(process)  # its end waited for on a thread, while the parts are merged
    report.processes = len(parts)
    accepted = next((v for v in verifiers if isinstance(v, AcceptedLeads)), None)
    report.findings.extend(moved_across([part.out_of_place for part in parts]))
    for part in parts:
        report.selected += part.selected
        report.sealed += part.sealed
        report.by_type_publisher.update(part.tally)
        report.findings.extend(part.findings)
        report.signatures += part.signatures
        if part is parts[0]:
            continue
        for other in part.shared:
            if isinstance(other, IntakeLeads) and intake is not None:
                report.findings.extend(intake.merge(other))
            elif isinstance(other, AcceptedLeads) and accepted is not None:
                accepted.merge(other)
    return sum(p.records for p in parts)


def _take_intake(intake: IntakeLeads | None, parts: list[_Part], conns: list[Any]) -> None:
    """Each forked process's `IntakeSent` made an `IntakeLeads` again, holding the leads it saw that another process
    saw too (asked back by their hashes), in its part's place, for `IntakeLeads.merge`: the same findings as merging
    all it saw."""
    sent = [next((v for v in part.shared if isinstance(v, IntakeSent)), None) for part in parts]
    seen = intake._seen if intake is not None else {}
    own: Iterable[int] = map(hash, seen) if len(sent) == 1 else set(map(hash, seen))  # one pass: made as read
    asks = wanted(own, [hashes_of(s) if s is not None else set() for s in sent])
    for conn, was, ask in zip(conns, sent, asks, strict=True):
        if was is not None:
            conn.send(ask)
    for part, conn, was in zip(parts, conns, sent, strict=True):
        if was is None:
            continue
        again = IntakeLeads()
        try:
            again._seen = taken(conn.recv_bytes())
        except EOFError:
            raise SourceError("a replay process ended before handing back the leads it read") from None
        again.sources, again.ranges = was.sources, was.ranges
        part.shared = [again if v is was else v for v in part.shared]
