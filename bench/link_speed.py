"""Linking speed: offline (`leadbus link`'s code path) and streaming through the linking stage.

    python bench/link_speed.py [--leads N]

Prints the offline rate, the streaming rate (broker timestamps of the first and last
CaseUpdated, start-up excluded), their ratio, the worker's CPU per lead (user + system, from the
first CaseUpdated seen to the last poll: on a shared machine steadier than the rate) against the
offline loop's CPU per lead (their ratio: the bar's ratio without the broker and the neighbours' load), the
linking handler's CPU per lead in this process without Kafka (over an in-memory state view, as the stage calls it)
and where it goes (read the linking view intake wrote in `LeadAccepted` v7, link, the `CaseUpdated` record, encode it;
for records without views: decode, build the lead, link and so on), the
changelog the stream wrote per lead (records and bytes of `leadbus.state.linking`, before
compaction), and the state size per million identifiers (bytes of the link store's keys and values,
and the RocksDB folder on disk).
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from leadbus.avro import encode, packaged_catalog
from leadbus.avro.codec import HEADER_SIZE
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.logs import configure_cli_logging
from leadbus.processors.core.intake import Source, examine
from leadbus.processors.core.intake import accepted_record as make_accepted
from leadbus.processors.core.linking import DictStore, Linker, LinkOutcome
from leadbus.processors.core.normalize import normalise
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler, case_updated_record, linked_lead
from leadbus.processors.stage import GC_THRESHOLDS
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import CASES, LEADS_ACCEPTED, LINKING_CHANGELOG, load_declarations

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.kafka_helpers import read_all


class _View(dict[bytes, bytes]):
    """The stage's state view, in memory: ``generation`` never moves, as no transaction aborts here."""

    generation = 1


