"""Replay with verification against a raw confluent-kafka read of the same topic, and the rebuild rate.

    python bench/replay.py [--leads N] [--rebuild-leads M]

One broker, one run. N simulated leads are published (raw producer, the SDK's encoding) to the intake
topics, each *signed* by its publisher as the SDK signs (`SigningSealer`: Ed25519, seal v2 chained per
lane, the SDK's partition = CRC-32 of the key), the publishers' keys registered on `leadbus.publishers`;
intake's pure core makes the `LeadAccepted` of each, which go to `leadbus.leads.accepted`. The fill then checks that
every partition it wrote holds, from offset 0, exactly the records it produced, and stops naming any that are absent
(`LEADBUS_FILL_DEBUG=FILE`: its producer's librdkafka log). Then, each after the other, over the same topic:

* raw:    assign() every partition from the start, consume to the end, touch each value (no decode);
* replay: `leadbus.audit.replay` with every standard verifier and the bus's seal verifier (signatures by
          chains, keys at each record's time, publishers, partitions, Kafka keys, sequence lanes) — on the
          accepted topic also the digest, the re-normalisation of `original` (in worker processes, chunks of raw
          bytes), one (lead id, revision);
* replay without --verify: the same read (writer schemas, the summary's tally by type and publisher), no check.

Both rates are printed over the whole call (the replay's includes reading `leadbus.schemas` and planning)
and over the reading alone. The raw read and the replays are measured in a process of their own started after the
fill (`--in-process`: in this one, which holds the fill and slowed the raw read more than the replay), in `--rounds`
rounds of raw read then each replay: the machine's speed drifts within minutes, so the ratio printed is the median of
the rounds' ratios, each of a raw read and the replays that followed it.
Then the rebuild (linking, handover and routing handlers over in-memory
state) over M accepted leads (default 100,000), from records already in memory (the rate of
re-derivation, not of reading). Target: replay ≥ 0.5 × raw. Each line also gives the CPU time per record (or per
rebuilt lead) of every process involved (librdkafka's threads and the replay's forked workers included) and the load
average: on a machine shared with other work the rates say little, the CPU time stays comparable.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadbus.audit.processes import busy_cores, read_stat
from leadbus.audit.rebuild import rebuild
from leadbus.audit.replay import ReplayOptions, replay, seal_verifier_factory
from leadbus.audit.verification import ReplayRecord
from leadbus.avro import encode, encode_object, packaged_catalog
from leadbus.clients import RDKAFKA_LOG, KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.logs import configure_cli_logging
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Record, Source
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.publisher_keys import key_record
from leadbus.signing import KeyRegistry, PublisherKey, Seal, key_id_of, public_bytes
from leadbus.stage_seals import StageSealer, Unsealed, partition_for
from leadbus.topics import CASES, LEADS_ACCEPTED, PUBLISHERS, intake_topic, load_declarations

CATALOG = packaged_catalog()


def fill(bootstrap: str, leads: int) -> list[ReplayRecord]:
    """Publish `leads` signed leads to the intake topics and their LeadAccepted to the accepted topic."""
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    accepted_schema = CATALOG.latest("cn.leadbus.LeadAccepted")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True,
                         "compression.type": "lz4",
                         "queue.buffering.max.messages": 500_000, "logger": RDKAFKA_LOG, **_debugged()})
    gen = TrafficGenerator(seed=11, same_suspect_share=0.25)
    start = datetime.now(UTC) - timedelta(days=1)
    offsets: dict[str, int] = {}
    accepted: list[ReplayRecord] = []
    sealers: dict[str, SigningSealer] = {}
    keys: list[PublisherKey] = []
    registry = KeyRegistry()
    for i, lead in enumerate(gen.leads(leads, start, timedelta(seconds=0.5))):
        topic = intake_topic(lead.publisher.agency)
        publisher = f"{lead.publisher.agency}.{lead.publisher.province}"
        sealer = sealers.get(publisher)
        if sealer is None:
            private = Ed25519PrivateKey.generate()
            sealer = sealers[publisher] = SigningSealer(publisher, private, MemorySequences())
            raw = public_bytes(private.public_key())
            keys.append(PublisherKey(publisher, key_id_of(raw), raw, start - timedelta(days=1),
                                     start - timedelta(days=1)))
            registry.apply(keys[-1])
            _register(producer, keys[-1])
        value = encode_object(lead_schema, lead)
        key = lead.lead_id.encode()
        partition = zlib.crc32(key) % 3  # as the SDK chooses it
        headers = sealer.seal(topic, key, value, partition)
        offset = offsets.get(f"{topic}/{partition}", 0)
        offsets[f"{topic}/{partition}"] = offset + 1
        _produce(producer, topic, key, value, partition, headers)
        _SENT.setdefault((topic, partition), []).append(
            (key, f"{publisher} sequence {sealer.sequences.issued[f'{topic}:{partition}']}"))
        outcome = examine(value, Source(topic, partition, offset), CATALOG, datetime.now(UTC), headers=headers,
                          keys=registry)
        assert isinstance(outcome, Acceptance), outcome
        assert isinstance(outcome.seal, Seal)
        record = encode(accepted_schema, accepted_record(outcome, datetime.now(UTC)))
        accepted.append(ReplayRecord(LEADS_ACCEPTED, 0, i, int(time.time() * 1000), key, record, (), CATALOG))
    seal_stage_outputs(producer, accepted)
    # The replays run in this process, forking the workers that verify in parallel: keep its heap near what a replay's
    # own process holds (the events the stage handlers decoded, hundreds of MB, would make every fork dearer).
    accepted = [ReplayRecord(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value, (), CATALOG)
                for r in accepted]
    left = producer.flush(120)
    if left or _FAILED:  # a bench that measured fewer records than it says would mislead
        raise SystemExit(f"fill: {left} records undelivered, {len(_FAILED)} failed: {sorted(set(_FAILED))[:3]}")
    check_delivered(bootstrap)
    return accepted


def _register(producer: Producer, key: PublisherKey) -> None:
    """Register a key on `leadbus.publishers` before the first record it signs is produced: a replay honours a key only
    from its registration on the registry's log (a key registered after what it signed reads as back-dated)."""
    registry_key, value = key_record(key, CATALOG)
    _produce(producer, PUBLISHERS, registry_key, value, 0, [])
    _SENT.setdefault((PUBLISHERS, 0), []).append((registry_key, f"key of {key.publisher}"))


