"""`leadbus replay`: read a topic (or the archive) over a period, verify it, export it, summarise it.

    report = replay(ReplayOptions(topics=["leadbus.leads.accepted"], source="kafka", verify=True), settings)
    report.status   # 0 verified, 1 a verification failure (each with its coordinates)

Every record of the period goes through the verifiers (a filter by key or publisher selects what is
exported and counted, never what is verified: a gap is a gap whoever's record is missing). An archive
replay first checks the archive's chained manifest (`leadbus archive verify`, with `--head` the chain's
head published elsewhere); each problem is a failure located at its file.

A Kafka replay that only verifies (no export) and holds at least `split_min` records splits its partitions
between `workers` processes (default: two when the load average leaves a core for the second, else one; see
`leadbus.audit.processes`): each forked process reads its partitions and
runs fresh copies of the verifiers; those whose state is per partition (order, lanes and signatures, case
versions, steps, routed versions) finish there; the intake and accepted-lead checks, which cross partitions,
are merged in the parent and finish there. The findings are the same as from one process (sorted by
coordinates); an export always reads in one process, in (topic, partition, offset) order.

`leadbus.leads.accepted` has one partition: a replay of it alone (verifying, no export, at least `split_min` records)
cuts it near its middle offset instead (`_run_cut`): a forked process reads the tail with verifiers that note what the
parent needs, the parent reads the head, and `leadbus.audit.boundary.join` judges the tail's first records again
against the head (or, where it cannot, the parent reads the tail itself after the head): one process's findings.

A replay of a large `leadbus.leads.accepted` in one process hands each accepted lead's content check (normalising
`original` again) to forked content workers (`AcceptedLeads.executor`). Unless it exports, the workers read each of
those records whole for the `Decodes` check and name its publisher too, and the parent never decodes them
(`_ReadByWorkers`): their findings go where the parent's own check would have put them.

A Kafka replay with stage seals verified reads the records a stage signature vouches for by their fields alone (see
`_loop` and `StageSealVerifier.vouching`): the same findings, sorted by coordinates, as reading every record whole.

The seal slot: `ReplayOptions.seal_verifier` takes the verifier of signatures and sequence numbers
(see `leadbus.audit.verification`); `seal_verifier_factory` is where the bus's own is built once the
signing code is merged. Without one, records carrying seals are counted as *not checked*.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any

from leadbus.audit.archive_source import ArchiveSource
from leadbus.audit.export import Exporter, finish_export, open_exporter
from leadbus.audit.intake_runs import PlainIntake
from leadbus.audit.log_start import removed_heads, trimmed_by_retention, within_retention
from leadbus.audit.processes import LoadWatch, chosen_workers, handed, reap, taken
from leadbus.audit.read_on import read_on, read_on_archive
from leadbus.audit.registration import registry_traces
from leadbus.audit.schema_log import schema_traces
from leadbus.audit.schema_order import SchemaPublishedFirst, topic_only
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.soon import soon
from leadbus.audit.sources import KafkaSource, PartitionSpan, SourceError, check_patterns
from leadbus.audit.split import run_split
from leadbus.audit.stage_seals import StageSealVerifier, take_trusted
from leadbus.audit.verification import (
    ACCEPTED,
    AcceptedLeads,
    CaseVersions,
    Decodes,
    Finding,
    HandoverSteps,
    IntakeLeads,
    PartitionOrder,
    ReplayRecord,
    RoutedVersions,
    RunFindings,
    Verifier,
    each,
    is_intake,
    publisher_matches,
    publisher_of,
    standard_verifiers,
    tally_accepted,
    tally_each,
    tally_run,
    unreadable,
    use_catalog,
)
from leadbus.avro import SchemaCatalog, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.signing import PUBLISHER_HEADER, KeyRegistry, RegistryLog
from leadbus.stage_seals import CHAIN_HEADER as STAGE_CHAIN_HEADER
from leadbus.topics import LEADS_ACCEPTED, SCHEMAS

__all__ = ["ReplayError", "ReplayOptions", "ReplayReport", "SourceError", "replay", "seal_verifier_factory"]


class ReplayError(RuntimeError):
    """A usage or access error (exit status 2)."""


@dataclass
class ReplayOptions:
    topics: list[str]
    source: str = "kafka"  # "kafka" or "archive:<DIR>"
    start: datetime | None = None
    end: datetime | None = None
    key: str | None = None
    publisher: str | None = None
    fmt: str | None = None  # jsonl | avro | None (no export)
    out: Path | None = None
    verify: bool = True
    head: str | None = None  # the archive chain's head, kept outside the archive
    #: The bus an archive replay reads the heads its sink published from (`leadbus.audit.archive_heads`), when no
    #: `head` is given; None: the manifest's chain is checked against nothing kept elsewhere (a notice).
    heads_from: KafkaSettings | None = None
    #: Which archive the copy is of (its sink's group, as its heads name it); None: told from the heads published.
    archive_name: str | None = None
    #: The auditor machine's clock (seconds): "now" for `TIMESTAMP_IN_FUTURE` is the later of it and the newest time
    #: the broker stamped a record with (`leadbus.audit.broker_time`), so a clock running slow fails no clean replay.
    clock: Callable[[], float] = time.time
    skew_ms: int = 15_000
    renormalise: bool = True
    #: With stage seals verified, accepted leads intake sealed are not normalised again (the seal vouches for them);
    #: True normalises them all again, as before seals (`leadbus replay --rederive`; `audit rebuild` always does).
    rederive_sealed: bool = False
    seal_verifier: Verifier | None = None
    extra_verifiers: list[Verifier] = field(default_factory=list)
    #: Processes reading and verifying a Kafka replay without export (partitions split between them); 1 = none; None:
    #: chosen from the cores, the work others keep running and the records to read (`leadbus.audit.processes`).
    workers: int | None = None
    split_min: int = 20_000  # fewer records than this are read in one process (starting another costs more)


@dataclass
class ReplayReport:
    source: str
    records: int = 0  # read and verified
    selected: int = 0  # passed --key / --publisher (counted and exported)
    by_type_publisher: Counter[tuple[str, str]] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    sealed: int = 0
    seals_checked: bool = False
    verified: bool = False
    seconds: float = 0.0
    read_seconds: float = 0.0  # reading and verifying the records alone (no schema load, no plan, no archive check)
    processes: int = 1
    signatures: int = 0  # Ed25519 verifications the seal verifier made
    content_workers: int = 0  # processes that ran the accepted leads' content checks (0: in the reading process)
    spans: list[PartitionSpan] = field(default_factory=list)
    #: A partition cut in two between processes: "joined" (the tail's findings judged again from what it noted) or
    #: "tail read again" (by the parent, after the head); "" when none was
    cut: str = ""

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.failure]

    @property
    def notices(self) -> list[Finding]:
        return [f for f in self.findings if not f.failure]

    @property
    def status(self) -> int:
        return 1 if self.failures else 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def seal_verifier_factory(settings: KafkaSettings | None) -> Verifier | None:
    """The bus's verifier of seals and sequences: the `PublisherKey` registry read from `leadbus.publishers`.

    Without a bus to read it from (an archive replay with no settings) there is no registry: None, and the
    replay reports how many sealed records it could not check.
    """
    if settings is None:
        return None
    from leadbus.audit.seals import BusSealVerifier
    from leadbus.publisher_keys import read_registry

    return BusSealVerifier(read_registry(settings))


def _millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


ProgressFn = Callable[[int, int | None], None]


def replay(options: ReplayOptions, settings: KafkaSettings | None = None, *, catalog: SchemaCatalog | None = None,
           progress: ProgressFn | None = None, stdout: IO[str] | None = None) -> ReplayReport:
    """Replay, verify, export; raises ReplayError on a usage or access error."""
    import sys

    if options.start is not None and options.end is not None and options.end <= options.start:
        raise ReplayError("--to must be after --from")
    try:
        check_patterns(options.topics)
    except SourceError as exc:
        raise ReplayError(str(exc)) from None
    if options.head is not None:  # as `leadbus archive verify` prints it; a head of another shape is a typing error
        head = options.head.strip().lower()
        if len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
            raise ReplayError(f"--head {options.head!r} is not a chain head (64 hex digits)")
        options.head = head
    # The cores' work is watched from here, so that the preparation below fills the window the process rule measures
    # (`leadbus.audit.processes.LoadWatch`); only a verified replay that may split looks at it.
    watch = LoadWatch() if options.verify and options.workers is None else None
    # The newest broker stamp is asked for while the schemas are read and the partitions planned: a consumer of its
    # own that mostly waits on the broker (~25 ms of the ~40 ms a verified replay took before its first record).
    stamped = (_now_ms_soon(options, settings if options.source == "kafka" else options.heads_from)
               if options.verify else None)
    catalog = catalog or packaged_catalog()
    schemas_altered: list[tuple[int, int, str]] = []
    schemas_log = RegistryLog()
    schemas_first: dict[bytes, tuple[int, int, str]] = {}  # fingerprint -> its first record on leadbus.schemas
    schemas_unreadable: list[tuple[int, int, str]] = []  # records of leadbus.schemas that are no schema
    shipped = [entry.fingerprint for entry in catalog]  # the tool's own schemas, before the topic's are added
    source: KafkaSource | ArchiveSource
    if options.source == "kafka":
        if settings is None:
            raise ReplayError("a Kafka replay needs the bus's address (--bootstrap)")
        from leadbus.schema_topic import load_schemas

        try:  # every writer schema ever published, not only the packaged
            load_schemas(settings, catalog, altered=schemas_altered, log=schemas_log, first=schemas_first,
                         unreadable=schemas_unreadable)
        except Exception as exc:  # an unreachable bus or a refused read is an access error
            raise ReplayError(f"cannot read leadbus.schemas from {settings.bootstrap}: {exc}") from exc
        source = KafkaSource(settings, options.topics, catalog, _millis(options.start), _millis(options.end))
    elif options.source.startswith("archive:"):
        root = Path(options.source[len("archive:"):])
        if not root.is_dir():
            raise ReplayError(f"no archive folder at {root}")
        source = ArchiveSource(root, options.topics, catalog, _millis(options.start), _millis(options.end),
                               head=options.head)
    else:
        raise ReplayError(f"--source is kafka or archive:DIR, not {options.source!r}")

    report = ReplayReport(source.describe())
    started = time.monotonic()
    try:
        spans = source.plan()
    except SourceError as exc:
        source.close()
        raise ReplayError(str(exc)) from exc
    report.spans = spans
    peeked = _peek_soon(source, spans, options)  # on a thread, while the replay prepares
    if isinstance(source, ArchiveSource) and source.damaged is not None and not spans and not options.verify:
        raise ReplayError(f"{source.damaged}: run with --verify to have each problem named")
    changelogs = sorted({s.topic for s in spans if s.topic.startswith(CHANGELOG_PREFIX)})
    if options.verify and changelogs:
        source.close()  # a stage's state in its own encoding, unsealed: a replay could only call every record altered
        raise ReplayError(f"{', '.join(changelogs)}: a stage's state changelog, which a replay cannot verify (not "
                          "events, not sealed); leave it out of --topic: `leadbus audit rebuild` re-derives the "
                          "stages' decisions from the sealed topics")
    expected = source.expected() if isinstance(source, ArchiveSource) else sum(s.size for s in spans)

    verifiers: list[Verifier] = []
    at_ends: list[Callable[[], list[Finding]]] = []  # checks of the partitions' ends, asked on threads
    if options.verify:
        assert stamped is not None
        now_ms = stamped()
        verifiers = [*standard_verifiers(options.skew_ms, renormalise=options.renormalise,
                                         now_ms=now_ms), *options.extra_verifiers]
        later = topic_only({fp: f for fp, f in schemas_first.items() if f[1] > 0}, shipped)
        if later:  # schemas known from the topic alone: each judged published before its records (none: no check)
            verifiers.append(SchemaPublishedFirst(later, options.skew_ms))
        if options.seal_verifier is not None:
            verifiers.append(options.seal_verifier)
            report.seals_checked = True
            for verifier in verifiers:  # a sealed intake record's bytes are the seal check's to judge
                if isinstance(verifier, Decodes):
                    verifier.seals_verified = True
            registry = getattr(options.seal_verifier, "registry", None)
            if isinstance(registry, KeyRegistry):  # the stages' keys are in the same registry as the agencies'
                report.findings.extend(registry_traces(registry))
                stage = StageSealVerifier(registry, open_end=options.end is not None)
                # A Kafka replay's findings are sorted by coordinates: the other checks of a sealed record may wait
                # for its run's signature, and read only what they need of the records it vouches for.
                stage.vouching = isinstance(source, KafkaSource) and not options.rederive_sealed
                verifiers.append(stage)
                for verifier in verifiers:
                    if isinstance(verifier, AcceptedLeads):
                        verifier.trust_stage_seals = not options.rederive_sealed
        if not any(s.topic == LEADS_ACCEPTED and s.size for s in spans):
            for verifier in verifiers:  # what intake records held is kept for the accepted leads' check alone
                if isinstance(verifier, IntakeLeads):
                    verifier.keep_sources = False
        if not any(is_intake(s.topic) and s.size for s in spans):
            for verifier in verifiers:  # no intake record to check an accepted lead's source against
                if isinstance(verifier, AcceptedLeads):
                    verifier.keep_sources = False
        for partition, offset, name in schemas_altered:
            report.findings.append(Finding("SCHEMA_ALTERED", f"a schema of {name} with the fingerprint of the one "
                                           "records are read with, but reading otherwise (a logical type, a default, "
                                           "a field): written in its place, so that records would decode differently",
                                           SCHEMAS, partition, offset))
        for partition, offset, why in schemas_unreadable:
            report.findings.append(Finding("SCHEMA_UNREADABLE", f"a record of {SCHEMAS} that is no schema the bus "
                                           f"publishes ({why}): not the schema registry's writing", SCHEMAS,
                                           partition, offset))
        if isinstance(source, KafkaSource):  # the first records of a partition kept forever removed
            report.findings.extend(schema_traces(schemas_log))  # and the schema topic's, kept whole as declared
            report.findings.extend(removed_heads(source.log_starts))
            registry = getattr(options.seal_verifier, "registry", None)
            # and records the archive sealed gone from a partition's end, and transactions held open at the ends read
            # to: each on a thread (consumers of their own that mostly wait on the broker: ~12 ms one after the
            # other), answered before the read (no Kafka client may live across its forks)
            if settings is not None:
                from leadbus.audit.archived_ends import judge as archived_ends
                from leadbus.audit.open_transactions import held_open

                keys = registry if isinstance(registry, KeyRegistry) else None
                read_to_end = [(s.topic, s.partition) for s in spans
                               if s.end == source.log_ends.get((s.topic, s.partition))]
                log_ends, topics = dict(source.log_ends), {s.topic for s in spans}
                at_ends = [soon(lambda: archived_ends(settings, keys, log_ends, topics, now_ms), None,
                                "leadbus-replay-archived-ends"),
                           soon(lambda: held_open(settings, log_ends, read_to_end, started), None,
                                "leadbus-replay-open-transactions")]
            trimmed = trimmed_by_retention(source.log_starts)
            if isinstance(registry, KeyRegistry) and trimmed:  # or removed sooner than retention could have
                try:
                    firsts = source.first_records(trimmed)
                except SourceError as exc:
                    source.close()
                    raise ReplayError(str(exc)) from exc
                report.findings.extend(within_retention(firsts, registry, now_ms))
        if isinstance(source, ArchiveSource):
            try:
                problems = source.verify()
            except SourceError as exc:
                raise ReplayError(str(exc)) from exc
            for problem in problems:
                report.findings.append(Finding(f"ARCHIVE_{problem.kind.upper()}", problem.message,
                                               _topic_of(problem.path), file=problem.path))
            if options.head is None:  # the manifest vouches for itself only as far as its own chain goes
                report.findings.extend(_published_head(source, options))
    try:
        exporter, handle = (open_exporter(options.fmt, options.out, catalog, stdout or sys.stdout)
                            if options.fmt else (None, None))
    except (ValueError, OSError) as exc:
        source.close()
        raise ReplayError(str(exc)) from exc
    key = options.key.encode() if options.key is not None else None
    read_began = time.monotonic()
    finishing = verifiers
    # Only a verified replay runs in several processes: without --verify the load is not measured (150 ms asleep,
    # a sixth of a 100,000-record replay of leadbus.cases that the raw read takes 0.4 s over).
    workers = (chosen_workers(sum(s.size for s in spans), requested=options.workers, split_min=options.split_min,
                              watch=watch)
               if options.verify else 1)
    first_headers = peeked()  # waited for here: no Kafka client may live across the forks below
    for answer in at_ends:
        report.findings.extend(answer())
    split = (isinstance(source, KafkaSource) and exporter is None and options.verify and workers > 1
             and sum(1 for s in spans if s.size) > 1 and sum(s.size for s in spans) >= options.split_min)
    accepted = next((v for v in verifiers if isinstance(v, AcceptedLeads)), None)
    executor = None
    # Normalising every accepted lead's `original` again (no stage seal vouching for them) is work for content
    # workers, which take it from a reading process on every core; else the one partition may be cut in two.
    content = (not split and accepted is not None and accepted.renormalise and workers > 1
               and sum(s.size for s in spans if s.topic == LEADS_ACCEPTED) >= options.split_min // 4
               and not _stage_sealed_from_start(source, accepted, first_headers))
    cut = (isinstance(source, KafkaSource) and exporter is None and options.verify and workers > 1
           and not split and not content and _cuttable(spans, verifiers, options.split_min))
    if content and accepted is not None:
        try:
            executor = _content_workers(source, catalog, workers)
        except OSError:  # no process to be had: the checks run here, as they always could
            executor = None
        accepted.executor = executor
        report.content_workers = workers if executor is not None else 0
    reads = None
    if executor is not None and accepted is not None and exporter is None:  # an export reads every record whole
        reads = _ReadByWorkers(accepted, report, options.publisher)
    # The collector stays off from the read to the report (see `_run`): the split's and the cut's results come back
    # as hundreds of thousands of objects, merged and finished here, and a full collection among them walked every
    # object the verifiers keep (a fifth of the samples of a verified replay of the intake topics under py-spy).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _replay_read(options, source, spans, verifiers, exporter, handle, key, report, progress, expected,
                            split, finishing, started, read_began, reads, cut, workers)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if collecting:
            _collect_again()


def _peek_soon(source: KafkaSource | ArchiveSource, spans: list[PartitionSpan],
               options: ReplayOptions) -> Callable[[], list[list[str] | None] | None]:
    """`KafkaSource.first_headers_soon` of the spans of `leadbus.leads.accepted`, where content workers may be started
    (`_stage_sealed_from_start`): 7-43 ms between the process rule's answer and a cut replay's fork before."""
    peeked = [s for s in spans if s.topic == LEADS_ACCEPTED and s.size]
    if (isinstance(source, KafkaSource) and options.verify and options.workers != 1 and peeked
            and sum(s.size for s in peeked) >= options.split_min // 4):
        return source.first_headers_soon(peeked)
    return lambda: None


def _stage_sealed_from_start(source: KafkaSource | ArchiveSource, accepted: AcceptedLeads,
                             first_headers: list[list[str] | None] | None) -> bool:
    """Whether the accepted leads of a Kafka replay that trusts stage seals are sealed from the period's first on (the
    header names of each span's first record: `_peek_soon`): then no content worker is started (the seals vouch for
    what they would normalise again; a record left unsealed is still checked, in this process)."""
    if not accepted.trust_stage_seals or not isinstance(source, KafkaSource) or first_headers is None:
        return False
    return all(names is not None and STAGE_CHAIN_HEADER in names for names in first_headers)


def _content_workers(source: KafkaSource | ArchiveSource, catalog: SchemaCatalog, workers: int) -> Executor:
    """Processes for the accepted leads' content checks (`AcceptedLeads`), forked before any Kafka client runs."""
    import gc
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    source.close()  # no Kafka client may live across a fork (the read opens its consumer again)
    gc.freeze()  # as for the split workers: a worker's collections do not copy the pages shared with the parent
    try:
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=use_catalog, initargs=(catalog,))
        executor.submit(os.getpid).result()  # a fork pool starts all its workers at the first task: now
    finally:
        gc.unfreeze()
    return executor


