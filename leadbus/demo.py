"""`make demo`: a real broker, the declared topics, simulated agencies, and a live view of the bus."""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime

from confluent_kafka import Consumer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from leadbus.agencies import CATEGORIES
from leadbus.avro import DecodeError, decode, packaged_catalog
from leadbus.geography import PROVINCES
from leadbus.kafka import KafkaCluster
from leadbus.kafka.admin import apply_topics
from leadbus.models import CaseLead
from leadbus.producers.traffic import Traffic
from leadbus.schema_topic import publish_schemas
from leadbus.topics import load_declarations


class BusView:
    """Reads the intake topics back from the broker and keeps the counts the demo shows."""

    def __init__(self, bootstrap: str) -> None:
        self.catalog = packaged_catalog()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"leadbus-demo-view-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 2000,
        })
        self.consumer.subscribe(["^leadbus\\.intake\\..*"])
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
                     f"read back {self.read}", f"undecodable {self.undecodable}")
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
        return Group(head, counts, recent)

    def close(self) -> None:
        self.consumer.close()


def run_demo(*, rate: float, duration: float, seed: int, console: Console) -> None:
    console.print("starting a local Kafka broker (KRaft, jars from Maven Central)…")
    with KafkaCluster(1) as cluster:
        bootstrap = cluster.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        publish_schemas(bootstrap, list(packaged_catalog()))
        console.print(f"broker at {bootstrap}; topics applied; simulated agencies publishing {rate}/s. Ctrl-C stops.")
        traffic = Traffic(bootstrap, seed=seed)
        view = BusView(bootstrap)
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
                    view.pump(0.1)
                    live.update(view.render(traffic, bootstrap))
        except KeyboardInterrupt:
            pass
        finally:
            for pub in traffic.publishers.values():
                pub.flush(30)
            traffic.settle()
            view.pump(1.0)
            view.close()
        console.print(view.render(traffic, bootstrap))
        console.print("stopping the broker")
