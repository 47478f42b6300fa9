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
"""

from __future__ import annotations

from collections.abc import Sequence

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
