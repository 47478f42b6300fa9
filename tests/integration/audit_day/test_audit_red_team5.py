"""`leadbus replay --verify` against round 5's residuals (issue #14's outside check), on the package's day: the
archive's published heads read per archive, and published again while nothing is sealed so that the broker's time
keeps up.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.sinks.archive import read_manifest
from leadbus.sinks.archive_heads import head_record
from leadbus.stage_keys import load_stage_key
from leadbus.topics import ARCHIVE_HEADS, CASES
from tests.audit_helpers import Copy, append, records_of
from tests.integration.audit_day.test_audit_red_team import cli

if TYPE_CHECKING:
    from tests.integration.audit_day.conftest import Day

pytestmark = pytest.mark.integration


def _archive_replay(day: Day, root: Path, report: Path, *extra: str) -> tuple[int, list[dict[str, object]], str]:
    done = cli("replay", "--topic", CASES, "--verify", "--source", f"archive:{root}", "-b", day.bootstrap,
               "--report", str(report), *extra)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(report.read_text())["findings"], done.stdout


def _archive_name(day: Day) -> str:
    heads = records_of(day.bootstrap, ARCHIVE_HEADS)
    assert heads, "the archive sink published its heads"
    return str(json.loads(heads[-1].value or b"{}")["archive"])


def test_a_second_archives_heads_are_not_taken_for_this_ones(day: Day, tmp_path: Path) -> None:
    """Heads were read by seq alone: a second archive sink on the bus (its own group and folder, its manifest numbered
    from 1 too) published seq 1, 2 … with other chains, and the day's clean archive copy failed with "head of seq N
    published again with another chain value" (exit 1). Heads are read per archive: the copy is checked against its
    own (exit 0); named as the other's copy (--archive-name), its manifest is ARCHIVE_HEAD_MISMATCH against that one's
    head."""
    mine = _archive_name(day)
    lines = read_manifest(day.archive)
    other = "leadbus-archive-second"
    private = load_stage_key(day.root / "stage-keys", "archive")
    copies = []
    for line in lines:  # the same seq numbers, other chains (another archive's files)
        key, value, headers = head_record(other, type(line)(**{**line.__dict__, "chain": "f" * 64}), private)
        copies.append(Copy(0, key, value, [(n, v if isinstance(v, bytes) else str(v).encode()) for n, v in headers],
                           int(time.time() * 1000), 0))
    before = len(records_of(day.bootstrap, ARCHIVE_HEADS))
    append(day.bootstrap, ARCHIVE_HEADS, copies)
    status, findings, stdout = _archive_replay(day, day.archive, tmp_path / "two-archives.json")
    assert status == 0 and not [f for f in findings if f["failure"]], stdout
    checked = [f for f in findings if f["check"] == "ARCHIVE_HEAD_CHECKED"]
    assert checked and f"{ARCHIVE_HEADS}[0]@" in str(checked[0]["message"]), stdout
    status, findings, stdout = _archive_replay(day, day.archive, tmp_path / "named-other.json", "--archive-name", other)
    mismatch = [f for f in findings if f["failure"] and f["check"] == "ARCHIVE_HEAD_MISMATCH"]
    assert status == 1 and mismatch, stdout
    assert f"{ARCHIVE_HEADS}[0]@{before + len(copies) - 1}" in str(mismatch[0]["message"]), stdout
    status, findings, stdout = _archive_replay(day, day.archive, tmp_path / "named-mine.json", "--archive-name", mine)
    assert status == 0 and not [f for f in findings if f["failure"]], stdout


def test_the_archive_sink_publishes_its_head_again_while_nothing_is_sealed_and_now_is_judged_by_it(
        day: Day, tmp_path: Path) -> None:
    """Broker time moved only when the archive sealed a file: on a quiet bus (files sealed every 15 minutes) a replay
    whose clock ran slow read every record written since the last seal as re-dated into the future
    (TIMESTAMP_IN_FUTURE). The sink publishes its latest head again every `head_every_seconds`, sealed or not: the
    head's broker stamp bounds "now", and the record is judged as written before it."""
    from leadbus.audit.replay import ReplayOptions, replay
    from leadbus.clients import settings_for
    from leadbus.sinks.archive_sink import run_archive

    topic = f"leadbus.intake.AUD{uuid.uuid4().hex[:4].upper()}"  # a topic of its own: not part of the day
    admin = AdminClient({"bootstrap.servers": day.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    # The record stamped 12 s on by its writer's clock (run ahead of the auditor's): past the newest broker stamp by
    # more than the skew allowed here (5 s), until heads published again pass it.
    written = int(time.time() * 1000) + 12_000
    producer = Producer({"bootstrap.servers": day.bootstrap, "acks": "all"})
    producer.produce(topic, key=b"k", value=b"written", timestamp=written)
    assert producer.flush(30) == 0
    settings = settings_for(day.bootstrap)

    def in_future() -> list[tuple[str, str, int, int | None]]:
        options = ReplayOptions([topic], clock=lambda: time.time() - 600, skew_ms=5_000, workers=1)
        return [(f.check, f.topic, f.partition or 0, f.offset) for f in replay(options, settings).findings
                if f.check == "TIMESTAMP_IN_FUTURE"]

    assert in_future() == [("TIMESTAMP_IN_FUTURE", topic, 0, 0)]  # the newest broker stamp is before the record
    heads = records_of(day.bootstrap, ARCHIVE_HEADS)
    copy = tmp_path / "archive"
    shutil.copytree(day.archive, copy)
    quiet = max(3.5, written / 1000 - 2 - time.time())  # heads published again up to 3 s before the record's time
    stats = run_archive(day.bootstrap, [CASES], copy, max_seconds=quiet, group=_archive_name(day),
                        seal_after_seconds=1.0, seal_keys=day.root / "stage-keys", head_every_seconds=1.0)
    assert stats.files == 0 and read_manifest(copy) == read_manifest(day.archive)  # nothing new sealed
    again = records_of(day.bootstrap, ARCHIVE_HEADS)[len(heads):]
    assert len(again) >= 3, again  # at start, then about every second
    assert {(c.key, c.value) for c in again} == {(heads[-1].key, heads[-1].value)}  # the same head
    assert in_future() == []
    status, findings, stdout = _archive_replay(day, day.archive, tmp_path / "again.json")
    assert status == 0 and not [f for f in findings if f["failure"]], stdout


def test_a_schema_topic_written_back_as_declared_after_records_of_a_schema_it_alone_knows_is_named(
        day: Day, tmp_path: Path) -> None:
    """Round 5's residual: leadbus.schemas deleted, created again as declared (kept whole, LogAppendTime) and its
    records written back passed every check of its log (exit 0), and a schema known from the topic alone (a writer
    newer than the auditor's tool) could have been written back to read otherwise. The broker stamps the rewrite: the
    schema now reads as first published after the record written with it, SCHEMA_PUBLISHED_LATER at the record,
    naming the schema's record on leadbus.schemas (its first publication before the record: exit 0)."""
    from leadbus.avro import SchemaCatalog, encode
    from leadbus.schema_topic import publish_schemas
    from leadbus.topics import SCHEMAS
    from tests.audit_helpers import rewrite_topic
    from tests.integration.audit_day.test_audit_red_team import located, verify

    entry = SchemaCatalog().add({"type": "record", "name": "Probe", "namespace": "leadbus.audit.round5",
                                 "fields": [{"name": "n", "type": "long"}]}, 1)
    publish_schemas(day.bootstrap, [entry])  # published first, as a writer does
    at = max(c.offset for c in records_of(day.bootstrap, SCHEMAS) if c.key == entry.fingerprint_hex.encode())
    topic = f"leadbus.audit.round5.{uuid.uuid4().hex[:6]}"  # a topic of its own, written with the new schema
    admin = AdminClient({"bootstrap.servers": day.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": day.bootstrap, "acks": "all"})
    for n in range(3):
        producer.produce(topic, key=b"k", value=encode(entry, {"n": n}))
    assert producer.flush(30) == 0
    skew = ("--clock-skew", "1")  # (the default, 15 s, would have the test wait that long)
    status, failures, stdout = verify(day.bootstrap, topic, tmp_path / "published-first.json", *skew)
    assert status == 0 and not failures, stdout
    time.sleep(1.5)
    rewrite_topic(day.bootstrap, SCHEMAS, lambda copies: copies)  # as declared: the broker stamps it again
    status, failures, stdout = verify(day.bootstrap, topic, tmp_path / "written-back.json", *skew)
    assert status == 1 and located(failures) == {("SCHEMA_PUBLISHED_LATER", 0, 0)}, stdout
    assert f"{topic}[0]@0" in stdout and f"{SCHEMAS}[0]@{at}" in stdout, stdout
