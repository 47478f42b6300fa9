"""Publishing simulated agency traffic at a steady rate through the real publisher SDK."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from leadbus.clients import KafkaSettings, settings_for
from leadbus.models import CaseLead
from leadbus.producers.publisher import PendingDelivery, Publisher
from leadbus.producers.simulator import TrafficGenerator


@dataclass
class TrafficReport:
    published: int = 0
    confirmed: int = 0
    failed: int = 0
    by_agency: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_province: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


class Traffic:
    """One `Publisher` per agency (lazily), fed by a seeded `TrafficGenerator`.

    On a secured bus each agency publishes as its own principal: `settings` maps an agency code to
    its client settings (`publisher-<agency>`); a plain bootstrap string or one settings object
    serves every agency alike.
    """

    def __init__(self, bootstrap_servers: str | KafkaSettings | Callable[[str], KafkaSettings], *, seed: int = 0,
                 same_suspect_share: float = 0.25) -> None:
        if callable(bootstrap_servers):
            self.settings: Callable[[str], KafkaSettings] = bootstrap_servers
        else:
            shared = settings_for(bootstrap_servers)
            self.settings = lambda agency: shared
        self.generator = TrafficGenerator(seed=seed, same_suspect_share=same_suspect_share)
        self.publishers: dict[str, Publisher] = {}
        self.report = TrafficReport()
        self._pending: list[PendingDelivery] = []

    def publisher(self, agency: str, province: str) -> Publisher:
        if agency not in self.publishers:
            self.publishers[agency] = Publisher(agency, province, bootstrap_servers=self.settings(agency))
        return self.publishers[agency]

    def publish_one(self, now: datetime) -> CaseLead:
        lead: CaseLead = self.generator.lead(now)
        pub = self.publisher(lead.publisher.agency, lead.publisher.province)
        self._pending.append(pub.publish(lead))
        r = self.report
        r.published += 1
        r.by_agency[lead.publisher.agency] += 1
        r.by_category[str(lead.category)] += 1
        r.by_province[lead.subject.address.province if lead.subject.address else lead.publisher.province] += 1
        return lead

    def settle(self) -> None:
        still: list[PendingDelivery] = []
        for fut in self._pending:
            if not fut.done():
                still.append(fut)
            elif fut.exception() is None:
                self.report.confirmed += 1
            else:
                self.report.failed += 1
        self._pending = still

    def run(
        self,
        rate: float,
        duration: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_tick: Callable[[TrafficReport], None] | None = None,
    ) -> TrafficReport:
        """Publish `rate` leads/s for `duration` s (0 = until interrupted), then wait for confirmations."""
        start = time.monotonic()
        last_tick = start
        try:
            while duration <= 0 or time.monotonic() - start < duration:
                due = int((time.monotonic() - start) * rate) + 1
                while self.report.published < due:
                    self.publish_one(clock())
                for pub in self.publishers.values():
                    pub.producer.poll(0)
                self.settle()
                if on_tick and time.monotonic() - last_tick >= 0.5:
                    last_tick = time.monotonic()
                    on_tick(self.report)
                time.sleep(min(0.05, max(0.0, (self.report.published / rate) - (time.monotonic() - start))))
        finally:
            for pub in self.publishers.values():
                pub.flush(60)
            self.settle()
            self.report.seconds = time.monotonic() - start
            if on_tick:
                on_tick(self.report)
        return self.report
