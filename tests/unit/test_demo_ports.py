"""The demo's ports are stable (a bookmark keeps working) and move together with --port-base."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from leadbus.demo import DEFAULT_PORT_BASE, DemoPorts


def test_default_ports_are_stable_and_move_together() -> None:
    ports = DemoPorts(DEFAULT_PORT_BASE)
    assert ports.dashboards == {"jjj": 8470, "yrd": 8471, "pprd": 8472}
    assert ports.metrics == {"intake": 8480, "linking": 8481, "handover": 8482, "routing": 8483, "blacklist": 8484,
                             "suggesting": 8485}
    moved = DemoPorts(9000)
    assert [p - 9000 for p in moved.all()] == [p - 8470 for p in ports.all()]
    assert len(set(ports.all())) == len(ports.all())


def test_a_busy_port_stops_the_demo_before_it_starts_anything(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        base = sock.getsockname()[1] - 1  # the yrd dashboard's port is taken
        result = subprocess.run([sys.executable, "-m", "leadbus.cli", "demo", "--port-base", str(base),
                                 "--workdir", str(tmp_path / "demo")], capture_output=True, text=True, timeout=60,
                                check=False, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ports in use" in result.stdout and str(base + 1) in result.stdout
    assert "--port-base" in result.stdout
    assert not (tmp_path / "demo").exists()


def test_rates_over_a_sliding_window() -> None:
    from leadbus.demo import Rates

    rates = Rates(window=5.0)
    for t in range(0, 11):
        rates.add(float(t), {"published": 20 * t, "rejected": 0})
    per_second = rates.per_second()
    assert per_second == {"published": 20.0, "rejected": 0.0}
    assert rates.samples[0][0] >= 5.0, "older samples are dropped"


def test_status_line_says_everything_in_one_line() -> None:
    from leadbus.demo import status_line

    info = {"published": 100, "accepted": 90, "rejected": 5, "rates": {"published": 20.0, "accepted": 18.0},
            "open_cases": 70, "overdue": 2, "lag": {"intake": 0, "linking": None}, "down": ["routing"],
            "restarts": 1}
    line = status_line(info, 12.0)
    assert "\n" not in line
    assert "published 100 (20.0/s) accepted 90 (18.0/s) rejected 5 (0.0/s)" in line
    assert "open cases 70 | overdue duties 2 | lag intake 0 linking ? | restarts 1 DOWN: routing" in line
