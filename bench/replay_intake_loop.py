"""The replay's verification of the intake topics in process, without Kafka: CPU per record of the replay's loop.

    python bench/replay_intake_loop.py [--leads N] [--rounds R] [--profile FILE]

N simulated leads (the replay bench's generator and seed) are sealed as `bench/replay.py` publishes them (each publisher
its Ed25519 key, seal v2 chained per lane, partition = CRC-32 of the key % 3), with the broker's headers (a tuple of
(name, value) pairs) and one timestamp per record. Then, each the best of R rounds of CPU time (`time.process_time`,
the collector off as in a replay), over the records of each partition in offset order:

* records:  the `ReplayRecord`s alone, made as `KafkaSource` makes them (the floor of any replay);
* plain:    the replay's loop without verifiers (`leadbus replay` without --verify: the summary's tally);
* verify:   the replay's loop with every verifier `replay(verify=True)` installs for the intake topics alone (the
            standard ones, the bus's seal verifier, the stage seal verifier vouching), and their `finish`;
* split:    what a 2-process replay adds: the intake check's state sent back from the other process and merged:
            pickled whole and read again ("whole", as before `leadbus.audit.processes`), and as hashes, the leads
            this process also read asked back ("hashes"; measured where the tree has it), interleaved.

`--unsigned`: the same records without their seals (an agency that does not sign), no key registered.

For an A/B of a change to the intake path: run it with `PYTHONPATH` at each tree, interleaved. The figures are CPU per
record of one process, which a shared machine disturbs far less than the rates of `bench/replay.py`.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadbus.audit import replay as replay_module
from leadbus.audit.seals import BusSealVerifier
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import AcceptedLeads, Decodes, IntakeLeads, ReplayRecord, standard_verifiers
from leadbus.avro import encode_object, packaged_catalog
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes
from leadbus.topics import intake_topic

CATALOG = packaged_catalog()
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Row = tuple[str, int, bytes, bytes, tuple[tuple[str, bytes], ...], int]


def traffic(leads: int) -> tuple[list[Row], KeyRegistry]:
    """The sealed intake records of `leads` simulated leads, partition after partition in offset order, and the
    registry of their publishers' keys."""
    lead_schema = CATALOG.latest("cn.leadbus.CaseLead")
    generator = TrafficGenerator(seed=11, same_suspect_share=0.25)
    sealers: dict[str, SigningSealer] = {}
    registry = KeyRegistry()
    rows: list[Row] = []
    stamp = int((T0 + timedelta(days=1)).timestamp() * 1000)
    for i, lead in enumerate(generator.leads(leads, T0, timedelta(seconds=0.5))):
        topic = intake_topic(lead.publisher.agency)
        publisher = f"{lead.publisher.agency}.{lead.publisher.province}"
        sealer = sealers.get(publisher)
        if sealer is None:
            private = Ed25519PrivateKey.from_private_bytes(zlib.crc32(publisher.encode()).to_bytes(4, "big") * 8)
            sealer = sealers[publisher] = SigningSealer(publisher, private, MemorySequences())
            raw = public_bytes(private.public_key())
            registry.apply(PublisherKey(publisher, key_id_of(raw), raw, T0 - timedelta(days=1),
                                        T0 - timedelta(days=1)))
        value = encode_object(lead_schema, lead)
        key = lead.lead_id.encode()
        partition = zlib.crc32(key) % 3
        headers = tuple(sealer.seal(topic, key, value, partition))
        rows.append((topic, partition, key, value, headers, stamp + i))
    rows.sort(key=lambda row: (row[0], row[1]))  # stable: each partition in produce (offset) order
    return rows, registry


def records_of(rows: list[Row]) -> list[ReplayRecord]:
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for topic, partition, key, value, headers, stamp in rows:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        record = ReplayRecord(topic, partition, offset, stamp, key, value, tuple(headers) if headers else (), CATALOG)
        if offset == 0:
            record.opens_log = True
        out.append(record)
    return out


def verifiers_of(registry: KeyRegistry) -> list[Any]:
    """What `replay(verify=True)` installs for a Kafka replay of the intake topics alone."""
    stage = StageSealVerifier(registry)
    stage.vouching = True
    verifiers: list[Any] = [*standard_verifiers(), BusSealVerifier(registry), stage]
    for verifier in verifiers:
        if isinstance(verifier, AcceptedLeads):
            verifier.trust_stage_seals = True
            verifier.keep_sources = False
        if isinstance(verifier, IntakeLeads):
            verifier.keep_sources = False
        if isinstance(verifier, Decodes):
            verifier.seals_verified = True  # (an attribute the trees before it ignore)
    return verifiers


