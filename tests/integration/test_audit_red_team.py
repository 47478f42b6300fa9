"""`leadbus replay --verify` against tampering the other audit tests do not try (issue #14: "an outside check will
tamper with a topic in ways you have not seen and expect exit 1 with the coordinates").

A stretch of traffic through the real stages, sealed, archived; then, as someone with administrative access could,
each partition of `leadbus.cases` is tampered with in its own way per round (so one replay judges six tamperings):
the first records of a partition removed, a tombstone added, the key removed, a header added, the value cut or
lengthened by a byte, emptied, its schema fingerprint or magic byte changed, the seal's `prev` altered, an unsealed
record written between sealed transactions, a whole transaction duplicated, two transactions swapped, a record
re-published with its seal after later ones, a record moved to or swapped with another partition, one copied in
from a routed topic, a record's time stepped back; a forged record in an aborted transaction (read_committed hides
it) and a record re-published in a committed one; on `leadbus.leads.accepted` its first records removed, a key
removed and a tombstone added; on a signed intake topic a lead's key removed, a lane's first records removed, a
value nulled, a lead signed by another agency's registered publisher; in the archive a file of someone else's
making, a truncated file, and a record altered or added with the manifest chained again over it. Each is exit 1
with the tampered record's topic, partition and offset (or archive file and index), never a traceback.

What cannot be told from the topic alone (a record's time moved within the clock skew, a header beside an agency's
seal, the last transaction removed whole) is in the README's "What a replay alone cannot tell".
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.localbroker import KafkaCluster
from leadbus.sinks.archive import MANIFEST, ManifestLine, chain_of, read_manifest
from leadbus.sinks.archive_sink import run_archive
from leadbus.stage_keys import load_stage_key, provision
from leadbus.stage_seals import PREV_HEADER, SIGNATURE_HEADER, STAGE_SEAL_NAMES, StageSealer
from leadbus.topics import CASES, LEADS_ACCEPTED
from tests.audit_helpers import Copy, append, records_of, rewrite_topic, simulate, stages, wait_settled

pytestmark = pytest.mark.integration

#: What a record altered after sealing is: the next one's link does not hold, or (the signed one) its signature fails.
ALTERED = ("STAGE_CHAIN_BROKEN", "STAGE_BAD_SIGNATURE")
#: One partition's records (offset order) → the records written back, and {expected check(s): offset} in the result.
Tamper = Callable[[list[Copy]], tuple[list[Copy], dict[tuple[str, ...], int]]]


@dataclass
class Recorded:
    bootstrap: str
    cases: list[Copy]  # leadbus.cases as the stages wrote it
    #: the same records sealed again with the linking stage's key in transactions of 5 per partition (a new chain, as
    #: a restarted stage's): how many transactions the stage made depends on the machine's load, these do not
    resealed: list[Copy]
    routed: str
    archive: Path


@pytest.fixture(scope="module")
def recorded(cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    bootstrap = cluster.bootstrap_servers
    root = tmp_path_factory.mktemp("red-team-run")
    with stages(bootstrap, root, day_seconds=4.0):
        simulate(bootstrap, rate=15, seconds=10)
        wait_settled(bootstrap)
    archive = root / "archive"
    provision(bootstrap, root / "stage-keys", ["archive"])  # the sink signs the heads it publishes
    run_archive(bootstrap, [CASES], archive, max_seconds=6, seal_after_seconds=1.0, group=f"red-{uuid.uuid4()}",
                seal_keys=root / "stage-keys")
    assert read_manifest(archive)
    cases = records_of(bootstrap, CASES)
    sealer = StageSealer("LEADBUS-linking", load_stage_key(root / "stage-keys", "linking"), "00000000000000ee")
    resealed = []
    for partition, rs in sorted(by_partition(cases).items()):
        for at in range(0, len(rs), 5):
            batch = rs[at:at + 5]
            headers = sealer.seal([(CASES, partition, c.key, c.value,
                                    [(n, v) for n, v in c.headers if n not in STAGE_SEAL_NAMES]) for c in batch])
            sealer.commit()
            resealed += [replace(c, headers=h) for c, h in zip(batch, headers, strict=True)]
    return Recorded(bootstrap, cases, resealed, "leadbus.region.yrd", archive)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadbus.cli", *args], capture_output=True, text=True, timeout=600)


def verify(bootstrap: str, topic: str, report: Path, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    done = cli("replay", "--topic", topic, "--verify", "-b", bootstrap, "--report", str(report), *extra)
    assert "Traceback" not in done.stderr, done.stderr
    failures = [f for f in json.loads(report.read_text())["findings"] if f["failure"]] if report.exists() else []
    return done.returncode, failures, done.stdout


def located(failures: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    return {(f["check"], f["partition"], f["offset"]) for f in failures if f["offset"] is not None}


def signed(rs: list[Copy]) -> list[int]:
    return [i for i, c in enumerate(rs) if any(n == SIGNATURE_HEADER for n, _ in c.headers)]


def by_partition(copies: list[Copy]) -> dict[int, list[Copy]]:
    out: dict[int, list[Copy]] = {}
    for c in copies:
        out.setdefault(c.partition, []).append(c)
    return out


def run_round(recorded: Recorded, tmp_path: Path, name: str, tampers: list[Tamper],
              base: list[Copy] | None = None) -> None:
    """The busiest partitions of leadbus.cases (`base`: as written), each tampered in its own way; one replay must
    name each."""
    parts = by_partition(recorded.cases if base is None else base)
    order = sorted(parts, key=lambda p: -len(parts[p]))
    assert len(order) >= len(tampers)
    expected: dict[str, tuple[tuple[str, ...], int, int]] = {}
    written: dict[int, list[Copy]] = dict(parts)
    for tamper, partition in zip(tampers, order, strict=False):
        rs = parts[partition]
        assert len(signed(rs)) >= (1 if base is None else 2), "transactions enough in the partition"
        out, wanted = tamper(list(rs))
        written[partition] = [replace(c, partition=partition) for c in out]
        for checks, offset in wanted.items():
            expected[f"{tamper.__name__}/{'|'.join(checks)}"] = (checks, partition, offset)
    rewrite_topic(recorded.bootstrap, CASES, lambda _: [c for p in sorted(written) for c in written[p]])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / f"{name}.json")
    assert status == 1, stdout
    found = located(failures)
    for label, (checks, partition, offset) in expected.items():
        assert any((check, partition, offset) in found for check in checks), (label, partition, offset, sorted(found))
        assert f"{CASES}[{partition}]@{offset}" in stdout, label


def middle(rs: list[Copy]) -> int:
    """A record near the middle of the partition, one that carries the link only (no signature) if there is one (a
    stage on a loaded machine may write one record per transaction); altered, a signed one is STAGE_BAD_SIGNATURE."""
    at, sealed = len(rs) // 2, set(signed(rs))
    return next((i for i in sorted(range(1, len(rs)), key=lambda i: abs(i - at)) if i not in sealed), at)


def inside_a_run(rs: list[Copy], neighbour: int, *, neighbour_unsigned: bool = False) -> int:
    """The record nearest the middle that shares its transaction's time with its neighbour (`neighbour` -1: the one
    before, +1: the one after), carrying no signature itself (nor the neighbour, with `neighbour_unsigned`): a period
    whose edge is that time cuts through the run. Which records those are depends on how the stage's transactions and
    milliseconds fell in this run, so it is searched for, not assumed at the middle."""
    at, sealed = len(rs) // 2, set(signed(rs))
    for i in sorted(range(1, len(rs) - 1), key=lambda i: abs(i - at)):
        j = i + neighbour
        if i not in sealed and not (neighbour_unsigned and j in sealed) and rs[j].timestamp == rs[i].timestamp:
            return i
    raise AssertionError("no two records of one run share a time: the fixture's traffic is not what this test needs")


def with_value(value: Callable[[bytes], bytes | None]) -> Callable[[list[Copy]], tuple[list[Copy], dict[Any, int]]]:
    def tamper(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
        m = middle(rs)
        rs[m] = replace(rs[m], value=value(rs[m].value or b""))
        return rs, {(*ALTERED, "UNDECODABLE"): m}
    return tamper


# -- leadbus.cases, six tamperings a round ------------------------------------------------------------------------


def first_records_removed(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return rs[2:], {("STAGE_SEQUENCE_GAP",): 0}  # read from offset 0: the chain's 1 and 2 are missing


def tombstone_in_front(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return [replace(rs[0], value=None, headers=[]), *rs], {("UNDECODABLE",): 0}


def key_removed(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    m = middle(rs)
    rs[m] = replace(rs[m], key=None)
    return rs, {ALTERED: m}


def header_added(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    m = middle(rs)
    rs[m] = replace(rs[m], headers=[("content-type", b"application/json"), *rs[m].headers])
    return rs, {ALTERED: m}


def prev_altered(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    m = middle(rs)
    rs[m] = replace(rs[m], headers=[(n, bytes(31) + b"\x01" if n == PREV_HEADER else v) for n, v in rs[m].headers])
    return rs, {ALTERED: m}


def unsealed_between_transactions(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    after = signed(rs)[0]  # written with a plain producer right after a sealed transaction committed
    return [*rs[:after + 1], replace(rs[middle(rs)], headers=[]), *rs[after + 1:]], {("STAGE_UNSEALED",): after + 1}


def transaction_duplicated(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    s = signed(rs)
    again = rs[s[0] + 1:s[1] + 1]
    return [*rs[:s[1] + 1], *again, *rs[s[1] + 1:]], {("STAGE_SEQUENCE_REPLAYED",): s[1] + 1}


def transactions_swapped(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    s = signed(rs)  # the partition's first two transactions: the second now at offset 0, then the first
    first, second = rs[:s[0] + 1], rs[s[0] + 1:s[1] + 1]
    return [*second, *first, *rs[s[1] + 1:]], {("STAGE_SEQUENCE_GAP",): 0, ("STAGE_SEQUENCE_REPLAYED",): len(second)}


def republished_later(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    at = len(rs) - 2
    return [*rs[:at], rs[middle(rs)], *rs[at:]], {("STAGE_SEQUENCE_REPLAYED",): at}


def time_stepped_back(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    m = middle(rs)
    rs[m] = replace(rs[m], timestamp=rs[m].timestamp - 3_600_000)
    return rs, {("TIMESTAMP_BACKWARDS",): m}


def truncated(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return with_value(lambda v: v[:-1])(rs)


def lengthened(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return with_value(lambda v: v + b"\x00")(rs)


def emptied(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return with_value(lambda v: b"")(rs)


def nulled(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return with_value(lambda v: None)(rs)


def unknown_fingerprint(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return with_value(lambda v: v[:2] + bytes(8) + v[10:])(rs)


def magic_byte(rs: list[Copy]) -> tuple[list[Copy], dict[tuple[str, ...], int]]:
    return with_value(lambda v: b"\xc3\x02" + v[2:])(rs)


def test_headers_keys_and_bytes_of_sealed_records(recorded: Recorded, tmp_path: Path) -> None:
    run_round(recorded, tmp_path, "bytes", [first_records_removed, tombstone_in_front, key_removed, header_added,
                                            prev_altered, truncated])
    run_round(recorded, tmp_path, "values", [lengthened, emptied, nulled, unknown_fingerprint, magic_byte,
                                             time_stepped_back])


def test_records_and_transactions_moved_duplicated_or_added(recorded: Recorded, tmp_path: Path) -> None:
    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.resealed))
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "resealed.json")
    assert status == 0 and not failures, stdout
    run_round(recorded, tmp_path, "moves", [unsealed_between_transactions, transaction_duplicated,
                                            transactions_swapped, republished_later], recorded.resealed)


def test_records_moved_across_partitions_and_topics(recorded: Recorded, tmp_path: Path) -> None:
    parts = by_partition(recorded.cases)
    p, q, r, s = sorted(parts, key=lambda x: -len(parts[x]))[:4]
    written = {k: list(v) for k, v in parts.items()}
    m = middle(parts[p])
    moved = written[p].pop(m)  # moved to the end of another partition
    written[q].append(replace(moved, partition=q))
    a, b = middle(parts[r]), middle(parts[s])  # two records swapped between partitions
    written[r][a], written[s][b] = replace(parts[s][b], partition=r), replace(parts[r][a], partition=s)
    routed = records_of(recorded.bootstrap, recorded.routed)
    other = next(x for x in sorted(parts) if x not in (p, q, r, s))
    written[other].append(replace(routed[len(routed) // 2], partition=other))  # a routed record, seal and all
    rewrite_topic(recorded.bootstrap, CASES, lambda _: [c for k in sorted(written) for c in written[k]])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "across.json")
    assert status == 1, stdout
    found = located(failures)
    assert ("STAGE_SEQUENCE_GAP", p, m) in found and any(f[1:] == (q, len(written[q]) - 1) for f in found), found
    assert any(f[1:] == (r, a) for f in found) and any(f[1:] == (s, b) for f in found), found
    # the two swapped records named at both places, not a run of STAGE_SEQUENCE_REPLAYED over what follows them
    moved = {(f["partition"], f["offset"]): f["message"] for f in failures if f["check"] == "STAGE_RECORD_MOVED"}
    assert f"to follow {CASES}[{s}]@{b - 1}," in moved.get((r, a), "") and \
        f"to follow {CASES}[{r}]@{a - 1}," in moved.get((s, b), ""), failures
    assert not [f for f in failures if f["check"] == "STAGE_SEQUENCE_REPLAYED" and f["partition"] in (r, s)
                and f["offset"] not in (a, b)], failures
    assert any(f[1:] == (other, len(written[other]) - 1) for f in found), found


def test_an_aborted_transaction_is_not_read_and_a_committed_one_is(recorded: Recorded, tmp_path: Path) -> None:
    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.cases))
    sample = recorded.cases[len(recorded.cases) // 2]
    producer = Producer({"bootstrap.servers": recorded.bootstrap, "transactional.id": f"red-{uuid.uuid4()}",
                         "logger": logging.getLogger("tests.kafka")})
    producer.init_transactions()
    producer.begin_transaction()  # a forged record (its body cut) that never commits: read_committed never sees it
    producer.produce(CASES, value=(sample.value or b"")[:-1], key=sample.key, headers=sample.headers,
                     partition=sample.partition)
    producer.abort_transaction()
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "aborted.json")
    assert status == 0 and not failures, stdout
    producer.begin_transaction()  # the same record as it was, re-published in a transaction that commits
    producer.produce(CASES, value=sample.value, key=sample.key, headers=sample.headers, partition=sample.partition)
    producer.commit_transaction()
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "committed.json")
    at = max(c.offset for c in records_of(recorded.bootstrap, CASES) if c.partition == sample.partition)
    assert status == 1 and ("STAGE_SEQUENCE_REPLAYED", sample.partition, at) in located(failures), stdout


def test_a_removed_start_behind_an_aborted_transaction_is_a_gap(recorded: Recorded, tmp_path: Path) -> None:
    """A rewriter who opens a partition with a transaction it aborts puts its first visible record past offset 0:
    the replay reads from the log's start, so that record is the partition's first all the same (`opens_log`), and a
    chain met there at number 3 lost 1 and 2."""
    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    rewrite_topic(recorded.bootstrap, CASES, lambda _: [c for c in recorded.cases if c.partition != partition])
    sample = parts[partition][0]
    producer = Producer({"bootstrap.servers": recorded.bootstrap, "transactional.id": f"red-{uuid.uuid4()}",
                         "logger": logging.getLogger("tests.kafka")})
    producer.init_transactions()
    producer.begin_transaction()
    producer.produce(CASES, value=sample.value, key=sample.key, headers=sample.headers, partition=partition)
    assert producer.flush(30) == 0  # on the broker before the abort (an abort purges what is still queued)
    producer.abort_transaction()
    append(recorded.bootstrap, CASES, parts[partition][2:])
    first = min(c.offset for c in records_of(recorded.bootstrap, CASES) if c.partition == partition)
    assert first > 0
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "behind-aborted.json")
    assert status == 1 and ("STAGE_SEQUENCE_GAP", partition, first) in located(failures), stdout


# -- leadbus.leads.accepted (one partition) -------------------------------------------------------------------


def test_accepted_leads_first_removed_key_removed_tombstone_added(recorded: Recorded, tmp_path: Path) -> None:
    copies = records_of(recorded.bootstrap, LEADS_ACCEPTED)
    out = copies[3:]
    m = middle(out)
    out[m] = replace(out[m], key=None)
    out.append(replace(out[0], value=None, headers=[]))
    rewrite_topic(recorded.bootstrap, LEADS_ACCEPTED, lambda _: out)
    status, failures, stdout = verify(recorded.bootstrap, LEADS_ACCEPTED, tmp_path / "accepted.json")
    found = located(failures)
    assert status == 1 and ("STAGE_SEQUENCE_GAP", 0, 0) in found and any((c, 0, m) in found for c in ALTERED), stdout
    assert ("UNDECODABLE", 0, len(out) - 1) in found and ("STAGE_UNSEALED", 0, len(out) - 1) in found, stdout


# -- a signed intake topic --------------------------------------------------------------------------------------


def test_signed_intake_key_removed_lane_start_removed_value_nulled_other_agency(recorded: Recorded,
                                                                                tmp_path: Path) -> None:
    from leadbus.producers.signing import MemorySequences, SigningSealer
    from leadbus.publisher_keys import write_keys
    from leadbus.signing import PUBLISHER_HEADER, PublisherKey, key_id_of, public_bytes
    from tests.integration.test_audit import TAMPER_TOPIC, _signed_intake

    bootstrap = recorded.bootstrap
    _signed_intake(bootstrap)
    outsider = Ed25519PrivateKey.generate()  # a publisher of another agency, registered and valid
    now = datetime.now(UTC)
    raw = public_bytes(outsider.public_key())
    write_keys(bootstrap, [PublisherKey("OTHR.11", key_id_of(raw), raw, now - timedelta(days=1),
                                        now - timedelta(days=1))])
    copies = records_of(bootstrap, TAMPER_TOPIC)

    def lane(n: int) -> list[int]:
        return [i for i, c in enumerate(copies) if dict(c.headers).get(PUBLISHER_HEADER) == f"AUDT.{n}".encode()]

    out: list[Copy | None] = list(copies)
    out[lane(12)[2]] = replace(copies[lane(12)[2]], key=None)
    out[lane(14)[2]] = replace(copies[lane(14)[2]], value=None)
    for i in lane(16)[:2]:
        out[i] = None  # the lane's first two records removed
    signer = SigningSealer("OTHR.11", outsider, MemorySequences())
    c = copies[lane(17)[2]]
    out[lane(17)[2]] = replace(c, headers=[("content-type", b"application/vnd.leadbus.avro"),
                                           *signer.seal(TAMPER_TOPIC, c.key or b"", c.value or b"", 0)])
    kept = [x for x in out if x is not None]
    rewrite_topic(bootstrap, TAMPER_TOPIC, lambda _: kept)

    def offset(original: int) -> int:
        return sum(1 for x in out[:original] if x is not None)

    status, failures, stdout = verify(bootstrap, TAMPER_TOPIC, tmp_path / "intake.json")
    found = located(failures)
    assert status == 1
    assert ("KEY_MISMATCH", 0, offset(lane(12)[2])) in found, sorted(found)
    assert ("BAD_SIGNATURE", 0, offset(lane(14)[2])) in found, sorted(found)
    assert ("SEQUENCE_GAP", 0, offset(lane(16)[2])) in found, sorted(found)
    assert ("PUBLISHER_MISMATCH", 0, offset(lane(17)[2])) in found, sorted(found)
    assert f"{TAMPER_TOPIC}[0]@{offset(lane(16)[2])}" in stdout


# -- the archive ---------------------------------------------------------------------------------------------------


def _archive_copy(recorded: Recorded, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(recorded.archive, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _rewrite_file(root: Path, line: ManifestLine, change: Callable[[list[Any]], list[Any]], *,
                  keep_metadata: bool = True) -> str:
    """A file written again with fastavro and the manifest chained over it (its `records` count kept): the new head."""
    path = root / line.path
    with path.open("rb") as fh:
        reader = fastavro.reader(fh)
        schema, codec, records = reader.writer_schema, reader.codec, list(reader)
        meta = {k: v for k, v in reader.metadata.items() if not k.startswith("avro.")}
    with path.open("wb") as fh:
        fastavro.writer(fh, schema, change(records), codec=codec, metadata=meta if keep_metadata else None)
    text, prev = [], "0" * 64
    for old in read_manifest(root):
        digest = hashlib.sha256((root / old.path).read_bytes()).hexdigest()
        chain = chain_of(prev, digest, old.path)
        text.append(ManifestLine(old.seq, old.path, old.topic, old.partition, old.records, old.first_offset,
                                 old.last_offset, digest, prev, chain).to_json())
        prev = chain
    (root / MANIFEST).write_text("".join(f"{t}\n" for t in text), encoding="utf-8")
    return prev


def _archive_replay(recorded: Recorded, root: Path, head: str, report: Path) -> tuple[int, list[dict[str, Any]]]:
    done = cli("replay", "--topic", CASES, "--verify", "--source", f"archive:{root}", "--head", head,
               "-b", recorded.bootstrap, "--report", str(report))
    assert "Traceback" not in done.stderr, done.stderr
    findings = json.loads(report.read_text())["findings"]
    return done.returncode, [f for f in findings if f["failure"]]


def test_archive_files_rewritten_truncated_or_of_someone_elses_making(recorded: Recorded, tmp_path: Path) -> None:
    line = max(read_manifest(recorded.archive), key=lambda x: x.records)
    # A record's key altered inside a file, the manifest chained again over it (and that head passed): the seal tells.
    root = _archive_copy(recorded, tmp_path, "altered")
    head = _rewrite_file(root, line, lambda rs: [*rs[:3], {**rs[3], "key": b"CASE-FFFFFFFFFFFFFFFF"}, *rs[4:]])
    status, failures = _archive_replay(recorded, root, head, tmp_path / "altered.json")
    assert status == 1 and any(f["check"] in ALTERED and f["file"] == line.path and f["index"] == 3
                               for f in failures), failures
    # A record added to a file (a copy of one before it), chained again: located at its file and index.
    root = _archive_copy(recorded, tmp_path, "added")
    head = _rewrite_file(root, line, lambda rs: [*rs, rs[len(rs) // 2]])
    status, failures = _archive_replay(recorded, root, head, tmp_path / "added.json")
    assert status == 1 and any(f["check"] == "STAGE_SEQUENCE_REPLAYED" and f["file"] == line.path
                               and f["index"] == line.records for f in failures), failures
    # A file written without the metadata naming its writer schema: a finding at the file, not a traceback.
    root = _archive_copy(recorded, tmp_path, "foreign")
    head = _rewrite_file(root, line, lambda rs: rs, keep_metadata=False)
    status, failures = _archive_replay(recorded, root, head, tmp_path / "foreign.json")
    assert status == 1 and any(f["check"].startswith("ARCHIVE_") and f["file"] == line.path for f in failures)
    # A file cut short (its manifest left): modified.
    root = _archive_copy(recorded, tmp_path, "cut")
    (root / line.path).write_bytes((root / line.path).read_bytes()[:-40])
    status, failures = _archive_replay(recorded, root, read_manifest(recorded.archive)[-1].chain,
                                       tmp_path / "cut.json")
    assert status == 1 and any(f["check"] == "ARCHIVE_MODIFIED" and f["file"] == line.path for f in failures)


def test_a_period_ending_inside_a_transaction_reads_on_to_its_signature(recorded: Recorded, tmp_path: Path) -> None:
    """A record altered in the middle of a transaction, the later records' times moved 2 s on (broker timestamps are
    not sealed), and a replay `--to` just after it: before, its unvouched tail was a notice and the replay passed
    (exit 0); it reads on to the transaction's signature and names the altered record."""
    from tests.audit_helpers import iso

    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    rs = list(parts[partition])
    m = inside_a_run(rs, +1)
    rs[m] = replace(rs[m], key=b"CASE-FFFFFFFFFFFFFFFF")
    rs[m + 1:] = [replace(c, timestamp=c.timestamp + 2000) for c in rs[m + 1:]]
    rewrite_topic(recorded.bootstrap, CASES,
                  lambda _: [c for p in sorted(parts) for c in (rs if p == partition else parts[p])])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "to.json", "--to",
                                      iso(rs[m].timestamp + 1))
    assert status == 1 and any((c, partition, m) in located(failures) for c in ALTERED), stdout
    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.cases))
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "to-clean.json", "--to",
                                      iso(rs[m].timestamp + 1))
    assert status == 0 and not failures, stdout