def _replay_read(options: ReplayOptions, source: KafkaSource | ArchiveSource, spans: list[PartitionSpan],
                 verifiers: list[Verifier], exporter: Exporter | None, handle: IO[Any] | None, key: bytes | None,
                 report: ReplayReport, progress: ProgressFn | None, expected: int | None, split: bool,
                 finishing: list[Verifier], started: float, read_began: float,
                 reads: _ReadByWorkers | None = None, cut: bool = False, workers: int = 1) -> ReplayReport:
    completed = False  # the whole period read: the export is moved to --out (else its partial file removed)
    try:
        if cut:
            assert isinstance(source, KafkaSource)
            report.records = _run_cut(source, spans, verifiers, key, options.publisher, report, progress)
        elif split:
            assert isinstance(source, KafkaSource)
            report.records = run_split(source, spans, verifiers, key, options.publisher, report, progress,
                                        workers)
            finishing = [v for v in verifiers if isinstance(v, _SHARED)]  # the others finished in their process
        else:
            report.records = _run(source, verifiers, exporter, key, options.publisher, report, progress, expected,
                                  reads)
        if isinstance(source, KafkaSource) and not split:
            read_on(source, spans, verifiers, report.findings)
        elif isinstance(source, ArchiveSource) and options.verify:
            read_on_archive(source, verifiers, report.findings)
        completed = True
    except SourceError as exc:
        raise ReplayError(str(exc)) from exc
    finally:
        source.close()
        if exporter is not None:
            exporter.close()
        if handle is not None:
            handle.close()
        if exporter is not None and options.out is not None:
            finish_export(options.out, completed)
    finish(finishing, report, reads)
    if isinstance(source, ArchiveSource):
        known = {f.file for f in report.findings}
        for path, message in source.unreadable:
            if path not in known:
                report.findings.append(Finding("ARCHIVE_UNREADABLE", message, _topic_of(path), file=path))
    if report.processes == 1 or cut:
        report.signatures = sum(int(getattr(v, "signatures", 0)) for v in verifiers)
    if isinstance(source, KafkaSource):  # partitions were read interleaved, or by several processes
        report.findings.sort(key=lambda f: (f.topic, f.partition if f.partition is not None else -1,
                                            f.offset if f.offset is not None else -1, f.check, f.message))
    report.read_seconds = time.monotonic() - read_began
    report.seconds = time.monotonic() - started
    report.verified = options.verify and not report.failures
    return report


