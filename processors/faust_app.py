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
from leadbus.processors.core.records import Record
from leadbus.processors.intake import IntakeHandler
from leadbus.topics import INTAKE_BY_LEAD, intake_topic, load_declarations


class _TableState:
    """A faust table as the step's state view; writes go back through the table (its changelog)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        value = self.table.get(key)
        return bytes(value) if value is not None else None


def intake_partitions() -> int:
    """The intake topics' declared partitions: faust refuses a table whose changelog has fewer than its source topic."""
    return next(spec.partitions for spec in load_declarations() if spec.name.startswith("leadbus.intake."))


def create_app(bootstrap: str, data_dir: Path, *, app_id: str = "leadbus-faust", replication: int = 1) -> faust.App:
    partitions = intake_partitions()
    app = faust.App(
        app_id,
        broker=";".join(f"kafka://{b}" for b in bootstrap.split(",")),
        store="rocksdb://",
        datadir=str(data_dir),
        topic_partitions=partitions,
        topic_replication_factor=replication,
        producer_acks=-1,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_commit_every=500,
    )
    handler = IntakeHandler()
    # Named, not a pattern: faust's pattern subscription never picked the intake topics up.
    names = [intake_topic(agency) for agency in sorted(AGENCIES)]
    intake_topics = app.topic(*names, key_serializer="raw", value_serializer="raw")
    outputs: dict[str, Any] = {}
    seen_table = app.Table("intake-seen", default=None, partitions=partitions, key_type=bytes, value_type=bytes)
    state = _TableState(seen_table)

    async def send(out: Any) -> None:
        topic = outputs.get(out.topic)
        if topic is None:
            topic = outputs[out.topic] = app.topic(out.topic, key_serializer="raw", value_serializer="raw",
                                                   internal=False)
        await topic.send(key=out.key, value=out.value, headers=list(out.headers) or None)

    @app.agent(intake_topics)
    async def intake(stream: Any) -> None:
        # The same step as the transactional stage. Both halves run here in process: the dedupe
        # memory is a table of this agent, so faust (at-least-once) does not repartition by lead id.
        async for event in stream.events():
            msg = event.message
            now = datetime.now(UTC)
            headers = msg.headers or ()
            pairs = tuple(headers.items() if hasattr(headers, "items") else headers)
            record = Record(msg.topic, msg.partition, msg.offset, msg.key, event.value, pairs)
            examined = handler.examine(record, now)
            for count in examined.counted:  # at-least-once: counted as processed
                count()
            for out in examined.outputs:
                if out.topic != INTAKE_BY_LEAD:
                    await send(out)
                    continue
                judged = handler.judge(Record(INTAKE_BY_LEAD, msg.partition, msg.offset, out.key, out.value,
                                              tuple(out.headers)), state, now)
                for key, value in judged.state.items():
                    seen_table[key] = value
                for count in judged.counted:
                    count()
                for final in judged.outputs:
                    await send(final)

    return app


def run_worker(bootstrap: str, data_dir: Path, loglevel: str = "warning") -> None:
    app = create_app(bootstrap, data_dir)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
