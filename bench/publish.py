"""Publisher SDK throughput against raw confluent-kafka producing the same bytes, same broker, same run.

    python bench/publish.py [--leads N] [--rounds R]

Both sides produce to the same intake topic with the same producer settings (idempotent,
acks=all) and wait for every delivery confirmation. The SDK is measured on `CaseLead` objects
(already validated when built) and on plain dicts/JSON (validated by the SDK on the way), and, as
this run's reference for #16, on dicts through the path before it (`CaseLead.model_validate`, then
the model's attributes encoded). The raw side produces bytes the SDK encoded beforehand.
The SDK's own CPU per lead (process time, a producer that only records) is printed too: it moves
less with the load of a shared machine than throughput does; so is the publishing thread's CPU per lead
in the timed runs (thread time: librdkafka's and the broker's threads left out) and the dict path's
split with no broker (validate to the datum, encode, the rest of `publish`).

Why the dict path's rate lags (#16): the raw side's publishing thread spends ~3-5 µs per lead (produce,
poll); its rate is the broker's. The SDK's thread is the bottleneck: its rate follows its CPU per lead,
and on a loaded machine it is one runnable thread among many while the raw side's work is in librdkafka's
threads and the broker's. Of the dict path's CPU, validating to the datum is about 60 %, encoding 30 %.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.logs import configure_cli_logging
from leadbus.producers import Publisher
from leadbus.producers.publisher import PRODUCER_DEFAULTS, UnsealedEvents
from leadbus.producers.simulator import TrafficGenerator
from leadbus.provisioning.topics import apply_topics
from leadbus.topics import intake_topic, load_declarations

AGENCY = "SAMR"


class ModelPathPublisher(Publisher):
    """The SDK's dict path before #16: every dict through `CaseLead.model_validate`, the model's attributes encoded."""

    def _checked(self, lead: Any) -> tuple[str, bytes, Callable[[], str]]:
        model = self.validate(lead)
        return model.lead_id, self.encode(model), lambda: "<lead>"


class _Recorder:
    """A producer that only records: every partition written to before (the SDK's common path, no record held)."""

    def __init__(self) -> None:
        self.first: dict[int, Any] = {}

    def produce(self, topic: str, **kwargs: Any) -> None:
        if "partition" in kwargs and kwargs["partition"] not in self.first:  # a first record: confirmed at once
            self.first[kwargs["partition"]] = kwargs["on_delivery"]

    def poll(self, timeout: float) -> int:
        reports, self.first = self.first, {}
        for partition, on_delivery in reports.items():
            on_delivery(None, _Written(partition))
        return len(reports)

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=dict.fromkeys(range(12)))})


class _Written:
    def __init__(self, partition: int) -> None:
        self._partition = partition

    def topic(self) -> str:
        return intake_topic(AGENCY)

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return 0


def _cpu_per_lead(kind: type[Publisher], leads: list[Any]) -> float:
    """Microseconds of process time per lead the SDK spends before librdkafka (validate, encode, seal)."""
    pub = kind(AGENCY, "00", bootstrap_servers="unused:1")
    pub._producer = _Recorder()
    start = time.process_time()
    for lead in leads:
        pub.publish(lead)
    return (time.process_time() - start) / len(leads) * 1e6


#: the publishing thread's CPU per lead (µs) of each timed run, by side
THREAD_CPU: dict[str, list[float]] = {}


def _dict_split(leads: list[Any]) -> dict[str, float]:
    """Microseconds per lead of the dict path's steps, no broker: validate (to the datum), encode, the rest."""
    from leadbus.avro import encode
    from leadbus.producers.publisher import _LEAD_DATUMS

    pub = Publisher(AGENCY, "00", bootstrap_servers="unused:1")
    pub._producer = _Recorder()
    now = pub._clock()
    datums = [_LEAD_DATUMS.validate(lead, {"now": now}) for lead in leads]  # kept for encoding, outside the timing
    start = time.process_time()
    for lead in leads:  # nothing kept: 20,000 datums alive would time the garbage collector too
        _LEAD_DATUMS.validate(lead, {"now": now})
    validated = time.process_time()
    for datum in datums:
        encode(pub._schema, datum)
    encoded = time.process_time()
    for lead in leads:
        pub.publish(lead)
    total = time.process_time() - encoded
    per = 1e6 / len(leads)
    validate, enc = (validated - start) * per, (encoded - validated) * per
    return {"validate": validate, "encode": enc, "rest": max(0.0, total * per - validate - enc)}


