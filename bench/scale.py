"""Intake scale-out: one worker, then two workers in one group, over the same leads on a fresh broker each.

    python bench/scale.py [--leads N] [--workers 1 2] [--warm-up W] [--warm-rounds R] [--cold] [--fast-broker]

For each worker count: a fresh single-node broker with every declared topic; the workers
(`leadbus process --stage intake`, default worker ids, a state folder each) are started on the
empty topics and waited for until the group is stable with every one of intake's partitions
assigned; W other leads (default 20,000) go through them first, untimed (the broker's JIT compiles the paths
they use then, not while timed; bench/broker_cpu.py), and again, up to R rounds (default 3), until a round costs the
broker's JIT less than 5 µs per lead (a fresh C2 JVM kept compiling: one round left 27-59 µs per event of JIT in
the timed window and slower request handlers, three 11-23); then the same N simulated leads (seed 4, pre-encoded) go
to the intake topics in one burst. The rate is N over the broker-time span from the first examined lead (the
first half's output) to the last accepted one, so start-up and the group join are excluded and both runs
time the same work. Every run also checks the outcome: each lead accepted exactly once.

Beside the rate each run prints where the two cores went, per event, from the first lead fed to the
last accepted (Linux /proc, user + system): the workers', the broker's and this bench's own (feeding the
leads, watching for the end), and the ceiling those allow: cores × 10⁶ / (their sum). Two workers can
only be faster than one while that ceiling is above one worker's rate. It also prints how busy each worker's
main thread (the one running Python: the step and the loop) was over the span: near 100 % with one worker,
one worker is bound by its Python thread; with two workers well below 100 % while the rate is near the
ceiling, the two are bound by the cores they share with the broker, not by their own work.

The bench watches the end by the accepted topic's end offset alone (one small request per second) and
reads the accepted leads once, for the exactly-once check, when that offset says they can all be there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, Message, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker_cpu import broker_threads, jit_seconds, jvm_thread_names, warm_transactions  # bench/, this script's folder

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import CLIENT_CONFIG_ENV, KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.logs import configure_cli_logging
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import INTAKE_BY_LEAD, LEADS_ACCEPTED, intake_topic, load_declarations, stage_group
from tests.kafka_helpers import read_all

CATALOG = packaged_catalog()
ROOT = Path(__file__).resolve().parents[1]
#: A warm-up round whose leads cost the broker's JIT less than this (µs per lead) ends the warm-up: the paths the
#: timed leads take are compiled.
JIT_SETTLED = 5.0


def encoded_leads(n: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of n simulated leads, as the SDK would encode them, before any broker runs."""
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    start = datetime.now(UTC) - timedelta(hours=1)
    return [(intake_topic(lead.publisher.agency), lead.lead_id.encode(), encode(schema, lead.to_avro()))
            for lead in TrafficGenerator(seed=4).leads(n, start, timedelta(milliseconds=1))]


def wait_stable(kafka: KafkaSettings, workers: int, partitions: int, procs: list[subprocess.Popen[bytes]],
                timeout: float = 300) -> list[int]:
    """Partitions per member once the group is stable with `workers` members holding every partition."""
    admin = kafka.admin()
    group = stage_group("intake")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an intake worker exited before the group was stable")
        try:
            described = admin.describe_consumer_groups([group])[group].result(timeout=10)
            counts = sorted(len(m.assignment.topic_partitions) for m in described.members)
            if (described.state == ConsumerGroupState.STABLE and len(counts) == workers
                    and sum(counts) == partitions):
                return counts
        except Exception:  # noqa: BLE001 - the group does not exist until the first worker joins
            pass
        time.sleep(1)
    raise TimeoutError(f"the intake group did not settle on {workers} workers holding {partitions} partitions")


