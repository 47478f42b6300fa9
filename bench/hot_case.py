"""One case that keeps growing: what the linking step costs per lead as its case grows.

    python bench/hot_case.py [--leads N] [--every K] [--suggestions]

Every lead carries one shared phone number (a hub: a courier branch's number, a platform's service line, a
placeholder such as 13800138000 typed into a form), so every lead joins one case. The linking handler runs
without Kafka over an in-memory state view, as the stage runs it, and the bench prints, every K leads, the CPU
per lead of the last K and the size of the `CaseUpdated` each lead gives. Today both grow with the case: the
event carries every member and identifier, the case summary and the state header are rebuilt from all members,
so a case of n leads costs O(n) per lead, and past about 12,000 members its `CaseUpdated` is over
`MAX_RECORD_BYTES` and the stage dead-letters each further lead (OUTPUT_OVERSIZED). `--suggestions` keeps the
weak-signal suggestion index in the step (the case's signals, and their blocking keys, grow with it too).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from leadbus.avro import encode, packaged_catalog
from leadbus.limits import MAX_RECORD_BYTES
from leadbus.processors import linking
from leadbus.processors.core.intake import Acceptance, Source, accepted_record, examine
from leadbus.processors.core.records import Record
from leadbus.producers.simulator import TrafficGenerator
from leadbus.topics import LEADS_ACCEPTED

HUB_PHONE = "13800138000"


class _View(dict[bytes, bytes]):
    """The stage's state view, in memory: ``generation`` never moves, as no transaction aborts here."""

    generation = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--suggestions", action="store_true", help="keep the suggestion index in the step")
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
    if not args.suggestions:
        setattr(linking, "after_link", lambda *_a, **_k: [])  # noqa: B010  # strong linking alone
    handler, view = linking.LinkingHandler(catalog), _View()
    print(f"one growing case: {args.leads} leads sharing {HUB_PHONE}; suggestion index "
          f"{'in' if args.suggestions else 'left out of'} the step")
    start, members = time.process_time(), 0
    for i, record in enumerate(records, 1):
        result = handler.handle(record, view, now)
        apply: Any = result.state
        for key, value in apply.items():
            if value is None:
                view.pop(key, None)
            else:
                view[key] = value
        members += 1
        if i % args.every == 0 or i == len(records):
            spent = time.process_time() - start
            size = max((len(out.value or b"") for out in result.outputs), default=0)
            print(f"  case of {members:6d} leads: {spent / args.every * 1e3:8.2f} ms CPU per lead (last {args.every}); "
                  f"CaseUpdated {size / 1024:7.1f} KiB, {size / members:.0f} B per member")
            start = time.process_time()
    per_member = size / members
    print(f"  CaseUpdated passes MAX_RECORD_BYTES ({MAX_RECORD_BYTES}) at about {MAX_RECORD_BYTES / per_member:,.0f} "
          "leads in one case")


if __name__ == "__main__":
    main()
