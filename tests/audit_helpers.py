"""A stretch of simulated traffic through the real stages, and tampering with what the bus recorded.

Tampering with Kafka means what someone with administrative access could do: rewrite a topic (delete
it, create it again with the same partitions, produce its records back with their original keys,
headers and timestamps — altered, duplicated, dropped or swapped), or add records to it.
"""

from __future__ import annotations

import logging
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from leadbus.audit import verification as verification_module
from leadbus.audit.replay import ReplayReport, _loop
from leadbus.audit.verification import Decodes, IntakeLeads, ReplayRecord
from leadbus.avro import SchemaCatalog, decode, encode_object, packaged_catalog
from leadbus.clients import settings_for
from leadbus.demo_handover import HandoverBoard
from leadbus.processors.stages import STAGES
from leadbus.producers.simulator import TrafficGenerator
from leadbus.producers.traffic import Traffic
from leadbus.sinks.archive import parse_manifest
from leadbus.sinks.archive_sink import run_archive
from leadbus.stage_keys import provision
from leadbus.topics import HANDOVER, INTAKE_PREFIX, intake_topic
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

CATALOG = packaged_catalog()
STAGE_GROUPS = {name: definition.group for name, definition in STAGES.items()}
STAGE_INPUTS = {definition.group: definition.inputs for definition in STAGES.values()}  # names, or ^patterns
T = TypeVar("T")


