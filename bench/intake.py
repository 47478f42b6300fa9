"""Intake throughput: the faust agent and the transactional stage against a plain confluent-kafka loop.

    python bench/intake.py [--leads N] [--rounds R] [--warm-up W] [--no-faust] [--side-by-side] [--signed] [--cold]

All three host the same intake step (`IntakeHandler.examine` + `.judge`) over the same intake events on
the same broker in the same run. Rates are taken from the broker timestamps of the first and
last output each engine wrote (start-up and recovery excluded), so they compare processing.

Before anything is timed the broker is warmed, the same for both engines: a transactional workload of its own
(bench/broker_cpu.py), then W events (default 20,000) through the plain loop and through the stage, on the
topics, groups and state the rounds use (with 5,000 the broker's JIT still took 21-28 µs per event of the first stage
round, 4-15 of the next ones: it compiles what turns hot, and recompiles what the other engine's traffic
deoptimised, for tens of thousands of events).
Then R rounds (default 3) of N fresh events each: the plain loop and the stage each take the round's events in a
new process (the plain loop's group and the stage's group and state go on from the round before, as a running
worker's would), alternating which goes first; each round prints both rates, the ratio and the CPU per event, and
the last line the medians. On a shared, loaded machine one engine after the other meets different loads: ratios
of the same round, and their median, are what compare; `--side-by-side` runs the plain loop and the stage at the
same time instead, so that both meet one load.
`--signed` publishes the same leads sealed as production traffic is (one Ed25519 key per agency, registered on
`leadbus.publishers`; the SDK's `SigningSealer`, seal v2 chains per lane): both engines verify every seal and
check every lane's sequence numbers (the faust agent verifies none: it is left out). The faust agent reads
everything from the beginning in a group of its own, timed over its last N.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.avro import decode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.logs import configure_cli_logging
from leadbus.processors.core.records import Record
from leadbus.processors.intake import IntakeHandler
from leadbus.processors.stage import record_of
from leadbus.producers import Publisher
from leadbus.producers.signing import SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.producers.traffic import Traffic
from leadbus.provisioning.topics import apply_topics
from leadbus.publisher_keys import read_registry, write_keys
from leadbus.signing import PublisherKey, key_id_of, public_bytes
from leadbus.topics import INTAKE_BY_LEAD, LEADS_ACCEPTED, LEADS_REJECTED, load_declarations

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from broker_cpu import broker_threads, jit_seconds, warm_transactions  # bench/, this script's folder

from tests.kafka_helpers import read_all


def plain_loop(bootstrap: str, expected: int, warmed: Callable[[int], None] | None = None,
               signed: bool = False, phases: dict[str, float] | None = None, group: str | None = None,
               seen: dict[bytes, bytes | None] | None = None) -> None:
    """The baseline: consume → the same intake step → produce with confluent-kafka, at-least-once, no framework.

    Both halves of the step run in process against a dict: no transactions, no repartition topic. Written as one
    would write such a loop for speed: batches of up to 2,000 records, the clock read once per batch (the stage
    does the same), the producer served once per batch, and a linger long enough that a produce call only queues
    (with 5 ms and a serve per record, librdkafka woke its broker thread for nearly every record: ~100 µs a call
    under load, against ~8 µs in the stage). `warmed(done)` is called once, after the first batch: its start-up
    (the group join, the core's first-call set-up) is behind it. Each batch is handed to `prepare` first, as the
    stage does (signed traffic: one signature check per chained run); a signed event takes its sequence hop too.
    `phases` gets the wall time of the batches after the first: consume, step (produce calls included), serve (the
    producer's poll), flush (the last one), and the number of batches. `group`: its consumer group (a new one if
    None); it commits its offsets as it goes and when it closes, so that a later loop of the same group goes on from
    there, as the stage's group does; `seen` is the dict its second half keeps its state in (dedupe memory, signed
    lanes' sequence numbers), handed over from the loop before it as the stage's store is.
    """
    spent = phases if phases is not None else {}
    clock = time.monotonic
    handler = IntakeHandler(keys=read_registry(bootstrap) if signed else None)
    kafka = KafkaSettings(bootstrap)
    consumer = kafka.consumer(group or f"bench-plain-{uuid.uuid4()}", **{"enable.auto.commit": True})
    producer = kafka.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 100,
                                 "compression.type": "lz4"})
    consumer.subscribe(["^leadbus\\.intake\\..*"])
    seen = {} if seen is None else seen
    done = 0
    examine, handle, produce = handler.examine, handler.handle, producer.produce
    while done < expected:
        polled = clock()
        batch = consumer.consume(2000, 0.2)
        stepping = clock()
        now = datetime.now(UTC)
        records = [record_of(msg) for msg in batch if not msg.error()]
        handler.prepare(records)
        for record in records:
            pending = examine(record, now).outputs
            while pending:  # the second half (a signed event: its sequence hop first) against the dict
                out = pending.pop()
                if out.topic == INTAKE_BY_LEAD:
                    judged = handle(Record(out.topic, 0, 0, out.key, out.value, out.headers), seen, now)
                    seen.update(judged.state)
                    pending += judged.outputs
                else:
                    _produce(producer, produce, out.key, out.value)
            done += 1
        serving = clock()
        producer.poll(0)
        if warmed is not None and done:
            warmed(done)
            warmed = None
        elif batch and warmed is None:
            for phase, took in (("consume", stepping - polled), ("step", serving - stepping),
                                ("serve", clock() - serving), ("batches", 1)):
                spent[phase] = spent.get(phase, 0.0) + took
    flushing = clock()
    producer.flush(60)
    spent["flush"] = clock() - flushing
    consumer.close()


def _produce(producer: Producer, produce: Any, key: bytes | None, value: bytes) -> None:
    while True:
        try:
            produce("bench.plain.out", value, key)
            return
        except BufferError:  # the producer's queue is full: let it send
            producer.poll(0.05)


def plain_child(bootstrap: str, expected: int, group: str, signed: bool = False, state: Path | None = None) -> None:
    """The plain loop in a process of its own, like the stage: its CPU per event (whole process and its main
    thread) printed as JSON for the parent. Like the stage's, it is counted from the end of its first batch:
    imports, the group join and the core's first-call set-up are not per-event work. Its state is read from `state`
    before and written there after, untimed, as the stage restores its store (a signed lane's next number)."""
    began: list[float] = []

    def warmed(done: int) -> None:
        began.extend((time.process_time(), time.thread_time(), done))

    seen: dict[bytes, bytes | None] = pickle.loads(state.read_bytes()) if state and state.exists() else {}
    phases: dict[str, float] = {}
    plain_loop(bootstrap, expected, warmed, signed, phases, group, seen)
    cpu, main, first = began
    events = max(expected - first, 1)
    print(json.dumps({"cpu": (time.process_time() - cpu) / events, "main": (time.thread_time() - main) / events,
                      "phases": phases}), flush=True)
    if state is not None:
        state.write_bytes(pickle.dumps(seen))


def stage_rate(bootstrap: str, count: int, since: float = 0.0) -> float:
    """The stage's rate from its first examined lead (first half, on the repartition topic) to its last output.

    Its final outputs alone would time only the second half: under a backlog the first half runs ahead
    and the judged leads follow in a burst. `since` (ms, wall clock): the examined leads of earlier runs are older.
    """
    examined = [m.timestamp()[1] for m in read_all(bootstrap, INTAKE_BY_LEAD) if m.timestamp()[1] >= since]
    final = sorted(m.timestamp()[1] for t in (LEADS_ACCEPTED, LEADS_REJECTED) for m in read_all(bootstrap, t))
    final = final[-count:]
    first = min(examined + final)
    return count / max((final[-1] - first) / 1000.0, 1e-3)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a live process, or of one of its threads (Linux /proc)."""
    where = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stage_phases(port: int) -> str:
    """Where the stage's wall time went per committed transaction, from its Prometheus metrics (its batches' phases:
    leadbus.processors.metrics.STAGE_PHASE_SECONDS)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError as exc:
        return f"stage wall per transaction: metrics not read ({exc})"
    spent: dict[str, float] = {}
    transactions = records = 0.0
    for line in text.splitlines():
        if line.startswith("leadbus_stage_phase_seconds_total{"):
            phase = line.split('phase="', 1)[1].split('"', 1)[0]
            spent[phase] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("leadbus_stage_transaction_seconds_count{"):
            transactions = float(line.rsplit(" ", 1)[1])
        elif line.startswith("leadbus_stage_records_total{"):
            records = float(line.rsplit(" ", 1)[1])
    count = max(transactions, 1)
    # offsets and commit run on the stage's finisher thread while the next batch is stepped: the stage's thread
    # spends of them only what it waited (`wait`)
    walls = ", ".join(f"{phase} {spent.get(phase, 0) / count * 1e3:.1f}" for phase in
                      ("consume", "step", "produce", "wait", "local"))
    behind = ", ".join(f"{phase} {spent.get(phase, 0) / count * 1e3:.1f}" for phase in ("offsets", "commit"))
    total = sum(v for phase, v in spent.items() if phase not in ("offsets", "commit")) / count * 1e3
    return (f"stage wall per transaction ({transactions:.0f}, {records / count:.0f} records each): {walls} ms; "
            f"{total:.1f} ms in all (on the finisher meanwhile: {behind} ms)")


def plain_phases(spent: dict[str, float]) -> str:
    count = max(spent.get("batches", 0), 1)
    walls = ", ".join(f"{phase} {spent.get(phase, 0) / count * 1e3:.1f}" for phase in ("consume", "step", "serve"))
    return (f"plain wall per batch ({count:.0f} after the first): {walls} ms; "
            f"{sum(v for k, v in spent.items() if k not in ('batches', 'flush')) / count * 1e3:.1f} ms in all, "
            f"and {spent.get('flush', 0) * 1e3:.0f} ms flushing at the end")


def end_offsets(bootstrap: str, topics: list[str], consumer: Consumer | None = None) -> int:
    """Records plus transaction markers on `topics`: a cheap upper bound of what they hold (no record is read).
    A watcher that asks again and again passes its `consumer`: a new one each time is a new connection to the
    broker, and its first requests (connection, ApiVersions, metadata) kept the broker's JIT compiling."""
    own = consumer is None
    watch = consumer or KafkaSettings(bootstrap).consumer(f"bench-intake-watch-{uuid.uuid4()}")
    try:
        meta = watch.list_topics(timeout=20)
        return sum(int(watch.get_watermark_offsets(TopicPartition(t, p), timeout=20)[1])
                   for t in topics for p in meta.topics[t].partitions)
    finally:
        if own:
            watch.close()


def kafka_topics(bootstrap: str) -> list[str]:
    return list(KafkaSettings(bootstrap).admin().list_topics(timeout=20).topics)


def warm_broker(bootstrap: str, count: int, timeout: float = 300) -> None:
    """Read the intake topics once, through a throwaway group: the broker's fetch path compiled before timing."""
    consumer = KafkaSettings(bootstrap).consumer(f"bench-warm-{uuid.uuid4()}")
    consumer.subscribe(["^leadbus\\.intake\\..*"])
    seen, deadline = 0, time.monotonic() + timeout
    try:
        while seen < count and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(1000, 0.5) if not m.error())
    finally:
        consumer.close()


