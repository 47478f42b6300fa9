"""What signing costs per event: the SDK's seal, intake's verification and sequence check, in the same run.

    python bench/signing.py [--leads N]

Measures, over the same simulated leads, the pure intake core (`examine`) on unsigned events and on
signed ones (the difference is the seal verification: header parsing, key lookup, Ed25519 verify),
the sequence check of a lane (`check_sequence` with its state encoded and decoded, as the stage
does), Ed25519 alone, and the SDK's sealing (sequence number + Ed25519 sign). No broker.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.avro import encode, packaged_catalog
from leadbus.processors.core.intake import Source, examine
from leadbus.processors.core.provenance import Lane, check_sequence, verify_event
from leadbus.producers.signing import MemorySequences, SigningSealer
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes


def per_event(fn: Callable[[int], object], n: int, rounds: int = 5) -> float:
    """Median over `rounds` of the mean µs per call of fn(i) for i in range(n), after a warm-up pass."""
    return interleaved([fn], n, rounds)[0]


def interleaved(fns: list[Callable[[int], object]], n: int, rounds: int = 7) -> list[float]:
    """Like `per_event` for several functions, their rounds alternating (a shared machine's load hits all alike)."""
    for fn in fns:
        for i in range(n):
            fn(i)
    results: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            started = time.perf_counter()
            for i in range(n):
                fn(i)
            results[k].append((time.perf_counter() - started) / n * 1e6)
    return [statistics.median(r) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=2000)
    args = parser.parse_args()
    catalog = packaged_catalog()
    schema = catalog.latest("cn.leadbus.CaseLead")
    now = datetime.now(UTC)
    leads = list(TrafficGenerator(seed=12).leads(args.leads, now - timedelta(hours=3), timedelta(seconds=1)))
    values = [encode(schema, lead.to_avro()) for lead in leads]
    topics = [f"leadbus.intake.{lead.publisher.agency}" for lead in leads]

    registry = KeyRegistry()
    sealers: dict[str, SigningSealer] = {}
    for lead in leads:
        publisher = lead.publisher.agency  # an agency-wide key signs for every province
        if publisher not in sealers:
            private = Ed25519PrivateKey.generate()
            raw = public_bytes(private.public_key())
            registry.apply(PublisherKey(publisher, key_id_of(raw), raw, now - timedelta(days=1), now))
            sealers[publisher] = SigningSealer(publisher, private, MemorySequences())
    headers = [sealers[lead.publisher.agency].seal(topics[i], lead.lead_id.encode(), values[i], partition=0)
               for i, lead in enumerate(leads)]
    n = len(leads)
    sources = [Source(t, 0, i) for i, t in enumerate(topics)]

    empty = KeyRegistry()  # unsigned events of publishers that do not sign
    unsigned, signed = interleaved([
        lambda i: examine(values[i], sources[i], catalog, now, keys=empty),
        lambda i: examine(values[i], sources[i], catalog, now, headers=headers[i], keys=registry)], n)
    verify_only = per_event(lambda i: verify_event(headers[i], values[i], topics[i], 0, registry, now), n)
    private = next(iter(sealers.values())).private_key
    public = private.public_key()
    signatures = [private.sign(v) for v in values]
    ed25519 = per_event(lambda i: public.verify(signatures[i], values[i]), n)
    lane = Lane(1000, ((10, 12),))
    lane_bytes = lane.to_bytes()
    sequence = per_event(lambda i: check_sequence(Lane.from_bytes(lane_bytes), 1001).lane.to_bytes(), n)
    fresh = SigningSealer("SAMR", private, MemorySequences())
    sealing = per_event(lambda i: fresh.seal(topics[i], b"k", values[i], partition=i % 3), n)

    size = statistics.mean(len(v) for v in values)
    seal_bytes = statistics.mean(sum(len(k) + len(v) for k, v in h) for h in headers)
    print(f"{n} simulated leads, mean event {size:.0f} bytes; seal headers {seal_bytes:.0f} bytes per event")
    print(f"intake core examine, unsigned event     : {unsigned:8.1f} µs/event")
    print(f"intake core examine, signed event       : {signed:8.1f} µs/event   (+{signed - unsigned:.1f} µs, "
          f"ratio {signed / unsigned:.2f})")
    print(f"  of which verify_event (seal, key, sig): {verify_only:8.1f} µs/event")
    print(f"  Ed25519 verify alone (cryptography)   : {ed25519:8.1f} µs/event")
    print(f"sequence check (lane decode+judge+encode): {sequence:7.1f} µs/event")
    print(f"SDK seal (number + Ed25519 sign)        : {sealing:8.1f} µs/event")


if __name__ == "__main__":
    main()