def handler_steps(records: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """CPU seconds per lead of the linking handler over an in-memory view, and of its steps run one by one (the best
    of two rounds each: the machine is shared), with the collector's thresholds the stage runs with (at Python's
    default, collections walking the decoded records this harness holds doubled the decode and build figures)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return _handler_steps(records)
    finally:
        gc.set_threshold(*thresholds)


def _handler_steps(records: list[tuple[bytes, bytes]]) -> dict[str, float]:
    now = datetime.now(UTC)
    catalog = packaged_catalog()
    case_schema = catalog.latest("cn.leadbus.CaseUpdated")
    inputs = [Record(LEADS_ACCEPTED, 0, offset, key, value) for offset, (key, value) in enumerate(records)]

    def whole() -> None:
        handler, view = LinkingHandler(catalog), _View()
        for record in inputs:
            for key, value in handler.handle(record, view, now).state.items():
                if value is None:
                    view.pop(key, None)
                else:
                    view[key] = value

    def timed(step: Any) -> float:
        return _per_lead(step, len(inputs))

    found: dict[str, float] = {"handler": timed(whole)}
    handler = LinkingHandler(catalog)
    if all(handler.read_view(value) is not None for _, value in records):
        # today's LeadAccepted (v7): the view intake derived of each lead read alone (`LinkingHandler.read_view`)
        views = [handler.read_view(value) for _, value in records]
        found["read view"] = timed(lambda: [handler.read_view(value) for _, value in records])
        outcomes: list[LinkOutcome] = []

        def link_views() -> None:
            linker = Linker(DictStore())
            outcomes[:] = [linker.link_member(*view) for view in views if view is not None]

        found["link"] = timed(link_views)
        return _output_steps(found, outcomes, case_schema, now)
    # a LeadAccepted without views: its compiled reader leaving out what linking never reads, then the lead built
    # from what is left (`LinkingHandler.read_accepted`)
    reader = handler.linking_reader
    assert reader is not None
    events = [reader(value, HEADER_SIZE)[0] for _, value in records]
    found["decode"] = timed(lambda: [reader(value, HEADER_SIZE) for _, value in records])
    leads = [linked_lead(event["lead"]) for event in events]
    found["build lead"] = timed(lambda: [linked_lead(event["lead"]) for event in events])
    outcomes: list[LinkOutcome] = []

    def link() -> None:
        linker = Linker(DictStore())
        pairs = zip(leads, events, strict=True)
        outcomes[:] = [linker.link(lead, event["identity"]["registrable_domains"]) for lead, event in pairs]

    found["link"] = timed(link)
    return _output_steps(found, outcomes, case_schema, now)


def _per_lead(step: Any, leads: int) -> float:
    """CPU seconds per lead of ``step``, the best of two rounds."""
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return best / leads


def _output_steps(found: dict[str, float], outcomes: list[LinkOutcome], case_schema: Any,
                  now: datetime) -> dict[str, float]:
    """The `CaseUpdated` record and its encoding, timed; "rest": what the handler spends beyond the steps."""
    found["case record"] = _per_lead(lambda: [case_updated_record(o.case, now) for o in outcomes], len(outcomes))
    cases = [case_updated_record(o.case, now) for o in outcomes]
    found["encode"] = _per_lead(lambda: [encode(case_schema, case) for case in cases], len(outcomes))
    found["rest"] = found["handler"] - sum(v for k, v in found.items() if k != "handler")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds the stream may take")
    args = parser.parse_args()
    configure_cli_logging()  # librdkafka's errors as one summarised line each, its transient retries at debug
    now = datetime.now(UTC) - timedelta(days=1)
    leads = list(TrafficGenerator(seed=8, same_suspect_share=0.45).leads(args.leads, now, timedelta(milliseconds=5)))

    normalised = [normalise(lead) for lead in leads]
    store = DictStore()
    linker = Linker(store)
    start, start_cpu = time.perf_counter(), time.process_time()
    for n in normalised:
        linker.link(n.lead, n.domains)
    offline = len(leads) / (time.perf_counter() - start)
    offline_cpu = (time.process_time() - start_cpu) / len(leads)  # seconds of this process's CPU per lead
    identifiers = sum(1 for k in store.data if k.startswith("i:"))
    state_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in store.data.items())

    catalog = packaged_catalog()
    schema = catalog.latest("cn.leadbus.LeadAccepted")
    lead_schema = catalog.latest("cn.leadbus.CaseLead")
    records = []
    for lead in leads:
        outcome = examine(encode(lead_schema, lead.to_avro()), Source(f"leadbus.intake.{lead.publisher.agency}", 0, 0),
                          catalog, datetime.now(UTC))
        records.append((lead.lead_id.encode(), encode(schema, make_accepted(outcome, datetime.now(UTC)))))  # type: ignore[arg-type]

    in_process = handler_steps(records)

    work = Path(tempfile.mkdtemp(prefix="leadbus-bench-link-"))
    with KafkaCluster(1, fast_start=False) as cluster:
        bootstrap = cluster.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        producer = KafkaSettings(bootstrap).producer(**{"enable.idempotence": True, "linger.ms": 5})
        for key, value in records:
            producer.produce(LEADS_ACCEPTED, key=key, value=value)
            producer.poll(0)
        producer.flush(120)
        worker = subprocess.Popen([sys.executable, "-m", "leadbus.cli", "process", "--stage", "linking", "-b",
                                   bootstrap, "--state-dir", str(work)], stdout=subprocess.DEVNULL,
                                  stderr=open(work / "linking.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + args.timeout
        process = psutil.Process(worker.pid)
        first: tuple[float, int] | None = None  # the worker's CPU seconds and the cases out when cases first appear
        last = (0.0, 0)
        published = 0
        while time.monotonic() < deadline and published < len(leads):
            time.sleep(0.5 if first is None else 2)
            published = len(read_all(bootstrap, CASES))
            times = process.cpu_times()
            last = (times.user + times.system, published)
            if first is None and published:
                first = last
        worker.terminate()
        worker.wait(30)
        messages = read_all(bootstrap, CASES)
        stamps = sorted(m.timestamp()[1] for m in messages)
        changelog = read_all(bootstrap, LINKING_CHANGELOG)
        changelog_bytes = sum(len(m.key() or b"") + len(m.value() or b"") for m in changelog)
        # The leads the stream linked (each has its l:<lead> key): all of them unless the timeout cut it short.
        linked = max(len({m.key() for m in changelog if (m.key() or b"").startswith(b"l:")}), 1)
        streaming = linked / max((stamps[-1] - stamps[0]) / 1000.0, 1e-3)
    disk = sum(p.stat().st_size for p in (work / "linking").rglob("*") if p.is_file())

    print(f"leads {len(leads)}, cases {len({v for k, v in store.data.items() if k.startswith('l:')})}, "
          f"identifiers {identifiers}")
    print(f"offline linking (normalised leads, in memory) : {offline:9.0f} leads/s")
    print(f"streaming through the linking stage          : {streaming:9.0f} leads/s   ratio {streaming / offline:.2f}")
    if linked < len(leads):
        print(f"INCOMPLETE: the stream linked {linked} of {len(leads)} leads within {args.timeout:.0f} s; "
              "its rate is over those")
    steps = ", ".join(f"{name} {cpu * 1e6:.0f}" for name, cpu in in_process.items() if name not in ("handler", "rest"))
    rest = in_process["rest"]  # negative when the neighbours' load moved between the rounds: then not a figure
    steps += f", rest {rest * 1e6:.0f}" if rest >= 0 else ", rest n/a (the load changed between rounds)"
    print(f"handler in process (no Kafka, state in memory): {in_process['handler'] * 1e6:.0f} µs per lead → CPU ratio "
          f"{offline_cpu / in_process['handler']:.2f}; by step (µs per lead): {steps}")
    if first is not None and last[1] > first[1]:
        # CPU of the worker process (user + system) per lead while it linked: what the stage costs whatever else
        # shares the machine (the rate above also depends on the broker and other processes on the cores).
        per_case = (last[0] - first[0]) / (last[1] - first[1])
        per_lead = per_case * len(messages) / linked
        print(f"worker CPU while linking: {per_lead * 1e6:.0f} µs per lead, offline {offline_cpu * 1e6:.0f} µs per lead"
              f" → CPU ratio {offline_cpu / per_lead:.2f} (load average {os.getloadavg()[0]:.1f})")
    print(f"changelog written by the stream: {len(changelog) / linked:.2f} records, "
          f"{changelog_bytes / linked:.0f} B per lead")
    print(f"state per million identifiers: {state_bytes / identifiers:.0f} B/identifier in the store → "
          f"{state_bytes / identifiers:.0f} MB per million; RocksDB on disk {disk / identifiers:.0f} B/identifier")


if __name__ == "__main__":
    main()
