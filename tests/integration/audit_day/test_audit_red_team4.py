"""`leadbus replay --verify` against tamperings rounds 1-3 left (issue #14's outside check, round 4): the key registry
rewritten or cut, and new ones. On the package's day (the `recorded` fixture of the red-team module); the last test
here rewrites `leadbus.publishers`, after which no key of the day verifies again: it runs after every other test of
the package (`spoils_day`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.publisher_keys import key_record, read_registry, write_keys
from leadbus.signing import PublisherKey, key_id_of, public_bytes
from leadbus.stage_seals import KEY_ID_HEADER, STAGE_SEAL_NAMES, StageSealer
from leadbus.topics import CASES, PUBLISHERS
from tests.audit_helpers import Copy, records_of, recreate_topic, rewrite_topic
from tests.integration.audit_day.test_audit_red_team import (  # noqa: F401 - `recorded` is the module's fixture
    Recorded,
    by_partition,
    inside_a_run,
    located,
    middle,
    recorded,
    verify,
)

pytestmark = pytest.mark.integration


def _resealed_by(recorded: Recorded, private: Ed25519PrivateKey,  # noqa: F811
                 key_id: str | None = None) -> tuple[int, int]:
    """leadbus.cases sealed again with `private` (as LEADBUS-linking, naming `key_id` if given: then every partition,
    else the busiest alone) over a record of the busiest partition whose key was altered: (that partition, the altered
    record's offset)."""
    sealer = StageSealer("LEADBUS-linking", private, "00000000000000ab")
    if key_id is not None:
        sealer.key_id = key_id
        sealer._fixed = [(n, key_id.encode() if n == KEY_ID_HEADER else v) for n, v in sealer._fixed]
    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    m = middle(parts[partition])
    written = dict(parts)
    for p in sorted(parts) if key_id is not None else [partition]:
        out: list[Copy] = []
        for at in range(0, len(parts[p]), 5):
            batch = [replace(c, key=b"CASE-FFFFFFFFFFFFFFFF") if p == partition and at + i == m else c
                     for i, c in enumerate(parts[p][at:at + 5])]
            headers = sealer.seal([(CASES, p, c.key, c.value,
                                    [(n, v) for n, v in c.headers if n not in STAGE_SEAL_NAMES]) for c in batch])
            sealer.commit()
            out += [replace(c, headers=h) for c, h in zip(batch, headers, strict=True)]
        written[p] = out
    rewrite_topic(recorded.bootstrap, CASES, lambda _: [c for p in sorted(written) for c in written[p]])
    return partition, m


def test_records_deleted_at_the_head_of_a_routed_topic_sooner_than_its_retention_could_are_named(
        recorded: Recorded, tmp_path: Path) -> None:  # noqa: F811
    """Round 3's residual: DeleteRecords on a routed topic (kept a year) looked like retention: exit 0. The first
    record left is record n > 1 of its stage's chain, whose key was registered (broker-stamped) minutes ago: retention
    cannot have removed records 1..n-1: RECORDS_DELETED at the first offset left."""
    from leadbus.stage_seals import SEQUENCE_HEADER

    routed = records_of(recorded.bootstrap, recorded.routed)
    parts = by_partition(routed)
    partition = max(parts, key=lambda p: len(parts[p]))
    status, failures, stdout = verify(recorded.bootstrap, recorded.routed, tmp_path / "routed-clean.json")
    assert status == 0 and not failures, stdout
    cut = next(c.offset for c in parts[partition][2:] if int(dict(c.headers)[SEQUENCE_HEADER]) > 1)
    admin = AdminClient({"bootstrap.servers": recorded.bootstrap})
    for future in admin.delete_records([TopicPartition(recorded.routed, partition, cut)]).values():
        future.result()
    status, failures, stdout = verify(recorded.bootstrap, recorded.routed, tmp_path / "routed-cut.json")
    assert status == 1 and ("RECORDS_DELETED", partition, cut) in located(failures), stdout
    assert f"{recorded.routed}[{partition}]@{cut}" in stdout


def test_a_partitions_last_record_re_dated_into_the_future_is_named(recorded: Recorded,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    """A record's broker time is not sealed: the busiest partition's last record re-dated half an hour on keeps the
    partition's order (exit 0 before) and drops out of any period an auditor asks for: TIMESTAMP_IN_FUTURE there."""
    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    rs = list(parts[partition])
    rs[-1] = replace(rs[-1], timestamp=rs[-1].timestamp + 1_800_000)  # (the broker refuses one over an hour on)
    rewrite_topic(recorded.bootstrap, CASES,
                  lambda _: [c for p in sorted(parts) for c in (rs if p == partition else parts[p])])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "future.json")
    assert status == 1 and ("TIMESTAMP_IN_FUTURE", partition, len(rs) - 1) in located(failures), stdout
    assert f"{CASES}[{partition}]@{len(rs) - 1}" in stdout
    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.cases))  # the next tests start from the day