def _debugged() -> dict[str, object]:
    """`LEADBUS_FILL_DEBUG=FILE`: the fill's producer logs librdkafka's idempotence and metadata events to FILE."""
    path = os.environ.get("LEADBUS_FILL_DEBUG")
    if not path:
        return {}
    import logging

    log = logging.getLogger("bench.fill.rdkafka")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    return {"debug": "eos,topic,metadata", "logger": log}


TRANSACTION = 200  # input records per simulated stage transaction (the stages' batches are up to 500)


def seal_stage_outputs(producer: Producer, accepted: list[ReplayRecord]) -> list[PublisherKey]:
    """`leadbus.leads.accepted` sealed as intake seals it, and `leadbus.cases` as the linking stage derives (its handler
    over the accepted leads, in memory) and seals it: transactions of `TRANSACTION` input records. Prints the A/B of
    the stage's CPU per record: the linking step alone, and the same with its outputs sealed (`StageSealer`)."""
    from leadbus.audit.rebuild import DictState
    from leadbus.processors.linking import LinkingHandler

    intake = StageSealer("LEADBUS-intake", Ed25519PrivateKey.generate(), "00000000000000b1")
    linking = StageSealer("LEADBUS-linking", Ed25519PrivateKey.generate(), "00000000000000b2")
    cases_partitions = next(t.partitions for t in load_declarations() if t.name == CASES)
    outs: list[list[Unsealed]] = []
    handler, state = LinkingHandler(CATALOG), DictState()
    began = time.process_time()
    for r in accepted:
        event = r.event
        result = handler.handle(Record(LEADS_ACCEPTED, 0, r.offset, r.key, r.value, (), r.timestamp_ms), state,
                                event["accepted_at"])
        state.apply(result.state)
        outs.append([(o.topic, partition_for(o.key, cases_partitions) if o.key else 0, o.key, o.value, list(o.headers))
                     for o in result.outputs if o.topic == CASES])
    step = time.process_time() - began
    n_cases = sum(len(o) for o in outs)
    began = time.process_time()
    sealed: list[tuple[Unsealed, list[tuple[str, bytes]]]] = []
    for start in range(0, len(outs), TRANSACTION):
        batch = [o for rows in outs[start:start + TRANSACTION] for o in rows]
        sealed += zip(batch, linking.seal(batch), strict=True)
        linking.commit()
    sealing = time.process_time() - began
    print(f"stage A/B (linking, in process): step {step / len(accepted) * 1e6:,.0f} µs CPU per lead; sealing its "
          f"{n_cases} case records adds {sealing / len(accepted) * 1e6:,.1f} µs per lead "
          f"({sealing / max(1, n_cases) * 1e6:,.1f} µs per sealed record, {linking.signatures} signatures) → "
          f"{(step + sealing) / step:.3f}× the step's CPU")
    began = time.process_time()
    accepted_sealed = []
    for start in range(0, len(accepted), TRANSACTION):
        batch: list[Unsealed] = [(LEADS_ACCEPTED, 0, r.key, r.value, []) for r in accepted[start:start + TRANSACTION]]
        accepted_sealed += zip(batch, intake.seal(batch), strict=True)
        intake.commit()
    per = (time.process_time() - began) / len(accepted) * 1e6
    print(f"stage A/B (intake's outputs): sealing {len(accepted)} accepted leads {per:,.1f} µs CPU per record, "
          f"{intake.signatures} signatures")
    keys = []
    for sealer in (intake, linking):
        raw = sealer.public_key
        since = datetime.now(UTC) - timedelta(days=3)
        keys.append(PublisherKey(sealer.signer, key_id_of(raw), raw, since, since, require_signed=False))
        _register(producer, keys[-1])
    for (topic, partition, key, value, _), headers in [*accepted_sealed, *sealed]:
        _produce(producer, topic, key or b"", value or b"", partition, headers)
        _SENT.setdefault((topic, partition), []).append((key or b"", "sealed by its stage"))
    return keys


