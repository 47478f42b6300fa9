"""`make demo`: a real broker, the declared topics, simulated agencies, and a live view of the bus."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from leadbus.agencies import CATEGORIES
from leadbus.avro import DecodeError, decode, encode, packaged_catalog
from leadbus.clients import CLIENT_CONFIG_ENV, settings_from_env
from leadbus.demo_blacklist import BlacklistBoard
from leadbus.demo_edge import Edge, edge_lines, prepare_edge
from leadbus.demo_handover import HandoverBoard
from leadbus.demo_operations import OPERATION as DEMO_OPERATION
from leadbus.demo_operations import OperationsDemo
from leadbus.geography import PROVINCES, REGIONS
from leadbus.localbroker import KafkaCluster
from leadbus.logs import JsonFormatter
from leadbus.models import CaseLead
from leadbus.processors.stages import PIPELINE, STAGES
from leadbus.producers.errors import PublishError
from leadbus.producers.simulator import TrafficGenerator
from leadbus.producers.traffic import Traffic
from leadbus.provisioning.topics import apply_topics
from leadbus.schema_topic import publish_schemas
from leadbus.stage_keys import provision as provision_stage_keys
from leadbus.supervise import ChildSpec, Supervisor
from leadbus.topics import (
    BLACKLIST,
    CASES,
    HANDOVER,
    LEADS_ACCEPTED,
    LEADS_REJECTED,
    intake_topic,
    load_declarations,
)

DEFAULT_PORT_BASE = 8470
log = logging.getLogger("leadbus.demo")


class CarelessPublisher:
    """Now and then sends what a careless or broken agency system would: the intake dead-letters it."""

    def __init__(self, bootstrap: str, seed: int) -> None:
        self.bootstrap = bootstrap
        self.producers: dict[str, Any] = {}  # one per agency: on a secured bus each writes as that agency
        self.generator = TrafficGenerator(seed=seed + 1000)
        self.schema = packaged_catalog().latest("cn.leadbus.CaseLead")
        self.sent = 0

    def maybe_send(self, elapsed: float) -> None:
        if elapsed < 3 * (self.sent + 1):
            return
        lead = self.generator.lead(datetime.now(UTC))
        record = lead.to_avro()
        kind = self.sent % 4
        if kind == 0:
            record["subject"] = {**record["subject"], "id_number": "110105194912310021"}  # bad check digit
        elif kind == 1:
            record["facts"] = {**record["facts"], "sales_amount_fen": -1}
        elif kind == 2:
            record["publisher"] = {**record["publisher"], "province": "99"}
        data = b"\x00garbage from a broken gateway" if kind == 3 else encode(self.schema, record)
        agency = lead.publisher.agency
        if agency not in self.producers:
            self.producers[agency] = settings_from_env(f"publisher-{agency}", self.bootstrap).producer()
        self.producers[agency].produce(intake_topic(agency), key=lead.lead_id.encode(), value=data)
        self.producers[agency].poll(0)
        self.sent += 1

    def close(self, timeout: float) -> None:
        for producer in self.producers.values():
            producer.flush(timeout)
        self.producers.clear()  # librdkafka's handles go now, while the broker is still there


class BusView:
    """Reads the intake topics back from the broker and keeps the counts the demo shows."""

    def __init__(self, bootstrap: str) -> None:
        self.catalog = packaged_catalog()
        # the auditor's view on a secured bus (it reads everything; its groups are leadbus-audit-…)
        self.consumer = settings_from_env("auditor", bootstrap).consumer(
            f"leadbus-audit-demo-view-{uuid.uuid4()}", **{"topic.metadata.refresh.interval.ms": 2000})
        self.consumer.subscribe(["^leadbus\\.intake\\..*", LEADS_ACCEPTED, LEADS_REJECTED, CASES, HANDOVER,
                                 BLACKLIST])
        self.board: HandoverBoard | None = None
        self.blacklist: BlacklistBoard | None = None
        self.case_provinces: dict[str, str] = {}
        self.cases: dict[str, int] = {}  # live case id → member count
        self.merges = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.read = 0
        self.undecodable = 0
        self.by_agency: Counter[str] = Counter()
        self.by_category: Counter[str] = Counter()
        self.by_province: Counter[str] = Counter()
        self.recent: deque[CaseLead] = deque(maxlen=8)

    def pump(self, seconds: float = 0.05) -> None:
        for msg in self.consumer.consume(500, seconds):
            if msg.error():
                continue
            if msg.topic() == LEADS_ACCEPTED:
                self.accepted += 1
                continue
            if msg.topic() == BLACKLIST:
                if self.blacklist is not None and msg.value():
                    self.blacklist.on_entry(decode(self.catalog, msg.value() or b"")[1])
                continue
            if msg.topic() == HANDOVER:
                if self.board is not None:
                    self.board.on_step(decode(self.catalog, msg.value() or b"")[1])
                continue
            if msg.topic() == CASES:
                case = decode(self.catalog, msg.value() or b"")[1]
                if case["reporters"]:
                    self.case_provinces[case["case_id"]] = case["reporters"][0]["province"]
                if case["merged_into"]:
                    self.cases.pop(case["case_id"], None)
                    self.merges += 1
                else:
                    self.cases[case["case_id"]] = len(case["members"])
                continue
            if msg.topic() == LEADS_REJECTED:
                try:
                    self.rejected[decode(self.catalog, msg.value() or b"")[1]["reason"]] += 1
                except DecodeError:
                    self.rejected["?"] += 1
                continue
            try:
                _, record = decode(self.catalog, msg.value() or b"")
                lead = CaseLead.from_avro(record)
            except (DecodeError, ValueError):
                self.undecodable += 1
                continue
            self.read += 1
            self.by_agency[lead.publisher.agency] += 1
            self.by_category[str(lead.category)] += 1
            province = lead.subject.address.province if lead.subject.address else lead.publisher.province
            self.by_province[province] += 1
            self.recent.appendleft(lead)

    def render(self, traffic: Traffic, bootstrap: str) -> Group:
        head = Table.grid(padding=(0, 2))
        r = traffic.report
        head.add_row(f"[bold]leadbus demo[/bold] broker {bootstrap}",
                     f"published {r.published}", f"confirmed {r.confirmed}", f"failed {r.failed}",
                     f"on intake topics {self.read + self.undecodable}")
        intake = Table.grid(padding=(0, 2))
        top = ", ".join(f"{reason} {n}" for reason, n in self.rejected.most_common(6)) or "none yet"
        intake.add_row("[bold]intake[/bold]", f"[green]accepted {self.accepted}[/green]",
                       f"[red]rejected {sum(self.rejected.values())}[/red]", f"reasons: {top}")
        counts = Table(title="by agency / category / suspect province", show_lines=False)
        for col in ("agency", "n", "category", "n", "province", "n"):
            counts.add_column(col)
        rows = zip(
            self.by_agency.most_common(8),
            self.by_category.most_common(8),
            self.by_province.most_common(8),
            strict=False,
        )
        for (a, an), (c, cn), (p, pn) in rows:
            counts.add_row(a, str(an), f"{CATEGORIES.get(c, c)} {c}", str(cn),
                           PROVINCES[p].name_zh if p in PROVINCES else p, str(pn))
        recent = Table(title="latest leads on the bus")
        for col in ("time", "agency", "prov", "category", "subject", "handling"):
            recent.add_column(col)
        for lead in self.recent:
            recent.add_row(lead.reported_at.strftime("%H:%M:%S"), lead.publisher.agency, lead.publisher.province,
                           str(lead.category), lead.subject.name[:24], str(lead.handling))
        multi = sum(1 for n in self.cases.values() if n > 1)
        biggest = max(self.cases.values(), default=0)
        intake.add_row("[bold]linking[/bold]", f"cases {len(self.cases)}", f"with 2+ leads {multi}",
                       f"merges {self.merges}, largest case {biggest} leads")
        parts = [head, intake, counts, recent]
        if self.board is not None:
            parts.append(self.board.render())
        if self.blacklist is not None:
            parts.append(self.blacklist.render())
        return Group(*parts)

    def close(self) -> None:
        self.consumer.close()


class Rates:
    """Per-second rates of growing counters over a sliding window."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, dict[str, int]]] = deque()

    def add(self, now: float, counts: dict[str, int]) -> None:
        self.samples.append((now, dict(counts)))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def per_second(self) -> dict[str, float]:
        if len(self.samples) < 2:
            return {}
        (t0, first), (t1, last) = self.samples[0], self.samples[-1]
        if t1 - t0 <= 0:
            return {}
        return {k: (last[k] - first.get(k, 0)) / (t1 - t0) for k in last}


