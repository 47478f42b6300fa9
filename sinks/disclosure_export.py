"""The static public export (信息公开): `leadbus.disclosure` read to its end → JSON and CSV, with statistics.

    disclosure.json / disclosure.csv   one anonymised record per closed case (the latest of each)
    statistics.json / statistics.csv   closed cases by month × province × IP right × goods category
    statistics.html                    a static page with the chart of closed cases per month by IP right

Files are written next to their final name and renamed into place, so a web server never serves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from leadbus.avro import SchemaCatalog, decode, packaged_catalog
from leadbus.clients import KafkaSettings, settings_for
from leadbus.processors.core.disclosure import RECORD_FIELDS, STAT_FIELDS, csv_rows, statistics, statistics_chart
from leadbus.topics import DISCLOSURE


def read_disclosed(kafka: str | KafkaSettings, catalog: SchemaCatalog | None = None,
                   timeout: float = 60.0) -> list[dict[str, Any]]:
    """The latest record of every disclosed case, ordered by disclosure id (read_committed)."""
    catalog = catalog or packaged_catalog()
    consumer = settings_for(kafka).consumer(f"leadbus-disclosure-export-{uuid.uuid4()}")
    latest: dict[str, dict[str, Any]] = {}
    try:
        meta = consumer.list_topics(DISCLOSURE, timeout=timeout).topics[DISCLOSURE]
        if meta.error is not None:
            raise RuntimeError(f"{DISCLOSURE}: {meta.error}")
        parts = [TopicPartition(DISCLOSURE, p, 0) for p in meta.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in parts}
        consumer.assign(parts)
        todo = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                value = msg.value()
                if msg.error() or not value:
                    continue
                _, record = decode(catalog, value)
                record.pop("published_at", None)
                latest[record["disclosure_id"]] = record
            for tp in consumer.position([TopicPartition(DISCLOSURE, p) for p in todo]):
                if tp.offset >= ends[tp.partition]:
                    todo.discard(tp.partition)
        if todo:
            raise TimeoutError(f"{DISCLOSURE} not read to its end within {timeout}s")
    finally:
        consumer.close()
    return [latest[k] for k in sorted(latest)]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def export(kafka: str | KafkaSettings, out: Path) -> tuple[int, int]:
    """Write the four files; return (records, statistics rows)."""
    records = read_disclosed(kafka)
    stats = statistics(records)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "disclosure.json", json.dumps(records, ensure_ascii=False, indent=1))
    _write(out / "disclosure.csv", _csv(csv_rows(records, RECORD_FIELDS)))
    _write(out / "statistics.json", json.dumps(stats, ensure_ascii=False, indent=1))
    _write(out / "statistics.csv", _csv(csv_rows(stats, STAT_FIELDS)))
    _write(out / "statistics.html", statistics_chart(stats))
    return len(records), len(stats)
