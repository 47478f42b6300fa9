"""An archive replay `--to` reads on in the archive to the signature closing each lane it left open (issue #14's
outside check, round 3), as a Kafka replay does (`leadbus.audit.read_on`).

A record altered in the middle of the period's last transaction, the later records of that transaction re-stamped a
little later (broker timestamps are not sealed) and the archive file re-chained: with `--to` just after the altered
record, its lane's unvouched tail was a notice and the replay passed (exit 0). The archive holds the rest of the
transaction: the broken link is named at the altered record, at its archive file and index."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from leadbus.audit.replay import ReplayOptions, replay
from leadbus.audit.seals import BusSealVerifier
from leadbus.avro import decode
from leadbus.signing import KeyRegistry
from leadbus.sinks.archive import ArchiveWriter, Coordinates
from leadbus.stage_seals import SIGNATURE_HEADER
from leadbus.topics import CASES
from tests.unit.test_audit_vouched import CATALOG, STAMP, Row, streams

_MINUTE = 60_000


def _archive(root: Path, rows: list[Row], m: int, *, alter: bool) -> list[tuple[int, int]]:
    """Partition 0's case records archived, each transaction a minute after the one before, the records after `m` in
    its transaction two seconds later still (and `m`'s key changed if `alter`); (offset, time) of each."""
    placed = []
    restamped: int | None = m
    with ArchiveWriter(root) as writer:
        minute = 0
        for offset, (topic, partition, key, value, headers) in enumerate(rows):
            ms = STAMP + minute * _MINUTE + (2000 if restamped is not None and offset > restamped else 0)
            if offset == m and alter:
                key = b"CASE-FFFFFFFFFFFFFFFF"
            entry, event = decode(CATALOG, value or b"")
            writer.append(Coordinates(topic, partition, offset, ms, key, tuple(headers)), entry, event)
            placed.append((offset, ms))
            if any(n == SIGNATURE_HEADER for n, _ in headers):
                minute += 1
                restamped = None if restamped is not None and offset >= restamped else restamped
    return placed


def _replay(root: Path, registry: KeyRegistry, end_ms: int) -> tuple[int, list[tuple[str, int | None]], list[str]]:
    from datetime import UTC, datetime

    report = replay(ReplayOptions(topics=[CASES], source=f"archive:{root}", seal_verifier=BusSealVerifier(registry),
                                  end=datetime.fromtimestamp(end_ms / 1000, UTC)))
    return report.status, [(f.check, f.offset) for f in report.failures], [f.check for f in report.notices]


def test_a_record_altered_inside_the_last_transaction_of_the_period_is_named_from_the_archive(tmp_path: Path) -> None:
    _, cases, registry = streams()
    rows = [r for r in cases if r[1] == 0]
    signed = [i for i, r in enumerate(rows) if any(n == SIGNATURE_HEADER for n, _ in r[4])]
    # a record inside a transaction (not its last) of at least three, not the first transaction
    m = next(a + 1 for a, b in pairwise(signed) if b - a >= 3)
    placed = _archive(tmp_path / "altered", rows, m, alter=True)
    status, failures, _ = _replay(tmp_path / "altered", registry, placed[m][1] + 1)
    assert status == 1 and ("STAGE_CHAIN_BROKEN", m) in failures, failures
    # untampered, re-stamped alike, the same period: the signature is found past it, no notice, exit 0
    placed = _archive(tmp_path / "clean", rows, m, alter=False)
    status, failures, notices = _replay(tmp_path / "clean", registry, placed[m][1] + 1)
    assert status == 0 and not failures and "STAGE_UNSIGNED_TAIL" not in notices, (failures, notices)
