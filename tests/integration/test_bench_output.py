"""`make bench` output carries figures, not librdkafka's raw lines nor its transient retry warnings.

A bench with a fresh broker (bench/publish.py, small) run the way `bench/run_all.py` runs every bench: its
stdout and stderr together. A transactional or idempotent producer started right after its broker meets
"Coordinator load in progress: retrying" (GETPID) most times; that retry belongs at debug level.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import run_all  # noqa: E402 - bench/ is a folder of scripts, not a package

pytestmark = pytest.mark.integration


def test_a_bench_prints_its_figures_and_no_librdkafka_line() -> None:
    lines, code, _ = run_all.run("publish", ["--leads", "500", "--rounds", "1"])
    assert code == 0, "\n".join(lines)
    assert any(line.startswith("raw confluent-kafka") for line in lines), lines
    assert [line for line in lines if run_all.RAW_LIBRDKAFKA.match(line)] == []
    assert [line for line in lines if "rdkafka#" in line or "GETPID" in line or "retrying" in line] == []


def test_the_replay_bench_measures_in_rounds_in_a_process_of_its_own() -> None:
    """bench/replay.py small: the fill in this process, the raw read and replays in a fresh one, a median per choice."""
    lines, code, _ = run_all.run("replay", ["--leads", "300", "--rebuild-leads", "100", "--rounds", "2",
                                            "--workers", "0", "2", "--quiet-wait", "3"])
    assert code == 0, "\n".join(lines)
    # each topic measured once the machine was quiet, or after waiting what it was told to at most: said either way
    waits = [line for line in lines if re.match(r"(intake topics|leadbus\.leads\.accepted|leadbus\.cases): machine "
                                                r"(quiet|not quiet \([0-9.]+ cores busy\)) after [0-4]s", line)]
    assert len(waits) == 3, lines
    medians = [line for line in lines if "**ratio" in line]
    assert len(medians) == 6, lines  # three topic sets, auto and 2 processes each
    assert sum(bool(re.search(r" round [12]: raw read 300 records", line)) for line in lines) == 12, lines
    assert any(line.startswith("rebuild: 100 accepted leads") for line in lines), lines
    assert [line for line in lines if run_all.RAW_LIBRDKAFKA.match(line)] == []