def finish(verifiers: list[Verifier], report: ReplayReport, reads: _ReadByWorkers | None = None) -> None:
    """Each verifier's `finish` (the content workers' last answers among them), then what they read put in its place."""
    for verifier in verifiers:
        try:
            report.findings.extend(verifier.finish())
        except Exception as exc:  # noqa: BLE001 - reported, never a crash
            report.findings.append(Finding("UNREADABLE", f"the {verifier.name} check failed at the end: "
                                                         f"{type(exc).__name__}: {exc}", "(replay)"))
    if reads is not None:
        reads.place(report.findings)


class _ReadByWorkers:
    """The accepted records the content workers read whole (`AcceptedLeads.takes`), which the replay's loop then does
    not decode: it leaves out the `Decodes` check of each (noting where its findings go) and its count in the summary;
    when a record's row comes back (`AcceptedLeads.whole_read`, in the order records came), the worker's `Decodes`
    findings are kept for that place and the record is counted under the publisher the worker named. `place` puts the
    findings in: the same list, in the same order, as when the loop decoded each record itself."""

    def __init__(self, accepted: AcceptedLeads, report: ReplayReport, publisher: str | None) -> None:
        self.accepted = accepted
        self.report = report
        self.publisher = publisher
        #: per record sent: partition, offset, archive file, index, where its `Decodes` findings go (-1: no such
        #: check in this replay), whether --key selects it, its seal's publisher header
        self._waiting: deque[tuple[int, int, str | None, int | None, int, bool, bytes | None]] = deque()
        self._found: list[tuple[int, list[Finding]]] = []  # (where, the worker's `Decodes` findings) in record order
        accepted.whole_read = self.taken

    def wait(self, record: ReplayRecord, position: int, selected: bool) -> None:
        sealed = record.header(PUBLISHER_HEADER) if record.headers else None  # publisher_of's first answer
        self._waiting.append((record.partition, record.offset, record.file, record.index, position, selected, sealed))

    def taken(self, row: tuple[Any, ...], decoded: list[Finding], publisher: str) -> None:
        partition, offset, file, index, position, selected, sealed = self._waiting.popleft()
        if (row[1], row[2], row[4], row[5]) != (partition, offset, file, index):
            raise RuntimeError(f"the content workers answered for {row[:3]}, expected {partition}@{offset}")
        if decoded and position >= 0:
            self._found.append((position, decoded))
        if not selected:
            return
        who = sealed.decode(errors="replace") if sealed else publisher
        if self.publisher is not None and not publisher_matches(who, self.publisher):
            return
        self.report.selected += 1
        self.report.by_type_publisher[(ACCEPTED, who)] += 1

    def place(self, findings: list[Finding]) -> None:
        shift = 0
        for position, found in self._found:  # in record order: their places never go back
            findings[position + shift:position + shift] = found
            shift += len(found)
        self._found.clear()


