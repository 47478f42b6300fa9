"""The demo's blacklist desk (issue #18): it follows `leadbus.blacklist` and, as SAMR, lists every entry the bus
proposes after a case's criminal filing (a simulated final decision of the handover board), with a short
listing period so that expiry shows too."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from leadbus.clients import settings_from_env
from leadbus.producers import Publisher

LISTING_AGENCY, LISTING_PROVINCE = "SAMR", "00"


class BlacklistBoard:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.entries: dict[str, dict[str, Any]] = {}
        self.acted: set[tuple[str, datetime]] = set()
        self.publishers: dict[str, Publisher] = {}

    def on_entry(self, entry: dict[str, Any]) -> None:
        self.entries[entry["entry_id"]] = entry

    def act(self) -> None:
        for entry_id, entry in self.entries.items():
            mark = (entry_id, entry["proposed_at"])
            if str(entry["status"]) != "PROPOSED" or mark in self.acted:
                continue
            pub = self.publishers.get(LISTING_AGENCY)
            if pub is None:
                pub = self.publishers[LISTING_AGENCY] = Publisher(
                    LISTING_AGENCY, LISTING_PROVINCE,
                    bootstrap_servers=settings_from_env(f"publisher-{LISTING_AGENCY}", self.bootstrap))
            pub.publish_blacklist_decision({
                "decision_id": str(uuid.uuid4()), "entry_id": entry_id, "kind": "LIST",
                "decided_at": datetime.now(UTC), "period_days": 365, "reasons": "演示：刑事立案后列入",
                "actor": {"agency": LISTING_AGENCY, "province": LISTING_PROVINCE}})
            self.acted.add(mark)

    def render(self) -> Table:
        counts: dict[str, int] = {}
        for entry in self.entries.values():
            counts[str(entry["status"])] = counts.get(str(entry["status"]), 0) + 1
        summary = ", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "none yet"
        table = Table(title=f"blacklist (失信企业黑名单) — {summary}")
        for col in ("entry", "status", "identifiers", "cases", "listed until"):
            table.add_column(col)
        rows = sorted(self.entries.values(), key=lambda e: e["recorded_at"], reverse=True)
        for entry in rows[:6]:
            kinds = ", ".join(sorted({i.split(":", 1)[0] for i in entry["identifiers"]}))
            until = entry["listed_until"].strftime("%Y-%m-%d") if entry["listed_until"] else "—"
            table.add_row(entry["entry_id"], str(entry["status"]), kinds, str(len(entry["cases"])), until)
        return table

    def close(self) -> None:
        for pub in self.publishers.values():
            pub.flush(10)