def more_accepted(accepted: list[ReplayRecord], leads: int) -> list[ReplayRecord]:
    """`leads` accepted leads for the rebuild: those published, then more from the same generator's stream."""
    if leads <= len(accepted):
        return accepted[:leads]
    accepted_schema = CATALOG.latest("cn.leadbus.LeadAccepted")
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    gen = TrafficGenerator(seed=11, same_suspect_share=0.25)
    start = datetime.now(UTC) - timedelta(days=1)
    out: list[ReplayRecord] = []
    for i, lead in enumerate(gen.leads(leads, start, timedelta(seconds=0.5))):
        if i < len(accepted):
            out.append(accepted[i])
            continue
        value = encode_object(lead_schema, lead)
        outcome = examine(value, Source(intake_topic(lead.publisher.agency), 0, i), CATALOG, datetime.now(UTC))
        assert isinstance(outcome, Acceptance), outcome
        record = encode(accepted_schema, accepted_record(outcome, datetime.now(UTC)))
        out.append(ReplayRecord(LEADS_ACCEPTED, 0, i, int(time.time() * 1000), lead.lead_id.encode(), record, (),
                                CATALOG))
    return out


_FAILED: list[str] = []
#: Every record the fill produced, by (topic, partition), in produce order: (Kafka key, what it is).
_SENT: dict[tuple[str, int], list[tuple[bytes, str]]] = {}


