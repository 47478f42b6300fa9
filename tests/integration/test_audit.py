"""Auditors on a real broker: verified replay from Kafka and from the archive, tampering caught and located,
and the re-derivation of cases, handover steps and routes.

A stretch of simulated traffic goes through the real intake, linking, handover (a demo calendar in which a
statutory day lasts seconds, so deadlines pass and breaches are recorded) and routing stages, as OS
processes, while simulated officials act on most handovers; the archive sink then archives every topic.
The cluster is this module's own: the tests rewrite topics as someone with administrative access could.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.replay import ReplayOptions, replay
from leadbus.audit.verification import CASE_UPDATED
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.provisioning.topics import apply_topics
from leadbus.sinks.archive import read_manifest
from leadbus.sinks.archive_sink import run_archive
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED, load_declarations
from tests.audit_helpers import Copy, append, rewrite_topic, simulate, stages, wait_settled
from tests.audit_seal import TestSealVerifier, key_id, seal

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
DAY_SECONDS = 4.0
ALL = "^leadbus\\.(intake|leads|cases|handover|region|jurisdiction|liaison|channel|takedown|withdrawals).*"


@dataclass
class Recorded:
    bootstrap: str
    archive: Path
    head: str
    published: int


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path_factory.mktemp("audit-kafka")) as kc:
        apply_topics(kc.bootstrap_servers, load_declarations())
        yield kc


@pytest.fixture(scope="module")
def recorded(cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """A stretch of traffic through the real stages, settled, then archived whole."""
    bootstrap = cluster.bootstrap_servers
    root = tmp_path_factory.mktemp("audit-run")
    with stages(bootstrap, root, day_seconds=DAY_SECONDS):
        stretch = simulate(bootstrap, rate=15, seconds=20)
        wait_settled(bootstrap)
    archive = root / "archive"
    run_archive(bootstrap, [ALL], archive, max_seconds=25, seal_after_seconds=1.0, group=f"audit-{uuid.uuid4()}")
    lines = read_manifest(archive)
    assert lines, "the archive holds the stretch"
    return Recorded(bootstrap, archive, lines[-1].chain, stretch.published)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadbus.cli", *args], capture_output=True, text=True, timeout=600)


def findings(path: Path) -> list[dict[str, Any]]:
    return [f for f in json.loads(path.read_text())["findings"] if f["failure"]]


# -- a normal run ------------------------------------------------------------------------------------------


def test_replay_from_kafka_and_from_the_archive_verifies_and_gives_the_same_events(recorded: Recorded,
                                                                                    tmp_path: Path) -> None:
    kafka_out, archive_out = tmp_path / "kafka.jsonl", tmp_path / "archive.jsonl"
    done = cli("replay", "--topic", ALL, "--verify", "-b", recorded.bootstrap, "--out", str(kafka_out),
               "--report", str(tmp_path / "k.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: 0 failures" in done.stdout
    done = cli("replay", "--topic", ALL, "--verify", "--source", f"archive:{recorded.archive}", "--head", recorded.head,
               "--out", str(archive_out))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = kafka_out.read_text().splitlines()
    assert len(lines) > 3 * recorded.published and kafka_out.read_bytes() == archive_out.read_bytes()
    kinds = {json.loads(line)["type"] for line in lines}
    assert {"cn.leadbus.CaseLead", "cn.leadbus.HandoverDecision", "cn.leadbus.LeadAccepted", CASE_UPDATED,
            "cn.leadbus.HandoverStep", "cn.leadbus.RegionalBulletin"} <= kinds
    breaches = [json.loads(line) for line in lines if '"DEADLINE_BREACHED"' in line]
    assert breaches, "deadlines passed during the stretch"

    # A period in the middle: the same records from both sources, by the same rule.
    stamps = sorted(json.loads(line)["timestamp"] for line in lines)
    start, end = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    parts = []
    for source in ("kafka", f"archive:{recorded.archive}"):
        out = tmp_path / f"period-{len(parts)}.jsonl"
        done = cli("replay", "--topic", ALL, "--from", start, "--to", end, "--verify", "--source", source,
                   "-b", recorded.bootstrap, "--out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        parts.append(out.read_bytes())
    assert parts[0] == parts[1] and 0 < parts[0].count(b"\n") < len(lines)

    # The Avro export is an object container file any Avro reader takes.
    avro_out = tmp_path / "accepted.avro"
    done = cli("replay", "--topic", LEADS_ACCEPTED, "--format", "avro", "--out", str(avro_out),
               "-b", recorded.bootstrap)
    assert done.returncode == 0, done.stderr
    with avro_out.open("rb") as fh:
        exported = list(fastavro.reader(fh))
    assert exported and all(r["type"] == "cn.leadbus.LeadAccepted" and r["event"]["lead"]["lead_id"] for r in exported)
    assert decode(CATALOG, exported[0]["value"])[1]["digest"] == exported[0]["event"]["digest"]


def test_rebuild_is_identical_after_a_normal_run(recorded: Recorded) -> None:
    done = cli("audit", "rebuild", "-b", recorded.bootstrap, "--day-seconds", str(DAY_SECONDS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical" in done.stdout
    assert " 0 handover steps" not in done.stdout


def test_usage_and_access_errors_exit_2(recorded: Recorded, tmp_path: Path) -> None:
    assert cli("replay", "--topic", "leadbus.nonexistent", "-b", recorded.bootstrap).returncode == 2
    assert cli("replay", "--topic", CASES, "--source", f"archive:{tmp_path / 'none'}").returncode == 2
    assert cli("replay", "--topic", CASES, "--from", "yesterday", "-b", recorded.bootstrap).returncode == 2
    assert cli("replay", "--topic", CASES, "--format", "avro", "-b", recorded.bootstrap).returncode == 2


# -- tampering ---------------------------------------------------------------------------------------------


def _at(found: list[dict[str, Any]], check: str) -> set[tuple[str, int, int]]:
    return {(f["topic"], f["partition"], f["offset"]) for f in found if f["check"] == check}


def test_tampering_with_topics_is_caught_and_located(recorded: Recorded, tmp_path: Path) -> None:
    bootstrap = recorded.bootstrap
    # leadbus.leads.accepted: one lead's body altered (its digest left as it was), another replayed right after itself.
    def alter_and_replay(copies: list[Copy]) -> list[Copy]:
        out = list(copies)
        event = decode(CATALOG, out[3].value)[1]
        event["lead"]["description"] = "篡改后的描述"
        out[3] = replace(out[3], value=encode(CATALOG.latest("cn.leadbus.LeadAccepted"), event))
        out.insert(11, out[10])
        return out

    rewrite_topic(bootstrap, LEADS_ACCEPTED, alter_and_replay)
    report = tmp_path / "accepted.json"
    done = cli("replay", "--topic", LEADS_ACCEPTED, "--verify", "-b", bootstrap, "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    found = findings(report)
    assert (LEADS_ACCEPTED, 0, 3) in _at(found, "DIGEST_MISMATCH")
    assert (LEADS_ACCEPTED, 0, 11) in _at(found, "REPLAYED")
    assert "FAIL DIGEST_MISMATCH leadbus.leads.accepted[0]@3" in done.stdout

    # leadbus.cases: two versions of one case swapped.
    swapped: dict[str, Any] = {}

    def swap(copies: list[Copy]) -> list[Copy]:
        out = list(copies)
        seen: dict[tuple[int, str], int] = {}
        for i, c in enumerate(out):
            case = decode(CATALOG, c.value)[1]
            earlier = seen.get((c.partition, case["case_id"]))
            if earlier is not None and case["merged_into"] is None:
                out[earlier], out[i] = out[i], out[earlier]
                swapped.update(case_id=case["case_id"], partition=c.partition, offset=i - _start(out, c.partition))
                return out
            seen[(c.partition, case["case_id"])] = i
        raise AssertionError("no case with two versions")

    rewrite_topic(bootstrap, CASES, swap)
    report = tmp_path / "cases.json"
    done = cli("replay", "--topic", CASES, "--verify", "-b", bootstrap, "--report", str(report))
    assert done.returncode == 1, done.stdout
    assert (CASES, swapped["partition"], swapped["offset"]) in _at(findings(report), "REORDERED")
    assert swapped["case_id"] in done.stdout

    # An archive file altered: located by its path.
    copy = tmp_path / "archive"
    shutil.copytree(recorded.archive, copy)
    victim = read_manifest(copy)[len(read_manifest(copy)) // 2]
    target = copy / victim.path
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    report = tmp_path / "archive.json"
    done = cli("replay", "--topic", ALL, "--verify", "--source", f"archive:{copy}", "--head", recorded.head,
               "--report", str(report))
    assert done.returncode == 1, done.stdout
    assert any(f["check"] == "ARCHIVE_MODIFIED" and f["file"] == victim.path for f in findings(report))

    # Rebuild sees it too: the swapped case is named.
    done = cli("audit", "rebuild", "-b", bootstrap, "--day-seconds", str(DAY_SECONDS))
    assert done.returncode == 1 and swapped["case_id"] in done.stdout, done.stdout


def _start(copies: list[Copy], partition: int) -> int:
    return next(i for i, c in enumerate(copies) if c.partition == partition)


def test_rebuild_reports_a_corrupted_derived_event_with_its_case_id(recorded: Recorded) -> None:
    bootstrap = recorded.bootstrap
    corrupted: dict[str, str] = {}

    def corrupt(copies: list[Copy]) -> list[Copy]:
        out = list(copies)
        for i, c in enumerate(out):
            step = decode(CATALOG, c.value)[1]
            if step["event"] == "OPENED" and step["due_at"] is not None:
                step["due_at"] = step["due_at"].replace(year=step["due_at"].year + 1)
                out[i] = replace(c, value=encode(CATALOG.latest("cn.leadbus.HandoverStep"), step))
                corrupted["case_id"] = step["case_id"]
                return out
        raise AssertionError("no OPENED step")

    rewrite_topic(bootstrap, HANDOVER, corrupt)
    done = cli("audit", "rebuild", "-b", bootstrap, "--day-seconds", str(DAY_SECONDS))
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if corrupted["case_id"] in line]
    assert any("due_at" in line and line.startswith("handover") for line in lines), done.stdout


# -- seals: the verifier slot, with a test verifier ------------------------------------------------------


def test_seal_verifier_in_the_slot_catches_forged_dropped_swapped_and_replayed_records(recorded: Recorded) -> None:
    bootstrap = recorded.bootstrap
    topic = f"audit.sealed.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        future.result()
    agency_key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    publisher = "SAMR.33"
    base_ms = int(datetime.now(UTC).timestamp() * 1000)
    def withdrawn(case_id: str) -> bytes:
        return encode(CATALOG.latest("cn.leadbus.CaseWithdrawn"), {
            "case_id": case_id, "version": 1, "reason": "MERGED", "channel": "region", "recipient": "yrd",
            "topic": "leadbus.region.yrd", "merged_into": None, "withdrawn_at": datetime(2027, 1, 1, tzinfo=UTC)})

    value = withdrawn("CASE-0000000000000001")

    def sealed(partition: int, seq: int, *, key: Ed25519PrivateKey = agency_key, body: bytes = value) -> Copy:
        return Copy(partition, b"k", body, seal(key, publisher, topic, partition, seq, value), base_ms + seq, -1)

    lanes = {p: [sealed(p, seq) for seq in range(1, 11)] for p in range(4)}
    lanes[0][4] = sealed(0, 5, key=stranger)  # forged: signed by a key nobody registered
    lanes[0][6] = replace(lanes[0][6], value=withdrawn("CASE-0000000000000002"))  # altered after signing
    del lanes[1][4]  # dropped: seq 5 never appears
    lanes[2][6], lanes[2][7] = lanes[2][7], lanes[2][6]  # swapped: 8 before 7
    lanes[3].insert(9, lanes[3][2])  # replayed: seq 3 again after 9
    append(bootstrap, topic, [c for p in range(4) for c in lanes[p]])

    verifier = TestSealVerifier({(publisher, key_id(agency_key.public_key())): agency_key.public_key()})
    report = replay(ReplayOptions(topics=[topic], seal_verifier=verifier), KafkaSettings(bootstrap))
    assert report.status == 1 and report.sealed == 40
    got = {(f.check, f.partition, f.offset) for f in report.failures}
    # Partition 0: the forged 5 (offset 4) and the altered 7 (offset 6) do not count: the genuine ones are missing.
    assert got == {("UNKNOWN_KEY", 0, 4), ("BAD_SIGNATURE", 0, 6), ("SEQUENCE_GAP", 0, 5), ("SEQUENCE_GAP", 0, 7),
                   ("SEQUENCE_GAP", 1, 4),
                   ("SEQUENCE_REORDERED", 2, 7), ("SEQUENCE_REPLAYED", 3, 9)}, report.failures

    # The same records without the slot filled: verified as far as today's checks go, seals counted as unchecked.
    plain = replay(ReplayOptions(topics=[topic]), KafkaSettings(bootstrap))
    assert plain.status == 0 and plain.sealed == 40 and not plain.seals_checked
