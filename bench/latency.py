"""End-to-end latency: publish at a fixed rate with the whole pipeline running, time each lead to where it shows.

    python bench/latency.py [--rate 500] [--seconds 60] [--warmup 10] [--idle 10] [--stage-fill S]
                            [--registry-fill S] [--broker-property K=V] [--client-setting K=V]
                            [--fast-broker] [--region yrd] [--registry postgres|sqlite] [--stages] [--sweep]

A fresh single-node broker with every declared topic and schema; every pipeline stage
(`leadbus process --stage NAME`, processors/stages.py PIPELINE), the registry sink (on a throwaway PostgreSQL
server where one is installed, else SQLite), the archive sink and the three regional dashboards run as their own
supervised processes (restarted when they die), as `leadbus demo` runs them. Once every stage's group
is stable, simulated agencies publish through the SDK at `--rate` leads/s, first `--warmup` seconds
(not counted: the first seconds after start are the slowest), then `--seconds` measured. For each
measured lead, from the moment `Publisher.publish` was called to:

* cases:     the first `CaseUpdated` on `leadbus.cases` listing it, seen by a read_committed reader;
* registry:  its `case_members` row in the registry database (the lead in its case), polled every 20 ms;
* dashboard: the bulletin of its case at that version on the regional dashboard's event stream (`/events`,
             signed in), for the leads whose case at that version belongs to that region. A case that reaches the
             region only at a later version (a lead of the region joins it) is not timed: "that version or later"
             timed it, and its wait for that next lead was the dashboard's p99 tail, set by the traffic, not the bus.

Prints p50/p95/p99 (and max) of each, with the settings used and the load average, and where the CPU goes: each
process's (every stage, sink and dashboard, the broker, PostgreSQL with its backends, the bench — its publisher and
its readers apart) in cores used and in CPU ms per lead published (unlike latency, little affected by what else
the machine runs), the broker's by thread (its JIT compilers, its collector, Kafka's own threads), and each
process's upkeep measured over `--idle` seconds before publishing, with its CPU per lead without that upkeep.
`--stages` adds each stage's consumer lag every 5 s (a stage whose lag grows is the one falling behind). `--sweep` runs
once per batch fill setting of `SWEEP`, each on a fresh broker and pipeline, and
ends with a table of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, ConsumerGroupState, IsolationLevel, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_cpu import warm_transactions  # bench/, this script's folder

from leadbus.avro import decode, packaged_catalog
from leadbus.batches import next_batch
from leadbus.clients import CLIENT_CONFIG_ENV, KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.localbroker.cluster import free_port
from leadbus.logs import configure_cli_logging
from leadbus.models import CaseLead
from leadbus.processors.stages import PIPELINE
from leadbus.producers.traffic import Traffic
from leadbus.provisioning.topics import apply_topics
from leadbus.schema_topic import publish_schemas
from leadbus.sinks.registry_sink import KINDS as REGISTRY_KINDS
from leadbus.supervise import ChildSpec, Supervisor
from leadbus.topics import CASES, INTAKE_BY_LEAD, LEADS_ACCEPTED, load_declarations, region_topic

CATALOG = packaged_catalog()
ROOT = Path(__file__).resolve().parents[1]
REGISTRY_INPUTS = tuple(REGISTRY_KINDS)
PASSWORD = "bench-latency-pw"  # a throwaway user of a throwaway dashboard


@dataclass
class Seen:
    """Raw observations, analysed after the run (the watcher threads only take timestamps)."""

    published: dict[str, float] = field(default_factory=dict)
    case_updates: list[tuple[float, str, int, list[str]]] = field(default_factory=list)
    registry: dict[str, float] = field(default_factory=dict)
    dashboard: list[tuple[float, str, int]] = field(default_factory=list)
    #: `--hops`: when each record on the path became visible to a read_committed reader, by its coordinates.
    visible: dict[tuple[str, int, int], float] = field(default_factory=dict)


class RegistryDb:
    """The registry sink's database as the bench reads it: member rows as they appear, and the offsets consumed.

    SQLite: new `case_members` rows by rowid. PostgreSQL: a bench-only trigger copies each inserted member row's
    lead id into `bench_seen` (a serial key, one writer: committed in key order), read by that key — polling
    `case_members` itself (keyed by case, then lead) would scan it every 20 ms and count in PostgreSQL's CPU.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")

    def prepare(self) -> None:
        """Before the sink starts: the schema (the sink's migrations), and on PostgreSQL the bench's trigger."""
        if not self.postgres:
            return
        from leadbus.sinks.registry import registry_engine

        registry_engine(self.url).dispose()
        with self.connect() as conn:
            conn.execute("CREATE TABLE bench_seen (seq bigserial PRIMARY KEY, lead_id text NOT NULL)")
            conn.execute("CREATE FUNCTION bench_seen() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN INSERT INTO bench_seen (lead_id) VALUES (NEW.lead_id); RETURN NULL; END $$")
            conn.execute("CREATE TRIGGER bench_seen AFTER INSERT ON case_members FOR EACH ROW "
                         "EXECUTE FUNCTION bench_seen()")
            conn.commit()

    def connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=False)
        return sqlite3.connect(f"file:{self.url.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=1)

    def members_after(self, conn: Any, last: int) -> list[tuple[int, str]]:
        if self.postgres:
            rows = conn.execute("SELECT seq, lead_id FROM bench_seen WHERE seq > %s ORDER BY seq", (last,)).fetchall()
            conn.rollback()  # a fresh snapshot next time
            return [(int(s), str(lead)) for s, lead in rows]
        return [(int(r), str(lead)) for r, lead in conn.execute(
            "SELECT rowid, lead_id FROM case_members WHERE rowid > ? ORDER BY rowid", (last,)).fetchall()]

    def consumed(self) -> dict[tuple[str, int], int]:
        try:
            with contextlib.closing(self.connect()) as conn:
                rows = conn.execute("SELECT topic, partition, next_offset FROM consumed_offsets").fetchall()
        except Exception:  # noqa: BLE001 - not created yet, busy a moment: a gap in the lag table
            return {}
        return {(t, p): o for t, p, o in rows}


class Watchers:
    def __init__(self, kafka: KafkaSettings, db: RegistryDb, dashboard: str, seen: Seen,
                 path: tuple[str, ...] = ()) -> None:
        self.kafka, self.db, self.dashboard, self.seen = kafka, db, dashboard, seen
        self.path = path  # `--hops`: the topics on the path, whose records' arrival is timed
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True)
                        for t in (self._cases, self._registry, self._dashboard, *([self._path] if path else []))]
        self.ready = [threading.Event() for _ in self.threads]  # each thread's clients are set up

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def _cases(self) -> None:
        consumer = self.kafka.consumer(f"bench-latency-{uuid.uuid4()}")
        meta = consumer.list_topics(CASES, timeout=30).topics[CASES]
        consumer.assign([TopicPartition(CASES, p, OFFSET_BEGINNING) for p in meta.partitions])
        consumer.poll(0.1)  # its threads started
        self.ready[0].set()
        try:
            while not self.stop.is_set():
                msg = consumer.poll(0.1)
                if msg is None or msg.error():
                    continue
                now = time.time()
                _, case = decode(CATALOG, msg.value() or b"")
                self.seen.case_updates.append((now, str(case["case_id"]), int(case["version"]),
                                               [str(m) for m in case["members"]]))
        finally:
            consumer.close()

    def _path(self) -> None:
        """When each record on the path becomes visible (only its coordinates: decoded after the run)."""
        consumer = self.kafka.consumer(f"bench-latency-{uuid.uuid4()}")
        parts = [TopicPartition(t, p, OFFSET_END) for t in self.path
                 for p in consumer.list_topics(t, timeout=30).topics[t].partitions]
        consumer.assign(parts)
        consumer.poll(0.1)
        self.ready[3].set()
        visible = self.seen.visible
        try:
            while not self.stop.is_set():
                msgs = next_batch(consumer, 1000, 0.1)  # at once when there are records: `consume` waits its timeout
                now = time.time()
                for msg in msgs:
                    if not msg.error():
                        visible[(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)] = now
        finally:
            consumer.close()

    def _registry(self) -> None:
        last = 0
        conn: Any = None
        self.ready[1].set()
        while not self.stop.wait(0.02):
            try:
                if conn is None:
                    conn = self.db.connect()
                rows = self.db.members_after(conn, last)
            except sqlite3.Error:  # not created yet, or busy a moment
                continue
            now = time.time()
            for rowid, lead_id in rows:
                self.seen.registry.setdefault(lead_id, now)
                last = max(last, rowid)
        if conn is not None:
            conn.close()

    def _dashboard(self) -> None:
        with httpx.Client(base_url=self.dashboard, timeout=httpx.Timeout(30, read=None)) as client:
            answer = client.post("/signin", data={"username": "bench", "password": PASSWORD},
                                 follow_redirects=False)
            cookie = answer.headers.get("set-cookie", "").split(";", 1)[0]
            if answer.status_code != 303 or not cookie:
                raise RuntimeError(f"dashboard sign-in failed: {answer.status_code}")
            self.ready[2].set()
            try:
                with client.stream("GET", "/events", headers={"Cookie": cookie}) as stream:
                    kind = ""
                    for line in stream.iter_lines():
                        if self.stop.is_set():
                            return
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind == "bulletin":
                            now = time.time()
                            case = json.loads(line[6:])["case"]
                            self.seen.dashboard.append((now, str(case["case_id"]), int(case["version"])))
            except httpx.HTTPError:
                if not self.stop.is_set():  # the dashboard stopping at the end closes the stream: expected
                    raise


