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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.replay import ReplayOptions, replay, seal_verifier_factory
from leadbus.audit.verification import CASE_UPDATED
from leadbus.avro import decode, encode, packaged_catalog
from leadbus.clients import KafkaSettings
from leadbus.localbroker import KafkaCluster
from leadbus.sinks.archive import read_manifest
from leadbus.topics import CASES, HANDOVER, LEADS_ACCEPTED
from tests.audit_helpers import (
    Copy,
    append,
    archived_whole,
    records_of,
    rewrite_topic,
    simulate,
    stages,
    wait_settled,
)
from tests.audit_seal import TestSealVerifier, key_id, seal

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()
DAY_SECONDS = 4.0
# The handover stage scans deadlines on a tick; on a loaded machine a scan runs seconds late, and the rebuild knows
# scan times only to within this grace (a breach found by a later scan is the same breach). Generous: the
# corrupted-event test still differs by a year.
TICK_GRACE = str(2.5 * DAY_SECONDS)
ALL = "^leadbus\\.(intake|leads|cases|handover|region|jurisdiction|liaison|channel|takedown|withdrawals).*"


@dataclass
class Recorded:
    bootstrap: str
    archive: Path
    head: str
    published: int


@pytest.fixture(scope="module")
def recorded(cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """A stretch of traffic through the real stages, settled, then archived whole."""
    bootstrap = cluster.bootstrap_servers
    root = tmp_path_factory.mktemp("audit-run")
    with stages(bootstrap, root, day_seconds=DAY_SECONDS):
        stretch = simulate(bootstrap, rate=15, seconds=20)
        wait_settled(bootstrap)
    archive = root / "archive"
    archived_whole(bootstrap, [ALL], archive, seal_after_seconds=1.0, group=f"audit-{uuid.uuid4()}")
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
    done = cli("audit", "rebuild", "-b", recorded.bootstrap, "--day-seconds", str(DAY_SECONDS),
               "--tick-grace", TICK_GRACE)
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
    # Intake sealed them (issue #14): the stage seal locates the altered body where the digest check did before
    # (`--rederive` checks the digest and normalises `original` again as well).
    assert (LEADS_ACCEPTED, 0, 3) in _at(found, "STAGE_CHAIN_BROKEN") | _at(found, "STAGE_BAD_SIGNATURE")
    assert (LEADS_ACCEPTED, 0, 11) in _at(found, "REPLAYED") & _at(found, "STAGE_SEQUENCE_REPLAYED")
    assert "leadbus.leads.accepted[0]@3" in done.stdout
    rederived = cli("replay", "--topic", LEADS_ACCEPTED, "--verify", "--rederive", "-b", bootstrap, "--report",
                    str(tmp_path / "rederived.json"))
    assert rederived.returncode == 1 and "FAIL DIGEST_MISMATCH leadbus.leads.accepted[0]@3" in rederived.stdout
    # The same replay as a large accepted topic is read: the leads are stage-sealed from the first, so no content
    # worker starts (the seals vouch for what they would normalise again); it finds the same.
    shared = replay(ReplayOptions(topics=[LEADS_ACCEPTED], workers=2, split_min=0,
                                  seal_verifier=seal_verifier_factory(KafkaSettings(bootstrap))),
                    KafkaSettings(bootstrap))
    assert shared.content_workers == 0
    assert sorted((f.check, f.partition, f.offset, f.message) for f in shared.failures) == sorted(
        (f["check"], f["partition"], f["offset"], f["message"]) for f in found if f["failure"])
    # With --rederive the content checks run in worker processes, and find what the command's --rederive found.
    again = replay(ReplayOptions(topics=[LEADS_ACCEPTED], workers=2, split_min=0, rederive_sealed=True,
                                 seal_verifier=seal_verifier_factory(KafkaSettings(bootstrap))),
                   KafkaSettings(bootstrap))
    assert again.content_workers == 2
    assert sorted((f.check, f.partition, f.offset, f.message) for f in again.failures) == sorted(
        (f["check"], f["partition"], f["offset"], f["message"]) for f in findings(tmp_path / "rederived.json")
        if f["failure"])

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
    done = cli("audit", "rebuild", "-b", bootstrap, "--day-seconds", str(DAY_SECONDS), "--tick-grace", TICK_GRACE)
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
    done = cli("audit", "rebuild", "-b", bootstrap, "--day-seconds", str(DAY_SECONDS), "--tick-grace", TICK_GRACE)
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if corrupted["case_id"] in line]
    assert any("due_at" in line and line.startswith("handover") for line in lines), done.stdout


