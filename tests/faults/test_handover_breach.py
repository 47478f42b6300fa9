"""Handover's deadline breach on a real broker (`make test-faults`: it waits three statutory days, ~75 s): the case
nobody acts on breaches once, with its escalation, also across a restart of the handover worker. `make test` runs
the same steps without the breach (tests/integration/test_handover.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_handover import run_handover

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_handover_steps_due_times_and_a_single_breach(cluster, tmp_path: Path) -> None:
    run_handover(cluster.bootstrap_servers, tmp_path, breach=True)