def span_rate(bootstrap: str, topics: list[str], count: int) -> float:
    stamps = sorted(m.timestamp()[1] for t in topics for m in read_all(bootstrap, t))[-count:]
    return (len(stamps) - 1) / max((stamps[-1] - stamps[0]) / 1000.0, 1e-3)


def wait_for(bootstrap: str, topics: list[str], count: int, timeout: float = 600) -> None:
    """Until `topics` hold `count` records; they are read (to count them) only once their end offsets allow it,
    so the watching takes next to no CPU from the engine it is timing."""
    deadline = time.monotonic() + timeout
    watch = KafkaSettings(bootstrap).consumer(f"bench-intake-watch-{uuid.uuid4()}")
    try:
        while time.monotonic() < deadline:
            if (end_offsets(bootstrap, topics, watch) >= count
                    and sum(len(read_all(bootstrap, t)) for t in topics) >= count):
                return
            time.sleep(1)
    finally:
        watch.close()
    raise TimeoutError(f"{topics} did not reach {count}")


def wait_started(bootstrap: str, topic: str, proc: subprocess.Popen[bytes], before: int = 0,
                 timeout: float = 300) -> None:
    """Until `proc` has written to `topic` past its end offset `before` (its first transaction committed or open)."""
    deadline = time.monotonic() + timeout
    watch = KafkaSettings(bootstrap).consumer(f"bench-intake-watch-{uuid.uuid4()}")
    try:
        while end_offsets(bootstrap, [topic], watch) <= before:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the engine wrote nothing to {topic}")
            time.sleep(0.2)
    finally:
        watch.close()


