"""The replay's verification in process, without Kafka: CPU per record of the field picker and of the replay's loop.

    python bench/replay_loop.py [--leads N] [--rounds R]

N simulated leads (the replay bench's generator and seed) go through intake's core and the linking handler, as
`bench/replay.py` fills the bus; their CaseUpdated are sealed by a linking `StageSealer` in transactions of 200. Then,
each the best of R rounds of CPU time (`time.process_time`, the collector off as in a replay):

* the picker (`ReplayRecord.picked`'s compiled reader) on every CaseUpdated and LeadAccepted, and on hub cases (one
  case's event with 50 and 500 members);
* the replay's loop (`leadbus.audit.replay._loop`: every standard verifier and the stage seal check, vouching) over the
  sealed `leadbus.cases` records.

For an A/B of a change to the picker or the checks: run it with `PYTHONPATH` at each tree, interleaved. The figures
are CPU per record of one process, which a shared machine disturbs far less than the rates of `bench/replay.py`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadbus.audit import replay as replay_module
from leadbus.audit.picker import picker
from leadbus.audit.rebuild import DictState
from leadbus.audit.stage_seals import StageSealVerifier
from leadbus.audit.verification import ACCEPTED_HEAD, AcceptedLeads, ReplayRecord, standard_verifiers
from leadbus.avro import decode, encode, encode_object, packaged_catalog
from leadbus.processors.core.intake import Acceptance, accepted_record, examine
from leadbus.processors.core.records import Record, Source
from leadbus.processors.linking import LinkingHandler
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of
from leadbus.stage_seals import StageSealer, partition_for
from leadbus.topics import CASES, LEADS_ACCEPTED, intake_topic

CATALOG = packaged_catalog()
T0 = datetime(2026, 11, 1, tzinfo=UTC)
CASE_HEAD = ("case_id", "version", "merged_into")


def traffic(leads: int) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """The LeadAccepted of `leads` simulated leads, and the (Kafka key, value) of the CaseUpdated derived from them."""
    lead_schema, accepted_schema = CATALOG.latest("cn.leadbus.CaseLead"), CATALOG.latest("cn.leadbus.LeadAccepted")
    handler, state = LinkingHandler(CATALOG), DictState()
    accepted: list[bytes] = []
    cases: list[tuple[bytes, bytes]] = []
    generator = TrafficGenerator(seed=11, same_suspect_share=0.25)
    for i, lead in enumerate(generator.leads(leads, T0, timedelta(seconds=0.5))):
        outcome = examine(encode_object(lead_schema, lead), Source(intake_topic(lead.publisher.agency), 0, i), CATALOG,
                          T0 + timedelta(days=1))
        assert isinstance(outcome, Acceptance), outcome
        value = encode(accepted_schema, accepted_record(outcome, T0 + timedelta(days=1)))
        accepted.append(value)
        result = handler.handle(Record(LEADS_ACCEPTED, 0, i, lead.lead_id.encode(), value, (), 0), state,
                                T0 + timedelta(days=1))
        state.apply(result.state)
        cases += [(o.key or b"", o.value or b"") for o in result.outputs if o.topic == CASES]
    return accepted, cases


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
    parser.add_argument("--leads", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    accepted, cases = traffic(args.leads)
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"

    case_schema = CATALOG.by_fingerprint(cases[0][1][2:10])
    accepted_schema = CATALOG.by_fingerprint(accepted[0][2:10])
    assert case_schema is not None and accepted_schema is not None
    pick_case, pick_accepted = picker(case_schema, CASE_HEAD), picker(accepted_schema, ACCEPTED_HEAD)
    assert pick_case is not None and pick_accepted is not None
    bodies = [value for _, value in cases]
    print(f"picker: CaseUpdated {best(args.rounds, lambda: [pick_case(b) for b in bodies], len(bodies)):.2f} µs, "
          f"LeadAccepted {best(args.rounds, lambda: [pick_accepted(b) for b in accepted], len(accepted)):.2f} µs "
          f"CPU per record ({load})")
    _, event = decode(CATALOG, bodies[0])
    for members in (50, 500):
        hub = dict(event, members=[f"{i:08d}-0cd7-4b2b-a5d4-5380bf94b9a1" for i in range(members)],
                   reporters=[{"agency": "MPS", "province": f"{i % 34:02d}"} for i in range(members // 5)],
                   identifiers=[{"kind": "phone", "value": f"+86138{i:08d}"} for i in range(members // 2)])
        body = encode(case_schema, hub)
        print(f"picker: hub case of {members} members ({len(body):,} bytes) "
              f"{best(args.rounds, lambda b=body: [pick_case(b) for _ in range(500)], 500):.2f} µs")

    linking = StageSealer("LEADBUS-linking", Ed25519PrivateKey.from_private_bytes(bytes(range(32))), "00000000000000c2")
    rows: list[tuple[str, int, bytes, bytes, list[tuple[str, bytes | None]]]] = []
    for start in range(0, len(cases), 200):
        batch: list[Any] = [(CASES, partition_for(k, 3), k, v, []) for k, v in cases[start:start + 200]]
        rows += [(t, p, k, v, list(h)) for (t, p, k, v, _), h in zip(batch, linking.seal(batch), strict=True)]
        linking.commit()
    rows.sort(key=lambda row: row[1])  # partition after partition, each in offset order
    registry = KeyRegistry()
    registry.apply(PublisherKey(linking.signer, key_id_of(linking.public_key), linking.public_key, T0, T0,
                                require_signed=False))

    def replay_cases() -> None:
        stage = StageSealVerifier(registry)
        stage.vouching = True
        verifiers = [*standard_verifiers(), stage]
        for verifier in verifiers:
            if isinstance(verifier, AcceptedLeads):
                verifier.trust_stage_seals = True
        offsets: Counter[tuple[str, int]] = Counter()
        # a record's time as Kafka gives it (the key is valid then): a zero time is judged the slow way, as it should be
        stamp = int((T0 + timedelta(days=1)).timestamp() * 1000)
        records = []
        gc.disable()  # as a replay reads (`leadbus.audit.replay._run`): records are made with the collector off
        for topic, partition, key, value, headers in rows:
            records.append(ReplayRecord(topic, partition, offsets[(topic, partition)], stamp, key, value, headers,
                                        CATALOG))
            offsets[(topic, partition)] += 1
        report = replay_module.ReplayReport("bench")
        try:
            replay_module._loop(records, verifiers, None, None, None, report, None, None)
            replay_module.finish(verifiers, report)
        finally:
            replay_module._collect_again()
        assert not [f for f in report.findings if f.failure], report.findings[:3]
        assert all(r.trusted for r in records)

    print(f"replay loop over {len(rows)} sealed leadbus.cases records (every verifier, stage seals vouching; records "
          f"built too): {best(args.rounds, replay_cases, len(rows)):.2f} µs CPU per record ({load})")


if __name__ == "__main__":
    main()
