"""Signed, sequenced events against a real broker (issue 12, "What it must show", second bullet).

Keys are made and registered with the `leadbus keys` commands; events are published through the
SDK with a `SigningSealer`, and copied, altered, forged, replayed and reordered with a raw producer.
Each bad one must reach `leadbus.leads.rejected` with its reason, the worker alive; each good one
is accepted once, with its seal, re-verifiable by anyone from the accepted event alone.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from leadbus.avro import decode, encode, packaged_catalog
from leadbus.cli import app
from leadbus.models import CaseLead
from leadbus.processors.core.intake import seal_of_accepted
from leadbus.producers import Publisher
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from leadbus.producers.simulator import TrafficGenerator
from leadbus.publisher_keys import read_registry
from leadbus.signing import reverify, sign
from leadbus.topics import LEADS_ACCEPTED, LEADS_REJECTED, intake_topic
from tests.kafka_helpers import read_all
from tests.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.integration

CATALOG = packaged_catalog()
runner = CliRunner()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def worker(cluster, tmp_path_factory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("signed-worker")
    proc = start_worker(cluster.bootstrap_servers, work / "state", "signed", work / "logs")
    try:
        yield {"proc": proc, "log": work / "logs" / "signed.log", "work": work}
    finally:
        stop(proc)


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _new_key(keys: Path, name: str) -> Path:
    path = keys / f"{name}.key"
    _cli("keys", "generate", "--out", str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    return path


def _register(bootstrap: str, publisher: str, key: Path) -> None:
    _cli("keys", "register", publisher, "--public-key", str(key) + ".pub", "-b", bootstrap)


def _leads(seed: int, n: int, agency: str, province: str) -> list[CaseLead]:
    start = datetime.now(UTC) - timedelta(hours=2)
    out = []
    for lead in TrafficGenerator(seed=seed).leads(n, start, timedelta(seconds=1)):
        doc = lead.model_dump(mode="json")
        doc["publisher"] = {"agency": agency, "province": province, "unit": None}
        out.append(CaseLead.model_validate(doc))
    return out


def _accepted(bootstrap: str) -> list[dict[str, Any]]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_ACCEPTED)]


def _rejected(bootstrap: str) -> list[dict[str, Any]]:
    return [decode(CATALOG, m.value())[1] for m in read_all(bootstrap, LEADS_REJECTED)]


def _raw(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "log_level": 3})


def _signed_publisher(bootstrap: str, agency: str, province: str, key: Path,
                      sequences: MemorySequences | None = None) -> Publisher:
    sealer = SigningSealer(f"{agency}.{province}", load_private_key(key.read_bytes()), sequences or MemorySequences())
    return Publisher(agency, province, bootstrap_servers=bootstrap, sealer=sealer)


def test_keys_commands_have_help() -> None:
    for command in (["keys"], ["keys", "generate"], ["keys", "register"], ["keys", "rotate"], ["keys", "revoke"],
                    ["keys", "list"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, result.output


def test_forged_altered_replayed_reordered_and_revoked_are_dead_lettered(cluster, worker, keys) -> None:
    bootstrap = cluster.bootstrap_servers
    agency, province = "NCAC", "11"
    topic = intake_topic(agency)
    key = _new_key(keys, "NCAC.11")
    _register(bootstrap, "NCAC.11", key)
    private = load_private_key(key.read_bytes())

    # Valid signed events through the SDK: accepted once each, seal kept, re-verifiable by anyone.
    good = _leads(1201, 12, agency, province)
    pub = _signed_publisher(bootstrap, agency, province, key)
    deliveries = pub.wait([pub.publish(lead) for lead in good])
    assert len({d.partition for d in deliveries}) > 1, "the SDK spreads a publisher over its topic's partitions"
    wait_until(lambda: {x["lead"]["lead_id"] for x in _accepted(bootstrap)} >= {x.lead_id for x in good}, 90,
               "the signed leads to be accepted")
    registry = read_registry(bootstrap)
    mine = [x for x in _accepted(bootstrap) if x["lead"]["publisher"]["agency"] == agency]
    assert Counter(x["lead"]["lead_id"] for x in mine) == Counter(x.lead_id for x in good)
    for event in mine:
        seal = seal_of_accepted(event)
        assert seal is not None and seal.publisher == "NCAC.11"
        assert "SEQUENCE_GAP" not in [w["code"] for w in event["warnings"]]
        assert event["publisher_sequence"] == seal.sequence
        kept = registry.get(seal.publisher, seal.key_id)
        assert kept is not None and reverify(kept, seal, event["source"]["topic"], bytes(event["original"]))
    lanes: dict[int, list[int]] = {}
    for event in mine:
        lanes.setdefault(event["source"]["partition"], []).append(event["publisher_sequence"])
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in lanes.values()), lanes

    # The bad ones, by hand, on the partition the publisher would use.
    originals = {m.value(): m for m in read_all(bootstrap, topic)}
    victim = next(iter(originals.values()))
    partition, value, headers = victim.partition(), victim.value(), list(victim.headers())
    raw = _raw(bootstrap)
    expected: list[tuple[str, bytes]] = []

    raw.produce(topic, value=value, headers=headers, partition=partition, key=b"replayed")  # byte for byte
    expected.append(("SEQUENCE_REPLAYED", value))
    altered = value[:-1] + bytes([value[-1] ^ 1])
    raw.produce(topic, value=altered, headers=headers, partition=partition)
    expected.append(("BAD_SIGNATURE", altered))
    (lead,) = _leads(1202, 1, agency, province)
    fresh = encode(CATALOG.latest("cn.leadbus.CaseLead"), lead.to_avro())
    impostor = load_private_key(_new_key(keys, "impostor").read_bytes())
    forged = sign(impostor, "NCAC.11", topic, partition, 1000, fresh)
    forged_headers = [(k, v) for k, v in sign(private, "NCAC.11", topic, partition, 1000, fresh).headers()
                      if k != "leadbus-signature"] + [("leadbus-signature", forged.signature)]
    raw.produce(topic, value=fresh, headers=forged_headers, partition=partition)  # the key id of NCAC.11, not its key
    expected.append(("BAD_SIGNATURE", fresh))
    raw.produce(topic, value=value, headers=headers, partition=(partition + 1) % 3)  # copied to another partition
    expected.append(("WRONG_PARTITION", value))
    unsigned = encode(CATALOG.latest("cn.leadbus.CaseLead"), _leads(1203, 1, agency, province)[0].to_avro())
    raw.produce(topic, value=unsigned, partition=partition)
    expected.append(("UNSIGNED", unsigned))

    # Reordered: the publisher's next two numbers in this lane, sent the wrong way round.
    top = max(lanes.get(partition, [0]))
    later_lead, earlier_lead = _leads(1204, 2, agency, province)
    later = encode(CATALOG.latest("cn.leadbus.CaseLead"), later_lead.to_avro())
    earlier = encode(CATALOG.latest("cn.leadbus.CaseLead"), earlier_lead.to_avro())
    raw.produce(topic, value=later, partition=partition,
                headers=sign(private, "NCAC.11", topic, partition, top + 2, later).headers())
    raw.produce(topic, value=earlier, partition=partition,
                headers=sign(private, "NCAC.11", topic, partition, top + 1, earlier).headers())
    expected.append(("SEQUENCE_REORDERED", earlier))
    assert raw.flush(30) == 0

    wait_until(lambda: len([r for r in _rejected(bootstrap) if r["publisher_agency"] == agency]) >= len(expected),
               90, "every bad event to be dead-lettered")
    # Revoked: from the revocation on, every event under the key is refused.
    key_id = registry.keys_of("NCAC.11")[0].key_id
    _cli("keys", "revoke", "NCAC.11", key_id, "--reason", "compromised in test", "-b", bootstrap)
    time.sleep(2)  # the worker polls the registry every 0.5 s
    (after_revocation,) = _leads(1205, 1, agency, province)
    revoked_value = encode(CATALOG.latest("cn.leadbus.CaseLead"), after_revocation.to_avro())
    pub.wait([pub.publish(after_revocation)])
    expected.append(("KEY_REVOKED", revoked_value))
    wait_until(lambda: len([r for r in _rejected(bootstrap) if r["publisher_agency"] == agency]) >= len(expected),
               90, "the event under the revoked key to be dead-lettered")
    time.sleep(2)

    letters = [r for r in _rejected(bootstrap) if r["publisher_agency"] == agency]
    got = Counter((r["reason"], bytes(r["original"])) for r in letters)
    assert got == Counter(expected), [(r["reason"], r["message"]) for r in letters]
    assert all(r["source"]["topic"] == topic for r in letters)
    accepted = Counter(x["lead"]["lead_id"] for x in _accepted(bootstrap))
    assert accepted[later_lead.lead_id] == 1, "the later one of the reordered pair was accepted"
    (later_event,) = [x for x in _accepted(bootstrap) if x["lead"]["lead_id"] == later_lead.lead_id]
    gaps = [w for w in later_event["warnings"] if w["code"] == "SEQUENCE_GAP"]
    assert len(gaps) == 1 and f"{top + 1} of NCAC.11" in gaps[0]["message"], later_event["warnings"]
    assert all(accepted[x.lead_id] == 1 for x in good), "valid events accepted once"
    assert accepted[after_revocation.lead_id] == 0 and accepted[lead.lead_id] == 0
    assert worker["proc"].poll() is None, "the worker is alive"


def test_unsigned_publishers_stay_accepted_and_rotation_is_honoured_from_its_time(cluster, worker, keys) -> None:
    bootstrap = cluster.bootstrap_servers
    # An agency that registered no key publishes unsigned as before.
    (plain,) = _leads(1301, 1, "GACC", "44")
    plain_pub = Publisher("GACC", "44", bootstrap_servers=bootstrap)
    plain_pub.wait([plain_pub.publish(plain)])

    old_key, new_key = _new_key(keys, "CNIPA.31-old"), _new_key(keys, "CNIPA.31-new")
    _register(bootstrap, "CNIPA.31", old_key)
    before = _leads(1302, 2, "CNIPA", "31")
    sequences = MemorySequences()  # one publisher id, one numbering: a rotation keeps the sequence file
    old_pub = _signed_publisher(bootstrap, "CNIPA", "31", old_key, sequences)
    old_pub.wait([old_pub.publish(before[0])])
    wait_until(lambda: {x["lead"]["lead_id"] for x in _accepted(bootstrap)} >= {plain.lead_id, before[0].lead_id},
               90, "the unsigned and the old-key lead to be accepted")

    # Rotate with no overlap: the new key from now on, the old one no longer.
    _cli("keys", "rotate", "CNIPA.31", "--public-key", str(new_key) + ".pub", "--overlap", "0s", "-b", bootstrap)
    time.sleep(2)
    after = _leads(1303, 2, "CNIPA", "31")
    new_pub = _signed_publisher(bootstrap, "CNIPA", "31", new_key, sequences)
    new_pub.wait([new_pub.publish(after[0])])
    old_pub.wait([old_pub.publish(before[1])])
    wait_until(lambda: after[0].lead_id in {x["lead"]["lead_id"] for x in _accepted(bootstrap)}
               and before[1].lead_id in {r["lead_id"] for r in _rejected(bootstrap)}, 90,
               "the new key's lead accepted, the old key's refused")
    (refused,) = [r for r in _rejected(bootstrap) if r["lead_id"] == before[1].lead_id]
    assert refused["reason"] == "KEY_EXPIRED", refused["message"]
    assert [r for r in _rejected(bootstrap) if r["publisher_agency"] == "CNIPA"] == [refused]
    (rotated,) = [x for x in _accepted(bootstrap) if x["lead"]["lead_id"] == after[0].lead_id]
    assert "SEQUENCE_GAP" not in [w["code"] for w in rotated["warnings"]], "numbering went on under the new key"
    registry = read_registry(bootstrap)
    new = [k for k in registry.keys_of("CNIPA.31") if k.replaces]
    assert len(new) == 1 and new[0].replaces == registry.keys_of("CNIPA.31")[0].key_id
    assert worker["proc"].poll() is None


# 8 s of publishing in `make test`, 20 s (and a lane of 2,000 sequence numbers) in `make test-faults`; each with
# leads and a publisher of its own, so that both can run on one broker.
@pytest.mark.parametrize(("count", "seed", "province"), [
    pytest.param(800, 1402, "34", id="800-leads"),
    pytest.param(2000, 1401, "32", id="2000-leads", marks=pytest.mark.faults)])
def test_sequences_exactly_once_across_kill_9(cluster, worker, keys, tmp_path, count: int, seed: int,
                                              province: str) -> None:
    """Killed -9 mid-stream, the successor resumes with the lanes as committed: no event refused as a replay,
    none lost, none doubled."""
    stop(worker["proc"])  # this test's workers alone own the partitions
    bootstrap = cluster.bootstrap_servers
    publisher = f"NMPA.{province}"
    key = _new_key(keys, publisher)
    _register(bootstrap, publisher, key)
    leads = _leads(seed, count, "NMPA", province)
    state, logs = tmp_path / "state", tmp_path / "logs"
    first = start_worker(bootstrap, state, "seq-kill-a", logs)
    # count / 100 s of publishing, and the kill at the first accepted lead: mid-stream however fast or loaded the
    # machine
    publishing = threading.Thread(target=_paced, args=(bootstrap, key, leads, 100.0, province))

    def ours(accepted: dict[str, Any]) -> bool:
        return accepted["lead"]["publisher"]["agency"] == "NMPA" and \
            accepted["lead"]["publisher"]["province"] == province
    try:
        wait_until(lambda: "assigned" in (logs / "seq-kill-a.log").read_text(), 60, "the first worker to start",
                   interval=0.2)
        publishing.start()

        def under_way() -> bool:
            return any(ours(x) for x in _accepted(bootstrap))

        wait_until(under_way, 90, "the stream to be under way", interval=0.2)
        first.send_signal(signal.SIGKILL)  # mid-stream: publishing goes on for seconds more
        first.wait(10)
        killed_at = sum(ours(x) for x in _accepted(bootstrap))
    finally:
        stop(first)
    second = start_worker(bootstrap, state, "seq-kill-b", logs)
    try:
        want = {x.lead_id for x in leads}
        wait_until(lambda: {x["lead"]["lead_id"] for x in _accepted(bootstrap)} >= want, 180,
                   "every lead to be accepted after the kill")
        time.sleep(3)
        mine = [x for x in _accepted(bootstrap) if ours(x)]
        assert Counter(x["lead"]["lead_id"] for x in mine) == Counter(want), "none lost, none doubled"
        assert [r for r in _rejected(bootstrap) if r["publisher_agency"] == "NMPA"] == [], "no replay from a restart"
        assert all("SEQUENCE_GAP" not in [w["code"] for w in x["warnings"]] for x in mine), "no gap either"
        assert 0 < killed_at < len(leads), f"the kill came mid-stream ({killed_at} accepted by then)"
    finally:
        publishing.join(60)
        stop(second)


def _paced(bootstrap: str, key: Path, leads: list[CaseLead], rate: float, province: str) -> None:
    pub = _signed_publisher(bootstrap, "NMPA", province, key)
    started = time.monotonic()
    pending = []
    for i, lead in enumerate(leads):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pending.append(pub.publish(lead))
    pub.wait(pending)