def _topic_of(path: str) -> str:
    return path.split("/", 1)[0] if "/" in path else "(archive)"


def _run(source: KafkaSource | ArchiveSource, verifiers: list[Verifier], exporter: Exporter | None,
         key: bytes | None, publisher: str | None, report: ReplayReport, progress: ProgressFn | None,
         expected: int | None, reads: _ReadByWorkers | None = None) -> int:
    records = source.records(interleave=exporter is None) if isinstance(source, KafkaSource) else source.records()
    # The verifiers keep a few objects per record (what each lead was, marks, lanes): with the cyclic collector on,
    # its full collections walk all of them again and again (a third of the CPU of a verified replay). Nothing the
    # loop makes refers to itself in a cycle; refcounting frees what it drops, and the collector is back after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        count, sealed = _loop(records, verifiers, exporter, key, publisher, report, progress, expected, reads)
    finally:
        if collecting:
            _collect_again()
    report.sealed = sealed
    return count


def _collect_again() -> None:
    """The collector back on, after a read with it off. Everything made meanwhile and still alive (the verifiers'
    state, hundreds of thousands of objects) sits in the youngest generation: the first collection after enable()
    would walk it all (8 % of the samples of a verified leadbus.cases replay under py-spy). Frozen and thawed, it joins
    the oldest generation unwalked, as if it had aged there."""
    gc.freeze()
    gc.enable()
    gc.unfreeze()