def check_delivered(bootstrap: str) -> None:
    """Every partition the fill wrote holds exactly what it produced, from offset 0, or the bench stops here naming the
    records that are absent. A replay over fewer records than the bench says it published measures something else,
    and reads as a verification failure (a lane missing its first numbers) the bus never caused."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-check-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_uncommitted", "logger": RDKAFKA_LOG})
    wrong = []
    for (topic, partition), sent in sorted(_SENT.items()):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=20)
        if (low, high) != (0, len(sent)):
            wrong.append((topic, partition, low, high, sent))
    lines = []
    for topic, partition, low, high, sent in wrong:
        held = _keys_held(consumer, topic, partition, low, high)
        present = Counter(key for _, key in held)  # (a case's key recurs: counted, not just seen)
        absent = []
        for i, (key, what) in enumerate(sent):
            if present[key]:
                present[key] -= 1
            else:
                absent.append((i, key, what))
        lines.append(f"{topic}[{partition}]: produced {len(sent)}, the log holds offsets {low}..{high - 1} "
                     f"({len(held)} records read back); {len(absent)} absent:")
        lines += [f"  #{i} in produce order: key {key.decode(errors='replace')} ({what})"
                  for i, key, what in absent[:20]]
    consumer.close()
    if lines:
        raise SystemExit("fill: records acknowledged by the broker are not in the log\n" + "\n".join(lines))
    print(f"fill checked: {sum(len(s) for s in _SENT.values())} records in {len(_SENT)} partitions, every one in the "
          f"log from offset 0")


def _keys_held(consumer: Consumer, topic: str, partition: int, low: int, high: int) -> list[tuple[int, bytes]]:
    consumer.assign([TopicPartition(topic, partition, low)])
    held: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    while high > low and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        held.append((msg.offset() or 0, msg.key() or b""))
        if (msg.offset() or 0) >= high - 1:
            break
    consumer.unassign()
    return held


def _delivered(err: object, msg: object) -> None:
    if err is not None:
        _FAILED.append(str(err))


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, partition: int,
             headers: list[tuple[str, bytes]]) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition, headers=headers,
                             on_delivery=_delivered)
            return
        except BufferError:
            producer.poll(0.1)


def raw_read(bootstrap: str, topics: list[str]) -> tuple[int, float]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 10, "logger": RDKAFKA_LOG,
                         # as the replay's consumer (leadbus.audit.sources): librdkafka's default 1 s backoff on a full
                         # queue stalled this baseline on the ~190 MB accepted partition (83,652/s against 533,744)
                         "fetch.queue.backoff.ms": 10})
    meta = consumer.list_topics(timeout=20)
    parts = [TopicPartition(t, p, 0) for t in topics for p in meta.topics[t].partitions]
    ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=20)[1] for tp in parts}
    todo = {k for k, end in ends.items() if end > 0}
    # The collector off, as the replay keeps it through its read: this process holds the fill's records (hundreds of
    # thousands of objects), which a raw reader of its own would not, and each collection the Messages set off walked
    # them (session 20, leadbus.cases: 6.7 µs CPU per record with it on, 5.2 off; ~3.4 in a small process of its own).
    collecting = gc.isenabled()
    gc.disable()
    started = time.perf_counter()
    consumer.assign(parts)
    count = size = 0
    try:
        while todo:
            for msg in consumer.consume(2000, 0.05):
                if msg.error():
                    continue
                count += 1
                size += len(msg.value() or b"")
                key = (msg.topic(), msg.partition())
                if (msg.offset() or 0) >= ends[key] - 1:
                    todo.discard(key)
        seconds = time.perf_counter() - started
    finally:
        if collecting:
            gc.enable()
    consumer.close()
    return count, seconds


def cpu_seconds() -> float:
    """CPU time of this process (its librdkafka threads included) and of its children (replay workers), each waited for
    first: a replay leaves its forked processes' ends to a thread (`leadbus.audit.processes.reap`), and a child's time
    counts only once it is waited for."""
    for child in multiprocessing.active_children():
        child.join()
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def measure(bootstrap: str, name: str, topics: list[str], published: int, workers: list[int], rounds: int) -> None:
    """Rounds of the raw read, then the replay with verification with each choice of processes, one after the other
    (the machine's speed drifts within minutes: a round's raw read and replays are neighbours in time). Prints each
    round and the medians, then the replay without --verify (and on the accepted topic with --rederive) once, against
    the raw read's median."""
    settings = KafkaSettings(bootstrap)
    raws: list[tuple[float, float]] = []
    runs: dict[int, list[tuple[float, float, int]]] = {w: [] for w in workers}
    for round_ in range(1, rounds + 1):
        began_cpu = cpu_seconds()
        n_raw, s_raw = raw_read(bootstrap, topics)
        raw_cpu = (cpu_seconds() - began_cpu) / max(1, n_raw) * 1e6
        assert n_raw == published, f"the raw read met {n_raw} of the {published} records in the log"
        raws.append((s_raw, raw_cpu))
        raw_rate = n_raw / s_raw
        for workers_ in workers:
            seals = seal_verifier_factory(settings)
            chosen: dict[str, Any] = {"workers": workers_} if workers_ else {}
            began_cpu = cpu_seconds()
            report = replay(ReplayOptions(topics=topics, verify=True, seal_verifier=seals, **chosen), settings)
            replay_cpu = (cpu_seconds() - began_cpu) / max(1, report.records) * 1e6
            assert report.status == 0, report.failures[:3]
            assert report.records == n_raw, (report.records, n_raw)
            assert name != "intake topics" or report.sealed == n_raw, (report.sealed, n_raw)
            runs[workers_].append((report.seconds, replay_cpu, report.processes))
            replay_rate = report.records / report.seconds
            reading = report.records / report.read_seconds if report.read_seconds else 0.0
            extra = (f", accepted-lead content checks in {report.content_workers} worker processes"
                     if report.content_workers else "")
            if getattr(report, "cut", ""):  # (getattr: the same bench also measures a tree from before cuts)
                extra += f", its partition cut in two ({report.cut})"
            print(f"{name} round {round_}: raw read {n_raw} records {raw_rate:,.0f}/s; replay+verify "
                  f"({workers_ or 'auto'}) {report.records} records ({report.sealed} sealed, "
                  f"{report.signatures} Ed25519 verifications, {report.processes} "
                  f"process{'es' if report.processes > 1 else ''}{extra}) "
                  f"{replay_rate:,.0f}/s ({report.seconds:.2f}s incl. schemas and plan), reading alone "
                  f"{reading:,.0f}/s → ratio {replay_rate / raw_rate:.2f}; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; CPU per record: "
                  f"raw {raw_cpu:.1f} µs, replay+verify {replay_cpu:.1f} µs (all processes)", flush=True)
    raw_seconds = statistics.median(s for s, _ in raws)
    for workers_, got in runs.items():
        ratios = [raw_s / seconds for (raw_s, _), (seconds, _, _) in zip(raws, got, strict=True)]
        print(f"{name}: replay+verify ({workers_ or 'auto'}, "
              f"{'/'.join(str(p) for p in sorted({p for _, _, p in got}))} processes) over {rounds} rounds → "
              f"**ratio {statistics.median(ratios):.2f}** (median of the rounds' ratios; per round "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; median seconds raw {raw_seconds:.2f} / replay "
              f"{statistics.median(s for s, _, _ in got):.2f}); CPU per record raw "
              f"{statistics.median(c for _, c in raws):.1f} µs, replay+verify "
              f"{statistics.median(c for _, c, _ in got):.1f} µs", flush=True)
    raw_median = published / raw_seconds
    began_cpu = cpu_seconds()
    plain = replay(ReplayOptions(topics=topics, verify=False), settings)
    plain_cpu = (cpu_seconds() - began_cpu) / max(1, plain.records) * 1e6
    plain_rate = plain.records / plain.seconds
    plain_reading = plain.records / plain.read_seconds if plain.read_seconds else 0.0
    if topics == [LEADS_ACCEPTED]:  # the same records, every one normalised again as before stage seals
        began_cpu = cpu_seconds()
        again = replay(ReplayOptions(topics=topics, verify=True, seal_verifier=seal_verifier_factory(settings),
                                     rederive_sealed=True), settings)
        again_cpu = (cpu_seconds() - began_cpu) / max(1, again.records) * 1e6
        assert again.status == 0, again.failures[:3]
        print(f"{name}: replay+verify --rederive (normalising every `original` again, as before stage seals) "
              f"{again.records / again.seconds:,.0f}/s → ratio {again.records / again.seconds / raw_median:.2f}; "
              f"CPU {again_cpu:.1f} µs per record")
    print(f"{name}: replay without --verify {plain.records} records {plain_rate:,.0f}/s, reading alone "
          f"{plain_reading:,.0f}/s → ratio {plain_rate / raw_median:.2f} (reading alone "
          f"{plain_reading / raw_median:.2f}); CPU {plain_cpu:.1f} µs per record")