def test_a_state_changelog_is_refused_not_called_altered_record_by_record(recorded: Recorded) -> None:
    """Before: `replay --verify` of leadbus.state.linking exited 1 with an UNDECODABLE failure per record (726 in a
    round-2 run): the stage's own encoding, never Avro. A changelog holds no events and no seals: a usage error."""
    done = cli("replay", "--topic", "leadbus.state.linking", "--verify", "-b", recorded.bootstrap)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    said = " ".join(done.stderr.split())  # the CLI wraps its message
    assert "state changelog" in said and "audit rebuild" in said, done.stderr


# -- round 3 (h-red10) -----------------------------------------------------------------------------------------------


def test_records_deleted_at_a_partitions_head_are_named_whatever_period_is_replayed(recorded: Recorded,
                                                                                    tmp_path: Path) -> None:
    """DeleteRecords on the busiest partition of leadbus.cases (kept forever): before, exit 0 from the log's start (a
    chain met mid-way looks like retention's cut) and `--from` a later time; now RECORDS_DELETED at the first offset
    left, both ways."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    from tests.audit_helpers import iso

    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.cases))
    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    admin = AdminClient({"bootstrap.servers": recorded.bootstrap})
    for future in admin.delete_records([TopicPartition(CASES, partition, 3)]).values():
        future.result()
    for name, extra in (("whole", ()), ("from", ("--from", iso(parts[partition][5].timestamp)))):
        status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / f"deleted-{name}.json", *extra)
        assert status == 1 and ("RECORDS_DELETED", partition, 3) in located(failures), (name, stdout)
        assert f"{CASES}[{partition}]@3" in stdout


def test_a_stage_key_registered_later_and_back_dated_does_not_vouch_for_records_before_it(recorded: Recorded,
                                                                                         tmp_path: Path) -> None:
    """Someone who can write leadbus.publishers registers a LEADBUS-linking key of their own now, dated two days back,
    and reseals a partition of leadbus.cases with it over an altered record: every seal holds and every key is valid at
    every record's time (before: exit 0). The registration's place on the registry's log says it came after."""
    from leadbus.publisher_keys import write_keys
    from leadbus.signing import PublisherKey, key_id_of, public_bytes

    attacker = Ed25519PrivateKey.generate()
    raw = public_bytes(attacker.public_key())
    back = datetime.now(UTC) - timedelta(days=2)
    write_keys(recorded.bootstrap, [PublisherKey("LEADBUS-linking", key_id_of(raw), raw, back, back,
                                                 require_signed=False)])
    sealer = StageSealer("LEADBUS-linking", attacker, "00000000000000aa")
    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    m = middle(parts[partition])
    out: list[Copy] = []
    for at in range(0, len(parts[partition]), 5):
        batch = [replace(c, key=b"CASE-FFFFFFFFFFFFFFFF") if at + i == m else c
                 for i, c in enumerate(parts[partition][at:at + 5])]
        headers = sealer.seal([(CASES, partition, c.key, c.value,
                                [(n, v) for n, v in c.headers if n not in STAGE_SEAL_NAMES]) for c in batch])
        sealer.commit()
        out += [replace(c, headers=h) for c, h in zip(batch, headers, strict=True)]
    rewrite_topic(recorded.bootstrap, CASES,
                  lambda _: [c for p in sorted(parts) for c in (out if p == partition else parts[p])])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "back-dated.json")
    assert status == 1 and ("KEY_REGISTERED_LATER", partition, m) in located(failures), stdout
    assert {f["partition"] for f in failures} == {partition} and "leadbus.publishers[0]@" in stdout, failures
    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.cases))
