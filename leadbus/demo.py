"""`make demo`: a real broker, the declared topics, simulated agencies, and a live view of the bus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from leadbus.agencies import CATEGORIES
from leadbus.avro import DecodeError, decode, encode, packaged_catalog
from leadbus.clients import CLIENT_CONFIG_ENV, settings_from_env
from leadbus.demo_handover import HandoverBoard
from leadbus.geography import PROVINCES, REGIONS
from leadbus.kafka import KafkaCluster
from leadbus.kafka.admin import apply_topics
from leadbus.kafka.cluster import free_port
from leadbus.models import CaseLead
from leadbus.producers.simulator import TrafficGenerator
from leadbus.producers.traffic import Traffic
from leadbus.schema_topic import publish_schemas
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED, LEADS_REJECTED, intake_topic, load_declarations


class CarelessPublisher:
    """Now and then sends what a careless or broken agency system would: the intake dead-letters it."""

    def __init__(self, bootstrap: str, seed: int) -> None:
        self.bootstrap = bootstrap
        self.producers: dict[str, Producer] = {}  # one per agency: on a secured bus each writes as that agency
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


class BusView:
    """Reads the intake topics back from the broker and keeps the counts the demo shows."""

    def __init__(self, bootstrap: str) -> None:
        self.catalog = packaged_catalog()
        # the auditor's view on a secured bus (it reads everything; its groups are leadbus-audit-…)
        self.consumer = settings_from_env("auditor", bootstrap).consumer(
            f"leadbus-audit-demo-view-{uuid.uuid4()}", **{"topic.metadata.refresh.interval.ms": 2000})
        self.consumer.subscribe(["^leadbus\\.intake\\..*", LEADS_ACCEPTED, LEADS_REJECTED, CASES, HANDOVER])
        self.board: HandoverBoard | None = None
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
        return Group(*parts)

    def close(self) -> None:
        self.consumer.close()


def run_demo(*, rate: float, duration: float, seed: int, console: Console, day_seconds: float = 30.0,
             secure: bool = False) -> None:
    console.print("starting a local Kafka broker (KRaft, jars from Maven Central)…")
    with _secured(console) if secure else KafkaCluster(1) as cluster:
        bootstrap = cluster.bootstrap_servers
        apply_topics(cluster.admin_settings, load_declarations())
        publish_schemas(cluster.admin_settings, list(packaged_catalog()))
        if secure:
            _apply_policy(cluster, console)  # and every component below takes its principal's file
        console.print(f"broker at {bootstrap}; topics applied; simulated agencies publishing {rate}/s. Ctrl-C stops.")
        traffic = Traffic(lambda agency: settings_from_env(f"publisher-{agency}", bootstrap), seed=seed)
        view = BusView(bootstrap)
        state = Path(tempfile.mkdtemp(prefix="leadbus-demo-"))
        log = open(state / "intake.log", "ab")  # noqa: SIM115 - handed to the child
        worker = subprocess.Popen(
            [sys.executable, "-m", "leadbus.cli", "process", "--stage", "all", "-b", bootstrap,
             "--state-dir", str(state), "--day-seconds", str(day_seconds)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        demo_dir = Path("var/demo").resolve()
        shutil.rmtree(demo_dir, ignore_errors=True)
        demo_dir.mkdir(parents=True)
        registry_url = f"sqlite:///{demo_dir / 'registry.db'}"
        sinks = [
            subprocess.Popen([sys.executable, "-m", "leadbus.cli", "registry", "-b", bootstrap, "--url", registry_url],
                             stdout=log, stderr=subprocess.STDOUT),
            subprocess.Popen([sys.executable, "-m", "leadbus.cli", "archive", "run", str(demo_dir / "archive"), "-b",
                              bootstrap, "--seal-after-seconds", "10"], stdout=log, stderr=subprocess.STDOUT),
        ]
        for n, region in enumerate(("jjj", "yrd", "pprd")):
            port = free_port()
            sinks.append(subprocess.Popen([sys.executable, "-m", "leadbus.cli", "dashboard", "--region", region,
                                           "-b", bootstrap, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT))
            console.print(f"[bold]dashboard {REGIONS[region].name_zh} {REGIONS[region].name_en}: "
                          f"http://127.0.0.1:{port}/[/bold]" + ("" if n else "   (?lang=en for English)"))
        console.print(f"registry: {registry_url}   archive: {demo_dir / 'archive'}")
        careless = CarelessPublisher(bootstrap, seed)
        view.board = HandoverBoard(bootstrap)
        console.print(f"demo calendar: a statutory day of handover deadlines lasts {day_seconds:g} s; "
                      "every fourth handover is left to go overdue")
        start = time.monotonic()
        try:
            with Live(console=console, refresh_per_second=2) as live:
                while duration <= 0 or time.monotonic() - start < duration:
                    due = int((time.monotonic() - start) * rate) + 1
                    while traffic.report.published < due:
                        traffic.publish_one(datetime.now(UTC))
                    for pub in traffic.publishers.values():
                        pub.producer.poll(0)
                    traffic.settle()
                    careless.maybe_send(time.monotonic() - start)
                    view.board.act(view.case_provinces)
                    view.pump(0.1)
                    live.update(view.render(traffic, bootstrap))
        except KeyboardInterrupt:
            pass
        finally:
            for pub in traffic.publishers.values():
                pub.flush(30)
            traffic.settle()
            for process in (worker, *sinks):
                process.terminate()
            for process in (worker, *sinks):
                process.wait(60)
            log.close()
            view.pump(1.0)
            view.board.close()
            view.close()
        console.print(view.render(traffic, bootstrap))
        _report_sinks(console, registry_url, demo_dir / "archive")
        console.print("stopping the broker")


def _secured(console: Console) -> KafkaCluster:
    """`make demo SECURE=1`: TLS, SCRAM and the ACL policy; the CA and client files in var/secure/."""
    from leadbus.kafka.secure import secure_cluster

    console.print("secured: TLS with the local CA in var/secure/tls, SCRAM-SHA-512, ACLs from deploy/acl-policy.yaml")
    return secure_cluster(1, None, Path("var/secure").resolve())


def _apply_policy(cluster: KafkaCluster, console: Console) -> None:
    from leadbus.acl import load_policy
    from leadbus.kafka.acls import apply_policy

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