def test_an_auditor_clock_running_slow_fails_no_clean_replay(recorded: Recorded,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """TIMESTAMP_IN_FUTURE judged "now" by the auditor machine's clock alone: one running 10 minutes slow made every
    partition of a clean leadbus.cases "re-dated" (exit 1). "Now" is the later of the clock and the newest time the
    broker stamped a record with (LogAppendTime topics: here the archive's heads, published after the traffic)."""
    from leadbus.audit import broker_time
    from leadbus.audit.replay import ReplayOptions, replay, seal_verifier_factory
    from leadbus.clients import settings_for

    settings = settings_for(recorded.bootstrap)
    assert broker_time.latest_broker_time(settings) is not None

    def slow() -> ReplayOptions:
        return ReplayOptions([CASES], seal_verifier=seal_verifier_factory(settings), clock=lambda: time.time() - 600,
                             workers=1)

    report = replay(slow(), settings)
    assert report.status == 0 and not report.failures, [f.to_json() for f in report.failures]
    monkeypatch.setattr(broker_time, "latest_broker_time", lambda *_a, **_k: None)  # the clock alone, as before
    report = replay(slow(), settings)
    assert {f.check for f in report.failures} == {"TIMESTAMP_IN_FUTURE"}


def test_a_period_starting_inside_a_transaction_at_an_altered_record_names_it(recorded: Recorded,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    """`--from` cutting through a sealed run, at a record altered (its later records' times moved 2 s on so that the
    period starts exactly there): the run's signature after it still vouches through its link."""
    from tests.audit_helpers import iso
    from tests.integration.audit_day.test_audit_red_team import ALTERED

    parts = by_partition(recorded.cases)
    partition = max(parts, key=lambda p: len(parts[p]))
    rs = list(parts[partition])
    m = inside_a_run(rs, -1, neighbour_unsigned=True)
    rs[m:] = [replace(c, timestamp=c.timestamp + 2000) for c in rs[m:]]
    value = rs[m].value or b"\x00"
    rs[m] = replace(rs[m], value=value[:-1] + bytes([value[-1] ^ 1]))
    rewrite_topic(recorded.bootstrap, CASES,
                  lambda _: [c for p in sorted(parts) for c in (rs if p == partition else parts[p])])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "from-inside.json", "--from",
                                      iso(rs[m].timestamp))
    assert status == 1 and any((c, partition, m) in located(failures) for c in (*ALTERED, "UNDECODABLE")), stdout
    rewrite_topic(recorded.bootstrap, CASES, lambda _: list(recorded.cases))


def test_a_schema_written_again_to_read_otherwise_under_its_fingerprint_is_named(recorded: Recorded,  # noqa: F811
                                                                                 tmp_path: Path) -> None:
    """The writer schema of leadbus.cases' records published again on leadbus.schemas with a timestamp-millis made
    timestamp-micros: the fingerprint (CRC-64 of the Parsing Canonical Form, logical types left out) is the same, the
    records would decode 1000 times off. The catalog keeps the packaged one (the records read right) and the replay
    passed, exit 0; now SCHEMA_ALTERED at the schema's record."""
    import json

    from leadbus.avro import packaged_catalog
    from leadbus.schema_topic import schema_record
    from leadbus.topics import SCHEMAS
    from tests.audit_helpers import append
    from tests.unit.test_schema_altered import _micros

    original = records_of(recorded.bootstrap, SCHEMAS)
    entry = packaged_catalog().by_fingerprint((recorded.cases[0].value or b"")[2:10])
    assert entry is not None
    key, value = schema_record(entry)
    body = json.loads(value)
    assert _micros(body["schema"]), entry.name
    append(recorded.bootstrap, SCHEMAS, [Copy(0, key, json.dumps(body).encode(), [], int(time.time() * 1000), 0)])
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "schema.json")
    at = max((c.offset for c in original), default=-1) + 1
    assert status == 1 and ("SCHEMA_ALTERED", 0, at) in located(failures), stdout
    assert f"{SCHEMAS}[0]@{at}" in stdout
    rewrite_topic(recorded.bootstrap, SCHEMAS, lambda _: original)