# The stages' consumer groups, from the registry `leadbus process` builds them from.
STAGE_GROUPS = {name: definition.group for name, definition in PIPELINE.items()}


class LagProbe:
    """Consumer lag per stage: records between each group's committed offsets and the ends of its inputs.

    Asked of the broker every few seconds from a thread of its own, so the live view never waits on it.
    The committed offsets come from a consumer in the stage's group that never joins it (AdminClient's
    list_consumer_group_offsets crashes the process on a group the coordinator does not know yet:
    librdkafka#5040, confluent-kafka-python#1982); the ends are read_committed offsets, so a transaction's
    commit marker is not counted as lag.
    """

    def __init__(self, bootstrap: str, every: float = 3.0) -> None:
        kafka = settings_from_env("admin", bootstrap)  # reads the stages' group offsets: the admin's view
        self.admin = kafka.admin(**{"socket.timeout.ms": 2000})
        # Never subscribed and never committing (enable.auto.commit is off): they only read the groups' offsets.
        self.readers = {stage: kafka.consumer(group) for stage, group in STAGE_GROUPS.items()}
        self.every = every
        self.lag: dict[str, int | None] = dict.fromkeys(STAGE_GROUPS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag-probe", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                topics = list(self.admin.list_topics(timeout=2).topics.items())
            except Exception:  # noqa: BLE001 - a probe that fails shows "?" and tries again
                continue
            for stage in STAGE_GROUPS:
                if self._stop.is_set():
                    return
                try:
                    self.lag[stage] = self._lag(stage, topics)
                except Exception:  # noqa: BLE001 - as above
                    self.lag[stage] = None
            self.admin.poll(0)

    def _lag(self, stage: str, topics: list[tuple[str, Any]]) -> int | None:
        inputs = STAGES[stage].inputs
        parts = [TopicPartition(name, p) for name, meta in topics for p in meta.partitions
                 if any(re.fullmatch(i[1:], name) if i.startswith("^") else i == name for i in inputs)]
        if not parts:
            return None
        reader = self.readers[stage]
        committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed(parts, timeout=2)}
        reader.poll(0)
        ends = self._offsets(parts, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        # A partition the group never committed counts from its beginning: the stage has all of it to read.
        fresh = [tp for tp in parts if committed.get((tp.topic, tp.partition), -1) < 0]
        starts = self._offsets(fresh, OffsetSpec.earliest()) if fresh else {}  # type: ignore[no-untyped-call]
        total = 0
        for key, end in ends.items():
            position = committed.get(key, -1)
            total += max(0, end - (position if position >= 0 else starts.get(key, 0)))
        return total

    def _offsets(self, parts: list[TopicPartition], spec: Any) -> dict[tuple[str, int], int]:
        futures = self.admin.list_offsets({tp: spec for tp in parts}, isolation_level=IsolationLevel.READ_COMMITTED,
                                          request_timeout=2)
        return {(tp.topic, tp.partition): future.result(timeout=3).offset for tp, future in futures.items()}

    def close(self) -> None:
        """Stop probing; release the clients while the broker is still there (only once the thread is done)."""
        self._stop.set()
        self._thread.join(4.0)
        if not self._thread.is_alive():
            for reader in self.readers.values():
                reader.close()
            self.readers.clear()
            del self.admin


def status(view: BusView, traffic: Traffic, rates: Rates, lag: LagProbe | None,
           supervisor: Supervisor | None) -> dict[str, Any]:
    """What the status block shows: rates, open cases, overdue duties, lag and the stages' health."""
    counts = {"published": traffic.report.published, "accepted": view.accepted,
              "rejected": sum(view.rejected.values())}
    rates.add(time.monotonic(), counts)
    board = view.board
    return {
        **counts,
        "rates": rates.per_second(),
        "open_cases": len(view.cases),
        "overdue": sum(1 for c in board.cases.values() if c.overdue) if board is not None else 0,
        "lag": dict(lag.lag) if lag is not None else {},
        "down": [c.name for c in supervisor.children.values() if not c.running] if supervisor else [],
        "restarts": sum(c.restarts for c in supervisor.children.values()) if supervisor else 0,
    }


def _lag_text(lag: dict[str, int | None]) -> str:
    return " ".join(f"{stage} {'?' if n is None else n}" for stage, n in lag.items()) or "…"


def status_line(info: dict[str, Any], elapsed: float) -> str:
    r = info["rates"]
    down = f" DOWN: {', '.join(info['down'])}" if info["down"] else ""
    return (f"[{elapsed:6.0f}s] published {info['published']} ({r.get('published', 0):.1f}/s) "
            f"accepted {info['accepted']} ({r.get('accepted', 0):.1f}/s) "
            f"rejected {info['rejected']} ({r.get('rejected', 0):.1f}/s) | open cases {info['open_cases']} | "
            f"overdue duties {info['overdue']} | lag {_lag_text(info['lag'])} | restarts {info['restarts']}{down}")


def status_block(info: dict[str, Any]) -> Group:
    r = info["rates"]
    rates = Table.grid(padding=(0, 3))
    rates.add_row(f"[bold]published[/bold] {r.get('published', 0):5.1f}/s",
                  f"[green]accepted[/green] {r.get('accepted', 0):5.1f}/s",
                  f"[red]rejected[/red] {r.get('rejected', 0):5.1f}/s",
                  f"[bold]open cases[/bold] {info['open_cases']}",
                  ("[bold red]" if info["overdue"] else "[bold]") + f"overdue duties {info['overdue']}[/]")
    health = Table.grid(padding=(0, 3))
    down = ("[bold red]down: " + ", ".join(info["down"]) + "[/]") if info["down"] else "[green]all running[/green]"
    health.add_row(f"[bold]consumer lag[/bold] {_lag_text(info['lag'])}", f"processes: {down}",
                   f"restarts {info['restarts']}")
    return Group(rates, health)


STOP_ORDER = ("processors", "sinks", "dashboards")  # after the simulator, before the broker
STOP_WITHIN = 15.0  # seconds from Ctrl-C to exit, all included
STATUS_EVERY = 5.0  # seconds between status lines when stdout is not a terminal
DASHBOARD_REGIONS = ("jjj", "yrd", "pprd")


class Interrupts:
    """The demo's SIGINT/SIGTERM handler: the first asks for an orderly stop, the second forces it.

    While starting up, the first one raises KeyboardInterrupt so a blocking start is abandoned;
    once running, it only sets a flag that the main loop reads.
    """

    def __init__(self) -> None:
        self.count = 0
        self.raise_first = True
        self.on_force: list[Callable[[], None]] = []

    @property
    def stopping(self) -> bool:
        return self.count >= 1

    @property
    def forced(self) -> bool:
        return self.count >= 2

    def install(self) -> None:
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 2:
            for kill in self.on_force:
                with contextlib.suppress(Exception):
                    kill()
        elif self.count == 1 and self.raise_first:
            raise KeyboardInterrupt


def child_specs(bootstrap: str, state: Path, demo_dir: Path, ports: DemoPorts, day_seconds: float,
                run_id: str, edge: Edge | None = None, seal_keys: Path | None = None) -> list[ChildSpec]:
    cli = [sys.executable, "-m", "leadbus.cli"]
    specs = []
    for name in PIPELINE:
        argv = [*cli, "process", "--stage", name, "-b", bootstrap, "--state-dir", str(state),
                "--worker-id", f"demo-{run_id}-{name}", "--metrics-port", str(ports.metrics[name])]
        if seal_keys is not None:  # each stage seals its outputs (issue #14): keys made and registered at start
            argv += ["--seal-keys", str(seal_keys)]
        if name == "handover":
            argv += ["--day-seconds", str(day_seconds)]
        specs.append(ChildSpec(name, argv, group="processors"))
    registry_url = f"sqlite:///{demo_dir / 'registry.db'}"
    specs.append(ChildSpec("registry", [*cli, "registry", "-b", bootstrap, "--url", registry_url], group="sinks"))
    specs.append(ChildSpec("archive", [*cli, "archive", "run", str(demo_dir / "archive"), "-b", bootstrap,
                                       "--seal-after-seconds", "10"], group="sinks"))
    for region in DASHBOARD_REGIONS:
        specs.append(ChildSpec(f"dashboard-{region}", [*cli, "dashboard", "--region", region, "-b", bootstrap,
                                                       "--port", str(ports.dashboards[region]),
                                                       *(edge.dashboard_args[region] if edge else [])],
                               group="dashboards", env=edge.dashboard_env if edge else None))
    if edge is not None:
        specs.append(ChildSpec("gateway", edge.gateway_argv, group="processors"))
    # issue #18: the joint-operations controller, one operation's view (for SAMR), the public warnings page
    admin = Path("var/secure/clients/admin.json").resolve()
    specs.append(ChildSpec("operations", [*cli, "operations", "-b", bootstrap,
                                          *(["--admin-config", str(admin)] if os.environ.get(CLIENT_CONFIG_ENV)
                                            else [])], group="processors"))
    specs.append(ChildSpec("operation-view", [*cli, "operation-view", "--operation", DEMO_OPERATION, "--member",
                                              "SAMR", "-b", bootstrap, "--port", str(ports.operation_view)],
                           group="dashboards"))
    specs.append(ChildSpec("warnings-page", [*cli, "warnings-page", "-b", bootstrap, "--port", str(ports.warnings)],
                           group="dashboards"))
    return specs


@dataclass(frozen=True)
class DemoPorts:
    """Stable ports: dashboards at base…base+2 (jjj, yrd, pprd); stage metrics from base+10, one per pipeline stage."""

    base: int

    @property
    def dashboards(self) -> dict[str, int]:
        return {region: self.base + i for i, region in enumerate(DASHBOARD_REGIONS)}

    @property
    def metrics(self) -> dict[str, int]:
        return {stage: self.base + 10 + i for i, stage in enumerate(PIPELINE)}

    @property
    def gateway(self) -> int:
        return self.base + 5

    @property
    def warnings(self) -> int:
        return self.base + 6

    @property
    def operation_view(self) -> int:
        return self.base + 7

    def all(self) -> list[int]:
        return [*self.dashboards.values(), self.gateway, self.warnings, self.operation_view, *self.metrics.values()]


def busy_ports(ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def run_demo(*, rate: float, duration: float, seed: int, console: Console, day_seconds: float = 30.0,
             port_base: int = DEFAULT_PORT_BASE, workdir: Path = Path("var/demo"), secure: bool = False) -> int:
    """Run the demo until `duration` passes or Ctrl-C / SIGTERM; stop everything in order; return an exit code."""
    interrupts = Interrupts()
    interrupts.install()
    ports = DemoPorts(port_base)
    busy = busy_ports(ports.all())
    if busy:
        console.print(f"[red]ports in use: {', '.join(map(str, busy))}[/red] — another demo running? "
                      "Move every port with --port-base.")
        return 2
    demo_dir = workdir.resolve()
    shutil.rmtree(demo_dir, ignore_errors=True)
    (demo_dir / "logs").mkdir(parents=True)
    _log_to_file(demo_dir / "logs" / "demo.log")
    run_id = uuid.uuid4().hex[:8]
    cluster = _secured(console) if secure else KafkaCluster(1)
    supervisor: Supervisor | None = None
    traffic: Traffic | None = None
    careless: CarelessPublisher | None = None
    operations: OperationsDemo | None = None
    view: BusView | None = None
    lag: LagProbe | None = None
    interrupts.on_force.append(lambda: _kill_cluster(cluster))
    bootstrap = cluster.bootstrap_servers
    registry_url = f"sqlite:///{demo_dir / 'registry.db'}"
    try:
        console.print("starting a local Kafka broker (KRaft, jars from Maven Central)…")
        cluster.start()
        apply_topics(cluster.admin_settings, load_declarations())
        publish_schemas(cluster.admin_settings, list(packaged_catalog()))
        if secure:
            _apply_policy(cluster, console)  # and every component below takes its principal's file
        state = demo_dir / "state"
        edge = prepare_edge(bootstrap, demo_dir, ports.gateway, [sys.executable, "-m", "leadbus.cli"])
        seal_keys = demo_dir / "stage-keys"
        provision_stage_keys(settings_from_env("admin", bootstrap), seal_keys, PIPELINE)
        supervisor = Supervisor(child_specs(bootstrap, state, demo_dir, ports, day_seconds, run_id, edge, seal_keys),
                                log_dir=demo_dir / "logs")
        interrupts.on_force.insert(0, supervisor.kill)
        supervisor.start()
        console.print(_url_table(bootstrap, ports, registry_url, demo_dir, edge))
        for line in edge_lines(edge, ports.dashboards):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        console.print(f"simulated agencies publishing {rate:g}/s; a statutory day of handover deadlines lasts "
                      f"{day_seconds:g} s and every fourth handover is left to go overdue. "
                      "[bold]Ctrl-C stops[/bold] (a second Ctrl-C forces).")
        traffic = Traffic(lambda agency: settings_from_env(f"publisher-{agency}", bootstrap), seed=seed)
        careless = CarelessPublisher(bootstrap, seed)
        view = BusView(bootstrap)
        view.board = HandoverBoard(bootstrap)
        view.blacklist = BlacklistBoard(bootstrap)
        operations = OperationsDemo(bootstrap)
        operations.start()
        lag = LagProbe(bootstrap)
        rates = Rates()
        interrupts.raise_first = False
        start = time.monotonic()
        last_line = start
        # On a terminal a live view; otherwise (a pipe, a CI log) one plain status line every few seconds.
        live = Live(console=console, refresh_per_second=2, transient=True) if console.is_terminal else None
        with live if live is not None else contextlib.nullcontext():
            while not interrupts.stopping and (duration <= 0 or time.monotonic() - start < duration):
                due = int((time.monotonic() - start) * rate) + 1
                while traffic.report.published < due:
                    traffic.publish_one(datetime.now(UTC))
                for pub in traffic.publishers.values():
                    pub.producer.poll(0)
                traffic.settle()
                careless.maybe_send(time.monotonic() - start)
                view.board.act(view.case_provinces)
                view.blacklist.act()
                operations.act(view.case_provinces)
                view.pump(0.1)
                supervisor.poll()
                info = status(view, traffic, rates, lag, supervisor)
                if live is not None:
                    live.update(Group(status_block(info), view.render(traffic, bootstrap)))
                elif time.monotonic() - last_line >= STATUS_EVERY:
                    last_line = time.monotonic()
                    console.print(status_line(info, last_line - start), highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        pass
    except Exception:
        if not interrupts.stopping:
            raise
        # Ctrl-C during start-up also reaches helpers in the demo's own process group (the broker's storage
        # formatter): what fails because of it is no error of the demo.
        log.warning("start-up interrupted", exc_info=True)
    finally:
        interrupts.raise_first = False
        stopped_at = time.monotonic()
        console.print("stopping: simulator, processors, sinks, dashboards, broker…")
        if lag is not None:
            lag.close()
        if operations is not None:
            operations.close()
        _shutdown(cluster, supervisor, traffic, careless, view, interrupts, stopped_at, console)
        _end_children(console)
    if view is not None and traffic is not None:
        console.print(view.render(traffic, bootstrap))
    _report_sinks(console, registry_url, demo_dir / "archive")
    forced = " (forced)" if interrupts.forced else ""
    console.print(f"stopped in {time.monotonic() - stopped_at:.1f}s{forced}; logs in {demo_dir / 'logs'}")
    return 130 if interrupts.forced else 0


def _shutdown(cluster: KafkaCluster, supervisor: Supervisor | None, traffic: Traffic | None,
              careless: CarelessPublisher | None, view: BusView | None, interrupts: Interrupts, began: float,
              console: Console) -> None:
    """Stop in order, each phase within its share of STOP_WITHIN; whatever overstays is killed."""
    deadline = began + STOP_WITHIN - 3.5  # leave time for the summary and the interpreter's exit
    took: list[str] = []
    mark = time.monotonic()

    def budget(cap: float) -> float:
        return 0.0 if interrupts.forced else max(0.2, min(cap, deadline - time.monotonic()))

    def done(phase: str) -> None:
        nonlocal mark
        now = time.monotonic()
        took.append(f"{phase} {now - mark:.1f}s")
        mark = now

    # 1. the simulator: stop publishing, wait for what is in flight, release the producers (a librdkafka handle
    # destroyed after the broker has gone waits for its threads at exit).
    publishers = [*(traffic.publishers.values() if traffic else ()),
                  *(view.board.publishers.values() if view and view.board else ()),
                  *(view.blacklist.publishers.values() if view and view.blacklist else ())]
    flush_until = time.monotonic() + budget(2.0)
    for pub in publishers:
        with contextlib.suppress(PublishError):
            pub.flush(max(0.0, flush_until - time.monotonic()))
    if traffic is not None:
        traffic.settle()
    for pub in publishers:
        with contextlib.suppress(PublishError):
            pub.close(0)
    if careless is not None:
        careless.close(0.5)
    done("simulator")
    if supervisor is not None:  # 2.–4. processors (commit and close), sinks, dashboards
        for group, cap in zip(STOP_ORDER, (4.0, 3.0, 2.5), strict=True):
            killed = supervisor.stop([group], timeout=budget(cap), force=lambda: interrupts.forced)
            if killed:
                console.print(f"[yellow]killed after the stop deadline: {', '.join(killed)}[/yellow]")
            done(group)
        if view is not None:
            view.pump(0.2)
    if view is not None:
        view.close()
    # 5. the broker. Its data is the demo's own temporary folder, so a controlled shutdown that overstays (a busy
    # machine) is cut short rather than the 15 s.
    if not _stop_cluster(cluster, budget(5.0), interrupts):
        console.print("[yellow]the broker's controlled shutdown overstayed its time: killed[/yellow]")
    done("broker")
    log.info("demo stopped: %s", ", ".join(took))
    console.print("stopped " + ", ".join(took), soft_wrap=True)


def _stop_cluster(cluster: KafkaCluster, timeout: float, interrupts: Interrupts) -> bool:
    """SIGTERM each broker (a controlled shutdown), SIGKILL it after `timeout`; True when none had to be killed."""
    clean = True
    for node in cluster.nodes:
        proc = node.process
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        end = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < end and not interrupts.forced:
            time.sleep(0.05)
        if proc.poll() is None:
            clean = False
            proc.kill()
            proc.wait(5)
    cluster.close()
    return clean


def _end_children(console: Console) -> None:
    """Nothing the demo started outlives it, not even as a process nobody has reaped yet.

    Everything should have stopped in order by now. What is left was started as Ctrl-C came (a fork that had not
    become a broker yet, a helper whose handle was lost): it is killed and reaped here. A child left to the demo's
    exit would be ended by its parent-death signal and reaped by init only later.
    """
    children = psutil.Process().children()
    running = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE:
                running.append(" ".join(child.cmdline())[:80])
                child.kill()
    psutil.wait_procs(children, timeout=5)
    if running:
        log.warning("killed at exit: %s", running)
        console.print(f"[yellow]killed at exit: {len(running)} process(es) started as the demo was stopped[/yellow]")


def _kill_cluster(cluster: KafkaCluster) -> None:
    for node in cluster.nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()


def _log_to_file(path: Path) -> None:
    """The demo's own logs — librdkafka's included, at their own levels — go to a file, not over the live view."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _url_table(bootstrap: str, ports: DemoPorts, registry_url: str, demo_dir: Path, edge: Edge | None = None) -> Table:
    table = Table(title="leadbus demo", title_justify="left")
    table.add_column("what")
    table.add_column("where", overflow="fold")  # folded, never cut short with "…"
    table.add_row("Kafka broker", bootstrap)
    for region, port in ports.dashboards.items():
        reg = REGIONS[region]
        table.add_row(f"dashboard {reg.name_zh} {reg.name_en}", f"http://127.0.0.1:{port}/  (?lang=en)")
        if edge is not None:
            table.add_row("  sign in", "{} / {}".format(*edge.sign_ins[region]))
    if edge is not None:
        table.add_row("gateway SAMR Zhejiang (HTTPS)", f"{edge.gateway_url}  (CA {edge.ca})")
        table.add_row("  demo token", f"Authorization: Bearer {edge.token}")
    table.add_row("public consumer warnings 网络购物消费警示", f"http://127.0.0.1:{ports.warnings}/  "
                  "(/feed.atom, /feed.rss, /api/warnings)")
    table.add_row(f"joint operation {DEMO_OPERATION} (view for SAMR)", f"http://127.0.0.1:{ports.operation_view}/")
    for stage, port in ports.metrics.items():
        table.add_row(f"metrics: {stage} stage", f"http://127.0.0.1:{port}/metrics")
    table.add_row("case registry", registry_url)
    table.add_row("archive", str(demo_dir / "archive"))
    table.add_row("logs", str(demo_dir / "logs"))
    return table


def _secured(console: Console) -> KafkaCluster:
    """`make demo SECURE=1`: TLS, SCRAM and the ACL policy; the CA and client files in var/secure/."""
    from leadbus.localbroker.secure import secure_cluster

    console.print("secured: TLS with the local CA in var/secure/tls, SCRAM-SHA-512, ACLs from deploy/acl-policy.yaml")
    return secure_cluster(1, None, Path("var/secure").resolve())


def _apply_policy(cluster: KafkaCluster, console: Console) -> None:
    from leadbus.acl import load_policy
    from leadbus.provisioning.acls import apply_policy

    clients = Path("var/secure/clients").resolve()
    report = apply_policy(cluster.admin_settings, load_policy(), clients)
    os.environ[CLIENT_CONFIG_ENV] = str(clients)  # the processes started below inherit it
    console.print(f"{len(report.files)} principals' client settings in {clients}")


def _report_sinks(console: Console, registry_url: str, archive: Path) -> None:
    from leadbus.sinks.archive import read_manifest, verify
    from leadbus.sinks.registry import counts, registry_engine

    engine = registry_engine(registry_url)
    rows = counts(engine)
    engine.dispose()
    console.print("registry rows: " + ", ".join(f"{table} {n}" for table, n in rows.items()))
    if (archive / "MANIFEST.jsonl").exists():
        problems = verify(archive)
        files = read_manifest(archive)
        state = "verified" if not problems else f"{len(problems)} problems"
        console.print(f"archive: {len(files)} sealed files, {sum(f.records for f in files)} records, {state}")