def measured_apart(bootstrap: str, name: str, published: int, workers: list[int], rounds: int,
                   quiet_wait: float = 0.0) -> None:
    """`measure` in a process of its own: this one holds the fill (hundreds of thousands of objects, the allocator's
    arenas they left), which slowed the raw read more than the replay (session 20, leadbus.cases: 5.2 µs CPU per record
    here, 3.4 in a small process) and so flattered the ratio. An auditor's replay and a raw reader start small."""
    only = {"intake topics": "intake", LEADS_ACCEPTED: "accepted", CASES: "cases"}[name]
    settled(name, quiet_wait)
    command = [sys.executable, __file__, "--measure", bootstrap, "--only", only, "--rounds", str(rounds),
               "--published", str(published), "--workers", *(str(w) for w in workers)]
    subprocess.run(command, check=True)


#: What "quiet" is before a topic is measured: the cores' busy time over a second, in cores (`busy_cores`).
QUIET_CORES = 0.3


def settled(name: str, wait: float) -> None:
    """Waits (at most `wait` seconds) until the machine is quiet over two seconds in a row, and says how long it took:
    the broker flushes and cleans what the fill (or the measure before) wrote for a while after, and a replay of two
    processes needs both cores where the raw read needs one (session 23: the accepted topic measured 0.41 in the
    bench's run, right after the intake topics, and 0.54 alone on another filled broker)."""
    if wait <= 0:
        return
    began = time.monotonic()
    quiet = 0
    busy: float | None = None
    while quiet < 2 and time.monotonic() - began < wait:
        before = read_stat()
        time.sleep(1.0)
        busy = busy_cores(before, read_stat(), os.cpu_count() or 1)
        quiet = quiet + 1 if busy is not None and busy < QUIET_CORES else 0
        if busy is None:
            break
    state = "quiet" if quiet >= 2 else f"not quiet ({busy:.2f} cores busy)" if busy is not None else "(no /proc/stat)"
    print(f"{name}: machine {state} after {time.monotonic() - began:.0f}s of waiting", flush=True)