def _raw(bootstrap: str, payloads: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaSettings(bootstrap).producer(**PRODUCER_DEFAULTS)
    topic = intake_topic(AGENCY)
    headers = UnsealedEvents().seal(topic, b"", b"")
    delivered = [0]

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            delivered[0] += 1

    start, cpu = time.perf_counter(), time.thread_time()
    for key, value in payloads:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    THREAD_CPU.setdefault("raw", []).append((time.thread_time() - cpu) / len(payloads) * 1e6)
    assert delivered[0] == len(payloads), "raw producer lost confirmations"
    return len(payloads) / elapsed


def _sdk(bootstrap: str, leads: list, kind: type[Publisher] = Publisher, side: str = "") -> float:
    pub = kind(AGENCY, "00", bootstrap_servers=bootstrap)
    pub.producer.poll(0)  # connect before timing, as the raw side's first produce does
    start, cpu = time.perf_counter(), time.thread_time()
    futures = [pub.publish(lead) for lead in leads]
    pub.wait(futures, timeout=120)
    elapsed = time.perf_counter() - start
    if side:
        THREAD_CPU.setdefault(side, []).append((time.thread_time() - cpu) / len(leads) * 1e6)
    pub.close()
    return len(leads) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_cli_logging()  # librdkafka's errors as one summarised line each, its transient retries at debug

    gen = TrafficGenerator(seed=42)
    start = datetime.now(UTC) - timedelta(days=1)
    leads = []
    for lead in gen.leads(args.leads * 10, start, timedelta(milliseconds=1)):
        if lead.publisher.agency != AGENCY:
            lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(update={"agency": AGENCY})})
        leads.append(lead)
        if len(leads) == args.leads:
            break
    dicts = [json.loads(lead.to_json()) for lead in leads]
    encoder = Publisher(AGENCY, "00", bootstrap_servers="unused:1")
    payloads = [(lead.lead_id.encode(), encoder.encode(lead)) for lead in leads]
    size = sum(len(v) for _, v in payloads) / len(payloads)
    # The corpora (40,000 leads as models and dict trees, ~3 M objects) are the bench's, not the SDK's: frozen out
    # of the collector, else a full collection now and then walks them all (0.5-0.7 s, seen landing on one dict
    # round: +34 µs per lead), charged to whichever side happens to cross the threshold.
    gc.freeze()

    with KafkaCluster(1, fast_start=False) as cluster:
        apply_topics(cluster.bootstrap_servers, [s for s in load_declarations() if s.name == intake_topic(AGENCY)])
        bootstrap = cluster.bootstrap_servers
        _raw(bootstrap, payloads[:2000])  # warm the broker's JIT before anything is timed
        THREAD_CPU.clear()
        raw, sdk_obj, sdk_dict, sdk_before = [], [], [], []
        for _ in range(args.rounds):
            raw.append(_raw(bootstrap, payloads))
            sdk_obj.append(_sdk(bootstrap, leads, side="objects"))
            sdk_dict.append(_sdk(bootstrap, dicts, side="dicts"))
            sdk_before.append(_sdk(bootstrap, dicts, ModelPathPublisher, side="before"))
    r, o, d = statistics.median(raw), statistics.median(sdk_obj), statistics.median(sdk_dict)
    b = statistics.median(sdk_before)
    cpu: dict[str, list[float]] = {"objects": [], "dicts": [], "before": []}
    for _ in range(args.rounds):
        cpu["objects"].append(_cpu_per_lead(Publisher, leads))
        cpu["dicts"].append(_cpu_per_lead(Publisher, dicts))
        cpu["before"].append(_cpu_per_lead(ModelPathPublisher, dicts))
    c = {name: min(values) for name, values in cpu.items()}
    splits = [_dict_split(dicts) for _ in range(args.rounds)]
    split = min(splits, key=lambda x: sum(x.values()))
    t = {name: statistics.median(values) for name, values in THREAD_CPU.items()}
    print(f"leads per round {args.leads}, mean encoded size {size:.0f} B, rounds {args.rounds} (medians)")
    print(f"raw confluent-kafka, pre-encoded bytes : {r:10.0f} leads/s")
    print(f"SDK, CaseLead objects                  : {o:10.0f} leads/s   ratio {o / r:.2f}")
    print(f"SDK, dicts validated by the SDK        : {d:10.0f} leads/s   ratio {d / r:.2f}")
    print(f"SDK, dicts, the path before #16        : {b:10.0f} leads/s   ratio {b / r:.2f}")
    print(f"SDK CPU per lead, no broker (µs, best of {args.rounds}): objects {c['objects']:.1f}, "
          f"dicts {c['dicts']:.1f}, dicts before #16 {c['before']:.1f}")
    print(f"  dict path split (µs): validate to the datum {split['validate']:.1f}, encode {split['encode']:.1f}, "
          f"rest of publish {split['rest']:.1f}")
    print(f"publishing thread's CPU per lead in the timed runs (µs, medians): raw {t['raw']:.1f}, "
          f"objects {t['objects']:.1f}, dicts {t['dicts']:.1f}, dicts before #16 {t['before']:.1f}")


if __name__ == "__main__":
    main()
