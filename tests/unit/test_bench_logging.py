"""The benches' logging: librdkafka's transient retries print nothing, its errors one summarised line each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import run_all  # noqa: E402 - bench/ is a folder of scripts, not a package

SCRIPT = """
import logging, time
from leadbus.clients import RDKAFKA_LOG, KafkaSettings
from leadbus.logs import configure_cli_logging

configure_cli_logging()  # as every bench does
RDKAFKA_LOG.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-9",
                "[thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:1/1: "
                "Broker: Coordinator load in progress: retrying")
producer = KafkaSettings("127.0.0.1:1").producer(**{"reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 50})
deadline = time.monotonic() + 3
while time.monotonic() < deadline:  # some tens of refused connections
    producer.poll(0.1)
print("figures")
"""


def test_nothing_raw_and_one_summarised_line_per_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60,
                         check=True)
    lines = (out.stdout + out.stderr).splitlines()
    assert [line for line in lines if run_all.RAW_LIBRDKAFKA.match(line)] == []
    assert not any("GETPID" in line or "retrying" in line for line in lines), lines
    refused = [line for line in lines if "Connection refused" in line]
    assert len(refused) == 1, lines
    assert refused[0].startswith("ERROR leadbus.client: rdkafka#producer-1 FAIL: 127.0.0.1:1/bootstrap: Connect to")
    assert "figures" in lines