def run(rows: list[Row], verifiers: list[Any]) -> replay_module.ReplayReport:
    gc.disable()
    report = replay_module.ReplayReport("bench")
    try:
        replay_module._loop(records_of(rows), verifiers, None, None, None, report, None, None)
        replay_module.finish(verifiers, report)
    finally:
        replay_module._collect_again()
    return report


def best(rounds: int, work: Callable[[], Any], count: int) -> float:
    """The least CPU time of `rounds` calls of `work`, in µs per one of `count` records."""
    least = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        work()
        least = min(least, time.process_time() - began)
    return least / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="cProfile the verified loop once into this file")
    parser.add_argument("--unsigned", action="store_true",
                        help="the same records unsigned (the SDK's content-type header alone), no key registered")
    args = parser.parse_args()
    rows, registry = traffic(args.leads)
    if args.unsigned:
        rows = [(t, p, k, v, h[:1], ms) for t, p, k, v, h, ms in rows]
        registry = KeyRegistry()
    n = len(rows)
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"

    def verify() -> None:
        report = run(rows, verifiers_of(registry))
        assert not report.failures, report.failures[:3]

    def halves() -> tuple[IntakeLeads, IntakeLeads]:
        # the other process's half (every other partition) and this one's, each read by verifiers of its own
        parts = sorted({(r[0], r[1]) for r in rows})
        mine, other = verifiers_of(registry), verifiers_of(registry)
        run([r for r in rows if parts.index((r[0], r[1])) % 2 == 0], mine)
        run([r for r in rows if parts.index((r[0], r[1])) % 2], other)
        return next(v for v in mine if isinstance(v, IntakeLeads)), next(v for v in other if isinstance(v, IntakeLeads))

    def parent(intake: IntakeLeads) -> IntakeLeads:
        again = IntakeLeads()
        again._seen = dict(intake._seen)
        return again

    def whole(intake: IntakeLeads, other: IntakeLeads) -> float:
        """The other's intake check pickled back whole and merged (the hand-back before `leadbus.audit.processes`)."""
        began = time.process_time()
        intake.merge(pickle.loads(pickle.dumps(other)))
        return time.process_time() - began

    def hashed(intake: IntakeLeads, other: IntakeLeads) -> float:
        """The other's leads sent back as hashes, those the parent also holds asked back, merged."""
        from leadbus.audit import processes

        began = time.process_time()
        sent = pickle.loads(pickle.dumps(processes.sent_intake(other._seen, other.sources, other.ranges)))
        ask = processes.wanted({hash(i) for i in intake._seen}, [processes.hashes_of(sent)])[0]
        again = IntakeLeads()
        again._seen = pickle.loads(pickle.dumps(processes.picked(other._seen, ask)))
        again.sources, again.ranges = sent.sources, sent.ranges
        intake.merge(again)
        return time.process_time() - began

    if args.profile:
        import cProfile

        cProfile.runctx("verify()", globals(), {"verify": verify}, args.profile)
    floor = best(args.rounds, lambda: records_of(rows), n)
    plain = best(args.rounds, lambda: run(rows, []), n)
    verified = best(args.rounds, verify, n)
    mine, other = halves()
    try:
        import leadbus.audit.processes  # noqa: F401 - a tree from before the hashes measures the whole hand-back alone
        ways = {"whole": whole, "hashes": hashed}
    except ImportError:
        ways = {"whole": whole}
    spent: dict[str, list[float]] = {name: [] for name in ways}
    gc.disable()
    for _ in range(args.rounds):  # interleaved, each on a fresh copy of this process's leads
        for name, way in ways.items():
            spent[name].append(way(parent(mine), other))
    gc.enable()
    kind = "unsigned" if args.unsigned else "sealed"
    back = ", ".join(f"{name} {min(times) / n * 1e6:.2f} µs" for name, times in spent.items())
    ratio = (f" (hashes / whole {min(spent['hashes']) / min(spent['whole']):.2f})" if "hashes" in spent else "")
    print(f"intake loop over {n} {kind} intake records: records alone {floor:.2f} µs, plain {plain:.2f} µs, "
          f"verify {verified:.2f} µs CPU per record (best of {args.rounds}); a split's hand-back per record: "
          f"{back}{ratio} ({load})")


if __name__ == "__main__":
    main()