#: (verifier name, its check) per verifier that applies to a topic; None: a check whose findings come later, put here.
_Checks = list[tuple[str, Callable[[ReplayRecord], Any] | None]]


#: Records held back for a stage signature at most: past it they are all let go, untrusted (read whole, as ever), so
#: that a lane never signed (a hostile topic) holds no more than this in memory.
_HOLD_MAX = 20_000
#: Records read ahead at a time by a replay that checks stage seals (see `_loop`). Few: a run's records are let go to
#: the other checks as soon as its signature is checked, while their values (~2.4 KB each on the accepted topic) are
#: still in the processor's caches from the seal's hashing. Measured for issue #14 (session 23, interleaved in one
#: process, 12 rounds, leadbus.leads.accepted cut in two): CPU per replay 1.16 s at 512, 1.04 s at 64 and 96; 10 % less
#: on leadbus.cases and the intake topics too (6 and 4 rounds); 32 took more again.
_CHUNK = 64
CHANGELOG_PREFIX = "leadbus.state."


def _loop(records: Iterable[ReplayRecord], verifiers: list[Verifier], exporter: Exporter | None, key: bytes | None,
          publisher: str | None, report: ReplayReport, progress: ProgressFn | None,
          expected: int | None, reads: _ReadByWorkers | None = None) -> tuple[int, int]:
    """Each record through the checks that apply, then counted (and exported).

    With a `StageSealVerifier` that vouches (a Kafka replay: its findings are sorted by coordinates at the end), that
    check runs first on each record as it comes, and a sealed record waits, with every record read after it, until
    the signature closing its run is checked: its other checks then run in the order the records came, on a record
    `trusted` (read by the fields they need) when the signature vouched for it, else read whole as always. Records are
    then read 512 at a time, and the stage check takes a lane's usual records in a row at once (`check_many`); a
    trusted stretch of one topic goes through each of its checks at once (`check_run`, for the checks of `_RUNS`),
    its findings put back in the order one record after the other gives.
    """
    count = 0
    by_topic: dict[str, _Checks] = {}  # the checks that apply, per topic
    by_workers: dict[str, _Checks] = {}  # the same for a record the content workers read whole: no `Decodes` (None)
    by_vouched: dict[str, _Checks] = {}  # the same for a `trusted` record with a value: no `Decodes`
    takes = reads.accepted.takes if reads is not None else None
    findings = report.findings
    tally = report.by_type_publisher
    sealed = 0
    next_tick = 0
    stage = next((v for v in verifiers if isinstance(v, StageSealVerifier) and v.vouching), None)
    others = [v for v in verifiers if v is not stage]
    trust_all = not verifiers and exporter is None  # nothing verified: the summary reads what it needs alone

    def process(record: ReplayRecord) -> None:
        nonlocal sealed
        to_workers = takes is not None and takes(record)
        if to_workers:
            checks = by_workers.get(record.topic)
            if checks is None:
                checks = by_workers[record.topic] = [(v.name, None if isinstance(v, Decodes) else v.check)
                                                     for v in others if _applies(v, record.topic)]
        elif record.trusted and record.value is not None:  # a record a stage seal vouched for: the bytes it wrote,
            checks = by_vouched.get(record.topic)  # which `Decodes` passes without a look (it finds nothing there)
            if checks is None:
                checks = by_vouched[record.topic] = [(v.name, v.check) for v in others
                                                     if _applies(v, record.topic) and type(v) is not Decodes]
        else:
            checks = by_topic.get(record.topic)
            if checks is None:
                checks = by_topic[record.topic] = [(v.name, v.check) for v in others if _applies(v, record.topic)]
        position = -1
        for name, check in checks:
            if check is None:
                position = len(findings)
                continue
            try:
                found = check(record)
            except Exception as exc:  # noqa: BLE001 - hostile bytes must give a located failure, never a crash
                found = [_unreadable(record, name, exc)]
            if found:
                findings.extend(found)
        if record.headers and _sealed(record, findings):
            sealed += 1
        if to_workers:
            assert reads is not None
            reads.wait(record, position, key is None or record.key == key)  # selected and counted when it is back
            return
        count_one(record)

    def count_one(record: ReplayRecord) -> None:
        if key is not None and record.key != key:
            return
        try:
            who = publisher_of(record)
        except Exception:  # noqa: BLE001 - the verifiers located what is wrong with it
            who = "?"
        if publisher is not None and not publisher_matches(who, publisher):
            return
        report.selected += 1
        tally[(record.type_name, who)] += 1
        if exporter is not None:
            exporter.write(record, who)

    # A trusted stretch of one topic (a signature let its run go) goes through each check at once (`check_run`, see
    # `_RUNS`), then is counted at once: the same findings, in the same order, as one record after the other.
    by_run: dict[str, list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]] | None] = {}
    counted_alone = key is not None or publisher is not None or exporter is not None

    def run_checks(topic: str) -> list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]] | None:
        if topic not in by_run:
            by_run[topic] = _run_checks((v for v in others if _applies(v, topic) and type(v) is not Decodes),
                                        _TRUSTED_RUNS)
        return by_run[topic]

    def process_run(run: list[ReplayRecord], checks: list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]],
                    tallied: Callable[[list[ReplayRecord], dict[tuple[str, str], int]], int] = tally_run) -> None:
        nonlocal sealed
        found = [(position, got) for position, check in checks if (got := check(run))]
        if len(found) == 1:
            for _, judged in found[0][1]:
                findings.extend(judged)
        elif found:  # in record order, and each record's in the order of its checks
            for _, _, judged in sorted(((i, position, judged) for position, got in found for i, judged in got),
                                       key=lambda row: (row[0], row[1])):
                findings.extend(judged)
        if counted_alone:
            for record in run:
                if record.headers and record.has_seal():
                    sealed += 1
                count_one(record)
        else:
            sealed += tallied(run, tally)
            report.selected += len(run)

    # A stretch of one topic that no stage seal covers goes the same way when each check that applies takes a run
    # (`_PLAIN_RUNS`) and no content worker reads its records: the same findings, in the same order.
    plain_runs: dict[str, list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]] | None] = {}
    plain_quick: dict[str, PlainIntake | None] = {}

    def plain_checks(topic: str) -> list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]] | None:
        if topic not in plain_runs:
            plain_runs[topic] = _run_checks((v for v in others if _applies(v, topic)), _PLAIN_RUNS)
        return plain_runs[topic]

    def process_plain(stretch: list[ReplayRecord]) -> None:
        topic = stretch[0].topic
        checks = plain_checks(topic)
        if checks is None:
            for record in stretch:
                process(record)
            return
        if topic not in plain_quick:  # an intake topic's usual records judged and counted in one C pass
            plain_quick[topic] = PlainIntake.of(topic, [v for v in others if _applies(v, topic)])
        quick = None if counted_alone else plain_quick[topic]
        if quick is None:
            process_run(stretch, checks, tally_each)
            return
        nonlocal sealed
        i, size = 0, len(stretch)
        while i < size:
            taken = quick.take(stretch, i, tally, findings)
            report.selected += taken
            sealed += taken
            i += taken
            if i < size and not quick.ended:  # a record it does not take: the checks one after the other judge it
                process_run(stretch[i:i + 1], checks, tally_each)
                quick.learn(stretch[i])
                i += 1

    def drain() -> None:
        """The records at the head of `held` that no signature holds back any more, in order."""
        while held and not held[0].pending:
            record = held.popleft()
            if takes is None and record.trusted and record.value is not None:
                checks = run_checks(record.topic)
                if checks is not None:
                    run, topic = [record], record.topic
                    run += take_trusted(held, topic)  # the rest of the run: let go trusted, with a value, of the topic
                    # accepted leads name their publisher in their fields: counted one by one (the C tally takes none)
                    process_run(run, checks, tally_accepted if topic == LEADS_ACCEPTED else tally_run)
                    continue
            process(record)

    held: deque[ReplayRecord] = deque()
    if stage is None:
        for record in records:
            count += 1
            if trust_all:
                record.trusted = True
            process(record)
            if progress is not None and count >= next_tick:
                progress(count, expected)
                next_tick = count + 1000
    else:
        # Read a few hundred records at a time: the stage check takes each lane's usual records in a row at once
        # (`check_many`: in C, no call per record), each of the others alone (`check`).
        iterator = iter(records)
        while chunk := list(islice(iterator, _CHUNK)):
            i, size = 0, len(chunk)
            while i < size:
                room = _HOLD_MAX + 1 - len(held)  # let go at the same record as one by one
                try:
                    taken = stage.check_many(chunk, i, min(size, i + room))
                except Exception:  # noqa: BLE001 - `check` judges the record, and locates what it cannot read
                    taken = 0
                if taken:
                    held.extend(chunk[i:i + taken])
                    i += taken
                    count += taken
                elif plain := stage.unsealed_many(chunk, i, min(size, i + room)):
                    # records no stage seals (an agency's, on its intake topic): nothing for the stage check, nothing
                    # held back for them; behind held records they wait their turn, else they go through now
                    stretch = chunk[i:i + plain]
                    i += plain
                    count += plain
                    if held:
                        held.extend(stretch)
                    else:
                        process_plain(stretch)
                else:
                    record = chunk[i]
                    i += 1
                    count += 1
                    try:
                        found = stage.check(record)
                    except Exception as exc:  # noqa: BLE001 - as above
                        found = [_unreadable(record, stage.name, exc)]
                    if found:
                        findings.extend(found)
                    if held or record.pending:
                        held.append(record)
                    else:
                        process(record)
                if held:
                    if len(held) > _HOLD_MAX:  # a lane whose signature does not come (hostile, or cut): read whole
                        stage.let_go()
                    if not held[0].pending:
                        drain()
                if progress is not None and count >= next_tick:
                    progress(count, expected)
                    next_tick = count + 1000
        stage.let_go()
        drain()
    if progress is not None:
        progress(count, expected)
    return count, sealed


