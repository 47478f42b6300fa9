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
    assert ports.metrics == {"intake": 8480, "linking": 8481, "handover": 8482, "routing": 8483}
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
