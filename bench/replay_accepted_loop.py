"""The replay's verification of `leadbus.leads.accepted` in process, without Kafka: CPU per record of the replay's loop.

    python bench/replay_accepted_loop.py [--leads N] [--rounds R] [--sources]

N simulated leads (the replay bench's generator and seed) go through intake's core; their LeadAccepted (~2.3 KB each,
the lead inside) are sealed as `bench/replay.py` seals them (intake's `StageSealer`, transactions of 200, one
partition), with one broker timestamp per record. Then, each the best of R rounds of CPU time (`time.process_time`,
the collector off as in a replay), over the records in offset order:

* records:  the `ReplayRecord`s alone (the floor of any replay);
* plain:    the replay's loop without verifiers (`leadbus replay` without --verify);
* verify:   the replay's loop with every verifier `replay(verify=True)` installs for this topic (the standard ones, the
            bus's seal verifier, the stage seal verifier vouching) and their `finish`. Without `--sources` as a replay
            of this topic alone (`--only accepted`: no intake topic, no source kept); with it, as when the intake
            topics are replayed too (each accepted lead's source and the SHA-256 of its `original` kept).

For an A/B of a change to the accepted leads' path: run it at each tree, interleaved (CPU per record of one process).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
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
from leadbus.avro import encode, encode_object, packaged_catalog
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of
from leadbus.stage_seals import StageSealer
from leadbus.topics import LEADS_ACCEPTED, intake_topic

CATALOG = packaged_catalog()
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Row = tuple[bytes, bytes, tuple[tuple[str, bytes | None], ...], int]


def traffic(leads: int) -> tuple[list[Row], KeyRegistry]:
    """The sealed LeadAccepted of `leads` simulated leads in offset order, and the registry holding intake's key."""
    lead_schema, accepted_schema = CATALOG.latest("cn.leadbus.CaseLead"), CATALOG.latest("cn.leadbus.LeadAccepted")
    generator = TrafficGenerator(seed=11, same_suspect_share=0.25)
    values: list[tuple[bytes, bytes]] = []
    for i, lead in enumerate(generator.leads(leads, T0, timedelta(seconds=0.5))):
        outcome = examine(encode_object(lead_schema, lead), Source(intake_topic(lead.publisher.agency), 0, i), CATALOG,
                          T0 + timedelta(days=1))
        assert isinstance(outcome, Acceptance), outcome
        accepted = accepted_record(outcome, T0 + timedelta(days=1))
        values.append((lead.lead_id.encode(), encode(accepted_schema, accepted)))
    intake = StageSealer("LEADBUS-intake", Ed25519PrivateKey.from_private_bytes(bytes(range(32))), "00000000000000b1")
    stamp = int((T0 + timedelta(days=1)).timestamp() * 1000)
    rows: list[Row] = []
    for start in range(0, len(values), 200):
        batch: list[Any] = [(LEADS_ACCEPTED, 0, k, v, []) for k, v in values[start:start + 200]]
        for (_, _, k, v, _), headers in zip(batch, intake.seal(batch), strict=True):
            rows.append((k, v, tuple(headers), stamp + len(rows)))
        intake.commit()
    registry = KeyRegistry()
    registry.apply(PublisherKey(intake.signer, key_id_of(intake.public_key), intake.public_key, T0, T0,
                                require_signed=False))
    return rows, registry


def records_of(rows: list[Row]) -> list[ReplayRecord]:
    out = []
    for offset, (key, value, headers, stamp) in enumerate(rows):
        record = ReplayRecord(LEADS_ACCEPTED, 0, offset, stamp, key, value, headers, CATALOG)
        if offset == 0:
            record.opens_log = True
        out.append(record)
    return out


def verifiers_of(registry: KeyRegistry, sources: bool) -> list[Any]:
    """What `replay(verify=True)` installs for a Kafka replay of the accepted topic (with the intake topics or not)."""
    stage = StageSealVerifier(registry)
    stage.vouching = True
    verifiers: list[Any] = [*standard_verifiers(), BusSealVerifier(registry), stage]
    for verifier in verifiers:
        if isinstance(verifier, AcceptedLeads):
            verifier.trust_stage_seals = True
            verifier.keep_sources = sources
        if isinstance(verifier, IntakeLeads):
            verifier.keep_sources = sources
        if isinstance(verifier, Decodes):
            verifier.seals_verified = True
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
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sources", action="store_true", help="as when the intake topics are replayed too")
    args = parser.parse_args()
    rows, registry = traffic(args.leads)
    n = len(rows)
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"

    def verify() -> None:
        report = run(rows, verifiers_of(registry, args.sources))
        assert not report.failures, report.failures[:3]

    floor = best(args.rounds, lambda: records_of(rows), n)
    plain = best(args.rounds, lambda: run(rows, []), n)
    verified = best(args.rounds, verify, n)
    print(f"accepted loop over {n} sealed accepted records{' (sources kept)' if args.sources else ''}: records alone "
          f"{floor:.2f} µs, plain {plain:.2f} µs, verify {verified:.2f} µs CPU per record (best of {args.rounds}) "
          f"({load})")


if __name__ == "__main__":
    main()
