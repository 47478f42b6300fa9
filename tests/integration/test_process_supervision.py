"""`leadbus process --stage all` supervises its stages: one killed -9 comes back, the others keep running,
the pipeline still delivers, and SIGTERM stops them all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from leadbus.avro import decode, packaged_catalog
from leadbus.processors.stages import PIPELINE as STAGES
from leadbus.producers import Publisher
from leadbus.topics import CASES
from tests.kafka_helpers import read_all
from tests.processes import kill_if_same, wait_until

pytestmark = pytest.mark.integration
CATALOG = packaged_catalog()


def _stage_pids(supervisor: subprocess.Popen[bytes]) -> dict[str, int]:
    pids = {}
    for child in psutil.Process(supervisor.pid).children():
        try:
            cmd = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "--stage" in cmd:
            pids[cmd[cmd.index("--stage") + 1]] = child.pid
    return pids


def _log_entries(path: Path) -> list[dict]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def _cased(bootstrap: str, lead_ids: set[str]) -> set[str]:
    members: set[str] = set()
    for msg in read_all(bootstrap, CASES):
        members.update(decode(CATALOG, msg.value())[1]["members"])
    return lead_ids & members


def test_a_stage_killed_9_is_restarted_and_the_pipeline_still_delivers(bootstrap: str, make_lead,
                                                                        tmp_path: Path) -> None:
    log_path = tmp_path / "process-all.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "leadbus.cli", "process", "--stage", "all", "-b", bootstrap,
         "--state-dir", str(tmp_path / "state"), "--worker-id", f"sup-{uuid.uuid4().hex[:8]}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    seen: dict[int, float] = {}

    def publish(n: int) -> set[str]:
        ids = set()
        with Publisher("SAMR", "33", bootstrap_servers=bootstrap) as pub:
            pending = []
            for _ in range(n):
                lead = make_lead()
                ids.add(lead["lead_id"])
                pending.append(pub.publish(lead))
            pub.wait(pending)
        return ids

    def remember() -> None:
        for pid in _stage_pids(supervisor).values():
            seen.setdefault(pid, psutil.Process(pid).create_time())

    try:
        wait_until(lambda: set(_stage_pids(supervisor)) == set(STAGES), 60, "four stage processes")
        remember()
        first = publish(5)
        wait_until(lambda: _cased(bootstrap, first) == first, 120, "the first leads to become cases")

        before = _stage_pids(supervisor)
        os.kill(before["intake"], signal.SIGKILL)
        wait_until(lambda: _stage_pids(supervisor).get("intake", before["intake"]) != before["intake"], 30,
                   "intake to be restarted")
        after = _stage_pids(supervisor)
        remember()
        others = [s for s in STAGES if s != "intake"]
        assert [after.get(s) for s in others] == [before[s] for s in others], "the other stages keep running"

        died = [e for e in _log_entries(log_path) if e.get("child") == "intake" and e.get("signal") == "SIGKILL"]
        assert died, log_path.read_text()[-3000:]
        assert died[0]["level"] == "error" and died[0]["restart_in_s"] > 0
        assert "last_lines" in died[0] and died[0]["last_lines"], "the last lines the stage wrote are logged"

        second = publish(5)
        wait_until(lambda: _cased(bootstrap, second) == second, 120,
                   "leads published after the restart to become cases")
        assert supervisor.poll() is None

        began = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(40) == 0, log_path.read_text()[-3000:]
        print(f"--stage all stopped in {time.monotonic() - began:.1f}s")
        ended = {e["child"]: e for e in _log_entries(log_path) if str(e.get("msg", "")).startswith(
            tuple(f"{s} ended" for s in STAGES))}
        assert set(ended) == set(STAGES)
        assert all(e["returncode"] == 0 for e in ended.values()), ended
        for pid, created in seen.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                assert psutil.Process(pid).create_time() != created, f"stage process {pid} left running"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        for pid, created in seen.items():
            kill_if_same(pid, created)

