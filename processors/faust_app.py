"""The same intake core hosted as a faust-streaming agent, with its dedupe memory in a RocksDB table.

`leadbus process --engine faust` runs it. It gives at-least-once delivery: faust's
`exactly_once` guarantee is known to duplicate or lose records when a worker is killed
(faust-streaming/faust#517, robinhood/faust#340), so the production engine is the
transactional stage in `stage.py`; this one exists to compare (bench/intake.py) and for
deployments that already run faust.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from leadbus.agencies import AGENCIES
from leadbus.avro import encode, packaged_catalog
from leadbus.processors.core.intake import (
    Acceptance,
    DecisionAcceptance,
    Rejection,
    Seen,
    Source,
    accepted_record,
    dedupe,
    examine,
    rejected_record,
)
from leadbus.topics import HANDOVER_DECISIONS, LEADS_ACCEPTED, LEADS_REJECTED, intake_topic


def create_app(bootstrap: str, data_dir: Path, *, app_id: str = "leadbus-faust", replication: int = 1) -> faust.App:
    app = faust.App(
        app_id,
        broker=";".join(f"kafka://{b}" for b in bootstrap.split(",")),
        store="rocksdb://",
        datadir=str(data_dir),
        topic_partitions=3,
        topic_replication_factor=replication,
        producer_acks=-1,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_commit_every=500,
    )
    catalog = packaged_catalog()
    accepted_schema = catalog.latest("cn.leadbus.LeadAccepted")
    rejected_schema = catalog.latest("cn.leadbus.LeadRejected")
    # Named, not a pattern: faust's pattern subscription never picked the intake topics up.
    names = [intake_topic(agency) for agency in sorted(AGENCIES)]
    intake_topics = app.topic(*names, key_serializer="raw", value_serializer="raw")
    accepted = app.topic(LEADS_ACCEPTED, key_serializer="raw", value_serializer="raw", internal=False)
    rejected = app.topic(LEADS_REJECTED, key_serializer="raw", value_serializer="raw", internal=False)
    decisions = app.topic(HANDOVER_DECISIONS, key_serializer="raw", value_serializer="raw", internal=False)
    seen_table = app.Table("intake-seen", default=None, partitions=3, key_type=bytes, value_type=bytes)

    @app.agent(intake_topics)
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            source = Source(msg.topic, msg.partition, msg.offset)
            now = datetime.now(UTC)
            outcome = examine(event.value, source, catalog, now)
            if isinstance(outcome, DecisionAcceptance):
                await decisions.send(key=outcome.case_id.encode(), value=outcome.original)
                continue
            seen = None
            if isinstance(outcome, Acceptance):
                seen = Seen.from_bytes(seen_table.get(outcome.lead.lead_id.encode()))
            decision = dedupe(seen, outcome)
            if decision.action == "emit":
                assert isinstance(outcome, Acceptance) and decision.remember is not None
                key = outcome.lead.lead_id.encode()
                await accepted.send(key=key, value=encode(accepted_schema, accepted_record(outcome, now)))
                seen_table[key] = decision.remember.to_bytes()
            elif decision.action == "reject":
                rejection = decision.outcome
                assert isinstance(rejection, Rejection)
                key = (rejection.lead_id or f"{source.topic}:{source.partition}:{source.offset}").encode()
                await rejected.send(key=key, value=encode(rejected_schema, rejected_record(rejection, now)))

    return app


def run_worker(bootstrap: str, data_dir: Path, loglevel: str = "warning") -> None:
    app = create_app(bootstrap, data_dir)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
