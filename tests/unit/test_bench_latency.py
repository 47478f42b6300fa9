"""bench/latency.py's CPU accounting: per lead, with the broker's threads apart and each process's idle upkeep off."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import latency  # noqa: E402 - bench/ is a folder of scripts, not a package


def sampler(samples: list[tuple[float, dict[str, int], dict[str, float]]]) -> Any:
    s = latency.Sampler(None, Path("/nonexistent"), None, {}, interval=1.0)  # type: ignore[arg-type]
    s.samples = samples
    return s


def figures(line: str) -> dict[str, float]:
    body = line.split(": ", 1)[1].split(" (", 1)[0]
    return {k: float(v) for k, v in (part.rsplit(" ", 1) for part in body.replace(";", ",").split(", "))}


def test_per_lead_cpu_without_idle_upkeep_and_the_broker_split_apart_from_the_total() -> None:
    # Idle from t=0 to t=10: the broker uses 0.1 core (0.05 of it JIT), linking nothing.
    # Publishing from t=10 to t=30, 1,000 leads: the broker 0.5 core, linking 0.25.
    samples = [
        (0.0, {}, {"broker": 0.0, "broker/jit": 0.0, "broker/gc": 0.0, "broker/kafka": 0.0, "linking": 0.0}),
        (10.0, {}, {"broker": 1.0, "broker/jit": 0.5, "broker/gc": 0.0, "broker/kafka": 0.5, "linking": 0.0}),
        (30.0, {"linking": 0}, {"broker": 11.0, "broker/jit": 2.5, "broker/gc": 0.5, "broker/kafka": 8.0,
                                "linking": 5.0}),
    ]
    lines, total = sampler(samples).report(10.0, 30.0, 1000, idle_since=0.0)
    per_lead = figures(next(line for line in lines if line.startswith("  CPU ms per lead published")))
    assert per_lead == {"broker": 10.0, "linking": 5.0, "total": 15.0}  # the split is not counted twice
    assert total == pytest.approx(15.0)
    split = figures(next(line for line in lines if line.startswith("  of the broker's")))
    assert split == {"jit": 2.0, "gc": 0.5, "kafka": 7.5}
    net = figures(next(line for line in lines if line.startswith("  CPU ms per lead without that upkeep")))
    # broker: 0.5 core − 0.1 core idle over 20 s = 8 s for 1,000 leads
    assert net == {"broker": 8.0, "linking": 5.0, "total": 13.0}


def test_without_an_idle_window_no_upkeep_line() -> None:
    samples = [(0.0, {}, {"intake": 0.0}), (10.0, {}, {"intake": 1.0})]
    lines, total = sampler(samples).report(0.0, 10.0, 500)
    assert total == pytest.approx(2.0)
    assert not any("upkeep" in line for line in lines)


def test_threads_of_a_process_add_up_to_its_cpu() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    by_kind = latency.Sampler.jvm_threads(os.getpid())
    whole = latency.Sampler.cpu_seconds(os.getpid())
    assert whole is not None and whole > 0
    assert set(by_kind) == {"jit", "gc", "kafka"}
    assert by_kind["jit"] == 0 and by_kind["gc"] == 0  # no JVM threads in a Python process
    # /proc/<pid>/stat counts exited threads too; the live threads' sum is at most that, and most of it
    assert whole * 0.5 <= by_kind["kafka"] <= whole + 0.05


def test_a_process_tree_counts_its_children_live_and_reaped() -> None:
    import subprocess

    before = latency.Sampler.tree_cpu_seconds(os.getpid())
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    subprocess.run([sys.executable, "-c", burn], check=True)  # reaped: in our cutime
    live = subprocess.Popen([sys.executable, "-c", burn + "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (latency.Sampler.cpu_seconds(live.pid) or 0) < 0.3:
            time.sleep(0.05)
        after = latency.Sampler.tree_cpu_seconds(os.getpid())
        assert before is not None and after is not None
        assert after - before >= 0.55  # both children's 0.3 s (less a tick each)
        assert (latency.Sampler.cpu_seconds(os.getpid()) or 0) < after - 0.5  # the process alone counts neither
    finally:
        live.communicate(b"")


def test_the_bench_splits_its_cpu_between_the_publisher_and_its_readers() -> None:
    s = sampler([])
    assert s.bench_threads(os.getpid()) == {}  # readers not known yet: no split
    go, started, spun, done = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    def spin() -> None:  # 0.4 s of its own CPU, however long the machine takes to give it; then alive and idle
        started.set()
        go.wait()
        t = time.thread_time()
        while time.thread_time() - t < 0.4:
            sum(range(1000))
        spun.set()
        done.wait(60)

    reader = threading.Thread(target=spin)
    reader.start()
    started.wait()
    s.readers = frozenset({reader.native_id or 0})
    before = s.bench_threads(os.getpid())
    go.set()
    assert spun.wait(120)
    time.sleep(0.05)  # /proc's figures move in clock ticks
    after = s.bench_threads(os.getpid())  # the thread is still alive: its task is still listed
    done.set()
    reader.join(10)
    assert set(after) == {"publisher", "readers"}
    assert after["readers"] - before["readers"] >= 0.3  # the spinning thread is the reader's
    assert after["publisher"] - before["publisher"] <= 0.15  # the main thread mostly waited


def test_the_idle_window_may_end_before_the_measured_one_begins() -> None:
    # Idle t=0..10 (broker 0.1 core), warm-up t=10..20 (not counted), measured t=20..40: 1,000 leads, broker 0.5 core.
    samples = [(0.0, {}, {"broker": 0.0}), (10.0, {}, {"broker": 1.0}), (20.0, {}, {"broker": 9.0}),
               (40.0, {}, {"broker": 19.0})]
    lines, total = sampler(samples).report(20.0, 40.0, 1000, idle_since=0.0, idle_until=10.0)
    assert total == pytest.approx(10.0)
    net = figures(next(line for line in lines if line.startswith("  CPU ms per lead without that upkeep")))
    assert net == {"broker": 8.0, "total": 8.0}  # the warm-up's 0.8 core is not taken for upkeep


def test_offsets_per_lead_by_topic() -> None:
    (line,) = latency.offsets_lines({"leadbus.cases": 100, "leadbus.state.linking": 0, "quiet": 5},
                                    {"leadbus.cases": 1350, "leadbus.state.linking": 6000, "quiet": 5, "new": 10}, 1000)
    assert line.endswith("all topics 7.26: state.linking 6.00, cases 1.25")
    assert latency.offsets_lines({}, {}, 1000) == []


def test_hops_split_each_leads_time_into_produced_and_visible_per_stage() -> None:
    seen = latency.Seen(published={"L1": 100.0, "L2": 100.5})
    where = {name: (name, 0, i) for i, name in enumerate(("e1", "e2", "j1", "j2", "c1", "c2", "r1", "r2"))}
    hops = {
        "intake: examine": [(100.05, "", 0, ["L1"], where["e1"]), (100.55, "", 0, ["L2"], where["e2"])],
        "intake: judge": [(100.2, "", 0, ["L1"], where["j1"]), (100.7, "", 0, ["L2"], where["j2"])],
        # L2 joins L1's case at version 2: its case's first bulletin at version 2 or later is its
        "linking": [(100.3, "C", 1, ["L1"], where["c1"]), (100.8, "C", 2, ["L1", "L2"], where["c2"])],
        "routing": [(100.35, "C", 1, [], where["r1"]), (100.9, "C", 2, [], where["r2"])],
    }
    seen.visible = {where["e1"]: 100.1, where["e2"]: 100.6, where["j1"]: 100.25, where["j2"]: 100.75,
                    where["c1"]: 100.32, where["c2"]: 100.85, where["r1"]: 100.4, where["r2"]: 101.0}
    seen.dashboard = [(100.45, "C", 1), (101.1, "C", 2)]
    lines = latency.hop_lines(seen, hops)
    by_name = {line.split(" since")[0].strip(): line for line in lines[1:]}
    assert list(by_name) == ["intake: examine produced", "intake: examine visible", "intake: judge produced",
                             "intake: judge visible", "linking produced", "linking visible", "routing produced",
                             "routing visible", "dashboard SSE"]
    # L1: dashboard 0.45 s after publish, L2 0.6 s; the SSE hop adds 0.05 and 0.1 s after routing's record is visible
    assert "since publish p50   600 p99   600" in by_name["dashboard SSE"]
    assert "added p50  100 p90  100 p99   100" in by_name["dashboard SSE"] and "(n=2)" in by_name["dashboard SSE"]
    assert "added p50   50 p90   50" in by_name["intake: examine visible"]


def test_the_dashboard_times_a_lead_by_its_own_version_not_a_later_one_that_brought_its_case_to_the_region() -> None:
    seen = latency.Seen(published={"L1": 100.0, "L2": 100.2})
    # L1's case C (another region) at version 1; L2, of the watched region, joins C at version 2: only then does C
    # reach the watched dashboard. L1 is not timed there (its wait was for L2), L2 is.
    seen.case_updates = [(100.3, "C", 1, ["L1"]), (101.5, "C", 2, ["L1", "L2"])]
    seen.dashboard = [(101.6, "C", 2)]
    result = latency.analyse(seen)
    assert sorted(round(x, 3) for x in result["cases"]) == [0.3, 1.3]
    assert [round(x, 3) for x in result["dashboard"]] == [1.4]
