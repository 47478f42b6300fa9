"""Supervising the bus's own OS processes: stages, sinks and dashboards.

Each child runs in its own session (so a terminal's Ctrl-C reaches only the supervisor, which
then stops the children in the order it chooses) and dies with the supervisor if that is killed
(PR_SET_PDEATHSIG). A child that dies unexpectedly — a non-zero exit or a signal the supervisor
did not send — is logged with its exit code or signal and the last lines it wrote, and started
again after an exponential backoff (capped; forgotten after a stable run). The others keep
running. A child that exits 0 by itself has finished (e.g. `--max-seconds`) and stays down.

`stop()` sends SIGTERM to the process groups of the children asked for, waits up to a
deadline, then SIGKILLs whatever is left of them, including descendants (found with psutil).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

log = logging.getLogger("leadbus.supervise")

TAIL_LINES = 20


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a child must not outlive a supervisor that was itself killed -9.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)


@dataclass(frozen=True)
class Backoff:
    """Restart delays: initial, initial × factor, … up to cap; a run of `reset_after` s forgets failures."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    reset_after: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.initial * self.factor ** max(0, failures - 1)))


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    group: str = "default"
    env: Mapping[str, str] | None = None
    restart: bool = True


@dataclass
class ExitInfo:
    """How a child ended: its exit code, or the signal that killed it."""

    returncode: int

    @property
    def signal(self) -> str | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def describe(self) -> str:
        return f"killed by {self.signal}" if self.signal else f"exit code {self.returncode}"


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # consecutive unexpected deaths
    restarts: int = 0
    restart_at: float | None = None
    finished: bool = False  # exited 0 by itself, or stopped by the supervisor
    last_exit: ExitInfo | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    pump: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Supervisor:
    """Starts, watches, restarts and stops a set of child processes.

    Call `start()`, then `poll()` regularly (or `run()`) from the thread that called `start()`
    (PR_SET_PDEATHSIG follows the thread that forked). Output of each child goes, line by line,
    to `log_dir/<name>.log` when given, else to this process's stderr; the last lines are kept
    for the log entry written when the child dies.
    """

    def __init__(
        self,
        specs: Iterable[ChildSpec],
        *,
        log_dir: Path | None = None,
        backoff: Backoff | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.children = {spec.name: Child(spec) for spec in specs}
        self.log_dir = log_dir
        self.backoff = backoff or Backoff()
        self.log = logger or log
        self.shutting_down = False
        self._write_lock = threading.Lock()
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    # -- starting ---------------------------------------------------------------------------

    def start(self, names: Iterable[str] | None = None) -> None:
        for name in names if names is not None else list(self.children):
            self._launch(self.children[name])

    def _launch(self, child: Child) -> None:
        spec = child.spec
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(spec.env or {})}
        process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only prctl: safe between fork and exec
        )
        child.process = process
        child.started_at = time.monotonic()
        child.restart_at = None
        child.finished = False
        child.tail.clear()
        sink: IO[bytes] | None = None
        if self.log_dir is not None:
            sink = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - closed by the pump
        child.pump = threading.Thread(target=self._pump, args=(child, process, sink), daemon=True,
                                      name=f"pump-{spec.name}")
        child.pump.start()
        self.log.info("started %s (pid %d)", spec.name, process.pid,
                      extra={"child": spec.name, "pid": process.pid, "restarts": child.restarts})

    def _pump(self, child: Child, process: subprocess.Popen[bytes], sink: IO[bytes] | None) -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                child.tail.append(line.decode("utf-8", "replace").rstrip("\n"))
                if sink is not None:
                    sink.write(line)
                    sink.flush()
                else:
                    with self._write_lock, contextlib.suppress(OSError, ValueError):
                        os.write(2, line)
        finally:
            process.stdout.close()
            if sink is not None:
                sink.close()

    # -- watching -------------------------------------------------------------------------

    def poll(self) -> None:
        """Notice children that died, log why, restart those whose backoff has passed."""
        now = time.monotonic()
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                self._reap(child, now)
            if (child.restart_at is not None and now >= child.restart_at and not self.shutting_down
                    and not child.finished):
                child.restarts += 1
                self._launch(child)

    def _reap(self, child: Child, now: float) -> None:
        process = child.process
        assert process is not None and process.returncode is not None
        child.process = None
        info = ExitInfo(process.returncode)
        child.last_exit = info
        if child.pump is not None:
            child.pump.join(1.0)  # the last lines it wrote
        uptime = now - child.started_at
        if process.returncode == 0 or self.shutting_down or child.finished or not child.spec.restart:
            child.finished = True
            self.log.info("%s ended: %s after %.1fs", child.name, info.describe(), uptime,
                          extra={"child": child.name, "pid": process.pid, "returncode": process.returncode})
            return
        if uptime >= self.backoff.reset_after:
            child.failures = 0
        child.failures += 1
        delay = self.backoff.delay(child.failures)
        child.restart_at = now + delay
        last = list(child.tail)
        self.log.error(
            "%s died: %s after %.1fs; restart %d in %.1fs. Last lines:\n%s", child.name, info.describe(), uptime,
            child.restarts + 1, delay, "\n".join(f"  | {line}" for line in last[-10:]) or "  (none)",
            extra={"child": child.name, "pid": process.pid, "returncode": process.returncode,
                   "signal": info.signal, "uptime_s": round(uptime, 1), "restart_in_s": delay,
                   "failures": child.failures, "last_lines": last},
        )

    def run(self, until: Callable[[], bool], interval: float = 0.2) -> None:
        """Supervise until `until()` is true or every child has finished."""
        while not until():
            self.poll()
            if all(c.finished for c in self.children.values()):
                return
            time.sleep(interval)

    # -- stopping -------------------------------------------------------------------------

    def select(self, groups: Sequence[str] | None = None) -> list[Child]:
        return [c for c in self.children.values() if groups is None or c.spec.group in groups]

    def stop(self, groups: Sequence[str] | None = None, *, timeout: float = 10.0,
             force: Callable[[], bool] = lambda: False) -> list[str]:
        """SIGTERM the children of `groups` (all when None), wait up to `timeout`, SIGKILL the rest.

        Returns the names of the children that had to be killed. `force()` turning true ends the wait early.
        """
        self.shutting_down = True
        targets = self.select(groups)
        for child in targets:
            child.restart_at = None
            child.finished = True
            if child.running and child.pid is not None:
                _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(c.running for c in targets) and time.monotonic() < deadline and not force():
            time.sleep(0.05)
        killed = [c.name for c in targets if c.running]
        self._kill(targets)
        now = time.monotonic()
        for child in targets:
            if child.process is not None and child.process.poll() is not None:
                self._reap(child, now)
        if killed:
            self.log.warning("killed %s: still running after %.1fs", ", ".join(killed), timeout)
        return killed

    def kill(self) -> None:
        """SIGKILL every child, its process group and its descendants, at once."""
        self.shutting_down = True
        for child in self.children.values():
            child.restart_at = None
            child.finished = True
        self._kill(list(self.children.values()))

    def _kill(self, targets: Sequence[Child]) -> None:
        for child in targets:
            pid = child.pid
            if pid is None:
                continue
            try:
                descendants = psutil.Process(pid).children(recursive=True)
            except psutil.Error:
                descendants = []
            _signal_group(pid, signal.SIGKILL)
            for proc in descendants:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            if child.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(5)

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.children.values() if c.pid is not None and c.running}


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the child's whole process group (it leads its own session), else the child alone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