@contextmanager
def stages(bootstrap: str, root: Path, *, day_seconds: float = 4.0) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Intake, linking, handover (a statutory day lasts `day_seconds`) and routing, each an OS process."""
    workers = []
    keys = root / "stage-keys"  # each stage seals its outputs (issue #14), its key registered as LEADBUS-<stage>
    provision(bootstrap, keys, list(STAGE_GROUPS))
    for stage in STAGE_GROUPS:
        extra = ["--day-seconds", str(day_seconds)] if stage == "handover" else []
        extra += ["--seal-keys", str(keys)]
        workers.append(start_worker(bootstrap, root / "state", f"{stage}-audit", root / "logs", extra, stage=stage))
    try:
        yield workers
    except BaseException:
        for worker in workers:
            stop(worker)
        raise
    # In pipeline order, each stage only once those after it have taken in all it wrote: the handover stage
    # keeps scanning deadlines while it runs, so a step it records after the traffic settled must still be
    # routed before routing stops, or the record has a step with no route (seen on a loaded CI machine).
    for i, worker in enumerate(workers):
        stop(worker)
        wait_drained(bootstrap, [STAGE_GROUPS[name] for name in list(STAGE_GROUPS)[i + 1:]])


@dataclass
class Stretch:
    published: int
    decisions: int


def simulate(bootstrap: str, *, rate: float, seconds: float, seed: int = 7) -> Stretch:
    """Agencies publish leads at `rate`/s for `seconds`; officials act on most handovers (the demo's board)."""
    board = HandoverBoard(bootstrap)
    steps = _follower(bootstrap, HANDOVER)
    opened: dict[str, str] = {}
    decisions = 0

    def on_tick(_: Any) -> None:
        nonlocal decisions
        for msg in steps.consume(500, 0.05):
            if msg.error() or not msg.value():
                continue
            step = decode(CATALOG, msg.value())[1]
            board.on_step(step)
            if step["event"] == "OPENED":
                opened[step["case_id"]] = "00"
        before = sum(1 for c in board.cases.values() if c.acted_phase == c.phase)
        board.act(opened)
        decisions += sum(1 for c in board.cases.values() if c.acted_phase == c.phase) - before

    traffic = Traffic(bootstrap, seed=seed)
    try:
        report = traffic.run(rate, seconds, on_tick=on_tick)
        # Let the officials act on what opened near the end, too; on a loaded machine the stages may open the
        # first cases only now: wait (generously) until officials have decided at least once.
        began = time.monotonic()
        while time.monotonic() - began < 8 or (decisions == 0 and time.monotonic() - began < 240):
            on_tick(None)
            time.sleep(0.3)
    finally:
        board.close()
        steps.close()
    assert report.failed == 0
    return Stretch(report.published, decisions)


def _follower(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"audit-follow-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "logger": logging.getLogger("tests.kafka")})
    consumer.subscribe([topic])
    return consumer


def _behind(bootstrap: str, group: str, whole: Callable[[str], bool], timeout: float = 20) -> dict[
        tuple[str, int], tuple[int, int]]:
    """(from, end) of each partition the group has yet to commit to its end: from its committed offset, or, in a
    partition it never committed in whose topic `whole` names, from the partition's start."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "logger": logging.getLogger("tests.kafka")})
    try:
        meta = consumer.list_topics(timeout=timeout)
        parts = [TopicPartition(t, p) for t, m in meta.topics.items() if t.startswith("leadbus.")
                 and not t.startswith("leadbus.state.") for p in m.partitions]
        behind: dict[tuple[str, int], tuple[int, int]] = {}
        for tp in consumer.committed(parts, timeout=timeout):
            if tp.offset < 0 and not whole(tp.topic):
                continue
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            start = tp.offset if tp.offset >= 0 else low
            if high > start:
                behind[(tp.topic, tp.partition)] = (start, high)
        return behind
    finally:
        consumer.close()


def lag(bootstrap: str, group: str, inputs: str | None = None) -> int:
    """Records the group has yet to commit, over every partition it has committed in.

    With `inputs` (a topic prefix the group reads), a partition of those topics it has never committed in counts
    whole: on a loaded machine a stage may not have read anything yet, which is not being settled.
    """
    behind = _behind(bootstrap, group, lambda topic: inputs is not None and topic.startswith(inputs))
    return sum(high - start for start, high in behind.values())


def wait_settled(bootstrap: str, timeout: float = 240) -> None:
    """Every stage has committed everything it reads (transaction markers leave at most one offset each)."""
    wait_until(lambda: lag(bootstrap, STAGE_GROUPS["intake"], INTAKE_PREFIX) <= 40, timeout,
               "intake to read every intake partition", interval=2.0)
    wait_until(lambda: all(lag(bootstrap, g) <= 40 for g in STAGE_GROUPS.values()), timeout, "the stages to settle",
               interval=2.0)
    time.sleep(3)
    wait_until(lambda: all(lag(bootstrap, g) <= 40 for g in STAGE_GROUPS.values()), timeout, "the stages to settle",
               interval=2.0)
    # what the lag cannot tell: a stage that never committed (started late on a loaded machine) has no lag at all
    wait_until(lambda: not any(unread(bootstrap, g) for g in STAGE_GROUPS.values()), timeout,
               "every stage to take in every record of its inputs", interval=2.0)


def wait_drained(bootstrap: str, groups: list[str], timeout: float = 240) -> None:
    """With nothing new arriving, the groups' lag stays the same over consecutive readings and is small, and what it
    counts is no record a stage reads: transaction markers (and records of aborted transactions), which no stage ever
    commits past. A lag steady over two readings alone let a stage slowed by the machine's load be stopped with a
    record still unread (CI, session 23: a handover step recorded with no route)."""
    if not groups:
        return
    deadline = time.monotonic() + timeout
    last: list[int] | None = None
    steady = 0
    while time.monotonic() < deadline:
        now = [lag(bootstrap, g) for g in groups]
        steady = steady + 1 if now == last and all(n <= 40 for n in now) else 0
        if steady >= 1 and not any(unread(bootstrap, g) for g in groups):
            return
        last = now
        time.sleep(0.5)  # settled is told by nothing left unread, not by the lag's standing still for long
    raise AssertionError(f"the groups {groups} did not drain: lag {last}")


def _an_input(topic: str, inputs: Iterable[str]) -> bool:
    return any(re.match(name, topic) if name.startswith("^") else topic == name for name in inputs)


def unread(bootstrap: str, group: str, timeout: float = 20) -> int:
    """Records a read_committed reader gets past the group's committed offsets (markers and aborted records are not
    delivered): what the group's stage has yet to take in, over every partition it has committed in, and every
    partition of its stage's inputs it never committed in, from the partition's start (the stage not started yet, on
    a loaded machine: CI, session 23, a recording with no route at all)."""
    inputs = STAGE_INPUTS.get(group, ())
    behind = _behind(bootstrap, group, lambda topic: _an_input(topic, inputs), timeout)
    if not behind:
        return 0
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tests-unread-{uuid.uuid4()}",
                       "enable.auto.commit": False, "isolation.level": "read_committed",
                       "logger": logging.getLogger("tests.kafka")})
    try:
        reader.assign([TopicPartition(t, p, at) for (t, p), (at, _) in behind.items()])
        found = 0
        deadline = time.monotonic() + timeout
        while behind and time.monotonic() < deadline:
            for msg in reader.consume(500, 0.2):
                if not msg.error():
                    found += 1
            positions = reader.position([TopicPartition(t, p) for t, p in behind])
            behind = {(tp.topic, tp.partition): behind[(tp.topic, tp.partition)] for tp in positions
                      if tp.offset < behind[(tp.topic, tp.partition)][1]}
        return found + len(behind)  # a partition not read to its end within the timeout counts as unread
    finally:
        reader.close()


def archived_whole(bootstrap: str, topics: list[str], root: Path, *, timeout: float = 120, **options: Any) -> None:
    """The archive sink run over `topics` (names, or `^regex`), its traffic over, until it has sealed the last record
    of every partition they hold, then stopped as the CLI stops it: neither a fixed run's wait past that (25 s
    where it took 13 s at load 10) nor a fixed run ended before it on a slower machine.

    The sink seals everything here in a batch or two, so its heads topic holds few heads: a test of heads published
    one by one over a run wants a run of its own."""
    began = time.monotonic()
    expected = _last_offsets(bootstrap, topics)
    assert expected, f"nothing to archive in {topics}"
    read = time.monotonic() - began
    done, failed = threading.Event(), []

    def run() -> None:
        try:
            run_archive(bootstrap, topics, root, stop=done, **options)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failed.append(exc)

    def sealed_up() -> bool:
        lines, _ = parse_manifest(root)  # a line being written reads as a problem: the next reading has it
        sealed: dict[tuple[str, int], int] = {}
        for line in lines:
            sealed[(line.topic, line.partition)] = max(line.last_offset, sealed.get((line.topic, line.partition), -1))
        return bool(failed) or all(sealed.get(tp, -1) >= last for tp, last in expected.items())

    thread = threading.Thread(target=run, name="archive", daemon=True)
    thread.start()
    try:
        wait_until(sealed_up, timeout, f"the archive to seal every record of {topics}", interval=0.5)
        logging.getLogger("tests.audit").info("ends of %s read in %.1f s, archived whole %.1f s later", topics, read,
                                              time.monotonic() - began - read)
    finally:
        done.set()
        thread.join(60)
    assert not failed, failed
    assert not thread.is_alive(), "the archive sink did not stop"


def _last_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """Per partition of `topics` with records, the offset of its last record (transaction markers come after), all
    partitions read by one consumer."""
    consumer = settings_for(bootstrap).consumer(f"leadbus-audit-test-reader-{uuid.uuid4()}",
                                                logger=logging.getLogger("tests.kafka"))
    try:
        meta = consumer.list_topics(timeout=20).topics
        names = sorted(t for t in meta if any(re.match(p, t) if p.startswith("^") else p == t for p in topics))
        parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in names for p in sorted(meta[t].partitions)]
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=20)[1] for tp in parts}
        todo = {key for key, end in ends.items() if end > 0}
        consumer.assign([tp for tp in parts if (tp.topic, tp.partition) in todo])
        found: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if not msg.error():
                    key = (msg.topic() or "", msg.partition() or 0)
                    found[key] = max(msg.offset() or 0, found.get(key, -1))
            # Positions, not record offsets: transaction markers take offsets of their own.
            for tp in consumer.position([TopicPartition(t, p) for t, p in todo]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    todo.discard((tp.topic, tp.partition))
        assert not todo, f"partitions {sorted(todo)} not read to their end"
        return found
    finally:
        consumer.close()


# -- tampering ---------------------------------------------------------------------------------------------


@dataclass
class Copy:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int
    offset: int  # where it was


def records_of(bootstrap: str, topic: str) -> list[Copy]:
    out = []
    for msg in read_all(bootstrap, topic):
        out.append(Copy(msg.partition() or 0, msg.key(), msg.value(),
                        [(k, v or b"") for k, v in (msg.headers() or [])], msg.timestamp()[1], msg.offset() or 0))
    out.sort(key=lambda c: (c.partition, c.offset))
    return out


def rewrite_topic(bootstrap: str, topic: str, transform: Callable[[list[Copy]], list[Copy]], *,
                  read: bool = True) -> None:
    """Delete `topic`, create it again alike, and produce `transform(its records)` back, in order, per partition
    (`read` False: `transform([])`, the topic's records not read)."""
    copies = records_of(bootstrap, topic) if read else []
    partitions, config = topic_config(bootstrap, topic)
    recreate_topic(bootstrap, topic, list(transform(copies)), config, partitions)


def topic_config(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    """`topic`'s partitions and the configuration set on it (not the broker's defaults): what creates it again alike."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = len(admin.list_topics(topic, timeout=20).topics[topic].partitions)
    configs = admin.describe_configs([_resource(topic)])
    return partitions, {k: v.value for k, v in next(iter(configs.values())).result().items()
                        if not v.is_default and not v.is_read_only and v.value is not None}


def append(bootstrap: str, topic: str, copies: list[Copy]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "logger": logging.getLogger("tests.kafka")})
    errors: list[Any] = []
    for c in copies:
        producer.produce(topic, value=c.value, key=c.key, headers=c.headers, partition=c.partition,
                         timestamp=c.timestamp, on_delivery=lambda err, _: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors, errors


def recreate_topic(bootstrap: str, topic: str, copies: list[Copy], config: dict[str, str], partitions: int = 1) -> None:
    """`topic` deleted and created again with `partitions` and `config` (the rewriter's choice), `copies` produced back
    in order, each to its own partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result()
    wait_until(lambda: topic not in admin.list_topics(timeout=20).topics, 60, f"{topic} deleted", interval=0.5)
    for _ in range(60):
        try:
            for future in admin.create_topics([NewTopic(topic, partitions, 1, config=config)]).values():
                future.result()
            break
        except Exception:  # noqa: BLE001 - deletion still under way on the broker
            time.sleep(0.5)
    append(bootstrap, topic, copies)


def _resource(topic: str) -> Any:
    from confluent_kafka.admin import ConfigResource

    return ConfigResource(ConfigResource.Type.TOPIC, topic)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


# -- the replay in memory (unit tests) ---------------------------------------------------------------------


class Sealed(Protocol):
    """A record as the unit tests make them (`tests.unit.test_audit_seals_quick.Rec`)."""

    partition: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    ms: int


def replay_records(topic: str, recs: Iterable[Sealed], catalog: SchemaCatalog) -> list[ReplayRecord]:
    """The records as a replay of `topic` reads them: offsets counted per partition from 0."""
    offsets: dict[int, int] = {}
    records = []
    for r in recs:
        offset = offsets.get(r.partition, 0)
        offsets[r.partition] = offset + 1
        records.append(ReplayRecord(topic, r.partition, offset, r.ms, r.key, r.value, tuple(r.headers), catalog))
    return records


def replayed(records: list[ReplayRecord], verifiers: list[Any]) -> ReplayReport:
    """The replay's loop over `records` with `verifiers` (seals verified: the decoder leaves them to a seal verifier)
    and every verifier's last findings, as a verified replay without export runs them."""
    for verifier in verifiers:
        if isinstance(verifier, Decodes):
            verifier.seals_verified = True
    report = ReplayReport("test")
    _loop(records, verifiers, None, None, None, report, None, None)
    for verifier in verifiers:
        report.findings.extend(verifier.finish())
    return report


@contextmanager
def run_reader_off() -> Iterator[None]:
    """The trusted runs read by the Python paths alone (`leadbus.audit.native_runs` not used)."""
    saved = verification_module._RUN_READER
    verification_module._RUN_READER = None
    try:
        yield
    finally:
        verification_module._RUN_READER = saved


def with_and_without_run_reader(judge: Callable[..., T], *args: Any) -> tuple[T, T]:
    """`judge(*args)` with the C run reader, then again with the Python paths alone: the two should be equal (`judge`
    makes its records afresh: reading them leaves state on them)."""
    fast = judge(*args)
    with run_reader_off():
        return fast, judge(*args)


def cut_runs(records: list[ReplayRecord], rng: random.Random, cuts: int = 3) -> list[list[ReplayRecord]]:
    """`records` cut at up to `cuts` random places into the runs a replay hands its verifiers."""
    at = sorted(rng.sample(range(1, len(records) + 1), min(cuts, len(records))))
    return [records[a:b] for a, b in zip([0, *at], at, strict=False) if records[a:b]]


# -- the intake leads of a split replay (unit tests) -----------------------------------------------------------


def intake_lead_values(count: int = 300, seed: int = 3) -> list[tuple[str, bytes]]:
    """(intake topic, encoded CaseLead) of `count` simulated leads, as agencies publish them."""
    entry = CATALOG.latest("cn.leadbus.CaseLead")
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    return [(intake_topic(lead.publisher.agency), encode_object(entry, lead))
            for lead in TrafficGenerator(seed=seed).leads(count, start, timedelta(seconds=5))]


def leads_split(leads: list[tuple[str, bytes]], parts: int, shared: int, rng: random.Random,
                ) -> list[list[tuple[str, int, bytes]]]:
    """(topic, partition, value) each of `parts` processes of a split replay reads: the leads in turn, process i
    reading partition i, and `shared` of them read again by a process other than the first, half of those altered."""
    groups: list[list[tuple[str, int, bytes]]] = [[] for _ in range(parts)]
    for i, (topic, value) in enumerate(leads):
        groups[i % parts].append((topic, i % parts, value))
    for topic, value in rng.sample(leads, shared):
        at = rng.randrange(1, parts)
        groups[at].append((topic, at, value if rng.random() < 0.5 else value[:-1] + b"x"))
    return groups


def intake_read(values: list[tuple[str, int, bytes]]) -> IntakeLeads:
    """What one replay process's intake verifier holds after reading (topic, partition, value) in turn."""
    intake = IntakeLeads()
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, value in values:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        list(intake.check(ReplayRecord(topic, partition, offset, 0, b"k", value, (), CATALOG)))
    return intake