#: The plain loop's consumer group, for the warm-up and every round: each goes on where the one before stopped.
PLAIN_GROUP = "bench-plain"


@dataclass
class Bench:
    """One broker with the intake topics, the traffic that feeds them, and how engines are started on it."""

    bootstrap: str
    broker: int  # the broker's pid
    traffic: Traffic
    work: Path
    env: dict[str, str]
    signed: bool
    upkeep: float = 0.0  # the broker's CPU µs per second idle
    published: int = 0  # events on the intake topics
    judged: int = 0  # the stage's outputs on the accepted and rejected topics: one per event
    clock: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=1))

    def publish(self, count: int) -> int:
        """`count` more leads of the same simulated traffic (new lead ids); how many the broker holds of them.

        What the intake topics hold, not what was handed to the publishers: on a loaded machine a few were not
        confirmed within the flush (16 of 20,000 at load average 30) and the bench waited 600 s for them."""
        for lead in self.traffic.generator.leads(count, self.clock, timedelta(milliseconds=1)):
            self.traffic.publisher(lead.publisher.agency, lead.publisher.province).publish(lead)
            self.traffic.report.published += 1
        self.clock += timedelta(milliseconds=count)
        for pub in self.traffic.publishers.values():
            pub.flush(120)
        held = end_offsets(self.bootstrap, [t for t in kafka_topics(self.bootstrap) if t.startswith("leadbus.intake.")])
        n, self.published = held - self.published, held
        if n < count:
            print(f"{count - n} of {count} leads not confirmed by the broker: timing the {n} it holds",
                  file=sys.stderr)
        return n

    def plain_process(self, n: int, **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, __file__, "--plain-only", self.bootstrap, str(n), PLAIN_GROUP,
                                 str(self.work / "plain-state"), *(["--signed"] if self.signed else [])],
                                env=self.env, **kwargs)

    def stage_process(self, port: int | None = None) -> subprocess.Popen[bytes]:
        """The stage, worker id `bench` and one state folder for every start: each goes on from the one before."""
        return subprocess.Popen([sys.executable, "-m", "leadbus.cli", "process", "--stage", "intake", "-b",
                                 self.bootstrap, "--state-dir", str(self.work / "stage"), "--worker-id", "bench",
                                 *(["--metrics-port", str(port)] if port else [])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)

    def warm_up(self, events: int) -> int:
        """The real paths, before anything is timed: `events` leads through the plain loop and through the stage,
        on the same topics, groups and state as the timed rounds (bench/broker_cpu.py: a fresh broker's JIT compiles
        each path as it is first used, and a few thousand requests in it compiles again what turned hot)."""
        n = self.publish(events)
        self.plain_process(n, stdout=subprocess.DEVNULL).wait(900)
        stage = self.stage_process()
        self.judged += n
        try:
            wait_for(self.bootstrap, [LEADS_ACCEPTED, LEADS_REJECTED], self.judged)
        finally:
            stage.terminate()
            stage.wait(30)
        return n

    def plain_round(self, n: int) -> tuple[float, Cpu, dict[str, float]]:
        """The plain loop over the `n` events not yet read by its group: its rate, CPU and phases."""
        load = os.getloadavg()[0]
        # In a process of its own like the stage (its CPU is not the traffic's idle producers'); from its start,
        # so the broker's CPU here includes the group join, which the stage's leaves out.
        broker_before, began = cpu_seconds(self.broker), time.monotonic()
        jit_before = jit_seconds(broker_threads(self.broker))
        child = self.plain_process(n, stdout=subprocess.PIPE)
        out, _ = child.communicate(timeout=900)
        if child.returncode:
            raise RuntimeError(f"the plain loop exited with {child.returncode}")
        spent = json.loads(out.decode().strip().splitlines()[-1])
        cpu = Cpu(spent["cpu"] * 1e6, (cpu_seconds(self.broker) - broker_before) / n * 1e6,
                  max(load, os.getloadavg()[0]), self.upkeep * (time.monotonic() - began) / n, spent["main"] * 1e6,
                  (jit_seconds(broker_threads(self.broker)) - jit_before) / n * 1e6)
        return span_rate(self.bootstrap, ["bench.plain.out"], n), cpu, spent["phases"]

    def stage_round(self, n: int) -> tuple[float, Cpu, str]:
        """The stage, started anew, over the `n` events its group has not read: its rate, CPU and phases."""
        load = os.getloadavg()[0]
        port = free_port()
        since, examined = time.time() * 1000, end_offsets(self.bootstrap, [INTAKE_BY_LEAD])
        stage = self.stage_process(port)
        self.judged += n
        try:
            # CPU from its first output on: its start-up (imports, group join, restore) is not per-event work.
            wait_started(self.bootstrap, INTAKE_BY_LEAD, stage, examined)
            stage_before, broker_before, began = cpu_seconds(stage.pid), cpu_seconds(self.broker), time.monotonic()
            jit_before = jit_seconds(broker_threads(self.broker))
            main_before = cpu_seconds(stage.pid, stage.pid)  # the main thread: the one running Python, the step
            wait_for(self.bootstrap, [LEADS_ACCEPTED, LEADS_REJECTED], self.judged)
            cpu = Cpu((cpu_seconds(stage.pid) - stage_before) / n * 1e6,
                      (cpu_seconds(self.broker) - broker_before) / n * 1e6, max(load, os.getloadavg()[0]),
                      self.upkeep * (time.monotonic() - began) / n,
                      (cpu_seconds(stage.pid, stage.pid) - main_before) / n * 1e6,
                      (jit_seconds(broker_threads(self.broker)) - jit_before) / n * 1e6)
            walls = stage_phases(port)
        finally:
            stage.terminate()
            stage.wait(30)
        return stage_rate(self.bootstrap, n, since), cpu, walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=20000, help="events per timed round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed rounds of the plain loop and the stage, alternating which goes first (medians)")
    parser.add_argument("--warm-up", type=int, default=20000,
                        help="events through the plain loop and through the stage before anything is timed")
    parser.add_argument("--no-faust", action="store_true", help="plain loop and stage only")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run the plain loop and the stage at the same time (each its own process and group), so "
                             "that on a loaded machine both meet the same load; implies --no-faust")
    parser.add_argument("--signed", action="store_true",
                        help="sealed traffic (seal v2, one key per agency): plain loop and stage only")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up of the broker: its JIT compiles the paths while the engines are timed")
    parser.add_argument("--plain-only", nargs=4, metavar=("BOOTSTRAP", "EVENTS", "GROUP", "STATE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_cli_logging()  # librdkafka's errors as one summarised line each, its transient retries at debug
    if args.plain_only:
        plain_child(args.plain_only[0], int(args.plain_only[1]), args.plain_only[2], args.signed,
                    Path(args.plain_only[3]))
        return
    if args.signed:
        args.no_faust = True
    if args.cold:
        args.warm_up = 0
    work = Path(tempfile.mkdtemp(prefix="leadbus-bench-intake-"))
    with KafkaCluster(1, fast_start=False) as cluster:
        bootstrap = cluster.bootstrap_servers
        apply_topics(bootstrap, load_declarations())
        from leadbus.topics import TopicSpec

        apply_topics(bootstrap, [TopicSpec("bench.plain.out", 6, 1, 1, {})])
        broker = cluster.nodes[0].process
        assert broker is not None
        # The project's root only: this folder's own modules (core.py…) must not shadow anything.
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), root) if p)}
        bench = Bench(bootstrap, broker.pid, Traffic(bootstrap, seed=4), work, env, args.signed)
        if args.signed:
            _signing_publishers(bootstrap, bench.traffic, bench.clock)
        warm = (0, 0)
        if not args.cold:
            # The transactional paths compiled before timing, as on a broker that has been running
            # (bench/broker_cpu.py), then the engines' own paths: the same for both.
            warm = (warm_transactions(bootstrap), bench.warm_up(args.warm_up))
        # The broker's upkeep (controller, group and log housekeeping, JVM) runs whatever the traffic: timed idle.
        idle_began, broker_idle = time.monotonic(), cpu_seconds(broker.pid)
        time.sleep(5)
        bench.upkeep = (cpu_seconds(broker.pid) - broker_idle) / (time.monotonic() - idle_began) * 1e6

        if args.side_by_side:
            n = bench.publish(args.leads)
            since = time.time() * 1000
            plain_proc = bench.plain_process(n, stdout=subprocess.DEVNULL)
            stage = bench.stage_process()
            bench.judged += n
            plain_proc.wait(900)
            wait_for(bootstrap, [LEADS_ACCEPTED, LEADS_REJECTED], bench.judged)
            stage.terminate()
            stage.wait(30)
            plain = span_rate(bootstrap, ["bench.plain.out"], n)
            staged = stage_rate(bootstrap, n, since)
            print(f"intake events {n} ({_kind(args.signed)}), side by side on one broker; {_warmed(warm)}")
            print(f"plain confluent-kafka loop, at-least-once : {plain:9.0f} events/s")
            print(f"leadbus stage, transactional exactly-once : {staged:9.0f} events/s   ratio {staged / plain:.2f}")
            return

        print(f"intake events {args.leads} per round ({_kind(args.signed)}), {args.rounds} rounds alternating which "
              f"engine goes first; CPU per event: the engine's process, the broker's")
        print(_warmed(warm))
        rounds = []
        for number in range(args.rounds):
            n = bench.publish(args.leads)
            plain_first = number % 2 == 0
            if plain_first:
                plain, plain_cpu, phases = bench.plain_round(n)
                staged, stage_cpu, stage_walls = bench.stage_round(n)
            else:
                staged, stage_cpu, stage_walls = bench.stage_round(n)
                plain, plain_cpu, phases = bench.plain_round(n)
            rounds.append(Round(plain, staged, plain_cpu, stage_cpu))
            print(f"round {number + 1} ({'plain' if plain_first else 'stage'} first, {n} events)", flush=True)
            _print(plain, staged, plain_cpu, stage_cpu)
            print("    " + plain_phases(phases))
            print("    " + stage_walls, flush=True)
        plain, staged = _median([r.plain for r in rounds]), _median([r.staged for r in rounds])
        print(f"median of {len(rounds)} rounds: plain {plain:.0f} events/s, stage {staged:.0f} events/s, "
              f"ratio {_median([r.staged / r.plain for r in rounds]):.2f} (rounds: "
              f"{', '.join(f'{r.staged / r.plain:.2f}' for r in rounds)}); CPU µs/event plain "
              f"{_median([r.plain_cpu.engine for r in rounds]):.0f} + broker "
              f"{_median([r.plain_cpu.broker for r in rounds]):.0f} (JIT "
              f"{_median([r.plain_cpu.jit for r in rounds]):.0f}), stage "
              f"{_median([r.stage_cpu.engine for r in rounds]):.0f} + broker "
              f"{_median([r.stage_cpu.broker for r in rounds]):.0f} (JIT "
              f"{_median([r.stage_cpu.jit for r in rounds]):.0f}); CPU ratio "
              f"{_median([r.plain_cpu.engine / max(r.stage_cpu.engine, 1e-9) for r in rounds]):.2f}", flush=True)

        if args.no_faust:
            _outcomes(bootstrap)
            return
        # From the beginning of the intake topics in a group of its own: the warm-up and every round, timed over
        # the last round's worth.
        faust = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pathlib import Path; from leadbus.processors.faust_app import "
             f"run_worker; sys.argv=['faust','worker']; run_worker({bootstrap!r}, Path({str(work / 'faust')!r}))"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(bootstrap, [LEADS_ACCEPTED, LEADS_REJECTED], 2 * bench.judged)
        faust.terminate()
        faust.wait(30)
        fausted = span_rate(bootstrap, [LEADS_ACCEPTED, LEADS_REJECTED], args.leads)
    print(f"faust-streaming agent, at-least-once      : {fausted:9.0f} events/s   ratio {fausted / plain:.2f} "
          f"(of the plain loop's median)")


