"""`judge`: an archive copy's manifest against the heads its sink published (signed with LEADBUS-archive's key)."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from leadbus.audit.archive_heads import PublishedHead, judge
from leadbus.signing import KeyRegistry, PublisherKey, key_id_of, public_bytes
from leadbus.sinks.archive import ZERO_CHAIN, ManifestLine, chain_of
from leadbus.sinks.archive_heads import head_record, signer
from leadbus.topics import ARCHIVE_HEADS

KEY = Ed25519PrivateKey.generate()
RAW = public_bytes(KEY.public_key())
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REGISTRY = KeyRegistry([PublisherKey(signer(), key_id_of(RAW), RAW, T0, T0, require_signed=False)])


def manifest(n: int, salt: str = "") -> list[ManifestLine]:
    lines, prev = [], ZERO_CHAIN
    for seq in range(1, n + 1):
        path, digest = f"leadbus.cases/2026-01-01/00-p{seq}.avro", f"{seq}{salt}".ljust(64, "0")
        line = ManifestLine(seq, path, "leadbus.cases", 0, 1, seq, seq, digest, prev, chain_of(prev, digest, path))
        lines.append(line)
        prev = line.chain
    return lines


def published(lines: list[ManifestLine], key: Ed25519PrivateKey | None = KEY, archive: str = "leadbus-archive",
              first: int = 0) -> list[PublishedHead]:
    out = []
    for offset, line in enumerate(lines, first):
        record_key, value, headers = head_record(archive, line, key)
        out.append(PublishedHead(offset, 1_700_000_000_000, True, value,
                                 tuple((n, v if isinstance(v, bytes) or v is None else v.encode())
                                       for n, v in headers), record_key))
    return out


def checks(found: list) -> list[tuple[str, bool]]:  # type: ignore[type-arg]
    return [(f.check, f.failure) for f in found]


def test_the_manifest_as_published_is_checked_against_the_latest_head_and_says_which() -> None:
    lines = manifest(4)
    found = judge(lines, published(lines), REGISTRY)
    assert checks(found) == [("ARCHIVE_HEAD_CHECKED", False)]
    assert f"{ARCHIVE_HEADS}[0]@3" in found[0].message and "signed by LEADBUS-archive" in found[0].message


def test_a_manifest_rebuilt_without_its_first_file_is_a_mismatch() -> None:
    lines = manifest(4)
    rebuilt = manifest(3, salt="x")
    found = judge(rebuilt, published(lines), REGISTRY)
    assert ("ARCHIVE_HEAD_MISMATCH", True) in checks(found)
    assert any(f"{ARCHIVE_HEADS}[0]@2" in f.message for f in found if f.check == "ARCHIVE_HEAD_MISMATCH")


def test_an_older_copy_and_lines_sealed_after_the_last_head_are_notices() -> None:
    lines = manifest(5)
    older = judge(lines[:3], published(lines), REGISTRY)
    assert checks(older) == [("ARCHIVE_HEAD_CHECKED", False), ("ARCHIVE_HEAD_BEHIND", False)]
    newer = judge(lines, published(lines[:3]), REGISTRY)
    assert checks(newer) == [("ARCHIVE_HEAD_CHECKED", False), ("ARCHIVE_HEAD_BEHIND", False)]
    assert "2 manifest line(s) after seq 3" in newer[1].message


def test_a_head_not_signed_by_the_archives_key_is_forged_and_not_used() -> None:
    lines = manifest(3)
    other = Ed25519PrivateKey.generate()
    heads = published(lines) + published(manifest(3, salt="x"), other)[2:]
    heads[-1] = PublishedHead(3, heads[-1].timestamp_ms, True, heads[-1].value, heads[-1].headers)
    found = judge(lines, heads, REGISTRY)
    assert ("ARCHIVE_HEAD_FORGED", True) in checks(found) and ("ARCHIVE_HEAD_CHECKED", False) in checks(found)
    assert [f.offset for f in found if f.check == "ARCHIVE_HEAD_FORGED"] == [3]


def test_unsigned_heads_are_used_and_said_so_and_none_is_the_old_notice() -> None:
    lines = manifest(2)
    found = judge(lines, published(lines, None), REGISTRY)
    assert checks(found) == [("ARCHIVE_HEAD_CHECKED", False)] and "unsigned" in found[0].message
    assert checks(judge(lines, [], REGISTRY)) == [("ARCHIVE_NO_HEAD", False)]


def test_two_archives_heads_are_not_confused_and_the_copy_is_judged_against_its_own() -> None:
    """Heads were read by seq alone: a second archive's seq 2 was "published again with another chain" (a failure on a
    clean bus) and the copy was checked against whichever archive published last."""
    mine, other = manifest(3), manifest(3, salt="other")
    heads = published(mine) + published(other, archive="second-archive", first=3)
    found = judge(mine, heads, REGISTRY)
    assert checks(found) == [("ARCHIVE_HEAD_CHECKED", False)] and f"{ARCHIVE_HEADS}[0]@2" in found[0].message
    assert checks(judge(other, heads, REGISTRY)) == [("ARCHIVE_HEAD_CHECKED", False)]
    named = judge(mine, heads, REGISTRY, "second-archive")  # the copy said to be the other's
    assert checks(named) == [("ARCHIVE_HEAD_MISMATCH", True)] and f"{ARCHIVE_HEADS}[0]@5" in named[0].message
    rebuilt = judge(manifest(3, salt="x"), heads, REGISTRY)
    assert checks(rebuilt) == [("ARCHIVE_HEAD_MISMATCH", True)]
    assert "'leadbus-archive' seq 3" in rebuilt[0].message and "'second-archive' seq 3" in rebuilt[0].message
    unknown = judge(mine, heads, REGISTRY, "third")
    assert checks(unknown) == [("ARCHIVE_HEAD_MISMATCH", True)] and "no head of archive 'third'" in unknown[0].message


def test_a_head_naming_no_archive_is_read_by_its_record_key() -> None:
    """A head whose value names no archive (a sink from before heads were read per archive) belongs to the archive its
    record key names."""
    import json

    lines = manifest(2)
    heads = []
    for head in published(lines, None):
        doc = json.loads(head.value)
        del doc["archive"]
        heads.append(PublishedHead(head.offset, head.timestamp_ms, True, json.dumps(doc).encode(), (), head.key))
    found = judge(lines, heads + published(manifest(2, salt="o"), None, "other", 2), REGISTRY, "leadbus-archive")
    assert checks(found) == [("ARCHIVE_HEAD_CHECKED", False)] and f"{ARCHIVE_HEADS}[0]@1" in found[0].message
