"""The supervisor on small real child processes: restarts with backoff, clean exits, stops that must kill."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from leadbus.supervise import Backoff, ChildSpec, Supervisor


def _poll_until(sup: Supervisor, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        sup.poll()
        time.sleep(0.02)
    assert done()


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, cap=0.4)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.4, 0.4]


def test_a_crashing_child_is_restarted_and_why_it_died_is_kept(tmp_path: Path) -> None:
    crasher = ChildSpec("crasher", [sys.executable, "-c", "import sys; print('boom', flush=True); sys.exit(3)"])
    steady = ChildSpec("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    sup = Supervisor([crasher, steady], backoff=Backoff(initial=0.05, cap=0.2), log_dir=tmp_path)
    sup.start()
    steady_pid = sup.children["steady"].pid
    _poll_until(sup, lambda: sup.children["crasher"].restarts >= 3)
    child = sup.children["crasher"]
    assert child.failures >= 3
    assert child.last_exit is not None and child.last_exit.describe() == "exit code 3"
    assert sup.children["steady"].pid == steady_pid and sup.children["steady"].running
    sup.stop(timeout=5)
    assert not child.running and not sup.children["steady"].running
    assert (tmp_path / "crasher.log").read_text().count("boom") >= 3


def test_a_clean_exit_is_not_restarted(tmp_path: Path) -> None:
    sup = Supervisor([ChildSpec("once", [sys.executable, "-c", "pass"])], log_dir=tmp_path)
    sup.start()
    _poll_until(sup, lambda: sup.children["once"].finished)
    time.sleep(0.3)
    sup.poll()
    assert sup.children["once"].restarts == 0


def test_stop_kills_a_child_that_ignores_sigterm_and_its_descendants(tmp_path: Path) -> None:
    stubborn = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'], start_new_session=True); "
                "print('ready', flush=True); time.sleep(60)")
    sup = Supervisor([ChildSpec("stubborn", [sys.executable, "-c", stubborn])], log_dir=tmp_path)
    sup.start()
    _poll_until(sup, lambda: "ready" in sup.children["stubborn"].tail)
    pid = sup.children["stubborn"].pid
    assert pid is not None
    grandchildren = psutil.Process(pid).children(recursive=True)
    assert grandchildren
    began = time.monotonic()
    assert sup.stop(timeout=0.5) == ["stubborn"]
    assert time.monotonic() - began < 5
    assert not sup.children["stubborn"].running
    _, alive = psutil.wait_procs(grandchildren, timeout=5)  # SIGKILLed: gone as soon as the kernel reaps them
    assert alive == []