def test_the_schema_topic_cut_or_written_again_is_named_on_it(recorded: Recorded,  # noqa: F811
                                                               tmp_path: Path) -> None:
    """Round 4's residual: leadbus.schemas was compacted, so a schema known only from the topic, written again under
    its fingerprint to read otherwise, was the only record of it left once compaction ran (the first, the writer's,
    gone): nothing told. It is now kept whole and stamped by the broker, as the key registry: the topic created again
    compacted with its records written back (their times the writer's) is SCHEMAS_REWRITTEN at [0]@0 (exit 0 before);
    its first records deleted (DeleteRecords, which a compacted topic refused, or compaction) RECORDS_DELETED at
    leadbus.schemas[0]@<first left>."""
    from leadbus.avro import packaged_catalog
    from leadbus.schema_topic import publish_schemas
    from leadbus.topics import SCHEMAS

    publish_schemas(recorded.bootstrap, list(packaged_catalog()))  # as `leadbus schemas publish` does
    original = records_of(recorded.bootstrap, SCHEMAS)
    assert len(original) > 2
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "schemas-clean.json")
    assert status == 0 and not failures, stdout
    declared = {"cleanup.policy": "delete", "retention.ms": "-1", "message.timestamp.type": "LogAppendTime"}
    recreate_topic(recorded.bootstrap, SCHEMAS, original, {"cleanup.policy": "compact", "retention.ms": "-1"})
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "schemas-rewritten.json")
    assert status == 1 and ("SCHEMAS_REWRITTEN", 0, 0) in located(failures), stdout
    assert f"{SCHEMAS}[0]@0" in stdout
    recreate_topic(recorded.bootstrap, SCHEMAS, original, declared)
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "schemas-as-declared.json")
    assert status == 0 and not failures, stdout
    admin = AdminClient({"bootstrap.servers": recorded.bootstrap})  # (a compacted topic refuses DeleteRecords)
    for future in admin.delete_records([TopicPartition(SCHEMAS, 0, 2)]).values():
        future.result()
    status, failures, stdout = verify(recorded.bootstrap, CASES, tmp_path / "schemas-cut.json")
    assert status == 1 and ("RECORDS_DELETED", 0, 2) in located(failures), stdout
    assert f"{SCHEMAS}[0]@2" in stdout
    recreate_topic(recorded.bootstrap, SCHEMAS, original, declared)


def test_an_archive_manifest_rebuilt_without_its_first_file_is_named_against_the_published_head(
        recorded: Recorded, tmp_path: Path) -> None:  # noqa: F811
    """Round 4's residual: whoever controls the archive's files removes the first file and its line, numbers and
    chains the rest again: without --head the manifest vouched for itself (ARCHIVE_NO_HEAD, a notice: exit 0). The
    archive sink publishes each new head on leadbus.archive.heads, signed with its key: the replay checks the
    manifest against the latest (ARCHIVE_HEAD_CHECKED says which), and the rebuilt one is ARCHIVE_HEAD_MISMATCH, exit
    1. A head on the topic not signed by the archive's key is ARCHIVE_HEAD_FORGED at its record."""
    import hashlib
    import json
    import shutil

    from leadbus.sinks.archive import MANIFEST, ManifestLine, chain_of, read_manifest
    from leadbus.topics import ARCHIVE_HEADS
    from tests.audit_helpers import append
    from tests.integration.audit_day.test_audit_red_team import cli

    heads = records_of(recorded.bootstrap, ARCHIVE_HEADS)
    assert heads, "the archive sink published its heads"

    def replay(root: Path, name: str) -> tuple[int, list[dict[str, object]], str]:
        done = cli("replay", "--topic", CASES, "--verify", "--source", f"archive:{root}", "-b", recorded.bootstrap,
                   "--report", str(tmp_path / name))
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads((tmp_path / name).read_text())["findings"], done.stdout

    status, findings, stdout = replay(recorded.archive, "clean.json")
    checked = [f for f in findings if f["check"] == "ARCHIVE_HEAD_CHECKED"]
    assert status == 0 and not [f for f in findings if f["failure"]] and checked, stdout
    assert f"{ARCHIVE_HEADS}[0]@" in str(checked[0]["message"]) and "signed by LEADBUS-archive" in stdout, stdout
    root = tmp_path / "rebuilt"
    shutil.copytree(recorded.archive, root)
    lines = read_manifest(root)
    assert len(lines) > 1
    (root / lines[0].path).unlink()
    text, prev = [], "0" * 64
    for seq, old in enumerate(lines[1:], start=1):
        digest = hashlib.sha256((root / old.path).read_bytes()).hexdigest()
        chain = chain_of(prev, digest, old.path)
        text.append(ManifestLine(seq, old.path, old.topic, old.partition, old.records, old.first_offset,
                                 old.last_offset, digest, prev, chain).to_json())
        prev = chain
    (root / MANIFEST).write_text("".join(f"{t}\n" for t in text), encoding="utf-8")
    status, findings, stdout = replay(root, "rebuilt.json")
    assert status == 1 and "ARCHIVE_HEAD_MISMATCH" in {f["check"] for f in findings if f["failure"]}, stdout
    assert f"{ARCHIVE_HEADS}[0]@" in stdout and MANIFEST in stdout, stdout
    # a head written by another (signed with a key not the archive's): named where it sits, not used
    last = heads[-1]
    append(recorded.bootstrap, ARCHIVE_HEADS, [Copy(0, last.key, last.value, [("leadbus-head-key-id", b"0" * 16),
                                                                              ("leadbus-head-signature", b"x" * 64)],
                                                    int(time.time() * 1000), 0)])
    status, findings, stdout = replay(recorded.archive, "forged.json")
    assert status == 1 and ("ARCHIVE_HEAD_FORGED", 0, len(heads)) in located(
        [f for f in findings if f["failure"]]), stdout
    rewrite_topic(recorded.bootstrap, ARCHIVE_HEADS, lambda _: heads)


