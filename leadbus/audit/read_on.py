"""A replay that stops at `--to` reads on, for the stage seal check alone, to the signature closing each lane it left
open (issue #14's outside check, round 2).

A stage signs the last record of a transaction on each partition and that signature vouches for the records before it.
A period that ends inside a transaction leaves its last records unvouched (`STAGE_UNSIGNED_TAIL`, a notice: the
signature lies after the period). A rewriter who alters such a record and moves the later records' times a little
forward (broker timestamps are not sealed) made a replay with `--to` just after it pass. Reading on past the period,
partition by partition, only as far as the closing signature (usually the same transaction's next records) shows the
broken link or the signature that does not verify, at the altered record in the period. Records past the period are
not selected, exported or checked otherwise, and findings located past it are left to a replay of that period. A
partition read on to its end without the signature makes its unvouched records a failure: no committed transaction
ends unsigned.

An archive replay reads on the same way, in the archive (`read_on_archive`, round 3): the same rewrite of an archived
file, re-chained, passed a replay `--to` just after the altered record. Where the archive holds the rest of the
transaction, the broken link or signature is named at the record in the period; a partition whose archived records end
before the signature keeps its tail a notice (the archive's last file may end inside a transaction: its sink seals files
by time).
"""

from __future__ import annotations

from collections.abc import Sequence

from leadbus.audit.archive_source import ArchiveSource
from leadbus.audit.sources import KafkaSource, PartitionSpan, SourceError
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import Finding, Verifier


def read_on(source: KafkaSource, spans: Sequence[PartitionSpan], verifiers: Sequence[Verifier],
            findings: list[Finding]) -> None:
    stage = next((v for v in verifiers if isinstance(v, StageSealVerifier) and v.open_end), None)
    if stage is None:
        return
    ends = {(s.topic, s.partition): s.end for s in spans if s.size}
    waiting = {where for where in stage.open_partitions() if where in ends}
    if not waiting:
        return
    lanes = set(stage.lanes())
    try:
        whole = {(s.topic, s.partition): s.end for s in
                 KafkaSource(source.settings, source.topics, source.catalog, timeout=source.timeout).plan()}
        for where in sorted(waiting):
            end = ends[where]
            if whole.get(where, end) <= end:
                continue  # nothing after the period: the lane is open at the partition's end
            sub = KafkaSource(source.settings, [where[0]], source.catalog, timeout=source.timeout, batch=50)
            sub.spans = [PartitionSpan(where[0], where[1], end, whole[where])]
            try:
                for record in sub.records():
                    findings.extend(f for f in stage.check(record)
                                    if (f.topic, f.partition) != where or f.offset is None or f.offset < end)
                    if where not in stage.open_partitions(lanes):
                        break
            finally:
                sub.close()
    except SourceError:
        return  # what could not be read stays as the period left it: a notice
    stage.forget_lanes_but(lanes)  # lanes begun past the period are that period's
    stage.open_end = False


def read_on_archive(source: ArchiveSource, verifiers: Sequence[Verifier], findings: list[Finding]) -> None:
    stage = next((v for v in verifiers if isinstance(v, StageSealVerifier) and v.open_end), None)
    if stage is None or source.end_ms is None:
        return
    read = {(s.topic, s.partition) for s in source.spans if s.size}
    waiting = {where for where in stage.open_partitions() if where in read}
    if not waiting:
        return
    lanes = set(stage.lanes())
    left_open = False
    for where in sorted(waiting):
        # from the first record at or after --to: the period's own rule, so nothing of the period is read again
        sub = ArchiveSource(source.root, [where[0]], source.catalog, source.end_ms, None)
        try:
            sub.plan()
        except SourceError:
            left_open = True
            continue
        if not sub.only(where):
            left_open = True
            continue
        first: int | None = None
        for record in sub.records():
            first = record.offset if first is None else first
            findings.extend(f for f in stage.check(record)
                            if (f.topic, f.partition) != where or f.offset is None or f.offset < first)
            if where not in stage.open_partitions(lanes):
                break
        if where in stage.open_partitions(lanes):
            left_open = True  # the archive holds no more of it: its signature may lie past what was archived
    stage.forget_lanes_but(lanes)
    stage.open_end = left_open
