"""`leadbus replay`: read a topic (or the archive) over a period, verify it, export it, summarise it.

    report = replay(ReplayOptions(topics=["leadbus.leads.accepted"], source="kafka", verify=True), settings)
    report.status   # 0 verified, 1 a verification failure (each with its coordinates)

Every record of the period goes through the verifiers (a filter by key or publisher selects what is
exported and counted, never what is verified: a gap is a gap whoever's record is missing). An archive
replay first checks the archive's chained manifest (`leadbus archive verify`, with `--head` the chain's
head published elsewhere); each problem is a failure located at its file.

The seal slot: `ReplayOptions.seal_verifier` takes the verifier of signatures and sequence numbers
(see `leadbus.audit.verification`); `seal_verifier_factory` is where the bus's own is built once the
signing code is merged. Without one, records carrying seals are counted as *not checked*.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from leadbus.audit.export import Exporter, open_exporter
from leadbus.audit.sources import ArchiveSource, KafkaSource, PartitionSpan, SourceError
from leadbus.audit.verification import (
    Finding,
    ReplayRecord,
    Verifier,
    publisher_matches,
    publisher_of,
    standard_verifiers,
)
from leadbus.avro import SchemaCatalog, packaged_catalog
from leadbus.clients import KafkaSettings

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
    skew_ms: int = 15_000
    renormalise: bool = True
    seal_verifier: Verifier | None = None
    extra_verifiers: list[Verifier] = field(default_factory=list)


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
    spans: list[PartitionSpan] = field(default_factory=list)

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
    catalog = catalog or packaged_catalog()
    source: KafkaSource | ArchiveSource
    if options.source == "kafka":
        if settings is None:
            raise ReplayError("a Kafka replay needs the bus's address (--bootstrap)")
        from leadbus.schema_topic import load_schemas

        try:
            load_schemas(settings.bootstrap, catalog)  # every writer schema ever published, not only the packaged
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
    expected = source.expected() if isinstance(source, ArchiveSource) else sum(s.size for s in spans)

    verifiers: list[Verifier] = []
    if options.verify:
        verifiers = [*standard_verifiers(options.skew_ms, renormalise=options.renormalise), *options.extra_verifiers]
        if options.seal_verifier is not None:
            verifiers.append(options.seal_verifier)
            report.seals_checked = True
        if isinstance(source, ArchiveSource):
            for problem in source.verify():
                report.findings.append(Finding(f"ARCHIVE_{problem.kind.upper()}", problem.message,
                                               _topic_of(problem.path), file=problem.path))
    try:
        exporter, handle = (open_exporter(options.fmt, options.out, catalog, stdout or sys.stdout)
                            if options.fmt else (None, None))
    except (ValueError, OSError) as exc:
        source.close()
        raise ReplayError(str(exc)) from exc
    key = options.key.encode() if options.key is not None else None
    read_began = time.monotonic()
    try:
        report.records = _run(source, verifiers, exporter, key, options.publisher, report, progress, expected)
    except SourceError as exc:
        raise ReplayError(str(exc)) from exc
    finally:
        source.close()
        if exporter is not None:
            exporter.close()
        if handle is not None:
            handle.close()
    for verifier in verifiers:
        try:
            report.findings.extend(verifier.finish())
        except Exception as exc:  # noqa: BLE001 - reported, never a crash
            report.findings.append(Finding("UNREADABLE", f"the {verifier.name} check failed at the end: "
                                                         f"{type(exc).__name__}: {exc}", "(replay)"))
    if isinstance(source, ArchiveSource):
        known = {f.file for f in report.findings}
        for path, message in source.unreadable:
            if path not in known:
                report.findings.append(Finding("ARCHIVE_UNREADABLE", message, _topic_of(path), file=path))
    report.read_seconds = time.monotonic() - read_began
    report.seconds = time.monotonic() - started
    report.verified = options.verify and not report.failures
    return report


def _topic_of(path: str) -> str:
    return path.split("/", 1)[0] if "/" in path else "(archive)"


def _run(source: KafkaSource | ArchiveSource, verifiers: list[Verifier], exporter: Exporter | None,
         key: bytes | None, publisher: str | None, report: ReplayReport, progress: ProgressFn | None,
         expected: int | None) -> int:
    count = 0
    checks = [(v.name, v.check) for v in verifiers]
    findings = report.findings
    tally = report.by_type_publisher
    sealed = 0
    next_tick = 0
    for record in source.records():
        count += 1
        for name, check in checks:
            try:
                found = check(record)
            except Exception as exc:  # noqa: BLE001 - hostile bytes must give a located failure, never a crash
                found = [_unreadable(record, name, exc)]
            if found:
                findings.extend(found)
        if record.headers and record.has_seal():
            sealed += 1
        if key is not None and record.key != key:
            continue
        try:
            who = publisher_of(record)
        except Exception:  # noqa: BLE001 - the verifiers located what is wrong with it
            who = "?"
        if publisher is not None and not publisher_matches(who, publisher):
            continue
        report.selected += 1
        tally[(record.type_name, who)] += 1
        if exporter is not None:
            exporter.write(record, who)
        if progress is not None and count >= next_tick:
            progress(count, expected)
            next_tick = count + 1000
    if progress is not None:
        progress(count, expected)
    report.sealed = sealed
    return count


def _unreadable(record: ReplayRecord, verifier: str, exc: Exception) -> Finding:
    return Finding.at(record, "UNREADABLE", f"the {verifier} check cannot read this record "
                                            f"({type(exc).__name__}: {str(exc)[:200]}): altered or damaged")


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
