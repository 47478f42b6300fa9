"""The `leadbus` command line against a real broker."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadbus.cli import app
from leadbus.topics import intake_topic
from tests.kafka_helpers import read_all

pytestmark = pytest.mark.integration
runner = CliRunner()

COMMANDS = [[], ["broker"], ["broker", "up"], ["broker", "down"], ["broker", "status"], ["broker", "fetch"],
            ["topics"], ["topics", "apply"], ["schemas"], ["schemas", "list"], ["schemas", "publish"],
            ["simulate"], ["process"], ["link"], ["registry"], ["takedown"], ["archive"], ["archive", "verify"],
            ["archive", "run"], ["dashboard"], ["demo"], ["gateway"], ["gateway-token"], ["dashboard-user"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "leadbus")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_topics_apply_is_idempotent_and_check_reports_sync(bootstrap: str) -> None:
    first = runner.invoke(app, ["topics", "apply", "-b", bootstrap])
    assert first.exit_code == 0, first.output
    assert "0 created" in first.output
    check = runner.invoke(app, ["topics", "apply", "-b", bootstrap, "--check"])
    assert check.exit_code == 0, check.output
    assert "0 missing" in check.output and "0 config drift" in check.output


def test_topics_apply_corrects_drift(bootstrap: str) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    from leadbus.clients import KafkaSettings

    admin = KafkaSettings(bootstrap).admin()  # librdkafka's lines through logging, also after the broker has gone
    res = ConfigResource(ConfigResource.Type.TOPIC, "leadbus.blacklist", incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result(30)
    # Config changes travel through the metadata log: allow them a moment to show.
    for _ in range(20):
        check = runner.invoke(app, ["topics", "apply", "-b", bootstrap, "--check"])
        if check.exit_code == 1:
            break
        time.sleep(0.5)
    assert check.exit_code == 1, check.output
    assert "leadbus.blacklist: cleanup.policy = 'delete', declared 'compact'" in check.output
    fixed = runner.invoke(app, ["topics", "apply", "-b", bootstrap])
    assert fixed.exit_code == 0
    assert runner.invoke(app, ["topics", "apply", "-b", bootstrap, "--check"]).exit_code == 0


def test_simulate_publishes_confirmed_leads(bootstrap: str) -> None:
    before = len(read_all(bootstrap, intake_topic("SAMR")))
    result = subprocess.run(
        [sys.executable, "-m", "leadbus.cli", "simulate", "--rate", "200", "--duration", "2", "--seed", "3",
         "-b", bootstrap], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "failed 0" in result.stdout
    assert len(read_all(bootstrap, intake_topic("SAMR"))) > before


def test_replay_and_rebuild_usage_errors_exit_2_without_a_traceback(bootstrap: str, tmp_path: Path) -> None:
    """Issue #14's contract, red team round 12. Before: a `^regex` topic that matched nothing replayed 0 records and
    said "verified" (exit 0), one that did not compile was a traceback (exit 1), and `audit rebuild --from` after
    `--to` compared nothing and said "identical" (exit 0)."""
    cases = {
        "no topic matches": ["replay", "--topic", "^leadbus\\.nothing\\..*", "--verify", "-b", bootstrap],
        "not a regular expression": ["replay", "--topic", "^(", "--verify", "-b", bootstrap],
        "--to must be after --from": ["audit", "rebuild", "-b", bootstrap, "--from", "2026-12-01T00:00:00Z",
                                      "--to", "2026-11-01T00:00:00Z"],
        "No such file or directory": ["replay", "--topic", "leadbus.cases", "-b", bootstrap,
                                      "--out", str(tmp_path / "missing" / "x.jsonl")],
    }
    for said, args in cases.items():
        done = subprocess.run([sys.executable, "-m", "leadbus.cli", *args], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and said in " ".join((done.stdout + done.stderr).split()), (said, done)