def intake_partitions(kafka: KafkaSettings) -> int:
    meta = kafka.admin().list_topics(timeout=20)
    return sum(len(t.partitions) for name, t in meta.topics.items()
               if name.startswith("leadbus.intake.") or name == INTAKE_BY_LEAD)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a live process, or of one of its threads (Linux /proc)."""
    where = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(where).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    rate: float  # events/s, broker time from the first examined lead to the last accepted
    split: list[int]  # partitions per worker
    workers_cpu: float  # µs per event, all workers together
    broker_cpu: float  # µs per event
    bench_cpu: float  # µs per event: this process feeding the leads and watching for the end
    broker_upkeep: float  # µs per event of the broker's CPU that it spends idle too (its CPU/s idle × the run's time)
    main_busy: list[float]  # per worker, its main thread's (the one running Python) CPU over the run's span, 0-1
    broker_jit: float  # µs per event of the broker's spent by its JIT compiler threads
    broker_by_thread: dict[str, float]  # µs per event of the broker's, by kind of JVM thread (`thread_kind`)
    commits: int  # transactions that wrote to the accepted topic (its commit markers)
    warm_jit: list[float]  # per warm-up round, µs per lead its leads cost the broker's JIT compiler threads

    @property
    def ceiling(self) -> float:
        """Events/s the machine's cores allow at these CPU costs per event."""
        return (os.cpu_count() or 1) * 1e6 / (self.workers_cpu + self.broker_cpu + self.bench_cpu)


def thread_kind(name: str) -> str:
    """A JVM thread's kind (full names, `jvm_thread_names`): Kafka's request handlers and network threads, the group
    and transaction coordinators' threads, the JIT, the collector (the serial collector runs in the `VM Thread`)."""
    for part, kind in (("request-handler", "handlers"), ("network-thread", "network"), ("CompilerThre", "JIT"),
                       ("GC", "GC"), ("VM Thread", "GC"), ("group-coordinator", "groups"),
                       ("TxnMarkerSender", "markers"), ("transaction", "transactions"),
                       ("AddPartitionsTo", "transactions"),
                       ("log-cleaner", "cleaner"), ("scheduler", "scheduler"), ("raft", "controller"),
                       ("controller", "controller")):
        if part in name:
            return kind
    return "other"


def accepted_end(watch: Consumer) -> int:
    """The accepted topic's end offset: its records plus one transaction marker per commit that wrote to it.
    One watcher for the whole wait: a new consumer each second was a new connection each second, and its first
    requests kept the broker's JIT compiling while the workers were timed."""
    meta = watch.list_topics(LEADS_ACCEPTED, timeout=20)
    return sum(int(watch.get_watermark_offsets(TopicPartition(LEADS_ACCEPTED, p), timeout=20)[1])
               for p in meta.topics[LEADS_ACCEPTED].partitions)


def accepted_end_offsets(kafka: KafkaSettings) -> int:
    watch = kafka.consumer(f"bench-scale-end-{uuid.uuid4()}")
    try:
        return accepted_end(watch)
    finally:
        watch.close()


def feed(kafka: KafkaSettings, leads: list[tuple[str, bytes, bytes]]) -> None:
    producer = kafka.producer(**{"enable.idempotence": True, "acks": "all", "linger.ms": 20,
                                 "compression.type": "lz4"})
    for topic, key, value in leads:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("the leads were not all confirmed by the broker")


def wait_accepted(kafka: KafkaSettings, count: int, procs: list[subprocess.Popen[bytes]]) -> list[Message]:
    """Until `count` leads are accepted; them. The end offset counts markers too: once it reaches `count` they may
    all be there; read them then (reading every accepted lead every few seconds took CPU from the workers it was
    timing)."""
    deadline = time.monotonic() + 900
    accepted: list[Message] = []
    watch = kafka.consumer(f"bench-scale-watch-{uuid.uuid4()}")
    try:
        while len(accepted) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{len(procs)} worker(s) did not accept every lead")
            time.sleep(1)
            if accepted_end(watch) >= count:
                accepted = read_all(kafka.bootstrap, LEADS_ACCEPTED)
    finally:
        watch.close()
    return accepted