# -- last: the key registry rewritten ------------------------------------------------------------------------------


def test_the_key_registry_usurped_written_again_or_cut_is_named_on_the_registry(recorded: Recorded,  # noqa: F811
                                                                         tmp_path: Path, spoils_day: None) -> None:
    """A registered key's record written again with another public key (its key id kept): KEY_NOT_ITS_OWN. Round 3's
    residual: someone who can administer the bus deletes `leadbus.publishers`, creates it again (its
    timestamps the writer's: CreateTime) and writes a key of their own first, dated two days back, then every record it
    held; a partition of leadbus.cases resealed with that key over an altered record. The forged key sat at offset 0
    with a time before everything: every seal held, exit 0. Now REGISTRY_REWRITTEN at leadbus.publishers[0]@0; written
    again as declared (LogAppendTime), every key reads registered after what it signed (KEY_REGISTERED_LATER); a
    record deleted from the registry is RECORDS_DELETED there."""
    bootstrap = recorded.bootstrap
    status, failures, stdout = verify(bootstrap, CASES, tmp_path / "clean.json")
    assert status == 0 and not failures, stdout
    original = records_of(bootstrap, PUBLISHERS)
    # The linking stage's registered key written again with the attacker's public key (its key id kept), and a
    # partition resealed with it over an altered record: the registration is the old one, every seal holds (before:
    # exit 0). A key id is the hash of its key: KEY_NOT_ITS_OWN at the record that put the other key in its place.
    key_id = dict(recorded.cases[0].headers)[KEY_ID_HEADER].decode()
    (linking,) = [k for k in read_registry(bootstrap).keys_of("LEADBUS-linking") if k.key_id == key_id]
    usurper = Ed25519PrivateKey.generate()
    write_keys(bootstrap, [replace(linking, public_key=public_bytes(usurper.public_key()))])
    _resealed_by(recorded, usurper, key_id)
    status, failures, stdout = verify(bootstrap, CASES, tmp_path / "usurped.json")
    assert status == 1 and ("KEY_NOT_ITS_OWN", 0, len(original)) in located(failures), stdout
    assert f"{PUBLISHERS}[0]@{len(original)}" in stdout
    attacker = Ed25519PrivateKey.generate()
    raw = public_bytes(attacker.public_key())
    back = datetime.now(UTC) - timedelta(days=2)
    k, v = key_record(PublisherKey("LEADBUS-linking", key_id_of(raw), raw, back, back, require_signed=False))
    forged = [Copy(0, k, v, [], int(back.timestamp() * 1000), 0), *original]
    recreate_topic(bootstrap, PUBLISHERS, forged, {"cleanup.policy": "compact", "retention.ms": "-1"})
    partition, _ = _resealed_by(recorded, attacker)
    status, failures, stdout = verify(bootstrap, CASES, tmp_path / "writer-stamped.json")
    assert status == 1 and ("REGISTRY_REWRITTEN", 0, 0) in located(failures), stdout
    assert f"{PUBLISHERS}[0]@0" in stdout
    # written again as declared: the broker stamps every key record now, after every record its key signed
    recreate_topic(bootstrap, PUBLISHERS, forged, {"cleanup.policy": "delete", "retention.ms": "-1",
                                              "message.timestamp.type": "LogAppendTime"})
    status, failures, stdout = verify(bootstrap, CASES, tmp_path / "broker-stamped.json")
    later = {f["partition"] for f in failures if f["check"] == "KEY_REGISTERED_LATER" and f["topic"] == CASES}
    assert status == 1 and partition in later and len(later) > 1, stdout
    assert not [f for f in failures if f["topic"] == PUBLISHERS], failures
    # a record of the registry deleted (its first two): named where the log now starts
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_records([TopicPartition(PUBLISHERS, 0, 2)]).values():
        future.result()
    status, failures, stdout = verify(bootstrap, CASES, tmp_path / "registry-cut.json")
    assert status == 1 and ("RECORDS_DELETED", 0, 2) in located(failures) and f"{PUBLISHERS}[0]@2" in stdout, stdout