@dataclass
class Round:
    plain: float
    staged: float
    plain_cpu: Cpu
    stage_cpu: Cpu


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _warmed(warm: tuple[int, int]) -> str:
    transactions, events = warm
    if not transactions:
        return "broker cold (--cold): its JIT compiles the paths while the engines are timed"
    return (f"broker warmed before timing, the same for both engines: {transactions} transactions of its own "
            f"(bench/broker_cpu.py), then {events} events through the plain loop and the stage (same topics, groups "
            f"and state as the rounds)")


@dataclass
class Cpu:
    engine: float  # µs per event, the engine's whole process
    broker: float  # µs per event, over the same stretch
    load: float  # the higher 1-minute load average of its start and end
    upkeep: float  # µs per event of the broker's that it spends idle too (its CPU/s idle × the engine's time)
    main: float  # µs per event, the engine's main thread (Python: the step and the loop; the rest is librdkafka's)
    jit: float  # µs per event of the broker's spent by its JIT compiler threads (paths used for the first time)

    def __str__(self) -> str:
        return (f"CPU {self.engine:.0f} (main thread {self.main:.0f}) + broker {self.broker:.0f} µs/event, of which "
                f"broker upkeep {self.upkeep:.0f}, JIT compiling {self.jit:.0f}; load average {self.load:.1f}")