def run(leads: list[tuple[str, bytes, bytes]], workers: int, work: Path, cold: bool = False,
        warm: list[tuple[str, bytes, bytes]] | None = None, client: dict[str, str] | None = None,
        options: list[str] | None = None, warm_round: int = 20000, fast_broker: bool = False) -> Run:
    """One fresh broker, `workers` intake workers: the rate, the split and the CPU per event of each party.
    The `warm` leads go through the same workers first, untimed, `warm_round` at a time until a round in which the
    broker's JIT compiled less than `JIT_SETTLED` µs per lead (or all of them)."""
    warm = warm or []
    warm_jit: list[float] = []
    # A broker JIT-compiling with C2, as one deployed; `fast_broker`: C1 only, as the tests and the demo run it.
    with KafkaCluster(1, work / f"kafka-{workers}", fast_start=fast_broker) as cluster:
        broker = cluster.nodes[0].process
        assert broker is not None
        bootstrap = cluster.bootstrap_servers
        kafka = KafkaSettings(bootstrap)
        apply_topics(bootstrap, load_declarations())
        if not cold:  # the broker's JIT compiles its produce, fetch and transaction paths here, not while timed
            warm_transactions(bootstrap)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)}
        if client:  # settings on top of the workers' own, as a client settings file gives them
            client_file = work / f"client-{workers}.json"
            client_file.write_text(json.dumps({"bootstrap.servers": bootstrap, **client}))
            env[CLIENT_CONFIG_ENV] = str(client_file)
        procs = []
        for w in range(workers):
            log = open(work / f"worker-{workers}-{w}.log", "wb")  # noqa: SIM115 - handed to the child
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "leadbus.cli", "process", "--stage", "intake", "-b", bootstrap,
                 "--state-dir", str(work / f"state-{workers}-{w}"), *(options or [])],
                stdout=log, stderr=subprocess.STDOUT, env=env))
            log.close()
        try:
            split = wait_stable(kafka, workers, intake_partitions(kafka), procs)
            warm_commits = 0
            used = 0
            while used < len(warm):  # the broker's and the workers' real paths, before timing, until the JIT settles
                part = warm[used:used + warm_round]
                jit_began = jit_seconds(broker_threads(broker.pid))
                feed(kafka, part)
                wait_accepted(kafka, used + len(part), procs)
                used += len(part)
                warm_jit.append((jit_seconds(broker_threads(broker.pid)) - jit_began) * 1e6 / len(part))
                if warm_jit[-1] < JIT_SETTLED:
                    break
            warm = warm[:used]
            if warm:
                warm_commits = accepted_end_offsets(kafka) - len(warm)
            # The broker's upkeep (controller, group and log housekeeping, JVM) runs whatever the traffic: timed idle.
            idle_began, broker_idle = time.monotonic(), cpu_seconds(broker.pid)
            time.sleep(5)
            upkeep = (cpu_seconds(broker.pid) - broker_idle) / (time.monotonic() - idle_began)
            idle_cpu = sum(cpu_seconds(p.pid) for p in procs)
            idle_main = [cpu_seconds(p.pid, p.pid) for p in procs]
            broker_before, bench_before, began = cpu_seconds(broker.pid), time.process_time(), time.monotonic()
            names = jvm_thread_names(broker.pid)
            threads_before = broker_threads(broker.pid, names)
            jit_before = jit_seconds(threads_before)
            since = time.time() * 1000
            feed(kafka, leads)
            accepted = wait_accepted(kafka, len(warm) + len(leads), procs)
            cpu = sum(cpu_seconds(p.pid) for p in procs) - idle_cpu
            main = [cpu_seconds(p.pid, p.pid) - idle for p, idle in zip(procs, idle_main, strict=True)]
            broker_cpu, bench_cpu = cpu_seconds(broker.pid) - broker_before, time.process_time() - bench_before
            threads_after = broker_threads(broker.pid, names)
            jit = jit_seconds(threads_after) - jit_before
            by_kind: Counter[str] = Counter()
            for name, spent in (threads_after - threads_before).items():
                by_kind[thread_kind(name)] += spent
            ends = accepted_end_offsets(kafka)
            upkeep *= time.monotonic() - began
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        ids = Counter(str(decode(CATALOG, m.value())[1]["lead"]["lead_id"]) for m in accepted)
        expected = {key.decode() for _, key, _ in [*warm, *leads]}
        if set(ids) != expected or max(ids.values()) != 1:
            raise AssertionError(f"{workers} worker(s): {len(expected - set(ids))} leads lost, "
                                 f"{sum(1 for c in ids.values() if c > 1)} doubled")
        examined = [m.timestamp()[1] for m in read_all(bootstrap, INTAKE_BY_LEAD) if m.timestamp()[1] >= since]
        final = [m.timestamp()[1] for m in accepted if m.timestamp()[1] >= since]
        # Each commit that wrote to the accepted topic (one partition) left one marker there, the warm-up's included.
        commits = ends - len(accepted) - warm_commits
        span = max((max(final) - min(examined + final)) / 1000.0, 1e-3)
        rate = len(leads) / span
        per_event = 1e6 / len(leads)
        # A main thread's CPU counts from the first lead fed, a little before the span: its busy share is a bound.
        return Run(rate, split, cpu * per_event, broker_cpu * per_event, bench_cpu * per_event, upkeep * per_event,
                   [m / span for m in main], jit * per_event,
                   {k: v * per_event for k, v in by_kind.most_common()}, commits, warm_jit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=40000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warm-rounds", type=int, default=3,
                        help="at most this many warm-up rounds of --warm-up leads each, fewer once the JIT settled")
    parser.add_argument("--warm-up", type=int, default=20000,
                        help="leads through the same workers before timing (other leads than the timed ones)")
    parser.add_argument("--cold", action="store_true",
                        help="no warm-up of each fresh broker: its JIT compiles while the workers are timed")
    parser.add_argument("--fast-broker", action="store_true",
                        help="the broker's JVM compiles with C1 only (-XX:TieredStopAtLevel=1, as in the tests and the "
                             "demo): a fraction of the JIT's start-up CPU, slower request threads")
    parser.add_argument("--client-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a librdkafka setting for the workers' clients (repeatable)")
    parser.add_argument("--worker-option", action="append", default=[], metavar="OPTION",
                        help="an option of `leadbus process` for the workers, e.g. --worker-option=--batch-gap=0.05")
    args = parser.parse_args()
    client = dict(s.split("=", 1) for s in args.client_setting)
    configure_cli_logging()  # librdkafka's errors as one summarised line each, its transient retries at debug
    warm_up = 0 if args.cold else args.warm_up
    everything = encoded_leads(warm_up * args.warm_rounds + args.leads)
    warm, leads = everything[:warm_up * args.warm_rounds], everything[warm_up * args.warm_rounds:]
    work = Path(tempfile.mkdtemp(prefix=f"leadbus-bench-scale-{uuid.uuid4().hex[:6]}-"))
    rates: dict[int, float] = {}
    rounds = (f" per round, up to {args.warm_rounds}, until one costs the broker's JIT < {JIT_SETTLED:g} µs/lead"
              if args.warm_rounds > 1 and not args.cold else "")
    print(f"intake scale-out: {len(leads)} leads, a fresh broker per run"
          f"{' (cold)' if args.cold else ', its transactional paths warmed before timing (bench/broker_cpu.py), then '}"
          f"{'' if args.cold else f'{warm_up} other leads through the same workers'}"
          f"{rounds}, "
          f"exactly-once checked; {os.cpu_count()} cores"
          f"{''.join(f', {s}' for s in [*args.client_setting, *args.worker_option])}"
          f"{', broker JIT C1 only' if args.fast_broker else ''}, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    for workers in args.workers:
        done = run(leads, workers, work, args.cold, warm, client, args.worker_option, warm_up, args.fast_broker)
        rates[workers] = done.rate
        base = rates.get(min(rates))
        ratio = f"   ratio {done.rate / base:.2f}" if base and workers != min(rates) else ""
        print(f"intake, {workers} worker(s) (partitions {'/'.join(map(str, done.split))})"
              f"{'':<{max(0, 12 - len(done.split) * 3)}}: {done.rate:9.0f} events/s{ratio}   "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
        print(f"    CPU µs/event: workers {done.workers_cpu:.0f}, broker {done.broker_cpu:.0f} (of which idle upkeep "
              f"{done.broker_upkeep:.0f}, JIT compiling {done.broker_jit:.0f}), bench feeding and "
              f"watching {done.bench_cpu:.0f} → the {os.cpu_count()} cores allow {done.ceiling:.0f} events/s",
              flush=True)
        print(f"    main thread (Python: the step) of each worker busy "
              f"{', '.join(f'{b:.0%}' for b in done.main_busy)} of the span; CPU "
              f"{sum(done.main_busy) * 1e6 / done.rate:.0f} µs/event of the workers' {done.workers_cpu:.0f}",
              flush=True)
        print(f"    broker µs/event by thread: {', '.join(f'{k} {v:.1f}' for k, v in done.broker_by_thread.items())}; "
              f"{done.commits} transactions to the accepted topic, {len(leads) / max(done.commits, 1):.0f} leads each; "
              f"warm-up rounds' JIT µs/lead {', '.join(f'{j:.0f}' for j in done.warm_jit) or '-'}", flush=True)


if __name__ == "__main__":
    main()