#: The checks a trusted run goes through check by check (each keeps its own state, read from no other check's): with
#: any other check applying to a topic (the accepted and intake leads', whose states meet, or one added), its records
#: go one by one.
_RUNS = (PartitionOrder, CaseVersions, HandoverSteps, RoutedVersions, BusSealVerifier)
#: The checks a trusted run goes through check by check: those of `_RUNS`, with the accepted leads' (`AcceptedLeads`
#: reads the intake leads' state at `finish` alone, and no other check reads its own).
_TRUSTED_RUNS = (*_RUNS, AcceptedLeads)
#: The checks a stretch no stage seal covers goes through check by check (`process_plain`): those of `_RUNS`, with the
#: body's (`Decodes`, no state) and the intake leads' (`IntakeLeads`: only `AcceptedLeads` reads its state, and never
#: on an intake topic, so not within a stretch of one topic).
_PLAIN_RUNS = (*_RUNS, Decodes, IntakeLeads)


def _run_checks(applying: Iterable[Verifier], kinds: tuple[type, ...],
                ) -> list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]] | None:
    """Each check's run check (`check_run`, else one by one within the run) with its position among `applying`, or
    None when one of them is not of `kinds`: a check that may depend on another's state record by record, so the
    records go one after the other."""
    runs: list[tuple[int, Callable[[list[ReplayRecord]], RunFindings]]] = []
    for position, verifier in enumerate(applying):
        if not isinstance(verifier, kinds):
            return None
        check_run = getattr(verifier, "check_run", None)
        runs.append((position, check_run if check_run is not None else partial(each, verifier)))
    return runs