def test_rebuild_reports_a_derived_event_under_another_key_with_its_case_id(recorded: Recorded) -> None:
    """A case event moved to another case's key and a step's key replaced by one that reads as Rich markup, their
    events untouched (red team round 12): before, the rebuild matched by the events alone and called both identical
    (exit 0); the key named in the difference is printed as written (a `[/…]` in it was a MarkupError traceback)."""
    bootstrap = recorded.bootstrap
    moved: dict[str, str] = {}

    def rekey(copies: list[Copy], topic: str) -> list[Copy]:
        out = list(copies)
        i = len(out) // 2
        case_id = decode(CATALOG, out[i].value)[1]["case_id"]
        other = next((c.key for c in out if c.key not in (None, case_id.encode())), None)
        out[i] = replace(out[i], key=other if topic == CASES else b"[/leadbus]")
        moved[topic] = case_id
        return out

    rewrite_topic(bootstrap, CASES, lambda cs: rekey(cs, CASES))
    rewrite_topic(bootstrap, HANDOVER, lambda cs: rekey(cs, HANDOVER))
    done = cli("audit", "rebuild", "-b", bootstrap, "--day-seconds", str(DAY_SECONDS), "--tick-grace", TICK_GRACE)
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    assert any(line.startswith("case") and moved[CASES] in line and "not its case id" in line and f"{CASES}[" in line
               for line in lines), done.stdout
    assert any(line.startswith("handover") and moved[HANDOVER] in line and "under key b'[/leadbus]'" in line
               for line in lines), done.stdout
    assert "Traceback" not in done.stderr, done.stderr


def test_rebuild_from_an_archive_without_its_manifest_names_the_archive_not_identical(recorded: Recorded,
                                                                                    tmp_path: Path) -> None:
    """Red team round 12: a rebuild read the archive's records without checking the archive; once its manifest was
    removed (or unreadable) it read nothing and said "0 accepted leads ... identical" (exit 0)."""
    copy = tmp_path / "archive"
    shutil.copytree(recorded.archive, copy)
    (copy / "MANIFEST.jsonl").unlink()
    done = cli("audit", "rebuild", "--source", f"archive:{copy}", "--day-seconds", str(DAY_SECONDS))
    assert done.returncode == 1, done.stdout
    lines = done.stdout.splitlines()
    assert any(line.startswith("archive  manifest") and "MANIFEST.jsonl is missing" in line for line in lines)
    assert any(line.startswith("archive  unlisted") and f"[{CASES}/" in line for line in lines), done.stdout


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


# -- seals: the bus's own verifier, on a signed intake topic, tampered in every way an outsider might -------------

TAMPER_AGENCY = "AUDT"
TAMPER_TOPIC = f"leadbus.intake.{TAMPER_AGENCY}"


def _signed_intake(bootstrap: str) -> dict[str, Ed25519PrivateKey]:
    """Lanes of six signed leads each (seal v2) for publishers AUDT.11 …, keys registered on leadbus.publishers."""
    from leadbus.avro import encode_object
    from leadbus.producers.signing import MemorySequences, SigningSealer
    from leadbus.producers.simulator import TrafficGenerator
    from leadbus.publisher_keys import write_keys
    from leadbus.signing import PublisherKey, key_id_of, public_bytes

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TAMPER_TOPIC, 2, 1)]).values():
        future.result()
    now = datetime.now(UTC)
    keys, registered = {}, []
    for n in range(11, 30):
        publisher = f"{TAMPER_AGENCY}.{n}"
        keys[publisher] = Ed25519PrivateKey.generate()
        raw = public_bytes(keys[publisher].public_key())
        revoked = now - timedelta(hours=1) if n == 23 else None  # AUDT.23's key: retired before it signed
        registered.append(PublisherKey(publisher, key_id_of(raw), raw, now.replace(year=now.year - 1),
                                       now.replace(year=now.year - 1), revoked_at=revoked,
                                       revocation_reason="retired" if revoked else None))
    write_keys(bootstrap, registered)
    gen = TrafficGenerator(seed=5)
    schema = CATALOG.latest("cn.leadbus.CaseLead")
    copies = []
    for publisher, private in keys.items():
        sealer = SigningSealer(publisher, private, MemorySequences())
        for i in range(6):
            lead = gen.lead(now)
            lead = lead.model_copy(update={"publisher": lead.publisher.model_copy(
                update={"agency": TAMPER_AGENCY, "province": publisher.split(".")[1]})})
            value = encode_object(schema, lead)
            key = lead.lead_id.encode()
            copies.append(Copy(0, key, value, sealer.seal(TAMPER_TOPIC, key, value, 0),
                               int(now.timestamp() * 1000) + i, -1))
    append(bootstrap, TAMPER_TOPIC, copies)
    return keys


