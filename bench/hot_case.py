"""One case that keeps growing: what the linking step costs per lead as its case grows.

    python bench/hot_case.py [--leads N] [--every K] [--suggestions]

Every lead carries one shared phone number (a hub: a courier branch's number, a platform's service line, a
placeholder such as 13800138000 typed into a form), so every lead joins one case. The linking handler runs
without Kafka over an in-memory state view, as the stage runs it, and the bench prints, every K leads, the CPU
per lead of the last K and the size of the `CaseUpdated` each lead gives. The event carries every member and
identifier, so both still grow with the case (the summary comes from totals kept lead by lead: writing the event
is most of what is left), and past about 8,000 members its `CaseUpdated` is over `MAX_RECORD_BYTES` and the stage
dead-letters each further lead (OUTPUT_OVERSIZED); the bench prints the size at which that starts.
`--suggestions` also runs the suggesting stage's step over each `CaseUpdated` (the case's weak signals, and their
blocking keys, grow with it too), and prints its CPU per lead beside linking's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from leadbus.avro import encode, packaged_catalog
from leadbus.limits import MAX_RECORD_BYTES
from leadbus.processors.core.intake import Acceptance, Source, accepted_record, examine
from leadbus.processors.core.records import Record
from leadbus.processors.linking import LinkingHandler
from leadbus.processors.suggesting import SuggestingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import CASES, LEADS_ACCEPTED

HUB_PHONE = "13800138000"


class _View(dict[bytes, bytes]):
    """The stage's state view, in memory: ``generation`` never moves, as no transaction aborts here."""

    generation = 1


def _apply(view: _View, writes: Mapping[bytes, bytes | None]) -> None:
    for key, value in writes.items():
        if value is None:
            view.pop(key, None)
        else:
            view[key] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--suggestions", action="store_true", help="also run the suggesting step on each case")
    args = parser.parse_args()
    now = datetime.now(UTC)
    catalog = packaged_catalog()
    lead_schema, accepted_schema = catalog.latest("cn.leadbus.CaseLead"), catalog.latest("cn.leadbus.LeadAccepted")
    records: list[Record] = []
    generator = TrafficGenerator(seed=11)
    for i, lead in enumerate(generator.leads(args.leads, now - timedelta(days=1), timedelta(milliseconds=5))):
        lead = lead.model_copy(update={"subject": lead.subject.model_copy(update={"phones": [HUB_PHONE]})})
        outcome = examine(encode(lead_schema, lead.to_avro()), Source(f"leadbus.intake.{lead.publisher.agency}", 0, i),
                          catalog, now)
        assert isinstance(outcome, Acceptance), outcome
        records.append(Record(LEADS_ACCEPTED, 0, i, lead.lead_id.encode(),
                              encode(accepted_schema, accepted_record(outcome, now))))
    handler, view = LinkingHandler(catalog), _View()
    suggesting, suggesting_view = SuggestingHandler(catalog), _View()
    print(f"one growing case: {args.leads} leads sharing {HUB_PHONE}; the suggesting step "
          f"{'too' if args.suggestions else 'left out'}")
    linked = suggested = 0.0
    members = 0
    oversized_at = None  # the case size at which the stage starts dead-letters its leads (OUTPUT_OVERSIZED)
    for i, record in enumerate(records, 1):
        start = time.process_time()
        result = handler.handle(record, view, now)
        _apply(view, result.state)
        middle = time.process_time()
        linked += middle - start
        if args.suggestions:
            for n, out in enumerate(o for o in result.outputs if o.topic == CASES):
                done = suggesting.handle(Record(CASES, 0, i * 4 + n, out.key, out.value), suggesting_view, now)
                _apply(suggesting_view, done.state)
            suggested += time.process_time() - middle
        members += 1
        if oversized_at is None and any(len(out.value or b"") > MAX_RECORD_BYTES for out in result.outputs):
            oversized_at = members
        if i % args.every == 0 or i == len(records):
            size = max((len(out.value or b"") for out in result.outputs), default=0)
            also = f", suggesting {suggested / args.every * 1e3:8.2f} ms" if args.suggestions else ""
            print(f"  case of {members:6d} leads: linking {linked / args.every * 1e3:8.2f} ms CPU per lead{also} "
                  f"(last {args.every}); CaseUpdated {size / 1024:7.1f} KiB, {size / members:.0f} B per member")
            linked = suggested = 0.0
    per_member = size / members
    if oversized_at is not None:
        print(f"  CaseUpdated passed MAX_RECORD_BYTES ({MAX_RECORD_BYTES}) at {oversized_at:,} leads in one case: the "
              "stage dead-letters that lead and every further one of the case (OUTPUT_OVERSIZED)")
        return
    print(f"  CaseUpdated passes MAX_RECORD_BYTES ({MAX_RECORD_BYTES}) at about {MAX_RECORD_BYTES / per_member:,.0f} "
          "leads in one case")


if __name__ == "__main__":
    main()
