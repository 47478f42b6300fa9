"""A replay without --verify reads in this one process: it takes no measure of the machine's load (150 ms asleep,
`leadbus.audit.processes.measured_load`) to choose a number of processes it would not use; with --verify it still
measures, and the summary is the same either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadbus.audit import processes
from leadbus.audit.replay import ReplayOptions, replay
from leadbus.avro import decode
from leadbus.sinks.archive import ArchiveWriter, Coordinates
from leadbus.topics import CASES
from tests.unit.test_audit_vouched import CATALOG, STAMP, streams


def _archive(root: Path) -> int:
    _, cases, _ = streams()
    with ArchiveWriter(root) as writer:
        for offset, (topic, partition, key, value, headers) in enumerate(r for r in cases if r[1] == 0):
            entry, event = decode(CATALOG, value or b"")
            writer.append(Coordinates(topic, partition, offset, STAMP + offset, key, tuple(headers)), entry, event)
    return offset + 1


@pytest.mark.parametrize("verify", [False, True])
def test_the_load_is_measured_for_a_verified_replay_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          verify: bool) -> None:
    records = _archive(tmp_path)
    measured: list[int] = []

    def measure(cpus: int, window: float = processes.LOAD_WINDOW, watch: object = None) -> float:
        measured.append(cpus)
        return 0.0

    monkeypatch.setattr(processes, "measured_load", measure)
    report = replay(ReplayOptions(topics=[CASES], source=f"archive:{tmp_path}", verify=verify, split_min=1))
    assert report.records == report.selected == records
    assert sum(report.by_type_publisher.values()) == records
    assert report.processes == 1
    assert bool(measured) == verify, measured
