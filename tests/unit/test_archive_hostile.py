"""An archive tampered on disk in ways of someone else's making (issue #14's outside check, red team round 12): each is
named at its file, never a traceback, a hang or a replay that passes; and an export stopped halfway leaves no file
that looks complete."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from leadbus.audit.archive_source import ArchiveSource
from leadbus.audit.replay import ReplayOptions, replay
from leadbus.avro import packaged_catalog
from leadbus.sinks.archive import MANIFEST, ArchiveWriter, Problem, chain_of, read_manifest, verify
from tests.unit.test_archive import _append, _events


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    with ArchiveWriter(root) as writer:
        _append(writer, _events())
    return root


@pytest.fixture
def copy(archive: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(archive, target)
    for path in target.rglob("*.avro"):
        path.chmod(0o644)
    return target


def _docs(root: Path) -> list[dict[str, Any]]:
    return [json.loads(t) for t in (root / MANIFEST).read_text(encoding="utf-8").splitlines()]


def _write(root: Path, docs: list[dict[str, Any]], *, rechain: bool) -> str:
    """The manifest written back; `rechain`: with digests and chain made again, as a tamperer holding the head would."""
    prev, text = "0" * 64, []
    for doc in docs:
        if rechain:
            doc = {**doc, "prev": prev, "sha256": hashlib.sha256((root / doc["path"]).read_bytes()).hexdigest()}
            doc["chain"] = prev = chain_of(prev, doc["sha256"], doc["path"])
        text.append(json.dumps(doc) + "\n")
    (root / MANIFEST).write_text("".join(text), encoding="utf-8")
    return prev


def _source(root: Path) -> ArchiveSource:
    topic = read_manifest_topics(root)
    return ArchiveSource(root, [topic], packaged_catalog())


def read_manifest_topics(root: Path) -> str:
    return str(next(p.name for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith("leadbus.")))


def _kinds(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.kind, p.path) for p in problems}


@pytest.mark.parametrize("change", [
    {"partition": "0"}, {"records": None}, {"path": 12345}, {"first_offset": 1.5}, {"seq": True}, {"topic": ["x"]},
])
def test_a_manifest_line_with_a_field_of_another_type_is_a_manifest_problem(copy: Path, change: dict[str, Any]) -> None:
    """Before: a partition as text made the replay's plan sort str against int, a path as a number failed `split`
    (tracebacks, exit 1 for the wrong reason)."""
    docs = _docs(copy)
    docs[3] = {**docs[3], **change}
    _write(copy, docs, rechain=False)
    problems = verify(copy)
    assert any(p.kind == "manifest" and "line 4 is not a manifest line" in p.message for p in problems), problems
    source = _source(copy)
    source.plan()
    assert sum(1 for _ in source.records()) > 0


@pytest.mark.parametrize("path", ["leadbus.x/" + "a" * 5000 + "/08-p0.avro", "leadbus.x/2026-11-01/08\x00-p0.avro"])
def test_a_manifest_path_no_file_system_takes_is_named_not_raised(copy: Path, path: str) -> None:
    """Before: a name too long for the file system raised OSError out of `verify` (a traceback)."""
    docs = _docs(copy)
    docs[2] = {**docs[2], "path": path}
    _write(copy, docs, rechain=False)
    problems = verify(copy)
    assert any(p.path == path and p.kind in ("unreadable", "removed") for p in problems), problems


def test_a_pipe_in_a_files_place_is_named_and_never_waited_on(copy: Path) -> None:
    """Before: `verify` named it removed, then the replay opened it to read its records and waited for ever."""
    line = read_manifest(copy)[1]
    (copy / line.path).unlink()
    os.mkfifo(copy / line.path)
    assert ("removed", line.path) in _kinds(verify(copy))
    source = ArchiveSource(copy, [line.topic], packaged_catalog())
    source.plan()
    done: list[int] = []
    reader = threading.Thread(target=lambda: done.append(sum(1 for _ in source.records())), daemon=True)
    reader.start()
    reader.join(20)
    if not done:  # let the stuck reader go: open the pipe's other end
        with (copy / line.path).open("wb"):
            pass
    assert done, "the replay waited on a pipe"
    assert any(path == line.path for path, _ in source.unreadable)


@pytest.mark.parametrize("rename", [("/08-", "/19-"), ("2026-11-01", "2026-10-31")])
def test_a_file_renamed_to_another_hour_and_chained_again_is_modified(copy: Path, rename: tuple[str, str]) -> None:
    """Before: with the manifest chained again (and that head passed), nothing said the file's records were of another
    hour than its name, and a replay of their period passed over it (`_may_hold` plans by the name's hour)."""
    docs = _docs(copy)
    old = docs[0]["path"]
    new = old.replace(*rename)
    assert new != old
    (copy / new).parent.mkdir(parents=True, exist_ok=True)
    (copy / old).rename(copy / new)
    docs[0] = {**docs[0], "path": new}
    head = _write(copy, docs, rechain=True)
    problems = verify(copy, head=head)
    assert any(p.kind == "modified" and p.path == new and "its records are stamped" in p.message
               for p in problems), problems


def test_the_sinks_own_files_agree_with_their_hour(archive: Path) -> None:
    assert verify(archive) == []


@pytest.mark.parametrize("damage", ["removed", "emptied", "folder", "utf-16"])
def test_a_manifest_removed_emptied_or_unreadable_beside_archived_files_is_tampering(copy: Path, damage: str) -> None:
    """Before: "not an archive" or "the archive holds nothing of T" (exit 2, a usage error) where files of T were
    there to be named: a verified replay goes on and names each, unlisted (exit 1)."""
    manifest = copy / MANIFEST
    topic = read_manifest_topics(copy)
    if damage == "removed":
        manifest.unlink()
    elif damage == "emptied":
        manifest.write_text("")
    elif damage == "folder":
        manifest.unlink()
        manifest.mkdir()
    else:
        manifest.write_bytes(manifest.read_text(encoding="utf-8").encode("utf-16"))
    report = replay(ReplayOptions(topics=[topic], source=f"archive:{copy}", verify=True, workers=1))
    assert report.status == 1
    unlisted = {f.file for f in report.failures if f.check == "ARCHIVE_UNLISTED"}
    assert any(path.startswith(f"{topic}/") for path in unlisted), report.failures


def test_an_empty_folder_is_still_not_an_archive(tmp_path: Path) -> None:
    from leadbus.audit.replay import ReplayError

    with pytest.raises(ReplayError, match="not an archive"):
        replay(ReplayOptions(topics=["leadbus.cases"], source=f"archive:{tmp_path}", verify=True, workers=1))


@pytest.mark.parametrize("fmt", ["avro", "jsonl"])
def test_an_export_stopped_halfway_leaves_no_file_that_looks_complete(archive: Path, tmp_path: Path, fmt: str) -> None:
    """Before: the exporter was flushed and closed on the way out of an interrupt, leaving a readable Avro file (or
    JSON Lines) of the records read so far at --out."""
    out = tmp_path / f"export.{fmt}"
    topic = read_manifest_topics(archive)
    seen: list[int] = []

    def interrupt(done: int, _: int | None) -> None:
        seen.append(done)
        if done >= 1:
            raise KeyboardInterrupt

    options = ReplayOptions(topics=[topic], source=f"archive:{archive}", fmt=fmt, out=out, verify=False)
    with pytest.raises(KeyboardInterrupt):
        replay(options, progress=interrupt)
    assert seen and not out.exists() and not list(tmp_path.iterdir())
    report = replay(options)
    assert report.selected > 0 and out.exists() and not (tmp_path / f"export.{fmt}.partial").exists()


@pytest.mark.parametrize("denied", ["file", "manifest"])
def test_a_file_the_auditor_may_not_read_is_an_access_error(copy: Path, denied: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2, not a verification failure: permissions are the auditor's access (tests run as root, whom no mode bit
    stops: the refusal is what the file system would answer). Before: an OSError traceback out of `verify`."""
    from leadbus.audit.replay import ReplayError

    line = read_manifest(copy)[2]
    name = Path(line.path).name if denied == "file" else MANIFEST
    opened = Path.open

    def refusing(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == name:
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing)
    with pytest.raises(ReplayError, match="access refused to the archive"):
        replay(ReplayOptions(topics=[line.topic], source=f"archive:{copy}", verify=True, workers=1))
    if denied == "manifest":  # without --verify too: nothing can be planned
        with pytest.raises(ReplayError, match="Permission denied"):
            replay(ReplayOptions(topics=[line.topic], source=f"archive:{copy}", verify=False, workers=1))


@pytest.mark.parametrize(("pattern", "said"), [("^leadbus\\.nothing\\..*", "holds nothing of"),
                                               ("^(", "not a regular expression")])
def test_a_topic_pattern_that_matches_nothing_or_does_not_compile_is_a_usage_error(archive: Path, pattern: str,
                                                                                  said: str) -> None:
    """Before: nothing matched was 0 records "verified" (exit 0); a pattern that does not compile a traceback."""
    from leadbus.audit.replay import ReplayError

    with pytest.raises(ReplayError, match=said):
        replay(ReplayOptions(topics=[pattern], source=f"archive:{archive}", verify=True, workers=1))


def test_a_verified_archive_replay_without_a_head_says_what_it_could_not_tell(archive: Path) -> None:
    """A manifest rolled back to an earlier head (its later files removed) passes without `--head`: the replay says so
    (a notice, exit 0), and says nothing of it when the head is given."""
    topic = read_manifest_topics(archive)
    bare = replay(ReplayOptions(topics=[topic], source=f"archive:{archive}", verify=True, workers=1))
    assert bare.status == 0 and [f.check for f in bare.notices] == ["ARCHIVE_NO_HEAD"]
    head = read_manifest(archive)[-1].chain
    headed = replay(ReplayOptions(topics=[topic], source=f"archive:{archive}", verify=True, head=head, workers=1))
    assert headed.status == 0 and not headed.notices


def test_a_head_is_read_as_printed_and_one_of_another_shape_is_a_usage_error(archive: Path) -> None:
    """Before: a head copied in upper case or with a trailing newline was 'not the expected head' (exit 1, tampering);
    one cut short the same."""
    from leadbus.audit.replay import ReplayError

    topic = read_manifest_topics(archive)
    head = read_manifest(archive)[-1].chain
    report = replay(ReplayOptions(topics=[topic], source=f"archive:{archive}", verify=True, head=f" {head.upper()}\n",
                                  workers=1))
    assert report.status == 0, report.failures
    with pytest.raises(ReplayError, match="not a chain head"):
        replay(ReplayOptions(topics=[topic], source=f"archive:{archive}", verify=True, head=head[:40], workers=1))