def test_the_bus_seal_verifier_locates_every_tampering_of_a_signed_topic(cluster: KafkaCluster,
                                                                         tmp_path: Path) -> None:
    bootstrap = cluster.bootstrap_servers
    keys = _signed_intake(bootstrap)
    clean = cli("replay", "--topic", TAMPER_TOPIC, "--verify", "-b", bootstrap, "--report", str(tmp_path / "c.json"))
    # AUDT.23 signed with a key retired before: its six records are refused at their time, nothing else is.
    found = findings(tmp_path / "c.json")
    assert clean.returncode == 1 and {(f["check"], f["partition"]) for f in found} == {("KEY_REVOKED", 0)}, clean.stdout
    assert len(found) == 6

    from leadbus.signing import KEY_ID_HEADER, SEQUENCE_HEADER, SIGNATURE_HEADER, sign

    def lane(copies: list[Copy], n: int) -> list[Copy]:
        return [c for c in copies if dict(c.headers).get("leadbus-publisher", b"") == f"{TAMPER_AGENCY}.{n}".encode()]

    def without(c: Copy, *names: str) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in c.headers if k not in names]

    expected: dict[str, tuple[int, str]] = {}  # (partition, lead key) of the record each finding must name

    def tamper(copies: list[Copy]) -> list[Copy]:
        out = list(copies)

        def put(old: Copy, new: Copy | None) -> None:
            i = next(i for i, c in enumerate(out) if c is old)
            if new is None:
                del out[i]
            else:
                out[i] = new

        stranger = Ed25519PrivateKey.generate()
        l11, l12, l13, l14 = lane(out, 11), lane(out, 12), lane(out, 13), lane(out, 14)
        put(l11[2], replace(l11[2], value=l11[2].value[:-1] + bytes([l11[2].value[-1] ^ 1])))  # body altered
        expected["BAD_SIGNATURE/body"] = (0, l11[2].key)
        forged = sign(stranger, "AUDT.12", TAMPER_TOPIC, 0, 3, l12[2].value, prev=bytes(32))  # forged
        put(l12[2], replace(l12[2], headers=forged.headers()))
        expected["UNKNOWN_KEY/forged"] = (0, l12[2].key)
        put(l13[2], None)  # dropped
        expected["SEQUENCE_GAP"] = (0, l13[3].key)
        i, j = out.index(l14[2]), out.index(l14[3])  # swapped
        out[i], out[j] = out[j], out[i]
        expected["SEQUENCE_REORDERED"] = (0, l14[2].key)
        l15 = lane(out, 15)
        out.insert(out.index(l15[4]) + 1, l15[1])  # replayed
        expected["SEQUENCE_REPLAYED"] = (0, l15[1].key)
        l16, l17, l18, l19 = lane(out, 16), lane(out, 17), lane(out, 18), lane(out, 19)
        put(l16[2], replace(l16[2], headers=without(l16[2], SIGNATURE_HEADER)))  # one header removed
        expected["SIGNATURE_MALFORMED"] = (0, l16[2].key)
        put(l17[2], replace(l17[2], headers=[*without(l17[2], KEY_ID_HEADER), (KEY_ID_HEADER, b"00000000deadbeef")]))
        expected["UNKNOWN_KEY/key id"] = (0, l17[2].key)
        put(l18[2], replace(l18[2], headers=[*without(l18[2], SEQUENCE_HEADER), (SEQUENCE_HEADER, b"3000")]))
        expected["BAD_SIGNATURE/seq"] = (0, l18[2].key)
        put(l19[2], replace(l19[2], headers=[]))  # every seal header removed
        expected["UNSIGNED"] = (0, l19[2].key)
        l20, l21, l22, l24 = lane(out, 20), lane(out, 21), lane(out, 22), lane(out, 24)
        put(l20[2], replace(l20[2], partition=1))  # moved to another partition
        expected["WRONG_PARTITION"] = (1, l20[2].key)
        other = sign(keys["AUDT.22"], "AUDT.21", TAMPER_TOPIC, 0, 3, l21[2].value, prev=bytes(32))  # another's key
        put(l21[2], replace(l21[2], headers=other.headers()))
        expected["UNKNOWN_KEY/other publisher"] = (0, l21[2].key)
        put(l22[2], replace(l22[2], key=b"LEAD-SOMEONE-ELSE"))  # moved to another key
        expected["KEY_MISMATCH"] = (0, b"LEAD-SOMEONE-ELSE")
        put(l24[2], replace(l24[2], value=l24[2].value[: len(l24[2].value) // 2]))  # truncated
        expected["BAD_SIGNATURE/truncated"] = (0, l24[2].key)
        l25, l26 = lane(out, 25), lane(out, 26)
        put(l25[2], replace(l25[2], value=b"\x00garbage\xff" * 7))  # garbage
        expected["BAD_SIGNATURE/garbage"] = (0, l25[2].key)
        put(l26[2], replace(l26[2], value=l26[2].value[:2] + bytes(8) + l26[2].value[10:]))  # unknown schema id
        expected["BAD_SIGNATURE/schema"] = (0, l26[2].key)
        return out

    rewrite_topic(bootstrap, TAMPER_TOPIC, tamper)
    report = tmp_path / "t.json"
    done = cli("replay", "--topic", TAMPER_TOPIC, "--verify", "-b", bootstrap, "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    located = {(f["check"], f["partition"], f["offset"]) for f in findings(report)}
    copies = records_of(bootstrap, TAMPER_TOPIC)
    for name, (partition, key) in expected.items():
        offsets = {c.offset for c in copies if c.partition == partition and c.key == key}
        check = name.split("/")[0]
        assert any((check, partition, o) in located for o in offsets), (name, offsets, sorted(located))
        assert any(f"{TAMPER_TOPIC}[{partition}]@{o}" in done.stdout for o in offsets), name
    # Lanes nobody touched stay clean: every failure is in a tampered lane or the retired key's.
    # The same replay split between two processes (one per partition) finds exactly the same.
    from leadbus.audit.replay import seal_verifier_factory

    settings = KafkaSettings(bootstrap)
    split = replay(ReplayOptions(topics=[TAMPER_TOPIC], seal_verifier=seal_verifier_factory(settings), workers=2,
                                 split_min=0), settings)
    assert split.processes == 2 and split.sealed == json.loads(report.read_text())["sealed"]
    assert {(f.check, f.partition, f.offset) for f in split.failures} == located
    untouched = {(c.partition, c.offset) for c in copies if dict(c.headers).get("leadbus-publisher", b"").decode()
                 in {f"{TAMPER_AGENCY}.{n}" for n in (27, 28, 29)}}
    assert len(untouched) == 18 and not untouched & {(p, o) for _, p, o in located}


def test_archive_tampering_is_caught_and_located_by_file(recorded: Recorded, tmp_path: Path) -> None:
    """A file deleted, manifest lines swapped or removed, a file replaced by garbage, the head not matching."""

    def tampered(name: str, change: Any) -> tuple[list[Any], Any]:
        copy = tmp_path / name
        shutil.copytree(recorded.archive, copy)
        for path in copy.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        lines = read_manifest(copy)
        change(copy, lines)
        report = replay(ReplayOptions(topics=[ALL], source=f"archive:{copy}", head=recorded.head))
        assert report.status == 1
        return [(f.check, f.file) for f in report.failures], lines

    manifest_lines = (recorded.archive / "MANIFEST.jsonl").read_text().splitlines()
    middle = len(manifest_lines) // 2

    def delete(root: Path, lines: list[Any]) -> None:
        (root / lines[middle].path).unlink()

    found, lines = tampered("deleted", delete)
    assert ("ARCHIVE_REMOVED", lines[middle].path) in found

    def swap(root: Path, lines: list[Any]) -> None:
        text = list(manifest_lines)
        text[middle], text[middle + 1] = text[middle + 1], text[middle]
        (root / "MANIFEST.jsonl").write_text("\n".join(text) + "\n")

    found, lines = tampered("swapped", swap)
    assert {("ARCHIVE_REORDERED", lines[middle].path), ("ARCHIVE_REORDERED", lines[middle + 1].path)} & set(found)

    def gap(root: Path, lines: list[Any]) -> None:
        (root / "MANIFEST.jsonl").write_text("\n".join(manifest_lines[:middle] + manifest_lines[middle + 1:]) + "\n")

    found, lines = tampered("gap", gap)
    assert ("ARCHIVE_UNLISTED", lines[middle].path) in found and ("ARCHIVE_REORDERED", lines[middle + 1].path) in found

    def garbage(root: Path, lines: list[Any]) -> None:
        (root / lines[middle].path).write_bytes(b"Obj\x01" + b"\xff" * 300)

    found, lines = tampered("garbage", garbage)
    assert ("ARCHIVE_MODIFIED", lines[middle].path) in found

    def cut(root: Path, lines: list[Any]) -> None:  # the last file and its line gone: only the kept head tells
        (root / lines[-1].path).unlink()
        (root / "MANIFEST.jsonl").write_text("\n".join(manifest_lines[:-1]) + "\n")

    found, _ = tampered("cut", cut)
    assert ("ARCHIVE_MANIFEST", "MANIFEST.jsonl") in found

    def broken_line(root: Path, lines: list[Any]) -> None:
        text = list(manifest_lines)
        text[middle] = text[middle][: len(text[middle]) // 2]
        (root / "MANIFEST.jsonl").write_text("\n".join(text) + "\n")

    found, _ = tampered("broken-line", broken_line)
    # the file of the broken line is no longer listed: archive findings, and at most the accepted leads whose
    # intake records it held are left without a source
    assert any(check.startswith("ARCHIVE_") for check, _ in found)
    assert all(check.startswith("ARCHIVE_") or check == "SOURCE_MISSING" for check, _ in found), found
