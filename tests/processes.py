"""Running `leadbus process` workers as real OS processes, so tests can kill -9 them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def start_worker(bootstrap: str, state_dir: Path, worker_id: str, log_dir: Path,
                 extra: list[str] | None = None, stage: str = "intake") -> subprocess.Popen[bytes]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{worker_id}.log", "ab")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "leadbus.cli", "process", "--stage", stage, "--bootstrap", bootstrap,
           "--state-dir", str(state_dir), "--worker-id", worker_id, *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    return proc


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float | None = None) -> None:
    """Until `predicate()` holds. Without an `interval`, the looks start 0.05 s apart and double up to 1 s: a wait
    that is over at once (most are) no longer sleeps a whole second past it, and a long one looks no more often
    than once a second, as before (a look may read a whole topic, on a machine of two cores)."""
    deadline = time.monotonic() + timeout
    pause = interval if interval is not None else 0.05
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 2, 1.0)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kill_if_same(pid: int, created: float) -> None:
    """Kill the process `pid` if it is still the one created at `created` (a pid may have been reused since)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.create_time() == created:
            proc.kill()
    except psutil.Error:
        pass