def _applies(verifier: Verifier, topic: str) -> bool:
    applies = getattr(verifier, "applies", None)
    return True if applies is None else bool(applies(topic))


# -- several processes: `leadbus.audit.split` ---------------------------------------------------------------

#: Verifiers whose state spans partitions: merged in the parent and finished there. Every other verifier keeps
#: state per partition (lanes, case versions, steps, routed versions, order) and finishes in its process.
_SHARED = (IntakeLeads, AcceptedLeads)


# -- one partition cut in two -------------------------------------------------------------------------------


def _cuttable(spans: list[PartitionSpan], verifiers: list[Verifier], split_min: int) -> bool:
    """A replay of `leadbus.leads.accepted` alone (one partition: the partitions cannot be split between processes),
    large enough, with verifiers whose state `leadbus.audit.boundary` carries over a cut."""
    from leadbus.audit.boundary import can_cut

    read = [s for s in spans if s.size]
    return (len(read) == 1 and read[0].topic == LEADS_ACCEPTED and read[0].size >= split_min
            and can_cut(verifiers, LEADS_ACCEPTED))


@dataclass
class _Tail:
    records: int
    selected: int
    sealed: int
    tally: Counter[tuple[str, str]]
    findings: list[Finding]
    verifiers: list[Verifier]  # not finished: the parent carries their state over the cut (`boundary.join`)
    error: str | None = None
    leads: Any = None  # `boundary.TailLeads`: its accepted leads' revisions judged, by their hashes


def _tail_child(conn: Any, source: KafkaSource, span: PartitionSpan, verifiers: list[Verifier], key: bytes | None,
                publisher: str | None, parents: Any = None) -> None:
    """The tail's read sent back (`_Tail`), its accepted leads settled (`boundary.settle_tail`); then the notes of the
    leads the parent asks for (those its head read too), and done: at once when the parent closes its end without a
    question (`parents`, the parent's end this fork copied, closed here, else that close would not end the wait)."""
    from leadbus.audit.boundary import asked, note_tail, settle_tail

    if parents is not None:
        parents.close()
    settled = None
    try:
        note_tail(verifiers)
        report = ReplayReport("")
        count = _read_span(source, span, verifiers, key, publisher, report, None)
        settled = settle_tail(verifiers)
        tail = _Tail(count, report.selected, report.sealed, report.by_type_publisher, report.findings, verifiers,
                     leads=settled[0] if settled is not None else None)
    except BaseException as exc:  # noqa: BLE001 - whatever happens goes back to the parent as an error
        tail = _Tail(0, 0, 0, Counter(), [], [], f"{type(exc).__name__}: {exc}")
    try:
        conn.send_bytes(handed(tail))
    except OSError:  # the parent stopped (an error of its own) and closed its end
        settled = None
    if settled is not None:
        try:
            question = taken(conn.recv_bytes())
        except EOFError:  # no lead of the tail's in the head (the usual case), or the parent stopped
            question = None
        if question is not None:
            conn.send_bytes(handed(asked(settled[1], question)))
    conn.close()


def _ask(conn: Any, hashes: set[int]) -> list[Any] | None:
    """The tail's notes of the leads of these hashes (`boundary.join`'s `ask`); None when its process is gone."""
    try:
        conn.send_bytes(handed(hashes))
        return list(taken(conn.recv_bytes()))
    except (EOFError, OSError):
        return None


