"""`leadbus demo` stopped the way a terminal stops it: SIGINT to its whole process group.

It must stop in order, print its summary, exit within 15 s and leave no process behind — the broker,
the stages, the sinks and the dashboards all run in sessions of their own, so they are found through
psutil while the demo runs and looked for again after it exits.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from leadbus.demo import DemoPorts, busy_ports
from leadbus.sinks.dashboard_auth import COOKIE
from tests.processes import kill_if_same, wait_until

pytestmark = pytest.mark.integration

STOP_WITHIN = 15.0
STATUS = re.compile(r"published \d+ \([\d.]+/s\) accepted \d+ \([\d.]+/s\) rejected \d+ \([\d.]+/s\) \| "
                    r"open cases \d+ \| overdue duties \d+ \| lag intake \d+ linking \d+ handover \d+ routing \d+")


def _free_port_base() -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000, 20)
        if not busy_ports(DemoPorts(base).all()):
            return base
    raise AssertionError("no free block of ports")


class RunningDemo:
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        self.workdir = tmp_path / "demo"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "TERM": "dumb"}
        self.port_base = _free_port_base()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leadbus.cli", "demo", "--rate", "20", "--port-base", str(self.port_base),
             "--workdir", str(self.workdir), *extra],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.seen: dict[int, tuple[float, str]] = {}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def snapshot(self) -> None:
        """Remember every process of the demo (pid, start time): they live in sessions of their own."""
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                self.seen[p.pid] = (p.create_time(), " ".join(p.cmdline())[:160])
            except psutil.NoSuchProcess:
                continue

    def leftovers(self) -> list[str]:
        left = []
        for pid, (created, cmd) in self.seen.items():
            try:
                if psutil.Process(pid).create_time() == created:
                    left.append(f"{pid} {cmd}")
            except psutil.NoSuchProcess:
                continue
        sessions = {pid for pid in self.seen}
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getsid(p.pid) in sessions or os.getpgid(p.pid) in sessions:
                    left.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])[:160]} (in a demo session)")
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return sorted(set(left))

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C

    def wait_running(self) -> None:
        wait_until(lambda: "Ctrl-C stops" in self.output or self.proc.poll() is not None, 180,
                   "the demo to start", interval=0.5)
        assert self.proc.poll() is None, self.output
        # Let it run: every stage consuming, leads flowing into the registry and the archive.
        logs = self.workdir / "logs"
        wait_until(lambda: (logs / "linking.log").exists() and "assigned" in (logs / "linking.log").read_text()
                   and (logs / "routing.log").exists() and "assigned" in (logs / "routing.log").read_text(),
                   120, "the stages to be assigned their partitions", interval=0.5)
        # Not a terminal: plain status lines, with rates, open cases, overdue duties and each stage's lag.
        wait_until(lambda: STATUS.search(self.output) is not None, 60, "a status line with the stages' lag",
                   interval=0.5)
        self.snapshot()

    def wait_flowing(self) -> None:
        """Leads through the whole pipeline: rows in the registry and records in the archive (sealed or open). A
        demo stopped before any reached them has no archive to verify (CI of integ6: Ctrl-C came 3 s after intake
        was assigned its partitions, on a loaded machine)."""

        def registry_leads() -> int:
            try:
                with sqlite3.connect(f"file:{self.workdir / 'registry.db'}?mode=ro", uri=True, timeout=1) as db:
                    return int(db.execute("SELECT count(*) FROM leads").fetchone()[0])
            except sqlite3.Error:
                return 0

        archive = self.workdir / "archive"
        wait_until(lambda: registry_leads() > 0 and any(p.is_file() for p in archive.rglob("*.avro")), 180,
                   "leads to reach the registry and the archive", interval=0.5)

    def interrupt_and_wait(self) -> float:
        """Ctrl-C, then watch the processes until the demo ends (a minute at most): how long it took."""
        began = time.monotonic()
        self.interrupt()
        while self.proc.poll() is None and time.monotonic() - began < 60:
            self.snapshot()
            time.sleep(0.05)
        return time.monotonic() - began

    def kill_everything(self) -> None:
        for pid, (created, _) in self.seen.items():
            kill_if_same(pid, created)


def _answers(url: str, verify: ssl.SSLContext | bool) -> bool:
    """A server printed as started may still be binding its port on a loaded machine."""
    try:
        return httpx.get(url, verify=verify, timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def _the_edge_works_as_printed(out: str, lead: dict[str, object]) -> None:
    """The printed gateway URL, CA, demo token, client certificate and sign-ins, used as a person would."""
    url = re.search(r"^gateway SAMR Zhejiang: (\S+)$", out, re.M)
    ca = re.search(r"^  CA: (\S+)$", out, re.M)
    token = re.search(r"^  demo token: (lbt_\S+)$", out, re.M)
    cert = re.search(r"^  or by client certificate: curl --cacert \S+ --cert (\S+) --key (\S+) ", out, re.M)
    assert url and ca and token and cert, out[-4000:]
    trust = ssl.create_default_context(cafile=ca.group(1))
    wait_until(lambda: _answers(url.group(1).replace("/v1/leads", "/healthz"), trust), 120, "the demo's gateway",
               interval=0.5)
    resp = httpx.post(url.group(1), json=lead, headers={"Authorization": f"Bearer {token.group(1)}"}, verify=trust,
                      timeout=60)
    assert resp.status_code == 201, resp.text
    mutual = ssl.create_default_context(cafile=ca.group(1))
    mutual.load_cert_chain(cert.group(1), cert.group(2))
    again = httpx.post(url.group(1), json=lead, verify=mutual, timeout=60)  # the same lead: answered, not resent
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true", again.text
    for region in ("jjj", "yrd", "pprd"):
        found = re.search(rf"^dashboard {region} sign-in at (\S+)/signin: (\S+) / (\S+)$", out, re.M)
        assert found, f"no sign-in printed for {region}"
        base, user, password = found.groups()
        signin_page = f"{base}/signin"
        wait_until(lambda: _answers(signin_page, True), 120,  # noqa: B023 - used before the next iteration
                   f"the {region} dashboard", interval=0.5)
        with httpx.Client(base_url=base, timeout=30) as client:
            signed = client.post("/signin", data={"username": user, "password": password})
            assert signed.status_code == 303, (region, signed.text[:300])
            cookie = signed.cookies.get(COOKIE)
            assert cookie
        with httpx.Client(base_url=base, timeout=30, cookies={COOKIE: cookie}) as session:  # Secure: sent by hand
            state = session.get("/api/state")
            assert state.status_code == 200, (region, state.text[:300])


def test_ctrl_c_stops_the_demo_in_order_with_its_summary_and_nothing_left(tmp_path: Path, make_lead) -> None:
    demo = RunningDemo(tmp_path)
    try:
        demo.wait_running()
        demo.wait_flowing()
        _the_edge_works_as_printed(demo.output, make_lead())
        # broker JVM + 4 stages + registry + archive + 3 dashboards, besides the demo itself
        assert len(demo.seen) >= 11, demo.seen
        took = demo.interrupt_and_wait()
        demo.reader.join(5)
        out = demo.output
        print(out[-3000:])
        print(f"demo stopped in {took:.1f}s")
        assert demo.proc.returncode == 0, out[-3000:]
        assert took < STOP_WITHIN, f"stopped in {took:.1f}s"
        assert "registry rows: leads " in out
        assert "archive: " in out and " verified" in out
        order = out[out.index("stopped simulator"):]
        assert order.index("processors") < order.index("sinks") < order.index("dashboards") < order.index("broker")
        assert "killed after the stop deadline" not in out
        assert not re.search(r"^%\d\|", out, re.MULTILINE), "librdkafka wrote to the terminal past logging"
        for region, port in DemoPorts(demo.port_base).dashboards.items():
            assert f"http://127.0.0.1:{port}/" in out, f"{region} dashboard URL in the table"
        time.sleep(0.5)
        assert demo.leftovers() == []
        intake_log = (demo.workdir / "logs" / "intake.log").read_text()
        assert "Traceback" not in intake_log
    finally:
        demo.kill_everything()


def test_a_second_ctrl_c_forces_the_stop(tmp_path: Path) -> None:
    demo = RunningDemo(tmp_path)
    try:
        demo.wait_running()
        began = time.monotonic()
        demo.interrupt()
        time.sleep(0.3)
        demo.snapshot()
        demo.interrupt()
        demo.proc.wait(30)
        took = time.monotonic() - began
        print(f"forced stop in {took:.1f}s")
        assert took < 10, f"a forced stop took {took:.1f}s"
        assert demo.proc.returncode == 130
        time.sleep(0.5)
        assert demo.leftovers() == []
    finally:
        demo.kill_everything()


def test_ctrl_c_while_it_starts_stops_what_was_started(tmp_path: Path) -> None:
    demo = RunningDemo(tmp_path)
    try:
        wait_until(lambda: "starting a local Kafka broker" in demo.output, 60, "the broker to be starting",
                   interval=0.1)
        time.sleep(1.0)
        demo.snapshot()  # the broker's JVM, being started
        took = demo.interrupt_and_wait()
        print(f"stopped while starting in {took:.1f}s")
        assert took < STOP_WITHIN, demo.output[-2000:]
        time.sleep(0.5)
        assert demo.leftovers() == []
    finally:
        demo.kill_everything()