def measure_main(args: argparse.Namespace) -> None:
    """The measuring process `measured_apart` starts: the fill is in the broker at args.measure."""
    bootstrap = args.measure
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-meta-{uuid.uuid4()}", "logger": RDKAFKA_LOG})
    intake_topics = sorted(t for t in probe.list_topics(timeout=20).topics if t.startswith("leadbus.intake."))
    probe.close()
    name, topics = {"intake": ("intake topics", intake_topics), "accepted": (LEADS_ACCEPTED, [LEADS_ACCEPTED]),
                    "cases": (CASES, [CASES])}[args.only]
    measure(bootstrap, name, topics, args.published, args.workers, args.rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--rebuild-leads", type=int, default=100_000)
    parser.add_argument("--skip-accepted", action="store_true", help="replay the intake topics only")
    parser.add_argument("--only", choices=["intake", "accepted", "cases"], help="replay this one (quicker rounds)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="replay processes to measure, each in turn (0: the replay's own choice, as the CLI)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of raw read then replays, one after the other; the ratio is the rounds' median")
    parser.add_argument("--quiet-wait", type=float, default=90.0,
                        help="seconds to wait at most, before each topic, for the machine to be quiet (0: none)")
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process, which holds the fill (the bench before session 21)")
    parser.add_argument("--measure", metavar="BOOTSTRAP", help=argparse.SUPPRESS)
    parser.add_argument("--published", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_cli_logging()
    if args.measure:
        measure_main(args)
        return  # librdkafka's errors as one summarised line each, its transient retries at debug
    with KafkaCluster(1) as cluster:
        bootstrap = cluster.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        began = time.perf_counter()
        try:
            accepted = fill(bootstrap, args.leads)
        except SystemExit:
            kept = Path(tempfile.gettempdir()) / f"leadbus-bench-replay-broker-{os.getpid()}.log"
            shutil.copyfile(cluster.nodes[0].log_path, kept)
            print(f"the broker's log: {kept}", file=sys.stderr)
            raise
        print(f"published {args.leads} signed leads and their LeadAccepted in {time.perf_counter() - began:.0f}s")
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-meta-{uuid.uuid4()}",
                          "logger": RDKAFKA_LOG})
        intake_topics = sorted(t for t in probe.list_topics(timeout=20).topics if t.startswith("leadbus.intake."))
        probe.close()
        runs = [("intake topics", intake_topics)]
        if not args.skip_accepted:
            runs.append(("leadbus.leads.accepted", [LEADS_ACCEPTED]))
            runs.append(("leadbus.cases", [CASES]))
        if args.only:
            runs = [run for run in runs if run[0] == {"intake": "intake topics", "accepted": LEADS_ACCEPTED,
                                                      "cases": CASES}[args.only]]
        for name, topics in runs:
            published = sum(len(sent) for (topic, _), sent in _SENT.items() if topic in topics)
            if args.in_process:
                measure(bootstrap, name, topics, published, args.workers, args.rounds)
            else:
                measured_apart(bootstrap, name, published, args.workers, args.rounds, args.quiet_wait)
        rebuild_input = more_accepted(accepted, args.rebuild_leads)
        began, began_cpu = time.perf_counter(), cpu_seconds()
        result = rebuild(rebuild_input, catalog=CATALOG)
        seconds, rebuild_cpu = time.perf_counter() - began, cpu_seconds() - began_cpu
        kinds = {d.kind for d in result.differences}
        print(f"rebuild: {len(rebuild_input)} accepted leads → {result.cases} case events, {result.steps} handover "
              f"steps, {result.routed} routed records in {seconds:.1f}s → {len(rebuild_input) / seconds:,.0f} leads/s, "
              f"CPU {rebuild_cpu / len(rebuild_input) * 1e6:,.0f} µs per lead, load average {os.getloadavg()[0]:.1f} "
              f"(differences by kind, expected with no recorded outputs: {sorted(kinds)})")


if __name__ == "__main__":
    main()