def _run_cut(source: KafkaSource, spans: list[PartitionSpan], verifiers: list[Verifier], key: bytes | None,
             publisher: str | None, report: ReplayReport, progress: ProgressFn | None) -> int:
    """The one partition read in two halves at once: the tail by a forked process, the head here; then the tail's
    findings judged again against the head (`boundary.join`), or, where they cannot be, the tail read here too."""
    import multiprocessing

    from leadbus.audit.boundary import head_hashes, join

    span = next(s for s in spans if s.size)
    middle = span.start + span.size * _CUT_HEAD_PERMILLE // 1000
    head, tail = (PartitionSpan(span.topic, span.partition, span.start, middle),
                  PartitionSpan(span.topic, span.partition, middle, span.end))
    source.close()  # no Kafka client may live across a fork
    context = multiprocessing.get_context("fork")
    conn, theirs = context.Pipe(duplex=True)
    gc.freeze()  # as for the split: the child's collections do not copy the pages shared with the parent
    try:
        process = context.Process(target=_tail_child, args=(theirs, source, tail, verifiers, key, publisher, conn),
                                  daemon=True)
        process.start()
    finally:
        gc.unfreeze()
    theirs.close()
    scaled = None if progress is None else (lambda done, _: progress(done * span.size // head.size, span.size))
    try:
        count = _read_span(source, head, verifiers, key, publisher, report, scaled)
    except BaseException:
        conn.close()  # the tail's process ends at its hand-back, which nobody reads
        raise
    try:
        # the tail's process still reading: what `join` makes of the head's leads is made while waiting for it
        own = head_hashes(verifiers) if not conn.poll(0) else None
        try:
            part: _Tail = taken(conn.recv_bytes())
        except EOFError:
            part = _Tail(0, 0, 0, Counter(), [], [], f"a replay process ended with {process.exitcode}")
        if part.error:
            raise SourceError(part.error)
        report.processes = 2
        joined = join(verifiers, part.verifiers, part.findings, part.leads, partial(_ask, conn), own)
    finally:
        conn.close()  # the tail's process, waiting for a question, ends
        reap(process)
    if joined is None:  # the tail's first records cannot be judged again from what it noted: read it here
        report.cut = "tail read again"
        return count + _read_span(source, tail, verifiers, key, publisher, report, None)
    report.cut = "joined"
    report.findings.extend(joined)
    report.selected += part.selected
    report.sealed += part.sealed
    report.by_type_publisher.update(part.tally)
    return count + part.records


#: The head's share (‰) of a partition cut in two: the parent's read took 4 % more CPU per record than its forked
#: process's (median of 9 cuts of leadbus.leads.accepted at 500‰, 0.98-1.18), and the tail's hand-back (~12 ms) comes
#: before the parent's join, so both reads end together with a little less than half here.
_CUT_HEAD_PERMILLE = 490

#: librdkafka's prefetch (KB) for each half of a partition cut in two: the head stops at the middle (beyond it the
#: default queue fetched a third of the partition again for nothing), and the checks, not the fetches, set the pace.
_CUT_PREFETCH_KB = 8192


def _read_span(source: KafkaSource, span: PartitionSpan, verifiers: list[Verifier], key: bytes | None,
               publisher: str | None, report: ReplayReport, progress: ProgressFn | None) -> int:
    sub = KafkaSource(source.settings, source.topics, source.catalog, source.start_ms, source.end_ms,
                      timeout=source.timeout, batch=source.batch, prefetch_kbytes=_CUT_PREFETCH_KB)
    sub.spans = [span]
    part = ReplayReport("")
    try:
        count = _run(sub, verifiers, None, key, publisher, part, progress, None)
    finally:
        sub.close()
    report.findings.extend(part.findings)
    report.selected += part.selected
    report.sealed += part.sealed
    report.by_type_publisher.update(part.by_type_publisher)
    return count


_unreadable = unreadable  # a check that raised: a located failure


def _now_ms_soon(options: ReplayOptions, bus: KafkaSettings | None) -> Callable[[], int]:
    """`_now_ms` asked for on a thread of its own now (`soon`); the function returned waits for it. On any failure the
    auditor's clock alone, as `_now_ms` falls back to."""
    return soon(lambda: _now_ms(options, bus), lambda: int(options.clock() * 1000), "leadbus-replay-clock")


def _now_ms(options: ReplayOptions, bus: KafkaSettings | None) -> int:
    """When the replay began: the auditor's clock, or the newest broker stamp on the bus when later."""
    now = int(options.clock() * 1000)
    if bus is None:
        return now
    from leadbus.audit.broker_time import latest_broker_time

    try:
        stamped = latest_broker_time(bus)
    except Exception:  # noqa: BLE001 - no broker time to go by: the clock alone, as before
        return now
    return now if stamped is None else max(now, stamped)


def _published_head(source: ArchiveSource, options: ReplayOptions) -> list[Finding]:
    """The archive's manifest against the latest head its sink published on the bus, or the notice that it was
    checked against none."""
    if options.heads_from is None:
        return [Finding("ARCHIVE_NO_HEAD", "no --head, and no bus named to read the heads the archive sink published "
                        "from: the manifest's chain was not checked against a head kept elsewhere, so a manifest "
                        "rolled back to an earlier head or chained again whole is not told", "(archive)",
                        file="MANIFEST.jsonl", failure=False)]
    from leadbus.audit.archive_heads import judge, read_heads
    from leadbus.sinks.archive import parse_manifest

    try:
        heads = read_heads(options.heads_from)
    except Exception as exc:  # an unreachable bus or a refused read is an access error
        raise ReplayError(f"cannot read the archive's published heads: {exc}") from exc
    registry = getattr(options.seal_verifier, "registry", None)
    return judge(parse_manifest(source.root)[0], heads, registry if isinstance(registry, KeyRegistry) else None,
                 options.archive_name)


def _sealed(record: ReplayRecord, findings: list[Finding]) -> bool:
    """Whether `record` carries an agency seal; headers that are not (name, value) pairs (a record of someone else's
    making) are a located failure, never a crash of the replay."""
    try:
        return record.has_seal()
    except (TypeError, ValueError) as exc:
        findings.append(Finding.at(record, "MALFORMED_HEADERS", "the record's headers are not (name, value) pairs "
                                   f"({type(exc).__name__}: {str(exc)[:200]}): altered or of someone else's making"))
        return False


def summary_lines(report: ReplayReport) -> list[str]:
    """The summary as plain text lines (the CLI renders it as tables on a terminal)."""
    lines = [f"replayed {report.records} records from {report.source} in {report.seconds:.1f}s "
             f"({report.rate:,.0f}/s); {report.selected} selected"]
    for (kind, who), n in sorted(report.by_type_publisher.items()):
        lines.append(f"  {kind:32} {who:20} {n}")
    if report.sealed and not report.seals_checked:
        lines.append(f"{report.sealed} records carry seals (leadbus-signature): NOT checked, "
                     "no seal verifier installed")
    failures = report.failures
    for f in failures:
        lines.append(f"FAIL {f.check} {f.where()}: {f.message}")
    notices = report.notices
    for f in notices:
        lines.append(f"note {f.check} {f.where()}: {f.message}")
    verdict = "verified" if report.verified else ("VERIFICATION FAILED" if failures else "not verified")
    lines.append(f"{verdict}: {len(failures)} failures, {len(notices)} notices")
    return lines


def report_json(report: ReplayReport) -> dict[str, Any]:
    return {"source": report.source, "records": report.records, "selected": report.selected,
            "by_type_publisher": [{"type": t, "publisher": p, "events": n}
                                  for (t, p), n in sorted(report.by_type_publisher.items())],
            "sealed": report.sealed, "seals_checked": report.seals_checked, "verified": report.verified,
            "findings": [f.to_json() for f in report.findings], "seconds": report.seconds}
