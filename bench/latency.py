"""End-to-end latency: publish at a fixed rate with the whole pipeline running, time each lead to where it shows.

    python bench/latency.py [--rate 500] [--seconds 60] [--warmup 10] [--stage-fill S] [--registry-fill S]
                            [--region yrd]

A fresh single-node broker with every declared topic and schema; every pipeline stage
(`leadbus process --stage NAME`, processors/stages.py PIPELINE), the registry sink (SQLite) and one
regional dashboard run as their own supervised processes (restarted when they die), as `leadbus demo`
runs them. Once every stage's group
is stable, simulated agencies publish through the SDK at `--rate` leads/s, first `--warmup` seconds
(not counted: the first seconds after start are the slowest), then `--seconds` measured. For each
measured lead, from the moment `Publisher.publish` was called to:

* cases:     the first `CaseUpdated` on `leadbus.cases` listing it, seen by a read_committed reader;
* registry:  its `case_members` row in the registry database (the lead in its case), polled every 20 ms;
* dashboard: the first bulletin of its case at that version or later on the regional dashboard's
             event stream (`/events`, signed in), for the leads whose cases belong to that region.

Prints p50/p95/p99 (and max) of each, with the settings used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from confluent_kafka import OFFSET_BEGINNING, ConsumerGroupState, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.localbroker.cluster import free_port
from leadbus.processors.stages import PIPELINE
from leadbus.producers.traffic import Traffic
from leadbus.provisioning.topics import apply_topics
from leadbus.schema_topic import publish_schemas
from leadbus.supervise import ChildSpec, Supervisor
from leadbus.topics import CASES, load_declarations

CATALOG = packaged_catalog()
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-latency-pw"  # a throwaway user of a throwaway dashboard


@dataclass
class Seen:
    """Raw observations, analysed after the run (the watcher threads only take timestamps)."""

    published: dict[str, float] = field(default_factory=dict)
    case_updates: list[tuple[float, str, int, list[str]]] = field(default_factory=list)
    registry: dict[str, float] = field(default_factory=dict)
    dashboard: list[tuple[float, str, int]] = field(default_factory=list)


class Watchers:
    def __init__(self, kafka: KafkaSettings, db: Path, dashboard: str, seen: Seen) -> None:
        self.kafka, self.db, self.dashboard, self.seen = kafka, db, dashboard, seen
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True)
                        for t in (self._cases, self._registry, self._dashboard)]

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

    def _registry(self) -> None:
        last = 0
        conn: sqlite3.Connection | None = None
        while not self.stop.wait(0.02):
            try:
                if conn is None:
                    conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1)
                rows = conn.execute("SELECT rowid, lead_id FROM case_members WHERE rowid > ? ORDER BY rowid",
                                    (last,)).fetchall()
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


def publish(traffic: Traffic, rate: float, seconds: float, seen: Seen | None, supervisor: Supervisor) -> None:
    """`rate` leads/s for `seconds`, paced by the clock (a late lead is sent at once, never skipped)."""
    start = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            for pub in traffic.publishers.values():
                pub.producer.poll(0)
            supervisor.poll()
            time.sleep(delay)
        lead = traffic.generator.lead(datetime.now(UTC))
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
            times = [t for v, t in shown.get(case_id, []) if v >= version]
            if times:
                out["dashboard"].append(min(times) - published)
        if lead in seen.registry:
            out["registry"].append(seen.registry[lead] - published)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--stage-fill", type=float, default=None,
                        help="every stage's batch fill wait (default: the stages' own)")
    parser.add_argument("--registry-fill", type=float, default=None, help="the registry sink's batch fill wait")
    parser.add_argument("--region", default="yrd", help="the dashboard watched: jjj, yrd or pprd")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="leadbus-bench-latency-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)}
    cli = [sys.executable, "-m", "leadbus.cli"]
    users = work / "users.json"
    subprocess.run([*cli, "dashboard-user", "--users", str(users), "--username", "bench", "--region", args.region,
                    "--password-stdin"], input=f"{PASSWORD}\n".encode(), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    with KafkaCluster(1, work / "kafka", fast_start=False) as cluster:
        bootstrap = cluster.bootstrap_servers
        kafka = KafkaSettings(bootstrap)
        apply_topics(bootstrap, load_declarations())
        publish_schemas(bootstrap, list(CATALOG))
        db = work / "registry.db"
        port = free_port()
        commands = {name: [*cli, "process", "--stage", name, "-b", bootstrap, "--state-dir", str(work / "state"),
                           *(["--batch-fill", str(args.stage_fill)] if args.stage_fill is not None else [])]
                    for name in PIPELINE}
        commands["registry"] = [*cli, "registry", "-b", bootstrap, "--url", f"sqlite:///{db}",
                                *(["--batch-fill", str(args.registry_fill)] if args.registry_fill is not None else [])]
        commands["dashboard"] = [*cli, "dashboard", "--region", args.region, "-b", bootstrap, "--port", str(port),
                                 "--users", str(users), "--access-log", str(work / "access.jsonl")]
        logs = work / "logs"
        supervisor = Supervisor([ChildSpec(name, cmd, env=env) for name, cmd in commands.items()], log_dir=logs,
                                logger=logging.getLogger("bench.latency"))
        seen = Seen()
        watchers = Watchers(kafka, db, f"http://127.0.0.1:{port}", seen)
        try:
            supervisor.start()
            wait_groups_stable(kafka, supervisor)
            wait_http(f"http://127.0.0.1:{port}/healthz", supervisor)
            watchers.start()
            traffic = Traffic(bootstrap, seed=7)
            publish(traffic, args.rate, args.warmup, None, supervisor)
            publish(traffic, args.rate, args.seconds, seen, supervisor)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(seen.registry.keys() & seen.published.keys()) < len(
                    seen.published):
                supervisor.poll()
                time.sleep(0.5)
            time.sleep(2)  # the dashboard's last bulletins
            restarted = {name: c.restarts for name, c in supervisor.children.items() if c.restarts}
        finally:
            watchers.close()
            supervisor.stop(timeout=30)
    result = analyse(seen)
    stage_fill = args.stage_fill if args.stage_fill is not None else "stage default"
    registry_fill = args.registry_fill if args.registry_fill is not None else "sink default"
    print(f"end-to-end latency at {args.rate:g} leads/s for {args.seconds:g} s (after {args.warmup:g} s warm-up), "
          f"whole pipeline; batch fill wait: stages {stage_fill}, registry {registry_fill}; "
          f"load average {os.getloadavg()[0]:.1f}")
    if restarted:
        print(f"  (restarted during the run: {', '.join(f'{n} ×{k}' for n, k in restarted.items())}; logs in {logs})")
    print(f"  publish → leadbus.cases       : {percentiles(result['cases'])}")
    print(f"  publish → registry row        : {percentiles(result['registry'])}")
    print(f"  publish → dashboard {args.region:<4} stream: {percentiles(result['dashboard'])}")
    missing = len(seen.published) - len(result["cases"])
    if missing:
        print(f"  {missing} of {len(seen.published)} measured leads never reached leadbus.cases")


if __name__ == "__main__":
    main()