class Sampler:
    """Where the time goes: every `interval` s, each stage's consumer lag and each process's CPU time.

    Lag is the records a stage's group (or the registry sink, whose offsets live in its database) has not
    committed yet on its inputs (read_committed ends); CPU is utime + stime from /proc/<pid>/stat, the
    processes' own threads included (PostgreSQL: its postmaster, every backend and the backends that ended).
    Both are printed after the run: a stage whose lag grows while it uses a core's worth of CPU is the one
    falling behind; lag that grows while nobody is busy is waiting. Every sample asks the broker for the end
    offsets of every input partition and the commits of every group: every 2.5 s (it was every 1 s), the
    bench's own load on the broker it measures stays small.
    """

    def __init__(self, kafka: KafkaSettings, db: RegistryDb, supervisor: Supervisor, extra_pids: dict[str, int],
                 interval: float = 2.5, trees: frozenset[str] = frozenset()) -> None:
        self.kafka, self.db, self.supervisor, self.extra_pids = kafka, db, supervisor, extra_pids
        self.interval = interval
        self.trees = trees  # the processes measured with their children (PostgreSQL's backends)
        self.samples: list[tuple[float, dict[str, int], dict[str, float]]] = []  # (time, lag, cpu seconds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.ready = threading.Event()  # its clients are set up
        self.marks: dict[str, float] = {}
        #: The bench's own threads that read (watchers, this sampler, their Kafka clients); the others — the main
        #: thread publishing and the SDK's producers' threads, started later — are the publisher's.
        self.readers: frozenset[int] | None = None

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)

    def mark(self, name: str) -> None:
        self.marks[name] = time.time()

    @staticmethod
    def _stat(path: Path) -> tuple[str, list[str]] | None:
        try:
            comm, rest = path.read_text().split("(", 1)[1].rsplit(")", 1)
        except (OSError, ValueError, IndexError):
            return None
        return comm, rest.split()

    @staticmethod
    def cpu_seconds(pid: int) -> float | None:
        stat = Sampler._stat(Path(f"/proc/{pid}/stat"))
        if stat is None:
            return None
        fields = stat[1]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def tree_cpu_seconds(pid: int) -> float | None:
        """A process, its live descendants, and the children it has reaped (cutime + cstime)."""
        stat = Sampler._stat(Path(f"/proc/{pid}/stat"))
        if stat is None:
            return None
        fields = stat[1]
        total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        try:
            children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                        for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            children = []
        return total + sum(Sampler.tree_cpu_seconds(c) or 0.0 for c in children)

    @staticmethod
    def thread_seconds(pid: int) -> dict[int, tuple[str, float]]:
        """Each live thread of a process: its name and CPU seconds."""
        out: dict[int, tuple[str, float]] = {}
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            return out
        for task in tasks:
            stat = Sampler._stat(task / "stat")
            if stat is not None:
                comm, fields = stat
                out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        return out

    @staticmethod
    def jvm_threads(pid: int) -> dict[str, float]:
        """A JVM's CPU seconds by kind of thread: its JIT compilers, its garbage collector, the rest (Kafka's own).

        A fresh broker compiles Kafka's hot code for its first minutes (C1 then C2), whatever the traffic: a cost
        of starting it, not of the leads, that a short run would otherwise put on every lead.
        """
        threads = Sampler.thread_seconds(pid)
        if not threads:
            return {}
        out = {"jit": 0.0, "gc": 0.0, "kafka": 0.0}
        for comm, seconds in threads.values():
            kind = ("jit" if "CompilerThre" in comm else
                    "gc" if comm in ("VM Thread",) or comm.startswith(("GC ", "G1 ")) else "kafka")
            out[kind] += seconds
        return out

    def bench_threads(self, pid: int) -> dict[str, float]:
        """The bench's CPU seconds: the publisher's (main thread, the SDK's producers) and the readers'."""
        if self.readers is None:
            return {}
        out = {"publisher": 0.0, "readers": 0.0}
        for tid, (_, seconds) in self.thread_seconds(pid).items():
            out["readers" if tid in self.readers else "publisher"] += seconds
        return out

    def _inputs(self, admin: Any) -> dict[str, list[TopicPartition]]:
        topics = admin.list_topics(timeout=10).topics
        out: dict[str, list[TopicPartition]] = {}
        for name, d in PIPELINE.items():
            names = [t for t in topics if any(re.match(i, t) if i.startswith("^") else i == t for i in d.inputs)]
            out[name] = [TopicPartition(t, p) for t in names for p in topics[t].partitions]
        out["registry"] = [TopicPartition(t, p) for t in REGISTRY_INPUTS if t in topics for p in topics[t].partitions]
        return out

    def _loop(self) -> None:
        admin = self.kafka.admin(**{"socket.timeout.ms": 5000})
        readers = {name: self.kafka.consumer(d.group) for name, d in PIPELINE.items()}
        with contextlib.suppress(Exception):
            admin.list_topics(timeout=10)  # its threads started
        self.ready.set()
        inputs: dict[str, list[TopicPartition]] | None = None
        try:
            while not self.stop.wait(self.interval):
                now = time.time()
                cpu: dict[str, float] = {}
                for name, pid in {**self.supervisor.pids(), **self.extra_pids}.items():
                    seconds = self.tree_cpu_seconds(pid) if name in self.trees else self.cpu_seconds(pid)
                    if seconds is not None:
                        cpu[name] = seconds
                    parts = (self.jvm_threads(pid) if name == "broker" else
                             self.bench_threads(pid) if name == "bench" else {})
                    for part, part_seconds in parts.items():
                        cpu[f"{name}/{part}"] = part_seconds
                lag: dict[str, int] = {}
                try:
                    inputs = inputs or self._inputs(admin)
                    everything = sorted({(tp.topic, tp.partition) for parts in inputs.values() for tp in parts})
                    futures = admin.list_offsets({TopicPartition(t, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
                                                  for t, p in everything},
                                                 isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=5)
                    ends = {(tp.topic, tp.partition): f.result(timeout=6).offset for tp, f in futures.items()}
                    for name, reader in readers.items():
                        done = {(tp.topic, tp.partition): tp.offset
                                for tp in reader.committed(inputs[name], timeout=5)}
                        lag[name] = sum(max(0, ends.get(k, 0) - max(0, o)) for k, o in done.items())
                    lag["registry"] = self._registry_lag(ends, inputs["registry"])
                except Exception:  # noqa: BLE001 - a missed sample is a gap in the table, not a failed run
                    pass
                self.samples.append((now, lag, cpu))
        finally:
            for reader in readers.values():
                reader.close()

    def _registry_lag(self, ends: dict[tuple[str, int], int], parts: list[TopicPartition]) -> int:
        done = self.db.consumed()
        return sum(max(0, ends.get((tp.topic, tp.partition), 0) - done.get((tp.topic, tp.partition), 0))
                   for tp in parts)

    def idle_cores(self, since: float, until: float) -> dict[str, float]:
        """Each process's CPU, in cores, between `since` and `until` (the pipeline running with nothing to do)."""
        window = [s for s in self.samples if since <= s[0] <= until]
        if len(window) < 2:
            return {}
        first, last = window[0], window[-1]
        span = last[0] - first[0]
        return {n: (last[2][n] - first[2][n]) / span for n in last[2] if n in first[2]}

    def report(self, since: float, until: float, leads: int, every: float = 5.0,
               idle_since: float | None = None, lag: bool = True,
               idle_until: float | None = None) -> tuple[list[str], float]:
        """Lag over time (every `every` s; `lag`) and CPU per process between `since` and `until`; CPU ms per lead.

        With `idle_since` (the samples from then to `since` are the pipeline idle), also each process's upkeep
        and its CPU per lead without it: the upkeep (polls, heartbeats, the broker's housekeeping) runs whatever
        the traffic, so it weighs on "per lead" in proportion to how long the run took to drain, not to the leads.
        """
        window = [s for s in self.samples if since <= s[0] <= until + every]
        if len(window) < 2:
            return ["  (too few samples for a per-stage table)"], float("nan")
        names = [n for n in (*PIPELINE, "registry") if any(n in s[1] for s in window)]
        lines = []
        if lag:
            lines += ["  consumer lag (records not yet committed), by seconds since the measured publishing began:",
                      "    " + f"{'t':>5} " + " ".join(f"{n:>9}" for n in names)]
            next_at = since
            for at, lags, _ in window:
                if at >= next_at:
                    lines.append("    " + f"{at - since:5.0f} " + " ".join(f"{lags.get(n, -1):9d}" for n in names))
                    next_at = at + every
        first, last = window[0], window[-1]
        span = last[0] - first[0]
        used = {n: (last[2][n] - first[2][n]) / span for n in last[2] if n in first[2]}
        parts = {n: c for n, c in used.items() if "/" in n}  # the broker's threads, by kind: not added to the total
        used = {n: c for n, c in used.items() if "/" not in n}
        lines.append(f"  CPU, cores used on average over those {span:.0f} s (2 cores = 2.00): "
                     + ", ".join(f"{n} {c:.2f}" for n, c in sorted(used.items(), key=lambda x: -x[1]))
                     + f"; total {sum(used.values()):.2f}")
        per_lead = {n: c * span / leads * 1000 for n, c in used.items()}
        lines.append(f"  CPU ms per lead published ({leads}): "
                     + ", ".join(f"{n} {c:.2f}" for n, c in sorted(per_lead.items(), key=lambda x: -x[1]))
                     + f"; total {sum(per_lead.values()):.2f}")
        for owner, note in (("broker", " (jit: compiling Kafka's code, a start-up cost; gc: collections)"),
                            ("bench", " (publisher: the SDK publishing, its producers' threads; readers: the "
                                      "bench's watchers and sampler)")):
            mine = {n.split("/", 1)[1]: c for n, c in parts.items() if n.startswith(owner + "/")}
            if mine:
                lines.append(f"  of the {owner}'s, CPU ms per lead by thread: "
                             + ", ".join(f"{n} {c * span / leads * 1000:.2f}" for n, c in mine.items()) + note)
        idle_all = self.idle_cores(idle_since, idle_until or since) if idle_since is not None else {}
        idle = {n: c for n, c in idle_all.items() if "/" not in n}
        if idle:
            lines.append("  CPU idle (before publishing), cores: "
                         + ", ".join(f"{n} {c:.3f}" for n, c in sorted(idle.items(), key=lambda x: -x[1]))
                         + f"; total {sum(idle.values()):.2f}"
                         + "".join(f"; {n} {c:.3f}" for n, c in idle_all.items() if "/" in n))
            net = {n: max(0.0, c - idle.get(n, 0.0)) * span / leads * 1000 for n, c in used.items()}
            lines.append("  CPU ms per lead without that upkeep: "
                         + ", ".join(f"{n} {c:.2f}" for n, c in sorted(net.items(), key=lambda x: -x[1]))
                         + f"; total {sum(net.values()):.2f}")
        return lines, sum(per_lead.values())


def wait_groups_stable(kafka: KafkaSettings, supervisor: Supervisor, timeout: float = 300) -> None:
    admin = kafka.admin()
    groups = [d.group for d in PIPELINE.values()]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.poll()
        try:
            described = [f.result(timeout=10) for f in admin.describe_consumer_groups(groups).values()]
            if all(d.state == ConsumerGroupState.STABLE and d.members for d in described):
                return
        except Exception:  # noqa: BLE001 - a group appears when its stage first joins
            pass
        time.sleep(1)
    raise TimeoutError("the stages' groups did not become stable")


def wait_http(url: str, supervisor: Supervisor, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.poll()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer")


def publish(traffic: Traffic, leads: list[CaseLead], rate: float, seen: Seen | None,
            supervisor: Supervisor) -> None:
    """`leads` at `rate` leads/s, paced by the clock (a late lead is sent at once, never skipped).

    The leads are made beforehand (`Traffic.generator`, ~0.3 ms of CPU each): made here, the simulator would
    compete for the cores with the pipeline it measures, and be counted in the bench's CPU per lead.
    """
    start = time.monotonic()
    for i, lead in enumerate(leads):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            for pub in traffic.publishers.values():
                pub.producer.poll(0)
            supervisor.poll()
            time.sleep(delay)
        pub = traffic.publisher(lead.publisher.agency, lead.publisher.province)
        if seen is not None:
            seen.published[lead.lead_id] = time.time()
        pub.publish(lead)
    for pub in traffic.publishers.values():
        pub.flush(60)


def percentiles(values: list[float]) -> str:
    if not values:
        return "no observations"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (f"p50 {at(0.50):6.0f} ms   p95 {at(0.95):6.0f} ms   p99 {at(0.99):6.0f} ms   "
            f"max {ordered[-1] * 1000:6.0f} ms   (n={len(ordered)})")


def analyse(seen: Seen) -> dict[str, list[float]]:
    joined: dict[str, tuple[float, str, int]] = {}  # lead → (first seen in a case, case, version)
    for now, case_id, version, members in sorted(seen.case_updates):
        for lead in members:
            if lead not in joined:
                joined[lead] = (now, case_id, version)
    shown: dict[str, list[tuple[int, float]]] = {}
    for now, case_id, version in seen.dashboard:
        shown.setdefault(case_id, []).append((version, now))
    out: dict[str, list[float]] = {"cases": [], "registry": [], "dashboard": []}
    for lead, published in seen.published.items():
        if lead in joined:
            at, case_id, version = joined[lead]
            out["cases"].append(at - published)
            # the bulletin of the version that first listed it: a case that reaches the region only at a later
            # version (a lead of another region joins it) shows the lead then, a time set by the traffic, not the bus
            times = [t for v, t in shown.get(case_id, []) if v == version]
            if times:
                out["dashboard"].append(min(times) - published)
        if lead in seen.registry:
            out["registry"].append(seen.registry[lead] - published)
    return out


@dataclass(frozen=True)
class Setting:
    """The settings one run tries (None: the component's own default)."""

    stage_fill: float | None = None
    registry_fill: float | None = None
    #: Broker properties on top of `KafkaCluster`'s (`--broker-property`).
    broker: tuple[tuple[str, str], ...] = ()
    #: librdkafka settings for every client of the pipeline's processes (`--client-setting`): passed as their
    #: client settings file ($LEADBUS_CLIENT_CONFIG), so they reach every producer, consumer and admin client.
    client: tuple[tuple[str, str], ...] = ()
    #: Every stage's batch gap (`--stage-gap`; None: the stages' own), the registry sink's (`--registry-gap`).
    stage_gap: float | None = None
    registry_gap: float | None = None

    def describe(self) -> str:
        stage = "default" if self.stage_fill is None else f"{self.stage_fill:g} s"
        if self.stage_gap is not None:
            stage += f" (gap {self.stage_gap:g} s)"
        registry = "default" if self.registry_fill is None else f"{self.registry_fill:g} s"
        if self.registry_gap is not None:
            registry += f" (gap {self.registry_gap:g} s)"
        extra = "".join(f"; broker {k}={v}" for k, v in self.broker) + "".join(f"; client {k}={v}"
                                                                                for k, v in self.client)
        return f"batch fill: stages {stage}, registry {registry}{extra}"


#: `--sweep`: the batch fill waits tried, each on a fresh broker and pipeline (the defaults first).
SWEEP = [Setting(), Setting(0.0, 0.0), Setting(0.2, 0.2), Setting(0.5, 0.5)]


@dataclass
class Outcome:
    setting: Setting
    latencies: dict[str, list[float]]
    published: int
    restarted: dict[str, int]
    logs: Path
    load: float
    stages: list[str]
    cpu_ms_per_lead: float


def measure(args: argparse.Namespace, setting: Setting) -> Outcome:
    """One run: a fresh broker and pipeline with `setting`, warm-up, then `args.seconds` measured."""
    work = Path(tempfile.mkdtemp(prefix="leadbus-bench-latency-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)}
    cli = [sys.executable, "-m", "leadbus.cli"]
    regions = [args.region, *(r for r in ("jjj", "yrd", "pprd") if r != args.region)]
    for region in regions:  # every regional dashboard runs, as in the demo; the bench watches `args.region`'s
        subprocess.run([*cli, "dashboard-user", "--users", str(work / f"users-{region}.json"), "--username", "bench",
                        "--region", region, "--password-stdin"], input=f"{PASSWORD}\n".encode(), env=env,
                       check=True, stdout=subprocess.DEVNULL)
    # A broker JIT-compiling with C2, as one deployed; `--fast-broker`: C1 only, as the tests and the demo run it.
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(KafkaCluster(1, work / "kafka", fast_start=args.fast_broker,
                                                   broker_properties=dict(setting.broker)))
        extra_pids: dict[str, int] = {}
        if args.registry == "postgres":
            from tests.postgres import PostgresServer  # a throwaway server of its own (fsync off), as the tests run

            server = stack.enter_context(PostgresServer())
            registry_url = server.url
            extra_pids["postgres"] = int((server.data / "postmaster.pid").read_text().split()[0])
        else:
            registry_url = f"sqlite:///{work / 'registry.db'}"
        db = RegistryDb(registry_url)
        db.prepare()
        bootstrap = cluster.bootstrap_servers
        if setting.client:
            client_file = work / "client.json"
            client_file.write_text(json.dumps({"bootstrap.servers": bootstrap, **dict(setting.client)}))
            env[CLIENT_CONFIG_ENV] = str(client_file)
        kafka = KafkaSettings(bootstrap)
        apply_topics(bootstrap, load_declarations())
        publish_schemas(bootstrap, list(CATALOG))
        # The broker's transactional paths compiled before the pipeline starts, as on a broker that has been
        # running (bench/broker_cpu.py): otherwise its JIT compiling is charged to the leads (0.41 ms each).
        warmed = 0 if args.cold else warm_transactions(bootstrap)
        ports = {region: free_port() for region in regions}
        port = ports[args.region]
        stage_fill = [] if setting.stage_fill is None else ["--batch-fill", str(setting.stage_fill)]
        # the gap only where the stage has no fill of its own (the stages on the latency path)
        stage_gap = [] if setting.stage_gap is None else ["--batch-gap", str(setting.stage_gap)]
        registry_fill = [] if setting.registry_fill is None else ["--batch-fill", str(setting.registry_fill)]
        if setting.registry_gap is not None:
            registry_fill += ["--batch-gap", str(setting.registry_gap)]
        commands = {name: [*cli, "process", "--stage", name, "-b", bootstrap, "--state-dir", str(work / "state"),
                           *stage_fill, *(stage_gap if d.batch_fill is None else [])] for name, d in PIPELINE.items()}
        commands["registry"] = [*cli, "registry", "-b", bootstrap, "--url", registry_url, *registry_fill]
        commands["archive"] = [*cli, "archive", "run", str(work / "archive"), "-b", bootstrap,
                               "--seal-after-seconds", "10"]
        for region in regions:
            commands["dashboard" if region == args.region else f"dashboard-{region}"] = [
                *cli, "dashboard", "--region", region, "-b", bootstrap, "--port", str(ports[region]),
                "--users", str(work / f"users-{region}.json"), "--access-log", str(work / f"access-{region}.jsonl")]
        logs = work / "logs"
        supervisor = Supervisor([ChildSpec(name, cmd, env=env) for name, cmd in commands.items()], log_dir=logs,
                                logger=logging.getLogger("bench.latency"))
        seen = Seen()
        watchers = Watchers(kafka, db, f"http://127.0.0.1:{port}", seen, path_topics(args.region) if args.hops else ())
        broker = cluster.nodes[0].process
        sampler = Sampler(kafka, db, supervisor,
                          {"broker": broker.pid if broker else 0, **extra_pids, "bench": os.getpid()},
                          trees=frozenset({"postgres"}))
        try:
            supervisor.start()
            wait_groups_stable(kafka, supervisor)
            for region in regions:
                wait_http(f"http://127.0.0.1:{ports[region]}/healthz", supervisor)
            watchers.start()
            sampler.start()
            for ready in (*watchers.ready, sampler.ready):
                ready.wait(60)
            me = os.getpid()
            sampler.readers = frozenset(t for t in Sampler.thread_seconds(me) if t != me)
            traffic = Traffic(bootstrap, seed=7)
            # Reported one every 1/rate s up to now, as they will be published: before it, never in the future.
            count = round(args.rate * args.warmup) + round(args.rate * args.seconds)
            step = timedelta(seconds=1 / args.rate)
            made = list(traffic.generator.leads(count, datetime.now(UTC) - count * step, step))
            warmup, measured = made[:round(args.rate * args.warmup)], made[round(args.rate * args.warmup):]
            sampler.mark("idle")  # each process's upkeep with nothing to do, taken off its CPU per lead below
            idle_end = time.monotonic() + args.idle
            while time.monotonic() < idle_end:
                supervisor.poll()
                time.sleep(0.5)
            sampler.mark("warmup")
            publish(traffic, warmup, args.rate, None, supervisor)
            sampler.mark("measured")
            offsets_before = topic_offsets(kafka)
            publish(traffic, measured, args.rate, seen, supervisor)
            sampler.mark("published")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(seen.registry.keys() & seen.published.keys()) < len(
                    seen.published):
                supervisor.poll()
                time.sleep(0.5)
            time.sleep(2)  # the dashboard's last bulletins
            offsets_after = topic_offsets(kafka)
            hops = read_hops(kafka, args.region) if args.hops else None
            load = os.getloadavg()[0]
            restarted = {name: c.restarts for name, c in supervisor.children.items() if c.restarts}
        finally:
            sampler.mark("end")
            sampler.close()
            watchers.close()
            supervisor.stop(timeout=30)
    if not restarted:  # the broker's data and the logs (~100 MB a run) are kept only when a process died
        shutil.rmtree(work, ignore_errors=True)
    # CPU from the first measured lead on: the warm-up (the stages' first batches, the broker still compiling)
    # is the pipeline starting, not its steady state. Leads of the warm-up still queued then are counted too.
    leads = round(args.rate * args.seconds)
    lines, cpu = sampler.report(sampler.marks["measured"], sampler.marks["end"], leads,
                                idle_since=sampler.marks["idle"], idle_until=sampler.marks["warmup"], lag=args.stages)
    lines.insert(0, f"  broker warmed before the pipeline started: "
                    f"{f'{warmed} transactions (bench/broker_cpu.py)' if warmed else 'no (--cold)'}; "
                    f"CPU below from the first measured lead to the end of the run")
    lines += offsets_lines(offsets_before, offsets_after, leads)
    if hops is not None:
        lines += hop_lines(seen, hops)
    return Outcome(setting, analyse(seen), len(seen.published), restarted, logs, load, lines, cpu)


#: `--hops`: the hops of the path to the dashboard, each named by the stage that wrote its record.
HOPS = ("intake: examine", "intake: judge", "linking", "routing")


def path_topics(region: str) -> tuple[str, ...]:
    return INTAKE_BY_LEAD, LEADS_ACCEPTED, CASES, region_topic(region)


Entry = tuple[float, str, int, list[str], tuple[str, int, int]]


def read_hops(kafka: KafkaSettings, region: str) -> dict[str, list[Entry]]:
    """Every record on the path (by-lead, accepted, cases, the region's topic) with its CreateTime: when the stage
    that wrote it produced it (librdkafka stamps a record at `produce`, within its batch's transaction).

    Read once the run has drained, from the beginning: what each hop added, without a watcher per topic running
    (and costing CPU) during the run. Each entry: (time, case id or "", case version, lead ids).
    """
    consumer = kafka.consumer(f"bench-hops-{uuid.uuid4()}")
    out: dict[str, list[Entry]] = {h: [] for h in HOPS}
    try:
        parts = []
        for topic in path_topics(region):
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in parts}
        consumer.assign(parts)
        left = {k for k, end in ends.items() if end > 0}
        idle_until = time.monotonic() + 30
        while left and time.monotonic() < idle_until:
            for msg in consumer.consume(1000, 1.0):
                if msg.error():
                    continue
                topic, partition, at = msg.topic() or "", msg.partition() or 0, msg.timestamp()[1] / 1000
                if (msg.offset() or 0) + 2 >= ends[(topic, partition)]:  # the last record (its marker follows)
                    left.discard((topic, partition))
                idle_until = time.monotonic() + 30
                where = (topic, partition, msg.offset() or 0)
                if topic == LEADS_ACCEPTED:
                    out["intake: judge"].append((at, "", 0, [(msg.key() or b"").decode()], where))
                    continue
                _, record = decode(CATALOG, msg.value() or b"")
                if topic == INTAKE_BY_LEAD:
                    # a signed lead's first by-lead record is its lane's (sequence check), then its own: the first
                    # is when intake examined it; the sequence check counts in the judging hop
                    lead = record.get("lead") if isinstance(record, dict) else None
                    if isinstance(lead, dict):
                        out["intake: examine"].append((at, "", 0, [str(lead["lead_id"])], where))
                elif topic == CASES:
                    out["linking"].append((at, str(record["case_id"]), int(record["version"]),
                                           [str(m) for m in record["members"]], where))
                elif "case_id" in record and "version" in record and not record.get("merged_into"):
                    out["routing"].append((at, str(record["case_id"]), int(record["version"]), [], where))
            if not consumer.assignment():
                break
            positions = consumer.position([TopicPartition(t, p) for t, p in left])
            left = {(tp.topic, tp.partition) for tp in positions if tp.offset < ends[(tp.topic, tp.partition)]}
    finally:
        consumer.close()
    return out


def hop_lines(seen: Seen, hops: dict[str, list[Entry]]) -> list[str]:
    """Per measured lead, when each stage on its path produced its record (CreateTime) and when that record became
    visible to a read_committed reader (the rest of the batch, the commit, the fetch): where the time goes."""
    produced: dict[str, dict[str, float]] = {h: {} for h in HOPS}
    visible: dict[str, dict[str, float]] = {h: {} for h in HOPS}
    joined: dict[str, tuple[str, int]] = {}
    for hop in HOPS[:3]:
        for t, case_id, version, leads, where in sorted(hops[hop]):
            for lead in leads:
                if lead not in produced[hop]:
                    produced[hop][lead] = t
                    if where in seen.visible:
                        visible[hop][lead] = seen.visible[where]
                    if hop == "linking":
                        joined[lead] = (case_id, version)
    routed: dict[str, list[tuple[int, float, float | None]]] = {}
    for t, case_id, version, _, where in hops["routing"]:
        routed.setdefault(case_id, []).append((version, t, seen.visible.get(where)))
    shown: dict[str, list[tuple[int, float]]] = {}
    for now, case_id, version in seen.dashboard:
        shown.setdefault(case_id, []).append((version, now))
    dashboard: dict[str, float] = {}
    for lead, (case_id, version) in joined.items():
        later = sorted((t, vis) for ver, t, vis in routed.get(case_id, []) if ver == version)  # as `analyse`
        if later:
            produced["routing"][lead], arrived = later[0]
            if arrived is not None:
                visible["routing"][lead] = arrived
        times = [t for v, t in shown.get(case_id, []) if v == version]
        if times:
            dashboard[lead] = min(times)
    lines = ["  where the time goes (--hops), ms per measured lead; each hop: its record produced (CreateTime: the "
             "stage fetched the record upstream, waited out its batch fill, processed it), then visible to a "
             "read_committed reader (the rest of its batch, the commit):"]
    before = dict(seen.published)
    steps = [(f"{h} produced", produced[h], f"{h} visible", visible[h]) for h in HOPS]
    for made_name, made, shown_name, shown_at in [*steps, ("dashboard SSE", dashboard, "", {})]:
        for name, when in ((made_name, made), (shown_name, shown_at)):
            if not name:
                continue
            since = [when[lead] - published for lead, published in seen.published.items() if lead in when]
            added = [when[lead] - before[lead] for lead in seen.published if lead in when and lead in before]
            lines.append(f"    {name:<26} since publish p50 {at(since, 0.5):>5} p99 {at(since, 0.99):>5} | added "
                         f"p50 {at(added, 0.5):>4} p90 {at(added, 0.9):>4} p99 {at(added, 0.99):>5} max "
                         f"{at(added, 1.0):>5} (n={len(added)})")
            if when:
                before = {lead: t for lead, t in when.items() if lead in seen.published}
    return lines


def topic_offsets(kafka: KafkaSettings) -> dict[str, int]:
    """Each topic's end offsets summed over its partitions (records and transaction markers: each takes an offset)."""
    admin = kafka.admin()
    topics = admin.list_topics(timeout=10).topics
    parts = [TopicPartition(t, p) for t, meta in topics.items() if not t.startswith("__") for p in meta.partitions]
    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in parts},  # type: ignore[no-untyped-call]
                                 isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=10)
    out: dict[str, int] = {}
    for tp, future in futures.items():
        out[tp.topic] = out.get(tp.topic, 0) + max(0, future.result(timeout=15).offset)
    return out


def offsets_lines(before: dict[str, int], after: dict[str, int], leads: int) -> list[str]:
    """Offsets written per lead while the measured leads went through, by topic (records + commit markers)."""
    grown = {t: after.get(t, 0) - before.get(t, 0) for t in after}
    grown = {t: n for t, n in grown.items() if n > 0}
    if not grown or not leads:
        return []
    per = sorted(((n / leads, t) for t, n in grown.items()), reverse=True)
    shown = ", ".join(f"{t.removeprefix('leadbus.')} {v:.2f}" for v, t in per if v >= 0.05)
    total = sum(grown.values()) / leads
    return [f"  offsets written per measured lead (records and transaction markers), all topics {total:.2f}: {shown}"]


def print_outcome(args: argparse.Namespace, outcome: Outcome) -> None:
    result = outcome.latencies
    print(f"end-to-end latency at {args.rate:g} leads/s for {args.seconds:g} s (after {args.warmup:g} s warm-up), "
          f"whole pipeline; {outcome.setting.describe()}{'; broker JIT C1 only' if args.fast_broker else ''}; "
          f"registry on {'PostgreSQL' if args.registry == 'postgres' else 'SQLite'}; "
          f"load average {outcome.load:.1f}")
    if outcome.restarted:
        print(f"  (restarted during the run: {', '.join(f'{n} ×{k}' for n, k in outcome.restarted.items())}; "
              f"logs in {outcome.logs})")
    print(f"  publish → leadbus.cases       : {percentiles(result['cases'])}")
    print(f"  publish → registry row        : {percentiles(result['registry'])}")
    print(f"  publish → dashboard {args.region:<4} stream: {percentiles(result['dashboard'])}")
    for line in outcome.stages:  # CPU per process always; with --stages, consumer lag over time first
        print(line)
    missing = outcome.published - len(result["cases"])
    if missing:
        print(f"  {missing} of {outcome.published} measured leads never reached leadbus.cases")


def at(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"


def print_sweep(outcomes: list[Outcome]) -> None:
    print("settings tried (each on a fresh broker and pipeline; ms; CPU of the pipeline, broker and bench per lead):")
    print("  | setting | cases p50 | cases p99 | registry p50 | registry p99 | dashboard p50 | dashboard p99 "
          "| CPU ms/lead | load |")
    print("  |---|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        r = o.latencies
        print(f"  | {o.setting.describe()} | {at(r['cases'], 0.5)} | {at(r['cases'], 0.99)} "
              f"| {at(r['registry'], 0.5)} | {at(r['registry'], 0.99)} | {at(r['dashboard'], 0.5)} "
              f"| {at(r['dashboard'], 0.99)} | {o.cpu_ms_per_lead:.2f} | {o.load:.1f} |")


def default_registry() -> str:
    try:
        from tests.postgres import _bin

        _bin("initdb")
    except (ImportError, RuntimeError):
        return "sqlite"
    return "postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=20,
                        help="seconds published at the rate before the measured ones (not timed, not in the CPU)")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up of the broker's transactional paths before the pipeline starts")
    parser.add_argument("--stage-fill", type=float, default=None,
                        help="every stage's batch fill wait (default: the stages' own)")
    parser.add_argument("--stage-gap", type=float, default=None,
                        help="every stage's batch gap: the fill ends once this long passes without a new record")
    parser.add_argument("--registry-fill", type=float, default=None, help="the registry sink's batch fill wait")
    parser.add_argument("--registry-gap", type=float, default=None, help="the registry sink's batch gap")
    parser.add_argument("--idle", type=float, default=10,
                        help="seconds the pipeline runs idle before publishing: each process's upkeep, taken off its "
                             "CPU per lead in the --stages table")
    parser.add_argument("--broker-property", action="append", default=[], metavar="KEY=VALUE",
                        help="a broker property on top of the local broker's (repeatable)")
    parser.add_argument("--client-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a librdkafka setting for every client of the pipeline's processes (repeatable)")
    parser.add_argument("--fast-broker", action="store_true",
                        help="the broker's JVM compiles with C1 only (-XX:TieredStopAtLevel=1, as in the tests and the "
                             "demo): a fraction of the JIT's start-up CPU, slower request threads")
    parser.add_argument("--region", default="yrd", help="the dashboard watched (all three run): jjj, yrd or pprd")
    parser.add_argument("--registry", choices=("postgres", "sqlite"), default=default_registry(),
                        help="the registry sink's database: a throwaway PostgreSQL server (as deployed; the default "
                             "where PostgreSQL is installed) or SQLite")
    parser.add_argument("--stages", action="store_true",
                        help="also print each stage's consumer lag over time (each process's CPU is always printed)")
    parser.add_argument("--hops", action="store_true",
                        help="after the run, read every topic on the path and print when each stage produced each "
                             "lead's record: the time each hop adds")
    parser.add_argument("--sweep", action="store_true",
                        help="one run per batch fill setting of SWEEP (fresh broker each), then a table of them")
    args = parser.parse_args()
    configure_cli_logging()  # librdkafka's errors as one summarised line each, its transient retries at debug
    broker = tuple(tuple(p.split("=", 1)) for p in args.broker_property)
    client = tuple(tuple(p.split("=", 1)) for p in args.client_setting)
    settings = SWEEP if args.sweep else [Setting(args.stage_fill, args.registry_fill, broker, client,
                                                       args.stage_gap, args.registry_gap)]  # type: ignore[arg-type]
    outcomes = []
    for setting in settings:
        outcome = measure(args, setting)
        print_outcome(args, outcome)
        outcomes.append(outcome)
    if len(outcomes) > 1:
        print_sweep(outcomes)


if __name__ == "__main__":
    main()