def _outcomes(bootstrap: str) -> None:
    """What the stage made of the events: a bench of refusals would time the wrong path."""
    catalog = packaged_catalog()
    reasons = Counter(decode(catalog, m.value() or b"")[1]["reason"] for m in read_all(bootstrap, LEADS_REJECTED))
    refused = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()) or "none"
    print(f"stage outcomes: accepted {len(read_all(bootstrap, LEADS_ACCEPTED))}, refused {refused}")


def _kind(signed: bool) -> str:
    return "simulated agencies, all valid" + (", signed: Ed25519, seal v2 chains per lane" if signed else "")


def _signing_publishers(bootstrap: str, traffic: Traffic, since: datetime) -> None:
    """One key per agency (publisher id = the agency: it speaks for every province), registered before any event,
    and the traffic's publishers sealing with it."""
    keys = []
    agencies = {lead.publisher.agency for lead in TrafficGenerator(seed=4).leads(2000, since, timedelta(seconds=1))}
    for number, agency in enumerate(sorted(agencies)):
        private = Ed25519PrivateKey.from_private_bytes(bytes([number + 1]) * 32)
        raw = public_bytes(private.public_key())
        keys.append(PublisherKey(agency, key_id_of(raw), raw, since - timedelta(days=1), since - timedelta(days=1)))
        traffic.publishers[agency] = Publisher(agency, "11", bootstrap_servers=bootstrap,
                                               sealer=SigningSealer(agency, private))
    write_keys(bootstrap, keys)


def _print(plain: float, staged: float, plain_cpu: Cpu, stage_cpu: Cpu) -> None:
    print(f"plain confluent-kafka loop, at-least-once : {plain:9.0f} events/s              ({plain_cpu})")
    print(f"leadbus stage, transactional exactly-once : {staged:9.0f} events/s   ratio {staged / plain:.2f}   "
          f"({stage_cpu}; CPU ratio {plain_cpu.engine / max(stage_cpu.engine, 1e-9):.2f})")


if __name__ == "__main__":
    main()
